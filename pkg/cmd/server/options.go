// Package server holds the options and the run loop of backup-apiserver:
// New → AddFlags → Complete → Validate → Config → Run.
package server

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericfilters "k8s.io/apiserver/pkg/server/filters"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	cachermetrics "k8s.io/apiserver/pkg/storage/cacher/metrics"
	"k8s.io/apiserver/pkg/util/compatibility"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/klog/v2"
	psaapi "k8s.io/pod-security-admission/api"
	netutils "k8s.io/utils/net"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/apiserver"
	"example.com/backup-operator/pkg/controller"
	"example.com/backup-operator/pkg/etcd"
	generatedopenapi "example.com/backup-operator/pkg/generated/openapi"
)

const etcdPathPrefix = "/registry/backup.example.com"

// Options are the flags of backup-apiserver.
type Options struct {
	Recommended *genericoptions.RecommendedOptions

	// EtcdDir is the embedded etcd's data directory, used when no
	// --etcd-servers are given.
	EtcdDir string
	// EmbeddedEtcdClientURL and EmbeddedEtcdPeerURL are the embedded member's
	// addresses; loopback, and away from a cluster etcd's 2379/2380.
	EmbeddedEtcdClientURL string
	EmbeddedEtcdPeerURL   string

	// DefaultRepositoryPVC fills spec.storage.pvcName when it is empty.
	DefaultRepositoryPVC string

	// ServiceName and ServiceNamespace name the Service in front of the server;
	// the serving certificate covers <name>.<namespace>.svc, the name the
	// aggregator verifies.
	ServiceName      string
	ServiceNamespace string
	// APIServiceName is the APIService whose spec.caBundle the server keeps
	// equal to its serving CA; empty disables publishing.
	APIServiceName string

	// Controllers runs the embedded controllers; MoverImage is their Jobs' image.
	Controllers bool
	MoverImage  string

	// ControllerWorkers and the mover Job settings below become
	// controller.Options, whose defaults they start from. A resource quantity
	// of 0 sets none; a backoff limit of 0 means no retries.
	ControllerWorkers    int
	MoverJobDeadline     time.Duration
	MoverJobBackoffLimit int32
	MoverJobTTL          time.Duration
	// ReaderIdleTimeout is how long a reader pod of backups/files lives
	// without requests.
	ReaderIdleTimeout  time.Duration
	MoverCPURequest    string
	MoverMemoryRequest string
	MoverMemoryLimit   string
	PruneLockWait      time.Duration
	PodSecurityDefault string
	MaxMovers          int
	MaxMoversPerNode   int
	// KubeAPIQPS and KubeAPIBurst limit the controllers' requests to
	// kube-apiserver (client-go's own default, 5 and 10, starves a burst of
	// a thousand schedules).
	KubeAPIQPS   float32
	KubeAPIBurst int

	// LeaderElection is the Lease the controllers run under; an empty
	// namespace means ServiceNamespace. Config fills in the identity.
	LeaderElection controller.LeaderElection

	embedded bool
	// member is the running embedded etcd, set by Run.
	member *etcd.Server
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	o := &Options{
		Recommended: genericoptions.NewRecommendedOptions(etcdPathPrefix,
			apiserver.Codecs.LegacyCodec(v1alpha1.SchemeGroupVersion)),
		EtcdDir:               "/var/lib/backup-apiserver/etcd",
		EmbeddedEtcdClientURL: "http://127.0.0.1:2479",
		EmbeddedEtcdPeerURL:   "http://127.0.0.1:2480",
		DefaultRepositoryPVC:  "backup-repo",
		ServiceName:           "backup-apiserver",
		ServiceNamespace:      "backup-system",
		APIServiceName:        "v1alpha1." + v1alpha1.GroupName,
		Controllers:           true,
		MoverImage:            "backup-operator:dev",
	}
	d := controller.Options{}.Defaulted()
	o.ControllerWorkers = d.Workers
	o.MoverJobDeadline = d.JobDeadline
	o.MoverJobBackoffLimit = d.JobBackoffLimit
	o.MoverJobTTL = d.JobTTL
	o.ReaderIdleTimeout = d.ReaderIdleTimeout
	o.MoverCPURequest = d.MoverRequests.Cpu().String()
	o.MoverMemoryRequest = d.MoverRequests.Memory().String()
	o.MoverMemoryLimit = d.MoverLimits.Memory().String()
	o.PruneLockWait = d.LockWait
	o.PodSecurityDefault = d.PodSecurityDefault
	o.MaxMovers, o.MaxMoversPerNode = d.MaxMovers, d.MaxMoversPerNode
	o.KubeAPIQPS, o.KubeAPIBurst = 50, 100
	o.LeaderElection = controller.LeaderElection{Name: "backup-apiserver-controllers",
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	if img := os.Getenv("MOVER_IMAGE"); img != "" {
		o.MoverImage = img
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		o.ServiceNamespace = ns
	}
	o.Recommended.Etcd.StorageConfig.EncodeVersioner = runtime.NewMultiGroupVersioner(
		v1alpha1.SchemeGroupVersion, schema.GroupKind{Group: v1alpha1.GroupName})
	// Every write leaves the old revision in etcd, and the watch cache keeps
	// a snapshot of its store per revision, until the next compaction: with
	// kube-apiserver's 5 minutes, a burst of Backup writes held all of them
	// (10,000 Backups: 401 MiB right after, against 327 MiB with 1 minute;
	// the embedded etcd's file 48 MiB against 32 MiB).
	o.Recommended.Etcd.StorageConfig.CompactionInterval = time.Minute
	// Keep the serving certificate beside the etcd data so the CA published in
	// the APIService stays valid across restarts.
	o.Recommended.SecureServing.ServerCert.PairName = "apiserver"
	o.Recommended.SecureServing.ServerCert.CertDirectory = "" // default: beside --etcd-dir (Complete)
	o.Recommended.SecureServing.BindPort = 8443
	return o
}

// AddFlags adds all flags to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.Recommended.AddFlags(fs)
	fs.StringVar(&o.EtcdDir, "etcd-dir", o.EtcdDir,
		"Data directory of the embedded etcd, used unless --etcd-servers names an external cluster. Put it on a persistent volume.")
	fs.StringVar(&o.EmbeddedEtcdClientURL, "embedded-etcd-client-url", o.EmbeddedEtcdClientURL, "Client URL of the embedded etcd.")
	fs.StringVar(&o.EmbeddedEtcdPeerURL, "embedded-etcd-peer-url", o.EmbeddedEtcdPeerURL, "Peer URL of the embedded etcd.")
	fs.StringVar(&o.DefaultRepositoryPVC, "default-repository-pvc", o.DefaultRepositoryPVC,
		"Repository PVC used when a BackupPolicy or Backup leaves spec.storage.pvcName empty.")
	fs.StringVar(&o.ServiceName, "service-name", o.ServiceName, "Name of the Service in front of this server.")
	fs.StringVar(&o.ServiceNamespace, "service-namespace", o.ServiceNamespace, "Namespace of that Service (default: $POD_NAMESPACE).")
	fs.StringVar(&o.APIServiceName, "apiservice-name", o.APIServiceName,
		"APIService whose spec.caBundle this server keeps equal to its self-signed serving CA. Empty disables it (bring your own certificate and caBundle).")
	fs.BoolVar(&o.Controllers, "controllers", o.Controllers, "Run the embedded controllers (schedules, backup and restore Jobs, retention). Turn off to serve the API only.")
	fs.StringVar(&o.MoverImage, "mover-image", o.MoverImage, "Image of the data mover Jobs: this operator's image, which holds /backup-mover (default: $MOVER_IMAGE or backup-operator:dev).")
	fs.IntVar(&o.ControllerWorkers, "controller-workers", o.ControllerWorkers, "Workers of each controller (policies, backups, restores): how many objects of a kind are reconciled at once.")
	fs.DurationVar(&o.MoverJobDeadline, "mover-job-deadline", o.MoverJobDeadline, "Longest a data mover Job may run (activeDeadlineSeconds); a longer backup or restore fails.")
	fs.Int32Var(&o.MoverJobBackoffLimit, "mover-job-backoff-limit", o.MoverJobBackoffLimit, "Retries of a data mover Job's failed pod (backoffLimit); 0 for none.")
	fs.DurationVar(&o.MoverJobTTL, "mover-job-ttl", o.MoverJobTTL, "How long a finished data mover Job and its pod are kept (ttlSecondsAfterFinished), for its logs; at least 10m, so its outcome is read before it goes.")
	fs.StringVar(&o.MoverCPURequest, "mover-cpu-request", o.MoverCPURequest, "CPU request of the data mover container; 0 sets none.")
	fs.StringVar(&o.MoverMemoryRequest, "mover-memory-request", o.MoverMemoryRequest, "Memory request of the data mover container; 0 sets none.")
	fs.StringVar(&o.MoverMemoryLimit, "mover-memory-limit", o.MoverMemoryLimit, "Memory limit of the data mover container; 0 sets none.")
	fs.DurationVar(&o.PruneLockWait, "prune-lock-wait", o.PruneLockWait, "How long a prune Job waits for the repository's exclusive lock while backups and restores hold it shared.")
	fs.IntVar(&o.MaxMovers, "max-movers", o.MaxMovers,
		"How many data mover Jobs (backups, restores, prunes) run at once in the cluster; more Backups wait as Pending with the condition Queued, in the order of their scheduled time, and restores and prunes go before them.")
	fs.IntVar(&o.MaxMoversPerNode, "max-movers-per-node", o.MaxMoversPerNode,
		"How many data mover Jobs run at once on one node; a Job whose node is not known yet counts against --max-movers only.")
	fs.DurationVar(&o.ReaderIdleTimeout, "reader-idle-timeout", o.ReaderIdleTimeout,
		"How long a reader pod of the backups/files subresource waits without requests before it exits (and is deleted); the next request starts a new one.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Requests per second the controllers may send to kube-apiserver (Jobs, pods, claims, events).")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst of requests the controllers may send to kube-apiserver above --kube-api-qps.")
	fs.StringVar(&o.PodSecurityDefault, "pod-security-default-level", o.PodSecurityDefault,
		"The Pod Security level the data mover follows in a namespace without the pod-security.kubernetes.io/enforce label: the cluster's default enforce level (privileged, baseline or restricted).")
	fs.DurationVar(&o.LeaderElection.LeaseDuration, "leader-elect-lease-duration", o.LeaderElection.LeaseDuration,
		"How long a replica waits after the controllers' Lease was last renewed before it takes the Lease over.")
	fs.DurationVar(&o.LeaderElection.RenewDeadline, "leader-elect-renew-deadline", o.LeaderElection.RenewDeadline,
		"How long the leader keeps trying to renew the Lease before it stops its controllers; less than the lease duration.")
	fs.DurationVar(&o.LeaderElection.RetryPeriod, "leader-elect-retry-period", o.LeaderElection.RetryPeriod, "How often replicas try to take or renew the Lease.")
	fs.StringVar(&o.LeaderElection.Name, "leader-elect-resource-name", o.LeaderElection.Name,
		"Name of the coordination.k8s.io Lease whose holder runs the controllers; replicas that share it run one set of controllers.")
	fs.StringVar(&o.LeaderElection.Namespace, "leader-elect-resource-namespace", o.LeaderElection.Namespace, "Namespace of that Lease (default: --service-namespace).")
	compatibility.DefaultComponentGlobalsRegistry.AddFlags(fs)
}

