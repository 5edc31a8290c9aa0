package validation

import (
	"fmt"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

const (
	// MaxRestorePaths bounds a RestoreJob's spec.paths: each path is a
	// command-line argument of the data mover.
	MaxRestorePaths = 100
	// MaxRestorePathLength is Linux's PATH_MAX.
	MaxRestorePathLength = 4096
)

// validateRestorePaths checks a RestoreJob's spec.paths: each a clean path
// relative to the snapshot root, none listed twice or beneath another.
func validateRestorePaths(paths []string, fld *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(paths) > MaxRestorePaths {
		e := field.TooMany(fld, len(paths), MaxRestorePaths)
		e.Detail += "; restore a common parent directory instead, or split the restore into several RestoreJobs"
		return append(allErrs, e)
	}
	valid := map[string]int{}
	for i, p := range paths {
		if len(p) > MaxRestorePathLength {
			allErrs = append(allErrs, field.TooLong(fld.Index(i), p, MaxRestorePathLength))
			continue
		}
		if msg := restorePathProblem(p); msg != "" {
			allErrs = append(allErrs, field.Invalid(fld.Index(i), p, msg))
			continue
		}
		if j, ok := valid[p]; ok {
			e := field.Duplicate(fld.Index(i), p)
			e.Detail = fmt.Sprintf("already listed as %s: list each path once", fld.Index(j))
			allErrs = append(allErrs, e)
			continue
		}
		valid[p] = i
	}
	// A path beneath another listed path is restored by that one already.
	for i, p := range paths {
		if j, ok := valid[p]; !ok || j != i {
			continue
		}
		for q := path.Dir(p); q != "."; q = path.Dir(q) {
			if j, ok := valid[q]; ok {
				allErrs = append(allErrs, field.Invalid(fld.Index(i), p, fmt.Sprintf(
					"is beneath spec.paths[%d] %q, which restores everything beneath it already: list only %q", j, q, q)))
				break
			}
		}
	}
	return allErrs
}

// restorePathProblem says what is wrong with one entry of spec.paths, and
// what to write instead; "" when it is valid.
func restorePathProblem(p string) string {
	const hint = `a file or directory of the backup relative to its root, such as "app/config"`
	switch {
	case p == "":
		return "must not be empty: name " + hint + ", or omit spec.paths to restore everything"
	case strings.ContainsRune(p, 0):
		return "must not contain a NUL byte"
	case p == ".":
		return `"." is the whole backup: omit spec.paths to restore everything`
	}
	clean := strings.TrimPrefix(path.Clean(p), "/")
	suggest := func() string {
		if clean == "" || clean == "." {
			return "omit spec.paths to restore everything"
		}
		return fmt.Sprintf("write %q", clean)
	}
	for _, el := range strings.Split(p, "/") {
		if el != ".." {
			continue
		}
		if strings.HasPrefix(p, "/") || clean == ".." || strings.HasPrefix(clean, "../") {
			return `must not contain a ".." element: name ` + hint
		}
		return `must not contain a ".." element: ` + suggest()
	}
	switch {
	case strings.HasPrefix(p, "/"):
		return "must be relative to the backup's root, without a leading \"/\": " + suggest()
	case strings.HasSuffix(p, "/"):
		return `must not end in "/" (a directory is restored with everything beneath it): ` + suggest()
	case path.Clean(p) != p:
		return `must be clean, without "." or empty elements: ` + suggest()
	}
	return ""
}
