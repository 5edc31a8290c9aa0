//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/backup-operator/hack/cluster"
)

// claims creates the claim "data" to back up and, with repo, the repository
// claim "backup-repo" beside it.
func claims(t *testing.T, ns string, repo bool) {
	t.Helper()
	doc := fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: %s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`, ns)
	if repo {
		doc += fmt.Sprintf(`---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: backup-repo, namespace: %s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 2Gi}}}
`, ns)
	}
	apply(t, doc)
}

// runPod runs a busybox script as root in a Job with the given claims
// mounted at /<claim> and returns its output; it fails the test if the script
// fails.
func runPod(t *testing.T, ns, name, script string, claims ...string) string {
	t.Helper()
	return runJob(t, ns, name, "", "", "export PATH=/bin; /bin/busybox --install -s /bin 2>/dev/null; "+script, claims...)
}

// runJob runs script in busybox in a Job, with podSecurity and
// containerSecurity (YAML flow maps, or "") as the pod's and the container's
// securityContext, and returns its output.
func runJob(t *testing.T, ns, name, podSecurity, containerSecurity, script string, claims ...string) string {
	t.Helper()
	var mounts, vols strings.Builder
	for _, c := range claims {
		fmt.Fprintf(&mounts, "\n        - {name: %s, mountPath: /%s}", c, c)
		fmt.Fprintf(&vols, "\n      - {name: %s, persistentVolumeClaim: {claimName: %s}}", c, c)
	}
	if podSecurity != "" {
		podSecurity = "\n      securityContext: " + podSecurity
	}
	if containerSecurity != "" {
		containerSecurity = "\n        securityContext: " + containerSecurity
	}
	apply(t, fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata: {name: %s, namespace: %s}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never%s
      containers:
      - name: c
        image: %s
        imagePullPolicy: Never
        command: ["/bin/busybox", "sh", "-c", %q]%s
        volumeMounts:%s
      volumes:%s
`, name, ns, podSecurity, cluster.BusyboxImage, script, containerSecurity, mounts.String(), vols.String()))
	out, err := local.Kubectl(context.Background(), "-n", ns, "wait", "--for=condition=Complete", "job/"+name, "--timeout=180s")
	logs, _ := local.Kubectl(context.Background(), "-n", ns, "logs", "job/"+name)
	if err != nil {
		t.Fatalf("job %s did not complete: %v\n%s\nlogs:\n%s", name, err, out, logs)
	}
	return string(logs)
}

