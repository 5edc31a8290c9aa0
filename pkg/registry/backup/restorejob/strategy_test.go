package restorejob

import (
	"context"
	"reflect"
	"testing"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/backup-operator/pkg/apis/backup"
	registry "example.com/backup-operator/pkg/registry/backup"
)

func stored() *backup.RestoreJob {
	now := metav1.Now()
	return &backup.RestoreJob{
		ObjectMeta: metav1.ObjectMeta{
			Name: "r1", Namespace: "ns", ResourceVersion: "7", Generation: 1,
			Labels:            map[string]string{"team": "db"},
			Annotations:       map[string]string{"note": "keep"},
			Finalizers:        []string{"example.com/hold"},
			OwnerReferences:   []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "u1"}},
			DeletionTimestamp: &now,
		},
		Spec: backup.RestoreJobSpec{BackupName: "b1", BackupNamespace: "ns",
			Target: backup.RestoreTarget{PVCName: "data", Namespace: "ns"}, Mode: backup.RestoreModeMerge},
		Status: backup.RestoreJobStatus{Phase: backup.RestorePhaseRunning, JobName: "j"},
	}
}

func TestPrepareForCreateClearsStatus(t *testing.T) {
	r := &backup.RestoreJob{
		ObjectMeta: metav1.ObjectMeta{Name: "r1", Namespace: "ns", Generation: 5},
		Spec:       backup.RestoreJobSpec{BackupName: "b1", Target: backup.RestoreTarget{PVCName: "data"}, Mode: backup.RestoreModeMerge},
		Status:     backup.RestoreJobStatus{Phase: backup.RestorePhaseCompleted, Verified: true},
	}
	NewStrategy(nil).PrepareForCreate(context.Background(), r)
	if !apiequality.Semantic.DeepEqual(r.Status, backup.RestoreJobStatus{}) {
		t.Errorf("create kept a client-written status: %+v", r.Status)
	}
	if r.Generation != 1 {
		t.Errorf("generation = %d, want 1", r.Generation)
	}
}

func TestPrepareForUpdateKeepsStatusAndGeneration(t *testing.T) {
	old := stored()
	r := old.DeepCopy()
	r.Status = backup.RestoreJobStatus{Phase: backup.RestorePhaseCompleted}
	r.Generation = 9
	r.Labels["team"] = "web"
	r.Finalizers = nil
	NewStrategy(nil).PrepareForUpdate(context.Background(), r, old)
	if !apiequality.Semantic.DeepEqual(r.Status, old.Status) {
		t.Errorf("main update changed status: %+v", r.Status)
	}
	if r.Generation != old.Generation {
		t.Errorf("generation = %d, want %d (the spec cannot change)", r.Generation, old.Generation)
	}
	if r.Labels["team"] != "web" || len(r.Finalizers) != 0 {
		t.Errorf("main update lost a metadata change: labels=%v finalizers=%v", r.Labels, r.Finalizers)
	}
}

// TestStatusUpdateChangesOnlyStatus writes everything a client could send to
// /status and requires that only status changed.
func TestStatusUpdateChangesOnlyStatus(t *testing.T) {
	old := stored()
	r := old.DeepCopy()
	r.Status = backup.RestoreJobStatus{Phase: backup.RestorePhaseCompleted, Verified: true}
	r.Spec.AllowInUse = true
	r.Labels = nil
	r.Annotations = map[string]string{"note": "changed"}
	r.Finalizers = nil
	r.OwnerReferences = nil
	r.Generation = 3
	r.DeletionTimestamp = nil
	s := NewStatusStrategy(NewStrategy(nil))
	s.PrepareForUpdate(context.Background(), r, old)

	want := old.DeepCopy()
	want.Status = backup.RestoreJobStatus{Phase: backup.RestorePhaseCompleted, Verified: true}
	if !apiequality.Semantic.DeepEqual(r, want) {
		t.Errorf("status update changed more than status:\n got  %+v\n want %+v", r, want)
	}
	if errs := s.ValidateUpdate(context.Background(), r, old); len(errs) != 0 {
		t.Errorf("prepared status update refused: %v", errs)
	}
}

// The strategies use the shared reset-field sets (their contents are
// tested in pkg/registry/backup).
func TestResetFields(t *testing.T) {
	main := NewStrategy(nil)
	if got, want := main.GetResetFields(), registry.SpecOwnedFields(); !reflect.DeepEqual(got, want) {
		t.Errorf("main reset fields = %v, want %v", got, want)
	}
	if got, want := NewStatusStrategy(main).GetResetFields(), registry.StatusOwnedFields(); !reflect.DeepEqual(got, want) {
		t.Errorf("status reset fields = %v, want %v", got, want)
	}
}
