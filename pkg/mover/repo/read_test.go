package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingStorage counts the reads of pack objects.
type countingStorage struct {
	Storage
	packGets atomic.Int64
}

func (s *countingStorage) Get(ctx context.Context, name string, offset, length int64, dst []byte) ([]byte, error) {
	if strings.HasPrefix(name, packsDir+"/") {
		s.packGets.Add(1)
	}
	return s.Storage.Get(ctx, name, offset, length, dst)
}

// storeSnapshot stores a snapshot of files at the root, each cut into
// chunks of the sizes in cuts (repeated), in one backup session.
func storeSnapshot(t *testing.T, r *Repo, files map[string][]byte, cuts []int, at time.Time) *Snapshot {
	t.Helper()
	w := r.NewWriter()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return ComparePaths(names[i], names[j]) < 0 })
	entries := []*Entry{{Path: ".", Type: TypeDir, Mode: 0o755}}
	for _, name := range names {
		data := files[name]
		e := &Entry{Path: name, Type: TypeFile, Mode: 0o644, MTime: at.UnixNano(), Size: int64(len(data))}
		for i := 0; len(data) > 0; i++ {
			n := min(cuts[i%len(cuts)], len(data))
			id := r.BlobID(data[:n])
			if _, err := w.Add(id, data[:n], true); err != nil {
				t.Fatal(err)
			}
			e.Chunks = append(e.Chunks, id)
			data = data[n:]
		}
		entries = append(entries, e)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	mw, err := r.NewManifestWriter()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := mw.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	manifest, size, err := mw.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := &Snapshot{Time: at, Source: "/source", Manifest: manifest, ManifestSize: size}
	if err := r.SaveSnapshot(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// fileEntries returns the file entries of a snapshot, by path.
func fileEntries(t *testing.T, x *Reader, s *Snapshot) map[string]*Entry {
	t.Helper()
	m, err := x.OpenManifest(s)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string]*Entry{}
	for {
		e, err := m.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == TypeFile {
			out[e.Path] = e
		}
	}
}

func randomBytes(seed int64, n int) []byte {
	data := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(data)
	return data
}

// readAll reads a file through a Reader.
func readAll(x *Reader, e *Entry) ([]byte, error) {
	f, err := x.OpenFile(e)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// TestFileReaderReadsOnlyTheChunksARangeNeeds: a range within one chunk
// reads that chunk, a range across a boundary the two around it, and
// reads within the chunk read last read nothing; the bytes are the file's.
func TestFileReaderReadsOnlyTheChunksARangeNeeds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	w, err := Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(1, 2<<20+12345)
	cuts := []int{100000, 37, 250000, 1} // uneven chunks, some tiny
	s := storeSnapshot(t, w, map[string][]byte{"big": data, "empty": nil}, cuts, time.Now())
	w.Close()

	st := &countingStorage{Storage: NewFileStorage(dir)}
	r, err := OpenStorage(context.Background(), st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	x, err := NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	files := fileEntries(t, x, s)
	f, err := x.OpenFile(files["big"])
	if err != nil {
		t.Fatal(err)
	}
	if f.Size() != int64(len(data)) {
		t.Fatalf("size %d, want %d", f.Size(), len(data))
	}
	ends := f.ends
	for _, c := range []struct {
		name        string
		off, n      int64
		wantPackGet int64
	}{
		{"start", 0, 10, 1},
		{"same chunk again", 10, 1000, 0},
		{"across a boundary (the first chunk read last)", ends[0] - 5, 10, 1},
		{"across a boundary", ends[8] - 5, 10, 2},
		{"from the last byte of a chunk through a 37-byte, a 250000-byte and a 1-byte chunk to the first byte of the next", ends[12] - 1, ends[15] - ends[12] + 2, 5},
		{"last byte", int64(len(data)) - 1, 1, 1},
		{"middle of a chunk", ends[5] + 1000, 5000, 1},
	} {
		before := st.packGets.Load()
		if _, err := f.Seek(c.off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, c.n)
		if _, err := io.ReadFull(f, got); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.Equal(got, data[c.off:c.off+c.n]) {
			t.Errorf("%s: bytes %d..%d differ from the file's", c.name, c.off, c.off+c.n)
		}
		if n := st.packGets.Load() - before; n != c.wantPackGet {
			t.Errorf("%s: %d pack reads, want %d", c.name, n, c.wantPackGet)
		}
		if len(f.buf) > 250000 {
			t.Errorf("%s: holds %d bytes, more than the largest chunk", c.name, len(f.buf))
		}
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if n, err := f.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("read at the end: %d, %v; want 0, EOF", n, err)
	}
	if end, _ := f.Seek(-3, io.SeekEnd); end != int64(len(data))-3 {
		t.Errorf("seek 3 before the end: %d", end)
	}
	if _, err := f.Seek(-1, io.SeekStart); err == nil {
		t.Error("seek to a negative offset: no error")
	}
	if got, err := readAll(x, files["empty"]); err != nil || len(got) != 0 {
		t.Errorf("empty file: %d bytes, %v", len(got), err)
	}
	// An entry whose size does not match its chunks is refused.
	bad := *files["big"]
	bad.Size++
	if _, err := x.OpenFile(&bad); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("file longer than its chunks: %v", err)
	}
}

// TestReaderSurvivesPrune: a reader opened before a prune that repacks and
// deletes the packs its index names reads every file of the remaining
// snapshot, after one load of the index however many reads failed at once;
// the forgotten snapshot is not found; a snapshot published after the
// reader started is found, and its new blobs read.
func TestReaderSurvivesPrune(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			var o Options
			if encrypted {
				o.Password = []byte("secret")
			}
			w, err := InitStorage(context.Background(), NewFileStorage(dir), o)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			shared := map[string][]byte{}
			for i := range 8 {
				shared[fmt.Sprintf("shared%d", i)] = randomBytes(int64(i), 50000+i*1000)
			}
			withOnly := func(name string, seed int64) map[string][]byte {
				files := map[string][]byte{name: randomBytes(seed, 80000)}
				for k, v := range shared {
					files[k] = v
				}
				return files
			}
			t0 := time.Now()
			a := storeSnapshot(t, w, withOnly("a-only", 100), []int{30000}, t0)
			bFiles := withOnly("b-only", 200)
			b := storeSnapshot(t, w, bFiles, []int{30000}, t0.Add(time.Second))

			r, err := OpenStorage(context.Background(), NewFileStorage(dir), o)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			x, err := NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			bs, err := x.Snapshot(b.ID.String()[:12])
			if err != nil {
				t.Fatal(err)
			}
			files := fileEntries(t, x, bs)
			packsBefore, _ := r.Packs()

			res, err := w.Prune(context.Background(), []ID{a.ID}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if res.PacksRewritten == 0 || res.PacksDeleted == 0 {
				t.Fatalf("prune rewrote %d packs and deleted %d: the reader's index names no deleted pack", res.PacksRewritten, res.PacksDeleted)
			}
			packsAfter, _ := r.Packs()
			t.Logf("packs before the prune %d, after %d", len(packsBefore), len(packsAfter))

			var wg sync.WaitGroup
			errs := make(chan error, len(files))
			for name, e := range files {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := readAll(x, e)
					if err == nil && !bytes.Equal(got, bFiles[name]) {
						err = fmt.Errorf("%s: %d bytes differ from the %d backed up", name, len(got), len(bFiles[name]))
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			if n := x.IndexReloads(); n != 1 {
				t.Errorf("the index was loaded again %d times, want once", n)
			}
			if _, err := x.Snapshot(a.ID.String()); !errors.Is(err, ErrSnapshotNotFound) {
				t.Errorf("the forgotten snapshot: %v, want ErrSnapshotNotFound", err)
			}

			// Published after the reader started: listed again, and its
			// blobs found by loading the index again.
			cFiles := withOnly("c-only", 300)
			c := storeSnapshot(t, w, cFiles, []int{30000}, t0.Add(2*time.Second))
			cs, err := x.Snapshot(c.ID.String()[:8])
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAll(x, fileEntries(t, x, cs)["c-only"])
			if err != nil || !bytes.Equal(got, cFiles["c-only"]) {
				t.Errorf("a file of a snapshot published after the reader started: %d bytes, %v", len(got), err)
			}
			if n := x.IndexReloads(); n != 2 {
				t.Errorf("the index was loaded again %d times, want twice", n)
			}
		})
	}
}

// TestReaderSnapshotRefs: prefixes, ambiguity and malformed IDs.
func TestReaderSnapshotRefs(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ids []ID
	for i := range 40 { // enough that two IDs share their first hex digit
		s := storeSnapshot(t, r, map[string][]byte{"f": {byte(i)}}, []int{1}, time.Unix(int64(i), 0))
		ids = append(ids, s.ID)
	}
	x, err := NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:3] {
		s, err := x.Snapshot(id.String()[:8])
		if err != nil || s.ID != id {
			t.Errorf("prefix of %s: %v, %v", id.Short(), s, err)
		}
	}
	for _, ref := range []string{"", "1234567", strings.ToUpper(ids[0].String()), "zzzzzzzz", ids[0].String() + "0", "00000000"} {
		if _, err := x.Snapshot(ref); !errors.Is(err, ErrSnapshotNotFound) {
			t.Errorf("%q: %v, want ErrSnapshotNotFound", ref, err)
		}
	}
	// Two IDs with a common prefix of at least 8 digits are too rare to
	// make; resolve is checked on its own.
	a, _ := ParseID("aaaaaaaa" + strings.Repeat("0", 56))
	b, _ := ParseID("aaaaaaaa" + strings.Repeat("1", 56))
	if _, err := resolve([]ID{a, b}, "aaaaaaaa"); !errors.Is(err, ErrAmbiguousSnapshot) {
		t.Errorf("shared prefix: %v, want ErrAmbiguousSnapshot", err)
	}
}
