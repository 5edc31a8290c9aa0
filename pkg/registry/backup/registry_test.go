package backup

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// A write of the main resource may not touch status; a write of /status may
// touch nothing but status: not spec, labels, annotations, finalizers or
// owner references.
func TestOwnedFields(t *testing.T) {
	gv := fieldpath.APIVersion(v1alpha1.SchemeGroupVersion.String())
	for _, tc := range []struct {
		name string
		set  *fieldpath.Set
		want []fieldpath.Path
	}{
		{"main", SpecOwnedFields()[gv], []fieldpath.Path{fieldpath.MakePathOrDie("status")}},
		{"status", StatusOwnedFields()[gv], []fieldpath.Path{
			fieldpath.MakePathOrDie("spec"),
			fieldpath.MakePathOrDie("metadata", "labels"),
			fieldpath.MakePathOrDie("metadata", "annotations"),
			fieldpath.MakePathOrDie("metadata", "finalizers"),
			fieldpath.MakePathOrDie("metadata", "ownerReferences"),
		}},
	} {
		if tc.set == nil {
			t.Errorf("%s: no reset fields for %s", tc.name, gv)
			continue
		}
		if want := fieldpath.NewSet(tc.want...); !tc.set.Equals(want) {
			t.Errorf("%s reset fields = %s, want %s", tc.name, tc.set, want)
		}
	}
}

func TestPhaseCellShowsQueued(t *testing.T) {
	queued := []metav1.Condition{{Type: "Queued", Status: metav1.ConditionTrue}}
	for _, c := range []struct {
		phase string
		conds []metav1.Condition
		want  string
	}{{"Pending", queued, "Pending(Queued)"}, {"Pending", nil, "Pending"}, {"Running", queued, "Running"}, {"", nil, "<none>"}} {
		if got := PhaseCell(c.phase, c.conds); got != c.want {
			t.Errorf("PhaseCell(%q, %v) = %q, want %q", c.phase, c.conds, got, c.want)
		}
	}
}
