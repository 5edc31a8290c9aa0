package repo

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// packedRepo stores n random blobs of size bytes, one pack each.
func packedRepo(t *testing.T, n, size int) (*Repo, []ID) {
	t.Helper()
	r, err := Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	r.Config.PackSize = 1 // every blob fills a pack
	w := r.NewWriter()
	rng := rand.New(rand.NewSource(1))
	var ids []ID
	for i := 0; i < n; i++ {
		data := make([]byte, size)
		rng.Read(data)
		id := Hash(data)
		if _, err := w.Add(id, data, false); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if packs, err := r.Packs(); err != nil || len(packs) != n {
		t.Fatalf("%d packs (%v), want %d", len(packs), err, n)
	}
	return r, ids
}

// openPackFiles counts this process's descriptors open on files in dir.
func openPackFiles(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}

// TestConcurrentReadsOfMorePacksThanTheCacheHolds: readers keep reading a
// pack that other readers' misses evict from the cache meanwhile.
func TestConcurrentReadsOfMorePacksThanTheCacheHolds(t *testing.T) {
	r, ids := packedRepo(t, 3*maxOpenFiles/2, 64<<10)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			var buf []byte
			for i := 0; i < 400; i++ {
				data, err := r.ReadBlob(ids[rng.Intn(len(ids))], buf)
				if err != nil {
					errs <- err
					return
				}
				buf = data
			}
		}(int64(w))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	packs, _ := filepath.Abs(filepath.Join(r.Dir, packsDir))
	if n := openPackFiles(t, packs); n > maxOpenFiles {
		t.Errorf("%d pack files open, the cache holds %d", n, maxOpenFiles)
	}
	r.Close()
	if n := openPackFiles(t, packs); n != 0 {
		t.Errorf("%d pack files still open after Close", n)
	}
}

// TestPackCacheEvictsTheLeastRecentlyUsed: a pack read between every two
// others stays open while more packs than the cache holds are read.
func TestPackCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	r, ids := packedRepo(t, maxOpenFiles+8, 100)
	hot, _ := r.Lookup(ids[0])
	cached := func() any {
		r.Store.(*FileStorage).files.mu.Lock()
		defer r.Store.(*FileStorage).files.mu.Unlock()
		return r.Store.(*FileStorage).files.open[packName(hot.Pack)]
	}
	var first any
	for _, id := range ids {
		for _, read := range []ID{id, ids[0]} {
			if _, err := r.ReadBlob(read, nil); err != nil {
				t.Fatal(err)
			}
		}
		if first == nil {
			first = cached()
		}
	}
	if cached() != first {
		t.Error("the pack read between every two others was evicted and opened again")
	}
}
