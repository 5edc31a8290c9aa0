package repo

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Errors of a Reader a caller may tell apart.
var (
	// ErrSnapshotNotFound: no snapshot has this ID (or prefix), or it was
	// forgotten since it was listed.
	ErrSnapshotNotFound = errors.New("snapshot does not exist")
	// ErrAmbiguousSnapshot: more than one snapshot ID starts with the prefix.
	ErrAmbiguousSnapshot = errors.New("snapshot id is ambiguous")
)

// IsNotExist reports whether err means that an object is not (or no longer)
// in the storage.
func IsNotExist(err error) bool { return notExist(err) }

// Reader reads a repository's snapshots without a lease, while backups
// publish new snapshots and a prune rewrites packs beside it (it never
// writes, so it works on a read-only mount). It loads the index once, and
// again when a read needs it:
//
//   - A blob read fails because its pack no longer exists: a prune copied
//     the blob into a new pack and deleted the old one. A prune deletes a
//     pack only once the index file naming the blob's new place is the only
//     one left (FORMAT.md, Prune: "Readers without a lease"), so the index
//     loaded after the failure finds it; the read is retried once.
//   - A blob is not in the loaded index: the snapshot was published after
//     it was loaded. Loaded again, it holds every blob of a published
//     snapshot (a backup writes its index before its snapshot).
//
// Concurrent failures share one load: a read that fails after a load that
// began after its own read started retries with that load instead. Reads
// wait while the index is loaded.
type Reader struct {
	r *Repo
	// mu is held for reading around every use of the index and for writing
	// while it is loaded.
	mu sync.RWMutex
	// gen counts completed loads of the index; guarded by mu.
	gen uint64
	// loads counts the loads made after the first.
	loads atomic.Int64

	snapMu sync.Mutex
	snaps  []ID
}

// NewReader loads r's index and its list of snapshots.
func NewReader(r *Repo) (*Reader, error) {
	x := &Reader{r: r}
	if err := x.loadIndex(); err != nil {
		return nil, fmt.Errorf("reading the repository index: %w", err)
	}
	if _, err := x.listSnapshots(); err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	return x, nil
}

// Repo is the repository read.
func (x *Reader) Repo() *Repo { return x.r }

// IndexReloads is how many times the index was loaded again after the
// first load.
func (x *Reader) IndexReloads() int64 { return x.loads.Load() }

// loadIndex loads the index; the caller holds mu for writing or is
// NewReader. An index file listed and then deleted before it was read (a
// prune replacing the index files meanwhile) makes it list them again, a
// few times.
func (x *Reader) loadIndex() error {
	var err error
	for range 3 {
		if err = x.r.LoadIndex(); err == nil || !notExist(err) {
			break
		}
	}
	if err == nil {
		x.gen++
	}
	return err
}

// reload loads the index again unless it was loaded since gen, the load
// that a failed read used.
func (x *Reader) reload(gen uint64) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.gen != gen {
		return nil
	}
	x.loads.Add(1)
	if err := x.loadIndex(); err != nil {
		return fmt.Errorf("reading the repository index again: %w", err)
	}
	return nil
}

// notIndexedError: a blob is not in the loaded index.
type notIndexedError struct{ id ID }

func (e notIndexedError) Error() string {
	return fmt.Sprintf("blob %s is referenced but missing from the repository index (run backup-mover verify)", e.id.Short())
}

// retryable reports whether a read that failed with err may succeed with
// the index loaded again.
func retryable(err error) bool {
	return errors.As(err, new(notIndexedError)) || notExist(err)
}

// ReadBlob returns a blob's plaintext, verified against its ID, like
// Repo.ReadBlob; if the blob is not in the loaded index or its pack no
// longer exists, it loads the index again and retries once. buf is reused
// when large enough.
func (x *Reader) ReadBlob(id ID, buf []byte) ([]byte, error) {
	data, gen, err := x.readBlob(id, buf)
	if err == nil || !retryable(err) {
		return data, err
	}
	if rerr := x.reload(gen); rerr != nil {
		return nil, fmt.Errorf("%v; %w", err, rerr)
	}
	data, _, err = x.readBlob(id, buf)
	return data, err
}

// readBlob reads a blob with the loaded index and returns the index's
// generation.
func (x *Reader) readBlob(id ID, buf []byte) ([]byte, uint64, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if _, ok := x.r.Lookup(id); !ok {
		return nil, x.gen, notIndexedError{id}
	}
	data, err := x.r.ReadBlob(id, buf)
	return data, x.gen, err
}

// listSnapshots lists the snapshots again and keeps the list.
func (x *Reader) listSnapshots() ([]ID, error) {
	ids, err := x.r.SnapshotIDs()
	if err != nil {
		return nil, err
	}
	x.snapMu.Lock()
	x.snaps = ids
	x.snapMu.Unlock()
	return ids, nil
}

// resolve finds the one snapshot whose ID starts with ref in ids.
func resolve(ids []ID, ref string) (ID, error) {
	var found []ID
	for _, id := range ids {
		if strings.HasPrefix(id.String(), ref) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return ID{}, fmt.Errorf("%w: %s", ErrSnapshotNotFound, ref)
	case 1:
		return found[0], nil
	default:
		return ID{}, fmt.Errorf("%w: %d snapshots start with %s; give more digits", ErrAmbiguousSnapshot, len(found), ref)
	}
}

