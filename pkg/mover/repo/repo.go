package repo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
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
	// forgottenDir holds tombstones of forgotten snapshots whose objects
	// are still locked.
	forgottenDir = "forgotten"
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
	// Dir is the repository's directory when it is kept in one, else "".
	Dir    string
	Store  Storage
	Config Config

	// ctx bounds every storage call the repository makes: the one it was
	// opened with.
	ctx context.Context
	// keys are the repository's keys when it is encrypted, else nil.
	keys *masterKeys
	// retention, when set, locks every object this process writes (S3
	// Object Lock) and extends the locks of the objects its snapshots use.
	retention *Retention

	mu    sync.RWMutex
	index *blobIndex
	// orphans are packs no index names, found by the last LoadIndex.
	orphans []ID
}

// Options says how to open or create a repository.
type Options struct {
	// Password opens an encrypted repository, and makes Init create one.
	// An encrypted repository cannot be opened without it.
	Password []byte
	// Retention, when set, locks every object written (S3 Object Lock)
	// and extends the locks of the packs and indexes a new snapshot uses,
	// so the whole snapshot stays locked until Retention.Until.
	Retention *Retention
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
	return InitStorage(context.Background(), NewFileStorage(dir), Options{})
}

// OpenOrInit opens the repository in dir, creating it when dir is empty.
func OpenOrInit(dir string) (*Repo, error) {
	return OpenOrInitStorage(context.Background(), NewFileStorage(dir), Options{})
}

// Open opens the repository in dir.
func Open(dir string) (*Repo, error) {
	return OpenStorage(context.Background(), NewFileStorage(dir), Options{})
}

// InitStorage creates a repository in st, which must hold no objects. With
// o.Password the repository is encrypted (format version 3, FORMAT.md).
func InitStorage(ctx context.Context, st Storage, o Options) (*Repo, error) {
	if _, err := readConfig(ctx, st); err == nil {
		return nil, fmt.Errorf("%s already holds a repository", st)
	} else if !errors.Is(err, ErrNotRepository) {
		return nil, err
	}
	var found string
	err := st.List(ctx, "", func(oi ObjectInfo) error {
		if !strings.HasPrefix(oi.Name, "lost+found/") && oi.Name != "lost+found" {
			found = oi.Name
			return errStopList
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopList) {
		return nil, err
	}
	if found != "" {
		return nil, fmt.Errorf("%s is not empty (it holds %s) and holds no repository; use an empty location", st, found)
	}
	if fst, ok := st.(*FileStorage); ok {
		for _, sub := range []string{packsDir, indexDir, manifestsDir, snapshotsDir, locksDir} {
			if err := os.MkdirAll(filepath.Join(fst.Dir, sub), 0o755); err != nil {
				return nil, err
			}
		}
	}
	c := Config{Version: FormatVersion, ID: randomHex(16), Created: time.Now().UTC(), Chunker: chunker.DefaultParams, PackSize: 16 << 20}
	var keys *masterKeys
	if o.Password != nil {
		c.Encryption = &EncryptionConfig{Cipher: cipherAESGCM, IDs: idsHMAC, KDF: kdfScrypt}
		keys = newMasterKeys()
		if _, err := addKeyFile(ctx, st, c.ID, keys, o.Password); err != nil {
			return nil, err
		}
	}
	if err := writeConfig(ctx, st, c); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%s: another process created a repository here at the same time", st)
		}
		return nil, err
	}
	return OpenStorage(ctx, st, o)
}

var errStopList = errors.New("stop listing")

// OpenOrInitStorage opens the repository in st, creating it when st is empty.
func OpenOrInitStorage(ctx context.Context, st Storage, o Options) (*Repo, error) {
	r, err := OpenStorage(ctx, st, o)
	if errors.Is(err, ErrNotRepository) {
		return InitStorage(ctx, st, o)
	}
	return r, err
}

