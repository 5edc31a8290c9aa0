package apiserver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"

	"example.com/backup-operator/hack/cluster"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/controller"
	"example.com/backup-operator/pkg/generated/clientset/versioned"
)

// stealLease makes intruder the Lease's holder, as another replica would.
func stealLease(ctx context.Context, kube kubernetes.Interface, ns, name, intruder string, seconds int32) error {
	l, err := kube.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.NewMicroTime(time.Now())
	l.Spec.HolderIdentity = ptr(intruder)
	l.Spec.LeaseDurationSeconds = ptr(seconds)
	l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
	_, err = kube.CoordinationV1().Leases(ns).Update(ctx, l, metav1.UpdateOptions{})
	return err
}

// withLeaseVersions gives the fake clientset's Leases resourceVersions and
// refuses an update of a stale one, as kube-apiserver does: a leader renews
// without reading first and relies on the conflict to learn it lost.
func withLeaseVersions(kube *fake.Clientset) {
	leases := coordinationv1.SchemeGroupVersion.WithResource("leases")
	version := 0
	stamp := func(l *coordinationv1.Lease) *coordinationv1.Lease {
		l = l.DeepCopy()
		version++
		l.ResourceVersion = fmt.Sprint(version)
		return l
	}
	// Reactions run one at a time, under the fake's lock.
	kube.PrependReactor("create", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l := stamp(a.(k8stesting.CreateAction).GetObject().(*coordinationv1.Lease))
		return true, l, kube.Tracker().Create(leases, l, l.Namespace)
	})
	kube.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		current, err := kube.Tracker().Get(leases, l.Namespace, l.Name)
		if err != nil {
			return true, nil, err
		}
		if current.(*coordinationv1.Lease).ResourceVersion != l.ResourceVersion {
			return true, nil, apierrors.NewConflict(leases.GroupResource(), l.Name, fmt.Errorf("stale resourceVersion %s", l.ResourceVersion))
		}
		l = stamp(l)
		return true, l, kube.Tracker().Update(leases, l, l.Namespace)
	})
}

func holder(ctx context.Context, kube kubernetes.Interface, ns, name string) string {
	l, err := kube.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// A lost Lease stops the run; once it has returned the process campaigns
// again, and a regained Lease starts a new run, never two at once. When the
// context ends, the Lease is released only after the run has returned.
func TestRunElectedRunsAgainAfterALostLease(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	withLeaseVersions(kube)
	le := controller.LeaderElection{Namespace: "backup-system", Name: "controllers", Identity: "me",
		LeaseDuration: 1500 * time.Millisecond, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond}
	var (
		mu                 sync.Mutex
		running, maxAtOnce int
		holdersAtExit      []string
	)
	started := make(chan struct{}, 10)
	stopped := make(chan struct{}, 10)
	run := func(runCtx context.Context) {
		mu.Lock()
		running++
		maxAtOnce = max(maxAtOnce, running)
		mu.Unlock()
		started <- struct{}{}
		<-runCtx.Done()
		stopped <- struct{}{}
		time.Sleep(200 * time.Millisecond) // winding down: nothing may start meanwhile
		mu.Lock()
		running--
		holdersAtExit = append(holdersAtExit, holder(ctx, kube, le.Namespace, le.Name))
		mu.Unlock()
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- controller.RunElected(runCtx, kube, le, run) }()
	awaitStart := func(term string) {
		t.Helper()
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s run did not start; Lease holder %q", term, holder(ctx, kube, le.Namespace, le.Name))
		}
	}
	awaitStart("first")
	if h := holder(ctx, kube, le.Namespace, le.Name); h != "me" {
		t.Fatalf("running without holding the Lease: holder %q", h)
	}
	// The intruder's lease outlasts the renew deadline, so the leader gives up
	// before it could take an expired Lease back.
	for {
		if err := stealLease(ctx, kube, le.Namespace, le.Name, "intruder", 2); err == nil {
			break
		} else if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatalf("the run went on after the Lease was lost; holder %q", holder(ctx, kube, le.Namespace, le.Name))
	}
	awaitStart("second (after the Lease was lost and regained)")
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunElected did not return after its context ended")
	}
	mu.Lock()
	defer mu.Unlock()
	if maxAtOnce != 1 || running != 0 {
		t.Errorf("runs at once: at most %d, %d left running; want 1 and 0", maxAtOnce, running)
	}
	if want := []string{"intruder", "me"}; fmt.Sprint(holdersAtExit) != fmt.Sprint(want) {
		t.Errorf("Lease holders as each run returned: %q, want %q (the last run returns before the Lease is released)", holdersAtExit, want)
	}
	if h := holder(ctx, kube, le.Namespace, le.Name); h != "" {
		t.Errorf("Lease still held by %q after RunElected returned; want it released", h)
	}
}

