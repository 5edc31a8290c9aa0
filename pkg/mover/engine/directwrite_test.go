package engine

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDirectWriterPieces: pieces of every size and alignment, with gaps
// (holes) between some, written through a directWriter, read back as
// written, the holes unallocated and zero; the descriptor ends without
// O_DIRECT.
func TestDirectWriterPieces(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for round := 0; round < 4; round++ {
		path := filepath.Join(t.TempDir(), "f")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		w := newDirectWriter(f)
		if w.buf == nil {
			t.Skip("this filesystem refuses O_DIRECT")
		}
		var want []byte
		var off int64
		holes := 0
		for off < 9*directBlock {
			if rng.Intn(6) == 0 {
				// A hole: large enough to leave whole blocks unallocated,
				// at any alignment.
				gap := int64(3*directAlign + rng.Intn(3*directBlock))
				want = append(want, make([]byte, gap)...)
				off += gap
				holes++
				continue
			}
			n := 1 + rng.Intn(3*directBlock/2)
			if rng.Intn(3) == 0 {
				n = 1 + rng.Intn(2*directAlign)
			}
			p := make([]byte, n)
			rng.Read(p)
			p[0] |= 1 // not all zero
			if err := w.writeAt(p, off); err != nil {
				t.Fatal(err)
			}
			want = append(want, p...)
			off += int64(n)
		}
		if err := w.close(); err != nil {
			t.Fatal(err)
		}
		flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		if err != nil || flags&unix.O_DIRECT != 0 {
			t.Errorf("after close: flags %#x, %v; want O_DIRECT cleared", flags, err)
		}
		if err := f.Truncate(off); err != nil { // a trailing hole, as writeFile does
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			t.Fatalf("round %d: read back %d bytes, want %d; first difference at %d", round, len(got), len(want), i)
		}
		if holes > 0 && st.Blocks*512 >= int64(len(want)) {
			t.Errorf("round %d: %d holes, but %d bytes allocated for %d", round, holes, st.Blocks*512, len(want))
		}
	}
}

// TestRestoreLargeFileWithHoles: a large file (written with O_DIRECT on
// restore) with long zero runs at unaligned offsets and an unaligned end
// comes back byte for byte, its zero chunks left as holes.
func TestRestoreLargeFileWithHoles(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(9))
	var data []byte
	for _, part := range []struct {
		n    int
		zero bool
	}{{10<<20 + 12345, false}, {13<<20 + 777, true}, {7<<20 + 5, false}, {9<<20 + 4099, true}, {3333, false}} {
		p := make([]byte, part.n)
		if !part.zero {
			rng.Read(p)
		}
		data = append(data, p...)
	}
	if err := os.WriteFile(filepath.Join(src, "large"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	snap := backup(t, r, src)
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r, snap.ID, dst, Merge, false)
	got, err := os.ReadFile(filepath.Join(dst, "large"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("restored %d bytes, want %d, or different bytes", len(got), len(data))
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dst, "large"), &st); err != nil {
		t.Fatal(err)
	}
	// At least two zero chunks (4 MiB each) are holes.
	if st.Blocks*512 > int64(len(data))-8<<20 {
		t.Errorf("%d bytes allocated for %d with 22 MiB of zeros", st.Blocks*512, len(data))
	}
}