// Complete fills in what follows from other flags.
func (o *Options) Complete() error {
	if len(o.Recommended.Etcd.StorageConfig.Transport.ServerList) == 0 {
		o.embedded = true
		o.Recommended.Etcd.StorageConfig.Transport.ServerList = []string{o.EmbeddedEtcdClientURL}
	}
	if o.LeaderElection.Namespace == "" {
		o.LeaderElection.Namespace = o.ServiceNamespace
	}
	if o.Recommended.SecureServing.ServerCert.CertDirectory == "" && o.EtcdDir != "" {
		o.Recommended.SecureServing.ServerCert.CertDirectory = filepath.Join(filepath.Dir(filepath.Clean(o.EtcdDir)), "certs")
	}
	return nil
}

// Validate checks the options and returns all problems at once.
func (o *Options) Validate() error {
	var errs []error
	errs = append(errs, o.Recommended.Validate()...)
	errs = append(errs, compatibility.DefaultComponentGlobalsRegistry.Validate()...)
	if o.embedded && o.EtcdDir == "" {
		errs = append(errs, errors.New("--etcd-dir is required unless --etcd-servers names an external etcd"))
	}
	if o.DefaultRepositoryPVC == "" {
		errs = append(errs, errors.New("--default-repository-pvc must not be empty"))
	}
	errs = append(errs, o.validateControllers()...)
	return utilerrors.NewAggregate(errs)
}

