package engine

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"example.com/backup-operator/pkg/mover/repo"
)

// MaxPathLength bounds one selected path (Linux's PATH_MAX).
const MaxPathLength = 4096

// CheckPaths refuses a list of restore paths that is not a set of clean
// paths relative to the snapshot root, none beneath another; the message
// says what to write instead.
func CheckPaths(paths []string) error {
	seen := map[string]bool{}
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return err
		}
		if seen[p] {
			return fmt.Errorf("path %q is listed twice: list each path once", p)
		}
		seen[p] = true
	}
	for _, p := range paths {
		for q := path.Dir(p); q != "."; q = path.Dir(q) {
			if seen[q] {
				return fmt.Errorf("path %q is beneath path %q, which restores everything beneath it already: list only %q", p, q, q)
			}
		}
	}
	return nil
}

func checkPath(p string) error {
	clean := strings.TrimPrefix(path.Clean(p), "/")
	switch {
	case p == "":
		return errors.New(`empty path: name a file or directory of the snapshot relative to its root, such as "app/config"`)
	case len(p) > MaxPathLength:
		return fmt.Errorf("path %.40q… is longer than %d bytes", p, MaxPathLength)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains a NUL byte", p)
	case p == ".":
		return errors.New(`path "." is the whole snapshot: leave out the paths to restore everything`)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return fmt.Errorf(`path %q has a ".." element: name a file or directory of the snapshot relative to its root`, p)
		}
	}
	switch {
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf(`path %q is absolute: paths are relative to the snapshot root, write %q`, p, clean)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf(`path %q ends in "/" (a directory is restored with everything beneath it): write %q`, p, clean)
	case clean != p:
		return fmt.Errorf(`path %q is not clean ("." or empty elements): write %q`, p, clean)
	}
	return repo.ValidatePath(p)
}

// pathClass is where a path stands relative to a restore's selection.
type pathClass int

const (
	// outside: neither a selected path, beneath one, nor above one.
	outside pathClass = iota
	// selected: a selected path or beneath one; restored as a full restore would.
	selected
	// ancestor: a directory that holds a selected path (the root among
	// them); created when missing, otherwise left as it is.
	ancestor
	// past: after every selected path in walk order; nothing follows that
	// is selected or an ancestor.
	past
)

// selection is the set of paths a restore is limited to.
type selection struct {
	paths     map[string]bool
	ancestors map[string]bool
	last      string // the greatest selected path in repo.ComparePaths order
}

// newSelection returns nil for no paths: everything.
func newSelection(paths []string) (*selection, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	if err := CheckPaths(paths); err != nil {
		return nil, err
	}
	s := &selection{paths: map[string]bool{}, ancestors: map[string]bool{".": true}}
	for _, p := range paths {
		s.paths[p] = true
		for q := repo.Parent(p); q != "."; q = repo.Parent(q) {
			s.ancestors[q] = true
		}
		if s.last == "" || repo.ComparePaths(p, s.last) > 0 {
			s.last = p
		}
	}
	return s, nil
}

// sorted returns the selected paths in walk order.
func (s *selection) sorted() []string {
	out := make([]string, 0, len(s.paths))
	for p := range s.paths {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return repo.ComparePaths(out[i], out[j]) < 0 })
	return out
}

// classify places p, a valid slash-separated path ("." the root), with
// lookups for p and its parents only: no scan of the selection.
func (s *selection) classify(p string) pathClass {
	if s.ancestors[p] {
		return ancestor
	}
	for q := p; q != "."; q = repo.Parent(q) {
		if s.paths[q] {
			return selected
		}
	}
	if repo.ComparePaths(p, s.last) > 0 {
		return past
	}
	return outside
}

// checkTargetAncestors refuses, before anything is written, a target in
// which something other than a directory stands where a selected path's
// parent must be: the restore would have to replace it, and it is not
// selected. A symlink counts too, whatever it points to: it is never followed.
func (s *selection) checkTargetAncestors(root string) error {
	for _, p := range s.sorted() {
		var parents []string
		for q := repo.Parent(p); q != "."; q = repo.Parent(q) {
			parents = append(parents, q)
		}
		// From the top down: a missing directory ends the check (the restore
		// creates it and what it holds), and no symlink is resolved on the
		// way, since each level was found to be a directory first.
		for i := len(parents) - 1; i >= 0; i-- {
			var st unix.Stat_t
			err := unix.Lstat(root+"/"+parents[i], &st)
			if errors.Is(err, unix.ENOENT) {
				break
			}
			if err != nil {
				return fmt.Errorf("checking %q in the restore target: %w", parents[i], err)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				what := "a file"
				if st.Mode&unix.S_IFMT == unix.S_IFLNK {
					what = "a symlink"
				} else if st.Mode&unix.S_IFMT != unix.S_IFREG {
					what = "a special file"
				}
				return fmt.Errorf("the target has %s at %q where the snapshot has the directory that holds %q: move or remove it, or restore %q instead; nothing was written",
					what, parents[i], p, parents[i])
			}
		}
	}
	return nil
}
