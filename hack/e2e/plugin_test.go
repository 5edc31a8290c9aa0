//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"example.com/backup-operator/hack/cluster"
)

// The kubectl plugin (cmd/kubectl-backup) as a user runs it: built from
// this checkout into a directory first on PATH, called as `kubectl backup`
// with KUBECONFIG naming the cluster.

// buildPlugin builds kubectl-backup into a directory of the test and
// returns the directory.
func buildPlugin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-backup"), "./cmd/kubectl-backup")
	cmd.Dir = cluster.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-backup: %v\n%s", err, out)
	}
	return dir
}

// pluginRun is what `kubectl backup ...` wrote and its exit code.
type pluginRun struct {
	stdout, stderr string
	code           int
}

// kubectlBackup runs `kubectl backup ARGS...` with the plugin of dir on the
// PATH and the cluster's admin kubeconfig in KUBECONFIG.
func kubectlBackup(t *testing.T, dir string, args ...string) pluginRun {
	t.Helper()
	return kubectlBackupAs(t, dir, local.AdminKubeconfig, args...)
}

// kubectlBackupAs is kubectlBackup with KUBECONFIG set to kubeconfig.
func kubectlBackupAs(t *testing.T, dir, kubeconfig string, args ...string) pluginRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"backup"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := pluginRun{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("kubectl backup %s: %v\n%s", strings.Join(args, " "), err, r.stderr)
	}
	out := r.stdout
	switch {
	case !utf8.ValidString(out) || strings.Contains(out, "\x00"):
		out = fmt.Sprintf("(%d bytes of binary data)\n", len(out))
	case len(out) > 4000:
		out = out[:4000] + fmt.Sprintf("... (%d bytes)\n", len(r.stdout))
	}
	t.Logf("kubectl backup %s: exit %d in %.1fs\n%s%s", strings.Join(args, " "), r.code, time.Since(start).Seconds(), out, r.stderr)
	return r
}

// serverError is the message the API server answers a GET of path with,
// as kubectl prints it ("Error from server (NotFound): MESSAGE"), for a
// request that must fail.
func serverError(t *testing.T, kubeconfig, path string) string {
	t.Helper()
	out, err := cluster.KubectlAs(context.Background(), kubeconfig, "get", "--raw", path)
	if err == nil {
		t.Fatalf("GET %s succeeded:\n%s", path, out)
	}
	m := regexp.MustCompile(`(?m)^Error from server(?: \([A-Za-z]+\))?: (.+)$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("GET %s: no error from the server in:\n%s", path, out)
	}
	return string(m[1])
}

// treeScript prints one line per entry under the directory $1, sorted:
// ./path|d|mode|mtime for a directory, ./path|f|mode|mtime|size|sha256 for
// a file, ./path|l|target|mtime for a symlink. describeTree prints the same
// of a local directory.
const treeScript = `tree() { (cd "$1" && find . -mindepth 1 | sort | while IFS= read -r f; do
case "$(stat -c %F "$f")" in
"symbolic link") echo "$f|l|$(readlink "$f")|$(stat -c %Y "$f")" ;;
directory) echo "$f|d|$(stat -c %a "$f")|$(stat -c %Y "$f")" ;;
*) echo "$f|f|$(stat -c %a "$f")|$(stat -c %Y "$f")|$(stat -c %s "$f")|$(sha256sum < "$f" | cut -d' ' -f1)" ;;
esac; done); }; `

func describeTree(t *testing.T, root string) string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			rel, _ := filepath.Rel(root, p)
			paths = append(paths, "./"+filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, rel := range paths {
		b.WriteString(describeEntry(t, filepath.Join(root, filepath.FromSlash(rel[2:])), rel))
	}
	return b.String()
}

// describeEntry is treeScript's line of the local path p, named name.
func describeEntry(t *testing.T, p, name string) string {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	mtime := strconv.FormatInt(fi.ModTime().Unix(), 10)
	mode := strconv.FormatUint(uint64(fi.Mode().Perm()), 8)
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s|l|%s|%s\n", name, target, mtime)
	case fi.IsDir():
		return fmt.Sprintf("%s|d|%s|%s\n", name, mode, mtime)
	default:
		return fmt.Sprintf("%s|f|%s|%s|%d|%s\n", name, mode, mtime, fi.Size(), fileSHA256(t, p))
	}
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sameTree fails the test when the tree of got differs from want (both
// treeScript's lines), naming the lines that differ.
func sameTree(t *testing.T, what, want, got string) {
	t.Helper()
	if want == got {
		return
	}
	w, g := lines(want), lines(got)
	for l := range w {
		if !g[l] {
			t.Errorf("%s lacks (or differs in) %s", what, l)
		}
	}
	for l := range g {
		if !w[l] {
			t.Errorf("%s has %s, which the source has not", what, l)
		}
	}
}

// TestPluginBackupStatusRestore: `kubectl backup now --wait` backs up a
// claim and names the Completed Backup; `status` (-n, -A, -o json) shows the
// policy with that last success; `restore --to --yes` brings the claim's
// content back into another claim, all of it or (--path) one directory.
func TestPluginBackupStatusRestore(t *testing.T) {
	ns := "e2e-plugin"
	namespace(t, ns)
	claims(t, ns, true)
	runPod(t, ns, "fill", `mkdir -p /data/db/sub /data/db/empty /data/logs && for i in $(seq 1 30); do head -c $((i*3000)) /dev/urandom > /data/db/f$i; done &&
