package repo

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// EntryType is the kind of a manifest entry.
type EntryType string

const (
	TypeDir     EntryType = "dir"
	TypeFile    EntryType = "file"
	TypeSymlink EntryType = "symlink"
)

// Entry is one file, directory or symlink of a snapshot.
type Entry struct {
	// Path is slash-separated and relative to the snapshot root; "." is the root.
	Path  string    `json:"path"`
	Type  EntryType `json:"type"`
	Mode  uint32    `json:"mode"` // permission bits plus setuid, setgid and sticky (os.FileMode bits)
	UID   uint32    `json:"uid"`
	GID   uint32    `json:"gid"`
	MTime int64     `json:"mtime"` // nanoseconds since the Unix epoch
	Size  int64     `json:"size,omitempty"`
	// Target is a symlink's target, stored as is (never followed by restore).
	Target string `json:"target,omitempty"`
	// LinkGroup is non-zero for regular files with several hard links: entries
	// with the same group are one inode and are restored as hard links.
	LinkGroup uint64 `json:"linkGroup,omitempty"`
	// Inode lets the next backup skip re-reading an unchanged file.
	Inode  uint64 `json:"inode,omitempty"`
	Chunks []ID   `json:"chunks,omitempty"`
	// Xattrs are the extended attributes of a file or directory (POSIX ACLs
	// among them), sorted by name.
	Xattrs []Xattr `json:"xattrs,omitempty"`
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// Limits of Linux (XATTR_NAME_MAX, XATTR_SIZE_MAX, XATTR_LIST_MAX).
const (
	maxXattrName  = 255
	maxXattrValue = 64 << 10
	maxXattrList  = 64 << 10
)

// ValidatePath refuses any path that could point outside the restore root.
func ValidatePath(p string) error {
	switch {
	case p == ".":
		return nil
	case p == "":
		return errors.New("empty path")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("absolute path %q", p)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains a NUL byte", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("path %q has an empty, '.' or '..' component", p)
		}
	}
	return nil
}

// Parent returns the parent directory of a validated path ("." for top-level entries).
func Parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}

// ComparePaths orders paths as a depth-first walk with sorted names visits
// them: component by component, so "a/b" comes before "a.b" and "." first.
func ComparePaths(a, b string) int {
	if a == b {
		return 0
	}
	if a == "." {
		return -1
	}
	if b == "." {
		return 1
	}
	for {
		ai, bi := strings.IndexByte(a, '/'), strings.IndexByte(b, '/')
		ah, bh := a, b
		if ai >= 0 {
			ah = a[:ai]
		}
		if bi >= 0 {
			bh = b[:bi]
		}
		if c := strings.Compare(ah, bh); c != 0 {
			return c
		}
		if ai < 0 || bi < 0 {
			switch {
			case ai < 0 && bi < 0:
				return 0
			case ai < 0:
				return -1
			default:
				return 1
			}
		}
		a, b = a[ai+1:], b[bi+1:]
	}
}

// validateEntry refuses an entry whose path could leave the restore root or
// whose fields contradict its type.
func validateEntry(e *Entry) error {
	if err := ValidatePath(e.Path); err != nil {
		return fmt.Errorf("manifest entry refused: %w", err)
	}
	if e.Mode&^uint32(0o7777) != 0 {
		return fmt.Errorf("manifest entry %q has mode bits outside 07777", e.Path)
	}
	switch e.Type {
	case TypeDir, TypeSymlink:
		if len(e.Chunks) != 0 || e.Size != 0 {
			return fmt.Errorf("manifest entry %q: a %s has no content", e.Path, e.Type)
		}
		if e.Type == TypeSymlink && e.Target == "" {
			return fmt.Errorf("manifest entry %q: symlink without a target", e.Path)
		}
	case TypeFile:
		if e.Size < 0 || (e.Size > 0 && len(e.Chunks) == 0) {
			return fmt.Errorf("manifest entry %q: size %d does not match its chunks", e.Path, e.Size)
		}
	default:
		return fmt.Errorf("manifest entry %q has unknown type %q", e.Path, e.Type)
	}
	if e.Path == "." && e.Type != TypeDir {
		return errors.New("manifest root is not a directory")
	}
	if len(e.Xattrs) > 0 && e.Type == TypeSymlink {
		return fmt.Errorf("manifest entry %q: a symlink's extended attributes are not kept", e.Path)
	}
	names := 0
	for i, x := range e.Xattrs {
		names += len(x.Name) + 1
		switch {
		case x.Name == "" || len(x.Name) > maxXattrName || strings.ContainsRune(x.Name, 0):
			return fmt.Errorf("manifest entry %q has an invalid extended attribute name %q", e.Path, x.Name)
		case len(x.Value) > maxXattrValue:
			return fmt.Errorf("manifest entry %q: extended attribute %q is larger than 64 KiB", e.Path, x.Name)
		case i > 0 && x.Name <= e.Xattrs[i-1].Name:
			return fmt.Errorf("manifest entry %q: extended attributes are not sorted and unique at %q", e.Path, x.Name)
		}
	}
	if names > maxXattrList {
		return fmt.Errorf("manifest entry %q: extended attribute names exceed 64 KiB", e.Path)
	}
	return nil
}

