package restorejob

import (
	"context"

	"example.com/backup-operator/pkg/safety"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"

	"example.com/backup-operator/pkg/apis/backup"
	registry "example.com/backup-operator/pkg/registry/backup"
)

// REST is the storage of restorejobs.
type REST struct {
	*genericregistry.Store
	checker *safety.Checker
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

// Create refuses, before anything is stored, a restore that is not safe: the
// checks of pkg/safety, judged against live cluster state and the requester's
// own permissions.
func (r *REST) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	if r.checker == nil {
		return r.Store.Create(ctx, obj, createValidation, options)
	}
	return r.Store.Create(ctx, obj, registry.ThenCheck(createValidation, r.checkCreate), options)
}

// Update checks an update that creates the RestoreJob (server-side apply of
// a new one) as Create does; an update of a stored RestoreJob cannot change
// its spec (validation refuses it).
func (r *REST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	if r.checker != nil {
		createValidation = registry.ThenCheck(createValidation, r.checkCreate)
	}
	return r.Store.Update(ctx, name, objInfo, createValidation, updateValidation, forceAllowCreate, options)
}

func (r *REST) checkCreate(ctx context.Context, obj runtime.Object) error {
	rj := obj.(*backup.RestoreJob)
	u, _ := genericapirequest.UserFrom(ctx)
	_, refusal := r.checker.CheckRestore(ctx, u, safety.Restore{
		Namespace: rj.Namespace, Name: rj.Name,
		BackupNamespace: rj.Spec.BackupNamespace, BackupName: rj.Spec.BackupName,
		TargetNamespace: rj.Spec.Target.Namespace, TargetPVC: rj.Spec.Target.PVCName,
		NewPVC: rj.Spec.Target.NewPVC != nil, AllowInUse: rj.Spec.AllowInUse || rj.Spec.DryRun, // a dry run writes nothing
	})
	if refusal != nil {
		return refusal.Error(backup.Resource("restorejobs"), backup.Kind("RestoreJob"), rj.Name)
	}
	return registry.CheckHooks(ctx, r.checker, u, registry.NamespaceOr(rj.Spec.Target.Namespace, rj.Namespace), rj.Spec.Hooks != nil && len(rj.Spec.Hooks.Post) > 0,
		backup.Resource("restorejobs"), backup.Kind("RestoreJob"), rj.Name)
}

// NewREST returns the storage of restorejobs and restorejobs/status. checker
// may be nil (no live-state checks, as in unit tests of the storage).
func NewREST(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, checker *safety.Checker) (*REST, *registry.StatusREST, error) {
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
	return &REST{Store: store, checker: checker}, registry.NewStatusREST(store, NewStatusStrategy(strategy)), nil
}
