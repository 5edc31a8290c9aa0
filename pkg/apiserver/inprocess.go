package apiserver

import (
	"context"
	"time"

	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// inProcessInformer is an informer on one of this server's own resources that
// reads the registry's watch cache in process: no loopback HTTP, no JSON. The
// restore checks use it, so checking a request costs the API path nothing per
// write. Objects are converted to the versioned type the listers expect.
func inProcessInformer(store *genericregistry.Store, example, exampleList runtime.Object) cache.SharedIndexInformer {
	ctx := genericapirequest.WithNamespace(context.Background(), metav1.NamespaceAll)
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
				out, err := convert(ev.Object, example.DeepCopyObject())
				if err != nil {
					klog.ErrorS(err, "Converting a watch event for the restore checks")
					return ev, false
				}
				ev.Object = out
				return ev, true
			}), nil
		},
	}
	return cache.NewSharedIndexInformer(lw, example, 10*time.Minute, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}
