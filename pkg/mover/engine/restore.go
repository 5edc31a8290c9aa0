package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"example.com/backup-operator/pkg/mover/chunker"
	"example.com/backup-operator/pkg/mover/repo"
	"example.com/backup-operator/pkg/mover/report"
)

// RestoreMode says what happens to target files the snapshot lacks.
type RestoreMode string

const (
	// Merge overwrites what differs and keeps everything else.
	Merge RestoreMode = "merge"
	// Mirror also deletes what the snapshot lacks.
	Mirror RestoreMode = "mirror"
)

// RestoreOptions configure Restore.
type RestoreOptions struct {
	Snapshot repo.ID
	Target   string
	Mode     RestoreMode
	// DryRun computes the changes and touches nothing.
	DryRun bool
	// Paths limits the restore to these files and directories of the
	// snapshot (see CheckPaths), each restored to the same path beneath
	// Target with everything beneath it; empty: everything. Mirror deletes
	// only beneath them, and the result counts and lists only what changes
	// beneath them, plus the missing parent directories created to reach
	// them (with the snapshot's metadata). Existing parents, the target's top
	// directory among them, are left as they are. A path the snapshot does
	// not hold is an error before anything is written.
	Paths []string
	// MaxPaths bounds the changed paths listed in the result (0: 1000).
	MaxPaths int
	Progress func(report.Progress)
	Workers  int
}

// RestoreResult describes what a restore changed (or, for a dry run, would change).
type RestoreResult struct {
	Snapshot string `json:"snapshot"`
	Mode     string `json:"mode"`
	DryRun   bool   `json:"dryRun"`
	// Selection is RestoreOptions.Paths in walk order; empty: everything.
	Selection  []string `json:"selection,omitempty"`
	Creates    int64    `json:"creates"`
	Overwrites int64    `json:"overwrites"`
	Deletes    int64    `json:"deletes"`
	Unchanged  int64    `json:"unchanged"`
	// Paths lists changes as "+ path" (create), "~ path" (overwrite) and
	// "- path" (delete), in walk order, up to MaxPaths.
	Paths     []string `json:"paths"`
	Truncated bool     `json:"truncated,omitempty"`
	// FilesWritten and BytesWritten count the data written.
	FilesWritten int64 `json:"filesWritten"`
	BytesWritten int64 `json:"bytesWritten"`
	// Verified is true when every byte written was checked against its SHA-256.
	Verified bool `json:"verified"`
	// XattrsSkipped counts extended attributes the target refused to take
	// (a filesystem without them, or too few privileges); XattrWarning names
	// the first. The files' data is restored regardless.
	XattrsSkipped int64  `json:"xattrsSkipped,omitempty"`
	XattrWarning  string `json:"xattrWarning,omitempty"`
	// OwnersNotPreserved counts entries restored by a mover that does not run
	// as root (a namespace that enforces Pod Security "restricted") whose
	// recorded owner or group is not the mover's: they belong to the mover's
	// user and group now; and existing entries another user owns, whose mode
	// and times the mover may not set.
	OwnersNotPreserved int64 `json:"ownersNotPreserved,omitempty"`
}

func (res *RestoreResult) note(kind byte, path string, max int) {
	switch kind {
	case '+':
		res.Creates++
	case '~':
		res.Overwrites++
	case '-':
		res.Deletes++
	}
	if len(res.Paths) < max {
		res.Paths = append(res.Paths, string(kind)+" "+path)
	} else {
		res.Truncated = true
	}
}

type restorer struct {
	r      *repo.Repo
	o      RestoreOptions
	root   string
	rootFD int
	asRoot bool
	uid    int // the mover's effective user and group
	gid    int
	res    *RestoreResult
	max    int
	sel    *selection // nil: everything
	// rootCreated: the target's top directory did not exist before this
	// restore, so it takes the snapshot's metadata even when paths are selected.
	rootCreated bool
	c           counters
	zeros       []byte
	dirs        []dirMeta // directories whose metadata is applied last, children first
	links       []*repo.Entry
	groups      map[uint64]string // hard-link group → first restored path
	files       chan fileWrite
	wg          sync.WaitGroup
	errOnce     sync.Once
	err         error
	failed      atomic.Bool
	mu          sync.Mutex
}