// waitFor polls an object until its condition cond is True, tolerating
// transient errors (the operator may be restarting), and returns its status.
func waitFor(t *testing.T, ns, resource, name, cond string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		out, err := local.Kubectl(context.Background(), "-n", ns, "get", resource, name, "-o", "json")
		if err == nil {
			var obj map[string]any
			if json.Unmarshal(out, &obj) == nil {
				status, _ := obj["status"].(map[string]any)
				conds, _ := status["conditions"].([]any)
				for _, c := range conds {
					cm := c.(map[string]any)
					if cm["type"] == cond && cm["status"] == "True" {
						return status
					}
					if cm["type"] == "Failed" && cm["status"] == "True" && cond != "Failed" {
						t.Fatalf("%s %s/%s failed: %v", resource, ns, name, status["message"])
					}
				}
				last = fmt.Sprint(status)
			}
		} else {
			last = err.Error()
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("%s %s/%s did not reach %s: %s", resource, ns, name, cond, last)
	return nil
}

func waitBackup(t *testing.T, ns, name string) map[string]any {
	t.Helper()
	return waitFor(t, ns, "backup", name, "Completed")
}

func waitRestore(t *testing.T, ns, name string) map[string]any {
	t.Helper()
	return waitFor(t, ns, "restorejob", name, "Completed")
}

func triggerBackup(t *testing.T, ns, policy, value string) string {
	t.Helper()
	kubectl(t, "-n", ns, "annotate", "bp", policy, "backup.example.com/trigger="+value, "--overwrite")
	var name string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out := kubectl(t, "-n", ns, "get", "backups", "-l", "backup.example.com/policy="+policy, "-o",
			`jsonpath={range .items[?(@.metadata.annotations.backup\.example\.com/trigger=="`+value+`")]}{.metadata.name}{end}`)
		if name = strings.TrimSpace(out); name != "" {
			return name
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("no Backup appeared for trigger %s", value)
	return ""
}

// TestBackupRestoreFlow covers the core flow end to end: a scheduled backup,
// an incremental on-demand backup, a restore into a new claim that equals the
// source, a dry run that lists exactly what differs, and a Mirror restore
// that repairs the original claim.
func TestBackupRestoreFlow(t *testing.T) {
	ns := "e2e-flow"
	namespace(t, ns)
	claims(t, ns, true)
	runPod(t, ns, "fill", `mkdir -p /data/db/sub /data/empty && for i in $(seq 1 60); do head -c $((i*5000)) /dev/urandom > /data/db/f$i; done &&
head -c 8000000 /dev/urandom > /data/db/big && echo hello > /data/db/sub/note && chmod 600 /data/db/sub/note && ln -s sub/note /data/db/link`, "data")

	// 1. A schedule that fires within a minute.
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: nightly, namespace: %s}
spec: {schedule: "@every 1m", target: {pvcName: data}, retention: {keepLast: 10}}
`, ns))
	var first string
	deadline := time.Now().Add(150 * time.Second)
	for first == "" && time.Now().Before(deadline) {
		first = strings.TrimSpace(kubectl(t, "-n", ns, "get", "backups", "-l", "backup.example.com/policy=nightly", "-o", "jsonpath={.items[*].metadata.name}"))
		time.Sleep(2 * time.Second)
	}
	if first == "" {
		t.Fatal("the schedule created no Backup within 150s")
	}
	kubectl(t, "-n", ns, "patch", "bp", "nightly", "--type=merge", "-p", `{"spec":{"suspend":true}}`)
	st := waitBackup(t, ns, first)
	stats := st["stats"].(map[string]any)
	total := stats["bytes"].(float64)
	if stats["files"].(float64) < 60 || total < 8e6 || st["snapshotID"] == "" {
		t.Fatalf("first backup status: %v", st)
	}
	if out := kubectl(t, "get", "bp", "nightly", "-n", ns, "-o", "jsonpath={.status.lastSuccessfulBackup}"); out != first {
		t.Errorf("policy lastSuccessfulBackup = %q, want %q", out, first)
	}

	// 2. On demand after changing a few files: only the change is new.
	runPod(t, ns, "change", `head -c 3000 /dev/urandom > /data/db/f1 && echo more >> /data/db/sub/note && rm /data/db/f2`, "data")
	second := triggerBackup(t, ns, "nightly", "after-change")
	st = waitBackup(t, ns, second)
	stats = st["stats"].(map[string]any)
	if nb := stats["newBytes"].(float64); nb <= 0 || nb > total/20 {
		t.Errorf("incremental backup stored %v new bytes of %v", nb, total)
	}

	// 3. Restore into a new claim: every file's SHA-256, mode and mtime as in the source.
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: to-copy, namespace: %s}
spec: {backupName: %s, target: {pvcName: copy, newPVC: {}}}
`, ns, second))
	rs := waitRestore(t, ns, "to-copy")
	if rs["verified"] != true {
		t.Errorf("restore not verified: %v", rs)
	}
	out := runPod(t, ns, "compare-copy", "l() { (cd $1 && find . -type f -exec sha256sum {} + | sort -k2 && find . -mindepth 1 -exec stat -c '%n %a %Y %s %F' {} + | sort); }; l /data > /tmp/a; l /copy > /tmp/b; diff /tmp/a /tmp/b && echo SAME && wc -l < /tmp/a", "data", "copy")
	if !strings.Contains(out, "SAME") {
		t.Fatalf("restored copy differs from the source:\n%s", out)
	}

	// 4. Damage the original; a dry run lists exactly the damage; Mirror repairs it.
	runPod(t, ns, "damage", `rm /data/db/f10 && printf XX | dd of=/data/db/f20 bs=1 seek=7 conv=notrunc 2>/dev/null && touch -r /data/db/f21 /data/db/f20 && echo stray > /data/db/stray`, "data")
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: preview, namespace: %s}
spec: {backupName: %s, target: {pvcName: data}, mode: Mirror, dryRun: true}
`, ns, second))
	pv := waitRestore(t, ns, "preview")["preview"].(map[string]any)
	var paths []string
	for _, p := range pv["paths"].([]any) {
		paths = append(paths, p.(string))
	}
	want := []string{"+ db/f10", "~ db/f20", "- db/stray"}
	if strings.Join(paths, ",") != strings.Join(want, ",") {
		t.Errorf("dry-run preview lists %v, want exactly %v", paths, want)
	}
	if out := runPod(t, ns, "still-damaged", "test -e /data/db/stray && echo UNTOUCHED", "data"); !strings.Contains(out, "UNTOUCHED") {
		t.Error("the dry run changed the claim")
	}
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: repair, namespace: %s}
spec: {backupName: %s, target: {pvcName: data}, mode: Mirror}
`, ns, second))
	waitRestore(t, ns, "repair")
	out = runPod(t, ns, "compare-repaired", "l() { (cd $1 && find . -type f -exec sha256sum {} + | sort -k2 && find . -mindepth 1 -exec stat -c '%n %a %Y %s %F' {} + | sort); }; l /data > /tmp/a; l /copy > /tmp/b; diff /tmp/a /tmp/b && echo SAME", "data", "copy")
	if !strings.Contains(out, "SAME") {
		t.Fatalf("after the Mirror restore the claim differs from the backup:\n%s", out)
	}
}

