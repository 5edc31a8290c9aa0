// Package apiserver assembles the generic API server that serves
// backup.example.com: the scheme, the codecs and the REST storage of the three
// resources with their /status subresources.
package apiserver

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"

	"context"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"example.com/backup-operator/pkg/controller"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/install"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/generated/clientset/versioned"
	"example.com/backup-operator/pkg/generated/informers/externalversions"
	backupstorage "example.com/backup-operator/pkg/registry/backup/backup"
	policystorage "example.com/backup-operator/pkg/registry/backup/backuppolicy"
	restorestorage "example.com/backup-operator/pkg/registry/backup/restorejob"
	"example.com/backup-operator/pkg/safety"
)

var (
	// Scheme holds the internal and versioned types of the group.
	Scheme = runtime.NewScheme()
	// Codecs serializes the types in Scheme.
	Codecs = serializer.NewCodecFactory(Scheme)
)

func init() {
	install.Install(Scheme)
	// The generic server decodes list and get options as unversioned v1 types.
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	unversioned := schema.GroupVersion{Group: "", Version: "v1"}
	Scheme.AddUnversionedTypes(unversioned,
		&metav1.Status{},
		&metav1.APIVersions{},
		&metav1.APIGroupList{},
		&metav1.APIGroup{},
		&metav1.APIResourceList{},
	)
}

// withoutProtobuf offers JSON and YAML only: the types have no protobuf
// encoding, and a client that asks for protobuf first (controller-manager's
// garbage collector and namespace controller do) must be answered in JSON
// rather than with an encoding error.
type withoutProtobuf struct{ runtime.NegotiatedSerializer }

func (s withoutProtobuf) SupportedMediaTypes() []runtime.SerializerInfo {
	var out []runtime.SerializerInfo
	for _, info := range s.NegotiatedSerializer.SupportedMediaTypes() {
		if info.MediaType != runtime.ContentTypeProtobuf {
			out = append(out, info)
		}
	}
	return out
}

// ExtraConfig is the configuration beyond the generic server's.
type ExtraConfig struct {
	// DefaultRepositoryPVC fills spec.storage.pvcName when a policy or Backup
	// leaves it empty.
	DefaultRepositoryPVC string
	// Controllers runs the embedded controllers (schedules, mover Jobs,
	// retention, restores) in this process, while it holds the Lease of
	// LeaderElection.
	Controllers bool
	// Controller configures the controllers: the mover image, Job settings,
	// workers. Zero fields mean controller.Options' defaults.
	Controller controller.Options
	// LeaderElection names the Lease that decides which replica runs the
	// controllers (one code path, also for the single embedded-etcd replica).
	LeaderElection controller.LeaderElection
	// KubeClientConfig reaches kube-apiserver (Jobs, claims, events, Leases).
	KubeClientConfig *restclient.Config
}

// controllersStopTimeout bounds how long shutdown waits for the controllers to
// stop and release their Lease before the server stops serving.
const controllersStopTimeout = 30 * time.Second

// Config is the whole server configuration.
type Config struct {
	GenericConfig *genericapiserver.RecommendedConfig
	ExtraConfig   ExtraConfig
}

// CompletedConfig is a Config after Complete; only it can build a server.
type CompletedConfig struct {
	GenericConfig genericapiserver.CompletedConfig
	ExtraConfig   *ExtraConfig
}

// Complete fills in defaults of the generic configuration.
func (c *Config) Complete() CompletedConfig {
	return CompletedConfig{GenericConfig: c.GenericConfig.Complete(), ExtraConfig: &c.ExtraConfig}
}

