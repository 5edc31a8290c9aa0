package engine

import (
	"context"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"example.com/backup-operator/pkg/mover/repo"
)

func newRepo(t *testing.T) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func backup(t *testing.T, r *repo.Repo, src string) *repo.Snapshot {
	t.Helper()
	s, err := Backup(context.Background(), r, BackupOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func restore(t *testing.T, r *repo.Repo, id repo.ID, target string, mode RestoreMode, dry bool) *RestoreResult {
	t.Helper()
	res, err := Restore(context.Background(), r, RestoreOptions{Snapshot: id, Target: target, Mode: mode, DryRun: dry})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRoundTripGeneratedTrees(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		t.Run("seed"+string(rune('0'+seed)), func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			genTree(t, src, seed, 120)
			want := describe(t, src)
			r := newRepo(t)
			snap := backup(t, r, src)
			if snap.Totals.Files == 0 || snap.Totals.Dirs < 40 {
				t.Fatalf("suspicious totals %+v", snap.Totals)
			}
			dst := filepath.Join(t.TempDir(), "dst")
			res := restore(t, r, snap.ID, dst, Merge, false)
			if !res.Verified {
				t.Error("restore not reported verified")
			}
			requireSameTree(t, want, describe(t, dst))
			// Sparse files stay sparse: allocated blocks far below their size.
			filepath.Walk(dst, func(p string, info os.FileInfo, err error) error {
				if err == nil && info.Mode().IsRegular() && info.Size() > 20<<20 {
					if st := info.Sys().(*syscall.Stat_t); st.Blocks*512 > 8<<20 {
						t.Errorf("%s: %d bytes allocated for a sparse file of %d", p, st.Blocks*512, info.Size())
					}
				}
				return nil
			})
			// A second restore into the result changes nothing.
			again := restore(t, r, snap.ID, dst, Mirror, false)
			if again.Creates+again.Overwrites+again.Deletes != 0 {
				t.Errorf("restore into an equal tree changed %v", again.Paths)
			}
		})
	}
}

func TestIncrementalBackupSkipsUnchangedFiles(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 7, 150)
	r := newRepo(t)
	first := backup(t, r, src)
	second := backup(t, r, src)
	if second.Parent == nil || *second.Parent != first.ID {
		t.Fatalf("second backup's parent = %v, want %s", second.Parent, first.ID.Short())
	}
	if second.Totals.NewBytes != 0 {
		t.Errorf("no-change backup stored %d new bytes", second.Totals.NewBytes)
	}
	if second.Manifest != first.Manifest {
		t.Errorf("no-change backup wrote a different manifest")
	}
	// Change one file: only its chunks are new.
	var victim string
	filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err == nil && victim == "" && info.Mode().IsRegular() && info.Size() > 1000 && info.Mode().Perm()&0o200 != 0 {
			victim = p
		}
		return nil
	})
	f, err := os.OpenFile(victim, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("appended")
	f.Close()
	third := backup(t, r, src)
	st, _ := os.Stat(victim)
	if third.Totals.NewBytes == 0 || third.Totals.NewBytes > st.Size() {
		t.Errorf("after appending to one file of %d bytes, new bytes = %d", st.Size(), third.Totals.NewBytes)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r, third.ID, dst, Merge, false)
	requireSameTree(t, describe(t, src), describe(t, dst))
}