// TestRetentionRemovesData keeps 2 of 4 backups and removes the others' data.
func TestRetentionRemovesData(t *testing.T) {
	ns := "e2e-retention"
	namespace(t, ns)
	claims(t, ns, true)
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: keep2, namespace: %[1]s}
spec: {schedule: "0 0 1 1 *", target: {pvcName: data}, retention: {keepLast: 2}}
`, ns))
	var names []string
	for i := 1; i <= 4; i++ {
		// Each backup has 3 MiB of data no other backup has.
		runPod(t, ns, fmt.Sprintf("unique-%d", i), "rm -f /data/u* && head -c 3145728 /dev/urandom > /data/u"+strconv.Itoa(i), "data")
		name := triggerBackup(t, ns, "keep2", strconv.Itoa(i))
		waitBackup(t, ns, name)
		names = append(names, name)
	}
	deadline := time.Now().Add(180 * time.Second)
	var left string
	for time.Now().Before(deadline) {
		left = strings.TrimSpace(kubectl(t, "-n", ns, "get", "backups", "-o", "jsonpath={.items[*].metadata.name}"))
		if len(strings.Fields(left)) == 2 {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if got := strings.Fields(left); len(got) != 2 || !strings.Contains(left, names[2]) || !strings.Contains(left, names[3]) {
		t.Fatalf("after retention keepLast 2: backups %v, want %s and %s", got, names[2], names[3])
	}
	// The repository holds two snapshots, verifies, and no longer holds the
	// deleted backups' unique 3 MiB each.
	out := runMover(t, ns, "list-repo", "ls", "--repo", "/repo", "--json")
	var snaps []map[string]any
	if err := json.Unmarshal([]byte(lastJSONLine(out)), &snaps); err != nil || len(snaps) != 2 {
		t.Fatalf("repository snapshots after retention: %v\n%s", err, out)
	}
	runMover(t, ns, "verify-repo", "verify", "--repo", "/repo")
	sizeOut := runPod(t, ns, "repo-size", "du -sk /backup-repo/packs | cut -f1", "backup-repo")
	kb, _ := strconv.Atoi(strings.TrimSpace(sizeOut))
	// Two backups' unique data (2 x 3 MiB) plus small shared data; four would be over 12 MiB.
	if kb == 0 || kb > 8*1024 {
		t.Errorf("repository packs hold %d KiB after retention; the deleted backups' unique data should be gone", kb)
	}
	// What the alerting rules (artifacts/monitoring) read of this policy: its
	// two prunes, its yearly interval, its newest success and its creation.
	metrics := operatorMetrics(t)
	for _, want := range []string{
		`backup_operator_prunes_total{namespace="` + ns + `",policy="keep2",result="completed"} 2`,
		`backup_operator_policy_schedule_interval_seconds{namespace="` + ns + `",policy="keep2"} 3.1536e+07`,
		`backup_operator_last_successful_backup_timestamp_seconds{namespace="` + ns + `",policy="keep2"} `,
		`backup_operator_policy_created_timestamp_seconds{namespace="` + ns + `",policy="keep2"} `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// runMover runs backup-mover from the operator image (which has no shell)
// with the namespace's repository claim at /repo, and returns its output.
func runMover(t *testing.T, ns, name string, args ...string) string {
	t.Helper()
	return runMoverOn(t, ns, name, "backup-repo", args...)
}

// runMoverOn is runMover with the repository claim named.
func runMoverOn(t *testing.T, ns, name, claim string, args ...string) string {
	t.Helper()
	quoted, _ := json.Marshal(append([]string{"/backup-mover"}, args...))
	apply(t, fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata: {name: %s, namespace: %s}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: m
        image: %s
        imagePullPolicy: Never
        command: %s
        volumeMounts: [{name: repo, mountPath: /repo}]
      volumes: [{name: repo, persistentVolumeClaim: {claimName: %s}}]
`, name, ns, cluster.OperatorImage, quoted, claim))
	var state string
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		state = kubectl(t, "-n", ns, "get", "job", name, "-o", "jsonpath={.status.succeeded}/{.status.failed}")
		if state != "/" {
			break
		}
	}
	logs, _ := local.Kubectl(context.Background(), "-n", ns, "logs", "job/"+name)
	if !strings.HasPrefix(state, "1/") {
		t.Fatalf("backup-mover %v did not succeed (Job succeeded/failed: %s):\n%s", args, state, logs)
	}
	return string(logs)
}

func lastJSONLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestOperatorRestartMidBackup kills the operator pod while a backup runs:
// the Backup still completes exactly once, with one Job.
func TestOperatorRestartMidBackup(t *testing.T) {
	ns := "e2e-restart"
	namespace(t, ns)
	claims(t, ns, true)
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: p, namespace: %[1]s}
spec: {schedule: "0 0 1 1 *", target: {pvcName: data}, retention: {keepLast: 5}}
`, ns))
	runPod(t, ns, "fill", "for i in $(seq 1 40); do head -c 4000000 /dev/urandom > /data/f$i; done", "data")
	name := triggerBackup(t, ns, "p", "once")
	restartOperator(t, false)
	waitBackup(t, ns, name)
	if n := len(strings.Fields(kubectl(t, "-n", ns, "get", "backups", "-o", "jsonpath={.items[*].metadata.name}"))); n != 1 {
		t.Errorf("%d Backups after the restart, want 1", n)
	}
	if n := len(strings.Fields(kubectl(t, "-n", ns, "get", "jobs", "-l", "backup.example.com/kind=backup", "-o", "jsonpath={.items[*].metadata.name}"))); n != 1 {
		t.Errorf("%d backup Jobs after the restart, want 1", n)
	}
}

// restartOperator deletes the operator pod, with wipe also its storage (the
// claim of its embedded etcd), and waits until the group is served again.
func restartOperator(t *testing.T, wipe bool) {
	t.Helper()
	oldUID := kubectl(t, "-n", "backup-system", "get", "pod", "backup-apiserver-0", "-o", "jsonpath={.metadata.uid}")
	if wipe {
		// Removed once the pod that uses it is gone.
		kubectl(t, "-n", "backup-system", "delete", "pvc", "data-backup-apiserver-0", "--wait=false")
	}
	kubectl(t, "-n", "backup-system", "delete", "pod", "backup-apiserver-0", "--wait=false")
	// Wait for the replacement pod, then for the group to be served again.
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		uid, err := local.Kubectl(context.Background(), "-n", "backup-system", "get", "pod", "backup-apiserver-0", "-o", "jsonpath={.metadata.uid}")
		if err == nil && string(uid) != oldUID && string(uid) != "" {
			break
		}
		time.Sleep(time.Second)
	}
	kubectl(t, "-n", "backup-system", "wait", "--for=condition=Ready", "pod/backup-apiserver-0", "--timeout=180s")
	if err := local.WaitAPIServiceAvailable(context.Background(), 3*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// TestFailedBackupIsReported: a Backup whose repository claim is missing ends
// Failed with an actionable message, an event and a metric.
func TestFailedBackupIsReported(t *testing.T) {
	ns := "e2e-failure"
	namespace(t, ns)
	claims(t, ns, false)
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: no-repo, namespace: %[1]s}
spec: {target: {pvcName: data}, storage: {pvcName: missing-repo}}
`, ns))
	waitFor(t, ns, "backup", "no-repo", "Failed")
	msg := kubectl(t, "-n", ns, "get", "backup", "no-repo", "-o", "jsonpath={.status.phase}: {.status.message}")
	if !strings.HasPrefix(msg, "Failed: ") || !strings.Contains(msg, "missing-repo") || !strings.Contains(msg, "create it") {
		t.Errorf("failure message: %q", msg)
	}
	events := kubectl(t, "-n", ns, "get", "events", "--field-selector", "involvedObject.name=no-repo", "-o", "jsonpath={.items[*].reason}")
	if !strings.Contains(events, "RepositoryNotFound") {
		t.Errorf("no event for the failure: %q", events)
	}
	metrics := operatorMetrics(t)
	// A Backup without a policy counts under policy "".
	if want := `backup_operator_backups_total{namespace="` + ns + `",policy="",result="failed"}`; !strings.Contains(metrics, want) {
		t.Errorf("metric %s missing", want)
	}
}

