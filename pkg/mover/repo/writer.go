package repo

import (
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
)

// Writer adds blobs to the repository for one backup session. Each blob gets
// its place in the current temporary pack file of its stream under a lock
// and is written there outside it, so workers write in parallel. Streams
// keep apart in packs what is read apart: a backup gives each reader of
// large files its own, so a restore, which writes files one by one, finds
// a file's chunks together rather than interleaved with other files'. A
// full pack gets its blob table as a trailer, is synced and renamed to the
// SHA-256 of that table in the background. Finish puts the streams' last
// packs together where they fit in one, and writes the session's index
// file. Nothing a Writer
// writes is referenced until a snapshot names it, so a crash leaves only
// unreferenced files that prune removes.
type Writer struct {
	r *Repo

	mu    sync.Mutex
	packs map[int]*openPack // by stream
	// pending are the blobs placed in packs not yet complete; written
	// those in complete packs, where the session's index will say.
	pending map[ID]struct{}
	written *blobIndex
	err     error
	rewrite bool

	flushing sync.WaitGroup
	slots    chan struct{}

	// NewBytes counts plaintext bytes of blobs this session stored;
	// StoredBytes the bytes written to pack and index files.
	NewBytes, StoredBytes atomic.Int64
}

type openPack struct {
	f       *os.File
	size    int64 // bytes placed so far
	blobs   []indexBlob
	writing sync.WaitGroup // blob writes in flight
	failed  atomic.Pointer[error]
}

// flushSlots bounds the packs being synced at once: enough to keep a slow
// disk busy while the writers fill the next pack.
const flushSlots = 4

// NewWriter starts a session.
func (r *Repo) NewWriter() *Writer {
	return &Writer{r: r, packs: map[int]*openPack{}, pending: map[ID]struct{}{}, written: newBlobIndex(), slots: make(chan struct{}, flushSlots)}
}

// newRewriter starts a session that stores blobs again even when the index
// already has them (prune moves live blobs out of packs it deletes).
func (r *Repo) newRewriter() *Writer {
	w := r.NewWriter()
	w.rewrite = true
	return w
}

// AdoptOrphans makes the blobs of packs no index names (a backup
// interrupted after storing them) part of this session: they are found by
// dedup, and Finish writes them into this session's index. Each pack's
// table is read from its end and checked against the pack's name. The
// caller holds a shared lock, so prune cannot delete them meanwhile.
func (w *Writer) AdoptOrphans() error {
	for _, p := range w.r.orphans {
		blobs, err := w.r.readPackTable(p)
		if err != nil {
			return fmt.Errorf("pack %s, which no index names: %w (prune removes such packs)", p.Short(), err)
		}
		w.mu.Lock()
		w.r.mu.Lock()
		for _, b := range blobs {
			l := Location{Pack: p, Offset: b.Offset, Length: b.Length, RawLength: b.RawLength, Compressed: b.Compressed}
			w.written.put(b.ID, l)
			if !w.r.index.has(b.ID) {
				w.r.index.put(b.ID, l)
			}
		}
		w.r.mu.Unlock()
		w.mu.Unlock()
	}
	return nil
}

// BlobID is the ID of a blob with this plaintext (Repo.BlobID).
func (w *Writer) BlobID(data []byte) ID { return w.r.BlobID(data) }

