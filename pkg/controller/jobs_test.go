package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	k8stesting "k8s.io/client-go/testing"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

const summaryA = `{"operation":"backup","snapshotID":"aaaaaaaaaaaaaaaaaaaaaaaa","files":1,"bytes":10}`

const summaryB = `{"operation":"backup","snapshotID":"bbbbbbbbbbbbbbbbbbbbbbbb","files":1,"bytes":10}`

// Two Backups of the same name in two namespaces that back up the same claim
// of a third each get their own Job, one after the other, and each records
// its own snapshot.
func TestSameNameInTwoNamespacesGetsTwoJobs(t *testing.T) {
	a := newBackup("team-a", "nightly-202611300200", "uid-a", "prod")
	b := newBackup("team-b", "nightly-202611300200", "uid-b", "prod")
	b.CreationTimestamp = metav1.NewTime(a.CreationTimestamp.Add(time.Second))
	f := newFixture(t, a, b, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("team-a", a.Name)
	f.syncBackup("team-b", b.Name)
	if got := f.backup("team-b", b.Name); got.Status.Phase != v1alpha1.BackupPhasePending || !strings.Contains(got.Status.Message, "Backup team-a/nightly-202611300200") {
		t.Fatalf("team-b: phase %q message %q, want Pending behind team-a's Backup of the same claim", got.Status.Phase, got.Status.Message)
	}
	jobs := f.jobs("prod")
	if len(jobs) != 1 {
		t.Fatalf("want only team-a's Job while it runs, got %d", len(jobs))
	}
	f.finishJob(&jobs[0], summaryA)
	f.syncBackup("team-a", a.Name)
	f.syncBackup("team-b", b.Name)
	jobs = f.jobs("prod")
	if len(jobs) != 2 {
		t.Fatalf("want a Job of team-b's own, got %d Jobs", len(jobs))
	}
	ja, jb := f.backup("team-a", a.Name).Status.JobName, f.backup("team-b", b.Name).Status.JobName
	if ja == "" || ja == jb {
		t.Fatalf("the Backups share Job %q/%q", ja, jb)
	}
	if got := f.backup("team-b", b.Name); got.Status.Phase != v1alpha1.BackupPhaseRunning || got.Status.SnapshotID != "" {
		t.Errorf("team-b recorded the other Backup's outcome: phase %q snapshot %q", got.Status.Phase, got.Status.SnapshotID)
	}
	for _, j := range jobs {
		if j.Name == jb {
			f.finishJob(&j, summaryB)
		}
	}
	f.syncBackup("team-b", b.Name)
	if got := f.backup("team-a", a.Name); got.Status.Phase != v1alpha1.BackupPhaseCompleted || got.Status.SnapshotID != "aaaaaaaaaaaaaaaaaaaaaaaa" {
		t.Errorf("team-a: phase %q snapshot %q, want Completed with its snapshot", got.Status.Phase, got.Status.SnapshotID)
	}
	if got := f.backup("team-b", b.Name); got.Status.Phase != v1alpha1.BackupPhaseCompleted || got.Status.SnapshotID != "bbbbbbbbbbbbbbbbbbbbbbbb" {
		t.Errorf("team-b: phase %q snapshot %q, want Completed with its own snapshot", got.Status.Phase, got.Status.SnapshotID)
	}
}

// A Job of the expected name that is not the owner's is never adopted: the
// Backup fails with a reason and an event, and the Job is left alone.
func TestForeignJobIsNotAdopted(t *testing.T) {
	bk := newBackup("prod", "nightly", "uid-new", "prod")
	for _, tc := range []struct {
		name string
		job  func(name string) *batchv1.Job
	}{
		{"no owner at all", func(name string) *batchv1.Job {
			return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name}}
		}},
		{"controlled by another object", func(name string) *batchv1.Job {
			return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name, OwnerReferences: []metav1.OwnerReference{
				*metav1.NewControllerRef(newBackup("prod", "nightly", "uid-old", "prod"), v1alpha1.SchemeGroupVersion.WithKind("Backup"))}}}
		}},
		{"our labels with another UID", func(name string) *batchv1.Job {
			return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name, Labels: map[string]string{
				v1alpha1.ManagedByLabel: v1alpha1.ManagedBy, v1alpha1.OwnerUIDLabel: "uid-old"}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			foreign := tc.job(jobName("backup", bk, ""))
			f := newFixture(t, bk.DeepCopy(), foreign, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
			f.syncBackup("prod", bk.Name)
			got := f.backup("prod", bk.Name)
			if got.Status.Phase != v1alpha1.BackupPhaseFailed || !strings.Contains(got.Status.Message, "not created for this object") {
				t.Errorf("phase %q message %q, want Failed naming the foreign Job", got.Status.Phase, got.Status.Message)
			}
			if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "JobConflict") {
				t.Errorf("no JobConflict event: %s", ev)
			}
			if jobs := f.jobs("prod"); len(jobs) != 1 || len(jobs[0].Labels) != len(foreign.Labels) {
				t.Errorf("the foreign Job was changed or another was created: %+v", jobs)
			}
		})
	}
}