// newChecker builds the restore-safety checker on informer caches of
// kube-apiserver's pods, claims and replica sets, and the delegated authorizer,
// which asks kube-apiserver about the requester. New fills in the caches of
// this server's own Backups and RestoreJobs (in process, from the registry).
// It returns nil without a connection to kube-apiserver.
func (c CompletedConfig) newChecker() (*safety.Checker, func() bool) {
	kube := c.GenericConfig.SharedInformerFactory
	if kube == nil {
		return nil, nil
	}
	pods := kube.Core().V1().Pods().Informer()
	// AddIndexers fails only on a started informer; this one has not started.
	utilruntime.Must(pods.AddIndexers(cache.Indexers{safety.PodsByPVCIndex: safety.PodsByPVC}))
	pvcs := kube.Core().V1().PersistentVolumeClaims()
	rs := kube.Apps().V1().ReplicaSets()
	// Mover Jobs keep their claim busy; the controllers use Jobs too.
	jobs := kube.Batch().V1().Jobs()
	synced := []cache.InformerSynced{pods.HasSynced, pvcs.Informer().HasSynced, rs.Informer().HasSynced, jobs.Informer().HasSynced}
	// These caches hold every pod, claim, replica set and Job of the
	// cluster; of pods, Jobs and replica sets they keep only the fields the
	// checks and the controllers read, of claims all but managedFields. SetTransform fails only on a started informer; these have not
	// started.
	for _, i := range []cache.SharedIndexInformer{pods, pvcs.Informer(), rs.Informer(), jobs.Informer()} {
		utilruntime.Must(i.SetTransform(controller.TrimCached))
	}
	checker := &safety.Checker{
		PVCs: pvcs.Lister(), Pods: pods.GetIndexer(), ReplicaSets: rs.Lister(), Jobs: jobs.Lister(),
		Authorizer: c.GenericConfig.Authorization.Authorizer,
	}
	return checker, func() bool {
		for _, s := range synced {
			if !s() {
				return false
			}
		}
		return true
	}
}

// BackupServer is the running API server.
type BackupServer struct {
	GenericAPIServer *genericapiserver.GenericAPIServer
}

