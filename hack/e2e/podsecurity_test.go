//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// runRestrictedPod runs a busybox script as user 1000 with a security
// context Pod Security "restricted" admits, and returns its output.
func runRestrictedPod(t *testing.T, ns, name, script string, claims ...string) string {
	t.Helper()
	return runJob(t, ns, name, "{runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: {type: RuntimeDefault}}",
		"{allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}", script, claims...)
}

const listTree = "l() { (cd $1 && /bin/busybox find . -type f -exec /bin/busybox sha256sum {} + | /bin/busybox sort -k2); }; "

// TestBaselineNamespace: backups and restores complete where the namespace
// enforces Pod Security baseline (no DAC_READ_SEARCH).
func TestBaselineNamespace(t *testing.T) {
	ns := "e2e-psa-baseline"
	namespace(t, ns)
	kubectl(t, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=baseline")
	claims(t, ns, true)
	runPod(t, ns, "fill", "mkdir -p /data/d && echo secret > /data/d/s && chmod 600 /data/d/s && chmod 700 /data/d && head -c 500000 /dev/urandom > /data/r", "data")
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: p, namespace: %s}
spec: {schedule: "0 0 1 1 *", target: {pvcName: data}, retention: {keepLast: 3}}
`, ns))
	name := triggerBackup(t, ns, "p", "1")
	if st := waitBackup(t, ns, name); st["stats"].(map[string]any)["files"].(float64) != 2 {
		t.Fatalf("baseline backup status: %v", st)
	}
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: copy, namespace: %s}
spec: {backupName: %s, target: {pvcName: copy, newPVC: {}}}
`, ns, name))
	waitRestore(t, ns, "copy")
	out := runPod(t, ns, "compare", listTree+"l /data > /tmp/a; l /copy > /tmp/b; diff /tmp/a /tmp/b && stat -c '%a %u' /copy/d/s && echo SAME", "data", "copy")
	if !strings.Contains(out, "SAME") || !strings.Contains(out, "600 0") {
		t.Fatalf("baseline restore differs:\n%s", out)
	}
}

// TestRestrictedNamespace: backups and restores complete where the namespace
// enforces Pod Security restricted; the mover runs as the given non-root
// user, and the owners it cannot keep are reported.
func TestRestrictedNamespace(t *testing.T) {
	ns := "e2e-psa-restricted"
	namespace(t, ns)
	claims(t, ns, true)
	apply(t, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: copy, namespace: %s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`, ns))
	// Prepared as root before the level is enforced: the local cluster's
	// hostPath volumes are created root-owned (kind's are 0777).
	runPod(t, ns, "prepare", "chmod 0777 /data /backup-repo /copy && mkdir /data/app && head -c 300000 /dev/urandom > /data/app/db && echo root > /data/by-root && chmod 644 /data/by-root && chown -R 1000:1000 /data/app",
		"data", "backup-repo", "copy")
	kubectl(t, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")

	// Without an identity the Backup fails at once, saying what to set.
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: anonymous, namespace: %s}
spec: {target: {pvcName: data}}
`, ns))
	st := waitFor(t, ns, "backup", "anonymous", "Failed")
	if !strings.Contains(fmt.Sprint(st["message"]), "spec.moverSecurityContext.runAsUser") {
		t.Errorf("anonymous backup in a restricted namespace: %v", st)
	}

	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: as-app, namespace: %s}
spec: {target: {pvcName: data}, moverSecurityContext: {runAsUser: 1000, runAsGroup: 1000}}
`, ns))
	waitBackup(t, ns, "as-app")
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: back, namespace: %s}
spec: {backupName: as-app, target: {pvcName: copy}, moverSecurityContext: {runAsUser: 1000, runAsGroup: 1000}}
`, ns))
	rs := waitRestore(t, ns, "back")
	if !strings.Contains(fmt.Sprint(rs["message"]), "instead of their recorded owners") {
		t.Errorf("the root-owned file's owner was not reported as lost: %v", rs["message"])
	}
	out := runRestrictedPod(t, ns, "compare", listTree+"l /data > /tmp/a; l /copy > /tmp/b; /bin/busybox diff /tmp/a /tmp/b && echo SAME", "data", "copy")
	if !strings.Contains(out, "SAME") {
		t.Fatalf("restricted restore differs:\n%s", out)
	}
}

// TestBlockedMoverIsReported: a mover Job that cannot create its pod (here a
// quota of zero pods) shows as condition MoverBlocked with the refusal.
func TestBlockedMoverIsReported(t *testing.T) {
	ns := "e2e-blocked"
	namespace(t, ns)
	claims(t, ns, true)
	apply(t, fmt.Sprintf(`apiVersion: v1
kind: ResourceQuota
metadata: {name: no-pods, namespace: %[1]s}
spec: {hard: {pods: "0"}}
---
apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: blocked, namespace: %[1]s}
spec: {target: {pvcName: data}}
`, ns))
	deadline := time.Now().Add(90 * time.Second)
	var msg string
	for time.Now().Before(deadline) {
		msg = kubectl(t, "-n", ns, "get", "backup", "blocked", "-o", `jsonpath={.status.conditions[?(@.type=="MoverBlocked")].message}`)
		if msg != "" {
			break
		}
		time.Sleep(3 * time.Second)
	}
	if !strings.Contains(msg, "exceeded quota") {
		t.Fatalf("no MoverBlocked condition with the quota refusal within 90s: %q", msg)
	}
	if ev := kubectl(t, "-n", ns, "get", "events", "--field-selector", "reason=MoverBlocked", "-o", "name"); strings.TrimSpace(ev) == "" {
		t.Error("no MoverBlocked event")
	}
}