// A Backup deleted and created again under the same name (its on-demand
// trigger replayed, say) never uses the Job of the one before: it runs its
// own, and is not Completed with the earlier snapshot.
func TestRecreatedBackupDoesNotUseTheOldJob(t *testing.T) {
	old := newBackup("prod", "db-manual-0123456789", "uid-old", "prod")
	f := newFixture(t, old, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("prod", old.Name)
	oldJob := f.jobs("prod")[0]
	f.finishJob(&oldJob, summaryA)

	// The first Backup is gone (its snapshot pruned); a new one of the same name appears.
	if err := f.client.BackupV1alpha1().Backups("prod").Delete(context.Background(), old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.own.Backup().V1alpha1().Backups().Informer().GetIndexer().Delete(old)
	again := newBackup("prod", old.Name, "uid-again", "prod")
	if _, err := f.client.BackupV1alpha1().Backups("prod").Create(context.Background(), again, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.cache(again)
	f.syncBackup("prod", again.Name)
	f.syncBackup("prod", again.Name)
	got := f.backup("prod", again.Name)
	if got.Status.Phase == v1alpha1.BackupPhaseCompleted || got.Status.SnapshotID != "" {
		t.Fatalf("the new Backup took the old Job's outcome: phase %q snapshot %q", got.Status.Phase, got.Status.SnapshotID)
	}
	if got.Status.JobName == oldJob.Name || len(f.jobs("prod")) != 2 {
		t.Errorf("the new Backup did not get a Job of its own: %q (old %q)", got.Status.JobName, oldJob.Name)
	}
}

// Names the API accepts (Backups of 253 characters, on-demand names of 68)
// give valid Job names and label values, and distinct owners stay distinct.
func TestLongNamesGiveValidJobs(t *testing.T) {
	long := strings.Repeat("n", 240) + ".x-253"
	long += strings.Repeat("z", 253-len(long))
	onDemand := strings.Repeat("p", 50) + "-manual-0123456789"
	seen := map[string]bool{}
	for i, name := range []string{long, long[:252] + "y", onDemand, "a", "nightly-202611300200"} {
		for _, ns := range []string{"team-a", strings.Repeat("n", 63)} {
			bk := newBackup(ns, name, "uid-"+string(rune('a'+i))+ns[:1], ns)
			bk.Spec.Target.PVCName = strings.Repeat("c", 253)
			job := (&Manager{opts: Options{MoverImage: "img"}}).moverJob(jobSpec{kind: "backup", namespace: ns, name: jobName("backup", bk, ""),
				owner: bk, ownerKind: "Backup", repo: v1alpha1.RepositoryStorage{PVCName: strings.Repeat("r", 253)}, sourcePVC: bk.Spec.Target.PVCName, args: []string{"backup"}})
			if msgs := validation.IsDNS1123Subdomain(job.Name); len(msgs) > 0 || len(job.Name) > maxJobName {
				t.Errorf("Job name %q (%d): %v", job.Name, len(job.Name), msgs)
			}
			if seen[job.Name] {
				t.Errorf("Job name %q used twice", job.Name)
			}
			seen[job.Name] = true
			for _, l := range []map[string]string{job.Labels, job.Spec.Template.Labels} {
				for k, v := range l {
					if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
						t.Errorf("label %s=%q: %v", k, v, msgs)
					}
				}
			}
			if job.Annotations[v1alpha1.OwnerAnnotation] != ns+"/"+name {
				t.Errorf("owner annotation %q, want the full key", job.Annotations[v1alpha1.OwnerAnnotation])
			}
		}
	}
	if v1alpha1.LabelValue(long) == v1alpha1.LabelValue(long[:252]+"y") {
		t.Error("two long values share a label value")
	}
	if v := v1alpha1.LabelValue("short"); v != "short" {
		t.Errorf("valid values are kept: %q", v)
	}
}

// A Job the API refuses as invalid cannot succeed on retry: the Backup is
// Failed with the API's message and an event, not left without a phase.
func TestInvalidJobFailsTheBackup(t *testing.T) {
	bk := newBackup("prod", "nightly", "uid-1", "prod")
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.kube.PrependReactor("create", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Group: "batch", Kind: "Job"}, "x",
			field.ErrorList{field.Invalid(field.NewPath("metadata", "labels"), "v", "must be no more than 63 characters")})
	})
	f.syncBackup("prod", bk.Name)
	got := f.backup("prod", bk.Name)
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || !strings.Contains(got.Status.Message, "must be no more than 63 characters") {
		t.Errorf("phase %q message %q, want Failed with the API's reason", got.Status.Phase, got.Status.Message)
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Warning JobRefused") {
		t.Errorf("no JobRefused event: %s", ev)
	}
}

