//go:build e2e && chaos

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/backup-operator/hack/cluster"
)

// TestChaos is `make test-chaos`: rounds of faults injected at random points
// into backups, prunes and restores on the local cluster. After every fault
// it checks what must hold whatever the fault: every Backup and RestoreJob
// ends (none Running forever) and tells the truth (a Completed Backup's
// snapshot is in its repository; no snapshot in a repository is anyone's but
// its one Backup's: nothing lost, nothing duplicated, nothing incomplete
// visible), `backup-mover verify` passes on the repository the fault
// touched, no mover Job or
// pod and no finalizer is left behind, and the next backup succeeds. Each
// round ends with a scheduled run. CHAOS_ROUNDS (default 3) and CHAOS_SEED
// (default: the time) choose the rounds and the random points; the report is
// printed and written to _output/chaos-report.md.
func TestChaos(t *testing.T) {
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("CHAOS_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	seed := time.Now().UnixNano()
	if v, err := strconv.ParseInt(os.Getenv("CHAOS_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("CHAOS_SEED=%d CHAOS_ROUNDS=%d", seed, rounds)
	c := &chaos{t: t, ns: "chaos", rng: rand.New(rand.NewSource(seed))}
	operatorPodUID = kubectl(t, "-n", "backup-system", "get", "pod", "backup-apiserver-0", "-o", "jsonpath={.metadata.uid}")
	// A test that stops while the operator is frozen must not leave it so.
	t.Cleanup(func() { signalProcesses(syscall.SIGCONT, isOperator) })
	c.setUp()

	type tally struct{ runs, pass, hits int }
	results := map[string]*tally{}
	var order []string
	var failures []string
	for round := 1; round <= rounds; round++ {
		for _, f := range c.faults() {
			if results[f.name] == nil {
				results[f.name] = &tally{}
				order = append(order, f.name)
			}
			r := results[f.name]
			r.runs++
			var hit bool
			ok := t.Run(fmt.Sprintf("round%d/%s", round, f.name), func(t *testing.T) {
				c.t = t
				hit = f.run()
				c.check(f.name)
			})
			c.t = t
			if hit {
				r.hits++
			}
			if ok {
				r.pass++
			} else {
				failures = append(failures, fmt.Sprintf("round %d: %s", round, f.name))
			}
		}
		t.Run(fmt.Sprintf("round%d/next-scheduled-run", round), func(t *testing.T) {
			c.t = t
			c.scheduledRun()
		})
		c.t = t
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# make test-chaos: seed %d, %d rounds\n\n| fault | runs | pass | landed mid-operation |\n|---|---|---|---|\n", seed, rounds)
	for _, name := range order {
		r := results[name]
		fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", name, r.runs, r.pass, r.hits)
	}
	if len(failures) > 0 {
		fmt.Fprintf(&b, "\nfailed: %s\n", strings.Join(failures, "; "))
	}
	t.Log("\n" + b.String())
	out := filepath.Join(cluster.RepoRoot(), "_output")
	if os.MkdirAll(out, 0o755) == nil {
		_ = os.WriteFile(filepath.Join(out, "chaos-report.md"), []byte(b.String()), 0o644)
	}
}

type chaos struct {
	t   *testing.T
	ns  string
	rng *rand.Rand
	seq int
	// tmpfs is the host directory the small repository's volume lives on.
	tmpfs string
}

type fault struct {
	name string
	// run injects the fault and waits for the work it hit to end; it
	// reports whether the fault landed while that work was in flight.
	run func() bool
}

func (c *chaos) faults() []fault {
	fs := []fault{
		{"mover pod killed during backup", c.moverKilledDuringBackup},
		{"mover pod killed during prune", c.moverKilledDuringPrune},
		{"mover pod killed during restore", c.moverKilledDuringRestore},
		{"restore interrupted, then run again", c.restoreInterrupted},
		{"backup-apiserver killed after Job created", func() bool { return c.operatorKilledDuringBackup("job-created") }},
		{"backup-apiserver killed after Job done", func() bool { return c.operatorKilledDuringBackup("job-done") }},
		{"backup-apiserver killed after status written", func() bool { return c.operatorKilledDuringBackup("status-written") }},
		{"backup-apiserver killed during finalizer prune", c.operatorKilledDuringPrune},
		{"repository full during backup", c.fullDuringBackup},
		{"repository full during prune", c.fullDuringPrune},
	}
	if local.Node != nil {
		fs = append(fs,
			fault{"kube-apiserver restarted during backup", func() bool {
				return c.duringBackup(func() error { return local.RestartAPIServer() })
			}},
			fault{"kubelet restarted during backup", func() bool {
				return c.duringBackup(func() error { return local.Node.RestartKubelet(context.Background()) })
			}})
	} else {
		c.t.Log("a reused cluster (E2E_KUBECONFIG): kube-apiserver and kubelet restarts need the suite's own cluster and are left out")
	}
	return fs
}

const (
	chaosFiles = 160 // files of 1 MiB in the claim backed up
	smallRepo  = "small-repo"
)

func (c *chaos) name(prefix string) string {
	c.seq++
	return fmt.Sprintf("%s-%d", prefix, c.seq)
}

// setUp makes the namespace, the data (chaosFiles random files), the
// repository claim and a policy; and a second repository on a tmpfs of
// 64 MiB (a static volume) that fills up, with a policy of its own.
func (c *chaos) setUp() {
	t := c.t
	namespace(t, c.ns)
	claims(t, c.ns, true)
	runPod(t, c.ns, c.name("fill"), fmt.Sprintf(`mkdir -p /data/a/b && for i in $(seq 1 %d); do head -c 1048576 /dev/urandom > /data/f$i; done &&
for i in $(seq 1 200); do echo "small $i" > /data/a/b/s$i; done && ln -s f1 /data/link`, chaosFiles), "data")
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: p, namespace: %[1]s}
spec: {schedule: "0 0 1 1 *", target: {pvcName: data}, retention: {keepLast: 4}}
`, c.ns))

	c.tmpfs = filepath.Join(os.TempDir(), "backup-operator-chaos-tmpfs")
	if err := os.MkdirAll(c.tmpfs, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Unmount(c.tmpfs, syscall.MNT_DETACH)
	if err := syscall.Mount("tmpfs", c.tmpfs, "tmpfs", 0, "size=64m,mode=0777"); err != nil {
		t.Fatalf("mounting a tmpfs for the repository that fills up: %v", err)
	}
	t.Cleanup(func() {
		local.Kubectl(context.Background(), "delete", "pv", "chaos-small-repo", "--wait=false")
		_ = syscall.Unmount(c.tmpfs, syscall.MNT_DETACH)
	})
	apply(t, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata: {name: chaos-small-repo}
spec:
  capacity: {storage: 64Mi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef: {namespace: %[1]s, name: %[2]s}
  hostPath: {path: %[3]s}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %[2]s, namespace: %[1]s}
spec: {accessModes: [ReadWriteOnce], storageClassName: "", volumeName: chaos-small-repo, resources: {requests: {storage: 64Mi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: small, namespace: %[1]s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: restored, namespace: %[1]s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: s, namespace: %[1]s}
spec: {schedule: "0 0 1 1 *", target: {pvcName: small}, storage: {pvcName: %[2]s}, retention: {keepLast: 2}}
`, c.ns, smallRepo, c.tmpfs))
	// The small claim's data: 24 MiB, of which a third changes per backup.
	runPod(t, c.ns, c.name("fill-small"), `for i in $(seq 1 24); do head -c 1048576 /dev/urandom > /small/f$i; done`, "small")
	c.backup("p")
	c.backup("s")
}

// churn rewrites mib of the files backed up, so the next backup has work.
func (c *chaos) churn(mib int) {
	c.t.Helper()
	runPod(c.t, c.ns, c.name("churn"), fmt.Sprintf(`for i in $(seq 1 %d); do n=$(( (RANDOM %% %d) + 1 )); head -c 1048576 /dev/urandom > /data/f$n; done; date > /data/a/stamp`, mib, chaosFiles), "data")
}

// dataSum is a checksum of every file's path, content and symlink target in
// a claim, taken by a pod.
func (c *chaos) dataSum(claim string) string {
	c.t.Helper()
	out := runPod(c.t, c.ns, c.name("sum"), fmt.Sprintf(`cd /%s && { find . -type f ! -name lost+found | sort | xargs md5sum; find . -type l | sort | while read l; do echo "$l -> $(readlink $l)"; done; } | md5sum`, claim), claim)
	return strings.Fields(out)[0]
}

// backup triggers a Backup of policy, waits for it to complete and records
// the checksum of what it stored (nothing writes the claim meanwhile).
func (c *chaos) backup(policy string) string {
	c.t.Helper()
	name := triggerBackup(c.t, c.ns, policy, c.name("t"))
	waitBackup(c.t, c.ns, name)
	return name
}

// moverPod waits until a mover pod of kind for the owner runs and returns
// its name and UID; "" when the Job ended first.
func (c *chaos) moverPod(kind, owner string) (string, string) {
	c.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := local.Kubectl(context.Background(), "-n", c.ns, "get", "pods", "-l", "backup.example.com/kind="+kind+",backup.example.com/owner-name="+owner,
			"-o", `jsonpath={range .items[?(@.status.phase=="Running")]}{.metadata.name} {.metadata.uid}{"\n"}{end}`)
		if f := strings.Fields(string(out)); err == nil && len(f) >= 2 {
			return f[0], f[1]
		}
		if out, _ := local.Kubectl(context.Background(), "-n", c.ns, "get", "pods", "-l", "backup.example.com/kind="+kind+",backup.example.com/owner-name="+owner,
			"-o", `jsonpath={range .items[?(@.status.phase=="Succeeded")]}{.metadata.name}{end}`); len(out) > 0 {
			return "", ""
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("no %s mover pod of %s ran", kind, owner)
	return "", ""
}

// podRunning reports whether the pod still runs, so that a fault counts as
// landed mid-operation only when it did.
func (c *chaos) podRunning(name string) bool {
	phase, _ := local.Kubectl(context.Background(), "-n", c.ns, "get", "pod", name, "-o", "jsonpath={.status.phase}")
	return string(phase) == "Running"
}

// sleepRandom waits a random time up to max.
func (c *chaos) sleepRandom(max time.Duration) {
	time.Sleep(time.Duration(c.rng.Int63n(int64(max))))
}

// killPod kills a mover pod: at random either its processes are sent
// SIGKILL on the node (the pod fails) or the pod is deleted at once
// (--grace-period=0 --force). It reports whether the pod was still running.
func (c *chaos) killPod(name, uid string) bool {
	c.t.Helper()
	if !c.podRunning(name) {
		c.t.Logf("pod %s had ended before the kill", name)
		return false
	}
	if c.rng.Intn(2) == 0 {
		killed := killProcesses(func(pid int) bool {
			cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
			return err == nil && (strings.Contains(string(cg), uid) || strings.Contains(string(cg), strings.ReplaceAll(uid, "-", "_")))
		})
		c.t.Logf("SIGKILL to %d processes of pod %s", killed, name)
		return killed > 0
	}
	out, err := local.Kubectl(context.Background(), "-n", c.ns, "delete", "pod", name, "--grace-period=0", "--force")
	c.t.Logf("pod %s deleted: %s", name, strings.TrimSpace(string(out)))
	return err == nil
}

// operatorPodUID is the UID of this cluster's operator pod.
var operatorPodUID string

// isOperator selects this cluster's backup-apiserver process: its command,
// in the cgroup of the operator pod (not another cluster's on this machine).
func isOperator(pid int) bool {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.HasPrefix(string(cmd), "/backup-apiserver\x00") {
		return false
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return err == nil && operatorPodUID != "" && (strings.Contains(string(cg), operatorPodUID) || strings.Contains(string(cg), strings.ReplaceAll(operatorPodUID, "-", "_")))
}

// killProcesses sends SIGKILL to every process match selects and returns how many.
func killProcesses(match func(pid int) bool) int {
	return signalProcesses(syscall.SIGKILL, match)
}

// signalProcesses sends sig to every process match selects and returns how many.
func signalProcesses(sig syscall.Signal, match func(pid int) bool) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !match(pid) {
			continue
		}
		if syscall.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}

// killOperator sends SIGKILL to backup-apiserver (its container restarts)
// and waits until the group is served again.
func (c *chaos) killOperator() {
	c.t.Helper()
	if signalProcesses(syscall.SIGKILL, isOperator) == 0 {
		c.t.Log("no backup-apiserver process to kill: its container is restarting")
	}
	c.t.Logf("SIGKILL to backup-apiserver")
	time.Sleep(2 * time.Second)
	kubectl(c.t, "-n", "backup-system", "wait", "--for=condition=Ready", "pod/backup-apiserver-0", "--timeout=180s")
	if err := local.WaitAPIServiceAvailable(context.Background(), 3*time.Minute); err != nil {
		c.t.Fatal(err)
	}
}

func (c *chaos) moverKilledDuringBackup() bool {
	c.churn(96)
	name := triggerBackup(c.t, c.ns, "p", c.name("t"))
	pod, uid := c.moverPod("backup", name)
	hit := false
	if pod != "" {
		c.sleepRandom(1500 * time.Millisecond)
		hit = c.killPod(pod, uid)
	}
	waitBackup(c.t, c.ns, name)
	return hit
}

// oldestBackup is the oldest Completed Backup of policy p.
func (c *chaos) oldestBackup(policy string) string {
	c.t.Helper()
	c.settle() // retention may be removing one
	out := kubectl(c.t, "-n", c.ns, "get", "backups", "-l", "backup.example.com/policy="+policy, "--sort-by=.metadata.creationTimestamp",
		"-o", `jsonpath={range .items[?(@.status.phase=="Completed")]}{.metadata.name}{"\n"}{end}`)
	names := strings.Fields(out)
	if len(names) < 2 {
		c.t.Fatalf("policy %s has %d Completed Backups; want two or more to delete one", policy, len(names))
	}
	return names[0]
}

func (c *chaos) moverKilledDuringPrune() bool {
	c.churn(32)
	c.backup("p")
	old := c.oldestBackup("p")
	kubectl(c.t, "-n", c.ns, "delete", "backup", old, "--wait=false")
	pod, uid := c.moverPod("prune", old)
	hit := pod != "" && c.killPod(pod, uid)
	waitGone(c.t, c.ns, "backup", old)
	return hit
}

// latest is the newest Completed Backup of policy p with the checksum of
// what it stored: the claim's data now, since every change to it is
// followed by a Backup that completes (each fault ends with one).
func (c *chaos) latest() (string, string) {
	c.t.Helper()
	out := kubectl(c.t, "-n", c.ns, "get", "backups", "-l", "backup.example.com/policy=p", "--sort-by=.metadata.creationTimestamp",
		"-o", `jsonpath={range .items[?(@.status.phase=="Completed")]}{.metadata.name}{"\n"}{end}`)
	names := strings.Fields(out)
	if len(names) == 0 {
		c.t.Fatal("no Completed Backup")
	}
	return names[len(names)-1], c.dataSum("data")
}

func (c *chaos) restoreJob(name, backup string) {
	apply(c.t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: %s, namespace: %s}
spec: {backupName: %s, target: {pvcName: restored}, mode: Mirror}
`, name, c.ns, backup))
}

// scribble puts files into the restore target that the snapshot lacks and
// changes one it has, so a Mirror restore has work of every kind.
func (c *chaos) scribble() {
	runPod(c.t, c.ns, c.name("scribble"), `mkdir -p /restored/extra && echo x > /restored/extra/y && echo changed > /restored/f1 2>/dev/null; true`, "restored")
}

func (c *chaos) moverKilledDuringRestore() bool {
	b, sum := c.latest()
	c.scribble()
	name := c.name("r")
	c.restoreJob(name, b)
	pod, uid := c.moverPod("restore", name)
	hit := false
	if pod != "" {
		c.sleepRandom(1500 * time.Millisecond)
		hit = c.killPod(pod, uid)
	}
	waitRestore(c.t, c.ns, name)
	if got := c.dataSum("restored"); got != sum {
		c.t.Errorf("after restore %s of %s (Completed) the target's checksum is %s, the backup's %s", name, b, got, sum)
	}
	return hit
}

func (c *chaos) restoreInterrupted() bool {
	b, sum := c.latest()
	c.scribble()
	first := c.name("r")
	c.restoreJob(first, b)
	pod, _ := c.moverPod("restore", first)
	hit := false
	if pod != "" {
		c.sleepRandom(1000 * time.Millisecond)
		hit = c.podRunning(pod)
	}
	kubectl(c.t, "-n", c.ns, "delete", "restorejob", first, "--wait=false")
	waitGone(c.t, c.ns, "restorejob", first)
	second := c.name("r")
	c.restoreJob(second, b)
	waitRestore(c.t, c.ns, second)
	if got := c.dataSum("restored"); got != sum {
		c.t.Errorf("restore %s after the interrupted %s: the target's checksum is %s, backup %s's %s", second, first, got, b, sum)
	}
	return hit
}

// jobOf waits until the owner's mover Job of kind exists, or (with
// succeeded) has succeeded; it polls fast, to act close to the moment.
func (c *chaos) jobOf(kind, owner string, succeeded bool) {
	c.t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := local.Kubectl(context.Background(), "-n", c.ns, "get", "jobs", "-l", "backup.example.com/kind="+kind+",backup.example.com/owner-name="+owner,
			"-o", "jsonpath={range .items[*]}{.metadata.name}:{.status.succeeded}{\"\\n\"}{end}")
		for _, l := range strings.Fields(string(out)) {
			if _, n, _ := strings.Cut(l, ":"); err == nil && (!succeeded || n == "1") {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no %s Job of %s (succeeded: %v)", kind, owner, succeeded)
}

func (c *chaos) operatorKilledDuringBackup(step string) bool {
	c.churn(48)
	name := triggerBackup(c.t, c.ns, "p", c.name("t"))
	switch step {
	case "job-created":
		c.jobOf("backup", name, false)
		c.sleepRandom(500 * time.Millisecond)
	case "job-done":
		// The operator is frozen (SIGSTOP) while its Job runs, so the kill
		// lands after the Job succeeded and before the status says so.
		c.jobOf("backup", name, false)
		c.sleepRandom(300 * time.Millisecond)
		signalProcesses(syscall.SIGSTOP, isOperator)
		c.jobOf("backup", name, true)
	case "status-written":
		waitBackup(c.t, c.ns, name)
		c.sleepRandom(300 * time.Millisecond)
	}
	hit := step != "job-created" // the Job done and the status not yet read (the operator frozen), or the status written
	if step == "job-created" {
		hit = kubectl(c.t, "-n", c.ns, "get", "backup", name, "-o", "jsonpath={.status.phase}") != "Completed"
	}
	c.killOperator()
	waitBackup(c.t, c.ns, name)
	n := strings.Fields(kubectl(c.t, "-n", c.ns, "get", "jobs", "-l", "backup.example.com/kind=backup,backup.example.com/owner-name="+name, "-o", "jsonpath={.items[*].metadata.name}"))
	if len(n) != 1 {
		c.t.Errorf("Backup %s has %d backup Jobs, want 1: %v", name, len(n), n)
	}
	return hit
}

func (c *chaos) operatorKilledDuringPrune() bool {
	c.churn(16)
	c.backup("p")
	old := c.oldestBackup("p")
	kubectl(c.t, "-n", c.ns, "delete", "backup", old, "--wait=false")
	c.jobOf("prune", old, false)
	c.sleepRandom(800 * time.Millisecond)
	out, _ := local.Kubectl(context.Background(), "-n", c.ns, "get", "backup", old, "-o", "name")
	c.killOperator()
	waitGone(c.t, c.ns, "backup", old)
	return len(out) > 0
}

// duringBackup runs a backup and, at a random point while its mover pod
// runs, disrupt.
func (c *chaos) duringBackup(disrupt func() error) bool {
	c.churn(96)
	name := triggerBackup(c.t, c.ns, "p", c.name("t"))
	pod, _ := c.moverPod("backup", name)
	hit := false
	if pod != "" {
		c.sleepRandom(1500 * time.Millisecond)
		hit = c.podRunning(pod)
	}
	if err := disrupt(); err != nil {
		c.t.Fatal(err)
	}
	waitBackup(c.t, c.ns, name)
	return hit
}

// fill writes a file into the small repository's tmpfs until it is full.
func (c *chaos) fill() {
	f, err := os.Create(filepath.Join(c.tmpfs, "filler"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			return
		}
	}
}

func (c *chaos) resizeTmpfs(mib int) {
	if err := syscall.Mount("tmpfs", c.tmpfs, "tmpfs", syscall.MS_REMOUNT, fmt.Sprintf("size=%dm,mode=0777", mib)); err != nil {
		c.t.Fatalf("resizing the tmpfs: %v", err)
	}
}

// fullDuringBackup: the repository has room for less than the backup needs;
// the Backup fails saying so, and once space is freed the next one succeeds.
func (c *chaos) fullDuringBackup() bool {
	runPod(c.t, c.ns, c.name("churn-small"), `for i in $(seq 1 8); do n=$(( (RANDOM % 24) + 1 )); head -c 1048576 /dev/urandom > /small/f$n; done`, "small")
	c.resizeTmpfs(64)
	c.fill()
	// Leave a little room, less than the change.
	filler := filepath.Join(c.tmpfs, "filler")
	if fi, err := os.Stat(filler); err == nil {
		_ = os.Truncate(filler, max(0, fi.Size()-int64(2+c.rng.Intn(4))<<20))
	}
	name := triggerBackup(c.t, c.ns, "s", c.name("t"))
	st := waitFor(c.t, c.ns, "backup", name, "Failed")
	if msg := fmt.Sprint(st["message"]); !strings.Contains(msg, "no space left") {
		c.t.Errorf("Backup %s failed for a full repository with the message %q; want it to say no space is left", name, msg)
	}
	if id := fmt.Sprint(st["snapshotID"]); st["snapshotID"] != nil && id != "" {
		c.t.Errorf("failed Backup %s records snapshot %s", name, id)
	}
	os.Remove(filepath.Join(c.tmpfs, "filler"))
	c.backup("s")
	return true
}

// fullDuringPrune: a prune of a full repository either succeeds (removing
// needs no room) or fails and keeps the Backup, saying so; once space is
// freed the prune is run again (deleting its Job, as the event says) and the
// Backup goes.
func (c *chaos) fullDuringPrune() bool {
	c.resizeTmpfs(64)
	os.Remove(filepath.Join(c.tmpfs, "filler"))
	runPod(c.t, c.ns, c.name("churn-small"), `for i in $(seq 1 8); do n=$(( (RANDOM % 24) + 1 )); head -c 1048576 /dev/urandom > /small/f$n; done`, "small")
	c.backup("s")
	old := c.oldestBackup("s")
	c.fill()
	kubectl(c.t, "-n", c.ns, "delete", "backup", old, "--wait=false")
	c.jobOf("prune", old, false)
	deadline := time.Now().Add(3 * time.Minute)
	failed := false
	for time.Now().Before(deadline) {
		out, _ := local.Kubectl(context.Background(), "-n", c.ns, "get", "backup", old, "--ignore-not-found", "-o", "name")
		if len(out) == 0 {
			break
		}
		ev, _ := local.Kubectl(context.Background(), "-n", c.ns, "get", "events", "--field-selector", "involvedObject.name="+old+",reason=PruneFailed", "-o", "jsonpath={.items[*].message}")
		if len(ev) > 0 {
			c.t.Logf("prune of a full repository failed: %s", ev)
			failed = true
			break
		}
		time.Sleep(time.Second)
	}
	os.Remove(filepath.Join(c.tmpfs, "filler"))
	if failed {
		kubectl(c.t, "-n", c.ns, "delete", "jobs", "-l", "backup.example.com/kind=prune,backup.example.com/owner-name="+old)
	}
	waitGone(c.t, c.ns, "backup", old)
	return failed
}

// check is what must hold after every fault.
func (c *chaos) check(fault string) {
	t := c.t
	t.Helper()
	c.settle()
	repos := []string{"backup-repo"}
	if strings.Contains(fault, "full") {
		repos = []string{smallRepo}
	}
	for _, claim := range repos {
		out := runMoverOn(t, c.ns, c.name("verify"), claim, "verify", "--repo", "/repo")
		if !strings.Contains(out, "no damage found") {
			t.Errorf("backup-mover verify of %s after %q:\n%s", claim, fault, out)
		}
		var snaps []struct {
			ID   string            `json:"id"`
			Tags map[string]string `json:"tags"`
		}
		out = runMoverOn(t, c.ns, c.name("ls"), claim, "ls", "--repo", "/repo", "--json")
		if err := json.Unmarshal([]byte(lastJSONLine(out)), &snaps); err != nil {
			t.Fatalf("listing %s: %v\n%s", claim, err, out)
		}
		byBackup := map[string][]string{}
		for _, s := range snaps {
			byBackup[s.Tags["backup"]] = append(byBackup[s.Tags["backup"]], s.ID)
		}
		recorded := map[string]string{}
		out = kubectl(t, "-n", c.ns, "get", "backups", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.phase}={.status.snapshotID}={.spec.storage.pvcName}{"\n"}{end}`)
		for _, line := range strings.Fields(out) {
			f := strings.Split(line, "=")
			name, phase, id, repo := f[0], f[1], f[2], f[3]
			if repo != claim {
				continue
			}
			if id != "" {
				recorded[c.ns+"/"+name] = id
			}
			ids := byBackup[c.ns+"/"+name]
			switch {
			case phase == "Completed" && (len(ids) != 1 || ids[0] != id):
				t.Errorf("Backup %s is Completed with snapshot %s; repository %s holds %v for it", name, id, claim, ids)
			case phase == "Failed" && len(ids) > 0:
				t.Errorf("Backup %s is Failed; repository %s holds snapshots %v for it", name, claim, ids)
			}
		}
		for b, ids := range byBackup {
			if len(ids) != 1 || recorded[b] != ids[0] {
				t.Errorf("repository %s holds snapshots %v of Backup %q, which records %q: a snapshot no Backup accounts for", claim, ids, b, recorded[b])
			}
		}
	}
	// The next backup succeeds.
	c.backup("p")
}

