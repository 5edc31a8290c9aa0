package controller

import (
	"context"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// deletedBackups returns the names of the Backups the controller asked the
// API server to delete, sorted.
func (f *fixture) deletedBackups() []string {
	var out []string
	for _, a := range f.client.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok && d.Resource.Resource == "backups" {
			out = append(out, d.Name)
		}
	}
	slices.Sort(out)
	return out
}

// retentionFixture is a policy whose run at the fixture's time is handled,
// with its Backups.
func retentionFixture(t *testing.T, r v1alpha1.RetentionPolicy, backups func(p *v1alpha1.BackupPolicy) []*v1alpha1.Backup) *fixture {
	p := scheduledAt(newPolicy("prod", "db"), "2026-11-30T02:00:00Z")
	p.Spec.Retention = r
	objs := []runtime.Object{p}
	for _, b := range backups(p) {
		objs = append(objs, b)
	}
	f := newFixture(t, objs...)
	f.client.ClearActions()
	return f
}

// Retention deletes, through the API (so the finalizer prunes the data), the
// finished Backups no rule keeps: completed ones outside keepLast and failed
// ones beyond keepFailed, the newest first kept. Backups in progress and
// Backups already being deleted are not touched.
func TestRetentionKeepLastAndKeepFailed(t *testing.T) {
	f := retentionFixture(t, v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](2), KeepFailed: ptr.To[int32](1)}, func(p *v1alpha1.BackupPolicy) []*v1alpha1.Backup {
		deleting := policyBackup(p, "c-deleting", v1alpha1.BackupPhaseCompleted, "2026-11-01T02:00:00Z")
		deleting.DeletionTimestamp = ptr.To(metav1.NewTime(utc("2026-11-30T01:00:00Z")))
		return []*v1alpha1.Backup{
			policyBackup(p, "c-29", v1alpha1.BackupPhaseCompleted, "2026-11-29T02:10:00Z"),
			policyBackup(p, "c-26", v1alpha1.BackupPhaseCompleted, "2026-11-26T02:10:00Z"),
			policyBackup(p, "c-28", v1alpha1.BackupPhaseCompleted, "2026-11-28T02:10:00Z"),
			policyBackup(p, "c-27", v1alpha1.BackupPhaseCompleted, "2026-11-27T02:10:00Z"),
			policyBackup(p, "f-29", v1alpha1.BackupPhaseFailed, "2026-11-29T03:00:00Z"),
			policyBackup(p, "f-28", v1alpha1.BackupPhaseFailed, "2026-11-28T03:00:00Z"),
			policyBackup(p, "running", v1alpha1.BackupPhaseRunning, ""),
			deleting,
		}
	})
	f.syncPolicy("prod", "db")
	if got := strings.Join(f.deletedBackups(), " "); got != "c-26 c-27 f-28" {
		t.Errorf("deleted %q, want the two oldest completed and the older failed Backup", got)
	}
	if got := strings.Join(f.policyBackups("prod", "db"), " "); got != "c-28 c-29 c-deleting f-29 running" {
		t.Errorf("left %q", got)
	}
	var n int
	for _, e := range f.drainEvents() {
		if strings.HasPrefix(e, "Normal RetentionDeleted") {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d RetentionDeleted events, want one per deleted Backup", n)
	}
}