var identityInLog = regexp.MustCompile(`"Campaigning for the controllers' Lease".* identity="([^"]+)"`)

// replica is one backup-apiserver of the test, with its identity in the Lease.
type replica struct {
	name     string
	server   *cluster.BackupAPIServer
	client   versioned.Interface
	identity string
}

func (r *replica) log(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(r.server.Process.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// terms counts how often this replica started its controllers.
func (r *replica) terms(t *testing.T) int {
	return strings.Count(r.log(t), `"Starting controllers"`)
}

// Two servers on one etcd both serve the API; the holder of the Lease alone
// runs the controllers, so a trigger yields one Backup, before and after the
// leader is killed, and after the survivor loses the Lease and regains it.
func TestControllersRunOnTheLeaseHolderOnly(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	ns := "leader-election"
	createNamespace(t, ns)
	const (
		leaseName     = "backup-apiserver-controllers"
		leaseDuration = 6 * time.Second
		// Taking over a Lease needs the lease duration from the last renewal
		// seen, then a retry (1s, with jitter); the rest is slack for this
		// loaded 2-core machine.
		handover = leaseDuration + 6*time.Second
	)
	adminConfig, err := clientcmd.BuildConfigFromFlags("", controlPlane.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(adminConfig)

	bin := filepath.Join(filepath.Dir(server.Dir), "bin", "backup-apiserver")
	var replicas []*replica
	for _, name := range []string{"a", "b"} {
		s, err := controlPlane.StartBackupAPIServerWith(ctx, cluster.BackupAPIServerOptions{
			Bin: bin, Dir: filepath.Join(t.TempDir(), name), SharedEtcd: true, Unregistered: true,
			Args: []string{"--controllers=true", "--etcd-prefix=/backup-apiserver-leader-election",
				"--leader-elect-resource-namespace=" + ns, "--leader-elect-lease-duration=" + leaseDuration.String(),
				"--leader-elect-renew-deadline=4s", "--leader-elect-retry-period=1s"},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		cfg, err := s.ClientConfig(controlPlane.AdminKubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{name: name, server: s, client: versioned.NewForConfigOrDie(cfg)}
		replicas = append(replicas, r)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("server %s log (end):\n%s", r.name, r.server.Process.Tail(60))
			}
		})
	}
	for _, r := range replicas {
		if m := identityInLog.FindStringSubmatch(r.log(t)); m != nil {
			r.identity = m[1]
		} else {
			t.Fatalf("server %s logged no identity:\n%s", r.name, r.server.Process.Tail(20))
		}
	}
	byIdentity := func(id string) *replica {
		for _, r := range replicas {
			if r.identity == id {
				return r
			}
		}
		return nil
	}
	awaitHolder := func(what string, timeout time.Duration, ok func(string) bool) string {
		t.Helper()
		var h string
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if h = holder(ctx, kube, ns, leaseName); ok(h) {
				return h
			}
		}
		t.Fatalf("timed out after %s waiting for %s; Lease holder %q", timeout, what, h)
		return ""
	}

	leader := byIdentity(awaitHolder("one of the servers to hold the Lease", time.Minute, func(h string) bool { return byIdentity(h) != nil }))
	follower := replicas[0]
	if follower == leader {
		follower = replicas[1]
	}
	t.Logf("leader %s (%s), follower %s (%s)", leader.name, leader.identity, follower.name, follower.identity)

	// Both serve the same objects: written through the follower, read through the leader.
	policy, err := follower.client.BackupV1alpha1().BackupPolicies(ns).Create(ctx, &v1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: v1alpha1.BackupPolicySpec{Schedule: "@yearly", Target: v1alpha1.VolumeTarget{PVCName: "data"},
			// Keep every failed Backup (none completes here) so all can be counted.
			Retention: v1alpha1.RetentionPolicy{KeepLast: ptr(int32(7)), KeepFailed: ptr(int32(100))}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the follower does not serve the API: %v", err)
	}
	if got, err := leader.client.BackupV1alpha1().BackupPolicies(ns).Get(ctx, "db", metav1.GetOptions{}); err != nil || got.UID != policy.UID {
		t.Fatalf("the leader does not serve the follower's policy: %v", err)
	}

	// trigger sets the on-demand annotation through r and waits until the
	// controllers answered it; then every trigger value so far must have
	// exactly one Backup, and no more appear.
	var values []string
	trigger := func(r *replica, value string) {
		t.Helper()
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.TriggerAnnotation, value)
		if _, err := r.client.BackupV1alpha1().BackupPolicies(ns).Patch(ctx, "db", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		values = append(values, value)
	}
	backupsPerTrigger := func(r *replica) map[string]int {
		t.Helper()
		list, err := r.client.BackupV1alpha1().Backups(ns).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.PolicyLabel + "=db"})
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, b := range list.Items {
			if v := b.Annotations[v1alpha1.TriggerAnnotation]; v != "" {
				n[v]++
			}
		}
		return n
	}
	awaitOneBackupEach := func(r *replica) {
		t.Helper()
		last := values[len(values)-1]
		var n map[string]int
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
			p, err := r.client.BackupV1alpha1().BackupPolicies(ns).Get(ctx, "db", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n = backupsPerTrigger(r)
			if p.Status.LastTrigger != nil && p.Status.LastTrigger.Value == last && n[last] > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("trigger %q not answered within a minute: Backups per trigger %v", last, n)
			}
		}
		time.Sleep(3 * time.Second) // a second set of controllers would create another by now
		n = backupsPerTrigger(r)
		for _, v := range values {
			if n[v] != 1 {
				t.Errorf("trigger %q has %d Backups, want 1 (Backups per trigger: %v)", v, n[v], n)
			}
		}
		if len(n) != len(values) {
			t.Errorf("Backups per trigger %v; want one for each of %q", n, values)
		}
	}

	trigger(follower, "one")
	awaitOneBackupEach(follower)
	if leader.terms(t) != 1 || follower.terms(t) != 0 {
		t.Errorf("controllers started %d times on the leader and %d on the follower; want 1 and 0", leader.terms(t), follower.terms(t))
	}

	// The leader dies without releasing the Lease: the follower takes it over
	// once it expires.
	leader.server.Kill()
	killed := time.Now()
	awaitHolder("the follower to take the Lease over", handover, func(h string) bool { return h == follower.identity })
	t.Logf("Lease handed over %s after the leader was killed (lease duration %s)", time.Since(killed).Round(100*time.Millisecond), leaseDuration)
	trigger(follower, "two")
	awaitOneBackupEach(follower)

	// The survivor loses the Lease to another holder: its controllers stop
	// and create nothing until it regains the Lease, then start afresh.
	stealing, stopStealing := context.WithCancel(ctx)
	stolen := make(chan struct{})
	go func() {
		defer close(stolen)
		for stealing.Err() == nil {
			if err := stealLease(ctx, kube, ns, leaseName, "intruder", int32(leaseDuration.Seconds())); err != nil && !apierrors.IsConflict(err) {
				t.Errorf("stealing the Lease: %v", err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	for deadline := time.Now().Add(handover); !strings.Contains(follower.log(t), `"Lost the controllers' Lease; controllers stopped, campaigning again"`); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			stopStealing()
			t.Fatalf("the survivor did not stop its controllers within %s of losing the Lease:\n%s", handover, follower.server.Process.Tail(20))
		}
	}
	trigger(follower, "three")
	time.Sleep(3 * time.Second)
	if n := backupsPerTrigger(follower); n["three"] != 0 {
		t.Errorf("a Backup was created while no server of ours held the Lease: %v", n)
	}
	stopStealing()
	<-stolen
	awaitHolder("the survivor to regain the Lease", handover, func(h string) bool { return h == follower.identity })
	awaitOneBackupEach(follower)
	if n := follower.terms(t); n != 2 {
		t.Errorf("the survivor started its controllers %d times, want 2 (on takeover and on regaining the Lease)", n)
	}

	// A server that stops in order releases the Lease after its controllers stopped.
	follower.server.Stop()
	if h := holder(ctx, kube, ns, leaseName); h != "" {
		t.Errorf("Lease still held by %q after its holder stopped; want it released", h)
	}
	if !strings.Contains(follower.log(t), `"Controllers stopped; released the controllers' Lease"`) {
		t.Errorf("the stopped server did not log releasing the Lease:\n%s", follower.server.Process.Tail(20))
	}
}
