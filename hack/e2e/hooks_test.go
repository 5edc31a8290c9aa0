//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"example.com/backup-operator/hack/cluster"
)

// hookBackup creates a Backup of claim data with the given hooks (a YAML
// flow map) and repository claim repo.
func hookBackup(t *testing.T, ns, name, repo, hooks string) {
	t.Helper()
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: %s, namespace: %s}
spec: {target: {pvcName: data}, storage: {pvcName: %s}, hooks: %s}
`, name, ns, repo, hooks))
}

// hookStatuses reads status.hooks of a Backup or RestoreJob.
func hookStatuses(t *testing.T, ns, resource, name string) []map[string]any {
	t.Helper()
	var out []map[string]any
	raw := kubectl(t, "-n", ns, "get", resource, name, "-o", "jsonpath={.status.hooks}")
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("status.hooks of %s %s: %v: %q", resource, name, err, raw)
	}
	return out
}

// inApp runs a shell command in the app container of the workload pod.
func inApp(t *testing.T, ns, script string) string {
	t.Helper()
	return kubectlStdout(t, "-n", ns, "exec", "app-0", "-c", "app", "--", "sh", "-c", script)
}

// TestHooks runs pre and post hooks through the real API server's
// pods/exec against a running workload: the order (pre, copy, post, with
// what the pre action wrote in the snapshot and what the post action wrote
// not), a failing pre action (nothing copied, post still runs, the hook's
// stderr in the message), a timeout, post after a failed copy, a container
// name that matches nothing, an operator restart during a pre command (not
// run again, post once), a bare-number timeout (422) and a requester without
// pods/exec (403).
func TestHooks(t *testing.T) {
	ns := "e2e-hooks"
	namespace(t, ns)
	claims(t, ns, true)
	apply(t, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: broken-repo, namespace: %[1]s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 100Mi}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: app, namespace: %[1]s}
spec:
  serviceName: app
  selector: {matchLabels: {app: hooks}}
  template:
    metadata: {labels: {app: hooks}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: sidecar
        image: %[2]s
        imagePullPolicy: Never
        command: [/bin/busybox, sh, -c, "/bin/busybox --install -s /bin && exec sleep 100000"]
      - name: app
        image: %[2]s
        imagePullPolicy: Never
        command: [/bin/busybox, sh, -c, "/bin/busybox --install -s /bin && exec sleep 100000"]
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
`, ns, cluster.BusyboxImage))
	kubectl(t, "-n", ns, "rollout", "status", "statefulset/app", "--timeout=180s")
	// The container links busybox's applets when it starts; wait for /bin/sh.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if out, err := local.Kubectl(context.Background(), "-n", ns, "exec", "app-0", "-c", "app", "--", "/bin/busybox", "test", "-x", "/bin/sh"); err == nil {
			break
		} else if time.Now().Add(time.Second).After(deadline) {
			t.Fatalf("/bin/sh did not appear in app-0: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
	}
	inApp(t, ns, "mkdir -p /data/db && head -c 200000 /dev/urandom > /data/db/table && rm -f /data/order")

	// 1. Order: pre writes into the claim before the copy, post after it.
	hookBackup(t, ns, "ordered", "backup-repo", `{pre: [{name: mark, exec: {command: [sh, -c, "echo pre >> /data/order && date +%s%N > /data/pre-ran"]}}],
  post: [{name: resume, exec: {command: [sh, -c, "echo post >> /data/order"]}, timeout: 30s}]}`)
	waitBackup(t, ns, "ordered")
	hooks := hookStatuses(t, ns, "backup", "ordered")
	if len(hooks) != 2 || hooks[0]["stage"] != "Pre" || hooks[0]["name"] != "mark" || hooks[1]["stage"] != "Post" || hooks[1]["name"] != "resume" {
		t.Fatalf("status.hooks: %v", hooks)
	}
	for _, h := range hooks {
		if h["phase"] != "Succeeded" || h["pod"] != "app-0" || h["container"] != "app" || h["exitCode"] != float64(0) {
			t.Errorf("hook entry %v: want Succeeded in app-0/app with exit code 0", h)
		}
	}
	if got := inApp(t, ns, "cat /data/order"); got != "pre\npost\n" {
		t.Errorf("/data/order = %q, want pre then post", got)
	}
	// The snapshot holds what pre wrote and not what post wrote: a dry run
	// against the claim sees only /data/order differ.
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: ordered-preview, namespace: %s}
spec: {backupName: ordered, target: {pvcName: data}, dryRun: true}
`, ns))
	pv := waitRestore(t, ns, "ordered-preview")["preview"].(map[string]any)
	if paths := fmt.Sprint(pv["paths"]); paths != "[~ order]" {
		t.Errorf("dry run against the claim lists %s, want only [~ order] (pre-ran and the data in the snapshot, post's line not)", paths)
	}
	if ev := kubectl(t, "-n", ns, "get", "events", "--field-selector", "involvedObject.name=ordered,reason=HookSucceeded", "-o", "name"); strings.Count(ev, "\n") != 2 {
		t.Errorf("want 2 HookSucceeded events, got:\n%s", ev)
	}

	// 2. A pre action that fails: no Job, post still runs, the message says
	// which hook, its exit code and its stderr.
	hookBackup(t, ns, "pre-fails", "backup-repo", `{pre: [{name: lock, exec: {command: [sh, -c, "echo cannot lock the tables >&2; exit 3"]}}],
  post: [{name: cleanup, exec: {command: [sh, -c, "echo cleaned > /data/cleanup"]}}]}`)
	waitFor(t, ns, "backup", "pre-fails", "Failed")
	msg := kubectl(t, "-n", ns, "get", "backup", "pre-fails", "-o", "jsonpath={.status.message}")
	for _, want := range []string{"pre hook lock", "app-0", "exited with 3", "cannot lock the tables", "nothing was copied"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if job := kubectl(t, "-n", ns, "get", "backup", "pre-fails", "-o", "jsonpath={.status.jobName}"); job != "" {
		t.Errorf("a failed pre hook still started the mover Job %s", job)
	}
	if jobs := kubectl(t, "-n", ns, "get", "jobs", "-l", "backup.example.com/owner-uid="+kubectl(t, "-n", ns, "get", "backup", "pre-fails", "-o", "jsonpath={.metadata.uid}"), "-o", "name"); jobs != "" {
		t.Errorf("Jobs of the failed Backup: %s", jobs)
	}
	if got := inApp(t, ns, "cat /data/cleanup"); got != "cleaned\n" {
		t.Errorf("post hook after a failed pre did not run: /data/cleanup = %q", got)
	}
	if reason := kubectl(t, "-n", ns, "get", "backup", "pre-fails", "-o", `jsonpath={.status.conditions[?(@.type=="Failed")].reason}`); reason != "PreHookFailed" {
		t.Errorf("Failed reason %q, want PreHookFailed", reason)
	}

	// 3. A timeout: abandoned, reported as TimedOut, the Backup fails.
	start := time.Now()
	hookBackup(t, ns, "slow", "backup-repo", `{pre: [{name: slow, exec: {command: [sleep, "60"]}, timeout: 2s}]}`)
	waitFor(t, ns, "backup", "slow", "Failed")
	if took := time.Since(start); took > 45*time.Second {
		t.Errorf("a 2s timeout took %s to fail the Backup", took)
	}
	if h := hookStatuses(t, ns, "backup", "slow"); len(h) != 1 || h[0]["phase"] != "TimedOut" || !strings.Contains(fmt.Sprint(h[0]["message"]), "2s") {
		t.Errorf("status.hooks of the slow Backup: %v", h)
	}

	// 4. Post runs after a copy that failed (a repository that cannot be opened).
	runPod(t, ns, "break-repo", "echo not-a-repository > /broken-repo/config", "broken-repo")
	hookBackup(t, ns, "copy-fails", "broken-repo", `{pre: [{name: before, exec: {command: [sh, -c, "rm -f /data/after-failed-copy"]}}],
  post: [{name: after, exec: {command: [sh, -c, "echo ran > /data/after-failed-copy"]}}]}`)
	waitFor(t, ns, "backup", "copy-fails", "Failed")
	if got := inApp(t, ns, "cat /data/after-failed-copy"); got != "ran\n" {
		t.Errorf("post hook after a failed copy did not run: %q", got)
	}
	if reason := kubectl(t, "-n", ns, "get", "backup", "copy-fails", "-o", `jsonpath={.status.conditions[?(@.type=="Failed")].reason}`); reason != "MoverFailed" {
		t.Errorf("Failed reason %q, want MoverFailed (kept while post ran)", reason)
	}

	// 5. A container name that matches nothing fails; nothing else is picked.
	hookBackup(t, ns, "no-container", "backup-repo", `{pre: [{name: dump, exec: {command: ["true"], container: postgres}}]}`)
	waitFor(t, ns, "backup", "no-container", "Failed")
	msg = kubectl(t, "-n", ns, "get", "backup", "no-container", "-o", "jsonpath={.status.message}")
	if !strings.Contains(msg, `no container "postgres"`) || !strings.Contains(msg, "sidecar, app") {
		t.Errorf("message %q does not name the missing container and the pod's containers", msg)
	}

	// 6. The operator restarts while a pre command runs: the command is not
	// run again (its outcome is Unknown, which fails the Backup), and post
	// runs exactly once.
	inApp(t, ns, "rm -f /data/pre-runs /data/post-runs")
	hookBackup(t, ns, "restarted", "backup-repo", `{pre: [{name: hold, exec: {command: [sh, -c, "echo run >> /data/pre-runs; sleep 15"]}, timeout: 2m}],
  post: [{name: release, exec: {command: [sh, -c, "echo run >> /data/post-runs"]}}]}`)
	deadline = time.Now().Add(time.Minute)
	for kubectl(t, "-n", ns, "get", "backup", "restarted", "-o", "jsonpath={.status.hooks[0].phase}") != "Running" {
		if time.Now().After(deadline) {
			t.Fatal("the pre hook of Backup restarted never ran")
		}
		time.Sleep(500 * time.Millisecond)
	}
	restartOperator(t, false)
	waitFor(t, ns, "backup", "restarted", "Failed")
	time.Sleep(3 * time.Second) // a second post run would show now
	if got := inApp(t, ns, "cat /data/pre-runs /data/post-runs"); got != "run\nrun\n" {
		t.Errorf("pre-runs and post-runs hold %q, want one run each", got)
	}
	if h := hookStatuses(t, ns, "backup", "restarted"); len(h) != 2 || h[0]["phase"] != "Unknown" || h[1]["phase"] != "Succeeded" {
		t.Errorf("status.hooks after the restart: %v, want hold Unknown and release Succeeded", h)
	}

	// 7. A bare number as timeout: 422 with the field path; nothing stored.
	out, err := cluster.KubectlStdin(context.Background(), local.AdminKubeconfig, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: bare-timeout, namespace: %s}
spec: {target: {pvcName: data}, hooks: {pre: [{name: x, exec: {command: ["true"]}, timeout: 60}]}}
`, ns), "create", "-f", "-")
	if err == nil || !strings.Contains(string(out), "spec.hooks.pre[0].timeout") || !strings.Contains(string(out), `"60s"`) {
		t.Errorf("a bare-number timeout was not refused with its field path: %v\n%s", err, out)
	}

	// 8. A requester without pods/exec may not set hooks (403), and may
	// create the same Backup without them.
	kubectl(t, "-n", ns, "create", "role", "backup-creator", "--verb=get,list,create", "--resource=backups.backup.example.com,backuppolicies.backup.example.com")
	kubectl(t, "-n", ns, "create", "rolebinding", "backup-creator", "--role=backup-creator", "--user=bob")
	withHooks := fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: by-bob, namespace: %s}
