package repo

import (
	"errors"
	"fmt"
	"runtime"

	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"example.com/backup-operator/pkg/mover/chunker"
)

// Directory names inside a repository.
const (
	packsDir     = "packs"
	indexDir     = "index"
	manifestsDir = "manifests"
	snapshotsDir = "snapshots"
	locksDir     = "locks"
)

// Location says where a blob is stored.
type Location struct {
	Pack       ID
	Offset     int64
	Length     uint32 // stored bytes
	RawLength  uint32 // plaintext bytes
	Compressed bool
}

// Repo is an open repository.
type Repo struct {
	Dir    string
	Config Config

	mu    sync.RWMutex
	index map[ID]Location

	packs packCache
}

var (
	encoderPool = sync.Pool{New: func() any {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(1<<20), zstd.WithEncoderCRC(false))
		return e
	}}
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
)

// Init creates a repository in dir, which must be empty or missing.
func Init(dir string) (*Repo, error) {
	if _, err := readConfig(dir); err == nil {
		return nil, fmt.Errorf("%s already holds a repository", dir)
	} else if !errors.Is(err, ErrNotRepository) {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if e.Name() != "lost+found" {
			return nil, fmt.Errorf("%s is not empty and holds no repository; use an empty directory", dir)
		}
	}
	for _, sub := range []string{packsDir, indexDir, manifestsDir, snapshotsDir, locksDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	c := Config{Version: FormatVersion, ID: randomHex(16), Created: time.Now().UTC(), Chunker: chunker.DefaultParams, PackSize: 16 << 20}
	if err := writeConfig(dir, c); err != nil {
		return nil, err
	}
	return Open(dir)
}

// OpenOrInit opens the repository in dir, creating it when dir is empty.
func OpenOrInit(dir string) (*Repo, error) {
	r, err := Open(dir)
	if errors.Is(err, ErrNotRepository) {
		return Init(dir)
	}
	return r, err
}

// Open opens the repository in dir.
func Open(dir string) (*Repo, error) {
	c, err := readConfig(dir)
	if err != nil {
		return nil, err
	}
	r := &Repo{Dir: dir, Config: c, index: map[ID]Location{}}
	r.packs.dir = dir
	// The index is loaded by each operation once it holds its lock: a prune
	// may rewrite it between Open and then.
	return r, nil
}

// Close releases open pack files.
func (r *Repo) Close() { r.packs.closeAll() }

// indexBlob is one blob of a pack table (see appendBlobTable).
type indexBlob struct {
	ID         ID
	Offset     int64
	Length     uint32
	RawLength  uint32
	Compressed bool
}

// readVerified reads a content-addressed file and checks its name is the
// SHA-256 of its bytes.
func readVerified(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	want, err := ParseID(filepath.Base(path))
	if err != nil {
		return nil, err
	}
	if Hash(data) != want {
		return nil, fmt.Errorf("%s is damaged: its content does not match its name (SHA-256)", path)
	}
	return data, nil
}

// writeContentAddressed stores data under dir/<sha256> atomically and returns its ID.
func writeContentAddressed(dir string, data []byte) (ID, error) {
	id := Hash(data)
	return id, writeFileAtomic(filepath.Join(dir, id.String()), data)
}

// ListIDs lists the content-addressed files in a repository subdirectory.
func (r *Repo) listIDs(sub string) ([]ID, error) {
	entries, err := os.ReadDir(filepath.Join(r.Dir, sub))
	if err != nil {
		return nil, err
	}
	var ids []ID
	for _, e := range entries {
		if id, err := ParseID(e.Name()); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// LoadIndex (re)reads every index file.
func (r *Repo) LoadIndex() error {
	ids, err := r.listIDs(indexDir)
	if err != nil {
		return err
	}
	index := map[ID]Location{}
	for _, id := range ids {
		locs, err := r.readIndexFile(id)
		if err != nil {
			return err
		}
		for b, l := range locs {
			index[b] = l
		}
	}
	r.mu.Lock()
	r.index = index
	r.mu.Unlock()
	return nil
}

func (r *Repo) readIndexFile(id ID) (map[ID]Location, error) {
	data, err := readVerified(filepath.Join(r.Dir, indexDir, id.String()))
	if err != nil {
		return nil, err
	}
	plain, err := zstdDecoder.DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("index %s is damaged: %w", id.Short(), err)
	}
	return DecodeIndex(plain)
}

// Lookup returns where a blob is stored.
func (r *Repo) Lookup(id ID) (Location, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	l, ok := r.index[id]
	return l, ok
}

// BlobCount is the number of blobs in the loaded index.
func (r *Repo) BlobCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.index)
}

// ReadBlob returns a blob's plaintext, verified against its ID. buf is reused when large enough.
func (r *Repo) ReadBlob(id ID, buf []byte) ([]byte, error) {
	loc, ok := r.Lookup(id)
	if !ok {
		return nil, fmt.Errorf("blob %s is referenced but missing from the repository index", id.Short())
	}
	return r.readBlobAt(id, loc, buf)
}

