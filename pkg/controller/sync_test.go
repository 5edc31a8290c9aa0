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
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

func newPolicy(ns, name string) *v1alpha1.BackupPolicy {
	return &v1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: "policy-uid", Generation: 1,
			CreationTimestamp: metav1.NewTime(time.Date(2026, 11, 30, 1, 30, 0, 0, time.UTC))},
		Spec: v1alpha1.BackupPolicySpec{Schedule: "0 2 * * *",
			Target:  v1alpha1.VolumeTarget{Namespace: ns, PVCName: "data"},
			Storage: v1alpha1.RepositoryStorage{PVCName: "backup-repo"}},
	}
}

func (f *fixture) policyBackups(ns, policy string) []string {
	f.t.Helper()
	l, err := f.client.BackupV1alpha1().Backups(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{v1alpha1.PolicyLabel: policy}).String()})
	if err != nil {
		f.t.Fatal(err)
	}
	var names []string
	for _, b := range l.Items {
		names = append(names, b.Name)
	}
	return names
}

func (f *fixture) setTrigger(p *v1alpha1.BackupPolicy, v string) *v1alpha1.BackupPolicy {
	f.t.Helper()
	cur, err := f.client.BackupV1alpha1().BackupPolicies(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	cur.Annotations = map[string]string{v1alpha1.TriggerAnnotation: v}
	cur, err = f.client.BackupV1alpha1().BackupPolicies(p.Namespace).Update(context.Background(), cur, metav1.UpdateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.resync()
	return cur
}

// A trigger value is answered with one Backup, once: deleting that Backup
// does not bring it back; a new value makes a new Backup.
func TestTriggerIsAnsweredOnce(t *testing.T) {
	p := newPolicy("prod", strings.Repeat("p", 50))
	f := newFixture(t, p, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.now = time.Date(2026, 11, 30, 1, 40, 0, 0, time.UTC) // before the 02:00 run
	f.setTrigger(p, "1")
	f.syncPolicy("prod", p.Name)
	got := f.policyBackups("prod", p.Name)
	if len(got) != 1 || len(got[0]) != 68 {
		t.Fatalf("want one on-demand Backup of 68 characters, got %q", got)
	}
	pol, _ := f.client.BackupV1alpha1().BackupPolicies("prod").Get(context.Background(), p.Name, metav1.GetOptions{})
	if pol.Status.LastTrigger == nil || pol.Status.LastTrigger.Value != "1" || pol.Status.LastTrigger.BackupName != got[0] {
		t.Fatalf("status.lastTrigger = %+v, want value 1 and the Backup", pol.Status.LastTrigger)
	}

	// The user deletes the on-demand Backup; the annotation stays.
	if err := f.client.BackupV1alpha1().Backups("prod").Delete(context.Background(), got[0], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.own.Backup().V1alpha1().Backups().Informer().GetIndexer().Delete(&v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: got[0]}})
	f.syncPolicy("prod", p.Name)
	f.syncPolicy("prod", p.Name)
	if again := f.policyBackups("prod", p.Name); len(again) != 0 {
		t.Fatalf("the deleted on-demand Backup came back: %q", again)
	}

	f.setTrigger(p, "2")
	f.syncPolicy("prod", p.Name)
	if next := f.policyBackups("prod", p.Name); len(next) != 1 || next[0] == got[0] {
		t.Fatalf("a new trigger value made %q, want one new Backup", next)
	}
}

// A Backup of the scheduled name that is not the policy's is not taken for
// the policy's run: the run is reported missed.
func TestScheduledNameTakenByAnotherBackup(t *testing.T) {
	p := newPolicy("prod", "db")
	other := newBackup("prod", "db-202611300200", "someone-else", "prod")
	f := newFixture(t, p, other, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncPolicy("prod", "db")
	pol, _ := f.client.BackupV1alpha1().BackupPolicies("prod").Get(context.Background(), "db", metav1.GetOptions{})
	if pol.Status.MissedRuns != 1 || len(pol.Status.Active) != 0 {
		t.Errorf("missedRuns %d active %v, want the run missed and nothing active", pol.Status.MissedRuns, pol.Status.Active)
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "does not belong to this policy") {
		t.Errorf("no event says why: %s", ev)
	}
}

// The scheduled run is created once, under its deterministic name.
func TestScheduledBackupIsCreatedOnce(t *testing.T) {
	p := newPolicy("prod", "db")
	f := newFixture(t, p, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	res := f.syncPolicy("prod", "db")
	f.syncPolicy("prod", "db")
	if got := f.policyBackups("prod", "db"); len(got) != 1 || got[0] != "db-202611300200" {
		t.Fatalf("Backups %q, want db-202611300200 once", got)
	}
	b := f.backup("prod", "db-202611300200")
	if b.Annotations[v1alpha1.ScheduledTimeAnnotation] != "2026-11-30T02:00:00Z" || b.Spec.PolicyName != "db" {
		t.Errorf("Backup %+v lacks its scheduled time or policy", b.ObjectMeta)
	}
	if want := 24*time.Hour - 30*time.Second; res.after < want || res.after > want+time.Second {
		t.Errorf("requeue after %s, want about %s (the next run)", res.after, want)
	}
}

// The Backup's lifecycle through its Job: Running with the Job, Failed when
// the Job fails (with the mover's message), JobLost when the Job vanishes.
func TestBackupFollowsItsJob(t *testing.T) {
	t.Run("failed", func(t *testing.T) {
		bk := newBackup("prod", "b", "uid-1", "prod")
		f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
		f.syncBackup("prod", "b")
		if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseRunning || got.Status.StartTime == nil {
			t.Fatalf("phase %q, want Running with a start time", got.Status.Phase)
		}
		job := f.jobs("prod")[0]
		job.UID = "job-uid"
		job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "retried"}}
		f.cache(&job)
		f.cache(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "p", Labels: map[string]string{batchv1.ControllerUidLabel: "job-uid"}},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				Message: `{"operation":"backup","error":"source: permission denied"}`}}}}}})
		f.syncBackup("prod", "b")
		if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseFailed || !strings.Contains(got.Status.Message, "permission denied") {
			t.Errorf("phase %q message %q, want Failed with the mover's error", got.Status.Phase, got.Status.Message)
		}
	})
	t.Run("job lost", func(t *testing.T) {
		bk := newBackup("prod", "b", "uid-1", "prod")
		bk.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseRunning, JobName: jobName("backup", bk, "")}
		f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
		f.syncBackup("prod", "b")
		if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseFailed || !strings.Contains(got.Status.Message, "disappeared") {
			t.Errorf("phase %q message %q, want Failed: JobLost", got.Status.Phase, got.Status.Message)
		}
	})
	t.Run("target missing", func(t *testing.T) {
		bk := newBackup("prod", "b", "uid-1", "prod")
		f := newFixture(t, bk, boundPVC("prod", "backup-repo"))
		f.syncBackup("prod", "b")
		if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseFailed || len(f.jobs("prod")) != 0 {
			t.Errorf("phase %q with %d Jobs, want Failed and no Job", got.Status.Phase, len(f.jobs("prod")))
		}
	})
}