// fileWrite is one file for the writers; replace is set when a file exists
// at the path and must stay intact until the new content is complete.
// Its first planned chunks, planRaw plaintext bytes, are planned reads
// (repo.PlanBlobs), and its first read chunks have been read. (A chunk
// whose bytes were fetched but failed to decode is withdrawn as unread,
// after its windows counted the read: only a failing restore does so, and
// then a window may be retired early, never leaked.)
type fileWrite struct {
	entry   *repo.Entry
	replace bool
	planned int
	planRaw int64
	read    int
}

// planAhead is how far ahead of the data written a restore plans its reads
// (repo.PlanBlobs), in plaintext bytes: for a file, from when it is handed
// to a writer, and then ahead of its writer as it goes.
const planAhead = 32 << 20

type dirMeta struct {
	path  string
	entry repo.Entry
}

// Restore makes Target match the snapshot (see RestoreMode), verifying every
// byte it writes, and never writing or deleting outside Target: every path is
// resolved beneath Target by the kernel (openat2 with RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS), and the manifest itself is checked for escapes.
func Restore(ctx context.Context, r *repo.Repo, o RestoreOptions) (*RestoreResult, error) {
	if o.Mode == "" {
		o.Mode = Merge
	}
	if o.Mode != Merge && o.Mode != Mirror {
		return nil, fmt.Errorf("unknown restore mode %q: use merge or mirror", o.Mode)
	}
	sel, err := newSelection(o.Paths)
	if err != nil {
		return nil, err
	}
	lock, err := r.LockContext(ctx, repo.Shared, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	if err := r.LoadIndex(); err != nil {
		return nil, err
	}
	snap, err := r.LoadSnapshot(o.Snapshot)
	if err != nil {
		return nil, err
	}
	filesTotal, bytesTotal := snap.Totals.Files, snap.Totals.Bytes
	if sel != nil {
		// Before anything is written: every path is in the snapshot, and
		// the target has no file where one of their parents must go.
		if filesTotal, bytesTotal, err = scanSelection(r, snap, sel); err != nil {
			return nil, err
		}
		if err := sel.checkTargetAncestors(o.Target); err != nil {
			return nil, err
		}
	}
	manifest, err := r.OpenManifest(snap.Manifest)
	if err != nil {
		return nil, err
	}
	defer manifest.Close()

	rootCreated := false
	if !o.DryRun {
		if _, err := os.Lstat(o.Target); errors.Is(err, os.ErrNotExist) {
			rootCreated = true
		}
		if err := os.MkdirAll(o.Target, 0o755); err != nil {
			return nil, err
		}
	}
	res := &RestoreResult{Snapshot: snap.ID.String(), Mode: string(o.Mode), DryRun: o.DryRun, Paths: []string{}}
	rs := &restorer{r: r, o: o, root: o.Target, asRoot: os.Geteuid() == 0, uid: os.Geteuid(), gid: os.Getegid(), res: res, max: o.MaxPaths,
		zeros: make([]byte, r.Config.Chunker.Max), groups: map[uint64]string{}, rootFD: -1, sel: sel, rootCreated: rootCreated}
	if sel != nil {
		res.Selection = sel.sorted()
	}
	if rs.max == 0 {
		rs.max = 1000
	}
	rs.c.bytesTotal.Store(bytesTotal)
	rs.c.filesTotal.Store(filesTotal)
	if fd, err := unix.Open(o.Target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		rs.rootFD = fd
		defer unix.Close(fd)
	} else if !o.DryRun || !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("opening restore target %s: %w", o.Target, err)
	}

	workers := o.Workers
	if workers <= 0 {
		workers = repo.CPUs * 2
	}
	rs.files = make(chan fileWrite, workers*4)
	for i := 0; i < workers; i++ {
		rs.wg.Add(1)
		go rs.fileWorker()
	}
	stop := reportProgress(ctx, &rs.c, o.Progress)
	err = rs.run(ctx, manifest)
	close(rs.files)
	rs.wg.Wait()
	stop()
	if err == nil {
		err = rs.err
	}
	if err == nil && !o.DryRun {
		err = rs.finish()
	}
	if err != nil {
		return res, err
	}
	res.Verified = !o.DryRun
	return res, nil
}

