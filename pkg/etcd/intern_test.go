package etcd_test

import (
	"context"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/storage"

	"example.com/backup-operator/pkg/apis/backup"
)

// failed is a Backup as the controllers leave one that could not start:
// everything but its name is what its neighbours have too.
func failed(name string) *backup.Backup {
	msg := "the repository PersistentVolumeClaim ns/repo does not exist; create it in the target's namespace"
	at := metav1.NewTime(time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC))
	return &backup.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Finalizers: []string{"backup.example.com/data"},
			Labels: map[string]string{"backup.example.com/policy": "db"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "backup-apiserver", Operation: metav1.ManagedFieldsOperationUpdate,
				APIVersion: "backup.example.com/v1alpha1", Time: &at, FieldsType: "FieldsV1", Subresource: "status",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:message":{},"f:phase":{}}}`)}}}},
		Spec: backup.BackupSpec{PolicyName: "db", Target: backup.VolumeTarget{PVCName: "data", Namespace: "ns"},
			Storage: backup.RepositoryStorage{PVCName: "repo"}},
		Status: backup.BackupStatus{Phase: backup.BackupPhaseFailed, Message: msg,
			Conditions: []metav1.Condition{{Type: "Failed", Status: metav1.ConditionTrue, Reason: "RepositoryNotFound", Message: msg, LastTransitionTime: at}}},
	}
}

// sameString reports whether a and b are one string in memory, not two
// equal ones.
func sameString(a, b string) bool { return a == b && unsafe.StringData(a) == unsafe.StringData(b) }

// Objects read from the embedded member share the values they have in
// common (in the watch cache's store, and in what a list and a watch hand
// out), and keep every value as it was written.
func TestObjectsReadShareTheirCommonValues(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, store := backupStore(t, ctx, time.Minute, true)
	var w watch.Interface
	eventually(t, ctx, "the watch cache to serve watches", func() (err error) {
		w, err = store.Watch(ctx, "/backups/ns", storage.ListOptions{ResourceVersion: "0", Predicate: storage.Everything, Recursive: true})
		return err
	})
	defer w.Stop()

	names := []string{"a", "b", "c"}
	for _, name := range names {
		if err := store.Create(ctx, "/backups/ns/"+name, failed(name), &backup.Backup{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	var watched []*backup.Backup
	for range names {
		select {
		case ev := <-w.ResultChan():
			obj := ev.Object
			if cached, ok := obj.(runtime.CacheableObject); ok { // a copy, whose strings are the cached ones
				obj = cached.GetObject()
			}
			b, ok := obj.(*backup.Backup)
			if !ok {
				t.Fatalf("watch event %s %#v, want a Backup", ev.Type, obj)
			}
			watched = append(watched, b)
		case <-time.After(10 * time.Second):
			t.Fatal("no watch event for a create")
		}
	}
	list := &backup.BackupList{}
	eventually(t, ctx, "the list to hold every Backup", func() error {
		if err := store.GetList(ctx, "/backups/ns", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, list); err != nil {
			return err
		}
		if len(list.Items) != len(names) {
			return fmt.Errorf("%d items", len(list.Items))
		}
		return nil
	})

	for i, got := range list.Items {
		want := failed(names[i])
		want.ResourceVersion, want.UID, want.CreationTimestamp, want.Generation = got.ResourceVersion, got.UID, got.CreationTimestamp, got.Generation
		if !equality.Semantic.DeepEqual(&got, want) {
			t.Errorf("Backup %s read back as %+v, want %+v", names[i], got, want)
		}
	}
	for what, objs := range map[string][]*backup.Backup{"listed": {&list.Items[0], &list.Items[1], &list.Items[2]}, "watched": watched} {
		first := objs[0]
		for _, o := range objs[1:] {
			mf, firstMF := o.ManagedFields[0], first.ManagedFields[0]
			for field, pair := range map[string][2]string{
				"namespace":             {o.Namespace, first.Namespace},
				"finalizer":             {o.Finalizers[0], first.Finalizers[0]},
				"label":                 {o.Labels["backup.example.com/policy"], first.Labels["backup.example.com/policy"]},
				"manager":               {mf.Manager, firstMF.Manager},
				"managedFields version": {mf.APIVersion, firstMF.APIVersion},
				"status message":        {o.Status.Message, first.Status.Message},
				"condition message":     {o.Status.Conditions[0].Message, first.Status.Conditions[0].Message},
				"condition reason":      {o.Status.Conditions[0].Reason, first.Status.Conditions[0].Reason},
				"target claim":          {o.Spec.Target.PVCName, first.Spec.Target.PVCName},
			} {
				if !sameString(pair[0], pair[1]) {
					t.Errorf("%s Backups %s and %s hold their %s %q twice", what, first.Name, o.Name, field, pair[0])
				}
			}
			// A copy's byte slices are its own: only the list shares the cache's.
			if what == "listed" && &mf.FieldsV1.Raw[0] != &firstMF.FieldsV1.Raw[0] {
				t.Errorf("%s Backups %s and %s hold their managedFields' field set twice", what, first.Name, o.Name)
			}
			if o.Name == first.Name {
				t.Errorf("%s Backups share the name %q", what, o.Name)
			}
		}
	}
}
