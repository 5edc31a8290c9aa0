//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"example.com/backup-operator/hack/cluster"
)

// s3Storage is a spec.storage (YAML flow map) of the cluster's MinIO.
func s3Storage(bucket, prefix, credentials string, extra string) string {
	return fmt.Sprintf(`{s3: {endpoint: %q, bucket: %s, prefix: %s, credentialsSecretRef: {name: %s}}%s}`,
		local.ObjectStore.InClusterEndpoint, bucket, prefix, credentials, extra)
}

// bucketObjects lists the objects under prefix, from this machine.
func bucketObjects(t *testing.T, bucket, prefix string) []string {
	t.Helper()
	c, err := local.ObjectStore.Client()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for oi := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		keys = append(keys, oi.Key)
	}
	return keys
}

func countPrefix(keys []string, part string) int {
	n := 0
	for _, k := range keys {
		if strings.Contains(k, part) {
			n++
		}
	}
	return n
}

func warningEvents(t *testing.T, ns, name string) string {
	t.Helper()
	return kubectl(t, "-n", ns, "get", "events", "--field-selector", "involvedObject.name="+name+",type=Warning", "-o", "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}")
}

// TestS3 runs the operator against the cluster's MinIO, reached by its
// Service name through CoreDNS and kube-proxy: a scheduled and an on-demand
// (incremental) backup into an encrypted repository, a restore into a new
// claim, retention removing objects from the bucket, import after the
// operator's storage is lost, immutable backups, the failures a user meets
// (wrong credentials, unknown bucket, MinIO stopped mid-backup), and a
// Secret the requester cannot read.
func TestS3(t *testing.T) {
	ns := "e2e-s3"
	store := local.ObjectStore
	prefix := "e2e/" + ns
	namespace(t, ns)
	claims(t, ns, false)
	apply(t, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: s3-credentials, namespace: %[1]s}
stringData: {AWS_ACCESS_KEY_ID: %[2]q, AWS_SECRET_ACCESS_KEY: %[3]q}
---
apiVersion: v1
kind: Secret
metadata: {name: wrong-credentials, namespace: %[1]s}
stringData: {AWS_ACCESS_KEY_ID: %[2]q, AWS_SECRET_ACCESS_KEY: not-the-secret}
---
apiVersion: v1
kind: Secret
metadata: {name: repo-password, namespace: %[1]s}
stringData: {password: "e2e repository password"}
`, ns, store.AccessKey, store.SecretKey))
	runPod(t, ns, "fill", `mkdir -p /data/db/sub && for i in $(seq 1 40); do head -c $((i*7000)) /dev/urandom > /data/db/f$i; done &&
head -c 6000000 /dev/urandom > /data/db/big && echo hello > /data/db/sub/note && ln -s sub/note /data/db/link`, "data")

	storage := s3Storage(store.Bucket, prefix, "s3-credentials", ", encryption: {secretRef: {name: repo-password}}")
	policy := fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: offsite, namespace: %s}
spec: {schedule: "@every 1m", target: {pvcName: data}, retention: {keepLast: 2}, storage: %s}
`, ns, storage)
	apply(t, policy)

	// 1. The schedule's first Backup, into the bucket.
	var first string
	deadline := time.Now().Add(150 * time.Second)
	for first == "" && time.Now().Before(deadline) {
		first, _, _ = strings.Cut(strings.TrimSpace(kubectl(t, "-n", ns, "get", "backups", "-l", "backup.example.com/policy=offsite", "-o", "jsonpath={.items[*].metadata.name}")), " ")
		time.Sleep(2 * time.Second)
	}
	if first == "" {
		t.Fatal("the schedule created no Backup within 150s")
	}
	kubectl(t, "-n", ns, "patch", "bp", "offsite", "--type=merge", "-p", `{"spec":{"suspend":true}}`)
	st := waitBackup(t, ns, first)
	total := st["stats"].(map[string]any)["bytes"].(float64)
	firstSnap := st["snapshotID"].(string)
	keys := bucketObjects(t, store.Bucket, prefix+"/")
	if countPrefix(keys, "/snapshots/") != 1 || countPrefix(keys, "/packs/") == 0 || countPrefix(keys, "/keys/") != 1 {
		t.Fatalf("bucket after the first backup: %v", keys)
	}
	// Only the mover pod saw the password: the Job refers to the Secret.
	jobs := kubectl(t, "-n", ns, "get", "jobs", "-o", "json")
	if strings.Contains(jobs, "e2e repository password") || strings.Contains(jobs, store.SecretKey) {
		t.Error("a Secret's value appears in a mover Job")
	}

	// 2. On demand after a change: incremental.
	runPod(t, ns, "change", `head -c 3000 /dev/urandom > /data/db/f1 && echo more >> /data/db/sub/note && rm /data/db/f2`, "data")
	second := triggerBackup(t, ns, "offsite", "after-change")
	st = waitBackup(t, ns, second)
	if nb := st["stats"].(map[string]any)["newBytes"].(float64); nb <= 0 || nb > total/20 {
		t.Errorf("incremental backup to S3 stored %v new bytes of %v", nb, total)
	}

	// 3. Restore from the bucket into a new claim: equal to the source.
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: from-s3, namespace: %s}
spec: {backupName: %s, target: {pvcName: copy, newPVC: {}}}
`, ns, second))
	if rs := waitRestore(t, ns, "from-s3"); rs["verified"] != true {
		t.Errorf("restore from S3 not verified: %v", rs)
	}
	out := runPod(t, ns, "compare", "l() { (cd $1 && find . -type f -exec sha256sum {} + | sort -k2 && find . -mindepth 1 -exec stat -c '%n %a %Y %s %F' {} + | sort); }; l /data > /tmp/a; l /copy > /tmp/b; diff /tmp/a /tmp/b && echo SAME", "data", "copy")
	if !strings.Contains(out, "SAME") {
		t.Fatalf("restored copy differs from the source:\n%s", out)
	}

	// 4. Retention (keepLast 2): a third backup removes the first one's
	// snapshot from the bucket.
	runPod(t, ns, "change-again", `head -c 2000000 /dev/urandom > /data/db/third`, "data")
	third := triggerBackup(t, ns, "offsite", "third")
	waitBackup(t, ns, third)
	waitGone(t, ns, "backup", first)
	deadline = time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		keys = bucketObjects(t, store.Bucket, prefix+"/")
		if countPrefix(keys, "/snapshots/") == 2 && countPrefix(keys, firstSnap) == 0 {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if countPrefix(keys, "/snapshots/") != 2 || countPrefix(keys, firstSnap) != 0 {
		t.Errorf("after retention the bucket holds %d snapshots (first %s still there: %v)", countPrefix(keys, "/snapshots/"), firstSnap, countPrefix(keys, firstSnap) != 0)
	}

	// 5. A Secret the requester cannot read: 403, nothing stored.
	kubectl(t, "-n", ns, "create", "role", "backup-editor", "--verb=get,list,create,update,patch", "--resource=backuppolicies.backup.example.com,backups.backup.example.com")
	kubectl(t, "-n", ns, "create", "rolebinding", "backup-editor", "--role=backup-editor", "--user=alice")
	manifest := fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: by-alice, namespace: %s}
spec: {target: {pvcName: data}, storage: %s}
`, ns, storage)
	out2, err := kubectlAs(t, "alice", manifest, "create", "-f", "-")
	if err == nil || !strings.Contains(out2, "Forbidden") || !strings.Contains(out2, "s3-credentials") && !strings.Contains(out2, "repo-password") {
		t.Errorf("alice, who cannot read the Secrets, created a Backup naming them: %v\n%s", err, out2)
	}
	if _, err := local.Kubectl(context.Background(), "-n", ns, "get", "backup", "by-alice"); err == nil {
		t.Error("the refused Backup was stored")
	}

	// 6. Wrong credentials and an unknown bucket: Failed, with what to do, and an event.
	for name, c := range map[string]struct{ storage, want string }{
		"wrong-credentials": {s3Storage(store.Bucket, prefix+"-wrong", "wrong-credentials", ""), "AWS_SECRET_ACCESS_KEY"},
		"unknown-bucket":    {s3Storage("no-such-bucket", prefix, "s3-credentials", ""), "does not exist"},
	} {
		apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: %s, namespace: %s}
