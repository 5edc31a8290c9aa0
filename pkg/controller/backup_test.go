package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// A status write refused with 409 Conflict (the cache was stale) makes the
// sync return an error, so the key is retried, and nothing else is written
// meanwhile: no other status, no event claiming completion. The retry, with
// the conflict gone, records the outcome.
func TestStatusConflictIsRetried(t *testing.T) {
	bk := newBackup("prod", "b", "uid-1", "prod")
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("prod", "b")
	f.finishJob(ptr.To(f.jobs("prod")[0]), summaryA)
	f.drainEvents()

	conflict := true
	f.client.PrependReactor("update", "backups", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if !conflict || a.GetSubresource() != "status" {
			return false, nil, nil
		}
		return true, nil, apierrors.NewConflict(schema.GroupResource{Group: v1alpha1.GroupName, Resource: "backups"}, "b",
			errString("the object has been modified; please apply your changes to the latest version and try again"))
	})
	writes(f.client)
	writes(f.kube)
	if _, err := f.m.syncBackup(context.Background(), "prod", "b"); !apierrors.IsConflict(err) {
		t.Fatalf("syncBackup returned %v, want the Conflict so the key is retried", err)
	}
	if w := writes(f.client); len(w) != 1 || w[0] != "update backups/status" {
		t.Errorf("writes %q, want only the refused status update", w)
	}
	if w := writes(f.kube); len(w) != 0 {
		t.Errorf("Jobs or claims were written on a conflict: %q", w)
	}
	if ev := f.drainEvents(); len(ev) != 0 {
		t.Errorf("events recorded although the status was not written: %q", ev)
	}
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseRunning || got.Status.SnapshotID != "" {
		t.Errorf("stored phase %q snapshot %q, want unchanged (Running)", got.Status.Phase, got.Status.SnapshotID)
	}

	conflict = false
	f.syncBackup("prod", "b")
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseCompleted || got.Status.SnapshotID != "aaaaaaaaaaaaaaaaaaaaaaaa" {
		t.Errorf("after the retry: phase %q snapshot %q, want Completed", got.Status.Phase, got.Status.SnapshotID)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// A Backup deleted before it stored a snapshot has nothing to prune: its own
// running mover Job is deleted (that very Job, by UID precondition, with its
// pods) and the finalizer goes. A Job of that name that is not the Backup's
// is left alone.
func TestFinalizerWithoutSnapshot(t *testing.T) {
	t.Run("own running Job", func(t *testing.T) {
		bk := newBackup("prod", "b", "uid-1", "prod")
		f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
		f.syncBackup("prod", "b")
		job := f.jobs("prod")[0]
		job.UID = "job-uid"
		if _, err := f.kube.BatchV1().Jobs("prod").Update(context.Background(), &job, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.cache(&job)
		deleting := f.backup("prod", "b")
		deleting.DeletionTimestamp = ptr.To(metav1.NewTime(f.now))
		f.cache(deleting)
		f.kube.ClearActions()
		f.syncBackup("prod", "b")

		var deleted []k8stesting.DeleteActionImpl
		for _, a := range f.kube.Actions() {
			if d, ok := a.(k8stesting.DeleteActionImpl); ok {
				deleted = append(deleted, d)
			}
		}
		if len(deleted) != 1 || deleted[0].Name != job.Name || deleted[0].Resource.Resource != "jobs" {
			t.Fatalf("deleted %+v, want exactly the Backup's Job", deleted)
		}
		opts := deleted[0].DeleteOptions
		if opts.Preconditions == nil || opts.Preconditions.UID == nil || *opts.Preconditions.UID != "job-uid" ||
			opts.PropagationPolicy == nil || *opts.PropagationPolicy != metav1.DeletePropagationBackground {
			t.Errorf("delete options %+v, want the Job's UID as precondition and its pods deleted", opts)
		}
		if got := f.backup("prod", "b"); hasFinalizer(got, v1alpha1.DataFinalizer) {
			t.Error("the finalizer stayed although nothing was stored")
		}
		for _, j := range f.jobs("prod") {
			if j.Labels[v1alpha1.JobKindLabel] == "prune" {
				t.Error("a prune Job was started for a Backup without a snapshot")
			}
		}
	})
	t.Run("foreign Job of the name", func(t *testing.T) {
		bk := newBackup("prod", "b", "uid-1", "prod")
		bk.DeletionTimestamp = ptr.To(metav1.NewTime(time.Date(2026, 11, 30, 2, 0, 20, 0, time.UTC)))
		bk.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseRunning, JobName: jobName("backup", bk, "")}
		foreign := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: bk.Status.JobName, UID: "other-uid"}}
		f := newFixture(t, bk, foreign, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
		writes(f.kube)
		f.syncBackup("prod", "b")
		if w := writes(f.kube); len(w) != 0 {
			t.Errorf("wrote %q, want the foreign Job left alone", w)
		}
		if got := f.backup("prod", "b"); hasFinalizer(got, v1alpha1.DataFinalizer) {
			t.Error("the finalizer stayed")
		}
	})
}