func (o *Options) validateControllers() []error {
	var errs []error
	if o.ControllerWorkers < 1 {
		errs = append(errs, fmt.Errorf("--controller-workers is %d; it must be at least 1", o.ControllerWorkers))
	}
	if o.ReaderIdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--reader-idle-timeout is %v; it must be above 0", o.ReaderIdleTimeout))
	}
	if o.MaxMovers < 1 {
		errs = append(errs, fmt.Errorf("--max-movers is %d; it must be at least 1", o.MaxMovers))
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst < 1 {
		errs = append(errs, fmt.Errorf("--kube-api-qps is %v and --kube-api-burst %d; both must be above 0", o.KubeAPIQPS, o.KubeAPIBurst))
	}
	if o.MaxMoversPerNode < 1 {
		errs = append(errs, fmt.Errorf("--max-movers-per-node is %d; it must be at least 1", o.MaxMoversPerNode))
	}
	for _, d := range []struct {
		flag  string
		value time.Duration
	}{{"--mover-job-deadline", o.MoverJobDeadline}, {"--mover-job-ttl", o.MoverJobTTL}, {"--prune-lock-wait", o.PruneLockWait}} {
		if d.value < time.Second {
			errs = append(errs, fmt.Errorf("%s is %s; it must be at least 1s", d.flag, d.value))
		}
	}
	if _, err := psaapi.ParseLevel(o.PodSecurityDefault); err != nil {
		errs = append(errs, fmt.Errorf("--pod-security-default-level is %q; use privileged, baseline or restricted, as the cluster's Pod Security admission defaults", o.PodSecurityDefault))
	}
	if o.MoverJobTTL < 10*time.Minute {
		// The controller reads a finished Job's outcome from it and its pod;
		// gone sooner (a failover, a busy server), the outcome is lost.
		errs = append(errs, fmt.Errorf("--mover-job-ttl is %s; it must be at least 10m so the controllers read each finished Job's outcome before it is removed", o.MoverJobTTL))
	}
	if o.MoverJobTTL > math.MaxInt32*time.Second {
		errs = append(errs, fmt.Errorf("--mover-job-ttl is %s; it must fit ttlSecondsAfterFinished (at most %d seconds)", o.MoverJobTTL, math.MaxInt32))
	}
	if o.MoverJobBackoffLimit < 0 {
		errs = append(errs, fmt.Errorf("--mover-job-backoff-limit is %d; use 0 for no retries", o.MoverJobBackoffLimit))
	}
	quantities := map[string]string{"--mover-cpu-request": o.MoverCPURequest, "--mover-memory-request": o.MoverMemoryRequest, "--mover-memory-limit": o.MoverMemoryLimit}
	parsed := map[string]resource.Quantity{}
	for _, flag := range []string{"--mover-cpu-request", "--mover-memory-request", "--mover-memory-limit"} {
		q, err := resource.ParseQuantity(quantities[flag])
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s %q is not a quantity (like 100m, 128Mi, 1Gi; 0 for none): %w", flag, quantities[flag], err))
		case q.Sign() < 0:
			errs = append(errs, fmt.Errorf("%s is %s; it must not be negative", flag, quantities[flag]))
		default:
			parsed[flag] = q
		}
	}
	req, okReq := parsed["--mover-memory-request"]
	limit, okLimit := parsed["--mover-memory-limit"]
	if okReq && okLimit && !limit.IsZero() && req.Cmp(limit) > 0 {
		errs = append(errs, fmt.Errorf("--mover-memory-request %s is above --mover-memory-limit %s; raise the limit or lower the request", req.String(), limit.String()))
	}
	le := o.LeaderElection
	if le.Name == "" || le.Namespace == "" {
		errs = append(errs, errors.New("--leader-elect-resource-name and --leader-elect-resource-namespace (or --service-namespace) must not be empty"))
	}
	if le.RetryPeriod <= 0 || le.RenewDeadline <= time.Duration(leaderelection.JitterFactor*float64(le.RetryPeriod)) || le.LeaseDuration <= le.RenewDeadline {
		errs = append(errs, fmt.Errorf("leader election timing is lease %s, renew deadline %s, retry period %s; "+
			"it needs --leader-elect-lease-duration > --leader-elect-renew-deadline > %.1f × --leader-elect-retry-period > 0",
			le.LeaseDuration, le.RenewDeadline, le.RetryPeriod, leaderelection.JitterFactor))
	}
	return errs
}