func (r *Repo) readBlobAt(id ID, loc Location, buf []byte) ([]byte, error) {
	p, err := r.packs.get(loc.Pack)
	if err != nil {
		return nil, fmt.Errorf("blob %s: pack %s: %w", id.Short(), loc.Pack.Short(), err)
	}
	stored := storedPool.Get().(*[]byte)
	defer storedPool.Put(stored)
	if cap(*stored) < int(loc.Length) {
		*stored = make([]byte, loc.Length)
	}
	raw := (*stored)[:loc.Length]
	_, err = p.f.ReadAt(raw, loc.Offset)
	r.packs.release(p)
	if err != nil {
		return nil, fmt.Errorf("blob %s: reading pack %s: %w", id.Short(), loc.Pack.Short(), err)
	}
	var plain []byte
	if loc.Compressed {
		plain, err = zstdDecoder.DecodeAll(raw, buf[:0])
		if err != nil {
			return nil, fmt.Errorf("blob %s in pack %s is damaged: %w", id.Short(), loc.Pack.Short(), err)
		}
	}
	if !loc.Compressed {
		plain = append(buf[:0], raw...)
	}
	if len(plain) != int(loc.RawLength) || Hash(plain) != id {
		return nil, fmt.Errorf("blob %s in pack %s is damaged: content does not match its SHA-256", id.Short(), loc.Pack.Short())
	}
	return plain, nil
}

var storedPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

// maxOpenPacks bounds the pack files the cache keeps open.
const maxOpenPacks = 64

// packCache keeps pack files open for reading, evicting the least recently
// used. A reader holds a reference to the pack it reads (get, then release):
// a pack evicted meanwhile is closed when its last reader releases it.
type packCache struct {
	dir  string
	mu   sync.Mutex
	open map[ID]*cachedPack
	tick uint64
}

// cachedPack is an open pack file. refs counts its readers, plus one while
// it is in the cache.
type cachedPack struct {
	f    *os.File
	refs int
	used uint64 // the cache's tick at the last get
}

func packPath(dir string, id ID) string {
	s := id.String()
	return filepath.Join(dir, packsDir, s[:2], s)
}

// get returns pack id, opened if need be, with a reference for the caller to release.
func (c *packCache) get(id ID) (*cachedPack, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	p, ok := c.open[id]
	if !ok {
		f, err := os.Open(packPath(c.dir, id))
		if err != nil {
			return nil, err
		}
		if c.open == nil {
			c.open = map[ID]*cachedPack{}
		}
		if len(c.open) >= maxOpenPacks {
			c.evictLocked()
		}
		p = &cachedPack{f: f, refs: 1}
		c.open[id] = p
	}
	p.refs++
	p.used = c.tick
	return p, nil
}

// evictLocked drops the least recently used pack from the cache.
func (c *packCache) evictLocked() {
	var oldID ID
	var old *cachedPack
	for id, p := range c.open {
		if old == nil || p.used < old.used {
			oldID, old = id, p
		}
	}
	delete(c.open, oldID)
	c.releaseLocked(old)
}

// release drops a reader's reference.
func (c *packCache) release(p *cachedPack) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(p)
}

func (c *packCache) releaseLocked(p *cachedPack) {
	p.refs--
	if p.refs == 0 {
		p.f.Close()
	}
}

// closeAll empties the cache; packs being read are closed by their last reader.
func (c *packCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.open {
		c.releaseLocked(p)
	}
	c.open = nil
}

// CPUs is how many CPUs the mover uses for CPU-bound work (hashing and
// compression): the runtime's default GOMAXPROCS, read before main can raise
// it, which follows a container's CPU limit.
var CPUs = runtime.GOMAXPROCS(0)

// compressor is a zstd encoder with its output buffer. There are as many as
// CPUs: compression is CPU-bound, so more would only hold more memory.
type compressor struct {
	enc *zstd.Encoder
	buf []byte
}

var (
	compressorsOnce sync.Once
	compressors     chan *compressor
)

func takeCompressor() *compressor {
	compressorsOnce.Do(func() {
		n := CPUs
		compressors = make(chan *compressor, n)
		for i := 0; i < n; i++ {
			compressors <- &compressor{}
		}
	})
	c := <-compressors
	if c.enc == nil {
		c.enc = encoderPool.Get().(*zstd.Encoder)
	}
	return c
}

func (c *compressor) release() { compressors <- c }

// compress returns the stored form of plain and whether it is compressed;
// data that does not shrink is stored as is. The compressed form is valid
// until c is released.
func (c *compressor) compress(plain []byte) ([]byte, bool) {
	c.buf = c.enc.EncodeAll(plain, c.buf[:0])
	if len(c.buf) >= len(plain) {
		return plain, false
	}
	return c.buf, true
}

// compressAll compresses metadata (index files) whatever its ratio.
func compressAll(plain []byte) []byte {
	enc := encoderPool.Get().(*zstd.Encoder)
	defer encoderPool.Put(enc)
	return enc.EncodeAll(plain, nil)
}

// Packs lists the pack files on disk.
func (r *Repo) Packs() ([]ID, error) {
	var ids []ID
	top, err := os.ReadDir(filepath.Join(r.Dir, packsDir))
	if err != nil {
		return nil, err
	}
	for _, d := range top {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(r.Dir, packsDir, d.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if id, err := ParseID(e.Name()); err == nil && strings.HasPrefix(e.Name(), d.Name()) {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}