// Other create errors are retried, with a warning event each time.
func TestJobCreateErrorIsRetriedWithAnEvent(t *testing.T) {
	bk := newBackup("prod", "nightly", "uid-1", "prod")
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.kube.PrependReactor("create", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd is slow")
	})
	if _, err := f.m.syncBackup(context.Background(), "prod", bk.Name); err == nil {
		t.Fatal("a transient error must be returned so the key is retried")
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "JobCreateFailed") {
		t.Errorf("no JobCreateFailed event: %s", ev)
	}
	if got := f.backup("prod", bk.Name); got.Status.Phase == v1alpha1.BackupPhaseFailed {
		t.Error("a transient error failed the Backup")
	}
}

// A Job whose pod is of an earlier Job of the same name is not read.
func TestOutcomeReadsOnlyTheJobsOwnPods(t *testing.T) {
	bk := newBackup("prod", "nightly", "uid-1", "prod")
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("prod", bk.Name)
	job := f.jobs("prod")[0]
	stale := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: job.Name + "-old",
		Labels: map[string]string{"job-name": job.Name, batchv1.ControllerUidLabel: "uid-of-an-earlier-job"}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: moverContainer,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: summaryA}}}}}}
	f.cache(stale)
	job.UID = "uid-of-this-job"
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	f.cache(&job)
	if _, err := f.m.syncBackup(context.Background(), "prod", bk.Name); err != nil {
		t.Fatal(err)
	}
	if got := f.backup("prod", bk.Name); got.Status.Phase != v1alpha1.BackupPhaseFailed || got.Status.SnapshotID != "" {
		t.Errorf("phase %q snapshot %q: the summary of another Job's pod was used", got.Status.Phase, got.Status.SnapshotID)
	}
}

// A mover Job of the claim that has not finished keeps the claim busy even
// when its owner is gone (a deleted RestoreJob's mover runs on) or the
// caches have not seen it yet: a Backup waits, and starts once it finished.
func TestRunningMoverOfAGoneOwnerKeepsTheClaimBusy(t *testing.T) {
	bk := newBackup("prod", "b", "uid-b", "prod")
	orphan := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "restore-gone-0123456789", UID: "orphan-uid",
		Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy, v1alpha1.JobKindLabel: "restore",
			v1alpha1.OwnerUIDLabel: "uid-gone", v1alpha1.ClaimLabel: "data"},
		Annotations: map[string]string{v1alpha1.OwnerAnnotation: "other/gone"}}}
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	if err := f.kube.Tracker().Add(orphan); err != nil { // in the API, not yet in the cache
		t.Fatal(err)
	}
	f.syncBackup("prod", "b")
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhasePending || !strings.Contains(got.Status.Message, "restore-gone-0123456789 (of other/gone)") {
		t.Fatalf("phase %q message %q, want Pending behind the running mover", got.Status.Phase, got.Status.Message)
	}
	if n := len(f.jobs("prod")); n != 1 {
		t.Fatalf("%d Jobs, want only the running mover", n)
	}
	orphan.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}
	if _, err := f.kube.BatchV1().Jobs("prod").UpdateStatus(context.Background(), orphan, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.resync()
	f.syncBackup("prod", "b")
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseRunning {
		t.Errorf("phase %q after the mover finished, want Running", got.Status.Phase)
	}
}

