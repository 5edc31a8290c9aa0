package engine

import (
	"errors"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// directMinSize is the smallest file read with O_DIRECT: below it the
	// page cache costs little and its readahead serves the reads well.
	directMinSize = 16 << 20
	directBlock   = 1 << 20
	directBuffers = 4
	directAlign   = 4096
)

// directReader reads a large file with O_DIRECT, a few blocks ahead in its
// own goroutine. The data goes from the disk into our buffers without the
// page cache: the kernel spends far less CPU per byte, and a backup does not
// evict the application's cached data. A filesystem that refuses O_DIRECT, or
// a read that ends short before the end of the file, turns it back into a
// plain buffered read of the same descriptor.
type directReader struct {
	f      *os.File
	blocks chan directChunk
	free   chan []byte
	cur    []byte // unread part of the block being consumed
	held   []byte // that block's buffer, returned to free when consumed
	err    error
	quit   chan struct{}
	done   chan struct{}
}

type directChunk struct {
	buf []byte
	n   int
	err error
}

// sourceFile is a file open for a backup read.
type sourceFile interface {
	io.ReadCloser
	Stat() (os.FileInfo, error)
}

// openFile opens path for a backup read, not following a symlink: with
// O_DIRECT when the file is large and the filesystem allows it.
func openFile(path string, size int64) (sourceFile, error) {
	if size < directMinSize {
		return openNoFollow(path)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err == unix.EINVAL {
		return openNoFollow(path) // no O_DIRECT on this filesystem (tmpfs, for one)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	d := &directReader{
		f:      os.NewFile(uintptr(fd), path),
		blocks: make(chan directChunk, directBuffers),
		free:   make(chan []byte, directBuffers),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	for i := 0; i < directBuffers; i++ {
		d.free <- alignedBlock()
	}
	go d.readAhead()
	return d, nil
}

// openNoFollow opens path to read; a symlink is refused (ELOOP).
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
}

func alignedBlock() []byte {
	b := make([]byte, directBlock+directAlign)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1))
	if off != 0 {
		off = directAlign - off
	}
	return b[off : off+directBlock : off+directBlock]
}

func (d *directReader) readAhead() {
	defer close(d.done)
	direct := true
	for {
		var buf []byte
		select {
		case buf = <-d.free:
		case <-d.quit:
			return
		}
		n, err := io.ReadFull(d.f, buf)
		if errors.Is(err, unix.EINVAL) && direct {
			// An offset or length the device cannot take directly: go on
			// through the page cache from where we are.
			direct = false
			if err = d.buffered(); err == nil {
				var m int
				m, err = io.ReadFull(d.f, buf[n:])
				n += m
			}
		}
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case d.blocks <- directChunk{buf: buf, n: n, err: err}:
		case <-d.quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// buffered clears O_DIRECT on the descriptor.
func (d *directReader) buffered() error {
	sc, err := d.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = sc.Control(func(fd uintptr) {
		flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err == nil {
			_, err = unix.FcntlInt(fd, unix.F_SETFL, flags&^unix.O_DIRECT)
		}
		ferr = err
	})
	if err == nil {
		err = ferr
	}
	return err
}

func (d *directReader) Read(p []byte) (int, error) {
	for len(d.cur) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.held != nil {
			d.free <- d.held
			d.held = nil
		}
		c := <-d.blocks
		d.held, d.cur, d.err = c.buf, c.buf[:c.n], c.err
	}
	n := copy(p, d.cur)
	d.cur = d.cur[n:]
	return n, nil
}

// Stat is the file's fstat.
func (d *directReader) Stat() (os.FileInfo, error) { return d.f.Stat() }

func (d *directReader) Close() error {
	close(d.quit)
	<-d.done
	return d.f.Close()
}