func TestMirrorAndMergeIntoAChangedTree(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 11, 100)
	want := describe(t, src)
	r := newRepo(t)
	snap := backup(t, r, src)
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r, snap.ID, dst, Merge, false)

	// Damage the copy: delete, corrupt in place keeping size and mtime, add, retype.
	var files []string
	filepath.Walk(dst, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && info.Size() > 10 && info.Mode().Perm()&0o200 != 0 {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 3 {
		t.Fatalf("tree too small: %d files", len(files))
	}
	os.Remove(files[0])
	st, _ := os.Stat(files[1])
	f, _ := os.OpenFile(files[1], os.O_WRONLY, 0)
	f.WriteAt([]byte{0xff, 0xfe}, 3)
	f.Close()
	os.Chtimes(files[1], st.ModTime(), st.ModTime())
	os.WriteFile(filepath.Join(dst, "not-in-backup"), []byte("x"), 0o644)
	os.Remove(files[2])
	os.Mkdir(files[2], 0o755)
	os.WriteFile(filepath.Join(files[2], "child"), []byte("y"), 0o644)

	preview := restore(t, r, snap.ID, dst, Mirror, true)
	rel := func(p string) string { r, _ := filepath.Rel(dst, p); return r }
	wantPaths := map[string]bool{"+ " + rel(files[0]): true, "~ " + rel(files[1]): true, "~ " + rel(files[2]): true, "- not-in-backup": true}
	got := map[string]bool{}
	for _, p := range preview.Paths {
		got[p] = true
	}
	for p := range wantPaths {
		if !got[p] {
			t.Errorf("dry run lacks %q; got %v", p, preview.Paths)
		}
	}
	// Hard links of the touched files legitimately differ too; nothing else may.
	for p := range got {
		if !wantPaths[p] && !strings.Contains(want[strings.TrimPrefix(p[2:], "")], "hardlink") && !isLinkOf(want, p[2:], rel(files[0]), rel(files[1]), rel(files[2])) {
			t.Errorf("dry run lists unchanged %q", p)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "not-in-backup")); err != nil {
		t.Fatal("the dry run touched the tree")
	}

	merged := restore(t, r, snap.ID, dst, Merge, false)
	if merged.Deletes != 0 {
		t.Errorf("merge deleted %d entries", merged.Deletes)
	}
	if _, err := os.Stat(filepath.Join(dst, "not-in-backup")); err != nil {
		t.Error("merge removed a file the backup lacks")
	}
	restore(t, r, snap.ID, dst, Mirror, false)
	requireSameTree(t, want, describe(t, dst))
}

// isLinkOf reports whether path is a hard link of one of the given files in the
// described tree (such links change together with their file).
func isLinkOf(tree map[string]string, path string, files ...string) bool {
	line := tree[path]
	for _, f := range files {
		if strings.Contains(line, "hardlink-of="+f) || strings.Contains(tree[f], "hardlink-of="+path) {
			return true
		}
	}
	return false
}

func TestConcurrentBackupsIntoOneRepository(t *testing.T) {
	r := newRepo(t)
	var wg sync.WaitGroup
	snaps := make([]*repo.Snapshot, 3)
	errs := make([]error, 3)
	for i := range snaps {
		src := filepath.Join(t.TempDir(), "src")
		genTree(t, src, int64(100+i), 60)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r2, err := repo.Open(r.Dir) // separate processes in real life
			if err != nil {
				errs[i] = err
				return
			}
			defer r2.Close()
			snaps[i], errs[i] = Backup(context.Background(), r2, BackupOptions{Source: src})
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	r3, err := repo.Open(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	res, err := Verify(context.Background(), r3, nil, true)
	if err != nil || !res.OK() || res.Snapshots != 3 {
		t.Fatalf("verify after concurrent backups: %v %+v", err, res)
	}
}

func TestPruneRemovesOnlyUnreferencedData(t *testing.T) {
	r := newRepo(t)
	shared := filepath.Join(t.TempDir(), "shared")
	genTree(t, shared, 21, 50)
	a := backup(t, r, shared)
	unique := filepath.Join(shared, "only-in-second")
	data := make([]byte, 3<<20)
	rand.New(rand.NewSource(5)).Read(data) // incompressible, so its removal shows
	os.WriteFile(unique, data, 0o644)
	b := backup(t, r, shared)
	os.Remove(unique)
	c := backup(t, r, shared)
	sizeBefore := dirSize(t, r.Dir)
	res, err := r.Prune(context.Background(), []repo.ID{b.ID}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Forgotten) != 1 || res.BlobsDeleted == 0 {
		t.Errorf("prune result %+v", res)
	}
	if after := dirSize(t, r.Dir); sizeBefore-after < 1<<20 {
		t.Errorf("prune freed %d bytes; the forgotten snapshot's unique 3 MiB should be gone", sizeBefore-after)
	}
	v, err := Verify(context.Background(), r, nil, true)
	if err != nil || !v.OK() || v.Snapshots != 2 {
		t.Fatalf("verify after prune: %v %+v", err, v)
	}
	for _, s := range []*repo.Snapshot{a, c} {
		dst := filepath.Join(t.TempDir(), "dst")
		restore(t, r, s.ID, dst, Merge, false)
	}
	if _, err := r.LoadSnapshot(b.ID); err == nil {
		t.Error("forgotten snapshot still loads")
	}
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

func TestEveryFlippedByteIsDetected(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 31, 40)
	want := describe(t, src)
	base := newRepo(t)
	snap := backup(t, base, src)
	base.Close()
	var files []string
	filepath.Walk(base.Dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !strings.Contains(p, "/locks/") {
			files = append(files, p)
		}
		return nil
	})
	for i, f := range files {
		rel, _ := filepath.Rel(base.Dir, f)
		t.Run(rel, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			copyTree(t, base.Dir, dir)
			path := filepath.Join(dir, rel)
			data, _ := os.ReadFile(path)
			data[(i*7919)%len(data)] ^= 0x20
			os.WriteFile(path, data, 0o644)

			r, err := repo.Open(dir)
			if err != nil {
				return // refused to open: detected
			}
			defer r.Close()
			v, err := Verify(context.Background(), r, nil, true)
			if err == nil && v.OK() {
				t.Errorf("verify found no damage after a flipped byte in %s", rel)
			}
			dst := filepath.Join(t.TempDir(), "dst")
			_, err = Restore(context.Background(), r, RestoreOptions{Snapshot: snap.ID, Target: dst})
			// A restore reads a pack's blobs, not its table (the index says
			// where they are): a byte flipped in the table leaves the data
			// whole, and verify, above, finds it.
			if err == nil && (!strings.HasPrefix(rel, "packs/") || !maps.Equal(want, describe(t, dst))) {
				t.Errorf("restore succeeded from a repository with a flipped byte in %s", rel)
			}
		})
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// writeHostileSnapshot stores a manifest with the given entries, unchecked, and a
// snapshot naming it, bypassing the writer's checks, as an attacker with
// write access to the repository could.
func writeHostileSnapshot(t *testing.T, r *repo.Repo, entries []repo.Entry) repo.ID {
	t.Helper()
	enc, _ := zstd.NewWriter(nil)
	data := enc.EncodeAll(repo.EncodeManifest(entries), nil)
	id := repo.Hash(data)
	if err := os.WriteFile(filepath.Join(r.Dir, "manifests", id.String()), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := &repo.Snapshot{Manifest: id}
	if err := r.SaveSnapshot(s); err != nil {
		t.Fatal(err)
	}
	return s.ID
}

// payloadSnapshot backs up a tree of one file, f, holding "payload", and
// returns the repository and the snapshot's entries.
func payloadSnapshot(t *testing.T) (*repo.Repo, []repo.Entry) {
	t.Helper()
	r := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("payload"), 0o644)
	m, err := r.OpenManifest(backup(t, r, src).Manifest)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var entries []repo.Entry
	for {
		e, err := m.Next()
		if err != nil {
			return r, entries
		}
		entries = append(entries, *e)
	}
}

func TestHostileManifestsCannotEscapeTheTarget(t *testing.T) {
	// A real blob to point file entries at.
	r, entries := payloadSnapshot(t)
	chunk := entries[1].Chunks[0]
	root := repo.Entry{Path: ".", Type: repo.TypeDir, Mode: 0o755}
	file := func(p string) repo.Entry {
		return repo.Entry{Path: p, Type: repo.TypeFile, Mode: 0o644, Size: 7, Chunks: []repo.ID{chunk}}
	}
	outside := t.TempDir()
	cases := map[string][]repo.Entry{
		"dotdot":              {root, file("../escaped")},
		"inner dotdot":        {root, {Path: "a", Type: repo.TypeDir, Mode: 0o755}, file("a/../../escaped")},
		"absolute":            {root, file(outside + "/escaped")},
		"child of a symlink":  {root, {Path: "link", Type: repo.TypeSymlink, Mode: 0o777, Target: outside}, file("link/escaped")},
		"child without dir":   {root, file("nodir/escaped")},
		"out of order":        {root, file("b"), file("a")},
		"no root":             {file("a")},
		"mode beyond 07777":   {root, {Path: "x", Type: repo.TypeDir, Mode: 0o177777}},
		"size without chunks": {root, {Path: "x", Type: repo.TypeFile, Mode: 0o644, Size: 5}},
	}
	for name, lines := range cases {
		t.Run(name, func(t *testing.T) {
			id := writeHostileSnapshot(t, r, lines)
			target := filepath.Join(t.TempDir(), "target")
			_, err := Restore(context.Background(), r, RestoreOptions{Snapshot: id, Target: target})
			if err == nil {
				t.Fatal("hostile manifest restored without error")
			}
			if _, err := os.Stat(filepath.Join(outside, "escaped")); err == nil {
				t.Fatal("a write escaped the target")
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(target), "escaped")); err == nil {
				t.Fatal("a write escaped the target")
			}
		})
	}
}

func TestSymlinkedParentInTargetIsReplacedNotFollowed(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "data"), 0o755)
	os.WriteFile(filepath.Join(src, "data", "file"), []byte("restored"), 0o644)
	r := newRepo(t)
	snap := backup(t, r, src)
	outside := t.TempDir()
	target := filepath.Join(t.TempDir(), "target")
	os.MkdirAll(target, 0o755)
	os.Symlink(outside, filepath.Join(target, "data"))
	restore(t, r, snap.ID, target, Merge, false)
	if _, err := os.Stat(filepath.Join(outside, "file")); err == nil {
		t.Fatal("restore followed a symlink in the target out of it")
	}
	info, err := os.Lstat(filepath.Join(target, "data"))
	if err != nil || !info.IsDir() {
		t.Fatalf("target/data should now be a real directory: %v %v", info, err)
	}
}

