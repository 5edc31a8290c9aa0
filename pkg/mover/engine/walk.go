// Package engine implements the data mover's operations on a repository:
// backup, restore, diff, verify, ls and prune.
package engine

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"example.com/backup-operator/pkg/mover/repo"
)

// node is one entry of a directory walk.
type node struct {
	path   string // relative, slash-separated; "." is the root
	info   os.FileInfo
	stat   *unix.Stat_t
	xattrs []repo.Xattr // of files and directories, when the walk reads them
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
	// pendingKids is the listing of pending when loaded is set: a walker
	// that notes vanished entries lists a directory before it returns it.
	pendingKids []child
	loaded      bool
	pf          *prefetcher
	pre         *Prelisting // listings made before the walk, or nil
	xattrs      bool
	// noteVanished makes the walker go on past entries that vanish after
	// they were listed, a directory with its content, and keep their paths
	// for takeVanished. Without it, a directory that cannot be listed is an
	// error and other vanished entries are skipped silently.
	noteVanished  bool
	vanishedPaths []string
	hook          func(op, path string) // testHook, for the backup's walk
}

type dirFrame struct {
	path string
	kids []child
}

// child is one entry of a listed directory.
type child struct {
	name   string
	st     lstat
	xattrs []repo.Xattr
	load   *dirLoad // set for directories while prefetching
	gone   bool     // listed, but gone before its lstat
}

// testHook, set only by tests, is called with an absolute path at the points
// where the backup's source may change under it: "list" before a directory
// is opened to be listed, "lstat" before a listed name is lstat'ed, "open"
// before a file is opened to be read and "read" once it is open.
var testHook func(op, path string)

// vanished reports whether err says that an entry listed earlier is gone:
// removed (ENOENT), or a directory on its path replaced by something else
// (ENOTDIR).
func vanished(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}