// ManifestWriter streams entries into a manifest object.
type ManifestWriter struct {
	r    *Repo
	tmp  *os.File
	h    hash.Hash
	seg  *segmentWriter // encrypted repositories only
	zw   *zstd.Encoder
	bw   *bufio.Writer
	rec  []byte
	last string
	n    int64
	// refs collects where the entries' blobs stored before this backup
	// are, when the snapshot is to be locked: their packs' locks must last
	// as long as the snapshot's, and the snapshot's own index lists them.
	refs map[ID]Location
}

// NewManifestWriter starts a manifest; entries must come in ComparePaths order.
func (r *Repo) NewManifestWriter() (*ManifestWriter, error) {
	tmp, err := r.Store.TempFile(r.ctx, manifestsDir)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	m := &ManifestWriter{r: r, tmp: tmp, h: h}
	var w io.Writer = io.MultiWriter(tmp, h)
	if r.keys != nil {
		m.seg = &segmentWriter{keys: r.keys, w: w}
		w = m.seg
	}
	if r.retention != nil {
		m.refs = map[ID]Location{}
	}
	// A 1 MiB window (the default is 8 MiB): entries compress against
	// their neighbours, and the encoder's history is an eighth of the size.
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	m.zw = zw
	m.bw = bufio.NewWriterSize(zw, 256<<10)
	m.bw.Write(manifestMagic)
	return m, nil
}

// Add appends one entry.
func (m *ManifestWriter) Add(e *Entry) error {
	if m.n > 0 && ComparePaths(m.last, e.Path) >= 0 {
		return fmt.Errorf("manifest entries out of order: %q after %q", e.Path, m.last)
	}
	m.last = e.Path
	m.n++
	if m.refs != nil {
		for _, c := range e.Chunks {
			if l, ok := m.r.Lookup(c); ok {
				m.refs[c] = l
			}
		}
	}
	m.rec = AppendEntry(m.rec[:0], e)
	var prefix [binary.MaxVarintLen64]byte
	m.bw.Write(prefix[:binary.PutUvarint(prefix[:], uint64(len(m.rec)))])
	_, err := m.bw.Write(m.rec)
	return err
}

// manifestMagic starts a manifest's plaintext; records follow, each a uvarint
// length and an entry (see AppendEntry).
var manifestMagic = []byte("BKM2")

// maxRecord bounds one manifest record (a file of 64 GiB has about 64k chunk IDs).
const maxRecord = 64 << 20

// Close makes the manifest durable and returns its ID and stored size.
func (m *ManifestWriter) Close() (ID, int64, error) {
	err := m.bw.Flush()
	if err == nil {
		err = m.zw.Close()
	}
	if err == nil && m.seg != nil {
		err = m.seg.Close()
	}
	var size int64
	if err == nil {
		size, err = m.tmp.Seek(0, io.SeekCurrent)
	}
	if err != nil {
		m.tmp.Close()
		os.Remove(m.tmp.Name())
		return ID{}, 0, err
	}
	var id ID
	copy(id[:], m.h.Sum(nil))
	if err := m.r.Store.PutFile(m.r.ctx, objectName(manifestsDir, id), m.tmp, m.r.putOptions()); err != nil {
		return ID{}, 0, err
	}
	return id, size, nil
}

