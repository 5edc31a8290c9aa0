package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/backup-operator/pkg/mover/cli"
)

// The tests run the built binary; naming the package ties the test cache to its code.
var _ = cli.Main

var mover string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "backup-mover-test-")
	if err != nil {
		panic(err)
	}
	mover = filepath.Join(dir, "backup-mover")
	if out, err := exec.Command("go", "build", "-o", mover, "example.com/backup-operator/cmd/backup-mover").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building backup-mover: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(mover, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, nil, args...)
	if err != nil {
		t.Fatalf("backup-mover %v: %v\n%s", args, err, out)
	}
	return out
}

func makeTree(t *testing.T, dir string, files int, seed int64) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	for i := 0; i < files; i++ {
		p := filepath.Join(dir, fmt.Sprintf("d%d", i%17), fmt.Sprintf("f%d", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		data := make([]byte, 1000+rng.Intn(300000))
		rng.Read(data)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func snapshots(t *testing.T, repoDir string) []string {
	t.Helper()
	var rows []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "ls", "--repo", repoDir, "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	return ids
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestKilledBackupLeavesNoSnapshotAndARepositoryThatVerifies(t *testing.T) {
	repoDir, src := filepath.Join(t.TempDir(), "repo"), t.TempDir()
	makeTree(t, src, 400, 1)
	first := lastLine(mustRun(t, "backup", "--repo", repoDir, "--source", src))
	makeTree(t, src, 400, 2) // new content for the interrupted backups

	// Stop the backup between each pair of durable writes...
	for _, step := range []string{"backup-before-index", "backup-before-manifest", "backup-before-snapshot"} {
		out, err := run(t, []string{"BACKUP_MOVER_CRASH_AT=" + step}, "backup", "--repo", repoDir, "--source", src)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 137 {
			t.Fatalf("%s: expected a crash, got %v\n%s", step, err, out)
		}
		if got := snapshots(t, repoDir); len(got) != 1 || got[0] != first {
			t.Fatalf("%s: a crashed backup left snapshots %v", step, got)
		}
		mustRun(t, "verify", "--repo", repoDir)
	}
	// ...and with a real SIGKILL at a random moment while it writes.
	cmd := exec.Command(mover, "backup", "--repo", repoDir, "--source", src, "--no-parent")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(50+rand.Intn(150)) * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if got := snapshots(t, repoDir); len(got) > 2 {
		t.Fatalf("killed backup: snapshots %v", got)
	}
	mustRun(t, "verify", "--repo", repoDir)
	// The lock of the killed process expires; prune then removes its leftovers.
	out := mustRun(t, "prune", "--repo", repoDir, "--lock-wait", "3m", "--json")
	if !strings.Contains(out, `"packsDeleted"`) {
		t.Errorf("prune output: %s", out)
	}
	mustRun(t, "verify", "--repo", repoDir)
	mustRun(t, "restore", "--repo", repoDir, "--snapshot", first, "--target", t.TempDir())
}

func TestKilledPruneNeverLosesReferencedData(t *testing.T) {
	for _, step := range []string{"prune-after-forget", "prune-after-rewrite", "prune-after-new-index", "prune-mid-pack-delete"} {
		t.Run(step, func(t *testing.T) {
			repoDir := filepath.Join(t.TempDir(), "repo")
			src := t.TempDir()
			makeTree(t, src, 120, 3)
			keep := lastLine(mustRun(t, "backup", "--repo", repoDir, "--source", src))
			makeTree(t, src, 60, 4) // overwrites half the files: the next snapshot has unique data
			forget := lastLine(mustRun(t, "backup", "--repo", repoDir, "--source", src))

			out, err := run(t, []string{"BACKUP_MOVER_CRASH_AT=" + step}, "prune", "--repo", repoDir, "--forget", forget)
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 137 {
				t.Fatalf("expected a crash, got %v\n%s", err, out)
			}
			// Whatever step it died at, the kept snapshot is whole.
			mustRun(t, "verify", "--repo", repoDir, "--snapshot", keep)
			mustRun(t, "restore", "--repo", repoDir, "--snapshot", keep, "--target", t.TempDir())
			// A repeated prune (after the dead holder's lease) finishes the job.
			mustRun(t, "prune", "--repo", repoDir, "--forget", forget, "--lock-wait", "3m")
			mustRun(t, "verify", "--repo", repoDir)
			if got := snapshots(t, repoDir); len(got) != 1 || got[0] != keep {
				t.Fatalf("after the repeated prune: snapshots %v", got)
			}
		})
	}
}

func TestExitCodesAndSummary(t *testing.T) {
	repoDir, src := filepath.Join(t.TempDir(), "repo"), t.TempDir()
	makeTree(t, src, 10, 5)
	summary := filepath.Join(t.TempDir(), "summary.json")
	out := mustRun(t, "backup", "--repo", repoDir, "--source", src, "--summary-file", summary)
	data, err := os.ReadFile(summary)
	if err != nil || len(data) > 4096 {
		t.Fatalf("summary: %v (%d bytes)", err, len(data))
	}
	var s struct {
		SnapshotID string `json:"snapshotID"`
		Files      int64  `json:"files"`
	}
	json.Unmarshal(data, &s)
	if s.SnapshotID != lastLine(out) || s.Files != 10 {
		t.Errorf("summary %s does not match output %q", data, lastLine(out))
	}
	if !strings.Contains(out, `"bytesDone"`) {
		t.Errorf("no progress line in %q", out)
	}
	if _, err := run(t, nil, "restore", "--repo", repoDir, "--snapshot", "0000000000", "--target", t.TempDir()); err == nil {
		t.Error("restore of an unknown snapshot exited 0")
	}
	if out, err := run(t, nil, "backup", "--repo", repoDir); err == nil || !strings.Contains(out, "source") {
		t.Errorf("backup without --source: %v %s", err, out)
	}
}