// With xattrs, it reads the extended attributes of files and directories.
func newWalker(root string, xattrs bool) (*walker, error) {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: root, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, &os.PathError{Op: "walk", Path: root, Err: errors.New("not a directory")}
	}
	w := &walker{root: root, xattrs: xattrs}
	si := &statInfo{name: filepath.Base(root), st: st}
	w.pending = &node{path: ".", info: si, stat: &si.st}
	if xattrs {
		var err error
		if w.pending.xattrs, err = readXattrs(root); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// newPrefetchingWalker is newWalker with directories listed ahead by
// background goroutines, for a backup. Use it only where the walk's caller
// does not change the tree, and call close when done. It reads extended
// attributes, and notes the entries that vanish (see takeVanished). The
// listings pre made (a stopped Prelisting of root, or nil) are used first.
func newPrefetchingWalker(root string, pre *Prelisting) (*walker, error) {
	w, err := newWalker(root, true)
	if err != nil {
		return nil, err
	}
	w.noteVanished, w.hook, w.pre = true, testHook, pre
	w.pf = newPrefetcher(root, w.hook, pre)
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
	w.pending, w.pendingDir, w.pendingKids, w.loaded = nil, nil, nil, false
}

// takeVanished returns the paths of the entries that vanished after they
// were listed, in walk order, since it was last called: each precedes the
// node next returned last. They are noted only by a walker made by
// newPrefetchingWalker.
func (w *walker) takeVanished() []string {
	v := w.vanishedPaths
	w.vanishedPaths = nil
	return v
}

// load lists the pending directory.
func (w *walker) load() ([]child, error) {
	if w.loaded {
		return w.pendingKids, nil
	}
	d := w.pendingDir
	w.pendingDir = nil
	if d != nil {
		return w.pf.wait(d)
	}
	if kids, ok := w.pre.take(w.pending.path); ok {
		return kids, nil
	}
	return listDir(w.abs(w.pending.path), w.xattrs, w.hook)
}

func (w *walker) abs(rel string) string {
	if rel == "." {
		return w.root
	}
	return filepath.Join(w.root, filepath.FromSlash(rel))
}

// next returns the next node, or io.EOF. Entries that vanish between listing
// and lstat are skipped (the tree may change while it is walked); so are
// directories that vanish before they are listed, when the walker notes
// vanished entries.
func (w *walker) next() (*node, error) {
	if p := w.pending; p != nil {
		kids, err := w.load()
		w.pending, w.pendingDir, w.pendingKids, w.loaded = nil, nil, nil, false
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
		// Take the entry out of the listing: a consumed entry must not keep
		// its directory's listing (k.load) alive, or the whole tree walked
		// so far would stay in memory through the root's listing.
		kc := top.kids[0]
		top.kids[0] = child{}
		top.kids = top.kids[1:]
		k := &kc
		rel := k.name
		if top.path != "." {
			rel = top.path + "/" + k.name
		}
		if k.gone {
			if w.noteVanished {
				w.vanishedPaths = append(w.vanishedPaths, rel)
			}
			continue
		}
		si := &statInfo{name: k.name, st: k.st.full()}
		n := &node{path: rel, info: si, stat: &si.st, xattrs: k.xattrs}
		if n.info.IsDir() {
			w.pending, w.pendingDir = n, k.load
			if w.noteVanished {
				// List it now: if it is gone, it is left out with its content
				// before its entry is returned.
				kids, err := w.load()
				if err != nil {
					w.pending, w.pendingDir = nil, nil
					if vanished(err) || errors.Is(err, unix.ELOOP) { // ELOOP: replaced by a symlink
						w.vanishedPaths = append(w.vanishedPaths, rel)
						continue
					}
					return nil, err
				}
				w.pendingKids, w.loaded = kids, true
			}
		}
		return n, nil
	}
	return nil, io.EOF
}

// listDir reads a directory's names, sorted, and lstats each relative to the
// directory's descriptor (no path walk per entry); with xattrs, it also reads
// the extended attributes of files and directories. A name gone before its
// lstat is marked gone. hook is testHook or nil.
func listDir(abs string, xattrs bool, hook func(op, path string)) ([]child, error) {
	if hook != nil {
		hook("list", abs)
	}
	// O_NOFOLLOW: a directory replaced by a symlink after it was listed is
	// not followed (ELOOP), so nothing outside the tree is ever read.
	f, err := os.OpenFile(abs, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
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
	var listErr error
	err = sc.Control(func(fd uintptr) {
		for _, name := range names {
			kids = append(kids, child{name: name})
			k := &kids[len(kids)-1]
			if hook != nil {
				hook("lstat", filepath.Join(abs, name))
			}
			var st unix.Stat_t
			err := unix.Fstatat(int(fd), name, &st, unix.AT_SYMLINK_NOFOLLOW)
			if err == unix.ENOENT {
				k.gone = true
				continue
			}
			if err != nil {
				listErr = &os.PathError{Op: "lstat", Path: filepath.Join(abs, name), Err: err}
				return
			}
			k.st = compactStat(&st)
			if t := k.st.mode & unix.S_IFMT; !xattrs || t != unix.S_IFREG && t != unix.S_IFDIR {
				continue
			}
			// Most entries have no attributes: ask relative to the directory
			// first, and read by path only those that have some.
			if size, ok := xattrListSize(int(fd), name); ok && size == 0 {
				continue
			}
			if k.xattrs, listErr = readXattrs(filepath.Join(abs, name)); listErr != nil {
				return
			}
		}
	})
	if err == nil {
		err = listErr
	}
	return kids, err
}

// noListxattrat is set once the kernel (before Linux 6.13) or a seccomp
// profile refuses listxattrat.
var noListxattrat atomic.Bool

// xattrListSize returns the length of the attribute name list of name in
// dirfd, not following a symlink; ok is false when it cannot tell.
func xattrListSize(dirfd int, name string) (size int, ok bool) {
	if noListxattrat.Load() {
		return 0, false
	}
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, false
	}
	r, _, e := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), unix.AT_SYMLINK_NOFOLLOW, 0, 0, 0)
	switch e {
	case 0:
		return int(r), true
	case unix.ENOTSUP, unix.ENOENT:
		return 0, true
	case unix.ENOSYS, unix.EPERM:
		noListxattrat.Store(true)
	}
	return 0, false
}

