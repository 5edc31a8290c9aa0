package apiserver

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	cacherstorage "k8s.io/apiserver/pkg/storage/cacher"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/controller"
	"example.com/backup-operator/pkg/generated/clientset/versioned"
	"example.com/backup-operator/pkg/generated/informers/externalversions"
)

// inProcessInformer is an informer on one of this server's own resources that
// reads the registry's watch cache in process: no loopback HTTP, no JSON. The
// restore checks use it, so checking a request costs the API path nothing per
// write. Objects are converted to the versioned type the listers expect.
func inProcessInformer(store *genericregistry.Store, example, exampleList runtime.Object) cache.SharedIndexInformer {
	ctx := genericapirequest.WithNamespace(context.Background(), metav1.NamespaceAll)
	// Without a watch cache in front of the store, events come straight from
	// etcd, each object decoded afresh: nothing to share.
	_, watchCache := store.Storage.Storage.(*cacherstorage.CacheDelegator)
	convert := func(in runtime.Object, out runtime.Object) (runtime.Object, error) {
		// The watch cache wraps objects to share their serialized forms.
		if cached, ok := in.(runtime.CacheableObject); ok {
			in = cached.GetObject()
		}
		if err := Scheme.Convert(in, out, nil); err != nil {
			return nil, err
		}
		return out, nil
	}
	lw := &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			list, err := store.List(ctx, &metainternalversion.ListOptions{
				ResourceVersion: o.ResourceVersion, ResourceVersionMatch: o.ResourceVersionMatch, Limit: o.Limit, Continue: o.Continue})
			if err != nil {
				return nil, err
			}
			return convert(list, exampleList.DeepCopyObject())
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			w, err := store.Watch(ctx, &metainternalversion.ListOptions{Watch: true,
				ResourceVersion: o.ResourceVersion, ResourceVersionMatch: o.ResourceVersionMatch,
				AllowWatchBookmarks: o.AllowWatchBookmarks, SendInitialEvents: o.SendInitialEvents})
			if err != nil {
				return nil, err
			}
			return watch.Filter(w, func(ev watch.Event) (watch.Event, bool) {
				if ev.Type == watch.Error || ev.Object == nil {
					return ev, true
				}
				in := ev.Object
				if watchCache && (ev.Type == watch.Added || ev.Type == watch.Modified) {
					if cached := sharedWithCache(store, ev.Object); cached != nil {
						in = cached
					}
				}
				out, err := convert(in, example.DeepCopyObject())
				if err != nil {
					klog.ErrorS(err, "Converting a watch event for the restore checks")
					return ev, false
				}
				ev.Object = out
				return ev, true
			}), nil
		},
	}
	informer := cache.NewSharedIndexInformer(lw, example, 10*time.Minute, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	// Neither the checks nor the controllers read managedFields, a good part
	// of each object; updates sent without them keep the stored ones.
	// SetTransform fails only on a started informer; this one has not started.
	utilruntime.Must(informer.SetTransform(controller.StripManagedFields))
	return informer
}

// sharedWithCache returns the watch cache's own copy of an event's object
// when the cache still holds that very version, else nil (a cache that is
// not ready passes the Get to etcd, whose object is a fresh copy, fine too).
// It is used only when a watch cache serves the store. A watch event
// hands out a deep copy of the object (every map, slice and pointer of it
// allocated anew), which the informer would keep for as long as the object
// lives: a second copy of every Backup beside the cache's. A Get served from
// the cache copies only the object's top-level struct and shares the rest
// with the cache, which never changes an object it holds (a new version is a
// new object), so the informer's copy costs a struct. Readers of the
// informer, as of any informer, must not change what it hands out.
func sharedWithCache(store *genericregistry.Store, obj runtime.Object) runtime.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(genericapirequest.WithNamespace(context.Background(), m.GetNamespace()), 10*time.Second)
	defer cancel()
	got, err := store.Get(ctx, m.GetName(), &metav1.GetOptions{ResourceVersion: "0"})
	if err != nil {
		return nil
	}
	if g, err := meta.Accessor(got); err != nil || g.GetResourceVersion() != m.GetResourceVersion() {
		return nil
	}
	return got
}

// runningInformer is an informer that runs already, for as long as the
// server: a factory's Start leaves it alone, and so does its Shutdown.
type runningInformer struct{ cache.SharedIndexInformer }

// Run does nothing: the informer runs already.
func (runningInformer) Run(<-chan struct{}) {}

// RunWithContext does nothing: the informer runs already.
func (runningInformer) RunWithContext(context.Context) {}

// shareInProcessInformers makes factory hand out the server's in-process
// informers of Backups and RestoreJobs, so the controllers read the same
// cache as the restore checks: one copy of every object in memory, not a
// second one decoded from the loopback client's JSON. The informers run for
// as long as the server; a term of leadership only adds and removes its
// event handlers (added, a handler first receives every cached object).
func shareInProcessInformers(factory externalversions.SharedInformerFactory, backups, restores cache.SharedIndexInformer) {
	for _, s := range []struct {
		example  runtime.Object
		informer cache.SharedIndexInformer
	}{{&v1alpha1.Backup{}, backups}, {&v1alpha1.RestoreJob{}, restores}} {
		factory.InformerFor(s.example, func(versioned.Interface, time.Duration) cache.SharedIndexInformer {
			return runningInformer{s.informer}
		})
	}
}