func (rs *restorer) fail(err error) {
	rs.errOnce.Do(func() { rs.err = err; rs.failed.Store(true) })
}

// scanSelection reads the manifest as far as the selection reaches, before
// a restore of selected paths writes anything: it fails naming every
// selected path the snapshot does not hold, and otherwise returns the files
// and bytes at and beneath the selected paths (the restore's totals). No
// file content is read.
func scanSelection(r *repo.Repo, snap *repo.Snapshot, sel *selection) (files, bytes int64, err error) {
	m, err := r.OpenManifest(snap.Manifest)
	if err != nil {
		return 0, 0, err
	}
	defer m.Close()
	found := map[string]bool{}
scan:
	for {
		e, err := m.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		switch sel.classify(e.Path) {
		case selected:
			found[e.Path] = found[e.Path] || sel.paths[e.Path]
			if e.Type == repo.TypeFile {
				files++
				bytes += e.Size
			}
		case past:
			break scan
		}
	}
	var missing []string
	for _, p := range sel.sorted() {
		if !found[p] {
			missing = append(missing, fmt.Sprintf("%q", p))
		}
	}
	if len(missing) > 0 {
		return 0, 0, fmt.Errorf("snapshot %s holds no %s; nothing was written. Its paths are listed by backup-mover ls --snapshot %s",
			snap.ID.Short(), strings.Join(missing, ", "), snap.ID.Short())
	}
	return files, bytes, nil
}

// nextEntry returns the next manifest entry a restore handles, with its
// class: with a selection, only selected paths and their parents; entries
// outside it are passed over (their content is never read), and the
// manifest is not read past the last selected path.
func (rs *restorer) nextEntry(manifest *repo.ManifestReader) (*repo.Entry, pathClass, error) {
	for {
		m, err := manifest.Next()
		if err != nil || rs.sel == nil {
			return m, selected, err
		}
		switch c := rs.sel.classify(m.Path); c {
		case selected, ancestor:
			return m, c, nil
		case past:
			return nil, past, io.EOF
		}
	}
}

// run walks the manifest beside the target, both in walk order. With a
// selection, the target's directories outside it are not entered, and
// nothing outside it is compared, written or deleted.
func (rs *restorer) run(ctx context.Context, manifest *repo.ManifestReader) error {
	var tw *walker
	var t *node
	if _, err := os.Lstat(rs.root); err == nil {
		w, err := newWalker(rs.root, true)
		if err != nil {
			return err
		}
		tw, t = w, w.first()
	}
	nextT := func() error {
		for {
			n, err := tw.next()
			if err == io.EOF {
				t = nil
				return nil
			}
			if err == nil && rs.sel != nil {
				switch rs.sel.classify(n.path) {
				case outside:
					if n.info.IsDir() {
						tw.skip()
					}
					continue
				case past:
					t = nil
					return nil
				}
			}
			t = n
			return err
		}
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if rs.failed.Load() {
			return nil // the worker's error is returned by Restore
		}
		m, class, err := rs.nextEntry(manifest)
		if err == io.EOF {
			m = nil
		} else if err != nil {
			return err
		}
		// Target entries before m are not in the snapshot.
		for t != nil && (m == nil || repo.ComparePaths(t.path, m.Path) < 0) {
			if t.info.IsDir() {
				tw.skip()
			}
			if rs.o.Mode == Mirror {
				rs.res.note('-', t.path, rs.max)
				if !rs.o.DryRun {
					if err := rs.remove(t.path); err != nil {
						return err
					}
				}
			}
			if err := nextT(); err != nil {
				return err
			}
		}
		if m == nil {
			return nil
		}
		var existing *node
		if t != nil && t.path == m.Path {
			existing = t
		}
		var descend bool
		if class == ancestor {
			descend, err = rs.applyAncestor(m, existing)
		} else {
			descend, err = rs.apply(m, existing)
		}
		if err != nil {
			return err
		}
		if existing != nil {
			if existing.info.IsDir() && !descend {
				tw.skip()
			}
			if err := nextT(); err != nil {
				return err
			}
		}
	}
}