// New builds the server and installs the backup.example.com group.
func (c CompletedConfig) New() (*BackupServer, error) {
	generic, err := c.GenericConfig.New("backup-apiserver", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, err
	}
	// The checker is shared by the stores (admission-time checks) and the
	// controllers; its caches of our own objects come from the stores below.
	checker, kubeSynced := c.newChecker()
	opts := c.GenericConfig.RESTOptionsGetter
	policies, policyStatus, err := policystorage.NewREST(Scheme, opts, checker, c.ExtraConfig.DefaultRepositoryPVC)
	if err != nil {
		return nil, err
	}
	backups, backupStatus, err := backupstorage.NewREST(Scheme, opts, policies, checker, c.ExtraConfig.DefaultRepositoryPVC)
	if err != nil {
		return nil, err
	}
	restores, restoreStatus, err := restorestorage.NewREST(Scheme, opts, checker)
	if err != nil {
		return nil, err
	}
	var informers []cache.SharedIndexInformer
	var backupInformer, restoreInformer cache.SharedIndexInformer
	if checker != nil {
		backupInformer = inProcessInformer(backups.Store, &v1alpha1.Backup{}, &v1alpha1.BackupList{})
		restoreInformer = inProcessInformer(restores.Store, &v1alpha1.RestoreJob{}, &v1alpha1.RestoreJobList{})
		informers = []cache.SharedIndexInformer{backupInformer, restoreInformer}
		// AddIndexers fails only on a started informer; these have not started.
		utilruntime.Must(backupInformer.AddIndexers(safety.BackupIndexers()))
		utilruntime.Must(restoreInformer.AddIndexers(safety.RestoreIndexers()))
		checker.Backups = backupInformer.GetIndexer()
		checker.Restores = restoreInformer.GetIndexer()
		checker.Synced = func() bool {
			return kubeSynced() && backupInformer.HasSynced() && restoreInformer.HasSynced()
		}
	}

	// The files subresource reads through reader pods, which every replica
	// may start; ended ones are deleted by whichever replica sees them.
	var readers *controller.Readers
	var podInformer cache.SharedIndexInformer
	if checker != nil && c.ExtraConfig.KubeClientConfig != nil {
		readerKube, err := kubernetes.NewForConfig(c.ExtraConfig.KubeClientConfig)
		if err != nil {
			return nil, err
		}
		if readers, err = controller.NewReaders(c.ExtraConfig.Controller, readerKube, c.ExtraConfig.KubeClientConfig, checker); err != nil {
			return nil, err
		}
		podInformer = c.GenericConfig.SharedInformerFactory.Core().V1().Pods().Informer()
	}

	// The controllers run only while this process holds their Lease; each term
	// of leadership builds a fresh Manager (on a fresh informer of policies;
	// Backups and RestoreJobs come from the in-process informers above, which
	// run throughout), so a Lease lost and regained starts cleanly.
	var kube kubernetes.Interface
	var ownClient versioned.Interface
	if c.ExtraConfig.Controllers && checker != nil && c.ExtraConfig.KubeClientConfig != nil {
		if kube, err = kubernetes.NewForConfig(c.ExtraConfig.KubeClientConfig); err != nil {
			return nil, err
		}
		if ownClient, err = versioned.NewForConfig(c.GenericConfig.LoopbackClientConfig); err != nil {
			return nil, err
		}
		if c.ExtraConfig.Controller.HookExecutor == nil {
			if c.ExtraConfig.Controller.HookExecutor, err = controller.NewHookExecutor(c.ExtraConfig.KubeClientConfig); err != nil {
				return nil, err
			}
		}
	}
	// Shutdown stops the controllers (and releases the Lease) in a pre-shutdown
	// hook, while the server still answers their last requests.
	stopControllers, cancelControllers := context.WithCancel(context.Background())
	controllersDone := make(chan struct{})
	generic.AddPostStartHookOrDie("start-backup-informers-and-controllers", func(ctx genericapiserver.PostStartHookContext) error {
		for _, inf := range informers {
			go inf.Run(ctx.Done())
		}
		if checker != nil {
			c.GenericConfig.SharedInformerFactory.Start(ctx.Done())
		}
		if readers != nil {
			if err := readers.RemoveEnded(ctx, podInformer); err != nil {
				return err
			}
		}
		if kube == nil {
			close(controllersDone)
			return nil
		}
		term := func(termCtx context.Context) {
			own := externalversions.NewSharedInformerFactory(ownClient, 10*time.Minute)
			shareInProcessInformers(own, backupInformer, restoreInformer)
			utilruntime.Must(own.Backup().V1alpha1().BackupPolicies().Informer().SetTransform(controller.StripManagedFields))
			manager := controller.NewManager(c.ExtraConfig.Controller, kube, ownClient, c.GenericConfig.SharedInformerFactory, own, checker)
			own.Start(termCtx.Done())
			c.GenericConfig.SharedInformerFactory.Start(ctx.Done())
			manager.Run(termCtx)
			own.Shutdown()
		}
		go func() {
			defer close(controllersDone)
			electCtx := klog.NewContext(stopControllers, klog.FromContext(ctx).WithName("controllers"))
			if err := controller.RunElected(electCtx, kube, c.ExtraConfig.LeaderElection, term); err != nil {
				utilruntime.HandleErrorWithContext(ctx, err, "The controllers cannot run")
			}
		}()
		return nil
	})
	generic.AddPreShutdownHookOrDie("stop-backup-controllers", func() error {
		cancelControllers()
		select {
		case <-controllersDone:
		case <-time.After(controllersStopTimeout):
			klog.InfoS("The controllers did not stop in time; shutting down without them", "timeout", controllersStopTimeout)
		}
		return nil
	})

	// The parameter codec of this scheme decodes the files subresource's
	// options (BackupFilesOptions) besides the standard ones.
	group := genericapiserver.NewDefaultAPIGroupInfo(backup.GroupName, Scheme, runtime.NewParameterCodec(Scheme), Codecs)
	// The group's codecs write a list's items one by one (streaming
	// collection encoding); with Codecs itself, a list of 10,000 Backups was
	// encoded whole into one buffer of about 50 MB first.
	group.NegotiatedSerializer = withoutProtobuf{group.NegotiatedSerializer}
	group.VersionedResourcesStorageMap["v1alpha1"] = map[string]rest.Storage{
		"backuppolicies":        policies,
		"backuppolicies/status": policyStatus,
		"backups":               backups,
		"backups/status":        backupStatus,
		"restorejobs":           restores,
		"restorejobs/status":    restoreStatus,
	}
	if readers != nil {
		group.VersionedResourcesStorageMap["v1alpha1"]["backups/files"] = backupstorage.NewFilesREST(backups, readers)
	}
	if err := generic.InstallAPIGroup(&group); err != nil {
		return nil, err
	}
	return &BackupServer{GenericAPIServer: generic}, nil
}
