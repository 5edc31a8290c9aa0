package engine

import (
	"bytes"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
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
			f, err := openFile(path, int64(size))
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
	f, err := openFile(path, directMinSize*2)
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