// apply restores one entry; existing is the target's entry at the same path.
// It reports whether the walk should descend into an existing directory.
func (rs *restorer) apply(m *repo.Entry, existing *node) (bool, error) {
	if m.Type == repo.TypeFile {
		rs.c.filesDone.Add(1)
	}
	kind := byte('+')
	// metaOnly: an existing file with the snapshot's content whose metadata
	// differs is repaired in place, not rewritten. Not for hard links, whose
	// inode other paths share.
	metaOnly := false
	if existing != nil {
		same, contentSame, err := rs.same(m, existing)
		if err != nil {
			return false, err
		}
		metaOnly = contentSame && m.Type == repo.TypeFile && m.LinkGroup == 0 && existing.stat.Nlink == 1
		if same {
			rs.res.Unchanged++
			rs.c.bytesDone.Add(m.Size)
			if m.Type == repo.TypeDir {
				rs.dirs = append(rs.dirs, dirMeta{path: m.Path, entry: *m})
			}
			if m.LinkGroup != 0 {
				if _, ok := rs.groups[m.LinkGroup]; !ok {
					rs.groups[m.LinkGroup] = m.Path
				}
			}
			return true, nil
		}
		kind = '~'
	}
	if m.Path != "." {
		rs.res.note(kind, m.Path, rs.max)
	} else if kind == '~' {
		rs.res.note(kind, ".", rs.max)
	}
	if rs.o.DryRun {
		return m.Type == repo.TypeDir && existing != nil && existing.info.IsDir(), nil
	}
	if metaOnly {
		rs.c.bytesDone.Add(m.Size)
		return false, rs.at(m.Path, func(dirfd int, base string) error {
			fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return rs.fileMeta(fd, m)
		})
	}
	// Replace an entry of another type (a directory where the snapshot has a
	// file, a symlink where it has a directory, ...).
	if existing != nil {
		et, _ := entryType(existing.info.Mode())
		if et != m.Type || (et == repo.TypeSymlink) || (m.LinkGroup != 0 && rs.groups[m.LinkGroup] != "") {
			if m.Path == "." {
				return false, errors.New("restore target root is not a directory")
			}
			if err := rs.remove(m.Path); err != nil {
				return false, err
			}
			existing = nil
		}
	}
	switch m.Type {
	case repo.TypeDir:
		if existing == nil && m.Path != "." {
			if err := rs.at(m.Path, func(dirfd int, base string) error { return unix.Mkdirat(dirfd, base, 0o700) }); err != nil {
				return false, err
			}
		}
		rs.dirs = append(rs.dirs, dirMeta{path: m.Path, entry: *m})
		return existing != nil, nil
	case repo.TypeSymlink:
		return false, rs.at(m.Path, func(dirfd int, base string) error {
			if err := unix.Symlinkat(m.Target, dirfd, base); err != nil {
				return err
			}
			return rs.setMeta(dirfd, base, m, true)
		})
	default:
		if m.LinkGroup != 0 {
			if _, ok := rs.groups[m.LinkGroup]; ok {
				rs.links = append(rs.links, m) // linked to the first member in finish
				return false, nil
			}
			rs.groups[m.LinkGroup] = m.Path
		}
		fw := fileWrite{entry: m, replace: existing != nil}
		fw.planned, fw.planRaw = rs.r.PlanBlobs(m.Chunks, planAhead)
		rs.files <- fw
		return false, nil
	}
}

