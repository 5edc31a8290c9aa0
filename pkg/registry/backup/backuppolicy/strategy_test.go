package backuppolicy

import (
	"context"
	"reflect"
	"testing"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/backup-operator/pkg/apis/backup"
	registry "example.com/backup-operator/pkg/registry/backup"
)

func int32p(v int32) *int32 { return &v }

func stored() *backup.BackupPolicy {
	now := metav1.Now()
	return &backup.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name: "p", Namespace: "ns", ResourceVersion: "7", Generation: 2,
			Labels:            map[string]string{"team": "db"},
			Annotations:       map[string]string{"note": "keep"},
			Finalizers:        []string{"example.com/hold"},
			OwnerReferences:   []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "u1"}},
			DeletionTimestamp: &now,
		},
		Spec: backup.BackupPolicySpec{
			Schedule: "@daily", Target: backup.VolumeTarget{PVCName: "data", Namespace: "ns"},
			Storage: backup.RepositoryStorage{PVCName: "repo"}, Retention: backup.RetentionPolicy{KeepLast: int32p(3)},
			ConcurrencyPolicy: backup.ForbidConcurrent,
		},
		Status: backup.BackupPolicyStatus{ObservedGeneration: 2, LastSuccessfulBackup: "p-1", MissedRuns: 1},
	}
}

func TestPrepareForCreateClearsStatus(t *testing.T) {
	p := stored()
	p.Generation = 5
	NewStrategy(nil, "repo").PrepareForCreate(context.Background(), p)
	if !apiequality.Semantic.DeepEqual(p.Status, backup.BackupPolicyStatus{}) {
		t.Errorf("create kept a client-written status: %+v", p.Status)
	}
	if p.Generation != 1 {
		t.Errorf("generation = %d, want 1", p.Generation)
	}
}

func TestPrepareForUpdateKeepsStatusAndBumpsGeneration(t *testing.T) {
	s := NewStrategy(nil, "repo")
	old := stored()

	// A metadata-only change keeps generation.
	p := old.DeepCopy()
	p.Status = backup.BackupPolicyStatus{MissedRuns: 9}
	p.Labels["team"] = "web"
	s.PrepareForUpdate(context.Background(), p, old)
	if !apiequality.Semantic.DeepEqual(p.Status, old.Status) {
		t.Errorf("main update changed status: %+v", p.Status)
	}
	if p.Generation != old.Generation {
		t.Errorf("metadata change: generation = %d, want %d", p.Generation, old.Generation)
	}
	if p.Labels["team"] != "web" {
		t.Errorf("main update lost a label change: %v", p.Labels)
	}

	// A spec change bumps it.
	p = old.DeepCopy()
	p.Spec.Suspend = true
	s.PrepareForUpdate(context.Background(), p, old)
	if p.Generation != old.Generation+1 {
		t.Errorf("spec change: generation = %d, want %d", p.Generation, old.Generation+1)
	}
}

// TestStatusUpdateChangesOnlyStatus writes everything a client could send to
// /status and requires that only status changed.
func TestStatusUpdateChangesOnlyStatus(t *testing.T) {
	old := stored()
	p := old.DeepCopy()
	p.Status = backup.BackupPolicyStatus{ObservedGeneration: 2, LastSuccessfulBackup: "p-2"}
	p.Spec.Schedule = "@hourly"
	p.Labels = map[string]string{"team": "web"}
	p.Annotations = nil
	p.Finalizers = nil
	p.OwnerReferences = nil
	p.Generation = 3
	p.DeletionTimestamp = nil
	s := NewStatusStrategy(NewStrategy(nil, "repo"))
	s.PrepareForUpdate(context.Background(), p, old)

	want := old.DeepCopy()
	want.Status = backup.BackupPolicyStatus{ObservedGeneration: 2, LastSuccessfulBackup: "p-2"}
	if !apiequality.Semantic.DeepEqual(p, want) {
		t.Errorf("status update changed more than status:\n got  %+v\n want %+v", p, want)
	}
	if errs := s.ValidateUpdate(context.Background(), p, old); len(errs) != 0 {
		t.Errorf("prepared status update refused: %v", errs)
	}
}

// The strategies use the shared reset-field sets (their contents are
// tested in pkg/registry/backup).
func TestResetFields(t *testing.T) {
	main := NewStrategy(nil, "repo")
	if got, want := main.GetResetFields(), registry.SpecOwnedFields(); !reflect.DeepEqual(got, want) {
		t.Errorf("main reset fields = %v, want %v", got, want)
	}
	if got, want := NewStatusStrategy(main).GetResetFields(), registry.StatusOwnedFields(); !reflect.DeepEqual(got, want) {
		t.Errorf("status reset fields = %v, want %v", got, want)
	}
}
