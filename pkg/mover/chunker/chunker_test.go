package chunker

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
)

func chunks(t testing.TB, data []byte) [][32]byte {
	t.Helper()
	c := New(bytes.NewReader(data), DefaultParams, nil)
	var ids [][32]byte
	total := 0
	for {
		b, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > DefaultParams.Max {
			t.Fatalf("chunk of %d bytes exceeds max", len(b))
		}
		total += len(b)
		ids = append(ids, sha256.Sum256(b))
	}
	if total != len(data) {
		t.Fatalf("chunks cover %d bytes of %d", total, len(data))
	}
	return ids
}

func TestInsertChangesOnlyNearbyChunks(t *testing.T) {
	data := make([]byte, 64<<20)
	rand.New(rand.NewSource(1)).Read(data)
	before := chunks(t, data)
	if n := len(before); n < 32 || n > 128 {
		t.Errorf("64 MiB gave %d chunks; want about 64 at 1 MiB average", n)
	}
	// Insert 100 bytes in the middle.
	mid := len(data) / 2
	changed := append(append(append([]byte{}, data[:mid]...), bytes.Repeat([]byte("x"), 100)...), data[mid:]...)
	after := chunks(t, changed)
	known := map[[32]byte]bool{}
	for _, id := range before {
		known[id] = true
	}
	fresh := 0
	for _, id := range after {
		if !known[id] {
			fresh++
		}
	}
	if fresh > 2 {
		t.Errorf("an insert of 100 bytes changed %d of %d chunks; want at most 2", fresh, len(after))
	}
}

func TestSmallAndEmptyInputs(t *testing.T) {
	if ids := chunks(t, nil); len(ids) != 0 {
		t.Errorf("empty input gave %d chunks", len(ids))
	}
	if ids := chunks(t, []byte("hello")); len(ids) != 1 {
		t.Errorf("5 bytes gave %d chunks", len(ids))
	}
	zeros := make([]byte, 10<<20)
	for _, id := range chunks(t, zeros)[1:] {
		_ = id // zeros cut at max: all chunks equal except maybe the last
	}
}

func TestDeterministic(t *testing.T) {
	data := make([]byte, 8<<20)
	rand.New(rand.NewSource(2)).Read(data)
	a, b := chunks(t, data), chunks(t, data)
	if len(a) != len(b) {
		t.Fatal("same data, different chunking")
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("same data, different chunks")
		}
	}
}

func BenchmarkChunker(b *testing.B) {
	data := make([]byte, 64<<20)
	rand.New(rand.NewSource(3)).Read(data)
	buf := make([]byte, 2*DefaultParams.Max)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		c := New(bytes.NewReader(data), DefaultParams, buf)
		for {
			if _, err := c.Next(); err != nil {
				break
			}
		}
	}
}

// The Splitter cuts where the Chunker cuts, whatever the reader's read sizes.
func TestSplitterMatchesChunker(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, size := range []int{0, 1, 100, DefaultParams.Min, DefaultParams.Min + 1, DefaultParams.Avg, DefaultParams.Max, DefaultParams.Max + 1, 40 << 20} {
		data := make([]byte, size)
		rng.Read(data)
		if size == 40<<20 {
			// A long run of one byte: chunks at the maximum size.
			for i := 10 << 20; i < 30<<20; i++ {
				data[i] = 7
			}
		}
		want := chunks(t, data)
		sp := NewSplitter(iotest.OneByteReader(bytes.NewReader(data)), DefaultParams)
		if size > 1<<20 {
			sp = NewSplitter(&ragged{r: bytes.NewReader(data), rng: rng}, DefaultParams)
		}
		buf := make([]byte, DefaultParams.Max)
		var got [][32]byte
		for {
			b, err := sp.Next(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, sha256.Sum256(b))
		}
		if len(got) != len(want) {
			t.Fatalf("%d bytes: the splitter cut %d chunks, the chunker %d", size, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%d bytes: chunk %d differs", size, i)
			}
		}
	}
}

// ragged reads short, by random amounts.
type ragged struct {
	r   io.Reader
	rng *rand.Rand
}

func (r *ragged) Read(p []byte) (int, error) {
	if n := 1 + r.rng.Intn(300<<10); n < len(p) {
		p = p[:n]
	}
	return r.r.Read(p)
}