// applyAncestor handles a directory that holds a selected path. It is not
// selected itself: an existing one is entered and left as it is, metadata
// included; a missing one is created (and listed as created), with the
// snapshot's metadata. It reports whether the walk should descend.
func (rs *restorer) applyAncestor(m *repo.Entry, existing *node) (bool, error) {
	if existing != nil {
		if !existing.info.IsDir() {
			// checkTargetAncestors refused this before anything was written;
			// the target changed since.
			return false, fmt.Errorf("the target has no directory at %q, which holds selected paths: move or remove what is there, or restore %q instead", m.Path, m.Path)
		}
		if m.Path == "." && rs.rootCreated && !rs.o.DryRun {
			rs.dirs = append(rs.dirs, dirMeta{path: m.Path, entry: *m})
		}
		return true, nil
	}
	if m.Path == "." {
		return false, nil // a dry run into a target that does not exist
	}
	rs.res.note('+', m.Path, rs.max)
	if rs.o.DryRun {
		return false, nil
	}
	if err := rs.at(m.Path, func(dirfd int, base string) error { return unix.Mkdirat(dirfd, base, 0o700) }); err != nil {
		return false, err
	}
	rs.dirs = append(rs.dirs, dirMeta{path: m.Path, entry: *m})
	return false, nil
}

// same reports whether the target entry already equals the snapshot entry,
// and, for a file, whether its content does, comparing it by re-chunking (so
// a corrupted file of unchanged size and time is found).
func (rs *restorer) same(m *repo.Entry, n *node) (same, contentSame bool, err error) {
	t, ok := entryType(n.info.Mode())
	if !ok || t != m.Type {
		return false, false, nil
	}
	metaSame := modeBits(n.info.Mode()) == m.Mode && (!rs.asRoot || (n.stat.Uid == m.UID && n.stat.Gid == m.GID)) &&
		xattrsEqual(m.Xattrs, n.xattrs)
	switch t {
	case repo.TypeDir:
		return metaSame, false, nil
	case repo.TypeSymlink:
		target, err := os.Readlink(filepath.Join(rs.root, filepath.FromSlash(m.Path)))
		return err == nil && target == m.Target && (!rs.asRoot || (n.stat.Uid == m.UID && n.stat.Gid == m.GID)), false, nil
	}
	if n.info.Size() != m.Size {
		return false, false, nil
	}
	metaSame = metaSame && n.info.ModTime().UnixNano() == m.MTime
	if m.LinkGroup != 0 {
		if first, ok := rs.groups[m.LinkGroup]; ok {
			var st unix.Stat_t
			err := unix.Lstat(filepath.Join(rs.root, filepath.FromSlash(first)), &st)
			return metaSame && err == nil && sameInode(&st, n.stat), false, nil
		}
	}
	contentSame = rs.sameContent(m)
	return contentSame && metaSame, contentSame, nil
}

// sameContent re-chunks the target file at m.Path and compares its chunks
// with the snapshot's.
func (rs *restorer) sameContent(m *repo.Entry) bool {
	f, err := os.Open(filepath.Join(rs.root, filepath.FromSlash(m.Path)))
	if err != nil {
		return false
	}
	defer f.Close()
	ch := chunker.New(f, rs.r.Config.Chunker, nil)
	for i := 0; ; i++ {
		data, err := ch.Next()
		if err == io.EOF {
			return i == len(m.Chunks)
		}
		if err != nil || i >= len(m.Chunks) || rs.r.BlobID(data) != m.Chunks[i] {
			return false
		}
	}
}

// at runs fn with a directory descriptor for the parent of rel, resolved by
// the kernel strictly beneath the target root without following any symlink.
func (rs *restorer) at(rel string, fn func(dirfd int, base string) error) error {
	parent, base := repo.Parent(rel), filepath.Base(rel)
	if rel == "." {
		parent, base = ".", "."
	}
	fd, err := unix.Openat2(rs.rootFD, parent, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("restore of %q refused: its parent directory cannot be opened beneath the target without following a symlink: %w", rel, err)
	}
	defer unix.Close(fd)
	if err := fn(fd, base); err != nil {
		return fmt.Errorf("restoring %q: %w", rel, err)
	}
	return nil
}