// Has reports whether the repository or this session already stores the blob.
func (w *Writer) Has(id ID) bool {
	if !w.rewrite {
		if _, ok := w.r.Lookup(id); ok {
			return true
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.storedLocked(id)
}

// storedLocked reports whether this session stores the blob.
func (w *Writer) storedLocked(id ID) bool {
	if _, ok := w.pending[id]; ok {
		return true
	}
	return w.written.has(id)
}

// Add stores plain under id (its SHA-256) unless it is already stored, in
// stream 0 (see AddTo).
func (w *Writer) Add(id ID, plain []byte, tryCompress bool) (bool, error) {
	return w.AddTo(0, id, plain, tryCompress)
}

// AddTo stores plain under id (its SHA-256) unless it is already stored,
// in the open pack of stream. With tryCompress false the blob is stored as
// is (the caller found its file incompressible). It reports whether
// compression shrank the blob.
func (w *Writer) AddTo(stream int, id ID, plain []byte, tryCompress bool) (bool, error) {
	if w.Has(id) {
		return true, nil
	}
	stored, compressed := plain, false
	if tryCompress || w.r.keys != nil {
		c := takeCompressor()
		defer c.release() // after the write below: stored may be c's buffer
		if tryCompress {
			stored, compressed = c.compress(plain)
		}
		if w.r.keys != nil {
			c.sealed = w.r.keys.seal(c.sealed[:0], stored, nil)
			stored = c.sealed
		}
	}
	w.mu.Lock()
	if w.err != nil || w.storedLocked(id) {
		err := w.err
		w.mu.Unlock()
		return compressed, err
	}
	p := w.packs[stream]
	if p == nil {
		f, err := w.r.Store.TempFile(w.r.ctx, packsDir)
		if err != nil {
			w.err = err
			w.mu.Unlock()
			return compressed, err
		}
		p = &openPack{f: f}
		w.packs[stream] = p
	}
	off := p.size
	p.size += int64(len(stored))
	p.blobs = append(p.blobs, indexBlob{ID: id, Offset: off, Length: uint32(len(stored)), RawLength: uint32(len(plain)), Compressed: compressed})
	w.pending[id] = struct{}{}
	p.writing.Add(1)
	var full *openPack
	if p.size >= int64(w.r.Config.PackSize) {
		full = p
		delete(w.packs, stream) // the stream's next blob starts a new one
	}
	w.mu.Unlock()
	w.NewBytes.Add(int64(len(plain)))
	_, err := p.f.WriteAt(stored, off)
	if err != nil {
		err = fmt.Errorf("writing pack: %w", err)
		p.failed.CompareAndSwap(nil, &err)
	}
	p.writing.Done()
	if full != nil {
		w.flush(full) // it waits for the other writes into the pack
	}
	return compressed, err
}

// detachLocked takes the open packs out of use, in stream order.
func (w *Writer) detachLocked() []*openPack {
	streams := slices.Sorted(maps.Keys(w.packs))
	packs := make([]*openPack, 0, len(streams))
	for _, s := range streams {
		packs = append(packs, w.packs[s])
		delete(w.packs, s)
	}
	return packs
}

// flush hands a detached pack to a background closer (at most flushSlots at
// a time; the caller waits for a slot, other writers go on): wait for its blob
// writes, append the blob table, fsync, rename to the table's SHA-256.
func (w *Writer) flush(p *openPack) {
	if p == nil {
		return
	}
	w.slots <- struct{}{}
	w.flushing.Add(1)
	go func() {
		defer w.flushing.Done()
		p.writing.Wait()
		var err error
		if e := p.failed.Load(); e != nil {
			err = *e
		}
		table := w.r.seal(appendBlobTable(nil, p.blobs), aadTable)
		id := Hash(table)
		if err == nil {
			trailer := binary.LittleEndian.AppendUint32(table, uint32(len(table)))
			trailer = append(trailer, packMagic...)
			_, err = p.f.WriteAt(trailer, p.size)
			p.size += int64(len(trailer))
		}
		if err == nil {
			err = w.r.Store.PutFile(w.r.ctx, packName(id), p.f, w.r.putOptions())
		} else {
			p.f.Close()
			os.Remove(p.f.Name())
		}
		<-w.slots
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			if w.err == nil {
				w.err = fmt.Errorf("writing pack: %w", err)
			}
			return
		}
		w.StoredBytes.Add(p.size)
		for _, b := range p.blobs {
			w.written.put(b.ID, Location{Pack: id, Offset: b.Offset, Length: b.Length, RawLength: b.RawLength, Compressed: b.Compressed})
			delete(w.pending, b.ID)
		}
	}()
}

// merge appends the blobs of the streams' last packs to the first of them
// while the result stays under the pack size, so that a small backup
// writes one pack, not one per stream. The packs are complete (the caller
// has stopped adding blobs); one that cannot be copied is kept as it is.
func (w *Writer) merge(packs []*openPack) []*openPack {
	if len(packs) < 2 {
		return packs
	}
	into := packs[0]
	into.writing.Wait()
	kept := []*openPack{into}
	for _, p := range packs[1:] {
		p.writing.Wait()
		if into.failed.Load() != nil || p.failed.Load() != nil || into.size+p.size > int64(w.r.Config.PackSize) {
			kept = append(kept, p)
			continue
		}
		if _, err := io.Copy(io.NewOffsetWriter(into.f, into.size), io.NewSectionReader(p.f, 0, p.size)); err != nil {
			// Part of p's bytes may follow into's: cut them off, as its
			// table must end the file.
			if terr := into.f.Truncate(into.size); terr != nil {
				terr = fmt.Errorf("writing pack: %w", terr)
				into.failed.CompareAndSwap(nil, &terr)
			}
			kept = append(kept, p)
			continue
		}
		for _, b := range p.blobs {
			b.Offset += into.size
			into.blobs = append(into.blobs, b)
		}
		into.size += p.size
		p.f.Close()
		os.Remove(p.f.Name())
	}
	return kept
}

// Abort ends a session that will not be finished: it waits for the packs
// being stored and removes the temporary file of the one still open, so a
// backup or prune that fails (a full disk, most often) leaves no partial
// pack behind to fill the repository further. Packs already stored stay: the
// next backup adopts them and a prune deletes the ones nobody uses. After
// Finish it does nothing. The caller has stopped adding blobs.
func (w *Writer) Abort() {
	w.mu.Lock()
	packs := w.detachLocked()
	w.mu.Unlock()
	w.flushing.Wait()
	for _, p := range packs {
		p.writing.Wait()
		p.f.Close()
		os.Remove(p.f.Name())
	}
}

// Finish writes the last pack and the session's index, and adds the new blobs
// to the repository's in-memory index. After Finish returns, every blob added
// is durable and findable.
func (w *Writer) Finish() error {
	w.mu.Lock()
	last := w.detachLocked()
	w.mu.Unlock()
	for _, p := range w.merge(last) {
		w.flush(p)
	}
	w.flushing.Wait()
	if w.err != nil {
		return w.err
	}
	if w.written.len() == 0 {
		return nil
	}
	_, n, err := w.r.writeBlobIndex(w.written, nil)
	if err != nil {
		return fmt.Errorf("writing index: %w", err)
	}
	w.StoredBytes.Add(int64(n))
	w.r.mu.Lock()
	if w.r.index.len() == 0 {
		// A first backup: its index is the repository's, not a copy.
		w.r.index = w.written
	} else {
		for id, l := range w.written.all {
			w.r.index.put(id, l)
		}
	}
	w.written = newBlobIndex()
	w.r.mu.Unlock()
	return nil
}
