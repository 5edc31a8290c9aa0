// Package backuppolicy is the REST storage of backuppolicies.backup.example.com.
package backuppolicy

import (
	"context"
	"fmt"
	"strconv"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/names"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/validation"
	registry "example.com/backup-operator/pkg/registry/backup"
)

// policyStrategy implements create, update and delete of BackupPolicy specs.
type policyStrategy struct {
	runtime.ObjectTyper
	names.NameGenerator
	defaultRepositoryPVC string
}

// NewStrategy returns the strategy for the main resource. defaultRepositoryPVC
// fills spec.storage.pvcName when a policy leaves it empty.
func NewStrategy(typer runtime.ObjectTyper, defaultRepositoryPVC string) policyStrategy {
	return policyStrategy{typer, names.SimpleNameGenerator, defaultRepositoryPVC}
}

func (policyStrategy) NamespaceScoped() bool { return true }

func (policyStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return registry.SpecOwnedFields()
}

// PrepareForCreate clears status (the controller owns it) and fills the
// defaults that depend on the object's namespace and the server's flags.
func (s policyStrategy) PrepareForCreate(ctx context.Context, obj runtime.Object) {
	p := obj.(*backup.BackupPolicy)
	p.Status = backup.BackupPolicyStatus{}
	p.Generation = 1
	s.fillDefaults(p)
}

// PrepareForUpdate keeps the stored status and bumps generation on a spec change.
func (s policyStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	p, oldP := obj.(*backup.BackupPolicy), old.(*backup.BackupPolicy)
	p.Status = oldP.Status
	switchLocation(&p.Spec.Storage, &oldP.Spec.Storage)
	s.fillDefaults(p)
	if !apiequality.Semantic.DeepEqual(p.Spec, oldP.Spec) {
		p.Generation = oldP.Generation + 1
	}
}

func (s policyStrategy) fillDefaults(p *backup.BackupPolicy) {
	if p.Spec.Target.Namespace == "" {
		p.Spec.Target.Namespace = p.Namespace
	}
	if p.Spec.Storage.PVCName == "" && p.Spec.Storage.S3 == nil {
		p.Spec.Storage.PVCName = s.defaultRepositoryPVC
	}
}

// switchLocation lets an update move a policy's repository between a claim
// and S3 by setting only the new one: the location the update newly sets
// replaces the other when that one is carried over unchanged from the stored
// policy. Without it, `kubectl apply` of a policy that now names s3 would
// keep the stored pvcName (often the server's default, which no apply owns)
// and be refused for naming both. An update that changes both, or sets both
// on a policy that had neither, is left to validation, which refuses both.
func switchLocation(s, old *backup.RepositoryStorage) {
	if s.PVCName == "" || s.S3 == nil {
		return
	}
	switch {
	case old.S3 == nil && s.PVCName == old.PVCName:
		s.PVCName = "" // s3 is new
	case old.PVCName == "" && old.S3 != nil && apiequality.Semantic.DeepEqual(s.S3, old.S3):
		s.S3 = nil // pvcName is new
	}
}

func (policyStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	return validation.ValidateBackupPolicy(obj.(*backup.BackupPolicy))
}

func (policyStrategy) WarningsOnCreate(ctx context.Context, obj runtime.Object) []string {
	p := obj.(*backup.BackupPolicy)
	return registry.StorageWarnings(&p.Spec.Storage, p.Spec.Target.PVCName)
}

func (policyStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateBackupPolicyUpdate(obj.(*backup.BackupPolicy), old.(*backup.BackupPolicy))
}

func (policyStrategy) WarningsOnUpdate(ctx context.Context, obj, old runtime.Object) []string {
	p, oldP := obj.(*backup.BackupPolicy), old.(*backup.BackupPolicy)
	out := registry.StorageWarnings(&p.Spec.Storage, p.Spec.Target.PVCName)
	if w := registry.EncryptionChangeWarning(&p.Spec.Storage, &oldP.Spec.Storage); w != "" {
		out = append(out, w)
	}
	return out
}