// operatorMetrics reads /metrics from the operator (host network, port 8443),
// authenticating with the admin client certificate.
func operatorMetrics(t *testing.T) string {
	t.Helper()
	if local.Dir == "" {
		t.Skip("no certificates of a reused cluster")
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(local.Dir, "pki", "admin.crt"), filepath.Join(local.Dir, "pki", "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	// The serving certificate is the operator's self-signed one; the test
	// reads metrics on loopback and checks the content, not the identity.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}}}
	resp, err := client.Get("https://127.0.0.1:8443/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s\n%s", resp.Status, body)
	}
	return string(body)
}

// TestProgressIsReported: while the mover runs, status.progress of the
// Backup, then of a RestoreJob, follows the mover's progress lines and
// `kubectl get` shows a percentage; on completion, stats replace progress.
// A 32 GiB sparse file keeps the mover hashing zeros for several seconds
// without using the disk (restore writes the zeros back as holes).
func TestProgressIsReported(t *testing.T) {
	ns := "e2e-progress"
	namespace(t, ns)
	claims(t, ns, true)
	const size = 32 << 30
	runPod(t, ns, "sparse", fmt.Sprintf("truncate -s %d /data/big", size), "data")
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: big, namespace: %s}
spec: {target: {pvcName: data}}
`, ns))
	// NAME POLICY PVC PHASE SIZE DURATION AGE
	waitProgress(t, ns, "backup", "big", size, 3, 4)
	status := waitBackup(t, ns, "big")
	if status["progress"] != nil {
		t.Errorf("backup progress kept after completion: %v", status["progress"])
	}
	if stats, _ := status["stats"].(map[string]any); stats == nil || stats["bytes"] != float64(size) {
		t.Errorf("backup stats after completion: %v, want bytes %d", status["stats"], size)
	}

	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: big, namespace: %s}
spec: {backupName: big, target: {pvcName: copy, newPVC: {}}}
`, ns))
	// NAME BACKUP TARGET MODE PHASE WRITTEN AGE
	waitProgress(t, ns, "restorejob", "big", size, 4, 5)
	if status := waitRestore(t, ns, "big"); status["progress"] != nil {
		t.Errorf("restore progress kept after completion: %v", status["progress"])
	}
}