// OpenStorage opens the repository in st. An encrypted repository needs
// o.Password; a wrong one is an error (ErrWrongPassword), never garbage.
func OpenStorage(ctx context.Context, st Storage, o Options) (*Repo, error) {
	c, err := readConfig(ctx, st)
	if err != nil {
		return nil, err
	}
	r := &Repo{Store: st, Config: c, ctx: ctx, index: newBlobIndex(), retention: o.Retention}
	if fst, ok := st.(*FileStorage); ok {
		r.Dir = fst.Dir
	}
	switch {
	case c.Encryption != nil && o.Password == nil:
		return nil, fmt.Errorf("%w: %s is encrypted; give its password (--password-file)", ErrPasswordNeeded, st)
	case c.Encryption == nil && o.Password != nil:
		return nil, fmt.Errorf("%w: %s was created without encryption and stays so; use it without a password, or back up into a new repository to encrypt", ErrNotEncrypted, st)
	case c.Encryption != nil:
		if r.keys, _, err = openKeys(ctx, st, c.ID, o.Password); err != nil {
			return nil, err
		}
	}
	if o.Retention != nil {
		rt, ok := st.(Retainer)
		if !ok {
			return nil, fmt.Errorf("%s cannot lock objects: immutability needs an S3 bucket with Object Lock", st)
		}
		on, err := rt.LockingEnabled(ctx)
		if err != nil {
			return nil, err
		}
		if !on {
			return nil, fmt.Errorf("%w: %s has no Object Lock; create the bucket with Object Lock enabled (mc mb --with-lock, or aws s3api create-bucket --object-lock-enabled-for-bucket), or remove immutability", ErrNoObjectLock, st)
		}
	}
	// The index is loaded by each operation once it holds its lock: a prune
	// may rewrite it between Open and then.
	return r, nil
}

// Errors a caller may tell apart.
var (
	ErrPasswordNeeded = errors.New("the repository is encrypted")
	ErrNotEncrypted   = errors.New("the repository is not encrypted")
	ErrNoObjectLock   = errors.New("the bucket cannot lock objects")
)

// Close releases open files.
func (r *Repo) Close() { _ = r.Store.Close() }

// Encrypted reports whether the repository is encrypted.
func (r *Repo) Encrypted() bool { return r.keys != nil }

// indexBlob is one blob of a pack table (see appendBlobTable).
type indexBlob struct {
	ID         ID
	Offset     int64
	Length     uint32
	RawLength  uint32
	Compressed bool
}

// objectName is the name of a content-addressed object.
func objectName(dir string, id ID) string { return dir + "/" + id.String() }

// readVerified reads a content-addressed object and checks its name is the
// SHA-256 of its bytes.
func (r *Repo) readVerified(dir string, id ID) ([]byte, error) {
	name := objectName(dir, id)
	data, err := r.Store.Get(r.ctx, name, 0, -1, nil)
	if err != nil {
		return nil, err
	}
	if Hash(data) != id {
		return nil, fmt.Errorf("%s is damaged: its content does not match its name (SHA-256)", name)
	}
	return data, nil
}

// putOptions are the options of every content-addressed object this
// process writes.
func (r *Repo) putOptions() PutOptions { return PutOptions{Retention: r.retention} }

// writeContentAddressed stores data under dir/<sha256> atomically and returns its ID.
func (r *Repo) writeContentAddressed(dir string, data []byte) (ID, error) {
	id := Hash(data)
	return id, r.Store.Put(r.ctx, objectName(dir, id), data, r.putOptions())
}