head -c 4000000 /dev/urandom > /data/db/big && echo note > /data/db/sub/note && chmod 600 /data/db/sub/note && ln -s sub/note /data/db/link && echo log > /data/logs/app.log`, "data")
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: nightly, namespace: %s}
spec: {schedule: "0 0 1 1 *", target: {pvcName: data}, retention: {keepLast: 5}}
`, ns))
	want := runPod(t, ns, "tree-data", treeScript+"tree /data", "data")
	files := strings.Count(want, "|f|")
	dir := buildPlugin(t)

	r := kubectlBackup(t, dir, "now", "nightly", "-n", ns, "--wait")
	if r.code != 0 {
		t.Fatalf("now --wait: exit %d, want 0", r.code)
	}
	m := regexp.MustCompile(`(?m)^backup/(nightly-\S+) created$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("now --wait does not name the Backup it created:\n%s", r.stdout)
	}
	name := m[1]
	if !regexp.MustCompile(`(?m)^backup/` + regexp.QuoteMeta(name) + ` Completed: ` + strconv.Itoa(files) + ` files, `).MatchString(r.stdout) {
		t.Errorf("now --wait does not end with backup/%s Completed and the claim's %d files:\n%s", name, files, r.stdout)
	}
	if phase := kubectl(t, "-n", ns, "get", "backup", name, "-o", "jsonpath={.status.phase}"); phase != "Completed" {
		t.Errorf("backup/%s is %s after now --wait", name, phase)
	}

	t.Run("status", func(t *testing.T) {
		// The policy records its last success once the Backup is Completed.
		line := regexp.MustCompile(`(?m)^nightly +0 0 1 1 \* +` + regexp.QuoteMeta(name) + ` +\S+ ago \(every 36[56]d\) +OK +in \S+$`)
		var r pluginRun
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
			if r = kubectlBackup(t, dir, "status", "-n", ns); r.code == 0 && line.MatchString(r.stdout) {
				break
			}
		}
		if r.code != 0 || !line.MatchString(r.stdout) {
			t.Fatalf("status -n %s: exit %d, no line matching %s", ns, r.code, line)
		}
		if strings.Contains(r.stdout, "NAMESPACE") || strings.Contains(r.stdout, "database-backups") {
			t.Errorf("status -n %s shows other namespaces", ns)
		}

		r = kubectlBackup(t, dir, "status", "-A")
		if r.code != 0 || !regexp.MustCompile(`(?m)^NAMESPACE +POLICY +SCHEDULE`).MatchString(r.stdout) ||
			!regexp.MustCompile(`(?m)^`+ns+` +nightly +0 0 1 1 \* +`+regexp.QuoteMeta(name)+` `).MatchString(r.stdout) {
			t.Errorf("status -A: exit %d, no NAMESPACE column or no line of %s/nightly with %s", r.code, ns, name)
		}

		r = kubectlBackup(t, dir, "status", "-n", ns, "-o", "json")
		var report struct {
			Policies []struct {
				Namespace, Name    string
				LastSuccessful     string     `json:"lastSuccessfulBackup"`
				LastSuccessfulTime *time.Time `json:"lastSuccessfulTime"`
				Late               bool       `json:"late"`
				NextRun            *time.Time `json:"nextRun"`
				ScheduleError      string     `json:"scheduleError"`
			} `json:"policies"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &report); err != nil || r.code != 0 {
			t.Fatalf("status -o json: exit %d, %v", r.code, err)
		}
		if len(report.Policies) != 1 {
			t.Fatalf("status -o json lists %d policies, want nightly only", len(report.Policies))
		}
		p := report.Policies[0]
		if p.Namespace != ns || p.Name != "nightly" || p.LastSuccessful != name || p.LastSuccessfulTime == nil ||
			time.Since(*p.LastSuccessfulTime) > 10*time.Minute || p.Late || p.NextRun == nil || p.ScheduleError != "" {
			t.Errorf("status -o json: %+v, want nightly with its last success %s a moment ago, not late", p, name)
		}
	})

	apply(t, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: copy, namespace: %[1]s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: partial, namespace: %[1]s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`, ns))

	t.Run("restore", func(t *testing.T) {
		r := kubectlBackup(t, dir, "restore", name, "--to", "copy", "--yes", "-n", ns)
		if r.code != 0 {
			t.Fatalf("restore --to copy --yes: exit %d, want 0", r.code)
		}
		for _, re := range []string{
			`(?m)^restorejob/` + regexp.QuoteMeta(name) + `-preview-\w+ created \(dry run of backup/` + regexp.QuoteMeta(name) + ` into claim copy\)$`,
			`(?m)^\d+ to create, 0 to overwrite, 0 to delete$`,
			`(?m)^restorejob/` + regexp.QuoteMeta(name) + `-restore-\w+ Completed: ` + strconv.Itoa(files) + ` files, .* written, verified`,
		} {
			if !regexp.MustCompile(re).MatchString(r.stdout) {
				t.Errorf("restore output does not match %s", re)
			}
		}
		sameTree(t, "the claim restored with kubectl backup restore", want, runPod(t, ns, "tree-copy", treeScript+"tree /copy", "copy"))
	})

	t.Run("restore-path", func(t *testing.T) {
		r := kubectlBackup(t, dir, "restore", name, "--to", "partial", "--path", "db/sub", "--yes", "-n", ns)
		if r.code != 0 {
			t.Fatalf("restore --path db/sub: exit %d, want 0", r.code)
		}
		if !regexp.MustCompile(`(?m)^restorejob/\S+-restore-\w+ Completed: 1 files, `).MatchString(r.stdout) {
			t.Errorf("restore --path db/sub does not report its one file")
		}
		var wantSub []string
		for _, l := range strings.Split(strings.TrimSpace(want), "\n") {
			if strings.HasPrefix(l, "./db/sub/") {
				wantSub = append(wantSub, l)
			}
		}
		got := runPod(t, ns, "tree-partial", treeScript+"tree /partial", "partial")
		var gotSub, outside []string
		for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
			switch {
			case strings.HasPrefix(l, "./db/sub/"):
				gotSub = append(gotSub, l)
			case strings.HasPrefix(l, "./db|d|"), strings.HasPrefix(l, "./db/sub|d|"):
			default:
				outside = append(outside, l)
			}
		}
		if len(wantSub) == 0 || strings.Join(gotSub, "\n") != strings.Join(wantSub, "\n") {
			t.Errorf("db/sub restored with --path:\n%s\nwant:\n%s", strings.Join(gotSub, "\n"), strings.Join(wantSub, "\n"))
		}
		if len(outside) > 0 {
			t.Errorf("restore --path db/sub wrote outside db/sub:\n%s", strings.Join(outside, "\n"))
		}
	})
}

// TestPluginBackupFails: `kubectl backup now --wait` of a policy whose
// repository claim holds a damaged repository (a config the mover cannot
// read) follows the Backup to Failed and exits 1.
func TestPluginBackupFails(t *testing.T) {
	ns := "e2e-plugin-fail"
	namespace(t, ns)
	claims(t, ns, false)
	apply(t, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: damaged-repo, namespace: %s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`, ns))
	runPod(t, ns, "fill", `echo data > /data/file && echo '{"version": 3, "id": "not a repository"}' > /damaged-repo/config`, "data", "damaged-repo")
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: broken, namespace: %s}
spec: {schedule: "0 0 1 1 *", target: {pvcName: data}, storage: {pvcName: damaged-repo}, retention: {keepLast: 2}}
`, ns))
	dir := buildPlugin(t)

	r := kubectlBackup(t, dir, "now", "broken", "-n", ns, "--wait")
	if r.code != 1 {
		t.Errorf("now --wait of a Backup into a damaged repository: exit %d, want 1", r.code)
	}
	m := regexp.MustCompile(`(?m)^backup/(broken-\S+) Failed\b.*$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("now --wait does not end with the Backup Failed:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "error: backup/"+m[1]+" failed") {
		t.Errorf("stderr does not say backup/%s failed: %q", m[1], r.stderr)
	}
	// The mover ran and failed: the message it left is the one shown.
	msg := kubectl(t, "-n", ns, "get", "backup", m[1], "-o", "jsonpath={.status.phase}: {.status.message}")
	if !strings.HasPrefix(msg, "Failed: ") || !strings.Contains(msg, "damaged") {
		t.Errorf("backup/%s: %q, want Failed with the mover's words on the damaged config", m[1], msg)
	}
	if !strings.Contains(strings.Join(strings.Fields(m[0]), " "), strings.Join(strings.Fields(strings.TrimPrefix(msg, "Failed: ")), " ")) {
		t.Errorf("the plugin's last line %q lacks the Backup's message %q", m[0], msg)
	}
}