// A Job create refused with 403 (a quota, a webhook) may pass later: the
// Backup waits Pending with the refusal, and fails once it has waited
// moverPodCreateTimeout, so it does not hold its claim forever.
func TestForbiddenJobCreateWaitsThenFails(t *testing.T) {
	bk := newBackup("prod", "b", "uid-1", "prod")
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.kube.PrependReactor("create", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x", fmt.Errorf("exceeded quota: jobs"))
	})
	f.now = bk.CreationTimestamp.Add(time.Minute)
	if res := f.syncBackup("prod", "b"); res.after == 0 {
		t.Error("no retry scheduled")
	}
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhasePending || !strings.Contains(got.Status.Message, "exceeded quota") {
		t.Fatalf("phase %q message %q, want Pending with the refusal", got.Status.Phase, got.Status.Message)
	}
	f.now = bk.CreationTimestamp.Add(moverPodCreateTimeout + time.Second)
	f.syncBackup("prod", "b")
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "JobCreateRefused" {
		t.Errorf("phase %q reason %q, want Failed: JobCreateRefused", got.Status.Phase, failedReason(got.Status.Conditions))
	}
}

// A Backup deleted while its mover ran, whose mover then finished, has a
// snapshot its status does not name yet: the finalizer records it and prunes
// it, instead of letting the Backup go and leaving the snapshot behind.
func TestFinalizerPrunesASnapshotStoredMeanwhile(t *testing.T) {
	bk := newBackup("prod", "b", "uid-1", "prod")
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("prod", "b")
	job := f.jobs("prod")[0]
	cur := f.backup("prod", "b")
	now := metav1.NewTime(f.now)
	cur.DeletionTimestamp = &now
	if _, err := f.client.BackupV1alpha1().Backups("prod").Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.resync()
	f.finishJob(&job, summaryA)
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if got.Status.SnapshotID != "aaaaaaaaaaaaaaaaaaaaaaaa" || !hasFinalizer(got, v1alpha1.DataFinalizer) {
		t.Fatalf("snapshot %q finalizer %v, want the snapshot recorded and the Backup kept", got.Status.SnapshotID, got.Finalizers)
	}
	f.syncBackup("prod", "b")
	var prune bool
	for _, j := range f.jobs("prod") {
		prune = prune || j.Labels[v1alpha1.JobKindLabel] == "prune"
	}
	if !prune {
		t.Error("no prune Job for the snapshot stored meanwhile")
	}
}