// remove deletes rel, and all it holds if it is a directory, beneath the
// target: its parent is resolved like a write's (see at), and the tree below
// through directory descriptors, so a symlink swapped in for a directory
// since the walk saw it is removed, never followed.
func (rs *restorer) remove(rel string) error {
	return rs.at(rel, removeAt)
}

// removeAt deletes name in the directory dirfd, and for a directory all it
// holds, opening each directory with O_NOFOLLOW relative to its parent.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return err
	}
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		d := os.NewFile(uintptr(fd), name)
		names, err := d.Readdirnames(1024)
		if err == io.EOF {
			err = nil
		}
		for _, n := range names {
			if err == nil {
				err = removeAt(fd, n)
			}
		}
		d.Close()
		if err != nil {
			return err
		}
		if len(names) < 1024 {
			break
		}
		// Removing entries may reorder a directory: list it afresh.
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return err
	}
	return nil
}

// metaKeeper tracks, for one entry restored by a mover that is not root,
// whether the entry keeps something other than its recorded metadata: an
// owner or group not the mover's, or (EPERM on an existing entry another user
// owns, the target's top directory typically) its mode and times. Counted
// once per entry in OwnersNotPreserved; as root it changes nothing.
type metaKeeper struct {
	rs   *restorer
	lost bool
}

func (rs *restorer) keeper(m *repo.Entry) metaKeeper {
	return metaKeeper{rs: rs, lost: !rs.asRoot && (int(m.UID) != rs.uid || int(m.GID) != rs.gid)}
}

// forgive turns EPERM into a counted loss for a mover that is not root.
func (k *metaKeeper) forgive(err error) error {
	if err == unix.EPERM && !k.rs.asRoot {
		k.lost = true
		return nil
	}
	return err
}

// done counts the entry if it lost anything.
func (k *metaKeeper) done() {
	if k.lost {
		k.rs.mu.Lock()
		k.rs.res.OwnersNotPreserved++
		k.rs.mu.Unlock()
	}
}

