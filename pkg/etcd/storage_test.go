package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	etcdfeature "k8s.io/apiserver/pkg/storage/feature"
	"k8s.io/apiserver/pkg/storage/storagebackend"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/apiserver"
	"example.com/backup-operator/pkg/etcd"
)

// staticOptions stands in for the options the generic server derives from
// its flags.
type staticOptions struct {
	config *storagebackend.ConfigForResource
}

func (s staticOptions) GetRESTOptions(schema.GroupResource, runtime.Object) (generic.RESTOptions, error) {
	return generic.RESTOptions{StorageConfig: s.config}, nil
}

func freeURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// backupStore is the storage of Backups the server builds on an embedded
// member, with the watch cache in front when watchCache is set.
func backupStore(t *testing.T, ctx context.Context, compaction time.Duration, watchCache bool) (*etcd.Server, storage.Interface) {
	t.Helper()
	member, err := etcd.Start(ctx, etcd.Config{Dir: t.TempDir(), ClientURL: freeURL(t), PeerURL: freeURL(t), LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(member.Stop)
	resource := schema.GroupResource{Group: backup.GroupName, Resource: "backups"}
	config := storagebackend.NewDefaultConfig(prefix, apiserver.Codecs.LegacyCodec(v1alpha1.SchemeGroupVersion)).ForResource(resource)
	config.CompactionInterval = compaction
	opts, err := member.RESTOptionsGetter(staticOptions{config}, watchCache).GetRESTOptions(resource, &backup.Backup{})
	if err != nil {
		t.Fatal(err)
	}
	store, destroy, err := opts.Decorator(opts.StorageConfig, "/backups",
		func(obj runtime.Object) (string, error) { return storage.NamespaceKeyFunc("/backups/", obj) },
		func() runtime.Object { return &backup.Backup{} }, func() runtime.Object { return &backup.BackupList{} },
		storage.DefaultNamespaceScopedAttr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(destroy)
	return member, store
}

const prefix = "/registry/backup.example.com"

// TestInProcessStorage drives the storage the server uses with an embedded
// member, through the watch cache: create, consistent list, watch, and the
// compactor, which runs on the in-process client too.
func TestInProcessStorage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	member, store := backupStore(t, ctx, time.Second, true)

	// Without this, every consistent list would bypass the watch cache.
	eventually(t, ctx, "RequestWatchProgress support to be detected", func() error {
		if !etcdfeature.DefaultFeatureSupportChecker.Supports(storage.RequestWatchProgress) {
			return errors.New("not yet")
		}
		return nil
	})

	var w watch.Interface
	eventually(t, ctx, "the watch cache to serve watches", func() (err error) {
		w, err = store.Watch(ctx, "/backups/ns", storage.ListOptions{ResourceVersion: "0", Predicate: storage.Everything, Recursive: true})
		return err
	})
	defer w.Stop()

	in := &backup.Backup{ObjectMeta: metav1.ObjectMeta{Name: "b1", Namespace: "ns"}, Spec: backup.BackupSpec{PolicyName: "p"}}
	out := &backup.Backup{}
	if err := store.Create(ctx, "/backups/ns/b1", in, out, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		obj := ev.Object
		if cached, ok := obj.(runtime.CacheableObject); ok { // the watch cache shares serializations
			obj = cached.GetObject()
		}
		if b, ok := obj.(*backup.Backup); ev.Type != watch.Added || !ok || b.Name != "b1" {
			t.Fatalf("first event: %s %#v, want ADDED b1", ev.Type, obj)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event for the create")
	}

	list := &backup.BackupList{}
	if err := store.GetList(ctx, "/backups/ns", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Spec.PolicyName != "p" || list.ResourceVersion < out.ResourceVersion {
		t.Fatalf("consistent list: %d items at %s, want b1 at >= %s", len(list.Items), list.ResourceVersion, out.ResourceVersion)
	}

	// The object is on the member, readable through its socket, and the
	// compactor removes the revision it was written at.
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{member.ClientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var rev int64
	if _, err := fmt.Sscan(out.ResourceVersion, &rev); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the compactor to compact the create's revision", func() error {
		resp, err := client.Get(ctx, prefix+"/backups/ns/b1", clientv3.WithRev(rev))
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 1 {
			t.Fatalf("object not stored under %s/backups/ns/b1", prefix)
		}
		return errors.New("not compacted yet")
	})
}

// TestListsFromTheMemberArePaged: a list with a limit above 500 reads 500
// objects and a continue token, and the token reads the rest; a list without a
// limit is whole. (The watch cache's consistency check lists with a limit of
// 10,000.)
func TestListsFromTheMemberArePaged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, store := backupStore(t, ctx, 0, false)
	const n = 520
	for i := range n {
		name := fmt.Sprintf("b%04d", i)
		in := &backup.Backup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
		if err := store.Create(ctx, "/backups/ns/"+name, in, &backup.Backup{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	opts := storage.ListOptions{Predicate: storage.Everything, Recursive: true}
	opts.Predicate.Limit = 10000
	first := &backup.BackupList{}
	if err := store.GetList(ctx, "/backups/ns", opts, first); err != nil {
		t.Fatal(err)
	}
	if len(first.Items) != 500 || first.Continue == "" {
		t.Fatalf("list with limit 10000: %d items, continue %q; want 500 and a continue token", len(first.Items), first.Continue)
	}
	if c := first.RemainingItemCount; c == nil || *c != n-500 {
		t.Fatalf("list with limit 10000: remainingItemCount %v, want %d", c, n-500)
	}
	opts.Predicate.Continue = first.Continue
	rest := &backup.BackupList{}
	if err := store.GetList(ctx, "/backups/ns", opts, rest); err != nil {
		t.Fatal(err)
	}
	if len(rest.Items) != n-500 || rest.Continue != "" {
		t.Fatalf("continued list: %d items, continue %q; want %d and no token", len(rest.Items), rest.Continue, n-500)
	}
	if rest.ResourceVersion != first.ResourceVersion {
		t.Fatalf("continued list at resourceVersion %s, the first page at %s: want the same snapshot", rest.ResourceVersion, first.ResourceVersion)
	}
	seen := map[string]bool{}
	for _, b := range append(first.Items, rest.Items...) {
		seen[b.Name] = true
	}
	if len(seen) != n {
		t.Fatalf("the two pages hold %d distinct Backups, want %d", len(seen), n)
	}
	small := storage.ListOptions{Predicate: storage.Everything, Recursive: true}
	small.Predicate.Limit = 100
	page := &backup.BackupList{}
	if err := store.GetList(ctx, "/backups/ns", small, page); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 100 || page.Continue == "" {
		t.Fatalf("list with limit 100: %d items, continue %q; want 100 and a continue token", len(page.Items), page.Continue)
	}
	whole := &backup.BackupList{}
	if err := store.GetList(ctx, "/backups/ns", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, whole); err != nil {
		t.Fatal(err)
	}
	if len(whole.Items) != n || whole.Continue != "" {
		t.Fatalf("list without a limit: %d items, continue %q; want all %d", len(whole.Items), whole.Continue, n)
	}
}

func eventually(t *testing.T, ctx context.Context, what string, f func() error) {
	t.Helper()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
