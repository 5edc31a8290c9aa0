package backup

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"

	"example.com/backup-operator/pkg/apis/backup"
	registry "example.com/backup-operator/pkg/registry/backup"
)

// PolicyGetter reads a BackupPolicy, so an on-demand Backup can name just its policy.
type PolicyGetter interface {
	Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error)
}

// REST is the storage of backups.
type REST struct {
	*genericregistry.Store
	policies PolicyGetter
}

var (
	_ rest.StandardStorage    = &REST{}
	_ rest.ShortNamesProvider = &REST{}
	_ rest.CategoriesProvider = &REST{}
)

// ShortNames implements rest.ShortNamesProvider (kubectl get bk).
func (*REST) ShortNames() []string { return []string{"bk"} }

// Categories implements rest.CategoriesProvider (kubectl get backup-all).
func (*REST) Categories() []string { return []string{"backup-all"} }

// Create fills target and storage from spec.policyName when the Backup names
// only its policy (the on-demand way: `spec: {policyName: database-backups}`),
// then stores it.
func (r *REST) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	b := obj.(*backup.Backup)
	if b.Spec.PolicyName != "" && b.Spec.Target.PVCName == "" && r.policies != nil {
		if b.Namespace == "" {
			b.Namespace, _ = genericapirequest.NamespaceFrom(ctx)
		}
		got, err := r.policies.Get(ctx, b.Spec.PolicyName, &metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, apierrors.NewInvalid(backup.Kind("Backup"), b.Name, field.ErrorList{field.NotFound(
				field.NewPath("spec", "policyName"), b.Spec.PolicyName)})
		}
		if err != nil {
			return nil, err
		}
		p := got.(*backup.BackupPolicy)
		b.Spec.Target = p.Spec.Target
		if b.Spec.Storage.PVCName == "" {
			b.Spec.Storage = p.Spec.Storage
		}
	}
	return r.Store.Create(ctx, obj, createValidation, options)
}

// NewREST returns the storage of backups and backups/status.
func NewREST(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, policies PolicyGetter, defaultRepositoryPVC string) (*REST, *registry.StatusREST, error) {
	strategy := NewStrategy(scheme, defaultRepositoryPVC)
	store := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return &backup.Backup{} },
		NewListFunc:               func() runtime.Object { return &backup.BackupList{} },
		PredicateFunc:             Match,
		DefaultQualifiedResource:  backup.Resource("backups"),
		SingularQualifiedResource: backup.Resource("backup"),

		CreateStrategy:      strategy,
		UpdateStrategy:      strategy,
		DeleteStrategy:      strategy,
		ResetFieldsStrategy: strategy,

		TableConvertor: tableConvertor,
	}
	if err := store.CompleteWithOptions(&generic.StoreOptions{RESTOptions: optsGetter, AttrFunc: GetAttrs}); err != nil {
		return nil, nil, err
	}
	return &REST{Store: store, policies: policies}, registry.NewStatusREST(store, NewStatusStrategy(strategy)), nil
}