spec: {target: {pvcName: data}, storage: %s}
`, name, ns, c.storage))
		waitFor(t, ns, "backup", name, "Failed")
		msg := kubectl(t, "-n", ns, "get", "backup", name, "-o", "jsonpath={.status.message}")
		if !strings.Contains(msg, c.want) {
			t.Errorf("%s: message %q does not say %q", name, msg, c.want)
		}
		if ev := warningEvents(t, ns, name); !strings.Contains(ev, c.want) {
			t.Errorf("%s: no warning event saying %q: %q", name, c.want, ev)
		}
	}

	// 7. Immutable backups: into the locked bucket, every object locked
	// until status.lockedUntil; into a bucket without Object Lock, refused
	// with what to enable.
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: locked, namespace: %[1]s}
spec: {target: {pvcName: data}, storage: %[2]s}
---
apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: lock-without-object-lock, namespace: %[1]s}
spec: {target: {pvcName: data}, storage: %[3]s}
`, ns, s3Storage(store.LockedBucket, prefix, "s3-credentials", ", immutability: {mode: Governance}"),
		s3Storage(store.Bucket, prefix+"-nolock", "s3-credentials", ", immutability: {mode: Governance}")))
	st = waitBackup(t, ns, "locked")
	until, err := time.Parse(time.RFC3339, fmt.Sprint(st["lockedUntil"]))
	if err != nil || until.Before(time.Now().Add(23*time.Hour)) {
		t.Errorf("status.lockedUntil %v (%v): want about 24h from now", st["lockedUntil"], err)
	}
	c, _ := store.Client()
	for _, k := range bucketObjects(t, store.LockedBucket, prefix+"/") {
		if !strings.Contains(k, "/packs/") && !strings.Contains(k, "/snapshots/") {
			continue
		}
		mode, retain, err := c.GetObjectRetention(context.Background(), store.LockedBucket, k, "")
		if err != nil || mode == nil || retain == nil || retain.Before(until.Add(-time.Second)) {
			t.Errorf("%s: retention %v until %v (%v), want GOVERNANCE until %s", k, mode, retain, err, until)
		}
	}
	waitFor(t, ns, "backup", "lock-without-object-lock", "Failed")
	if msg := kubectl(t, "-n", ns, "get", "backup", "lock-without-object-lock", "-o", "jsonpath={.status.message}"); !strings.Contains(msg, "Object Lock") {
		t.Errorf("a backup asking for immutability in a bucket without Object Lock: %q", msg)
	}

	// 8. MinIO stopped mid-backup: Failed, no partial snapshot; once it is
	// back the next backup succeeds.
	runPod(t, ns, "grow", `head -c 400000000 /dev/urandom > /data/db/large`, "data")
	snapsBefore := countPrefix(bucketObjects(t, store.Bucket, prefix+"/"), "/snapshots/")
	cut := triggerBackup(t, ns, "offsite", "cut")
	waitJobPod(t, ns, cut)
	if err := store.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Each of the Job's pods (backoffLimit 2) fails after its requests'
	// retries; allow for all three and the Job's backoff between them.
	deadline = time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) && kubectl(t, "-n", ns, "get", "backup", cut, "-o", "jsonpath={.status.phase}") != "Failed" {
		time.Sleep(5 * time.Second)
	}
	waitFor(t, ns, "backup", cut, "Failed")
	if err := store.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(bucketObjects(t, store.Bucket, prefix+"/"), "/snapshots/"); n != snapsBefore {
		t.Errorf("%d snapshots after the interrupted backup, %d before", n, snapsBefore)
	}
	next := triggerBackup(t, ns, "offsite", "after-cut")
	waitBackup(t, ns, next)
	// keepLast 2: the second Backup goes, with its snapshot.
	waitGone(t, ns, "backup", second)

	// 9. Import after the operator's storage is lost, from the bucket.
	want := map[string]string{}
	for _, b := range strings.Fields(kubectl(t, "-n", ns, "get", "backups", "-l", "backup.example.com/policy=offsite", "-o", `jsonpath={range .items[?(@.status.phase=="Completed")]}{.metadata.name}={.status.snapshotID} {end}`)) {
		name, snap, _ := strings.Cut(b, "=")
		want[name] = snap
	}
	restartOperator(t, true)
	apply(t, strings.Replace(policy, "retention:", "suspend: true, retention:", 1))
	kubectl(t, "-n", ns, "annotate", "bp", "offsite", "backup.example.com/import=after-loss")
	for name, snap := range want {
		if got := waitBackup(t, ns, name)["snapshotID"]; got != snap {
			t.Errorf("re-created Backup %s has snapshot %v, want %s", name, got, snap)
		}
	}
	var objs map[string]any
	_ = json.Unmarshal([]byte(kubectl(t, "-n", ns, "get", "bp", "offsite", "-o", "json")), &objs)
	if st, _ := objs["status"].(map[string]any); st == nil || st["lastImport"] == nil {
		t.Errorf("policy status after import: %v", objs["status"])
	}
}

// kubectlAs runs kubectl as another user with stdin, returning its output
// and error.
func kubectlAs(t *testing.T, user, stdin string, args ...string) (string, error) {
	t.Helper()
	out, err := cluster.KubectlStdin(context.Background(), local.AdminKubeconfig, stdin, append([]string{"--as=" + user}, args...)...)
	return string(out), err
}

// waitJobPod waits until the Backup's mover pod is running.
func waitJobPod(t *testing.T, ns, backup string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		job := kubectl(t, "-n", ns, "get", "backup", backup, "-o", "jsonpath={.status.jobName}")
		if job != "" {
			phase := kubectl(t, "-n", ns, "get", "pods", "-l", "job-name="+job, "-o", "jsonpath={.items[*].status.phase}")
			if strings.Contains(phase, "Running") {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the mover pod of %s did not start", backup)
}
