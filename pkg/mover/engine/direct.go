package engine

import (
	"errors"
	"io"
	"os"
	"time"
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

// openFile opens the regular file the walk listed as l at path, for a backup
// read: with O_DIRECT when the file is large and the filesystem allows it.
// See openListed for what it refuses.
func openFile(path string, size int64, l listedFile) (sourceFile, error) {
	if size < directMinSize {
		return openNoFollow(path, l)
	}
	fd, err := openListed(path, unix.O_DIRECT, l)
	if err == unix.EINVAL {
		return openNoFollow(path, l) // no O_DIRECT on this filesystem (tmpfs, for one)
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

// openNoFollow opens the regular file the walk listed as l at path, through
// the page cache. See openListed for what it refuses.
func openNoFollow(path string, l listedFile) (*os.File, error) {
	fd, err := openListed(path, 0, l)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// errNotListed says that a path no longer names the regular file the walk
// listed there: another file was renamed over it, or a FIFO, socket, device
// or directory took its place.
var errNotListed = errors.New("no longer the file that was listed")

// leaseWait bounds the retries of an open refused because another process
// holds a lease on the file; the kernel revokes a lease whose holder does not
// release it within /proc/sys/fs/lease-break-time (45 seconds by default).
const leaseWait = time.Minute

// openListed opens path read-only with extra flags (O_DIRECT) and returns the
// descriptor only if it is the regular file l. It does not follow a symlink
// (ELOOP). It opens with O_NONBLOCK, so that a FIFO put in the file's place
// does not wait for a writer (nor a device for its carrier), and fstats the
// descriptor: anything but a regular file, or another inode, is errNotListed.
// A socket cannot be opened at all (ENXIO); that too is errNotListed when an
// lstat shows the path is no longer the listed file. O_NONBLOCK is cleared
// before the descriptor is returned.
func openListed(path string, flags int, l listedFile) (int, error) {
	var fd int
	var err error
	deadline := time.Now().Add(leaseWait)
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|flags, 0)
		if err == unix.EINTR {
			continue
		}
		// EWOULDBLOCK: another process holds a lease on the file. Without
		// O_NONBLOCK the open would wait while the lease is broken; the
		// break has begun, so try again until it is over.
		if err == unix.EWOULDBLOCK && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		break
	}
	if err == unix.ENXIO {
		var st unix.Stat_t
		if lerr := unix.Lstat(path, &st); vanished(lerr) || lerr == nil && !l.is(&st) {
			return -1, errNotListed
		}
	}
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if !l.is(&st) {
		unix.Close(fd)
		return -1, errNotListed
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
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
