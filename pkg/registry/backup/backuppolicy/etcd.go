package backuppolicy

import (
	"context"

	"example.com/backup-operator/pkg/safety"
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

// REST is the storage of backuppolicies.
type REST struct {
	*genericregistry.Store
	checker *safety.Checker
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

// Create refuses a policy whose target is in a namespace where the requester
// may not read PVCs, or whose storage names a Secret the requester may not
// get (403, nothing is stored).
func (r *REST) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	return r.Store.Create(ctx, obj, registry.ThenCheck(createValidation, r.checkCreate), options)
}

func (r *REST) checkCreate(ctx context.Context, obj runtime.Object) error {
	p := obj.(*backup.BackupPolicy)
	if err := r.checkTarget(ctx, p); err != nil {
		return err
	}
	return r.checkSecrets(ctx, p)
}

// Update applies the same checks to the updated policy: the target's when
// the target changed, the Secrets' when the target or the storage changed
// (the Secrets are the target namespace's, and a new location or target is
// a new use of them). An update that changes neither (the schedule, the
// trigger annotation, a label) uses the Secrets as their checked author set
// them, and needs no access to them.
func (r *REST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return r.Store.Update(ctx, name, objInfo, createValidation, func(ctx context.Context, obj, old runtime.Object) error {
		if updateValidation != nil {
			if err := updateValidation(ctx, obj, old); err != nil {
				return err
			}
		}
		return r.checkUpdate(ctx, obj, old)
	}, forceAllowCreate, options)
}

func (r *REST) checkUpdate(ctx context.Context, obj, old runtime.Object) error {
	p, oldP := obj.(*backup.BackupPolicy), old.(*backup.BackupPolicy)
	if p.Spec.Target != oldP.Spec.Target {
		if err := r.checkTarget(ctx, p); err != nil {
			return err
		}
	} else if registry.SameStorage(&p.Spec.Storage, &oldP.Spec.Storage) {
		return nil
	}
	return r.checkSecrets(ctx, p)
}

// checkSecrets: may the requester get every Secret the storage names, in
// the target's namespace?
func (r *REST) checkSecrets(ctx context.Context, p *backup.BackupPolicy) error {
	u, _ := genericapirequest.UserFrom(ctx)
	return registry.CheckSecrets(ctx, r.checker, u, registry.NamespaceOr(p.Spec.Target.Namespace, p.Namespace), &p.Spec.Storage,
		backup.Resource("backuppolicies"), backup.Kind("BackupPolicy"), p.Name)
}

func (r *REST) checkTarget(ctx context.Context, p *backup.BackupPolicy) error {
	if r.checker == nil {
		return nil
	}
	u, _ := genericapirequest.UserFrom(ctx)
	if ref := r.checker.CheckTargetReadable(ctx, u, p.Namespace, p.Spec.Target.Namespace, p.Spec.Target.PVCName, field.NewPath("spec", "target", "namespace")); ref != nil {
		return ref.Error(backup.Resource("backuppolicies"), backup.Kind("BackupPolicy"), p.Name)
	}
	return nil
}

// NewREST returns the storage of backuppolicies and backuppolicies/status.
func NewREST(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, checker *safety.Checker, defaultRepositoryPVC string) (*REST, *registry.StatusREST, error) {
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
	return &REST{Store: store, checker: checker}, registry.NewStatusREST(store, NewStatusStrategy(strategy)), nil
}