// Snapshot reads the snapshot whose ID is ref or starts with ref (at least
// 8 lowercase hex digits). The list of snapshots is read again when ref
// matches none in the one kept (a backup may have published one since). A
// snapshot forgotten since it was listed is ErrSnapshotNotFound too.
func (x *Reader) Snapshot(ref string) (*Snapshot, error) {
	if len(ref) < 8 || len(ref) > 64 || strings.Trim(ref, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("%w: %q is not a snapshot id (8 to 64 lowercase hex digits)", ErrSnapshotNotFound, ref)
	}
	x.snapMu.Lock()
	ids := x.snaps
	x.snapMu.Unlock()
	id, err := resolve(ids, ref)
	if errors.Is(err, ErrSnapshotNotFound) {
		if ids, err = x.listSnapshots(); err != nil {
			return nil, err
		}
		id, err = resolve(ids, ref)
	}
	if err != nil {
		return nil, err
	}
	s, err := x.r.LoadSnapshot(id)
	if err != nil {
		if _, serr := x.r.Store.Stat(x.r.ctx, objectName(snapshotsDir, id)); notExist(serr) {
			return nil, fmt.Errorf("%w: %s was forgotten", ErrSnapshotNotFound, id.Short())
		}
		return nil, err
	}
	// A snapshot whose object is locked is forgotten by a tombstone.
	if _, err := x.r.Store.Stat(x.r.ctx, objectName(forgottenDir, id)); err == nil {
		return nil, fmt.Errorf("%w: %s was forgotten", ErrSnapshotNotFound, id.Short())
	} else if !notExist(err) {
		return nil, err
	}
	return s, nil
}

// forgotten reports whether a snapshot's object is gone or hidden by a
// tombstone.
func (x *Reader) forgotten(id ID) (bool, error) {
	if _, err := x.r.Store.Stat(x.r.ctx, objectName(snapshotsDir, id)); err != nil {
		if notExist(err) {
			return true, nil
		}
		return false, err
	}
	_, err := x.r.Store.Stat(x.r.ctx, objectName(forgottenDir, id))
	if err == nil {
		return true, nil
	}
	if notExist(err) {
		return false, nil
	}
	return false, err
}

// OpenManifest opens a snapshot's manifest; one deleted because the
// snapshot was forgotten meanwhile is ErrSnapshotNotFound.
func (x *Reader) OpenManifest(s *Snapshot) (*ManifestReader, error) {
	m, err := x.r.OpenManifest(s.Manifest)
	if err != nil && notExist(err) {
		if gone, serr := x.forgotten(s.ID); serr == nil && gone {
			return nil, fmt.Errorf("%w: %s was forgotten", ErrSnapshotNotFound, s.ID.Short())
		}
	}
	return m, err
}

// FileReader is the content of a file entry: an io.ReadSeeker that reads
// only the chunks a read needs, holding at most one chunk's plaintext, so
// a range of a file of any size costs the chunks it overlaps. Not safe for
// concurrent use.
type FileReader struct {
	x      *Reader
	chunks []ID
	// ends[i] is the offset just past chunk i.
	ends      []int64
	size, pos int64
	// buf holds chunk cur's plaintext; cur is -1 when it holds none.
	buf []byte
	cur int
}

// OpenFile returns the content of a file entry. It looks every chunk up in
// the index (its plaintext length places it in the file), loading the
// index again once if one is missing.
func (x *Reader) OpenFile(e *Entry) (*FileReader, error) {
	if e.Type != TypeFile {
		return nil, fmt.Errorf("%q is a %s, not a file", e.Path, e.Type)
	}
	f := &FileReader{x: x, chunks: e.Chunks, ends: make([]int64, len(e.Chunks)), size: e.Size, cur: -1}
	missing, gen := f.place()
	if missing >= 0 {
		if err := x.reload(gen); err != nil {
			return nil, err
		}
		if missing, _ = f.place(); missing >= 0 {
			return nil, notIndexedError{e.Chunks[missing]}
		}
	}
	if n := len(f.ends); (n == 0 && e.Size != 0) || (n > 0 && f.ends[n-1] != e.Size) {
		return nil, fmt.Errorf("%q is damaged: its chunks hold a different number of bytes than its size, %d", e.Path, e.Size)
	}
	return f, nil
}

// place fills f.ends from the index and returns the generation of the
// index used, and the first chunk it does not hold (-1 if none).
func (f *FileReader) place() (int, uint64) {
	f.x.mu.RLock()
	defer f.x.mu.RUnlock()
	var end int64
	for i, c := range f.chunks {
		loc, ok := f.x.r.Lookup(c)
		if !ok {
			return i, f.x.gen
		}
		end += int64(loc.RawLength)
		f.ends[i] = end
	}
	return -1, f.x.gen
}

// Size is the file's size.
func (f *FileReader) Size() int64 { return f.size }

// Read reads from the chunk at the current offset, reading it from the
// repository unless it is the one read last.
func (f *FileReader) Read(p []byte) (int, error) {
	if f.pos >= f.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	i := sort.Search(len(f.ends), func(i int) bool { return f.ends[i] > f.pos })
	if i != f.cur {
		f.cur = -1
		data, err := f.x.ReadBlob(f.chunks[i], f.buf)
		if err != nil {
			return 0, err
		}
		f.buf, f.cur = data, i
	}
	start := f.ends[i] - int64(len(f.buf))
	n := copy(p, f.buf[f.pos-start:])
	f.pos += int64(n)
	return n, nil
}

// Seek sets the offset of the next Read.
func (f *FileReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		offset += f.size
	default:
		return f.pos, fmt.Errorf("seek: invalid whence %d", whence)
	}
	if offset < 0 {
		return f.pos, errors.New("seek: negative offset")
	}
	f.pos = offset
	return offset, nil
}