// controllerOptions turns the flags into controller.Options.
func (o *Options) controllerOptions() (controller.Options, error) {
	opts := controller.Options{MoverImage: o.MoverImage, Workers: o.ControllerWorkers, JobDeadline: o.MoverJobDeadline,
		JobBackoffLimit: o.MoverJobBackoffLimit, JobTTL: o.MoverJobTTL, LockWait: o.PruneLockWait, PodSecurityDefault: o.PodSecurityDefault,
		MaxMovers: o.MaxMovers, MaxMoversPerNode: o.MaxMoversPerNode, ReaderIdleTimeout: o.ReaderIdleTimeout,
		ReaderKeyNamespace: o.ServiceNamespace,
		MoverRequests:      corev1.ResourceList{}, MoverLimits: corev1.ResourceList{}}
	if opts.JobBackoffLimit == 0 {
		opts.JobBackoffLimit = -1 // controller.Options: negative asks for no retries, zero for the default
	}
	for _, q := range []struct {
		list  corev1.ResourceList
		name  corev1.ResourceName
		value string
	}{{opts.MoverRequests, corev1.ResourceCPU, o.MoverCPURequest}, {opts.MoverRequests, corev1.ResourceMemory, o.MoverMemoryRequest},
		{opts.MoverLimits, corev1.ResourceMemory, o.MoverMemoryLimit}} {
		v, err := resource.ParseQuantity(q.value)
		if err != nil {
			return controller.Options{}, fmt.Errorf("mover %s %q: %w", q.name, q.value, err)
		}
		if !v.IsZero() {
			q.list[q.name] = v
		}
	}
	return opts, nil
}