func (rs *restorer) setMeta(dirfd int, base string, m *repo.Entry, symlink bool) error {
	k := rs.keeper(m)
	defer k.done()
	if rs.asRoot {
		if err := unix.Fchownat(dirfd, base, int(m.UID), int(m.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if !symlink {
		if err := k.forgive(unix.Fchmodat(dirfd, base, m.Mode, 0)); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(m.MTime), unix.NsecToTimespec(m.MTime)}
	return k.forgive(unix.UtimesNanoAt(dirfd, base, ts, unix.AT_SYMLINK_NOFOLLOW))
}

var tmpCounter atomic.Uint64

func (rs *restorer) fileWorker() {
	defer rs.wg.Done()
	buf := make([]byte, 0, rs.r.Config.Chunker.Max)
	for fw := range rs.files {
		if !rs.failed.Load() {
			m := fw.entry
			if err := rs.at(m.Path, func(dirfd int, base string) error { return rs.writeFile(dirfd, base, &fw, &buf) }); err != nil {
				rs.fail(err)
			}
		}
		// Reads planned and not made (a file skipped or failed) are
		// withdrawn, or their windows would stay held.
		if fw.read < fw.planned {
			rs.r.UnplanBlobs(fw.entry.Chunks[fw.read:fw.planned])
		}
	}
}

// writeFile writes a file from verified chunks. A file that replaces an
// existing one is written beside it and renamed into place, so a failure
// leaves the old file untouched; a new file is written in place and removed
// on failure.
func (rs *restorer) writeFile(dirfd int, base string, fw *fileWrite, buf *[]byte) error {
	m, replace := fw.entry, fw.replace
	name := base
	if replace {
		// A unique name: two long names may share any prefix.
		name = fmt.Sprintf(".backup-mover-%d-%x", os.Getpid(), tmpCounter.Add(1))
	}
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	// A large file goes to the disk with O_DIRECT (directWriter).
	var dw *directWriter
	if m.Size >= directMinSize {
		dw = newDirectWriter(f)
	}
	ok := false
	defer func() {
		if dw != nil {
			dw.close() // its writes end before the descriptor closes
		}
		f.Close()
		if !ok {
			_ = unix.Unlinkat(dirfd, name, 0)
		}
	}()
	var off, written int64
	for i, id := range m.Chunks {
		if fw.planned < len(m.Chunks) && fw.planRaw-off < planAhead/2 {
			n, raw := rs.r.PlanBlobs(m.Chunks[fw.planned:], planAhead-(fw.planRaw-off))
			fw.planned += n
			fw.planRaw += raw
		}
		data, err := rs.r.ReadBlob(id, *buf)
		if err != nil {
			return err
		}
		fw.read = i + 1
		if cap(data) > cap(*buf) {
			*buf = data[:0]
		}
		// All-zero chunks become holes, so sparse files stay sparse.
		if !bytes.Equal(data, rs.zeros[:len(data)]) {
			if dw != nil {
				err = dw.writeAt(data, off)
			} else {
				_, err = f.WriteAt(data, off)
			}
			if err != nil {
				return err
			}
			written = off + int64(len(data))
		}
		off += int64(len(data))
		rs.c.bytesDone.Add(int64(len(data)))
	}
	if dw != nil {
		err := dw.close()
		dw = nil
		if err != nil {
			return err
		}
	}
	if off != m.Size {
		return fmt.Errorf("snapshot entry %q: chunks hold %d bytes, size says %d", m.Path, off, m.Size)
	}
	if written != off {
		if err := f.Truncate(off); err != nil {
			return err
		}
	}
	if err := rs.fileMeta(fd, m); err != nil {
		return err
	}
	if replace {
		if err := unix.Renameat(dirfd, name, dirfd, base); err != nil {
			return err
		}
	}
	ok = true
	rs.mu.Lock()
	rs.res.FilesWritten++
	rs.res.BytesWritten += off
	rs.mu.Unlock()
	return nil
}

// fileMeta gives the open file fd the snapshot entry's owner, mode, extended
// attributes and times, through the descriptor (no second path lookup). The
// owner goes first: chown clears setuid and setgid bits.
func (rs *restorer) fileMeta(fd int, m *repo.Entry) error {
	k := rs.keeper(m)
	defer k.done()
	if rs.asRoot {
		if err := unix.Fchown(fd, int(m.UID), int(m.GID)); err != nil {
			return err
		}
	}
	if err := k.forgive(unix.Fchmod(fd, m.Mode)); err != nil {
		return err
	}
	// What the file has: nothing but a default ACL of its directory gave it,
	// for a new file.
	have, err := fdXattrs(fd)
	if err != nil {
		return err
	}
	if err := rs.setXattrs(fd, m, have); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(m.MTime), unix.NsecToTimespec(m.MTime)}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		return k.forgive(unix.Futimes(fd, []unix.Timeval{unix.NsecToTimeval(m.MTime), unix.NsecToTimeval(m.MTime)}))
	}
	return nil
}

// finish links hard-link members, applies directory metadata children first,
// and flushes everything to disk.
func (rs *restorer) finish() error {
	for _, m := range rs.links {
		first := rs.groups[m.LinkGroup]
		err := rs.at(m.Path, func(dirfd int, base string) error {
			return rs.at(first, func(fdir int, fbase string) error {
				return unix.Linkat(fdir, fbase, dirfd, base, 0)
			})
		})
		if err != nil {
			return err
		}
	}
	sort.SliceStable(rs.dirs, func(i, j int) bool { return repo.ComparePaths(rs.dirs[i].path, rs.dirs[j].path) > 0 })
	for _, d := range rs.dirs {
		d := d
		if err := rs.at(d.path, func(dirfd int, base string) error {
			if err := rs.dirXattrs(dirfd, base, &d.entry); err != nil {
				return err
			}
			return rs.setMeta(dirfd, base, &d.entry, false)
		}); err != nil {
			return err
		}
	}
	return unix.Syncfs(rs.rootFD)
}
