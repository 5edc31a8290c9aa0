package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/backup-operator/pkg/mover/repo"
)

// smallFilesystem mounts a tmpfs of mib MiB for a repository, so writes
// into it end with ENOSPC as on a full claim; it skips where mounting is
// not allowed (not root).
func smallFilesystem(t *testing.T, mib int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(mib)+"m"); err != nil {
		t.Skipf("mounting a %d MiB tmpfs: %v (needs root)", mib, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// randomFiles writes files of random (incompressible) content.
func randomFiles(t *testing.T, dir string, seed int64, sizes map[string]int) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, size := range sizes {
		data := make([]byte, size)
		rng.Read(data)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// temporaries lists the writers' temporary files left in a repository.
func temporaries(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// fillUpTo writes a file at path until the filesystem has at most leave
// bytes free.
func fillUpTo(t *testing.T, path string, leave int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free <= leave {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for left := free - leave; left > 0; left -= int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), left)]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

// TestBackupOfAFullRepositoryLeavesNoPartialPack: a backup that runs out of
// space fails saying so and takes its partial pack with it (the chaos
// suite found a repository claim filled to the last byte by the partial
// packs of such backups, so that not even a prune could run); a backup
// after space is freed succeeds.
func TestBackupOfAFullRepositoryLeavesNoPartialPack(t *testing.T) {
	mnt := smallFilesystem(t, 8)
	r, err := repo.Init(filepath.Join(mnt, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src := filepath.Join(t.TempDir(), "src")
	randomFiles(t, src, 1, map[string]int{"a": 3 << 20, "b": 3 << 20, "c": 3 << 20, "d": 3 << 20})
	_, err = Backup(context.Background(), r, BackupOptions{Source: src})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("backup of 12 MiB into an 8 MiB filesystem: err = %v, want no space left on device", err)
	}
	if left := temporaries(t, mnt); len(left) > 0 {
		t.Errorf("the failed backup left temporary files: %v", left)
	}
	if err := os.Remove(filepath.Join(src, "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src, "c")); err != nil {
		t.Fatal(err)
	}
	s := backup(t, r, src)
	want := describe(t, src)
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r, s.ID, dst, Merge, false)
	requireSameTree(t, want, describe(t, dst))
}

// TestPruneRemovesStaleTemporariesFirst: temporary files a killed writer
// left (older than a live writer's lease allows) are removed before the
// prune writes anything, so they cannot make its repacking fail for want of
// space.
func TestPruneRemovesStaleTemporariesFirst(t *testing.T) {
	mnt := smallFilesystem(t, 16)
	r, err := repo.Init(filepath.Join(mnt, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src := filepath.Join(t.TempDir(), "src")
	// Small files (under a chunk) share the packs of one stream, so the
	// first backup's pack holds blobs the prune keeps and blobs it drops.
	keep, change := map[string]int{}, map[string]int{}
	for i := range 10 {
		keep[fmt.Sprintf("keep-%d", i)] = 200 << 10
		change[fmt.Sprintf("change-%d", i)] = 200 << 10
	}
	randomFiles(t, src, 2, keep)
	randomFiles(t, src, 4, change)
	first := backup(t, r, src)
	randomFiles(t, src, 3, change)
	second := backup(t, r, src)
	// A crashed writer's pack, an hour old, fills the filesystem but for
	// room for the prune's lock and index, not for the live blobs it copies.
	stale := filepath.Join(mnt, "repo", "packs", ".tmp-crashed")
	fillUpTo(t, stale, 256<<10)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	res, err := r.Prune(context.Background(), []repo.ID{first.ID}, 0)
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	if res.PacksRewritten == 0 {
		t.Fatalf("the prune rewrote no pack (%+v); the test needs one that holds live and dead blobs", res)
	}
	if left := temporaries(t, mnt); len(left) > 0 {
		t.Errorf("temporary files left after the prune: %v", left)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	want := describe(t, src)
	restore(t, r, second.ID, dst, Merge, false)
	requireSameTree(t, want, describe(t, dst))
}

// TestSmallBackupWritesOnePack: a backup's streams (small files, each
// reader of large files) end in partly filled packs, which are put
// together: a small backup writes one pack, not one per stream.
func TestSmallBackupWritesOnePack(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	sizes := map[string]int{"large-a": 3 << 20, "large-b": 3 << 20}
	for i := range 30 {
		sizes[fmt.Sprintf("small-%02d", i)] = 4 << 10
	}
	randomFiles(t, src, 11, sizes)
	r := newRepo(t)
	snap := backup(t, r, src)
	if n := dirEntries(t, filepath.Join(r.Dir, "packs")); n != 1 {
		t.Errorf("a backup of 6 MiB through three streams wrote %d packs, want 1", n)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	want := describe(t, src)
	restore(t, r, snap.ID, dst, Merge, false)
	requireSameTree(t, want, describe(t, dst))

	// An incremental backup: a changed small file and a grown large one.
	randomFiles(t, src, 12, map[string]int{"small-00": 4 << 10, "large-a": 3<<20 + 512<<10})
	want = describe(t, src)
	snap = backup(t, r, src)
	if n := dirEntries(t, filepath.Join(r.Dir, "packs")); n != 2 {
		t.Errorf("after a small incremental backup through two streams there are %d packs, want 2", n)
	}
	dst = filepath.Join(t.TempDir(), "dst2")
	restore(t, r, snap.ID, dst, Merge, false)
	requireSameTree(t, want, describe(t, dst))
}

// dirEntries counts the files beneath dir.
func dirEntries(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n++
		}
		return nil
	})
	return n
}