// A Backup re-created by an import, before the importer set its status, is
// not backed up again: no Job is started for it.
func TestImportedBackupIsNotStarted(t *testing.T) {
	bk := newBackup("prod", "b", "uid-1", "prod")
	bk.Annotations = map[string]string{v1alpha1.ImportedSnapshotAnnotation: snapshotID}
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("prod", "b")
	if got := f.backup("prod", "b"); got.Status.Phase != "" || len(f.jobs("prod")) != 0 {
		t.Errorf("phase %q with %d Jobs, want it left for the importer", got.Status.Phase, len(f.jobs("prod")))
	}
}

// A Backup without the data finalizer (created before the API server added
// it) gets it before anything else happens.
func TestBackupGetsItsFinalizerFirst(t *testing.T) {
	bk := newBackup("prod", "b", "uid-1", "prod")
	bk.Finalizers = nil
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("prod", "b")
	if got := f.backup("prod", "b"); !hasFinalizer(got, v1alpha1.DataFinalizer) || got.Status.Phase != "" || len(f.jobs("prod")) != 0 {
		t.Errorf("finalizers %v phase %q Jobs %d, want only the finalizer added", got.Finalizers, got.Status.Phase, len(f.jobs("prod")))
	}
	f.syncBackup("prod", "b")
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseRunning {
		t.Errorf("phase %q, want Running on the next sync", got.Status.Phase)
	}
}

// A Backup whose target claim is not Bound waits Pending, and says why.
func TestBackupWaitsForAnUnboundClaim(t *testing.T) {
	pending := boundPVC("prod", "data")
	pending.Status.Phase = "Pending"
	f := newFixture(t, newBackup("prod", "b", "uid-1", "prod"), pending, boundPVC("prod", "backup-repo"))
	res := f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if got.Status.Phase != v1alpha1.BackupPhasePending || !strings.Contains(got.Status.Message, "to be Bound (it is Pending)") || res.after == 0 || len(f.jobs("prod")) != 0 {
		t.Errorf("phase %q message %q requeue %s, want Pending and retried, no Job", got.Status.Phase, got.Status.Message, res.after)
	}
	// A second sync with nothing changed writes nothing.
	writes(f.client)
	f.syncBackup("prod", "b")
	if w := writes(f.client); len(w) != 0 {
		t.Errorf("an unchanged Pending Backup was written again: %q", w)
	}
}

// A Backup whose repository claim does not exist fails and says how to fix it.
func TestBackupWithoutRepositoryFails(t *testing.T) {
	f := newFixture(t, newBackup("prod", "b", "uid-1", "prod"), boundPVC("prod", "data"))
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "RepositoryNotFound" || len(f.jobs("prod")) != 0 {
		t.Errorf("phase %q reason %q, want Failed: RepositoryNotFound and no Job", got.Status.Phase, failedReason(got.Status.Conditions))
	}
}

// A Job that completed without a summary does not complete the Backup: there
// is no snapshot to record.
func TestBackupWithoutSummaryFails(t *testing.T) {
	f := newFixture(t, newBackup("prod", "b", "uid-1", "prod"), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("prod", "b")
	f.finishJob(ptr.To(f.jobs("prod")[0]), "")
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "NoSummary" || got.Status.SnapshotID != "" {
		t.Errorf("phase %q reason %q snapshot %q, want Failed: NoSummary", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.SnapshotID)
	}
}

// A Job the API server has but the cache has not seen yet (an earlier sync
// created it, and its status write was lost) is used, not created twice; a
// Job of that name that is someone else's is refused, not adopted.
func TestJobInTheAPIButNotTheCache(t *testing.T) {
	bk := newBackup("prod", "b", "uid-1", "prod")
	name := jobName("backup", bk, "")
	for _, tc := range []struct {
		name      string
		labels    map[string]string
		wantPhase v1alpha1.BackupPhase
	}{
		{"ours", map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy, v1alpha1.OwnerUIDLabel: "uid-1"}, v1alpha1.BackupPhaseRunning},
		{"someone else's", map[string]string{"app": "other"}, v1alpha1.BackupPhaseFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, bk.DeepCopy(), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
			if err := f.kube.Tracker().Add(&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name, Labels: tc.labels}}); err != nil {
				t.Fatal(err)
			}
			f.syncBackup("prod", "b")
			got := f.backup("prod", "b")
			if got.Status.Phase != tc.wantPhase || len(f.jobs("prod")) != 1 {
				t.Fatalf("phase %q with %d Jobs, want %s and still one Job", got.Status.Phase, len(f.jobs("prod")), tc.wantPhase)
			}
			if tc.wantPhase == v1alpha1.BackupPhaseRunning && got.Status.JobName != name {
				t.Errorf("job name %q, want the existing %q", got.Status.JobName, name)
			}
			ev := strings.Join(f.drainEvents(), "\n")
			if tc.wantPhase == v1alpha1.BackupPhaseRunning && strings.Contains(ev, "Started") {
				t.Errorf("a Started event for a Job this sync did not start: %s", ev)
			}
			if tc.wantPhase == v1alpha1.BackupPhaseFailed && !strings.Contains(ev, "JobConflict") {
				t.Errorf("no JobConflict event: %s", ev)
			}
		})
	}
}
