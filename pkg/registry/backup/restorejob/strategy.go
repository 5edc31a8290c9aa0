// Package restorejob is the REST storage of restorejobs.backup.example.com.
package restorejob

import (
	"context"
	"fmt"
	"strings"

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

type restoreStrategy struct {
	runtime.ObjectTyper
	names.NameGenerator
}

// NewStrategy returns the strategy for the main resource.
func NewStrategy(typer runtime.ObjectTyper) restoreStrategy {
	return restoreStrategy{typer, names.SimpleNameGenerator}
}

func (restoreStrategy) NamespaceScoped() bool { return true }

func (restoreStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return registry.SpecOwnedFields()
}

// PrepareForCreate clears status and fills the namespace defaults.
func (restoreStrategy) PrepareForCreate(ctx context.Context, obj runtime.Object) {
	r := obj.(*backup.RestoreJob)
	r.Status = backup.RestoreJobStatus{}
	r.Generation = 1
	if r.Spec.BackupNamespace == "" {
		r.Spec.BackupNamespace = r.Namespace
	}
	if r.Spec.Target.Namespace == "" {
		r.Spec.Target.Namespace = r.Namespace
	}
}

// PrepareForUpdate keeps the stored status. Spec changes are refused by validation.
func (restoreStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	r, oldR := obj.(*backup.RestoreJob), old.(*backup.RestoreJob)
	r.Status = oldR.Status
	r.Generation = oldR.Generation
}

func (restoreStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	return validation.ValidateRestoreJob(obj.(*backup.RestoreJob))
}

func (restoreStrategy) WarningsOnCreate(ctx context.Context, obj runtime.Object) []string {
	r := obj.(*backup.RestoreJob)
	if r.Spec.Mode == backup.RestoreModeMirror && !r.Spec.DryRun {
		return []string{"mode Mirror deletes files in the target that the backup lacks; set spec.dryRun: true first to preview"}
	}
	return nil
}

func (restoreStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateRestoreJobUpdate(obj.(*backup.RestoreJob), old.(*backup.RestoreJob))
}

func (restoreStrategy) WarningsOnUpdate(ctx context.Context, obj, old runtime.Object) []string {
	return nil
}

func (restoreStrategy) AllowCreateOnUpdate(context.Context) bool      { return false }
func (restoreStrategy) AllowUnconditionalUpdate(context.Context) bool { return true }
func (restoreStrategy) Canonicalize(obj runtime.Object)               {}

type statusStrategy struct{ restoreStrategy }

// NewStatusStrategy returns the strategy for the /status subresource.
func NewStatusStrategy(s restoreStrategy) statusStrategy { return statusStrategy{s} }

func (statusStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return registry.StatusOwnedFields()
}

// PrepareForUpdate makes a write of /status change status only: it keeps spec,
// the metadata clients write (labels, annotations, finalizers,
// ownerReferences) and generation and deletionTimestamp, as the status
// subresources of Kubernetes do.
func (statusStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	r, oldR := obj.(*backup.RestoreJob), old.(*backup.RestoreJob)
	r.Spec = oldR.Spec
	metav1.ResetObjectMetaForStatus(&r.ObjectMeta, &oldR.ObjectMeta)
}

func (statusStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateRestoreJobStatusUpdate(obj.(*backup.RestoreJob), old.(*backup.RestoreJob))
}

func (statusStrategy) WarningsOnUpdate(ctx context.Context, obj, old runtime.Object) []string {
	return nil
}

// GetAttrs returns the labels and selectable fields of a RestoreJob.
func GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	r, ok := obj.(*backup.RestoreJob)
	if !ok {
		return nil, nil, fmt.Errorf("not a RestoreJob: %T", obj)
	}
	return r.Labels, generic.AddObjectMetaFieldsSet(fields.Set{
		"spec.backupName":       r.Spec.BackupName,
		"spec.target.pvcName":   r.Spec.Target.PVCName,
		"spec.target.namespace": r.Spec.Target.Namespace,
		"status.phase":          string(r.Status.Phase),
	}, &r.ObjectMeta, true), nil
}

// Match returns a selection predicate for label and field selectors.
func Match(label labels.Selector, field fields.Selector) storage.SelectionPredicate {
	return storage.SelectionPredicate{Label: label, Field: field, GetAttrs: GetAttrs}
}

var tableConvertor = registry.TableConvertor[*backup.RestoreJob]{
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Backup", Type: "string", Description: "The Backup restored."},
		{Name: "Target", Type: "string", Description: "The PVC restored into, as namespace/name."},
		{Name: "Mode", Type: "string", Description: "Merge or Mirror; (dry run) when only previewing."},
		{Name: "Phase", Type: "string", Description: "Pending, Running, Completed or Failed; Pending(Queued) while it waits for a data mover slot."},
		{Name: "Written", Type: "string", Description: "Bytes written by the restore; the percentage done while it runs."},
		registry.AgeColumn,
		{Name: "Paths", Type: "string", Priority: 1, Description: "spec.paths: the files and directories restored; <all> for everything."},
	},
	Cells: func(r *backup.RestoreJob) []interface{} {
		mode := string(r.Spec.Mode)
		if r.Spec.DryRun {
			mode += " (dry run)"
		}
		var written *int64
		if r.Status.Stats != nil {
			written = &r.Status.Stats.Bytes
		}
		return []interface{}{
			r.Spec.BackupName,
			registry.NamespaceOr(r.Spec.Target.Namespace, r.Namespace) + "/" + r.Spec.Target.PVCName,
			mode,
			registry.PhaseCell(string(r.Status.Phase), r.Status.Conditions),
			registry.BytesOrPercent(written, r.Status.Progress),
			registry.Age(r.CreationTimestamp),
			pathsCell(r.Spec.Paths),
		}
	},
}

// pathsCell lists a RestoreJob's spec.paths, the first three of them and
// how many more.
func pathsCell(paths []string) string {
	switch {
	case len(paths) == 0:
		return "<all>"
	case len(paths) > 3:
		return strings.Join(paths[:3], ",") + fmt.Sprintf(",+%d more", len(paths)-3)
	}
	return strings.Join(paths, ",")
}
