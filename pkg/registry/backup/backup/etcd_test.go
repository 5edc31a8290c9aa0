package backup

import (
	"context"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"example.com/backup-operator/pkg/apis/backup"
)

// TestRefuseRestored covers the rule that Delete and DeleteCollection share;
// the integration tests drive it through every delete path of the store.
func TestRefuseRestored(t *testing.T) {
	using := func(namespace, backupName string) []string {
		if namespace == "ns" && backupName == "in-use" {
			return []string{"ns/r1", "other/r2"}
		}
		return nil
	}
	admitted := func(context.Context, runtime.Object) error { return nil }
	bk := func(name string) *backup.Backup {
		return &backup.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
	}
	ctx := context.Background()

	err := refuseRestored(admitted, using)(ctx, bk("in-use"))
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(),
		"RestoreJob ns/r1, other/r2 is restoring this Backup; delete the Backup after it finishes (or delete the RestoreJob first)") {
		t.Errorf("Backup in use: %v", err)
	}
	if err := refuseRestored(admitted, using)(ctx, bk("free")); err != nil {
		t.Errorf("Backup no restore uses: %v", err)
	}
	deleting := bk("in-use")
	deleting.DeletionTimestamp = &metav1.Time{}
	if err := refuseRestored(admitted, using)(ctx, deleting); err != nil {
		t.Errorf("Backup already being deleted: %v", err)
	}
	denied := errors.New("denied by admission")
	if err := refuseRestored(func(context.Context, runtime.Object) error { return denied }, using)(ctx, bk("in-use")); err != denied {
		t.Errorf("admission runs first: got %v", err)
	}
}
