package backup

import (
	"context"
	"reflect"
	"testing"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	registry "example.com/backup-operator/pkg/registry/backup"
)

func stored() *backup.Backup {
	now := metav1.Now()
	return &backup.Backup{
		ObjectMeta: metav1.ObjectMeta{
			Name: "b1", Namespace: "ns", ResourceVersion: "7", Generation: 1,
			Labels:            map[string]string{v1alpha1.PolicyLabel: "p", "team": "db"},
			Annotations:       map[string]string{"note": "keep"},
			Finalizers:        []string{v1alpha1.DataFinalizer},
			OwnerReferences:   []metav1.OwnerReference{{APIVersion: "backup.example.com/v1alpha1", Kind: "BackupPolicy", Name: "p", UID: "u1"}},
			DeletionTimestamp: &now,
		},
		Spec:   backup.BackupSpec{PolicyName: "p", Target: backup.VolumeTarget{PVCName: "data", Namespace: "ns"}, Storage: backup.RepositoryStorage{PVCName: "repo"}},
		Status: backup.BackupStatus{Phase: backup.BackupPhaseRunning, JobName: "j"},
	}
}

func TestPrepareForCreateClearsStatus(t *testing.T) {
	b := &backup.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "b1", Namespace: "ns", Generation: 5},
		Spec:       backup.BackupSpec{Target: backup.VolumeTarget{PVCName: "data"}},
		Status:     backup.BackupStatus{Phase: backup.BackupPhaseCompleted, SnapshotID: "forged"},
	}
	NewStrategy(nil, "repo").PrepareForCreate(context.Background(), b)
	if !apiequality.Semantic.DeepEqual(b.Status, backup.BackupStatus{}) {
		t.Errorf("create kept a client-written status: %+v", b.Status)
	}
	if b.Generation != 1 {
		t.Errorf("generation = %d, want 1", b.Generation)
	}
}

func TestPrepareForUpdateKeepsStatusAndGeneration(t *testing.T) {
	old := stored()
	b := old.DeepCopy()
	b.Status = backup.BackupStatus{Phase: backup.BackupPhaseCompleted}
	b.Generation = 9
	b.Labels["team"] = "web"
	b.Finalizers = nil
	NewStrategy(nil, "repo").PrepareForUpdate(context.Background(), b, old)
	if !apiequality.Semantic.DeepEqual(b.Status, old.Status) {
		t.Errorf("main update changed status: %+v", b.Status)
	}
	if b.Generation != old.Generation {
		t.Errorf("generation = %d, want %d (the spec cannot change)", b.Generation, old.Generation)
	}
	// Metadata is the main resource's to write.
	if b.Labels["team"] != "web" || len(b.Finalizers) != 0 {
		t.Errorf("main update lost a metadata change: labels=%v finalizers=%v", b.Labels, b.Finalizers)
	}
}

// TestStatusUpdateChangesOnlyStatus writes everything a client could send to
// /status and requires that only status changed.
func TestStatusUpdateChangesOnlyStatus(t *testing.T) {
	old := stored()
	b := old.DeepCopy()
	b.Status = backup.BackupStatus{Phase: backup.BackupPhaseCompleted, SnapshotID: "s1"}
	b.Spec.Target.PVCName = "sneaky"
	b.Labels = map[string]string{"team": "web"}
	b.Annotations = nil
	b.Finalizers = nil
	b.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "other", UID: "u2"}}
	b.Generation = 3
	b.DeletionTimestamp = nil
	s := NewStatusStrategy(NewStrategy(nil, "repo"))
	s.PrepareForUpdate(context.Background(), b, old)

	want := old.DeepCopy()
	want.Status = backup.BackupStatus{Phase: backup.BackupPhaseCompleted, SnapshotID: "s1"}
	if !apiequality.Semantic.DeepEqual(b, want) {
		t.Errorf("status update changed more than status:\n got  %+v\n want %+v", b, want)
	}
	if errs := s.ValidateUpdate(context.Background(), b, old); len(errs) != 0 {
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
