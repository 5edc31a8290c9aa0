package controller

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// scheduledBackup is a Backup of claim data in its own namespace ns, due at
// the scheduled time at, with its claims.
func scheduledBackup(ns string, at time.Time) []runtime.Object {
	b := newBackup(ns, "b", "uid-"+ns, ns)
	b.Annotations = map[string]string{v1alpha1.ScheduledTimeAnnotation: at.UTC().Format(time.RFC3339)}
	return []runtime.Object{b, boundPVC(ns, "data"), boundPVC(ns, "backup-repo")}
}

func objects(groups ...[]runtime.Object) []runtime.Object {
	var out []runtime.Object
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func queued(b *v1alpha1.Backup) bool {
	return b.Status.Phase == v1alpha1.BackupPhasePending && meta.IsStatusConditionTrue(b.Status.Conditions, v1alpha1.ConditionQueued)
}

var t0 = time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)

// With --max-movers 2, a third Backup waits (Pending, Queued, an event) and
// starts once a mover has finished.
func TestMoverLimitQueuesBackups(t *testing.T) {
	f := newFixture(t, objects(scheduledBackup("a", t0), scheduledBackup("b", t0.Add(time.Second)), scheduledBackup("c", t0.Add(2*time.Second)))...)
	f.m.opts.MaxMovers = 2
	for _, ns := range []string{"a", "b", "c"} {
		f.syncBackup(ns, "b")
	}
	if len(f.jobs("a")) != 1 || len(f.jobs("b")) != 1 || len(f.jobs("c")) != 0 {
		t.Fatalf("Jobs: a %d, b %d, c %d; want the first two started", len(f.jobs("a")), len(f.jobs("b")), len(f.jobs("c")))
	}
	c := f.backup("c", "b")
	if !queued(c) || !strings.Contains(c.Status.Message, "the cluster runs its most data movers at once (--max-movers 2)") {
		t.Fatalf("c: phase %q conditions %+v message %q, want Pending and Queued, saying the cluster is at its limit", c.Status.Phase, c.Status.Conditions, c.Status.Message)
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Normal Queued Waiting for a data mover slot") {
		t.Errorf("no Queued event: %s", ev)
	}
	// A sync while still full writes nothing new and emits no second event.
	writes(f.client)
	f.syncBackup("c", "b")
	if w := writes(f.client); len(w) != 0 {
		t.Errorf("a sync of a queued Backup wrote %q", w)
	}
	if ev := f.drainEvents(); len(ev) != 0 {
		t.Errorf("events on a second sync: %q", ev)
	}
	f.finishJob(ptr.To(f.jobs("a")[0]), summaryA)
	f.syncBackup("a", "b")
	if got := f.backup("a", "b"); got.Status.Phase != v1alpha1.BackupPhaseCompleted {
		t.Fatalf("a: %q, want Completed", got.Status.Phase)
	}
	f.syncBackup("c", "b")
	c = f.backup("c", "b")
	if len(f.jobs("c")) != 1 || c.Status.Phase != v1alpha1.BackupPhaseRunning || meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionQueued) != nil {
		t.Errorf("c after a finished: %d Jobs, phase %q, conditions %+v; want started, Queued gone", len(f.jobs("c")), c.Status.Phase, c.Status.Conditions)
	}
}