spec: {target: {pvcName: data}, hooks: {pre: [{name: x, exec: {command: ["true"]}}]}}
`, ns)
	out2, err := kubectlAs(t, "bob", withHooks, "create", "-f", "-")
	if err == nil || !strings.Contains(out2, "Forbidden") || !strings.Contains(out2, "pods/exec") {
		t.Errorf("bob, who may not exec into pods, created a Backup with hooks: %v\n%s", err, out2)
	}
	if _, err := local.Kubectl(context.Background(), "-n", ns, "get", "backup", "by-bob"); err == nil {
		t.Error("the refused Backup was stored")
	}
	policy := strings.NewReplacer("kind: Backup", "kind: BackupPolicy", "by-bob", "bob-policy", "spec: {", `spec: {schedule: "0 3 * * *", retention: {keepLast: 1}, `).Replace(withHooks)
	if out, err := kubectlAs(t, "bob", policy, "create", "-f", "-"); err == nil || !strings.Contains(out, "pods/exec") {
		t.Errorf("bob created a BackupPolicy with hooks: %v\n%s", err, out)
	}
	if out, err := kubectlAs(t, "bob", strings.Replace(withHooks, `, hooks: {pre: [{name: x, exec: {command: ["true"]}}]}`, "", 1), "create", "-f", "-"); err != nil {
		t.Errorf("bob could not create the Backup without hooks: %v\n%s", err, out)
	}

	if m := operatorMetrics(t); !strings.Contains(m, "backup_operator_hook_failures_total") || !strings.Contains(m, "backup_operator_hook_duration_seconds") {
		t.Error("/metrics lacks the hook metrics")
	}
}