// TestMirrorRemovesExtrasWithoutFollowingSymlinks: a Mirror restore removes
// what the snapshot lacks, whole trees too, but through a symlink in the
// target (one that was there, or one swapped in for a directory after the
// walk saw it) it removes nothing outside the target.
func TestMirrorRemovesExtrasWithoutFollowingSymlinks(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "keep"), 0o755)
	os.WriteFile(filepath.Join(src, "keep", "f"), []byte("kept"), 0o644)
	os.WriteFile(filepath.Join(src, "top"), []byte("top"), 0o644)
	r := newRepo(t)
	snap := backup(t, r, src)
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(outside, "extra", "sub"), 0o755)
	os.WriteFile(filepath.Join(outside, "extra", "sub", "precious"), []byte("x"), 0o644)
	survives := func() {
		t.Helper()
		if _, err := os.Stat(filepath.Join(outside, "extra", "sub", "precious")); err != nil {
			t.Fatalf("a removal in the target deleted outside it: %v", err)
		}
	}

	target := filepath.Join(t.TempDir(), "target")
	restore(t, r, snap.ID, target, Merge, false)
	os.WriteFile(filepath.Join(target, "extra-file"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(target, "extra-dir", "a", "b"), 0o755)
	os.WriteFile(filepath.Join(target, "extra-dir", "a", "b", "f"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(target, "extra-dir", "many"), 0o755)
	for i := 0; i < 2500; i++ { // more than one batch of names
		os.WriteFile(filepath.Join(target, "extra-dir", "many", fmt.Sprint(i)), nil, 0o644)
	}
	os.Symlink(outside, filepath.Join(target, "extra-link"))
	os.Symlink(filepath.Join(outside, "extra"), filepath.Join(target, "keep", "extra"))
	res := restore(t, r, snap.ID, target, Mirror, false)
	if res.Deletes != 4 {
		t.Errorf("deleted %d entries, want 4: %v", res.Deletes, res.Paths)
	}
	requireSameTree(t, describe(t, src), describe(t, target))
	survives()

	// The walk saw real directories; by the time they are removed, keep (a
	// parent) and gone (the entry itself) are symlinks out of the target.
	os.MkdirAll(filepath.Join(target, "keep", "extra", "sub"), 0o755)
	os.Mkdir(filepath.Join(target, "gone"), 0o755)
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	rs := &restorer{r: r, root: target, rootFD: fd}
	os.Rename(filepath.Join(target, "keep"), filepath.Join(target, "keep.moved"))
	os.Symlink(outside, filepath.Join(target, "keep"))
	os.Remove(filepath.Join(target, "gone"))
	os.Symlink(filepath.Join(outside, "extra"), filepath.Join(target, "gone"))
	if err := rs.remove("keep/extra"); err == nil {
		t.Error("removal beneath a parent swapped for a symlink succeeded")
	}
	survives()
	if err := rs.remove("gone"); err != nil {
		t.Error(err)
	}
	survives()
	if _, err := os.Lstat(filepath.Join(target, "gone")); err == nil {
		t.Error("the symlink swapped in for a directory was not removed")
	}
}

// TestExtendedAttributes: a change of attributes alone (content and mtime
// unchanged, so the file's chunks are reused) reaches the next snapshot, a
// diff reports it, and a Mirror restore puts the snapshot's attributes back,
// removing others. security.selinux is neither compared nor set.
func TestExtendedAttributes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(src, "d", "f")
	if err := os.WriteFile(f, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	set := func(p, name, value string) {
		t.Helper()
		if err := unix.Lsetxattr(p, name, []byte(value), 0); err != nil {
			t.Fatal(err)
		}
	}
	set(f, "user.a", "1")
	r := newRepo(t)
	first := backup(t, r, src)
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r, first.ID, dst, Merge, false)
	requireSameTree(t, describe(t, src), describe(t, dst))

	set(f, "user.a", "2")
	set(filepath.Join(src, "d"), "user.dir", "x")
	second := backup(t, r, src)
	if second.Totals.NewBytes != 0 {
		t.Errorf("an attribute change stored %d new bytes of content", second.Totals.NewBytes)
	}
	diff := restore(t, r, second.ID, dst, Mirror, true)
	if strings.Join(diff.Paths, ",") != "~ d,~ d/f" {
		t.Errorf("diff after attribute changes: %q, want ~ d and ~ d/f", diff.Paths)
	}
	set(filepath.Join(dst, "d", "f"), "user.extra", "stale")
	restore(t, r, second.ID, dst, Mirror, false)
	requireSameTree(t, describe(t, src), describe(t, dst))
}