// OlderBlobs are the blobs of the entries written that were stored before
// this backup, with their places, when the repository was opened with a
// retention; else nil.
func (m *ManifestWriter) OlderBlobs() map[ID]Location { return m.refs }

// Abort discards an unfinished manifest.
func (m *ManifestWriter) Abort() {
	m.zw.Close()
	m.tmp.Close()
	os.Remove(m.tmp.Name())
}

// ManifestReader streams the entries of a manifest whose integrity was
// checked when it was opened.
type ManifestReader struct {
	f       *os.File
	cleanup func()
	zr      *zstd.Decoder
	br      *bufio.Reader
	rec     []byte
	last    string
	n       int64
	// dirs is the chain of directories open at the current position of the
	// depth-first order; every entry's parent must be on it.
	dirs []string
}

// OpenManifest checks the manifest's SHA-256 against id, then opens it for
// streaming. A manifest in a directory repository is read in place; one in
// an S3 bucket is downloaded into a temporary file first, so no entry is
// used before the whole manifest is checked.
func (r *Repo) OpenManifest(id ID) (*ManifestReader, error) {
	name := objectName(manifestsDir, id)
	f, cleanup, err := r.localCopy(name)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", id.Short(), err)
	}
	fail := func(err error) (*ManifestReader, error) {
		f.Close()
		cleanup()
		return nil, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fail(err)
	}
	var got ID
	copy(got[:], h.Sum(nil))
	if got != id {
		return fail(fmt.Errorf("manifest %s is damaged: its content does not match its SHA-256", id.Short()))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	var src io.Reader = bufio.NewReaderSize(f, 256<<10)
	if r.keys != nil {
		src = &segmentReader{keys: r.keys, r: src}
	}
	zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(zr, 256<<10)
	magic := make([]byte, len(manifestMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, manifestMagic) {
		zr.Close()
		if err != nil && r.keys != nil {
			return fail(fmt.Errorf("manifest %s: %w", id.Short(), err))
		}
		return fail(fmt.Errorf("manifest %s is not a manifest of this format", id.Short()))
	}
	return &ManifestReader{f: f, cleanup: cleanup, zr: zr, br: br}, nil
}

// Next returns the next entry, or io.EOF. It refuses entries that are out of
// order or whose parent is not a directory entry seen before.
func (m *ManifestReader) Next() (*Entry, error) {
	n, err := binary.ReadUvarint(m.br)
	if err == io.EOF {
		return nil, io.EOF
	}
	if err == nil && n > maxRecord {
		err = fmt.Errorf("record of %d bytes", n)
	}
	if err == nil {
		if uint64(cap(m.rec)) < n {
			m.rec = make([]byte, n)
		}
		m.rec = m.rec[:n]
		_, err = io.ReadFull(m.br, m.rec)
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	e, err := DecodeEntry(m.rec)
	if err != nil {
		return nil, err
	}
	if m.n == 0 && e.Path != "." {
		return nil, errors.New("manifest does not start with the root directory")
	}
	if m.n > 0 && ComparePaths(m.last, e.Path) >= 0 {
		return nil, fmt.Errorf("manifest entries out of order: %q after %q", e.Path, m.last)
	}
	if e.Path != "." {
		parent := Parent(e.Path)
		for len(m.dirs) > 0 && m.dirs[len(m.dirs)-1] != parent {
			m.dirs = m.dirs[:len(m.dirs)-1]
		}
		if len(m.dirs) == 0 {
			return nil, fmt.Errorf("manifest entry %q has no parent directory entry (a symlink or file cannot have children)", e.Path)
		}
	}
	if e.Type == TypeDir {
		m.dirs = append(m.dirs, e.Path)
	}
	m.last = e.Path
	m.n++
	return &e, nil
}

// Close releases the manifest.
func (m *ManifestReader) Close() {
	m.zr.Close()
	m.f.Close()
	m.cleanup()
}