// Queued Backups start in the order of their scheduled time, whichever is
// synced first.
func TestQueuedBackupsStartInScheduledOrder(t *testing.T) {
	f := newFixture(t, objects(scheduledBackup("first", t0), scheduledBackup("late", t0.Add(2*time.Minute)), scheduledBackup("early", t0.Add(time.Minute)))...)
	f.m.opts.MaxMovers = 1
	f.syncBackup("first", "b")
	f.syncBackup("late", "b")
	f.syncBackup("early", "b")
	if !queued(f.backup("late", "b")) || !queued(f.backup("early", "b")) {
		t.Fatal("late and early should both wait")
	}
	f.finishJob(ptr.To(f.jobs("first")[0]), summaryA)
	f.syncBackup("first", "b")
	// late is synced first, but early was due first.
	f.syncBackup("late", "b")
	if !queued(f.backup("late", "b")) || len(f.jobs("late")) != 0 {
		t.Errorf("late started before early; message %q", f.backup("late", "b").Status.Message)
	}
	if msg := f.backup("late", "b").Status.Message; !strings.Contains(msg, "go to requests ahead of this one") {
		t.Errorf("late's message %q does not say others go first", msg)
	}
	f.syncBackup("early", "b")
	if len(f.jobs("early")) != 1 {
		t.Errorf("early did not start in the free slot: %q", f.backup("early", "b").Status.Message)
	}
}

// The per-node limit: movers placed beside a workload on the same node wait;
// one on another node starts.
func TestMoverLimitPerNode(t *testing.T) {
	podOn := func(ns, node string) runtime.Object {
		p := runningPod(ns, "db-0")
		p.Spec.NodeName = node
		return p
	}
	f := newFixture(t, objects(scheduledBackup("a", t0), []runtime.Object{podOn("a", "n1")},
		scheduledBackup("b", t0.Add(time.Second)), []runtime.Object{podOn("b", "n1")},
		scheduledBackup("c", t0.Add(2*time.Second)), []runtime.Object{podOn("c", "n2")})...)
	f.m.opts.MaxMoversPerNode = 1
	for _, ns := range []string{"a", "b", "c"} {
		f.syncBackup(ns, "b")
	}
	if len(f.jobs("a")) != 1 || len(f.jobs("b")) != 0 || len(f.jobs("c")) != 1 {
		t.Fatalf("Jobs: a %d, b %d, c %d; want a and c started, b waiting for node n1", len(f.jobs("a")), len(f.jobs("b")), len(f.jobs("c")))
	}
	if msg := f.backup("b", "b").Status.Message; !strings.Contains(msg, "node n1 runs its most data movers") {
		t.Errorf("b's message %q does not name the node", msg)
	}
}

// A restore waiting for a slot goes before every queued Backup.
func TestRestoreGoesBeforeQueuedBackups(t *testing.T) {
	bk := completedBackup("r", "done", 1000)
	f := newFixture(t, objects(scheduledBackup("a", t0), scheduledBackup("q", t0.Add(time.Second)),
		[]runtime.Object{bk, newRestore("r", "r", "done", "data"), claimOf("r", "data", "1Gi"), boundPVC("r", "backup-repo")})...)
	f.m.opts.MaxMovers = 1
	f.syncBackup("a", "b")
	f.syncBackup("q", "b")
	f.syncRestore("r", "r")
	r := f.restore("r", "r")
	if r.Status.Phase != v1alpha1.RestorePhasePending || !meta.IsStatusConditionTrue(r.Status.Conditions, v1alpha1.ConditionQueued) {
		t.Fatalf("restore: phase %q conditions %+v, want Pending and Queued", r.Status.Phase, r.Status.Conditions)
	}
	f.finishJob(ptr.To(f.jobs("a")[0]), summaryA)
	f.syncBackup("a", "b")
	f.syncBackup("q", "b") // the Backup, queued earlier, is synced first
	if len(f.jobs("q")) != 0 {
		t.Fatal("the queued Backup took the slot a waiting restore goes first for")
	}
	f.syncRestore("r", "r")
	if r := f.restore("r", "r"); r.Status.Phase != v1alpha1.RestorePhaseRunning || meta.FindStatusCondition(r.Status.Conditions, v1alpha1.ConditionQueued) != nil {
		t.Errorf("restore: phase %q conditions %+v, want Running without Queued", r.Status.Phase, r.Status.Conditions)
	}
}