// readXattrs returns the extended attributes of the entry at path, not
// following a symlink, sorted by name; nil when it has none, when the
// filesystem has none, or when the entry is gone (its read then finds it
// gone).
func readXattrs(path string) ([]repo.Xattr, error) {
	x, err := xattrsOf(func(b []byte) (int, error) { return unix.Llistxattr(path, b) },
		func(name string, b []byte) (int, error) { return unix.Lgetxattr(path, name, b) })
	if err != nil {
		err = &os.PathError{Op: "reading extended attributes", Path: path, Err: err}
	}
	return x, err
}

// fdXattrs is readXattrs for an open file or directory.
func fdXattrs(fd int) ([]repo.Xattr, error) {
	return xattrsOf(func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		func(name string, b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) })
}

func xattrsOf(list func([]byte) (int, error), get func(string, []byte) (int, error)) ([]repo.Xattr, error) {
	var stack [512]byte
	names, err := xattrCall(stack[:], list)
	if err == unix.ENOTSUP || err == unix.ENOENT {
		return nil, nil
	}
	if err != nil || len(names) == 0 {
		return nil, err
	}
	var out []repo.Xattr
	for _, name := range strings.Split(strings.TrimSuffix(string(names), "\x00"), "\x00") {
		value, err := xattrCall(stack[:], func(b []byte) (int, error) { return get(name, b) })
		if err == unix.ENODATA || err == unix.ENOENT { // removed meanwhile
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, repo.Xattr{Name: name, Value: value})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// xattrCall runs a list or get call with buf, asking the kernel for the size
// and growing the buffer when it is too small (the attribute may grow between
// the size query and the read).
func xattrCall(buf []byte, call func([]byte) (int, error)) ([]byte, error) {
	for {
		if len(buf) > 0 {
			n, err := call(buf)
			if err == nil {
				return append([]byte{}, buf[:n]...), nil
			}
			if err != unix.ERANGE {
				return nil, err
			}
		}
		size, err := call(nil)
		if err != nil {
			return nil, err
		}
		if size == 0 {
			return []byte{}, nil
		}
		buf = make([]byte, size+64)
	}
}

// lstat is what the walk keeps of an entry's lstat until it gets to the
// entry: a listing holds one per entry, so a directory of 100,000 entries
// costs 56 bytes each here rather than a unix.Stat_t's 144.
type lstat struct {
	dev, ino       uint64
	size           int64
	mtime, ctime   int64 // nanoseconds since the Unix epoch
	mode, uid, gid uint32
	nlink          uint32 // at most math.MaxUint32
}

func compactStat(st *unix.Stat_t) lstat {
	return lstat{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
		mode: st.Mode, uid: st.Uid, gid: st.Gid, nlink: uint32(min(uint64(st.Nlink), math.MaxUint32))}
}

// full is the unix.Stat_t of the fields kept (the others are zero).
func (l lstat) full() unix.Stat_t {
	st := unix.Stat_t{Dev: l.dev, Ino: l.ino, Size: l.size, Mtim: unix.NsecToTimespec(l.mtime), Ctim: unix.NsecToTimespec(l.ctime),
		Mode: l.mode, Uid: l.uid, Gid: l.gid}
	setNlink(&st.Nlink, l.nlink)
	return st
}

// setNlink sets a Stat_t's Nlink, whose type differs between architectures.
func setNlink[T ~uint32 | ~uint64](dst *T, n uint32) { *dst = T(n) }

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
