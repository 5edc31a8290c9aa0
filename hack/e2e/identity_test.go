//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// waitGone polls until the object no longer exists.
func waitGone(t *testing.T, ns, resource, name string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := local.Kubectl(context.Background(), "-n", ns, "get", resource, name, "--ignore-not-found", "-o", "name")
		if err == nil && strings.TrimSpace(string(out)) == "" {
			return
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("%s %s/%s was not removed", resource, ns, name)
}

// waitObserved waits until the controller has acted on the object's current
// generation (status.observedGeneration).
func waitObserved(t *testing.T, ns, resource, name string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		last = kubectl(t, "-n", ns, "get", resource, name, "-o", "jsonpath={.metadata.generation}/{.status.observedGeneration}")
		if gen, observed, _ := strings.Cut(last, "/"); gen != "" && gen == observed {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s %s/%s: generation/observedGeneration still %s", resource, ns, name, last)
}

// repoSnapshots lists the snapshot IDs the namespace's repository holds.
func repoSnapshots(t *testing.T, ns, job string) map[string]bool {
	t.Helper()
	var snaps []struct {
		ID string `json:"id"`
	}
	out := runMover(t, ns, job, "ls", "--repo", "/repo", "--json")
	if err := json.Unmarshal([]byte(lastJSONLine(out)), &snaps); err != nil {
		t.Fatalf("repository listing: %v\n%s", err, out)
	}
	ids := map[string]bool{}
	for _, s := range snaps {
		ids[s.ID] = true
	}
	return ids
}

// everyCompletedBackupHasItsSnapshot checks that no Backup of the namespaces
// reports Completed for a snapshot its repository does not hold.
func everyCompletedBackupHasItsSnapshot(t *testing.T, repoNS string, snaps map[string]bool, backupNamespaces ...string) {
	t.Helper()
	for _, ns := range backupNamespaces {
		out := kubectl(t, "-n", ns, "get", "backups", "-o", `jsonpath={range .items[?(@.status.phase=="Completed")]}{.metadata.name}={.status.snapshotID}{"\n"}{end}`)
		for _, line := range strings.Fields(out) {
			name, id, _ := strings.Cut(line, "=")
			if !snaps[id] {
				t.Errorf("Backup %s/%s is Completed with snapshot %q, which repository %s/backup-repo does not hold", ns, name, id, repoNS)
			}
		}
	}
}

// TestIdentities covers what once mixed up Backups: two Backups of one name in
// two namespaces backing up a claim of a third, an on-demand Backup of a
// 50-character policy, a deleted on-demand Backup with its trigger still set,
// and a collection DELETE while a restore uses a Backup.
func TestIdentities(t *testing.T) {
	prod, teamA, teamB := "e2e-id-prod", "e2e-id-team-a", "e2e-id-team-b"
	for _, ns := range []string{prod, teamA, teamB} {
		namespace(t, ns)
	}
	claims(t, prod, true)
	runPod(t, prod, "fill", "head -c 2000000 /dev/urandom > /data/a && echo one > /data/v", "data")

	// 1. Same name, two namespaces, one claim: two Jobs, two snapshots.
	same := "nightly-202611300200"
	for _, ns := range []string{teamA, teamB} {
		apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: %s, namespace: %s}
spec: {target: {namespace: %s, pvcName: data}}
`, same, ns, prod))
	}
	a, b := waitBackup(t, teamA, same), waitBackup(t, teamB, same)
	if a["snapshotID"] == "" || a["snapshotID"] == b["snapshotID"] || a["jobName"] == b["jobName"] {
		t.Fatalf("the two Backups share an outcome: %v / %v", a, b)
	}
	kubectl(t, "-n", teamA, "delete", "backup", same)
	waitGone(t, teamA, "backup", same)
	snaps := repoSnapshots(t, prod, "ls-after-delete")
	if snaps[a["snapshotID"].(string)] || !snaps[b["snapshotID"].(string)] {
		t.Fatalf("after deleting team-a's Backup the repository holds %v; want team-b's %v only", snaps, b["snapshotID"])
	}
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: from-team-b, namespace: %s}
spec: {backupNamespace: %s, backupName: %s, target: {pvcName: copy, newPVC: {}}}
`, prod, teamB, same))
	if rs := waitRestore(t, prod, "from-team-b"); rs["verified"] != true {
		t.Errorf("restore of team-b's Backup not verified: %v", rs)
	}

	// 2. On demand, 50-character policy: the Backup's name is 68 characters.
	policy := strings.Repeat("p", 50)
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: %s, namespace: %s}
spec: {schedule: "0 0 1 1 *", target: {pvcName: data}, retention: {keepLast: 10}}
`, policy, prod))
	manual := triggerBackup(t, prod, policy, "first")
	if len(manual) != 68 {
		t.Errorf("on-demand Backup name %q has %d characters", manual, len(manual))
	}
	waitBackup(t, prod, manual)

	// 3. Deleted with its trigger still set: it stays deleted.
	kubectl(t, "-n", prod, "delete", "backup", manual)
	waitGone(t, prod, "backup", manual)
	// A policy sync after the delete, with the trigger still set: change the
	// spec and wait until the controller has observed that generation.
	kubectl(t, "-n", prod, "patch", "bp", policy, "--type=merge", "-p", `{"spec":{"retention":{"keepLast":11}}}`)
	waitObserved(t, prod, "bp", policy)
	if out := kubectl(t, "-n", prod, "get", "backup", manual, "--ignore-not-found", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Fatalf("the deleted on-demand Backup came back: %s", out)
	}
	if v := kubectl(t, "-n", prod, "get", "bp", policy, "-o", "jsonpath={.status.lastTrigger.value}"); v != "first" {
		t.Errorf("status.lastTrigger.value = %q, want first", v)
	}

	// 4. A collection DELETE while a restore waits on a Backup keeps that Backup.
	kept := triggerBackup(t, prod, policy, "second")
	waitBackup(t, prod, kept)
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: waiting, namespace: %s}
spec: {backupName: %s, target: {pvcName: never-bound, newPVC: {storageClassName: no-such-class}}}
`, prod, kept))
	for _, args := range [][]string{
		{"delete", "--raw", "/apis/backup.example.com/v1alpha1/namespaces/" + prod + "/backups"},
		{"-n", prod, "delete", "backups", "--all"},
		{"-n", prod, "delete", "backups", "-l", "backup.example.com/policy=" + policy},
	} {
		out, err := local.Kubectl(context.Background(), args...)
		if err == nil {
			t.Errorf("kubectl %v succeeded while RestoreJob waiting uses Backup %s:\n%s", args, kept, out)
		}
		if ts := kubectl(t, "-n", prod, "get", "backup", kept, "-o", "jsonpath={.metadata.deletionTimestamp}"); ts != "" {
			t.Fatalf("kubectl %v marked Backup %s deleted (at %s) while a restore uses it", args, kept, ts)
		}
	}
	kubectl(t, "-n", prod, "delete", "restorejob", "waiting")
	everyCompletedBackupHasItsSnapshot(t, prod, repoSnapshots(t, prod, "ls-at-end"), prod, teamA, teamB)
}