// settle waits until no Backup or RestoreJob is unfinished or being
// deleted, and no mover Job runs; then checks no mover pod is left.
func (c *chaos) settle() {
	t := c.t
	t.Helper()
	deadline := time.Now().Add(6 * time.Minute)
	var busy []string
	for time.Now().Before(deadline) {
		busy = nil
		for _, res := range []string{"backups", "restorejobs"} {
			out := kubectl(t, "-n", c.ns, "get", res, "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.phase}={.metadata.deletionTimestamp}{"\n"}{end}`)
			for _, line := range strings.Fields(out) {
				f := strings.Split(line, "=")
				if (f[1] != "Completed" && f[1] != "Failed") || f[2] != "" {
					busy = append(busy, res+"/"+line)
				}
			}
		}
		out := kubectl(t, "-n", c.ns, "get", "jobs", "-l", "app.kubernetes.io/managed-by=backup-operator", "-o", `jsonpath={range .items[?(@.status.active)]}{.metadata.name}{"\n"}{end}`)
		for _, j := range strings.Fields(out) {
			busy = append(busy, "job/"+j)
		}
		if len(busy) == 0 {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if len(busy) > 0 {
		sort.Strings(busy)
		t.Fatalf("not settled after 6 minutes (Running forever?): %v", busy)
	}
	out := kubectl(t, "-n", c.ns, "get", "pods", "-l", "app.kubernetes.io/managed-by=backup-operator", "-o", `jsonpath={range .items[?(@.status.phase=="Running")]}{.metadata.name}{"\n"}{end}`)
	if strings.TrimSpace(out) != "" {
		t.Errorf("mover pods still running with no active Job: %s", out)
	}
}

// scheduledRun makes policy p's schedule fire within a minute and checks
// the scheduled Backup completes, then puts the schedule back.
func (c *chaos) scheduledRun() {
	t := c.t
	kubectl(t, "-n", c.ns, "patch", "bp", "p", "--type=merge", "-p", `{"spec":{"schedule":"* * * * *"}}`)
	defer kubectl(t, "-n", c.ns, "patch", "bp", "p", "--type=merge", "-p", `{"spec":{"schedule":"0 0 1 1 *"}}`)
	since := time.Now()
	deadline := since.Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		out := kubectl(t, "-n", c.ns, "get", "backups", "-l", "backup.example.com/policy=p",
			"-o", `jsonpath={range .items[*]}{.metadata.name}={.metadata.annotations.backup\.example\.com/scheduled-time}{"\n"}{end}`)
		for _, line := range strings.Fields(out) {
			name, at, _ := strings.Cut(line, "=")
			if ts, err := time.Parse(time.RFC3339, at); err == nil && ts.After(since.Add(-time.Second)) {
				kubectl(t, "-n", c.ns, "patch", "bp", "p", "--type=merge", "-p", `{"spec":{"schedule":"0 0 1 1 *"}}`)
				waitBackup(t, c.ns, name)
				return
			}
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatal("no scheduled Backup within 3 minutes of a schedule of every minute")
}
