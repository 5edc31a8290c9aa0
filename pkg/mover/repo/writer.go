package repo

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Writer adds blobs to the repository for one backup session. Blobs go into
// pack files of about Config.PackSize; Finish writes the session's index file.
// Nothing a Writer writes is referenced until a snapshot names it, so a crash
// leaves only unreferenced files that prune removes.
type Writer struct {
	r *Repo

	mu      sync.Mutex
	pack    []byte
	blobs   []indexBlob
	seen    map[ID]bool
	written map[ID]Location
	err     error

	rewrite bool

	flushing sync.WaitGroup
	slots    chan struct{}

	// NewBytes counts plaintext bytes of blobs this session stored;
	// StoredBytes the bytes written to pack files.
	NewBytes, StoredBytes atomic.Int64
}

// NewWriter starts a session.
func (r *Repo) NewWriter() *Writer {
	return &Writer{r: r, seen: map[ID]bool{}, written: map[ID]Location{}, slots: make(chan struct{}, 2)}
}

// newRewriter starts a session that stores blobs again even when the index
// already has them (prune moves live blobs out of packs it deletes).
func (r *Repo) newRewriter() *Writer {
	w := r.NewWriter()
	w.rewrite = true
	return w
}

// Has reports whether the repository or this session already stores the blob.
func (w *Writer) Has(id ID) bool {
	if !w.rewrite {
		if _, ok := w.r.Lookup(id); ok {
			return true
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[id]
}

// Add stores plain under id (its SHA-256) unless it is already stored.
// scratch is a buffer for compression that Add may use.
func (w *Writer) Add(id ID, plain []byte, scratch []byte) error {
	if w.Has(id) {
		return nil
	}
	stored, compressed := compress(plain, scratch)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.seen[id] {
		return nil
	}
	w.seen[id] = true
	w.blobs = append(w.blobs, indexBlob{ID: id, Offset: int64(len(w.pack)), Length: uint32(len(stored)), RawLength: uint32(len(plain)), Compressed: compressed})
	w.pack = append(w.pack, stored...)
	w.NewBytes.Add(int64(len(plain)))
	if len(w.pack) >= w.r.Config.PackSize {
		w.flushLocked()
	}
	return nil
}

// flushLocked hands the current pack to a background writer (at most two at a time).
func (w *Writer) flushLocked() {
	if len(w.blobs) == 0 {
		return
	}
	pack, blobs := w.pack, w.blobs
	w.pack, w.blobs = make([]byte, 0, w.r.Config.PackSize+(1<<20)), nil
	w.slots <- struct{}{}
	w.flushing.Add(1)
	go func() {
		defer w.flushing.Done()
		id := Hash(pack)
		err := writeFileAtomic(packPath(w.r.Dir, id), pack)
		// Free the slot before taking mu: Add holds mu while it waits for a slot.
		<-w.slots
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			if w.err == nil {
				w.err = fmt.Errorf("writing pack: %w", err)
			}
			return
		}
		w.StoredBytes.Add(int64(len(pack)))
		for _, b := range blobs {
			w.written[b.ID] = Location{Pack: id, Offset: b.Offset, Length: b.Length, RawLength: b.RawLength, Compressed: b.Compressed}
		}
	}()
}

// Finish writes the last pack and the session's index, and adds the new blobs
// to the repository's in-memory index. After Finish returns, every blob added
// is durable and findable.
func (w *Writer) Finish() error {
	w.mu.Lock()
	w.flushLocked()
	w.mu.Unlock()
	w.flushing.Wait()
	if w.err != nil {
		return w.err
	}
	if len(w.written) == 0 {
		return nil
	}
	plain, err := encodeIndex(w.written)
	if err != nil {
		return err
	}
	enc := encoderPool.Get().(interface {
		EncodeAll(src, dst []byte) []byte
	})
	data := enc.EncodeAll(plain, nil)
	encoderPool.Put(enc)
	if _, err := writeContentAddressed(filepath.Join(w.r.Dir, indexDir), data); err != nil {
		return fmt.Errorf("writing index: %w", err)
	}
	w.StoredBytes.Add(int64(len(data)))
	w.r.mu.Lock()
	for id, l := range w.written {
		w.r.index[id] = l
	}
	w.r.mu.Unlock()
	return nil
}

// removeFile deletes a repository file, ignoring one that is already gone.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
