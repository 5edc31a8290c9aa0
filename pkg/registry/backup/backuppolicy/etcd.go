package backuppolicy

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"

	"example.com/backup-operator/pkg/apis/backup"
	registry "example.com/backup-operator/pkg/registry/backup"
)

// REST is the storage of backuppolicies.
type REST struct {
	*genericregistry.Store
}

var (
	_ rest.StandardStorage    = &REST{}
	_ rest.ShortNamesProvider = &REST{}
	_ rest.CategoriesProvider = &REST{}
)

// ShortNames implements rest.ShortNamesProvider (kubectl get bp).
func (*REST) ShortNames() []string { return []string{"bp", "bpol"} }

// Categories implements rest.CategoriesProvider (kubectl get backup-all).
func (*REST) Categories() []string { return []string{"backup-all"} }

// NewREST returns the storage of backuppolicies and backuppolicies/status.
func NewREST(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, defaultRepositoryPVC string) (*REST, *registry.StatusREST, error) {
	strategy := NewStrategy(scheme, defaultRepositoryPVC)
	store := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return &backup.BackupPolicy{} },
		NewListFunc:               func() runtime.Object { return &backup.BackupPolicyList{} },
		PredicateFunc:             Match,
		DefaultQualifiedResource:  backup.Resource("backuppolicies"),
		SingularQualifiedResource: backup.Resource("backuppolicy"),

		CreateStrategy:      strategy,
		UpdateStrategy:      strategy,
		DeleteStrategy:      strategy,
		ResetFieldsStrategy: strategy,

		TableConvertor: tableConvertor,
	}
	if err := store.CompleteWithOptions(&generic.StoreOptions{RESTOptions: optsGetter, AttrFunc: GetAttrs}); err != nil {
		return nil, nil, err
	}
	return &REST{store}, registry.NewStatusREST(store, NewStatusStrategy(strategy)), nil
}
