package validation

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"example.com/backup-operator/pkg/apis/backup"
)

func TestRestorePathsValidation(t *testing.T) {
	job := func(paths ...string) *backup.RestoreJob {
		return &backup.RestoreJob{
			ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns", ResourceVersion: "1"},
			Spec:       backup.RestoreJobSpec{BackupName: "b", Target: backup.RestoreTarget{PVCName: "data"}, Mode: backup.RestoreModeMirror, Paths: paths},
		}
	}
	long := strings.Repeat("d/", MaxRestorePathLength/2) + "x"
	cases := []struct {
		paths []string
		// field and a part of the message of the one error; "" for none
		field, detail string
	}{
		{nil, "", ""},
		{[]string{"a"}, "", ""},
		{[]string{"app/config", "app/data.db", "b", ".hidden", "a..b", "x/...", "with space"}, "", ""},
		{[]string{"a/b", "a.b", "a-b"}, "", ""},
		{[]string{"/abs"}, "spec.paths[0]", `without a leading "/": write "abs"`},
		{[]string{"/"}, "spec.paths[0]", "omit spec.paths to restore everything"},
		{[]string{"a/../b"}, "spec.paths[0]", `".." element: write "b"`},
		{[]string{"../etc"}, "spec.paths[0]", `".." element: name a file or directory of the backup`},
		{[]string{"a/.."}, "spec.paths[0]", `".." element: omit spec.paths`},
		{[]string{".."}, "spec.paths[0]", `".." element`},
		{[]string{"ok", "a/"}, "spec.paths[1]", `must not end in "/" (a directory is restored with everything beneath it): write "a"`},
		{[]string{"./a"}, "spec.paths[0]", `must be clean, without "." or empty elements: write "a"`},
		{[]string{"a//b"}, "spec.paths[0]", `write "a/b"`},
		{[]string{"a/./b"}, "spec.paths[0]", `write "a/b"`},
		{[]string{"."}, "spec.paths[0]", `"." is the whole backup: omit spec.paths`},
		{[]string{""}, "spec.paths[0]", "must not be empty"},
		{[]string{"a\x00b"}, "spec.paths[0]", "NUL"},
		{[]string{long}, "spec.paths[0]", "4096"},
		{[]string{"a", "b", "a"}, "spec.paths[2]", "already listed as spec.paths[0]"},
		{[]string{"a/b/c", "x", "a"}, "spec.paths[0]", `is beneath spec.paths[2] "a"`},
		{[]string{"a", "a/b/c"}, "spec.paths[1]", `is beneath spec.paths[0] "a", which restores everything beneath it already: list only "a"`},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%q", tc.paths), func(t *testing.T) {
			errs := ValidateRestoreJob(job(tc.paths...))
			if tc.field == "" {
				if len(errs) != 0 {
					t.Fatalf("want no error, got %v", errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Field != tc.field || !strings.Contains(errs[0].Error(), tc.detail) {
				t.Fatalf("want one error on %s saying %q, got %v", tc.field, tc.detail, errs)
			}
		})
	}

	many := make([]string, MaxRestorePaths+1)
	for i := range many {
		many[i] = fmt.Sprintf("d%d", i)
	}
	if errs := ValidateRestoreJob(job(many[:MaxRestorePaths]...)); len(errs) != 0 {
		t.Errorf("%d paths: %v", MaxRestorePaths, errs)
	}
	if errs := ValidateRestoreJob(job(many...)); len(errs) != 1 || errs[0].Field != "spec.paths" || errs[0].Type != field.ErrorTypeTooMany {
		t.Errorf("%d paths: want one TooMany on spec.paths, got %v", len(many), errs)
	}
	if errs := ValidateRestoreJob(job(strings.Repeat("x", MaxRestorePathLength))); len(errs) != 0 {
		t.Errorf("a path of %d bytes: %v", MaxRestorePathLength, errs)
	}

	// Several bad paths: one error each, every one named.
	errs := ValidateRestoreJob(job("/a", "b", "c/../d"))
	if len(errs) != 2 || errs[0].Field != "spec.paths[0]" || errs[1].Field != "spec.paths[2]" {
		t.Errorf("want errors on spec.paths[0] and [2], got %v", errs)
	}

	// Paths are part of the immutable spec.
	if errs := ValidateRestoreJobUpdate(job("a", "b"), job("a")); len(errs) != 1 || errs[0].Field != "spec" {
		t.Errorf("changing spec.paths: want one error on spec, got %v", errs)
	}
	if errs := ValidateRestoreJobUpdate(job("a"), job("a")); len(errs) != 0 {
		t.Errorf("unchanged paths: %v", errs)
	}
}
