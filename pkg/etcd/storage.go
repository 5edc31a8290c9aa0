package etcd

import (
	"context"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	cacherstorage "k8s.io/apiserver/pkg/storage/cacher"
	"k8s.io/apiserver/pkg/storage/etcd3"
	etcdfeature "k8s.io/apiserver/pkg/storage/feature"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/apiserver/pkg/storage/value/encrypt/identity"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/tools/cache"
)

// maxListPage is the most objects one list from the member decodes at once.
// The watch cache's consistency check (every 5 to 7.5 minutes per resource)
// compares the cache with the member by listing in pages of 10,000: with
// 10,000 Backups stored, each check held every one of them decoded at once,
// some 35 MB of heap for a moment, which the process then kept. (The cache
// fills itself with a watch list, whose own pages are small; its fallback
// list pages are capped here too.) A server may return fewer objects than a
// list's limit, with a continue token; the callers follow it.
const maxListPage = 500

// pagedLists caps the page size of lists read from the member.
type pagedLists struct{ storage.Interface }

// GetList reads at most maxListPage objects per call when a limit is set; a
// list without a limit is read whole, as asked.
func (p pagedLists) GetList(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object) error {
	if opts.Predicate.Limit > maxListPage {
		opts.Predicate.Limit = maxListPage
	}
	return p.Interface.GetList(ctx, key, opts, listObj)
}

// inProcess is the member's in-process client: requests and watch events are
// direct function calls into the etcd server, with no socket, no HTTP/2 framing
// and no protobuf encoding between the API server and its own storage. On the
// create path this is about a sixth of the server's CPU.
type inProcess struct {
	once      sync.Once
	client    *kubernetes.Client
	compactor etcd3.Compactor
	stop      func()
}

// inProcessClient makes the client, and its compactor, on first use.
func (s *Server) inProcessClient(config storagebackend.ConfigForResource) (*kubernetes.Client, etcd3.Compactor) {
	s.local.once.Do(func() {
		c := v3client.New(s.etcd.Server)
		kc := &kubernetes.Client{Client: c}
		kc.Kubernetes = kc
		// The same per-request latency metrics the socket client reports.
		kc.KV = etcd3.NewETCDLatencyTracker(kc.KV)
		s.local.client = kc
		// Consistent reads are served from the watch cache only once the
		// storage knows etcd answers watch progress requests; the check asks
		// each of a client's endpoints, and the in-process client has none.
		etcdfeature.DefaultFeatureSupportChecker.CheckClient(context.Background(),
			memberEndpoint{Client: c, url: s.ClientURL}, storage.RequestWatchProgress)
		s.local.stop = func() { _ = c.Close() }
		if interval := config.CompactionInterval; interval > 0 {
			// One compactor for the member, as the kube-apiserver keeps one
			// per etcd cluster.
			compactor := etcd3.StartCompactorPerEndpoint(c, interval)
			s.local.compactor = compactor
			s.local.stop = func() { compactor.Stop(); _ = c.Close() }
		}
	})
	return s.local.client, s.local.compactor
}

// memberEndpoint names the member's URL as the in-process client's endpoint.
// Status calls the member in process whatever the endpoint.
type memberEndpoint struct {
	*clientv3.Client
	url string
}

func (m memberEndpoint) Endpoints() []string { return []string{m.url} }

// RESTOptionsGetter returns delegate's REST options with storage that talks to
// this member in process. The TCP listener stays: health checks, storage
// metrics and etcdctl use it. watchCache puts the same watch cache in front of
// the storage as the generic registry's default decorator.
func (s *Server) RESTOptionsGetter(delegate generic.RESTOptionsGetter, watchCache bool) generic.RESTOptionsGetter {
	return &restOptionsGetter{delegate: delegate, server: s, watchCache: watchCache}
}

type restOptionsGetter struct {
	delegate   generic.RESTOptionsGetter
	server     *Server
	watchCache bool
}

func (g *restOptionsGetter) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.delegate.GetRESTOptions(resource, example)
	if err != nil {
		return opts, err
	}
	opts.Decorator = g.decorate
	return opts, nil
}

func (g *restOptionsGetter) decorate(config *storagebackend.ConfigForResource, resourcePrefix string,
	keyFunc func(obj runtime.Object) (string, error), newFunc, newListFunc func() runtime.Object,
	getAttrs storage.AttrFunc, triggers storage.IndexerFuncs, indexers *cache.Indexers,
) (storage.Interface, factory.DestroyFunc, error) {
	client, compactor := g.server.inProcessClient(*config)
	transformer := config.Transformer
	if transformer == nil {
		transformer = identity.NewEncryptCheckTransformer()
	}
	versioner := storage.APIObjectVersioner{}
	// Objects read from the member share their recurring values (the watch
	// cache holds every one of them decoded).
	codec := internCodec{Codec: config.Codec, pool: g.server.interned}
	decoder := etcd3.NewDefaultDecoder(codec, versioner)
	if utilfeature.DefaultFeatureGate.Enabled(features.AllowUnsafeMalformedObjectDeletion) {
		transformer = etcd3.WithCorruptObjErrorHandlingTransformer(transformer)
		decoder = etcd3.WithCorruptObjErrorHandlingDecoder(decoder)
	}
	store, err := etcd3.New(client, compactor, codec, newFunc, newListFunc, config.Prefix, resourcePrefix,
		config.GroupResource, transformer, config.LeaseManagerConfig, decoder, versioner)
	if err != nil {
		return nil, nil, err
	}
	var raw storage.Interface = store
	if utilfeature.DefaultFeatureGate.Enabled(features.AllowUnsafeMalformedObjectDeletion) {
		raw = etcd3.NewStoreWithUnsafeCorruptObjectDeletion(raw, config.GroupResource)
	}
	raw = pagedLists{raw}
	if !g.watchCache {
		return raw, store.Close, nil
	}
	cacher, err := cacherstorage.NewCacherFromConfig(cacherstorage.Config{
		Storage:             raw,
		Versioner:           versioner,
		GroupResource:       config.GroupResource,
		EventsHistoryWindow: config.EventsHistoryWindow,
		ResourcePrefix:      resourcePrefix,
		KeyFunc:             keyFunc,
		NewFunc:             newFunc,
		NewListFunc:         newListFunc,
		GetAttrsFunc:        getAttrs,
		IndexerFuncs:        triggers,
		Indexers:            indexers,
		Codec:               codec,
	})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	delegator := cacherstorage.NewCacheDelegator(cacher, raw)
	var once sync.Once
	return delegator, func() {
		once.Do(func() {
			delegator.Stop()
			cacher.Stop()
			store.Close()
		})
	}, nil
}