// A queued Backup past its policy's startingDeadlineSeconds is failed as a
// missed run, not started late.
func TestQueuedBackupPastItsDeadlineIsMissed(t *testing.T) {
	p := &v1alpha1.BackupPolicy{}
	p.Namespace, p.Name = "late", "p"
	p.Spec.StartingDeadlineSeconds = ptr.To(int64(20))
	late := scheduledBackup("late", t0)
	late[0].(*v1alpha1.Backup).Spec.PolicyName = "p"
	f := newFixture(t, objects(scheduledBackup("a", t0.Add(-time.Minute)), late, []runtime.Object{p})...)
	f.m.opts.MaxMovers = 1
	f.syncBackup("a", "b")
	f.syncBackup("late", "b") // the fixture's clock is 30 s after late's scheduled time
	got := f.backup("late", "b")
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "MissedStartingDeadline" {
		t.Fatalf("phase %q reason %q message %q, want Failed: MissedStartingDeadline", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Message)
	}
	if !strings.Contains(got.Status.Message, "not started by 2026-11-30T02:00:20Z") || len(f.jobs("late")) != 0 {
		t.Errorf("message %q, %d Jobs", got.Status.Message, len(f.jobs("late")))
	}
}

// A slot granted a moment ago counts although the Job cache does not show
// its Job yet: two syncs back to back never start two movers for one slot.
func TestGrantedSlotCountsBeforeTheCacheShowsTheJob(t *testing.T) {
	f := newFixture(t, objects(scheduledBackup("a", t0), scheduledBackup("b", t0.Add(time.Second)))...)
	f.m.opts.MaxMovers = 1
	f.syncBackup("a", "b")
	// The Job cache loses a's Job, as a cache that lags the API would.
	for _, j := range f.jobs("a") {
		f.jobInformerDelete(ptr.To(j))
	}
	f.syncBackup("b", "b")
	if len(f.jobs("b")) != 0 || !queued(f.backup("b", "b")) {
		t.Errorf("b started while a held the only slot (its Job not yet cached)")
	}
}

// A scheduled Backup past its deadline is not started late even when a slot
// is free; an on-demand one (no scheduled time) has no deadline.
func TestLateBackupIsMissedEvenWithAFreeSlot(t *testing.T) {
	p := &v1alpha1.BackupPolicy{}
	p.Namespace, p.Name = "late", "p"
	p.Spec.StartingDeadlineSeconds = ptr.To(int64(20))
	late := scheduledBackup("late", t0)
	late[0].(*v1alpha1.Backup).Spec.PolicyName = "p"
	onDemand := newBackup("late", "now", "uid-now", "late")
	onDemand.Spec.PolicyName = "p"
	onDemand.Annotations = map[string]string{v1alpha1.TriggerAnnotation: "x"}
	f := newFixture(t, objects(late, []runtime.Object{p})...)
	f.syncBackup("late", "b")
	if got := f.backup("late", "b"); failedReason(got.Status.Conditions) != "MissedStartingDeadline" || len(f.jobs("late")) != 0 {
		t.Fatalf("phase %q reason %q with %d Jobs, want a missed run", got.Status.Phase, failedReason(got.Status.Conditions), len(f.jobs("late")))
	}
	f2 := newFixture(t, onDemand, p, boundPVC("late", "data"), boundPVC("late", "backup-repo"))
	f2.syncBackup("late", "now")
	if got := f2.backup("late", "now"); got.Status.Phase != v1alpha1.BackupPhaseRunning {
		t.Errorf("the on-demand Backup: phase %q message %q, want Running", got.Status.Phase, got.Status.Message)
	}
}

