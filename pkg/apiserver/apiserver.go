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

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/install"
	backupstorage "example.com/backup-operator/pkg/registry/backup/backup"
	policystorage "example.com/backup-operator/pkg/registry/backup/backuppolicy"
	restorestorage "example.com/backup-operator/pkg/registry/backup/restorejob"
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

// ExtraConfig is the configuration beyond the generic server's.
type ExtraConfig struct {
	// DefaultRepositoryPVC fills spec.storage.pvcName when a policy or Backup
	// leaves it empty.
	DefaultRepositoryPVC string
}

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
	opts := c.GenericConfig.RESTOptionsGetter
	policies, policyStatus, err := policystorage.NewREST(Scheme, opts, c.ExtraConfig.DefaultRepositoryPVC)
	if err != nil {
		return nil, err
	}
	backups, backupStatus, err := backupstorage.NewREST(Scheme, opts, policies, c.ExtraConfig.DefaultRepositoryPVC)
	if err != nil {
		return nil, err
	}
	restores, restoreStatus, err := restorestorage.NewREST(Scheme, opts)
	if err != nil {
		return nil, err
	}

	group := genericapiserver.NewDefaultAPIGroupInfo(backup.GroupName, Scheme, metav1.ParameterCodec, Codecs)
	group.VersionedResourcesStorageMap["v1alpha1"] = map[string]rest.Storage{
		"backuppolicies":        policies,
		"backuppolicies/status": policyStatus,
		"backups":               backups,
		"backups/status":        backupStatus,
		"restorejobs":           restores,
		"restorejobs/status":    restoreStatus,
	}
	if err := generic.InstallAPIGroup(&group); err != nil {
		return nil, err
	}
	return &BackupServer{GenericAPIServer: generic}, nil
}
