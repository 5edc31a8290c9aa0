package backup

import (
	"context"
	"fmt"
	"strings"

	"example.com/backup-operator/pkg/safety"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
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
	checker  *safety.Checker
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

// Create fills target (and storage, when the Backup leaves it empty) from
// spec.policyName when the Backup names only its policy (the on-demand way:
// `spec: {policyName: database-backups}`), then stores it after the
// requester-aware checks (checkCreate). Updates need no such check: the
// spec of a Backup cannot change (validation refuses it).
func (r *REST) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	b := obj.(*backup.Backup)
	hooksFrom := "" // the policy whose hooks the Backup took
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
		if apiequality.Semantic.DeepEqual(b.Spec.Storage, backup.RepositoryStorage{}) {
			b.Spec.Storage = *p.Spec.Storage.DeepCopy()
		}
		if b.Spec.MoverSecurityContext == nil {
			b.Spec.MoverSecurityContext = p.Spec.MoverSecurityContext
		}
		if b.Spec.Hooks == nil && p.Spec.Hooks != nil {
			b.Spec.Hooks = p.Spec.Hooks.DeepCopy()
			hooksFrom = p.Name
		}
	}
	if r.checker == nil {
		return r.Store.Create(ctx, obj, createValidation, options)
	}
	check := r.checkCreate
	if hooksFrom != "" {
		check = func(ctx context.Context, obj runtime.Object) error {
			err := r.checkCreate(ctx, obj)
			if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "pods/exec") {
				who := "an unauthenticated requester"
				if u, ok := genericapirequest.UserFrom(ctx); ok && u != nil {
					who = u.GetName()
				}
				return apierrors.NewForbidden(backup.Resource("backups"), b.Name, fmt.Errorf(
					"spec.hooks: you (%s) may not create pods/exec in namespace %q, where the hooks this Backup takes from BackupPolicy %q run commands. "+
						"Annotate the policy with %s=<a new value> instead (its Backups run its hooks on the authority of whoever set them), "+
						"or set spec.hooks: {} on this Backup to back up without them", who, registry.NamespaceOr(b.Spec.Target.Namespace, b.Namespace), hooksFrom, v1alpha1.TriggerAnnotation))
			}
			return err
		}
	}
	return r.Store.Create(ctx, obj, registry.ThenCheck(createValidation, check), options)
}

// Update checks an update that creates the Backup (server-side apply of a
// new one) as Create does; an update of a stored Backup cannot change its
// spec (validation refuses it).
func (r *REST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	if r.checker != nil {
		createValidation = registry.ThenCheck(createValidation, r.checkCreate)
	}
	return r.Store.Update(ctx, name, objInfo, createValidation, updateValidation, forceAllowCreate, options)
}

// checkCreate is the requester-aware check of a new Backup: a target in
// another namespace needs the requester's permission to read claims there,
// and every Secret its storage names the requester's permission to get it
// (in the target's namespace), except for Backups this server creates from
// their policy (checkServerBackup).
func (r *REST) checkCreate(ctx context.Context, obj runtime.Object) error {
	b := obj.(*backup.Backup)
	u, _ := genericapirequest.UserFrom(ctx)
	if ref := r.checker.CheckTargetReadable(ctx, u, b.Namespace, b.Spec.Target.Namespace, b.Spec.Target.PVCName, field.NewPath("spec", "target", "namespace")); ref != nil {
		return ref.Error(backup.Resource("backups"), backup.Kind("Backup"), b.Name)
	}
	hasSecrets, hasHooks := len(registry.SecretRefs(&b.Spec.Storage, field.NewPath("spec", "storage"))) > 0, registry.HasBackupHooks(b.Spec.Hooks)
	if !hasSecrets && !hasHooks {
		return nil
	}
	if safety.IsServer(u) {
		return r.checkServerBackup(ctx, b)
	}
	targetNS := registry.NamespaceOr(b.Spec.Target.Namespace, b.Namespace)
	if err := registry.CheckSecrets(ctx, r.checker, u, targetNS, &b.Spec.Storage, backup.Resource("backups"), backup.Kind("Backup"), b.Name); err != nil {
		return err
	}
	return registry.CheckHooks(ctx, r.checker, u, targetNS, hasHooks, backup.Resource("backups"), backup.Kind("Backup"), b.Name)
}

