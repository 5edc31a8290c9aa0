//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/backup-operator/hack/cluster"
)

// TestMoverLimitQueues creates six Backups at once whose pre hooks hold
// their mover slots for a few seconds, on the one node of the local cluster
// (--max-movers-per-node 4): at most four hold a slot at any moment, the
// others are shown Pending(Queued) meanwhile, and all six complete.
func TestMoverLimitQueues(t *testing.T) {
	ns := "e2e-queue"
	namespace(t, ns)
	const n = 6
	var docs, mounts, vols strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&docs, `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data-%d, namespace: %s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 100Mi}}}
---
`, i, ns)
		fmt.Fprintf(&mounts, "\n        - {name: d%d, mountPath: /data-%d}", i, i)
		fmt.Fprintf(&vols, "\n      - {name: d%d, persistentVolumeClaim: {claimName: data-%d}}", i, i)
	}
	fmt.Fprintf(&docs, `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: backup-repo, namespace: %[1]s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: %[1]s}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: %[2]s
    imagePullPolicy: Never
    command: [/bin/busybox, sh, -c, "/bin/busybox --install -s /bin && mkdir -p /log && exec sleep 100000"]
    volumeMounts:%[3]s
  volumes:%[4]s
`, ns, cluster.BusyboxImage, mounts.String(), vols.String())
	apply(t, docs.String())
	kubectl(t, "-n", ns, "wait", "--for=condition=Ready", "pod/app", "--timeout=120s")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		if _, err := local.Kubectl(context.Background(), "-n", ns, "exec", "app", "--", "/bin/busybox", "test", "-x", "/bin/sh"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}

	// Each pre hook logs its start and end (the node's uptime, in hundredths
	// of a second) and holds its slot 6 s.
	var backups strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&backups, `apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: b%[1]d, namespace: %[2]s}
spec:
  target: {pvcName: data-%[1]d}
  hooks: {pre: [{name: hold, exec: {command: [sh, -c, "echo start $(cut -d' ' -f1 /proc/uptime) >> /log/b%[1]d; sleep 6; echo end $(cut -d' ' -f1 /proc/uptime) >> /log/b%[1]d"]}, timeout: 1m}]}
---
`, i, ns)
	}
	apply(t, backups.String())

	sawQueued := 0
	deadline := time.Now().Add(4 * time.Minute)
	for {
		out := kubectl(t, "-n", ns, "get", "bk", "--no-headers")
		if q := strings.Count(out, "Pending(Queued)"); q > sawQueued {
			sawQueued = q
		}
		if strings.Count(out, "Completed") == n {
			break
		}
		if strings.Contains(out, "Failed") || time.Now().After(deadline) {
			t.Fatalf("the Backups did not all complete:\n%s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if sawQueued < 2 {
		t.Errorf("at most %d Backups were shown Pending(Queued) at once, want at least 2 of 6 with 4 slots", sawQueued)
	}

	// At most four pre hooks (slots) at once, from the hooks' own log.
	type edge struct {
		at    float64
		delta int
	}
	var edges []edge
	for i := 0; i < n; i++ {
		for _, line := range strings.Split(strings.TrimSpace(kubectlStdout(t, "-n", ns, "exec", "app", "--", "cat", fmt.Sprintf("/log/b%d", i))), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			at, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("hook log line %q: %v", line, err)
			}
			d := 1
			if f[0] == "end" {
				d = -1
			}
			edges = append(edges, edge{at, d})
		}
	}
	if len(edges) != 2*n {
		t.Fatalf("hook log has %d lines, want %d", len(edges), 2*n)
	}
	sort.Slice(edges, func(i, j int) bool {
		return edges[i].at < edges[j].at || edges[i].at == edges[j].at && edges[i].delta < edges[j].delta
	})
	most, cur := 0, 0
	for _, e := range edges {
		cur += e.delta
		most = max(most, cur)
	}
	if most > 4 || most < 2 {
		t.Errorf("%d pre hooks held slots at once, want between 2 and 4 (--max-movers-per-node 4)", most)
	}
	t.Logf("%d of %d Backups shown Pending(Queued) at once; at most %d holding a slot", sawQueued, n, most)
}
