// Package server holds the options and the run loop of backup-apiserver:
// New → AddFlags → Complete → Validate → Config → Run.
package server

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/util/compatibility"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/klog/v2"
	netutils "k8s.io/utils/net"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/apiserver"
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
	if img := os.Getenv("MOVER_IMAGE"); img != "" {
		o.MoverImage = img
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		o.ServiceNamespace = ns
	}
	o.Recommended.Etcd.StorageConfig.EncodeVersioner = runtime.NewMultiGroupVersioner(
		v1alpha1.SchemeGroupVersion, schema.GroupKind{Group: v1alpha1.GroupName})
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
	compatibility.DefaultComponentGlobalsRegistry.AddFlags(fs)
}

// Complete fills in what follows from other flags.
func (o *Options) Complete() error {
	if len(o.Recommended.Etcd.StorageConfig.Transport.ServerList) == 0 {
		o.embedded = true
		o.Recommended.Etcd.StorageConfig.Transport.ServerList = []string{o.EmbeddedEtcdClientURL}
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
	return utilerrors.NewAggregate(errs)
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
	if o.member != nil {
		// Storage calls the embedded member in process, not through its socket.
		cfg.RESTOptionsGetter = o.member.RESTOptionsGetter(cfg.RESTOptionsGetter, o.Recommended.Etcd.EnableWatchCache)
	}
	return &apiserver.Config{
		GenericConfig: cfg,
		ExtraConfig: apiserver.ExtraConfig{DefaultRepositoryPVC: o.DefaultRepositoryPVC, Controllers: o.Controllers, MoverImage: o.MoverImage,
			KubeClientConfig: cfg.ClientConfig},
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
