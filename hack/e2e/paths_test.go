//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"example.com/backup-operator/hack/cluster"
)

// listing prints, sorted, one line per entry of the claim at /data: its
// path, mode, size, modification time and type, and each file's SHA-256;
// find's arguments select what is listed (". -path ./a -prune -o" leaves a out).
const listing = `l() { (cd /data && find "$@" -exec stat -c '%n %a %s %Y %F' {} + | sort && find "$@" -type f -exec sha256sum {} + | sort -k2); }; `

func lines(s string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l != "" {
			out[l] = true
		}
	}
	return out
}

// TestRestorePaths restores one directory of a Backup into the claim it came
// from, with Merge and with Mirror: the directory is as in the backup
// (Merge keeps its extra files, Mirror removes them), and nothing outside it
// changes: not the other directory's changed and extra files, not the
// top-level files, not the top directory. A dry run lists only changes
// beneath the directory; a path the backup lacks fails with nothing written;
// a path that is absolute or climbs out is refused (422) naming spec.paths[0].
func TestRestorePaths(t *testing.T) {
	ns := "e2e-paths"
	namespace(t, ns)
	claims(t, ns, true)
	runPod(t, ns, "fill", `mkdir -p /data/a/sub /data/b/sub && for d in a b; do for i in 1 2 3; do head -c $((i*7000)) /dev/urandom > /data/$d/f$i; done;
head -c 300000 /dev/urandom > /data/$d/sub/deep; done && echo top > /data/top && chmod 640 /data/a/f2`, "data")
	wantA := runPod(t, ns, "list-a", listing+"l a", "data")
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: two-dirs, namespace: %s}
spec: {target: {pvcName: data}}
`, ns))
	waitBackup(t, ns, "two-dirs")

	// Change files in a/ and b/ and at the top, add files in all three.
	runPod(t, ns, "change", `echo changed > /data/a/f1 && head -c 5000 /dev/urandom > /data/b/f1 && echo changed > /data/top &&
echo extra > /data/a/extra && echo extra > /data/a/sub/extra && echo extra > /data/b/extra && echo extra > /data/extra-top && chmod 700 /data/b`, "data")
	outside := runPod(t, ns, "list-outside", listing+"l . -path ./a -prune -o -print", "data")
	if !strings.Contains(outside, "./b/extra") || !strings.Contains(outside, "./extra-top") || strings.Contains(outside, "./a/") {
		t.Fatalf("listing of what is outside a:\n%s", outside)
	}
	restoreJob := func(name, spec string) {
		t.Helper()
		apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: %s, namespace: %s}
spec: {backupName: two-dirs, target: {pvcName: data}, %s}
`, name, ns, spec))
	}
	sameOutside := func(step string) {
		t.Helper()
		if got := runPod(t, ns, "outside-after-"+step, listing+"l . -path ./a -prune -o -print", "data"); got != outside {
			t.Errorf("after %s, what is outside a changed:\nbefore:\n%s\nafter:\n%s", step, outside, got)
		}
	}

	// 1. Dry run, Mirror: the preview names only paths beneath a/.
	restoreJob("preview", "paths: [a], mode: Mirror, dryRun: true")
	st := waitRestore(t, ns, "preview")
	var preview []string
	for _, p := range st["preview"].(map[string]any)["paths"].([]any) {
		preview = append(preview, p.(string))
	}
	if want := []string{"- a/extra", "~ a/f1", "- a/sub/extra"}; strings.Join(preview, ",") != strings.Join(want, ",") {
		t.Errorf("dry-run preview of a: %q, want exactly %q", preview, want)
	}
	if msg := st["message"].(string); !strings.Contains(msg, `only spec.paths: "a"`) || !strings.Contains(msg, "delete 2 files") {
		t.Errorf("dry-run message %q", msg)
	}
	sameOutside("dry-run")

	// 2. Merge: a/ is as in the backup, plus its extra files; the rest is untouched.
	restoreJob("merge-a", "paths: [a], mode: Merge")
	if st := waitRestore(t, ns, "merge-a"); st["verified"] != true {
		t.Errorf("merge of a not verified: %v", st)
	}
	sameOutside("merge")
	gotA := lines(runPod(t, ns, "a-after-merge", listing+"l a", "data"))
	for l := range lines(wantA) {
		if !gotA[l] {
			t.Errorf("after the Merge of a, a lacks %q", l)
		}
	}
	for _, extra := range []string{"a/extra ", "a/sub/extra "} {
		found := false
		for l := range gotA {
			found = found || strings.HasPrefix(l, extra)
		}
		if !found {
			t.Errorf("Merge removed %s", extra)
		}
	}

	// 3. Mirror: a/ is exactly as in the backup; b/'s extra file and the
	// top-level one stay.
	restoreJob("mirror-a", "paths: [a], mode: Mirror")
	st = waitRestore(t, ns, "mirror-a")
	if pv := st["preview"].(map[string]any); pv["deletes"] != float64(2) {
		t.Errorf("Mirror of a: preview %v, want 2 deletes", pv)
	}
	sameOutside("mirror")
	if got := runPod(t, ns, "a-after-mirror", listing+"l a", "data"); got != wantA {
		t.Errorf("after the Mirror of a, a differs from the backup:\nwant:\n%s\ngot:\n%s", wantA, got)
	}

	wide := strings.Split(strings.TrimSpace(kubectl(t, "-n", ns, "get", "restorejob", "mirror-a", "-o", "wide")), "\n")
	if len(wide) != 2 || !strings.HasSuffix(wide[0], " PATHS") || !strings.HasSuffix(wide[1], " a") {
		t.Errorf("kubectl get restorejob -o wide:\n%s\nwant a last column PATHS with a", strings.Join(wide, "\n"))
	}

	// 4. A path the backup does not hold: Failed, naming it; nothing written.
	restoreJob("missing", "paths: [a, nope], mode: Mirror")
	st = waitFor(t, ns, "restorejob", "missing", "Failed")
	if msg := st["message"].(string); !strings.Contains(msg, `holds no "nope"`) || !strings.Contains(msg, "nothing was written") {
		t.Errorf("message of a restore of a missing path: %q", msg)
	}
	sameOutside("missing")

	// 5. kubectl explain documents the field.
	if out := strings.Join(strings.Fields(kubectl(t, "explain", "restorejob.spec.paths")), " "); !strings.Contains(out, "Mode Mirror deletes only beneath these paths") || !strings.Contains(out, "Empty: everything") {
		t.Errorf("kubectl explain restorejob.spec.paths:\n%s", out)
	}

	// 6. Refused when created: 422 with the field path and what to write.
	for _, c := range []struct{ path, says string }{
		{"/abs", `write "abs"`},
		{"a/../b", `write "b"`},
	} {
		out, err := cluster.KubectlStdin(context.Background(), local.AdminKubeconfig, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: refused, namespace: %s}
spec: {backupName: two-dirs, target: {pvcName: data}, mode: Merge, paths: [%q]}
`, ns, c.path), "create", "-v=6", "-f", "-")
		if err == nil || !strings.Contains(string(out), "422") || !strings.Contains(string(out), "spec.paths[0]") || !strings.Contains(string(out), c.says) {
			t.Errorf("paths [%q] was not refused with 422 on spec.paths[0] saying %s: %v\n%s", c.path, c.says, err, out)
		}
		if _, err := local.Kubectl(context.Background(), "-n", ns, "get", "restorejob", "refused"); err == nil {
			t.Errorf("the RestoreJob with paths [%q] was stored", c.path)
		}
	}
}
