package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// FileStorage keeps a repository in a directory (on a PVC, for the
// operator). Put writes a temporary ".tmp-*" file in the object's
// directory, fsyncs it, renames it into place and fsyncs the directory, so
// an object is durable and whole once Put returns. Reads keep up to
// maxOpenFiles files open, least recently used evicted.
type FileStorage struct {
	Dir string

	files fileCache
}

// NewFileStorage returns the storage in dir; it creates nothing.
func NewFileStorage(dir string) *FileStorage {
	s := &FileStorage{Dir: dir}
	s.files.dir = dir
	return s
}

func (s *FileStorage) String() string { return s.Dir }

func (s *FileStorage) path(name string) string { return filepath.Join(s.Dir, filepath.FromSlash(name)) }

// List walks dir recursively; temporary files are skipped.
func (s *FileStorage) List(ctx context.Context, dir string, fn func(ObjectInfo) error) error {
	root := s.path(dir)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (d.Name() == "lost+found" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir // the filesystem's, not the repository's
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(s.Dir, p)
		return fn(ObjectInfo{Name: filepath.ToSlash(rel), Size: info.Size(), ModTime: info.ModTime()})
	})
	return err
}

func (s *FileStorage) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	st, err := os.Stat(s.path(name))
	if err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{Name: name, Size: st.Size(), ModTime: st.ModTime()}, nil
}

func (s *FileStorage) Get(ctx context.Context, name string, offset, length int64, dst []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if offset == 0 && length < 0 {
		f, err := os.Open(s.path(name))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		buf := bytes.NewBuffer(dst[:0])
		_, err = buf.ReadFrom(f)
		return buf.Bytes(), err
	}
	f, err := s.files.get(name)
	if err != nil {
		return nil, err
	}
	defer s.files.release(f)
	if length < 0 {
		st, err := f.f.Stat()
		if err != nil {
			return nil, err
		}
		length = st.Size() - offset
	}
	if int64(cap(dst)) < length {
		dst = make([]byte, length)
	}
	dst = dst[:length]
	n, err := f.f.ReadAt(dst, offset)
	if err == io.EOF && int64(n) == length {
		err = nil
	}
	if err == io.EOF {
		err = fmt.Errorf("%s: %w", name, io.ErrUnexpectedEOF)
	}
	return dst[:n], err
}

func (s *FileStorage) Download(ctx context.Context, name string, w io.Writer) error {
	f, err := os.Open(s.path(name))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func (s *FileStorage) Put(ctx context.Context, name string, data []byte, o PutOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.Retention != nil {
		return errors.New("a directory repository cannot lock objects; object lock needs an S3 bucket")
	}
	f, err := s.TempFile(ctx, dirOf(name))
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	return s.PutFile(ctx, name, f, o)
}

func (s *FileStorage) TempFile(ctx context.Context, dir string) (*os.File, error) {
	d := s.path(dir)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(d, ".tmp-")
}

// PutFile syncs f and renames it into place (a hard link when IfAbsent, so
// an existing object is never replaced).
func (s *FileStorage) PutFile(ctx context.Context, name string, f *os.File, o PutOptions) error {
	defer os.Remove(f.Name()) // no-op after a rename
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if o.Retention != nil {
		return errors.New("a directory repository cannot lock objects; object lock needs an S3 bucket")
	}
	final := s.path(name)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	if o.IfAbsent {
		if err := os.Link(f.Name(), final); err != nil {
			return err // fs.ErrExist when it is there
		}
	} else if err := os.Rename(f.Name(), final); err != nil {
		return err
	}
	return syncDir(filepath.Dir(final))
}

func (s *FileStorage) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.files.forget(name)
	if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (s *FileStorage) Close() error {
	s.files.closeAll()
	return nil
}

// RemoveStaleTemporaries deletes temporary files crashed writers left that
// are older than age allows a live writer to own.
func (s *FileStorage) removeTemporaries(olderThan func(os.FileInfo) bool) {
	_ = filepath.Walk(s.Dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasPrefix(info.Name(), ".tmp-") && olderThan(info) {
			_ = os.Remove(path)
		}
		return nil
	})
}

func dirOf(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return "."
}

// maxOpenFiles bounds the files the cache keeps open.
const maxOpenFiles = 64

// fileCache keeps files open for reading, evicting the least recently used.
// A reader holds a reference to the file it reads (get, then release): a
// file evicted meanwhile is closed when its last reader releases it.
type fileCache struct {
	dir  string
	mu   sync.Mutex
	open map[string]*cachedFile
	tick uint64
}

// cachedFile is an open file. refs counts its readers, plus one while it is
// in the cache.
type cachedFile struct {
	f    *os.File
	refs int
	used uint64 // the cache's tick at the last get
}

// get returns the file, opened if need be, with a reference for the caller to release.
func (c *fileCache) get(name string) (*cachedFile, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	p, ok := c.open[name]
	if !ok {
		f, err := os.Open(filepath.Join(c.dir, filepath.FromSlash(name)))
		if err != nil {
			return nil, err
		}
		if c.open == nil {
			c.open = map[string]*cachedFile{}
		}
		if len(c.open) >= maxOpenFiles {
			c.evictLocked()
		}
		p = &cachedFile{f: f, refs: 1}
		c.open[name] = p
	}
	p.refs++
	p.used = c.tick
	return p, nil
}

// evictLocked drops the least recently used file from the cache.
func (c *fileCache) evictLocked() {
	var oldName string
	var old *cachedFile
	for name, p := range c.open {
		if old == nil || p.used < old.used {
			oldName, old = name, p
		}
	}
	delete(c.open, oldName)
	c.releaseLocked(old)
}

// forget drops a file from the cache (it is being deleted).
func (c *fileCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.open[name]; ok {
		delete(c.open, name)
		c.releaseLocked(p)
	}
}

// release drops a reader's reference.
func (c *fileCache) release(p *cachedFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(p)
}

func (c *fileCache) releaseLocked(p *cachedFile) {
	p.refs--
	if p.refs == 0 {
		p.f.Close()
	}
}

// closeAll empties the cache; files being read are closed by their last reader.
func (c *fileCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.open {
		c.releaseLocked(p)
	}
	c.open = nil
}
