package restorejob

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The wide table's last column lists spec.paths: <all> without them, the
// first three and how many more with many.
func TestPathsColumn(t *testing.T) {
	cols := tableConvertor.Columns
	if last := cols[len(cols)-1]; last.Name != "Paths" || last.Priority != 1 {
		t.Fatalf("last column %+v, want Paths shown only with -o wide", last)
	}
	for _, c := range []struct {
		paths []string
		want  string
	}{
		{nil, "<all>"},
		{[]string{"a"}, "a"},
		{[]string{"a", "b/c", "d"}, "a,b/c,d"},
		{[]string{"a", "b", "c", "d", "e"}, "a,b,c,+2 more"},
	} {
		r := stored()
		r.Spec.Paths = c.paths
		table, err := tableConvertor.ConvertToTable(context.Background(), r, &metav1.TableOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cells := table.Rows[0].Cells
		if len(cells) != len(cols) || cells[len(cells)-1] != c.want {
			t.Errorf("paths %q: cells %v, want the last %q", c.paths, cells, c.want)
		}
	}
}
