package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.com/backup-operator/pkg/mover/report"
)

// TestSummaryDropsExamplePathsFirst: a summary too big for the termination
// message loses the backup's example paths (the counts stay) before the
// restore paths are halved.
func TestSummaryDropsExamplePathsFirst(t *testing.T) {
	long := func(prefix string, n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, fmt.Sprintf("%s%d/%s", prefix, i, strings.Repeat("x", 240)))
		}
		return out
	}
	path := filepath.Join(t.TempDir(), "summary")
	read := func() report.Summary {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 4000 {
			t.Errorf("summary of %d bytes", len(data))
		}
		var s report.Summary
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	s := report.Summary{Operation: "backup", Vanished: 25, VanishedPaths: long("v", 10), ChangedDuringRead: 12, ChangedPaths: long("c", 10)}
	if err := writeSummary(path, s); err != nil {
		t.Fatal(err)
	}
	got := read()
	if got.Vanished != 25 || got.ChangedDuringRead != 12 {
		t.Errorf("counts %d, %d; want 25, 12", got.Vanished, got.ChangedDuringRead)
	}
	if n := len(got.VanishedPaths) + len(got.ChangedPaths); n == 0 || n == 20 {
		t.Errorf("kept %d of 20 example paths; want some, not all", n)
	}
	if d := len(got.VanishedPaths) - len(got.ChangedPaths); d < -1 || d > 1 {
		t.Errorf("kept %d vanished and %d changed paths: not evenly trimmed", len(got.VanishedPaths), len(got.ChangedPaths))
	}

	// Other paths are halved only once the example paths are gone.
	s.Paths = long("p", 16)
	if err := writeSummary(path, s); err != nil {
		t.Fatal(err)
	}
	got = read()
	if len(got.VanishedPaths)+len(got.ChangedPaths) != 0 || len(got.Paths) != 8 || !got.Truncated {
		t.Errorf("kept %d example paths and %d other paths (truncated %v); want 0 and 8 (true)", len(got.VanishedPaths)+len(got.ChangedPaths), len(got.Paths), got.Truncated)
	}
}

func TestBackupWarnings(t *testing.T) {
	for _, tc := range []struct {
		vanished, changed int64
		want              string
	}{
		{0, 0, ""},
		{3, 2, "warning: 3 files vanished during the backup and are not in the snapshot\n" +
			"warning: 2 files changed while they were read; stored as read\n"},
		{1, 0, "warning: 1 file vanished during the backup and is not in the snapshot\n"},
		{0, 1, "warning: 1 file changed while it was read; stored as read\n"},
	} {
		var b bytes.Buffer
		warnChanges(&b, tc.vanished, tc.changed)
		if b.String() != tc.want {
			t.Errorf("%d vanished, %d changed: got %q, want %q", tc.vanished, tc.changed, b.String(), tc.want)
		}
	}
}