// TestPluginLsCp lists and copies a Backup's files through its files
// subresource: ls of the root, a directory, a file and a symlink as ls -l
// shows them, -o json; cp of a file (into a directory, to stdout), of a
// symlink, of a directory and of the whole backup, each compared with the
// claim backed up (content, modes, times, links); an existing file refused
// without --overwrite; a missing path (404), a Backup that is not Completed
// (409) and a user without backups/files (403) as the server words them.
func TestPluginLsCp(t *testing.T) {
	ns := "e2e-plugin-files"
	namespace(t, ns)
	claims(t, ns, true)
	runPod(t, ns, "fill", `mkdir -p /data/etc/conf.d /data/deep/a/b/c /data/empty &&
echo 'key = value' > /data/etc/app.conf && chmod 640 /data/etc/app.conf &&
for i in $(seq 1 20); do head -c $((i*1500)) /dev/urandom > /data/etc/conf.d/f$i; done && chown 1000:2000 /data/etc/conf.d/f1 &&
ln -s app.conf /data/etc/link && ln -s /nowhere/at/all /data/etc/dangling && : > /data/etc/empty-file &&
echo spaced > '/data/etc/with space & 100%?.txt' && head -c 9000000 /dev/urandom > /data/big.bin &&
echo deep > /data/deep/a/b/c/file && chmod 750 /data/deep/a && chmod 700 /data/deep`, "data")
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: files, namespace: %[1]s}
spec: {target: {pvcName: data}}
---
apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: no-repo, namespace: %[1]s}
spec: {target: {pvcName: data}, storage: {pvcName: missing-repo}}
`, ns))
	waitBackup(t, ns, "files")
	waitFor(t, ns, "backup", "no-repo", "Failed")
	source := runPod(t, ns, "tree-data", treeScript+"tree /data", "data")
	// The source's lines below a directory, renamed as describeTree names
	// them in a copy of that directory.
	sourceUnder := func(dir string) string {
		var b strings.Builder
		for _, l := range strings.SplitAfter(source, "\n") {
			if rest, ok := strings.CutPrefix(l, "./"+dir+"/"); ok {
				b.WriteString("./" + rest)
			}
		}
		return b.String()
	}
	sourceLine := func(p string) []string {
		for _, l := range strings.Split(source, "\n") {
			if strings.HasPrefix(l, "./"+p+"|") {
				return strings.Split(l, "|")
			}
		}
		t.Fatalf("the source has no %s", p)
		return nil
	}
	dir := buildPlugin(t)
	out := t.TempDir()

	t.Run("ls", func(t *testing.T) {
		// The first request for the repository may wait for the reader; the
		// plugin tries again.
		r := kubectlBackup(t, dir, "ls", "files", "-n", ns)
		if r.code != 0 {
			t.Fatalf("ls: exit %d", r.code)
		}
		rows := regexp.MustCompile(`(?m)^MODE +OWNER +SIZE +MODIFIED +NAME\n-rw-r--r-- +0:0 +9000000 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +big\.bin
