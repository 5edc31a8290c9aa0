package engine

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDirectReadsReturnTheFileExactly reads files of aligned and unaligned
// sizes through openFile (O_DIRECT where the filesystem allows it, the page
// cache where it does not, as on tmpfs) with reads of odd lengths.
func TestDirectReadsReturnTheFileExactly(t *testing.T) {
	dirs := []string{t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "direct-test-")
		if err == nil {
			defer os.RemoveAll(shm)
			dirs = append(dirs, shm)
		}
	}
	rng := rand.New(rand.NewSource(3))
	for _, dir := range dirs {
		for _, size := range []int{directMinSize, directMinSize + 1, directMinSize + 4097, 3*directBlock + directMinSize + 12345} {
			want := make([]byte, size)
			rng.Read(want)
			path := filepath.Join(dir, "f")
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := openFile(path, int64(size), listedOf(t, path))
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			buf := make([]byte, 777_777)
			for {
				n, err := f.Read(buf[:1+rng.Intn(len(buf)-1)])
				got.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s, %d bytes: %v", dir, size, err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("%s: read %d bytes of a %d-byte file, or different bytes", dir, got.Len(), size)
			}
		}
	}
}

// TestDirectReaderStopsEarly closes a reader before the end of its file.
func TestDirectReaderStopsEarly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, directMinSize*2), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := openFile(path, directMinSize*2, listedOf(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// listedOf is what a walk would list for the file at path.
func listedOf(t *testing.T, path string) listedFile {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return listedFile{dev: uint64(st.Dev), ino: st.Ino, ctime: st.Ctim.Nano()}
}

// TestOpenListedRefusesAnythingButTheListedFile: openFile, with and without
// O_DIRECT, opens only the listed regular file, without blocking on a FIFO,
// and the descriptor it returns is blocking.
func TestOpenListedRefusesAnythingButTheListedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("listed"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := listedOf(t, path)
	// A second link keeps the listed inode, so that no file made below can
	// get its number.
	if err := os.Link(path, filepath.Join(dir, "keep")); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{6, directMinSize} {
		f, err := openFile(path, size, l)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		var file *os.File
		switch f := f.(type) {
		case *os.File:
			file = f
		case *directReader:
			file = f.f
		}
		fl, err := unix.FcntlInt(file.Fd(), unix.F_GETFL, 0)
		if err != nil || fl&unix.O_NONBLOCK != 0 {
			t.Errorf("size %d: flags %#o, %v: want O_NONBLOCK cleared", size, fl, err)
		}
		f.Close()
	}
	replace := map[string]func() error{
		"another file": func() error {
			tmp := filepath.Join(dir, "new")
			if err := os.WriteFile(tmp, []byte("new"), 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, path)
		},
		"a FIFO":      func() error { return unix.Mkfifo(path, 0o644) },
		"a directory": func() error { return os.Mkdir(path, 0o755) },
		"a socket": func() error {
			if len(path) >= 100 {
				t.Skip("path too long for a socket address")
			}
			ln, err := net.Listen("unix", path)
			if err == nil {
				t.Cleanup(func() { ln.Close() })
			}
			return err
		},
	}
	for name, replaceWith := range replace {
		t.Run(name, func(t *testing.T) {
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
			if err := replaceWith(); err != nil {
				t.Fatal(err)
			}
			for _, size := range []int64{6, directMinSize} {
				done := goErr(func() error {
					f, err := openFile(path, size, l)
					if err == nil {
						f.Close()
					}
					return err
				})
				select {
				case err := <-done:
					if !errors.Is(err, errNotListed) || !openVanished(err) {
						t.Errorf("size %d: %v, want errNotListed", size, err)
					}
				case <-time.After(10 * time.Second):
					unblockFIFO(path)
					t.Fatalf("size %d: open still waits after 10s", size)
				}
			}
		})
	}
}

// goErr runs fn in a goroutine and returns its outcome's channel.
func goErr(fn func() error) <-chan error {
	c := make(chan error, 1)
	go func() { c <- fn() }()
	return c
}

// unblockFIFO lets an open of the FIFO at path for reading, waiting for a
// writer, return.
func unblockFIFO(path string) {
	if fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
		unix.Close(fd)
	}
}

// TestOpenWaitsForALeaseBreak: a file on which another open file holds a
// write lease is opened once the lease is released, as an open without
// O_NONBLOCK would be, rather than refused with EWOULDBLOCK.
func TestOpenWaitsForALeaseBreak(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("leased"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := listedOf(t, path)
	holder, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(holder)
	if _, err := unix.FcntlInt(uintptr(holder), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		t.Skipf("no lease: %v", err)
	}
	release := time.AfterFunc(300*time.Millisecond, func() {
		unix.FcntlInt(uintptr(holder), unix.F_SETLEASE, unix.F_UNLCK)
	})
	defer release.Stop()
	f, err := openFile(path, 6, l)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}
