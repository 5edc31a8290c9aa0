package controller

import (
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

func completedAt(times ...string) []*v1alpha1.Backup {
	var out []*v1alpha1.Backup
	for _, s := range times {
		ts, _ := time.Parse(time.RFC3339, s)
		t := metav1.NewTime(ts)
		out = append(out, &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: s},
			Status: v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseCompleted, CompletionTime: &t}})
	}
	return out // callers pass them newest first
}

func i32(v int32) *int32 { return &v }

func keptNames(keep map[string]bool) string {
	var names []string
	for n := range keep {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

func TestKeepSet(t *testing.T) {
	// Newest first: two on Nov 26, one each on Nov 25, Nov 20 (previous week), Oct 31.
	backups := completedAt("2026-11-26T10:00:00Z", "2026-11-26T02:00:00Z", "2026-11-25T02:00:00Z", "2026-11-20T02:00:00Z", "2026-10-31T02:00:00Z")
	cases := []struct {
		name string
		r    v1alpha1.RetentionPolicy
		tz   *string
		want string
	}{
		{"keepLast 2", v1alpha1.RetentionPolicy{KeepLast: i32(2)}, nil, "2026-11-26T02:00:00Z 2026-11-26T10:00:00Z"},
		{"keepDaily 2: newest of each of the last two days", v1alpha1.RetentionPolicy{KeepDaily: i32(2)}, nil, "2026-11-25T02:00:00Z 2026-11-26T10:00:00Z"},
		{"keepWeekly 2", v1alpha1.RetentionPolicy{KeepWeekly: i32(2)}, nil, "2026-11-20T02:00:00Z 2026-11-26T10:00:00Z"},
		{"keepMonthly 2", v1alpha1.RetentionPolicy{KeepMonthly: i32(2)}, nil, "2026-10-31T02:00:00Z 2026-11-26T10:00:00Z"},
		{"rules add up", v1alpha1.RetentionPolicy{KeepLast: i32(1), KeepMonthly: i32(2)}, nil, "2026-10-31T02:00:00Z 2026-11-26T10:00:00Z"},
		{"the newest is always kept", v1alpha1.RetentionPolicy{KeepLast: i32(0)}, nil, "2026-11-26T10:00:00Z"},
		// In Tokyo (UTC+9), 2026-11-26T02:00Z and 2026-11-25T02:00Z fall on the 26th and 25th local; 10:00Z is the 26th 19:00.
		{"days in the policy's zone", v1alpha1.RetentionPolicy{KeepDaily: i32(3)}, ptrString("Asia/Tokyo"), "2026-11-20T02:00:00Z 2026-11-25T02:00:00Z 2026-11-26T10:00:00Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := keptNames(KeepSet(backups, tc.r, tc.tz)); got != tc.want {
				t.Errorf("kept %s\nwant %s", got, tc.want)
			}
		})
	}
	if got := KeepSet(nil, v1alpha1.RetentionPolicy{KeepLast: i32(3)}, nil); len(got) != 0 {
		t.Errorf("nothing to keep of nothing: %v", got)
	}
}

func ptrString(s string) *string { return &s }
