// Package backup is the REST storage of backups.backup.example.com.
package backup

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/names"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/apis/backup/validation"
	registry "example.com/backup-operator/pkg/registry/backup"
	"example.com/backup-operator/pkg/safety"
)

type backupStrategy struct {
	runtime.ObjectTyper
	names.NameGenerator
	defaultRepositoryPVC string
}

// NewStrategy returns the strategy for the main resource.
func NewStrategy(typer runtime.ObjectTyper, defaultRepositoryPVC string) backupStrategy {
	return backupStrategy{typer, names.SimpleNameGenerator, defaultRepositoryPVC}
}

func (backupStrategy) NamespaceScoped() bool { return true }

func (backupStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return registry.SpecOwnedFields()
}

// PrepareForCreate clears status, fills namespace-dependent defaults and labels
// the Backup with its policy.
func (s backupStrategy) PrepareForCreate(ctx context.Context, obj runtime.Object) {
	b := obj.(*backup.Backup)
	b.Status = backup.BackupStatus{}
	b.Generation = 1
	if b.Spec.Target.Namespace == "" {
		b.Spec.Target.Namespace = b.Namespace
	}
	if b.Spec.Storage.PVCName == "" && b.Spec.Storage.S3 == nil {
		b.Spec.Storage.PVCName = s.defaultRepositoryPVC
	}
	if b.Spec.PolicyName != "" {
		if b.Labels == nil {
			b.Labels = map[string]string{}
		}
		b.Labels[v1alpha1.PolicyLabel] = b.Spec.PolicyName
	}
}

// PrepareForUpdate keeps the stored status. Spec changes are refused by validation.
func (backupStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	b, oldB := obj.(*backup.Backup), old.(*backup.Backup)
	b.Status = oldB.Status
	b.Generation = oldB.Generation
}

func (backupStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	return validation.ValidateBackup(obj.(*backup.Backup))
}

func (backupStrategy) WarningsOnCreate(ctx context.Context, obj runtime.Object) []string {
	b := obj.(*backup.Backup)
	if u, _ := genericapirequest.UserFrom(ctx); safety.IsServer(u) {
		return nil // the controllers' Backups copy their policy, which was warned about
	}
	return registry.StorageWarnings(&b.Spec.Storage, b.Spec.Target.PVCName)
}

func (backupStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateBackupUpdate(obj.(*backup.Backup), old.(*backup.Backup))
}

func (backupStrategy) WarningsOnUpdate(ctx context.Context, obj, old runtime.Object) []string {
	return nil
}

func (backupStrategy) AllowCreateOnUpdate(context.Context) bool      { return false }
func (backupStrategy) AllowUnconditionalUpdate(context.Context) bool { return true }
func (backupStrategy) Canonicalize(obj runtime.Object)               {}

type statusStrategy struct{ backupStrategy }

// NewStatusStrategy returns the strategy for the /status subresource.
func NewStatusStrategy(s backupStrategy) statusStrategy { return statusStrategy{s} }

func (statusStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return registry.StatusOwnedFields()
}

// PrepareForUpdate makes a write of /status change status only: it keeps spec,
// the metadata clients write (labels, annotations, finalizers,
// ownerReferences) and generation and deletionTimestamp, as the status
// subresources of Kubernetes do.
func (statusStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	b, oldB := obj.(*backup.Backup), old.(*backup.Backup)
	b.Spec = oldB.Spec
	metav1.ResetObjectMetaForStatus(&b.ObjectMeta, &oldB.ObjectMeta)
}

func (statusStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateBackupStatusUpdate(obj.(*backup.Backup), old.(*backup.Backup))
}

func (statusStrategy) WarningsOnUpdate(ctx context.Context, obj, old runtime.Object) []string {
	return nil
}

// GetAttrs returns the labels and selectable fields of a Backup.
func GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	b, ok := obj.(*backup.Backup)
	if !ok {
		return nil, nil, fmt.Errorf("not a Backup: %T", obj)
	}
	return b.Labels, SelectableFields(b), nil
}

