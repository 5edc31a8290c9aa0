package backuppolicy

import (
	"context"

	"example.com/backup-operator/pkg/safety"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
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
	if err := r.checkSecrets(ctx, p); err != nil {
		return err
	}
	return r.checkHooks(ctx, p)
}

// Update applies the same checks to the updated policy: the target's when
// the target changed, the Secrets' when the target or the storage changed
// (the Secrets are the target namespace's, and a new location or target is
// a new use of them), pods/exec when the target or the hooks changed. An
// update that changes none of them (the schedule, the trigger annotation, a
// label) uses the Secrets and hooks as their checked author set them, and
// needs no access to them. An update that creates the policy (server-side
// apply of a new one) is checked as Create is.
func (r *REST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return r.Store.Update(ctx, name, objInfo, registry.ThenCheck(createValidation, r.checkCreate), func(ctx context.Context, obj, old runtime.Object) error {
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
	targetChanged := p.Spec.Target != oldP.Spec.Target
	if targetChanged {
		if err := r.checkTarget(ctx, p); err != nil {
			return err
		}
	}
	if targetChanged || !registry.SameStorage(&p.Spec.Storage, &oldP.Spec.Storage) {
		if err := r.checkSecrets(ctx, p); err != nil {
			return err
		}
	}
	// Hooks run on the authority of whoever last set them, or moved them
	// to another target.
	if targetChanged || !apiequality.Semantic.DeepEqual(p.Spec.Hooks, oldP.Spec.Hooks) {
		return r.checkHooks(ctx, p)
	}
	return nil
}

// checkHooks: may the requester create pods/exec in the target's namespace,
// where the hooks run?
func (r *REST) checkHooks(ctx context.Context, p *backup.BackupPolicy) error {
	u, _ := genericapirequest.UserFrom(ctx)
	return registry.CheckHooks(ctx, r.checker, u, registry.NamespaceOr(p.Spec.Target.Namespace, p.Namespace), registry.HasBackupHooks(p.Spec.Hooks),
		backup.Resource("backuppolicies"), backup.Kind("BackupPolicy"), p.Name)
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