drwx------ +0:0 +- +\S+ \S+ +deep
drwxr-xr-x +0:0 +- +\S+ \S+ +empty
drwxr-xr-x +0:0 +- +\S+ \S+ +etc
$`)
		if !rows.MatchString(r.stdout) {
			t.Errorf("ls of the root does not match %s", rows)
		}
		// MODIFIED is the file's time, in the local zone.
		mtime, _ := strconv.ParseInt(sourceLine("big.bin")[3], 10, 64)
		if stamp := time.Unix(mtime, 0).Format(time.DateTime); !strings.Contains(r.stdout, stamp+"  big.bin") {
			t.Errorf("ls shows big.bin without its time %s", stamp)
		}

		r = kubectlBackup(t, dir, "ls", "files", "etc", "-n", ns)
		for _, re := range []string{
			`(?m)^-rw-r----- +0:0 +12 +\S+ \S+ +app\.conf$`,
			`(?m)^drwxr-xr-x +0:0 +- +\S+ \S+ +conf\.d$`,
			`(?m)^lrwxrwxrwx +0:0 +- +\S+ \S+ +dangling -> /nowhere/at/all$`,
			`(?m)^-rw-r--r-- +0:0 +0 +\S+ \S+ +empty-file$`,
			`(?m)^lrwxrwxrwx +0:0 +- +\S+ \S+ +link -> app\.conf$`,
			`(?m)^-rw-r--r-- +0:0 +7 +\S+ \S+ +with space & 100%\?\.txt$`,
		} {
			if r.code != 0 || !regexp.MustCompile(re).MatchString(r.stdout) {
				t.Errorf("ls etc: exit %d, no line matching %s", r.code, re)
			}
		}
		if n := strings.Count(r.stdout, "\n"); n != 7 {
			t.Errorf("ls etc: %d lines, want the head and 6 entries", n)
		}
		r = kubectlBackup(t, dir, "ls", "files", "/etc/conf.d/", "-n", ns)
		if !regexp.MustCompile(`(?m)^-rw-r--r-- +1000:2000 +1500 +\S+ \S+ +f1$`).MatchString(r.stdout) || strings.Count(r.stdout, "\n") != 21 {
			t.Errorf("ls /etc/conf.d/: exit %d, want f1 of 1000:2000 and 20 files", r.code)
		}

		// A file and a symlink list themselves.
		r = kubectlBackup(t, dir, "ls", "files", "etc/app.conf", "-n", ns)
		if r.code != 0 || !regexp.MustCompile(`^MODE.*\n-rw-r----- +0:0 +12 +\S+ \S+ +app\.conf\n$`).MatchString(r.stdout) {
			t.Errorf("ls etc/app.conf: exit %d, want the file's line only", r.code)
		}
		r = kubectlBackup(t, dir, "ls", "files", "etc/link", "-n", ns)
		if r.code != 0 || !regexp.MustCompile(`^MODE.*\nlrwxrwxrwx +0:0 +- +\S+ \S+ +link -> app\.conf\n$`).MatchString(r.stdout) {
			t.Errorf("ls etc/link: exit %d, want the link's line only", r.code)
		}

		r = kubectlBackup(t, dir, "ls", "files", "etc", "-n", ns, "-o", "json")
		var l struct {
			Kind, APIVersion, Path string
			Items                  []struct {
				Name, Type, LinkTarget string
				Size                   int64
				Mode                   uint32
				ModTime                time.Time
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || r.code != 0 {
			t.Fatalf("ls -o json: exit %d, %v", r.code, err)
		}
		var names []string
		for _, it := range l.Items {
			names = append(names, it.Name)
			if it.Name == "app.conf" {
				mt, _ := strconv.ParseInt(sourceLine("etc/app.conf")[3], 10, 64)
				if it.Type != "File" || it.Size != 12 || it.Mode != 0o640 || it.ModTime.Unix() != mt {
					t.Errorf("ls -o json, app.conf: %+v; want a File of 12 bytes, mode 0640, modified at %d", it, mt)
				}
			}
			if it.Name == "link" && (it.Type != "Symlink" || it.LinkTarget != "app.conf") {
				t.Errorf("ls -o json, link: %+v", it)
			}
		}
		if l.Kind != "BackupFileList" || l.APIVersion != "backup.example.com/v1alpha1" || l.Path != "etc" ||
			strings.Join(names, ",") != "app.conf,conf.d,dangling,empty-file,link,with space & 100%?.txt" {
			t.Errorf("ls -o json: %s %s %q, items %q", l.Kind, l.APIVersion, l.Path, names)
		}
	})

	t.Run("cp-file", func(t *testing.T) {
		// Into a directory: its name there.
		r := kubectlBackup(t, dir, "cp", "files:etc/app.conf", out, "-n", ns)
		local := filepath.Join(out, "app.conf")
		if r.code != 0 || !strings.Contains(r.stdout, "copied to "+local+": 1 file (12 bytes, 12 B)") {
			t.Errorf("cp of a file into a directory: exit %d, want a line of 1 file of 12 bytes copied to %s", r.code, local)
		}
		if got, want := describeEntry(t, local, "./etc/app.conf"), strings.Join(sourceLine("etc/app.conf"), "|")+"\n"; got != want {
			t.Errorf("the copy of etc/app.conf: %s want %s", got, want)
		}
		// Under another name; a name that needs escaping in the URL.
		r = kubectlBackup(t, dir, "cp", "files:etc/with space & 100%?.txt", filepath.Join(out, "spaced"), "-n", ns)
		if got, want := describeEntry(t, filepath.Join(out, "spaced"), "./etc/with space & 100%?.txt"), strings.Join(sourceLine("etc/with space & 100%?.txt"), "|")+"\n"; r.code != 0 || got != want {
			t.Errorf("cp to another name: exit %d, %s want %s", r.code, got, want)
		}
		// An empty file.
		r = kubectlBackup(t, dir, "cp", "files:etc/empty-file", out, "-n", ns)
		if fi, err := os.Stat(filepath.Join(out, "empty-file")); r.code != 0 || err != nil || fi.Size() != 0 {
			t.Errorf("cp of an empty file: exit %d, %v", r.code, err)
		}

		// To stdout: the bytes only.
		r = kubectlBackup(t, dir, "cp", "files:big.bin", "-", "-n", ns)
		sum := sha256.Sum256([]byte(r.stdout))
		if r.code != 0 || len(r.stdout) != 9000000 || hex.EncodeToString(sum[:]) != sourceLine("big.bin")[5] {
			t.Errorf("cp big.bin -: exit %d, %d bytes, want big.bin's 9000000", r.code, len(r.stdout))
		}
		// In Range requests of 1 MB (9 of them, the last one short), into
		// a directory of its own: the same bytes, no temporary file left.
		ranged := t.TempDir()
		r = kubectlBackup(t, dir, "cp", "files:big.bin", ranged, "-n", ns, "--range-size", "1000001")
		data, err := os.ReadFile(filepath.Join(ranged, "big.bin"))
		sum = sha256.Sum256(data)
		if r.code != 0 || err != nil || hex.EncodeToString(sum[:]) != sourceLine("big.bin")[5] {
			t.Errorf("cp big.bin in ranges: exit %d, %v, %d bytes, want big.bin's 9000000\n%s", r.code, err, len(data), r.stderr)
		}
		if entries, _ := os.ReadDir(ranged); len(entries) != 1 {
			t.Errorf("%s holds %d entries after the ranged copy, want 1", ranged, len(entries))
		}

		// An existing file is refused and left alone, then replaced with --overwrite.
		if err := os.WriteFile(local, []byte("changed locally\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r = kubectlBackup(t, dir, "cp", "files:etc/app.conf", out, "-n", ns)
		if data, _ := os.ReadFile(local); r.code != 2 || !strings.Contains(r.stderr, local+" exists") || string(data) != "changed locally\n" {
			t.Errorf("cp over an existing file: exit %d, file now %q; want exit 2 saying %s exists, the file unchanged", r.code, data, local)
		}
		r = kubectlBackup(t, dir, "cp", "files:etc/app.conf", local, "-n", ns, "--overwrite")
		if got, want := describeEntry(t, local, "./etc/app.conf"), strings.Join(sourceLine("etc/app.conf"), "|")+"\n"; r.code != 0 || got != want {
			t.Errorf("cp --overwrite: exit %d, %s want %s", r.code, got, want)
		}

		// A symlink is copied as the link.
		r = kubectlBackup(t, dir, "cp", "files:etc/dangling", out, "-n", ns)
		if got, want := describeEntry(t, filepath.Join(out, "dangling"), "./etc/dangling"), strings.Join(sourceLine("etc/dangling"), "|")+"\n"; r.code != 0 || got != want {
			t.Errorf("cp of a symlink: exit %d, %s want %s", r.code, got, want)
		}
		if entries, _ := os.ReadDir(out); len(entries) != 4 {
			t.Errorf("%s holds %d entries after the copies, want 4 (no temporary files)", out, len(entries))
		}
	})

	t.Run("cp-directory", func(t *testing.T) {
		local := filepath.Join(out, "etc-copy")
		r := kubectlBackup(t, dir, "cp", "files:etc", local, "-n", ns)
		if r.code != 0 || !strings.Contains(r.stdout, "copied to "+local+": 23 files (") || !strings.Contains(r.stdout, "1 directory, 2 symlinks") {
			t.Errorf("cp of etc: exit %d, want 23 files, 1 directory and 2 symlinks copied to %s", r.code, local)
		}
		sameTree(t, "the copy of etc", sourceUnder("etc"), describeTree(t, local))

		// Again: every file exists; nothing is written without --overwrite.
		if err := os.WriteFile(filepath.Join(local, "conf.d", "f3"), []byte("changed"), 0o600); err != nil {
			t.Fatal(err)
		}
		r = kubectlBackup(t, dir, "cp", "files:etc", local, "-n", ns)
		if r.code != 2 || !strings.Contains(r.stderr, "(and 24 more)") {
			t.Errorf("cp of etc again: exit %d, want 2 naming the 23 files and 2 links that exist", r.code)
		}
		if data, _ := os.ReadFile(filepath.Join(local, "conf.d", "f3")); string(data) != "changed" {
			t.Errorf("a refused copy wrote conf.d/f3")
		}
		r = kubectlBackup(t, dir, "cp", "files:etc", local, "-n", ns, "--overwrite")
		if r.code != 0 {
			t.Errorf("cp --overwrite of etc: exit %d", r.code)
		}
		sameTree(t, "the copy of etc made again with --overwrite", sourceUnder("etc"), describeTree(t, local))

		// The whole backup.
		all := filepath.Join(out, "all")
		r = kubectlBackup(t, dir, "cp", "files:", all, "-n", ns)
		if r.code != 0 {
			t.Errorf("cp of the whole backup: exit %d", r.code)
		}
		sameTree(t, "the copy of the whole backup", source, describeTree(t, all))
	})

	t.Run("errors", func(t *testing.T) {
		files := "/apis/backup.example.com/v1alpha1/namespaces/" + ns + "/backups/"
		notFound := serverError(t, local.AdminKubeconfig, files+"files/files/etc/nope")
		for _, args := range [][]string{{"ls", "files", "etc/nope"}, {"cp", "files:etc/nope", out}} {
			r := kubectlBackup(t, dir, append(args, "-n", ns)...)
			if r.code != 2 || !strings.Contains(r.stderr, "error: "+notFound) {
				t.Errorf("%s of a missing path: exit %d, want 2 and the server's %q", args[0], r.code, notFound)
			}
		}
		if _, err := os.Lstat(filepath.Join(out, "nope")); err == nil {
			t.Errorf("cp of a missing path wrote %s", filepath.Join(out, "nope"))
		}

		notCompleted := serverError(t, local.AdminKubeconfig, files+"no-repo/files")
		if !strings.Contains(notCompleted, "Completed") {
			t.Errorf("the server's answer for a Failed Backup does not say it is not Completed: %q", notCompleted)
		}
		for _, args := range [][]string{{"ls", "no-repo"}, {"cp", "no-repo:", filepath.Join(out, "no-repo")}} {
			r := kubectlBackup(t, dir, append(args, "-n", ns)...)
			if r.code != 2 || !strings.Contains(r.stderr, "error: "+notCompleted) {
				t.Errorf("%s of a Failed Backup: exit %d, want 2 and the server's %q", args[0], r.code, notCompleted)
			}
		}

		// A user who may read Backups but not their files.
		kubeconfig := serviceAccountKubeconfig(t, ns, "reader", `[{apiGroups: [backup.example.com], resources: [backups], verbs: [get, list]}]`)
		forbidden := serverError(t, kubeconfig, files+"files/files/etc")
		if !strings.Contains(forbidden, "backups/files") {
			t.Errorf("the server's 403 does not name backups/files: %q", forbidden)
		}
		r := kubectlBackupAs(t, dir, kubeconfig, "ls", "files", "etc", "-n", ns)
		if r.code != 2 || !strings.Contains(r.stderr, "error: "+forbidden) {
			t.Errorf("ls without backups/files: exit %d, want 2 and the server's %q", r.code, forbidden)
		}
	})
}

// serviceAccountKubeconfig creates the ServiceAccount name in ns with a Role
// of rules (YAML) and returns a kubeconfig with a token of it.
func serviceAccountKubeconfig(t *testing.T, ns, name, rules string) string {
	t.Helper()
	apply(t, fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: %[2]s, namespace: %[1]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: %[2]s, namespace: %[1]s}
rules: %[3]s
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: %[2]s, namespace: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: %[2]s}
subjects: [{kind: ServiceAccount, name: %[2]s, namespace: %[1]s}]
`, ns, name, rules))
	token := strings.TrimSpace(kubectl(t, "-n", ns, "create", "token", name, "--duration=1h"))
	server := kubectl(t, "config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
	ca := kubectl(t, "config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}")
	if ca == "" {
		caFile := kubectl(t, "config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.certificate-authority}")
		if !filepath.IsAbs(caFile) {
			caFile = filepath.Join(filepath.Dir(local.AdminKubeconfig), caFile)
		}
		data, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		ca = base64.StdEncoding.EncodeToString(data)
	}
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	doc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: %s, user: {token: %s}}]
contexts: [{name: %s, context: {cluster: local, user: %s, namespace: %s}}]
current-context: %s
`, server, ca, name, token, name, name, ns, name)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