func (policyStrategy) AllowCreateOnUpdate(context.Context) bool      { return false }
func (policyStrategy) AllowUnconditionalUpdate(context.Context) bool { return true }
func (policyStrategy) Canonicalize(obj runtime.Object)               {}

// statusStrategy implements writes to /status: only status changes.
type statusStrategy struct{ policyStrategy }

// NewStatusStrategy returns the strategy for the /status subresource.
func NewStatusStrategy(s policyStrategy) statusStrategy { return statusStrategy{s} }

func (statusStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return registry.StatusOwnedFields()
}

// PrepareForUpdate makes a write of /status change status only: it keeps spec,
// the metadata clients write (labels, annotations, finalizers,
// ownerReferences) and generation and deletionTimestamp, as the status
// subresources of Kubernetes do.
func (statusStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	p, oldP := obj.(*backup.BackupPolicy), old.(*backup.BackupPolicy)
	p.Spec = oldP.Spec
	metav1.ResetObjectMetaForStatus(&p.ObjectMeta, &oldP.ObjectMeta)
}

func (statusStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateBackupPolicyStatusUpdate(obj.(*backup.BackupPolicy), old.(*backup.BackupPolicy))
}

func (statusStrategy) WarningsOnUpdate(ctx context.Context, obj, old runtime.Object) []string {
	return nil
}

// GetAttrs returns the labels and selectable fields of a BackupPolicy.
func GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	p, ok := obj.(*backup.BackupPolicy)
	if !ok {
		return nil, nil, fmt.Errorf("not a BackupPolicy: %T", obj)
	}
	return p.Labels, selectableFields(p), nil
}

func selectableFields(p *backup.BackupPolicy) fields.Set {
	return generic.AddObjectMetaFieldsSet(fields.Set{
		"spec.target.pvcName":   p.Spec.Target.PVCName,
		"spec.target.namespace": p.Spec.Target.Namespace,
		"spec.storage.pvcName":  p.Spec.Storage.PVCName,
		"spec.suspend":          strconv.FormatBool(p.Spec.Suspend),
	}, &p.ObjectMeta, true)
}

// Match returns a selection predicate for label and field selectors.
func Match(label labels.Selector, field fields.Selector) storage.SelectionPredicate {
	return storage.SelectionPredicate{Label: label, Field: field, GetAttrs: GetAttrs}
}

var tableConvertor = registry.TableConvertor[*backup.BackupPolicy]{
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Schedule", Type: "string", Description: "Cron schedule (with its time zone when not UTC)."},
		{Name: "Suspend", Type: "boolean", Description: "Whether scheduled backups are suspended."},
		{Name: "Target", Type: "string", Description: "The PVC backed up, as namespace/name."},
		registry.RepositoryColumn(0),
		{Name: "Last Schedule", Type: "string", Description: "Time since the last scheduled backup."},
		{Name: "Last Success", Type: "string", Description: "Time since the last successful backup completed."},
		registry.AgeColumn,
	},
	Cells: func(p *backup.BackupPolicy) []interface{} {
		schedule := p.Spec.Schedule
		if p.Spec.TimeZone != nil && *p.Spec.TimeZone != "" && *p.Spec.TimeZone != "UTC" {
			schedule += " (" + *p.Spec.TimeZone + ")"
		}
		return []interface{}{
			schedule,
			p.Spec.Suspend,
			registry.NamespaceOr(p.Spec.Target.Namespace, p.Namespace) + "/" + p.Spec.Target.PVCName,
			registry.RepositoryCell(&p.Spec.Storage),
			registry.Since(p.Status.LastScheduleTime),
			registry.Since(p.Status.LastSuccessfulTime),
			registry.Age(p.CreationTimestamp),
		}
	},
}