// TestRefusedAttributesAreReported: an attribute the target refuses (here a
// namespace Linux does not have) is counted and named; the data is restored.
func TestRefusedAttributesAreReported(t *testing.T) {
	r, entries := payloadSnapshot(t)
	entries[1].Xattrs = []repo.Xattr{{Name: "nonexistent.namespace", Value: []byte("v")}, {Name: "user.kept", Value: []byte("k")}}
	dst := filepath.Join(t.TempDir(), "dst")
	res := restore(t, r, writeHostileSnapshot(t, r, entries), dst, Merge, false)
	if res.XattrsSkipped != 1 || !strings.Contains(res.XattrWarning, "nonexistent.namespace") {
		t.Errorf("skipped %d, warning %q; want 1 naming nonexistent.namespace", res.XattrsSkipped, res.XattrWarning)
	}
	if data, _ := os.ReadFile(filepath.Join(dst, "f")); string(data) != "payload" {
		t.Errorf("restored content %q", data)
	}
	if v, _ := readXattrs(filepath.Join(dst, "f")); len(v) != 1 || v[0].Name != "user.kept" {
		t.Errorf("restored attributes %v, want user.kept", v)
	}
}

// TestMetadataIsRepairedInPlace: a file whose content matches the snapshot
// but whose owner, mode, time or attributes do not is repaired in place; a
// file of the same size with other content is rewritten.
func TestMetadataIsRepairedInPlace(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	big := make([]byte, 3<<20)
	rand.New(rand.NewSource(1)).Read(big)
	os.WriteFile(filepath.Join(src, "big"), big, 0o640)
	os.WriteFile(filepath.Join(src, "other"), []byte("original"), 0o644)
	unix.Lsetxattr(filepath.Join(src, "big"), "user.a", []byte("1"), 0)
	r := newRepo(t)
	snap := backup(t, r, src)
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r, snap.ID, dst, Merge, false)

	// The incident: permissions, owner, times and attributes of big changed;
	// other's content changed, its size not.
	p := filepath.Join(dst, "big")
	os.Chmod(p, 0o777)
	os.Chown(p, 1234, 1234)
	os.Chtimes(p, time.Unix(1, 0), time.Unix(1, 0))
	unix.Lsetxattr(p, "user.a", []byte("2"), 0)
	os.WriteFile(filepath.Join(dst, "other"), []byte("CHANGED!"), 0o644)
	inode := func(name string) uint64 {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dst, name), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	bigIno, otherIno := inode("big"), inode("other")
	res := restore(t, r, snap.ID, dst, Mirror, false)
	requireSameTree(t, describe(t, src), describe(t, dst))
	if inode("big") != bigIno {
		t.Error("big was rewritten, not repaired in place")
	}
	if inode("other") == otherIno {
		t.Error("other, whose content changed, was not rewritten")
	}
	if res.Overwrites != 2 || res.FilesWritten != 1 || res.BytesWritten != 8 {
		t.Errorf("overwrites %d, files written %d, bytes written %d; want 2, 1, 8", res.Overwrites, res.FilesWritten, res.BytesWritten)
	}
}

// TestXattrsWithoutListxattrat: on kernels before Linux 6.13, or under a
// seccomp profile that refuses listxattrat, attributes are read by path.
func TestXattrsWithoutListxattrat(t *testing.T) {
	noListxattrat.Store(true)
	defer noListxattrat.Store(false)
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 11, 60)
	r := newRepo(t)
	snap := backup(t, r, src)
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r, snap.ID, dst, Merge, false)
	requireSameTree(t, describe(t, src), describe(t, dst))
}
