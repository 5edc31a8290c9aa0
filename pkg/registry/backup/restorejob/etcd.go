package restorejob

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"

	"example.com/backup-operator/pkg/apis/backup"
	registry "example.com/backup-operator/pkg/registry/backup"
)

// REST is the storage of restorejobs.
type REST struct {
	*genericregistry.Store
}

var (
	_ rest.StandardStorage    = &REST{}
	_ rest.ShortNamesProvider = &REST{}
	_ rest.CategoriesProvider = &REST{}
)

// ShortNames implements rest.ShortNamesProvider (kubectl get rj).
func (*REST) ShortNames() []string { return []string{"rj", "restore"} }

// Categories implements rest.CategoriesProvider (kubectl get backup-all).
func (*REST) Categories() []string { return []string{"backup-all"} }

// NewREST returns the storage of restorejobs and restorejobs/status.
func NewREST(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter) (*REST, *registry.StatusREST, error) {
	strategy := NewStrategy(scheme)
	store := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return &backup.RestoreJob{} },
		NewListFunc:               func() runtime.Object { return &backup.RestoreJobList{} },
		PredicateFunc:             Match,
		DefaultQualifiedResource:  backup.Resource("restorejobs"),
		SingularQualifiedResource: backup.Resource("restorejob"),

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
