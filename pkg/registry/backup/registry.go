// Package backup holds what the REST storage of the three resources of
// backup.example.com shares: reset-field sets for server-side apply, the
// table builder behind `kubectl get` columns, and short formatting helpers.
// Each resource has its own package beside this one (etcd.go + strategy.go).
package backup

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// SpecOwnedFields are the fields that a write of spec may not touch:
// server-side apply on the main resource drops status.
func SpecOwnedFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(v1alpha1.SchemeGroupVersion.String()): fieldpath.NewSet(fieldpath.MakePathOrDie("status")),
	}
}

// StatusOwnedFields are the fields that a write of /status may not touch: spec
// and the metadata that the status strategies keep
// (metav1.ResetObjectMetaForStatus), so a server-side apply of /status does
// not claim them either.
func StatusOwnedFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(v1alpha1.SchemeGroupVersion.String()): fieldpath.NewSet(
			fieldpath.MakePathOrDie("spec"),
			fieldpath.MakePathOrDie("metadata", "labels"),
			fieldpath.MakePathOrDie("metadata", "annotations"),
			fieldpath.MakePathOrDie("metadata", "finalizers"),
			fieldpath.MakePathOrDie("metadata", "ownerReferences"),
		),
	}
}

// TableConvertor turns objects of one kind into `kubectl get` rows.
type TableConvertor[T runtime.Object] struct {
	Columns []metav1.TableColumnDefinition
	// Cells returns the cells after the name column, one per Columns entry after it.
	Cells func(obj T) []interface{}
}

var _ rest.TableConvertor = TableConvertor[runtime.Object]{}

// ConvertToTable implements rest.TableConvertor for a single object or a list.
func (c TableConvertor[T]) ConvertToTable(ctx context.Context, object runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{}
	if opt, ok := tableOptions.(*metav1.TableOptions); !ok || !opt.NoHeaders {
		table.ColumnDefinitions = c.Columns
	}
	addRow := func(obj runtime.Object) error {
		typed, ok := obj.(T)
		if !ok {
			return fmt.Errorf("unexpected object %T in table conversion", obj)
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return err
		}
		cells := append([]interface{}{m.GetName()}, c.Cells(typed)...)
		table.Rows = append(table.Rows, metav1.TableRow{Cells: cells, Object: runtime.RawExtension{Object: obj}})
		return nil
	}
	if meta.IsListType(object) {
		if err := meta.EachListItem(object, addRow); err != nil {
			return nil, err
		}
		if l, err := meta.ListAccessor(object); err == nil {
			table.ResourceVersion = l.GetResourceVersion()
			table.Continue = l.GetContinue()
			table.RemainingItemCount = l.GetRemainingItemCount()
		}
		return table, nil
	}
	if err := addRow(object); err != nil {
		return nil, err
	}
	if m, err := meta.Accessor(object); err == nil {
		table.ResourceVersion = m.GetResourceVersion()
	}
	return table, nil
}

// NameColumn is the first column of every table.
var NameColumn = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name of the object."}

// AgeColumn is the usual last column.
var AgeColumn = metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: "Time since the object was created."}

// Age formats the time since t as kubectl does.
func Age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

// Since formats the time since t, or "<none>" when it has not happened.
func Since(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "<none>"
	}
	return duration.HumanDuration(time.Since(t.Time)) + " ago"
}

// BytesOrPercent is a size cell: the final byte count once there is one, the
// percentage done while the data mover runs, <none> before.
func BytesOrPercent(final *int64, p *backup.Progress) string {
	switch {
	case final != nil:
		return Bytes(*final)
	case p != nil && p.BytesTotal > 0:
		return fmt.Sprintf("%d%%", p.BytesDone*100/p.BytesTotal)
	}
	return "<none>"
}

// Bytes formats a byte count in binary units (1.5Gi).
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ci", float64(n)/float64(div), "KMGTPE"[exp])
}

// PhaseCell is a phase column's cell: the phase, with "(Queued)" while the
// object waits for a data mover slot.
func PhaseCell(phase string, conditions []metav1.Condition) string {
	if phase == "Pending" && meta.IsStatusConditionTrue(conditions, v1alpha1.ConditionQueued) {
		return "Pending(Queued)"
	}
	return OrNone(phase)
}

// OrNone returns s, or "<none>" when s is empty.
func OrNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// NamespaceOr returns ns, or fallback when ns is empty.
func NamespaceOr(ns, fallback string) string {
	if ns == "" {
		return fallback
	}
	return ns
}

// StatusREST is the storage of a resource's /status subresource: a copy of the
// main store whose update strategy keeps spec.
type StatusREST struct {
	Store *genericregistry.Store
}

var (
	_ rest.Patcher             = &StatusREST{}
	_ rest.ResetFieldsStrategy = &StatusREST{}
)

// NewStatusREST copies store and writes through the given status strategy.
func NewStatusREST(store *genericregistry.Store, strategy rest.UpdateResetFieldsStrategy) *StatusREST {
	statusStore := *store
	statusStore.UpdateStrategy = strategy
	statusStore.ResetFieldsStrategy = strategy
	return &StatusREST{Store: &statusStore}
}

// New returns an empty object of the resource.
func (r *StatusREST) New() runtime.Object { return r.Store.New() }

// Destroy does nothing: the main resource owns the storage.
func (r *StatusREST) Destroy() {}

// Get retrieves the object, so that PATCH of /status can read it.
func (r *StatusREST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	return r.Store.Get(ctx, name, options)
}

// Update writes status only, and never creates the object.
func (r *StatusREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return r.Store.Update(ctx, name, objInfo, createValidation, updateValidation, false, options)
}

// GetResetFields implements rest.ResetFieldsStrategy.
func (r *StatusREST) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return r.Store.GetResetFields()
}

// ConvertToTable implements rest.TableConvertor.
func (r *StatusREST) ConvertToTable(ctx context.Context, object runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	return r.Store.ConvertToTable(ctx, object, tableOptions)
}

// ThenCheck runs the request's own create validation (validating admission)
// first and then check, the REST layer's live-state check: a request is judged
// against the cluster only once it is otherwise acceptable.
func ThenCheck(next, check rest.ValidateObjectFunc) rest.ValidateObjectFunc {
	return func(ctx context.Context, obj runtime.Object) error {
		if next != nil {
			if err := next(ctx, obj); err != nil {
				return err
			}
		}
		return check(ctx, obj)
	}
}