// The Job's informer can deliver Complete before the pods' informer delivers
// the final status of the pod that made it so (make test-chaos: a restore
// whose first pod was deleted at once ended "completed without reporting
// what it did"). The report is then read from kube-apiserver, not taken as
// missing: the Backup records its snapshot.
func TestFinishedJobReadsItsPodsWhenTheCacheLags(t *testing.T) {
	bk := newBackup("prod", "b", "uid-1", "prod")
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("prod", "b")
	job := f.jobs("prod")[0]
	f.finishJob(&job, summaryA) // the Job Complete and its pod Succeeded, in the cache
	finished := f.kubeInf.Core().V1().Pods().Informer().GetIndexer().List()[0].(*corev1.Pod)
	if _, err := f.kube.CoreV1().Pods("prod").Create(context.Background(), finished, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The cache still has the pod running, as before its last update.
	stale := finished.DeepCopy()
	stale.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: moverContainer,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
	f.cache(stale)
	f.syncBackup("prod", "b")
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseCompleted || got.Status.SnapshotID != "aaaaaaaaaaaaaaaaaaaaaaaa" {
		t.Fatalf("phase %q snapshot %q message %q; want Completed with the snapshot the pod reported", got.Status.Phase, got.Status.SnapshotID, got.Status.Message)
	}
}

// Among a finished Job's pods, the one that succeeded carries the report,
// whether or not another (deleted at once, created the same second, or
// newer and failed) is beside it; while the Job runs, the newest counts, and
// of two created the same second the one not being deleted.
func TestReportOfPicksThePodThatCounts(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC))
	pod := func(name string, created metav1.Time, phase corev1.PodPhase, deleted bool, msg string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: created}, Status: corev1.PodStatus{Phase: phase}}
		if deleted {
			p.DeletionTimestamp = &at
		}
		if msg != "" {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: moverContainer, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: msg}}}}
		}
		return p
	}
	later := metav1.NewTime(at.Add(time.Second))
	for _, tc := range []struct {
		name      string
		pods      []*corev1.Pod
		succeeded bool
		want      string
		summary   bool
	}{
		{"the succeeded pod over a newer failed one", []*corev1.Pod{pod("ok", at, corev1.PodSucceeded, false, summaryA), pod("bad", later, corev1.PodFailed, false, "boom")}, true, "ok", true},
		{"the succeeded pod over a deleted one of the same second", []*corev1.Pod{pod("gone", at, corev1.PodRunning, true, ""), pod("ok", at, corev1.PodSucceeded, false, summaryA)}, true, "ok", true},
		{"running: the newest", []*corev1.Pod{pod("old", at, corev1.PodFailed, false, "boom"), pod("new", later, corev1.PodRunning, false, "")}, false, "new", false},
		{"running: the one not deleted, same second", []*corev1.Pod{pod("gone", at, corev1.PodRunning, true, ""), pod("live", at, corev1.PodRunning, false, "")}, false, "live", false},
		{"running: the one not deleted, same second, either order", []*corev1.Pod{pod("live", at, corev1.PodRunning, false, ""), pod("gone", at, corev1.PodRunning, true, "")}, false, "live", false},
		{"same second, neither deleted: the same pick in any order", []*corev1.Pod{pod("x-2", at, corev1.PodRunning, false, ""), pod("x-1", at, corev1.PodRunning, false, "")}, false, "x-2", false},
		{"same second, neither deleted, the other order", []*corev1.Pod{pod("x-1", at, corev1.PodRunning, false, ""), pod("x-2", at, corev1.PodRunning, false, "")}, false, "x-2", false},
		{"done, no pod succeeded: the newest", []*corev1.Pod{pod("a", at, corev1.PodFailed, false, "first"), pod("b", later, corev1.PodRunning, false, "")}, true, "b", false},
		{"failed: the newest, its message", []*corev1.Pod{pod("a", at, corev1.PodFailed, false, "first"), pod("b", later, corev1.PodFailed, false, "second")}, false, "b", false},
	} {
		p, s, msg := reportOf(tc.pods, tc.succeeded)
		if p == nil || p.Name != tc.want || (s != nil) != tc.summary {
			t.Errorf("%s: got pod %v summary %v message %q, want pod %s", tc.name, p, s, msg, tc.want)
		}
		if tc.want == "b" && !tc.succeeded && msg != "second" {
			t.Errorf("%s: message %q, want the chosen pod's, %q", tc.name, msg, "second")
		}
	}
	if _, _, msg := reportOf([]*corev1.Pod{pod("a", at, corev1.PodFailed, false, "  no space left\n")}, false); msg != "no space left" {
		t.Errorf("message %q, want the termination message trimmed", msg)
	}
}

// A finished Job whose report is not in the cache, and whose pods cannot be
// read from kube-apiserver either, is not decided: the sync returns the
// error (the key is retried) and the Backup stays Running. A Job whose report
// is in the cache costs no list.
func TestFinishedJobWithoutReportIsRetriedWhenItsPodsCannotBeRead(t *testing.T) {
	bk := newBackup("prod", "b", "uid-1", "prod")
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("prod", "b")
	job := f.jobs("prod")[0]
	f.finishJob(&job, summaryA)
	finished := f.kubeInf.Core().V1().Pods().Informer().GetIndexer().List()[0].(*corev1.Pod)
	stale := finished.DeepCopy()
	stale.Status = corev1.PodStatus{Phase: corev1.PodRunning}
	f.cache(stale)
	f.kube.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("the server is shutting down")
	})
	if _, err := f.m.syncBackup(context.Background(), "prod", "b"); err == nil {
		t.Fatal("syncBackup decided a finished Job whose report it could not read")
	}
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseRunning {
		t.Fatalf("phase %q message %q, want still Running", got.Status.Phase, got.Status.Message)
	}
	// The report in the cache: no list at all.
	f.cache(finished)
	f.kube.ClearActions()
	f.syncBackup("prod", "b")
	for _, a := range f.kube.Actions() {
		if a.GetVerb() == "list" && a.GetResource().Resource == "pods" {
			t.Errorf("listed pods with the report in the cache: %v", a)
		}
	}
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseCompleted {
		t.Fatalf("phase %q, want Completed", got.Status.Phase)
	}
}