// listIDs lists the content-addressed objects in a repository directory.
func (r *Repo) listIDs(sub string) ([]ID, error) {
	var ids []ID
	err := r.Store.List(r.ctx, sub, func(oi ObjectInfo) error {
		if id, err := ParseID(path.Base(oi.Name)); err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// LoadIndex (re)reads every index file. A location in a pack that does not
// exist is left out: an index file kept by its lock (S3 Object Lock) may
// outlive packs prune deleted, and a blob stored twice is valid in either
// pack. Packs that exist but no index names (a backup interrupted after
// storing them) are adopted from their own blob tables, so the next backup
// need not store their blobs again.
func (r *Repo) LoadIndex() error {
	ids, err := r.listIDs(indexDir)
	if err != nil {
		return err
	}
	packs, err := r.Packs()
	if err != nil {
		return err
	}
	exists := make(map[ID]bool, len(packs))
	for _, p := range packs {
		exists[p] = true
	}
	// Drop the old index first: while it is read again, only one is held.
	r.mu.Lock()
	r.index = newBlobIndex()
	r.mu.Unlock()
	index := newBlobIndex()
	indexed := map[ID]bool{}
	for _, id := range ids {
		err := r.readIndexFile(id, func(b ID, l Location) {
			if exists[l.Pack] {
				index.put(b, l)
				indexed[l.Pack] = true
			}
		})
		if err != nil {
			return err
		}
	}
	r.orphans = r.orphans[:0]
	for _, p := range packs {
		if !indexed[p] {
			r.orphans = append(r.orphans, p)
		}
	}
	r.mu.Lock()
	r.index = index
	r.mu.Unlock()
	return nil
}

// readIndexFile calls add for each blob of an index file (until the damage,
// in a damaged one: the caller drops what it added then).
func (r *Repo) readIndexFile(id ID, add func(ID, Location)) error {
	data, err := r.readVerified(indexDir, id)
	if err != nil {
		return err
	}
	if data, err = r.open(data, aadIndex); err != nil {
		return fmt.Errorf("index %s: %w", id.Short(), err)
	}
	// Decompressed as it is decoded: the plaintext is never whole in memory.
	dec, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return err
	}
	defer dec.Close()
	if err := decodeIndexStream(dec, add); err != nil {
		return fmt.Errorf("index %s is damaged: %w", id.Short(), err)
	}
	return nil
}

// writeIndex stores an index of locs and returns its ID and stored size.
func (r *Repo) writeIndex(locs map[ID]Location) (ID, int, error) {
	x := newBlobIndex()
	for id, l := range locs {
		x.put(id, l)
	}
	return r.writeBlobIndex(x, nil)
}

// writeBlobIndex stores an index of the blobs of x that keep accepts (all
// with keep nil) and returns its ID and stored size. Unencrypted, the index
// is compressed into a temporary file as it is encoded, a pack at a time,
// as a manifest is: its plaintext is never whole in memory. Encrypted, it
// is sealed whole (FORMAT.md).
func (r *Repo) writeBlobIndex(x *blobIndex, keep func(ID) bool) (ID, int, error) {
	if r.keys != nil {
		return r.writeIndexPlain(x.encodeWhere(keep))
	}
	tmp, err := r.Store.TempFile(r.ctx, indexDir)
	if err != nil {
		return ID{}, 0, err
	}
	h := sha256.New()
	zw, err := zstd.NewWriter(io.MultiWriter(tmp, h), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(1<<20))
	var size int64
	if err == nil {
		bw := bufio.NewWriterSize(zw, 256<<10)
		err = x.writeTo(bw, keep)
		if err == nil {
			err = bw.Flush()
		}
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			size, err = tmp.Seek(0, io.SeekCurrent)
		}
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return ID{}, 0, err
	}
	var id ID
	copy(id[:], h.Sum(nil))
	if err := r.Store.PutFile(r.ctx, objectName(indexDir, id), tmp, r.putOptions()); err != nil {
		return ID{}, 0, err
	}
	return id, int(size), nil
}

// writeIndexPlain stores an index file of this plaintext and returns its ID
// and stored size.
func (r *Repo) writeIndexPlain(plain []byte) (ID, int, error) {
	data := r.seal(compressAll(plain), aadIndex)
	id, err := r.writeContentAddressed(indexDir, data)
	return id, len(data), err
}

// Lookup returns where a blob is stored.
func (r *Repo) Lookup(id ID) (Location, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.index.get(id)
}

// BlobCount is the number of blobs in the loaded index.
func (r *Repo) BlobCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.index.len()
}

// readPlanner is a Storage that reads faster when told ahead what will be
// read (S3Storage fetches it ahead, a few GETs at once).
type readPlanner interface {
	// PlanRead says length bytes of name at offset will be read once,
	// after what was planned before; ctx bounds fetching it ahead.
	PlanRead(ctx context.Context, name string, offset, length int64)
	// UnplanRead withdraws a planned read that will not be made.
	UnplanRead(name string, offset, length int64)
}