// A queued Backup whose node is full does not keep a free slot from a later
// Backup on another node.
func TestQueuedBackupOnAFullNodeDoesNotBlockOthers(t *testing.T) {
	podOn := func(ns, node string) runtime.Object {
		p := runningPod(ns, "db-0")
		p.Spec.NodeName = node
		return p
	}
	f := newFixture(t, objects(scheduledBackup("a", t0), []runtime.Object{podOn("a", "n1")},
		scheduledBackup("b", t0.Add(time.Second)), []runtime.Object{podOn("b", "n1")},
		scheduledBackup("d", t0.Add(2*time.Second)), []runtime.Object{podOn("d", "n2")})...)
	f.m.opts.MaxMovers, f.m.opts.MaxMoversPerNode = 3, 1
	f.syncBackup("a", "b")
	f.syncBackup("b", "b")
	if !queued(f.backup("b", "b")) {
		t.Fatal("b should wait for node n1")
	}
	f.syncBackup("d", "b")
	if len(f.jobs("d")) != 1 {
		t.Errorf("d on node n2 waits behind b, which cannot use a slot: %q", f.backup("d", "b").Status.Message)
	}
}

// The queue moving does not rewrite a waiting Backup's status.
func TestQueuedStatusIsStable(t *testing.T) {
	f := newFixture(t, objects(scheduledBackup("a", t0), scheduledBackup("b", t0.Add(time.Second)), scheduledBackup("c", t0.Add(2*time.Second)))...)
	f.m.opts.MaxMovers = 1
	for _, ns := range []string{"a", "b", "c"} {
		f.syncBackup(ns, "b")
	}
	f.finishJob(ptr.To(f.jobs("a")[0]), summaryA)
	f.syncBackup("a", "b")
	f.syncBackup("b", "b") // b starts; c moves up the queue
	if len(f.jobs("b")) != 1 {
		t.Fatal("b did not start")
	}
	writes(f.client)
	f.syncBackup("c", "b")
	if w := writes(f.client); len(w) != 0 {
		t.Errorf("c's status was rewritten as the queue moved: %q", w)
	}
}

// A restore of a claim whose Backup waits in the queue goes ahead of it.
func TestRestoreIsNotBlockedByAQueuedBackupOfItsClaim(t *testing.T) {
	bk := completedBackup("r", "done", 1000)
	nightly := newBackup("r", "nightly", "uid-nightly", "r")
	f := newFixture(t, objects(scheduledBackup("a", t0), []runtime.Object{bk, nightly, newRestore("r", "r", "done", "data"), claimOf("r", "data", "1Gi"), boundPVC("r", "backup-repo")})...)
	f.m.opts.MaxMovers = 2
	f.syncBackup("a", "b")
	// A second mover runs elsewhere, so nightly waits.
	f.m.opts.MaxMovers = 1
	f.syncBackup("r", "nightly")
	if !queued(f.backup("r", "nightly")) {
		t.Fatal("nightly should be queued")
	}
	f.m.opts.MaxMovers = 2
	f.syncRestore("r", "r")
	if r := f.restore("r", "r"); r.Status.Phase != v1alpha1.RestorePhaseRunning {
		t.Errorf("restore: phase %q message %q, want Running ahead of the queued nightly Backup of its claim", r.Status.Phase, r.Status.Message)
	}
}

// A restore's slot is released as soon as its Job shows in the cache, so a
// finished restore does not keep the slot.
func TestReservationEndsWithItsJob(t *testing.T) {
	bk := completedBackup("r", "done", 1000)
	f := newFixture(t, objects(scheduledBackup("q", t0), []runtime.Object{bk, newRestore("r", "r", "done", "data"), claimOf("r", "data", "1Gi"), boundPVC("r", "backup-repo")})...)
	f.m.opts.MaxMovers = 1
	f.syncRestore("r", "r")
	job := f.onlyJob("r")
	f.finishJob(&job, restoreSummary)
	f.syncRestore("r", "r")
	if r := f.restore("r", "r"); r.Status.Phase != v1alpha1.RestorePhaseCompleted {
		t.Fatalf("restore %q", r.Status.Phase)
	}
	f.syncBackup("q", "b")
	if len(f.jobs("q")) != 1 {
		t.Errorf("the Backup waits for a slot the finished restore still held: %q", f.backup("q", "b").Status.Message)
	}
}