// Deleting a Backup with a snapshot runs a prune Job of its own; the
// finalizer goes only when the prune completed, and stays when it failed.
func TestFinalizerPrunesBeforeLettingGo(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cond      batchv1.JobConditionType
		wantFinal bool
	}{{"prune completes", batchv1.JobComplete, false}, {"prune fails", batchv1.JobFailed, true}} {
		t.Run(tc.name, func(t *testing.T) {
			bk := newBackup("prod", "b", "uid-1", "prod")
			now := metav1.NewTime(time.Now())
			bk.DeletionTimestamp = &now
			bk.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseCompleted, SnapshotID: "aaaaaaaaaaaaaaaaaaaa"}
			f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
			f.syncBackup("prod", "b")
			jobs := f.jobs("prod")
			if len(jobs) != 1 || jobs[0].Labels[v1alpha1.JobKindLabel] != "prune" || jobs[0].Labels[v1alpha1.OwnerUIDLabel] != "uid-1" {
				t.Fatalf("want one prune Job of this Backup, got %+v", jobs)
			}
			job := jobs[0]
			job.UID = types.UID("prune-uid")
			job.Status.Conditions = []batchv1.JobCondition{{Type: tc.cond, Status: corev1.ConditionTrue}}
			f.cache(&job)
			f.syncBackup("prod", "b")
			if got := f.backup("prod", "b"); hasFinalizer(got, v1alpha1.DataFinalizer) != tc.wantFinal {
				t.Errorf("finalizer present = %v, want %v", !tc.wantFinal, tc.wantFinal)
			}
			if tc.wantFinal {
				if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "PruneFailed") {
					t.Errorf("no PruneFailed event: %s", ev)
				}
			}
		})
	}
}

// A Backup the API refuses (a webhook, a policy) is a missed run, reported
// with the refusal; the policy's status is still written and the next sync
// does not try the same run again.
func TestRefusedScheduledBackupIsAMissedRun(t *testing.T) {
	p := newPolicy("prod", "db")
	f := newFixture(t, p, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.client.PrependReactor("create", "backups", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: v1alpha1.GroupName, Resource: "backups"}, "x", fmt.Errorf("denied by webhook"))
	})
	f.syncPolicy("prod", "db")
	f.syncPolicy("prod", "db")
	pol, _ := f.client.BackupV1alpha1().BackupPolicies("prod").Get(context.Background(), "db", metav1.GetOptions{})
	if pol.Status.MissedRuns != 1 || pol.Status.LastScheduleTime == nil || len(pol.Status.Active) != 0 {
		t.Errorf("missedRuns %d lastScheduleTime %v active %v, want one missed run recorded", pol.Status.MissedRuns, pol.Status.LastScheduleTime, pol.Status.Active)
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "denied by webhook") {
		t.Errorf("no event carries the refusal: %s", ev)
	}
}