// checkServerBackup is the Secret rule for Backups that this server's own
// identity creates (safety.IsServer): the policy controller's scheduled and
// on-demand (trigger annotation) Backups and the Backups an import
// re-creates. The server never asks whether it may get a Secret (the
// operator reads no Secrets and has no permission to; the data mover's pod
// mounts them) or exec into pods. Such a Backup is accepted when it carries
// exactly the storage, hooks (or none) and target namespace of the stored
// BackupPolicy it names: that policy's author was checked for every one of
// those Secrets, and for pods/exec, when setting them (on create, and on
// every change of its target, storage or hooks), so the Backup uses nothing
// its author could not use. Any other Backup from the
// server's identity is refused (403), without asking the authorizer, which
// would allow system:masters everything: the controllers create no other,
// and one whose policy changed a moment ago is refused rather than carrying
// Secrets nobody was checked for; the policy controller reports it as a
// missed run and the next run uses the policy as it is now.
func (r *REST) checkServerBackup(ctx context.Context, b *backup.Backup) error {
	var p *backup.BackupPolicy
	if b.Spec.PolicyName != "" && r.policies != nil {
		got, err := r.policies.Get(ctx, b.Spec.PolicyName, &metav1.GetOptions{})
		switch {
		case err == nil:
			p = got.(*backup.BackupPolicy)
		case !apierrors.IsNotFound(err):
			return err
		}
	}
	if p != nil && registry.SameStorage(&b.Spec.Storage, &p.Spec.Storage) &&
		(!registry.HasBackupHooks(b.Spec.Hooks) || apiequality.Semantic.DeepEqual(b.Spec.Hooks, p.Spec.Hooks)) &&
		registry.NamespaceOr(b.Spec.Target.Namespace, b.Namespace) == registry.NamespaceOr(p.Spec.Target.Namespace, p.Namespace) {
		return nil
	}
	return apierrors.NewForbidden(backup.Resource("backups"), b.Name, fmt.Errorf(
		"spec: a Backup the server creates must carry the target namespace, storage and hooks of its BackupPolicy %q, whose author was checked for the Secrets and the pods/exec they use; "+
			"this one does not (the policy is gone or changed meanwhile), so they were checked for nobody. The policy's next run uses the policy as it is now", b.Spec.PolicyName))
}

// Delete refuses to delete a Backup that a Pending or Running RestoreJob is
// restoring: its data would vanish under the restore (see refuseRestored).
func (r *REST) Delete(ctx context.Context, name string, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	return r.Store.Delete(ctx, name, r.refuseInUse(deleteValidation), options)
}

// DeleteCollection applies the rule of Delete to every Backup it deletes. Like
// any DeleteCollection of Kubernetes it is not atomic: it returns the first
// refusal (409 Conflict) and the refused Backup is left as it was, with no
// deletionTimestamp; Backups deleted before it stay deleted, and the ones
// after it are left (with more than one --delete-collection-workers, the
// other workers may still delete some of them).
func (r *REST) DeleteCollection(ctx context.Context, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions, listOptions *metainternalversion.ListOptions) (runtime.Object, error) {
	return r.Store.DeleteCollection(ctx, r.refuseInUse(deleteValidation), options, listOptions)
}

// refuseInUse wraps the delete validation of Delete and DeleteCollection with
// refuseRestored.
func (r *REST) refuseInUse(next rest.ValidateObjectFunc) rest.ValidateObjectFunc {
	if r.checker == nil {
		return next
	}
	return refuseRestored(next, r.checker.RestoresUsing)
}

// refuseRestored is the one place of the rule that a Backup a Pending or
// Running RestoreJob is restoring cannot be deleted; restoresUsing names those
// RestoreJobs. It wraps the delete validation that genericregistry.Store calls
// with the stored object on every way to a deletion: before it sets
// deletionTimestamp (a Backup with finalizers, or an orphan or foreground
// propagation policy) and in the storage delete itself; Store.DeleteCollection
// calls Store.Delete with it for each item. A Backup already being deleted is
// let through: its deletion has begun, refusing again would keep nothing, and
// CheckRestore refuses new restores of it.
func refuseRestored(next rest.ValidateObjectFunc, restoresUsing func(namespace, backupName string) []string) rest.ValidateObjectFunc {
	return registry.ThenCheck(next, func(ctx context.Context, obj runtime.Object) error {
		b := obj.(*backup.Backup)
		if b.DeletionTimestamp != nil {
			return nil
		}
		if users := restoresUsing(b.Namespace, b.Name); len(users) > 0 {
			return apierrors.NewConflict(backup.Resource("backups"), b.Name, fmt.Errorf(
				"RestoreJob %s is restoring this Backup; delete the Backup after it finishes (or delete the RestoreJob first)", strings.Join(users, ", ")))
		}
		return nil
	})
}

// NewREST returns the storage of backups and backups/status.
func NewREST(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, policies PolicyGetter, checker *safety.Checker, defaultRepositoryPVC string) (*REST, *registry.StatusREST, error) {
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
	if err := store.CompleteWithOptions(&generic.StoreOptions{RESTOptions: optsGetter, AttrFunc: GetAttrs,
		Indexers: Indexers(), TriggerFunc: Triggers()}); err != nil {
		return nil, nil, err
	}
	return &REST{Store: store, policies: policies, checker: checker}, registry.NewStatusREST(store, NewStatusStrategy(strategy)), nil
}
