package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A mover that is not root (a namespace enforcing Pod Security
// "restricted") backs up what its user can read and restores into a target
// whose top directory another user owns: the content comes back, and the
// owners it could not keep are counted, not an error.
func TestNonRootBackupAndRestore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the mover as another user")
	}
	base := t.TempDir()
	if err := os.Chmod(filepath.Dir(base), 0o755); err != nil { // t.TempDir's parent is 0700
		t.Fatal(err)
	}
	bin := filepath.Join(base, "backup-mover")
	data, err := os.ReadFile(mover)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	src, repoDir, target := filepath.Join(base, "src"), filepath.Join(base, "repo"), filepath.Join(base, "target")
	for _, d := range []string{base, src, repoDir, target} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(src, "app"), 0o750))
	must(os.WriteFile(filepath.Join(src, "app", "db"), bytes.Repeat([]byte("x"), 100000), 0o640))
	must(os.WriteFile(filepath.Join(src, "by-root"), []byte("root\n"), 0o644))
	must(os.Chown(filepath.Join(src, "app"), 1000, 1000))
	must(os.Chown(filepath.Join(src, "app", "db"), 1000, 1000))

	as1000 := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = base
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("backup-mover %v as 1000: %v\n%s", args, err, out)
		}
		return string(out)
	}
	as1000("init", "--repo", repoDir)
	as1000("backup", "--repo", repoDir, "--source", src)
	var snaps []struct{ ID string }
	out := strings.TrimSpace(as1000("ls", "--repo", repoDir, "--json"))
	must(json.Unmarshal([]byte(out[strings.LastIndex(out, "\n")+1:]), &snaps))
	if len(snaps) != 1 {
		t.Fatalf("snapshots: %s", out)
	}
	summary := filepath.Join(base, "summary.json")
	as1000("restore", "--repo", repoDir, "--snapshot", snaps[0].ID, "--target", target, "--summary-file", summary)
	var s struct {
		Files              int64
		Verified           bool
		OwnersNotPreserved int64
	}
	raw, err := os.ReadFile(summary)
	must(err)
	must(json.Unmarshal(raw, &s))
	// by-root (owned by root) and the top directory (recorded as root's, and
	// owned by root in the target, so its mode and times stay).
	if s.Files != 2 || !s.Verified || s.OwnersNotPreserved != 2 {
		t.Errorf("summary %s: want 2 files, verified, 2 owners not preserved", raw)
	}
	got, err := os.ReadFile(filepath.Join(target, "app", "db"))
	if err != nil || len(got) != 100000 {
		t.Errorf("restored app/db: %d bytes, %v", len(got), err)
	}
}