// keepDaily keeps the newest Backup of each of the last days; keepFailed 0
// keeps no failed Backup; with no rule at all, the newest successful Backup
// is still kept.
func TestRetentionDailyAndDefaults(t *testing.T) {
	backups := func(p *v1alpha1.BackupPolicy) []*v1alpha1.Backup {
		return []*v1alpha1.Backup{
			policyBackup(p, "c-29-late", v1alpha1.BackupPhaseCompleted, "2026-11-29T14:10:00Z"),
			policyBackup(p, "c-29-early", v1alpha1.BackupPhaseCompleted, "2026-11-29T02:10:00Z"),
			policyBackup(p, "c-28", v1alpha1.BackupPhaseCompleted, "2026-11-28T02:10:00Z"),
			policyBackup(p, "c-27", v1alpha1.BackupPhaseCompleted, "2026-11-27T02:10:00Z"),
			policyBackup(p, "f-29", v1alpha1.BackupPhaseFailed, "2026-11-29T03:00:00Z"),
		}
	}
	for _, tc := range []struct {
		name string
		r    v1alpha1.RetentionPolicy
		want string
	}{
		{"keepDaily 2, keepFailed 0", v1alpha1.RetentionPolicy{KeepDaily: ptr.To[int32](2), KeepFailed: ptr.To[int32](0)}, "c-27 c-29-early f-29"},
		{"no rules: the newest success and one failure stay", v1alpha1.RetentionPolicy{}, "c-27 c-28 c-29-early"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := retentionFixture(t, tc.r, backups)
			f.syncPolicy("prod", "db")
			if got := strings.Join(f.deletedBackups(), " "); got != tc.want {
				t.Errorf("deleted %q, want %q", got, tc.want)
			}
		})
	}
}

// keepFailed bounds the failed Backups also while the policy has no
// successful Backup: the API documents "keepFailed keeps the newest N failed
// Backups for inspection; older failed Backups are deleted", and a policy
// that fails every night must not pile up one Backup per run.
func TestRetentionWithoutSuccessStillBoundsFailures(t *testing.T) {
	f := retentionFixture(t, v1alpha1.RetentionPolicy{KeepFailed: ptr.To[int32](1)}, func(p *v1alpha1.BackupPolicy) []*v1alpha1.Backup {
		return []*v1alpha1.Backup{
			policyBackup(p, "f-29", v1alpha1.BackupPhaseFailed, "2026-11-29T03:00:00Z"),
			policyBackup(p, "f-28", v1alpha1.BackupPhaseFailed, "2026-11-28T03:00:00Z"),
			policyBackup(p, "f-27", v1alpha1.BackupPhaseFailed, "2026-11-27T03:00:00Z"),
		}
	})
	f.syncPolicy("prod", "db")
	if got := strings.Join(f.deletedBackups(), " "); got != "f-27 f-28" {
		t.Errorf("deleted %q, want the failed Backups beyond keepFailed=1", got)
	}
}

// A deletion the API server refuses does not stop the others nor the sync;
// the Backup is deleted on a later sync.
func TestRetentionDeleteErrorDoesNotStopTheRest(t *testing.T) {
	f := retentionFixture(t, v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](1), KeepFailed: ptr.To[int32](0)}, func(p *v1alpha1.BackupPolicy) []*v1alpha1.Backup {
		return []*v1alpha1.Backup{
			policyBackup(p, "c-29", v1alpha1.BackupPhaseCompleted, "2026-11-29T02:10:00Z"),
			policyBackup(p, "c-28", v1alpha1.BackupPhaseCompleted, "2026-11-28T02:10:00Z"),
			policyBackup(p, "c-27", v1alpha1.BackupPhaseCompleted, "2026-11-27T02:10:00Z"),
		}
	})
	refuse := true
	f.client.PrependReactor("delete", "backups", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if refuse && a.(k8stesting.DeleteAction).GetName() == "c-28" {
			return true, nil, apierrors.NewServiceUnavailable("etcd is slow")
		}
		return false, nil, nil
	})
	f.syncPolicy("prod", "db")
	if got := strings.Join(f.policyBackups("prod", "db"), " "); got != "c-28 c-29" {
		t.Errorf("left %q, want c-27 deleted although c-28's deletion failed", got)
	}
	refuse = false
	f.own.Backup().V1alpha1().Backups().Informer().GetIndexer().Delete(&v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "c-27"}})
	f.syncPolicy("prod", "db")
	if got := strings.Join(f.policyBackups("prod", "db"), " "); got != "c-29" {
		t.Errorf("left %q after a retry, want c-29", got)
	}
	if _, err := f.client.BackupV1alpha1().Backups("prod").Get(context.Background(), "c-28", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("c-28 still exists: %v", err)
	}
}
