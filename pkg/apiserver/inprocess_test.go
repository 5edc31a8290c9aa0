package apiserver

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"

	"example.com/backup-operator/hack/cluster"
	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/etcd"
	backupstorage "example.com/backup-operator/pkg/registry/backup/backup"
)

type storageOptions struct {
	config *storagebackend.ConfigForResource
}

func (s storageOptions) GetRESTOptions(schema.GroupResource, runtime.Object) (generic.RESTOptions, error) {
	return generic.RESTOptions{StorageConfig: s.config, ResourcePrefix: "backups"}, nil
}

func localURL(t *testing.T) string {
	t.Helper()
	port, err := cluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// TestInProcessInformerSharesTheWatchCache stores Backups in an embedded
// member behind the watch cache, as the server does, and reads them from
// the in-process informer: the informer's objects share their maps and
// slices with the cache's (one copy of each Backup's contents in memory,
// not two), they lack managedFields while the cache's keep them, and they
// follow updates.
func TestInProcessInformerSharesTheWatchCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	member, err := etcd.Start(ctx, etcd.Config{Dir: t.TempDir(), ClientURL: localURL(t), PeerURL: localURL(t), LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(member.Stop)
	resource := backup.Resource("backups")
	config := storagebackend.NewDefaultConfig("/registry/backup.example.com", Codecs.LegacyCodec(v1alpha1.SchemeGroupVersion)).ForResource(resource)
	backups, _, err := backupstorage.NewREST(Scheme, member.RESTOptionsGetter(storageOptions{config}, true), nil, nil, "repo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backups.Store.DestroyFunc)

	informer := inProcessInformer(backups.Store, &v1alpha1.Backup{}, &v1alpha1.BackupList{})
	go informer.Run(ctx.Done())

	nsCtx := genericapirequest.WithNamespace(ctx, "prod")
	write := func(name string, phase backup.BackupPhase) string {
		t.Helper()
		key, err := backups.Store.KeyFunc(nsCtx, name)
		if err != nil {
			t.Fatal(err)
		}
		out := &backup.Backup{}
		err = backups.Store.Storage.GuaranteedUpdate(ctx, key, out, true, nil, func(in runtime.Object, _ storage.ResponseMeta) (runtime.Object, *uint64, error) {
			b := in.(*backup.Backup)
			b.Name, b.Namespace = name, "prod"
			b.Labels = map[string]string{v1alpha1.PolicyLabel: "nightly"}
			b.Finalizers = []string{v1alpha1.DataFinalizer}
			b.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "test", Operation: metav1.ManagedFieldsOperationUpdate}}
			b.Spec.Target.PVCName = "data"
			b.Status.Phase = phase
			b.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: string(phase)}}
			return b, nil, nil
		}, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out.ResourceVersion
	}
	check := func(name, rv string) {
		t.Helper()
		var got *v1alpha1.Backup
		err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			o, ok, _ := informer.GetStore().GetByKey("prod/" + name)
			if ok {
				got = o.(*v1alpha1.Backup)
			}
			return ok && got.ResourceVersion == rv, nil
		})
		if err != nil {
			t.Fatalf("the informer did not see %s at resourceVersion %s: %v", name, rv, err)
		}
		o, err := backups.Store.Get(nsCtx, name, &metav1.GetOptions{ResourceVersion: "0"})
		if err != nil {
			t.Fatal(err)
		}
		cached := o.(*backup.Backup)
		if cached.ResourceVersion != rv {
			t.Fatalf("the watch cache holds %s at %s, want %s", name, cached.ResourceVersion, rv)
		}
		same := func(a, b interface{}) bool {
			return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
		}
		if !same(got.Labels, cached.Labels) || !same(got.Finalizers, cached.Finalizers) || !same(got.Status.Conditions, cached.Status.Conditions) {
			t.Errorf("%s at %s: the informer's labels, finalizers and conditions are copies of the cache's, not the cache's own", name, rv)
		}
		if got.Status.Phase != v1alpha1.BackupPhase(cached.Status.Phase) || got.Labels[v1alpha1.PolicyLabel] != "nightly" {
			t.Errorf("%s: the informer holds %+v", name, got)
		}
		if got.ManagedFields != nil || len(cached.ManagedFields) != 1 {
			t.Errorf("want managedFields dropped by the informer (%v) and kept by the cache (%v)", got.ManagedFields, cached.ManagedFields)
		}
	}
	if !cacheSynced(ctx, informer.HasSynced) {
		t.Fatal("the informer did not sync")
	}
	rv := write("a", backup.BackupPhasePending)
	check("a", rv)
	rv = write("a", backup.BackupPhaseRunning)
	check("a", rv)
	check("b", write("b", backup.BackupPhasePending))
	check("a", rv) // another object's event left a alone
}

func cacheSynced(ctx context.Context, synced func() bool) bool {
	return wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(context.Context) (bool, error) { return synced(), nil }) == nil
}