// SelectableFields are the fields a field selector can match.
func SelectableFields(b *backup.Backup) fields.Set {
	set := fields.Set{"spec.target.namespace": b.Spec.Target.Namespace}
	for name, value := range indexedFields {
		set[name] = value(b)
	}
	return generic.AddObjectMetaFieldsSet(set, &b.ObjectMeta, true)
}

// indexedFields are the selectable fields the watch cache indexes, so a list
// with an exact selector on one of them reads only the matching Backups, not
// every Backup of the namespace: the controller lists a policy's Backups,
// users a PVC's or a phase's. The kube-apiserver indexes pods by spec.nodeName
// the same way.
var indexedFields = map[string]func(*backup.Backup) string{
	"spec.policyName":     func(b *backup.Backup) string { return b.Spec.PolicyName },
	"spec.target.pvcName": func(b *backup.Backup) string { return b.Spec.Target.PVCName },
	"status.phase":        func(b *backup.Backup) string { return string(b.Status.Phase) },
}

// indexFields are the keys of indexedFields, for selection predicates.
var indexFields = slices.Sorted(maps.Keys(indexedFields))

// Indexers are the watch cache's indexes on indexedFields.
func Indexers() *cache.Indexers {
	indexers := cache.Indexers{}
	for name, value := range indexedFields {
		indexers[storage.FieldIndex(name)] = func(obj interface{}) ([]string, error) {
			b, ok := obj.(*backup.Backup)
			if !ok {
				return nil, fmt.Errorf("not a Backup: %T", obj)
			}
			return []string{value(b)}, nil
		}
	}
	return &indexers
}

// Triggers lets the watch cache send an event only to the watchers whose
// exact spec.policyName selector it matches (the cache allows one trigger).
func Triggers() storage.IndexerFuncs {
	const field = "spec.policyName"
	return storage.IndexerFuncs{field: func(obj runtime.Object) string {
		if b, ok := obj.(*backup.Backup); ok {
			return indexedFields[field](b)
		}
		return ""
	}}
}

// Match returns a selection predicate for label and field selectors.
func Match(label labels.Selector, field fields.Selector) storage.SelectionPredicate {
	return storage.SelectionPredicate{Label: label, Field: field, GetAttrs: GetAttrs, IndexFields: indexFields}
}

var tableConvertor = registry.TableConvertor[*backup.Backup]{
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Policy", Type: "string", Description: "The BackupPolicy that created the backup, if any."},
		{Name: "PVC", Type: "string", Description: "The PVC backed up, as namespace/name."},
		{Name: "Phase", Type: "string", Description: "Pending, Running, Completed or Failed; Pending(Queued) while it waits for a data mover slot."},
		{Name: "Size", Type: "string", Description: "Total size of the files in the snapshot."},
		{Name: "Duration", Type: "string", Description: "How long the backup ran (so far)."},
		registry.AgeColumn,
		registry.RepositoryColumn(1),
	},
	Cells: func(b *backup.Backup) []interface{} {
		var size *int64
		if b.Status.Stats != nil {
			size = &b.Status.Stats.Bytes
		}
		return []interface{}{
			registry.OrNone(b.Spec.PolicyName),
			registry.NamespaceOr(b.Spec.Target.Namespace, b.Namespace) + "/" + b.Spec.Target.PVCName,
			registry.PhaseCell(string(b.Status.Phase), b.Status.Conditions),
			registry.BytesOrPercent(size, b.Status.Progress),
			runDuration(b.Status.StartTime, b.Status.CompletionTime),
			registry.Age(b.CreationTimestamp),
			registry.RepositoryCell(&b.Spec.Storage),
		}
	},
}

func runDuration(start, end *metav1.Time) string {
	if start == nil {
		return "<none>"
	}
	stop := time.Now()
	if end != nil {
		stop = end.Time
	}
	return duration.HumanDuration(stop.Sub(start.Time))
}
