package engine

import (
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// directWriter writes a large restored file with O_DIRECT: the data goes
// from our buffers to the disk without the page cache, so the kernel
// spends far less CPU per byte, the disk writes while the restore goes on
// rather than in its final sync, and a restore does not evict the
// application's cached data. Blocks of directBlock bytes are written by a
// goroutine of their own (directBuffers of them in use at most) while the
// next chunks are read and verified. What cannot be written aligned (a
// file's unaligned start after a hole, its tail) is written through the
// page cache, with O_DIRECT cleared on the descriptor for that write.
// A filesystem that refuses O_DIRECT gets plain writes throughout.
//
// The data comes in file order (writeAt with growing offsets); a gap is
// a hole, left unwritten.
type directWriter struct {
	f      *os.File
	direct bool // O_DIRECT is set on f
	buf    []byte
	start  int64 // file offset of buf[0]; aligned while buf holds data
	n      int   // bytes in buf
	next   int64 // the offset the next contiguous write starts at

	free    chan []byte
	pending sync.WaitGroup
	mu      sync.Mutex
	err     error // of a block write
}

// newDirectWriter sets O_DIRECT on f, a new empty file; without it (the
// filesystem refuses) the writer writes through the page cache.
func newDirectWriter(f *os.File) *directWriter {
	w := &directWriter{f: f, free: make(chan []byte, directBuffers)}
	if w.setDirect(true) != nil {
		return w
	}
	for i := 0; i < directBuffers; i++ {
		w.free <- directWriteBlocks.Get().([]byte)
	}
	w.buf = <-w.free
	return w
}

// directWriteBlocks keeps the aligned blocks of directWriters between files.
var directWriteBlocks = sync.Pool{New: func() any { return alignedBlock() }}

// setDirect sets or clears O_DIRECT on the descriptor; no write may be
// under way.
func (w *directWriter) setDirect(on bool) error {
	flags, err := unix.FcntlInt(w.f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if on {
		flags |= unix.O_DIRECT
	} else {
		flags &^= unix.O_DIRECT
	}
	if _, err := unix.FcntlInt(w.f.Fd(), unix.F_SETFL, flags); err != nil {
		return err
	}
	w.direct = on
	return nil
}

// writeAt writes p at off, at or past the end of what was written.
func (w *directWriter) writeAt(p []byte, off int64) error {
	if w.buf == nil {
		_, err := w.f.WriteAt(p, off)
		return err
	}
	if off != w.next {
		if err := w.flush(); err != nil {
			return err
		}
		w.next = off
	}
	for len(p) > 0 {
		if w.n == 0 && w.next%directAlign != 0 {
			// An unaligned start (after a hole): through the page cache up
			// to the next aligned offset. Nothing is being written (flush
			// waited, or no block was handed over since).
			k := min(int64(len(p)), directAlign-w.next%directAlign)
			if err := w.buffered(p[:k], w.next); err != nil {
				return err
			}
			p, w.next = p[k:], w.next+k
			continue
		}
		if w.n == 0 {
			w.start = w.next
		}
		c := copy(w.buf[w.n:], p)
		w.n += c
		p = p[c:]
		w.next += int64(c)
		if w.n == len(w.buf) {
			if err := w.handOff(); err != nil {
				return err
			}
		}
	}
	return nil
}

// handOff gives the full buffer to a goroutine that writes it, and takes a
// free one (waiting for a write to end when all are in use).
func (w *directWriter) handOff() error {
	buf, at := w.buf[:w.n], w.start
	w.pending.Add(1)
	go func() {
		defer w.pending.Done()
		w.record(w.pwrite(buf, at))
		w.free <- buf[:cap(buf)]
	}()
	w.buf, w.n = <-w.free, 0
	return w.failed()
}

// pwrite writes an aligned block. A filesystem that took O_DIRECT on the
// descriptor but refuses the write (EINVAL) gets it, and every write
// after it, through the page cache.
func (w *directWriter) pwrite(buf []byte, at int64) error {
	err := pwriteAll(int(w.f.Fd()), buf, at)
	if err != unix.EINVAL {
		return err
	}
	w.mu.Lock()
	if w.direct {
		err = w.setDirect(false)
	}
	w.mu.Unlock()
	if err == nil {
		err = pwriteAll(int(w.f.Fd()), buf, at)
	}
	return err
}

// pwriteAll writes all of buf at off: a write that ends short (a full disk
// may end one part-way, with no error) goes on from where it stopped, and
// one that writes nothing is an error.
func pwriteAll(fd int, buf []byte, off int64) error {
	for len(buf) > 0 {
		n, err := unix.Pwrite(fd, buf, off)
		if err != nil {
			return err
		}
		if n <= 0 {
			return io.ErrShortWrite
		}
		buf, off = buf[n:], off+int64(n)
	}
	return nil
}

func (w *directWriter) record(err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = &os.PathError{Op: "write", Path: w.f.Name(), Err: err}
	}
}

func (w *directWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// buffered writes p at off through the page cache; no block write may be
// under way.
func (w *directWriter) buffered(p []byte, off int64) error {
	w.mu.Lock()
	direct := w.direct
	w.mu.Unlock()
	if direct {
		if err := w.setDirect(false); err != nil {
			return err
		}
		defer w.setDirect(true) //nolint:errcheck // a failure shows in the next direct write
	}
	_, err := w.f.WriteAt(p, off)
	return err
}

// flush waits for the blocks handed off, then writes what the buffer holds:
// its aligned part directly, the rest through the page cache.
func (w *directWriter) flush() error {
	if w.buf == nil {
		return nil
	}
	w.pending.Wait()
	if err := w.failed(); err != nil {
		return err
	}
	if aligned := w.n &^ (directAlign - 1); aligned > 0 {
		if err := w.pwrite(w.buf[:aligned], w.start); err != nil {
			return &os.PathError{Op: "write", Path: w.f.Name(), Err: err}
		}
		w.start += int64(aligned)
		w.n = copy(w.buf, w.buf[aligned:w.n])
	}
	if w.n > 0 {
		if err := w.buffered(w.buf[:w.n], w.start); err != nil {
			return err
		}
		w.n = 0
	}
	return nil
}

// close writes what is left and waits for the block writes; it returns the
// first error. The descriptor stays open, without O_DIRECT.
func (w *directWriter) close() error {
	err := w.flush()
	w.pending.Wait()
	if err == nil {
		err = w.failed()
	}
	if w.buf != nil && w.direct {
		if e := w.setDirect(false); e != nil && err == nil {
			err = e
		}
	}
	if w.buf != nil {
		directWriteBlocks.Put(w.buf[:cap(w.buf)]) //nolint:staticcheck // a slice header per block, for the blocks' megabytes
		for len(w.free) > 0 {
			directWriteBlocks.Put(<-w.free) //nolint:staticcheck
		}
		w.buf = nil
	}
	return err
}