// leaderIdentity names this process in the Lease: the hostname (the pod's
// name) and a random suffix, unique even across restarts of the same pod.
func leaderIdentity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "backup-apiserver"
	}
	return host + "_" + string(uuid.NewUUID())
}

// servingDNSNames are the names the serving certificate covers.
func (o *Options) servingDNSNames() []string {
	svc := o.ServiceName + "." + o.ServiceNamespace
	return []string{svc + ".svc", svc + ".svc.cluster.local", svc, "localhost"}
}

// Config builds the server configuration.
func (o *Options) Config() (*apiserver.Config, error) {
	if err := renewExpiringCertificate(o.Recommended.SecureServing.ServerCert.CertDirectory, o.Recommended.SecureServing.ServerCert.PairName); err != nil {
		return nil, err
	}
	names := o.servingDNSNames()
	if err := o.Recommended.SecureServing.MaybeDefaultWithSelfSignedCerts(names[0], names[1:], []net.IP{netutils.ParseIPSloppy("127.0.0.1")}); err != nil {
		return nil, fmt.Errorf("creating self-signed serving certificate: %w", err)
	}

	// The watch cache's own metrics (its capacity, events, list cache), which
	// kube-apiserver registers in its main.
	cachermetrics.Register()
	cfg := genericapiserver.NewRecommendedConfig(apiserver.Codecs)
	namer := openapi.NewDefinitionNamer(apiserver.Scheme)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(generatedopenapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIConfig.Info.Title = "backup.example.com"
	cfg.OpenAPIConfig.Info.Version = "v1alpha1"
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(generatedopenapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIV3Config.Info.Title = "backup.example.com"
	cfg.OpenAPIV3Config.Info.Version = "v1alpha1"
	cfg.FeatureGate = compatibility.DefaultComponentGlobalsRegistry.FeatureGateFor(basecompatibility.DefaultKubeComponent)
	cfg.EffectiveVersion = compatibility.DefaultComponentGlobalsRegistry.EffectiveVersionFor(basecompatibility.DefaultKubeComponent)

	if err := o.Recommended.ApplyTo(cfg); err != nil {
		return nil, err
	}
	// Wait for the CAs the generic server takes from kube-apiserver's
	// ConfigMap, not for those given as files.
	var fromConfigMap []string
	if authn := o.Recommended.Authentication; authn != nil && !authn.SkipInClusterLookup {
		if authn.ClientCert.ClientCA == "" {
			fromConfigMap = append(fromConfigMap, "client-ca-file")
		}
		if authn.RequestHeader.ClientCAFile == "" && cfg.Authentication.RequestHeaderConfig != nil {
			fromConfigMap = append(fromConfigMap, "requestheader-client-ca-file")
		}
	}
	if len(fromConfigMap) > 0 && cfg.SecureServing != nil && cfg.SecureServing.ClientCA != nil && cfg.ClientConfig != nil {
		kube, err := kubernetes.NewForConfig(cfg.ClientConfig)
		if err != nil {
			return nil, err
		}
		cfg.AddReadyzChecks(&clientCALoaded{served: cfg.SecureServing.ClientCA, kube: kube, keys: fromConfigMap})
	}
	// A download from backups/files lasts as long as the file takes: not
	// bound by the request timeout here (kube-apiserver, in front, applies
	// its own to aggregated requests).
	cfg.LongRunningFunc = genericfilters.BasicLongRunningRequestCheck(sets.NewString("watch"), sets.NewString("files"))
	if o.member != nil {
		// Storage calls the embedded member in process, not through its socket.
		cfg.RESTOptionsGetter = o.member.RESTOptionsGetter(cfg.RESTOptionsGetter, o.Recommended.Etcd.EnableWatchCache)
	}
	controllerOpts, err := o.controllerOptions()
	if err != nil {
		return nil, err
	}
	le := o.LeaderElection
	if le.Identity == "" {
		le.Identity = leaderIdentity()
	}
	var kubeClient *restclient.Config
	if cfg.ClientConfig != nil {
		kubeClient = restclient.CopyConfig(cfg.ClientConfig)
		kubeClient.QPS, kubeClient.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	}
	return &apiserver.Config{
		GenericConfig: cfg,
		ExtraConfig: apiserver.ExtraConfig{DefaultRepositoryPVC: o.DefaultRepositoryPVC, Controllers: o.Controllers,
			Controller: controllerOpts, LeaderElection: le, KubeClientConfig: kubeClient},
	}, nil
}

// Run starts the embedded etcd (unless an external one is configured), the API
// server and the CA publisher, and blocks until ctx ends.
func (o *Options) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	if o.embedded {
		member, err := etcd.Start(ctx, etcd.Config{Dir: o.EtcdDir, ClientURL: o.EmbeddedEtcdClientURL, PeerURL: o.EmbeddedEtcdPeerURL})
		if err != nil {
			return err
		}
		// Stopped after the API server has drained, below.
		defer member.Stop()
		o.member = member
		logger.Info("Embedded etcd ready", "dir", o.EtcdDir, "url", member.ClientURL)
	}

	config, err := o.Config()
	if err != nil {
		return err
	}
	server, err := config.Complete().New()
	if err != nil {
		return err
	}
	if o.APIServiceName != "" {
		caBundle, err := servingCA(o.Recommended.SecureServing.ServerCert.CertKey.CertFile)
		if err != nil {
			return err
		}
		publisher := &caBundlePublisher{apiServiceName: o.APIServiceName, caBundle: caBundle}
		server.GenericAPIServer.AddPostStartHookOrDie("publish-ca-bundle", func(hookCtx genericapiserver.PostStartHookContext) error {
			return publisher.start(hookCtx, config.GenericConfig.ClientConfig)
		})
	}
	return server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}

// servingCA returns the CA that signed the self-signed serving certificate: the
// last certificate of the chain MaybeDefaultWithSelfSignedCerts writes.
func servingCA(certFile string) ([]byte, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("reading serving certificate to publish its CA: %w", err)
	}
	var last *pem.Block
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		last = block
	}
	if last == nil {
		return nil, fmt.Errorf("no certificate in %s", certFile)
	}
	return pem.EncodeToMemory(last), nil
}

// renewExpiringCertificate removes a self-signed pair that expires within 30
// days, so the server creates a fresh one (and publishes its new CA) on start.
func renewExpiringCertificate(dir, pair string) error {
	if dir == "" {
		return nil
	}
	certFile := filepath.Join(dir, pair+".crt")
	data, err := os.ReadFile(certFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	block, _ := pem.Decode(data)
	if block != nil {
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil && time.Until(cert.NotAfter) > 30*24*time.Hour {
			return nil
		}
	}
	if err := os.Remove(certFile); err != nil {
		return err
	}
	return os.Remove(filepath.Join(dir, pair+".key"))
}