// PlanBlobs tells the storage that ReadBlob will read the first blobs of
// ids, in order, once for each time they are listed: as many as make
// upTo plaintext bytes (at least one). It returns how many it planned and
// their plaintext bytes; on a storage that gains nothing from a plan, all
// of them, planning nothing. A blob the index lacks is counted but not
// planned (its read fails as it would).
func (r *Repo) PlanBlobs(ids []ID, upTo int64) (n int, raw int64) {
	p, ok := r.Store.(readPlanner)
	if !ok {
		return len(ids), 0
	}
	for n < len(ids) && (n == 0 || raw < upTo) {
		if loc, ok := r.Lookup(ids[n]); ok {
			p.PlanRead(r.ctx, packName(loc.Pack), loc.Offset, int64(loc.Length))
			raw += int64(loc.RawLength)
		}
		n++
	}
	return n, raw
}

// UnplanBlobs withdraws reads planned by PlanBlobs that will not be made
// (a restore that failed or skips a file): every read planned is either
// made or withdrawn, or the storage keeps what it fetched for it.
func (r *Repo) UnplanBlobs(ids []ID) {
	p, ok := r.Store.(readPlanner)
	if !ok {
		return
	}
	for _, id := range ids {
		if loc, ok := r.Lookup(id); ok {
			p.UnplanRead(packName(loc.Pack), loc.Offset, int64(loc.Length))
		}
	}
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
	stored := storedPool.Get().(*[]byte)
	defer storedPool.Put(stored)
	raw, err := r.Store.Get(r.ctx, packName(loc.Pack), loc.Offset, int64(loc.Length), (*stored)[:0])
	if cap(raw) > cap(*stored) {
		*stored = raw[:0]
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: reading pack %s: %w", id.Short(), loc.Pack.Short(), err)
	}
	if len(raw) != int(loc.Length) {
		return nil, fmt.Errorf("blob %s: pack %s is shorter than its index says", id.Short(), loc.Pack.Short())
	}
	plain, err := r.decodeBlob(id, loc, raw, buf)
	if err != nil {
		return nil, fmt.Errorf("blob %s in pack %s is damaged: %w", id.Short(), loc.Pack.Short(), err)
	}
	return plain, nil
}

// decodeBlob turns a blob's stored bytes into its plaintext and checks it
// against its ID. It decrypts raw in place: the caller's copy.
func (r *Repo) decodeBlob(id ID, loc Location, raw, buf []byte) ([]byte, error) {
	var err error
	if r.keys != nil {
		// In place: raw is the caller's buffer (a copy of the stored bytes).
		if raw, err = r.keys.open(raw[nonceLen:nonceLen], raw, nil); err != nil {
			return nil, err
		}
	}
	var plain []byte
	if loc.Compressed {
		if plain, err = zstdDecoder.DecodeAll(raw, buf[:0]); err != nil {
			return nil, err
		}
	} else {
		plain = append(buf[:0], raw...)
	}
	if len(plain) != int(loc.RawLength) || r.BlobID(plain) != id {
		return nil, errors.New("content does not match its ID")
	}
	return plain, nil
}

var storedPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

// packName is the object name of a pack: the first two hex digits of its ID
// shard the directory.
func packName(id ID) string {
	s := id.String()
	return packsDir + "/" + s[:2] + "/" + s
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
	// sealed holds the encrypted form of a blob in an encrypted repository.
	sealed []byte
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

// Packs lists the pack objects.
func (r *Repo) Packs() ([]ID, error) {
	var ids []ID
	err := r.Store.List(r.ctx, packsDir, func(oi ObjectInfo) error {
		parts := strings.Split(oi.Name, "/")
		if len(parts) == 3 && len(parts[1]) == 2 && strings.HasPrefix(parts[2], parts[1]) {
			if id, err := ParseID(parts[2]); err == nil {
				ids = append(ids, id)
			}
		}
		return nil
	})
	return ids, err
}