// waitProgress polls an object until it is Running with 0 < bytesDone <
// bytesTotal in status.progress, bytesTotal being total, and checks that its
// `kubectl get` row shows a percentage in cell col while cell phaseCol says
// Running.
func waitProgress(t *testing.T, ns, resource, name string, total int64, phaseCol, col int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		f := strings.Fields(kubectl(t, "-n", ns, "get", resource, name, "-o", "jsonpath={.status.phase} {.status.progress.bytesDone} {.status.progress.bytesTotal}"))
		if len(f) > 0 && f[0] == "Completed" {
			t.Fatalf("%s %s completed before any progress was reported", resource, name)
		}
		if len(f) == 3 && f[0] == "Running" {
			done, _ := strconv.ParseInt(f[1], 10, 64)
			got, _ := strconv.ParseInt(f[2], 10, 64)
			if got != total {
				t.Fatalf("%s %s: progress.bytesTotal = %d, want %d", resource, name, got, total)
			}
			if done > 0 && done < total {
				row := strings.Fields(kubectl(t, "-n", ns, "get", resource, name, "--no-headers"))
				if len(row) > col && row[phaseCol] == "Running" && !strings.HasSuffix(row[col], "%") {
					t.Errorf("kubectl get %s shows %q while running, want a percentage", resource, row[col])
				}
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s %s reported no progress within 2 minutes", resource, name)
}

// TestImportRecreatesLostBackups is the way back after the operator's own
// storage is lost: its etcd claim is deleted, so every BackupPolicy and Backup
// is gone while the snapshots stay in the repositories. Re-applying the
// policy with the import annotation re-creates its Backups, Completed, and a
// restore from one brings the data back. It wipes the operator's storage, so
// it runs last.
func TestImportRecreatesLostBackups(t *testing.T) {
	ns := "e2e-import"
	namespace(t, ns)
	claims(t, ns, true)
	policy := fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: p, namespace: %s}
spec: {schedule: "0 0 1 1 *", target: {pvcName: data}, retention: {keepLast: 5}}
`, ns)
	apply(t, policy)
	runPod(t, ns, "fill", "echo hello > /data/a && mkdir /data/d && head -c 100000 /dev/urandom > /data/d/b", "data")
	name := triggerBackup(t, ns, "p", "one")
	snapshot := waitBackup(t, ns, name)["snapshotID"]
	// Two snapshots the import must not turn into Backups: one whose tag is
	// not a valid object name, one of a claim outside the policy's namespace.
	for i, tags := range [][2]string{{ns + "/Not_A_Name", ns + "/data"}, {ns + "/elsewhere", "other/data"}} {
		runMover(t, ns, fmt.Sprintf("forge-%d", i), "backup", "--repo", "/repo", "--source", "/repo/snapshots",
			"--tag", "backup="+tags[0], "--tag", "policy=p", "--tag", "pvc="+tags[1])
	}

	restartOperator(t, true)
	if left := kubectl(t, "-n", ns, "get", "backuppolicies,backups", "-o", "name"); strings.TrimSpace(left) != "" {
		t.Fatalf("objects survived the loss of the operator's storage: %s", left)
	}

	apply(t, policy)
	kubectl(t, "-n", ns, "annotate", "bp", "p", "backup.example.com/import=after-loss")
	status := waitBackup(t, ns, name)
	if status["snapshotID"] != snapshot {
		t.Errorf("re-created Backup has snapshot %v, want %v", status["snapshotID"], snapshot)
	}
	if stats, _ := status["stats"].(map[string]any); stats == nil || stats["files"] != float64(2) {
		t.Errorf("re-created Backup's stats: %v, want 2 files", status["stats"])
	}
	deadline := time.Now().Add(time.Minute)
	var last string
	for time.Now().Before(deadline) {
		if last = kubectl(t, "-n", ns, "get", "bp", "p", "-o", "jsonpath={.status.lastImport.value} {.status.lastImport.imported}"); last == "after-loss 1" {
			break
		}
		time.Sleep(time.Second)
	}
	if last != "after-loss 1" {
		t.Errorf("policy status.lastImport: %q, want value after-loss, imported 1", last)
	}
	if msg := kubectl(t, "-n", ns, "get", "bp", "p", "-o", "jsonpath={.status.lastImport.message}"); !strings.Contains(msg, "1 were refused") {
		t.Errorf("import message does not report the refused snapshot: %q", msg)
	}
	if all := strings.TrimSpace(kubectl(t, "-n", ns, "get", "backups", "-o", "name")); all != "backup.backup.example.com/"+name {
		t.Errorf("backups after the import: %q, want only %s", all, name)
	}

	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: from-import, namespace: %s}
spec: {backupName: %s, target: {pvcName: copy, newPVC: {}}}
`, ns, name))
	if rs := waitRestore(t, ns, "from-import"); rs["verified"] != true {
		t.Errorf("restore from the re-created Backup not verified: %v", rs)
	}
	out := runPod(t, ns, "compare", "diff -r /data /copy && echo SAME", "data", "copy")
	if !strings.Contains(out, "SAME") {
		t.Errorf("restored data differs:\n%s", out)
	}
}
