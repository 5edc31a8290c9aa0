// Package engine implements the data mover's operations on a repository:
// backup, restore, diff, verify, ls and prune.
package engine

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"example.com/backup-operator/pkg/mover/repo"
)

// node is one entry of a directory walk.
type node struct {
	path string // relative, slash-separated; "." is the root
	info os.FileInfo
	stat *syscall.Stat_t
}

// walker walks a tree depth-first with names sorted, in repo.ComparePaths
// order, listing one directory at a time: memory grows with the depth and the
// widest directory, not with the tree.
type walker struct {
	root  string
	stack []dirFrame
	// pending is the directory emitted last; its children are read on the
	// next call unless skip() is called first.
	pending *node
}

type dirFrame struct {
	path  string
	names []string
}

func newWalker(root string) (*walker, error) {
	info, err := os.Lstat(root)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, &os.PathError{Op: "walk", Path: root, Err: errors.New("not a directory")}
	}
	w := &walker{root: root}
	w.pending = &node{path: ".", info: info, stat: info.Sys().(*syscall.Stat_t)}
	return w, nil
}

// first returns the root node; call once before next.
func (w *walker) first() *node { return w.pending }

// skip tells the walker not to descend into the directory it returned last.
func (w *walker) skip() { w.pending = nil }

func (w *walker) abs(rel string) string {
	if rel == "." {
		return w.root
	}
	return filepath.Join(w.root, filepath.FromSlash(rel))
}

// next returns the next node, or io.EOF. Entries that vanish between listing
// and lstat are skipped (the tree may change while it is walked).
func (w *walker) next() (*node, error) {
	if p := w.pending; p != nil {
		w.pending = nil
		f, err := os.Open(w.abs(p.path))
		if err != nil {
			return nil, err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, err
		}
		sort.Strings(names)
		w.stack = append(w.stack, dirFrame{path: p.path, names: names})
	}
	for len(w.stack) > 0 {
		top := &w.stack[len(w.stack)-1]
		if len(top.names) == 0 {
			w.stack = w.stack[:len(w.stack)-1]
			continue
		}
		name := top.names[0]
		top.names = top.names[1:]
		rel := name
		if top.path != "." {
			rel = top.path + "/" + name
		}
		info, err := os.Lstat(w.abs(rel))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		n := &node{path: rel, info: info, stat: info.Sys().(*syscall.Stat_t)}
		if info.IsDir() {
			w.pending = n
		}
		return n, nil
	}
	return nil, io.EOF
}

// entryType maps a file mode to a manifest type; ok is false for sockets,
// devices and pipes, which a file-level backup skips.
func entryType(m os.FileMode) (repo.EntryType, bool) {
	switch {
	case m.IsDir():
		return repo.TypeDir, true
	case m.IsRegular():
		return repo.TypeFile, true
	case m&os.ModeSymlink != 0:
		return repo.TypeSymlink, true
	}
	return "", false
}

// modeBits converts os.FileMode to the manifest's 07777 bits.
func modeBits(m os.FileMode) uint32 {
	bits := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits
}
