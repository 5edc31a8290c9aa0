// Package engine implements the data mover's operations on a repository:
// backup, restore, diff, verify, ls and prune.
package engine

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"example.com/backup-operator/pkg/mover/repo"
)

// node is one entry of a directory walk.
type node struct {
	path string // relative, slash-separated; "." is the root
	info os.FileInfo
	stat *unix.Stat_t
}

// walker walks a tree depth-first with names sorted, in repo.ComparePaths
// order. It lists one directory at a time, with an lstat of each entry
// relative to the directory's descriptor; memory grows with the depth and
// the widest directory, not with the tree. With prefetch, a few goroutines
// list the directories the walk will enter next while the caller works, so
// the disk's latency for cold metadata overlaps.
type walker struct {
	root  string
	stack []dirFrame
	// pending is the directory emitted last; its children are read on the
	// next call unless skip() is called first.
	pending    *node
	pendingDir *dirLoad
	pf         *prefetcher
}

type dirFrame struct {
	path string
	kids []child
}

// child is one entry of a listed directory.
type child struct {
	name string
	st   unix.Stat_t
	load *dirLoad // set for directories while prefetching
}

func newWalker(root string) (*walker, error) {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: root, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, &os.PathError{Op: "walk", Path: root, Err: errors.New("not a directory")}
	}
	w := &walker{root: root}
	si := &statInfo{name: filepath.Base(root), st: st}
	w.pending = &node{path: ".", info: si, stat: &si.st}
	return w, nil
}

// newPrefetchingWalker is newWalker with directories listed ahead by
// background goroutines. Use it only where the walk's caller does not change
// the tree (backup), and call close when done.
func newPrefetchingWalker(root string) (*walker, error) {
	w, err := newWalker(root)
	if err != nil {
		return nil, err
	}
	w.pf = newPrefetcher(root)
	return w, nil
}

// close stops the prefetching goroutines.
func (w *walker) close() {
	if w.pf != nil {
		w.pf.close()
	}
}

// first returns the root node; call once before next.
func (w *walker) first() *node { return w.pending }

// skip tells the walker not to descend into the directory it returned last.
func (w *walker) skip() {
	if w.pendingDir != nil {
		w.pf.discard(w.pendingDir)
	}
	w.pending, w.pendingDir = nil, nil
}

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
		var kids []child
		var err error
		if w.pendingDir != nil {
			kids, err = w.pf.wait(w.pendingDir)
		} else {
			kids, err = listDir(w.abs(p.path))
		}
		w.pending, w.pendingDir = nil, nil
		if err != nil {
			return nil, err
		}
		if w.pf != nil {
			w.pf.schedule(p.path, kids)
		}
		w.stack = append(w.stack, dirFrame{path: p.path, kids: kids})
	}
	for len(w.stack) > 0 {
		top := &w.stack[len(w.stack)-1]
		if len(top.kids) == 0 {
			w.stack = w.stack[:len(w.stack)-1]
			continue
		}
		k := &top.kids[0]
		top.kids = top.kids[1:]
		rel := k.name
		if top.path != "." {
			rel = top.path + "/" + k.name
		}
		si := &statInfo{name: k.name, st: k.st}
		n := &node{path: rel, info: si, stat: &si.st}
		if n.info.IsDir() {
			w.pending, w.pendingDir = n, k.load
		}
		return n, nil
	}
	return nil, io.EOF
}

// listDir reads a directory's names, sorted, and lstats each relative to the
// directory's descriptor (no path walk per entry).
func listDir(abs string) ([]child, error) {
	f, err := os.Open(abs)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	kids := make([]child, 0, len(names))
	var statErr error
	err = sc.Control(func(fd uintptr) {
		for _, name := range names {
			kids = append(kids, child{name: name})
			k := &kids[len(kids)-1]
			err := unix.Fstatat(int(fd), name, &k.st, unix.AT_SYMLINK_NOFOLLOW)
			if err == unix.ENOENT {
				kids = kids[:len(kids)-1]
				continue
			}
			if err != nil {
				statErr = &os.PathError{Op: "lstat", Path: filepath.Join(abs, name), Err: err}
				return
			}
		}
	})
	if err == nil {
		err = statErr
	}
	return kids, err
}

// statInfo is an os.FileInfo for an lstat result.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Sec, s.st.Mtim.Nsec) }
func (s *statInfo) IsDir() bool        { return s.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (s *statInfo) Sys() any           { return &s.st }

func (s *statInfo) Mode() os.FileMode {
	m := os.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= os.ModeDir
	case unix.S_IFLNK:
		m |= os.ModeSymlink
	case unix.S_IFIFO:
		m |= os.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= os.ModeSocket
	case unix.S_IFBLK:
		m |= os.ModeDevice
	case unix.S_IFCHR:
		m |= os.ModeDevice | os.ModeCharDevice
	}
	if s.st.Mode&unix.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if s.st.Mode&unix.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if s.st.Mode&unix.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}

// sameInode reports whether two lstat results are one file.
func sameInode(a, b *unix.Stat_t) bool { return a.Dev == b.Dev && a.Ino == b.Ino }

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
