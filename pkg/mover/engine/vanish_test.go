package engine

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"example.com/backup-operator/pkg/mover/repo"
)

// onceAt sets testHook for the test: act runs once, the first time the hook
// is called with op and path.
func onceAt(t *testing.T, op, path string, act func()) {
	t.Helper()
	var once sync.Once
	testHook = func(o, p string) {
		if o == op && p == path {
			once.Do(act)
		}
	}
	t.Cleanup(func() { testHook = nil })
}

// backupResult runs a backup of src and fails the test on error.
func backupResult(t *testing.T, r *repo.Repo, src string) *BackupResult {
	t.Helper()
	res, err := BackupWithResult(context.Background(), r, BackupOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// entries lists a snapshot's manifest by path.
func entries(t *testing.T, r *repo.Repo, snap *repo.Snapshot) map[string]*repo.Entry {
	t.Helper()
	m, err := r.OpenManifest(snap.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string]*repo.Entry{}
	for {
		e, err := m.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[e.Path] = e
	}
}

func sortedPaths(m map[string]*repo.Entry) []string {
	var out []string
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return repo.ComparePaths(out[i], out[j]) < 0 })
	return out
}

// writeFiles writes files (path: content) under root, with an mtime in the
// past, so that any later write changes it.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for p, content := range files {
		abs := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(abs, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(abs, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

func randomText(seed int64, n int) string {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return string(b)
}

// TestFileRemovedAfterListingIsLeftOut: a file removed between the walk's
// listing and its read is not in the snapshot (it was once recorded as an
// empty file), and is counted and named once; the rest of the tree is backed
// up and restores as it is now.
func TestFileRemovedAfterListingIsLeftOut(t *testing.T) {
	for _, tc := range []struct{ name, op, size string }{
		{"small file at open", "open", "small"},
		{"large file at open", "open", "large"},
		{"file read with O_DIRECT at open", "open", "direct"},
		{"at its lstat", "lstat", "small"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			content := "WAL segment"
			switch tc.size {
			case "large":
				content = randomText(1, 600<<10) // over a chunk's minimum: read by readLargeFile
			case "direct":
				content = randomText(1, directMinSize+12345) // opened with O_DIRECT where the filesystem allows it
			}
			writeFiles(t, src, map[string]string{"a": "kept", "pg_wal/000000010000000000000001": content, "z": "kept too"})
			victim := filepath.Join(src, "pg_wal", "000000010000000000000001")
			onceAt(t, tc.op, victim, func() {
				if err := os.Remove(victim); err != nil {
					t.Error(err)
				}
			})
			r := newRepo(t)
			res := backupResult(t, r, src)
			if res.Vanished != 1 || !reflect.DeepEqual(res.VanishedPaths, []string{"pg_wal/000000010000000000000001"}) {
				t.Errorf("vanished %d %q, want 1 [pg_wal/000000010000000000000001]", res.Vanished, res.VanishedPaths)
			}
			if res.ChangedDuringRead != 0 {
				t.Errorf("changed during read %d %q, want 0", res.ChangedDuringRead, res.ChangedPaths)
			}
			got := sortedPaths(entries(t, r, res.Snapshot))
			if want := []string{".", "a", "pg_wal", "z"}; !reflect.DeepEqual(got, want) {
				t.Errorf("snapshot holds %q, want %q", got, want)
			}
			if tot := res.Snapshot.Totals; tot.Files != 2 || tot.Bytes != int64(len("kept")+len("kept too")) {
				t.Errorf("totals %+v, want 2 files of %d bytes", tot, len("kept")+len("kept too"))
			}
			// The rest restores as it is now, but for pg_wal's mtime: the
			// removal changed it after the walk had listed it.
			dst := filepath.Join(t.TempDir(), "dst")
			restore(t, r, res.Snapshot.ID, dst, Merge, false)
			want, got2 := describe(t, src), describe(t, dst)
			delete(want, "pg_wal")
			delete(got2, "pg_wal")
			requireSameTree(t, want, got2)
		})
	}
}

// TestFileWhoseParentWasReplacedIsLeftOut: a file whose directory is replaced
// by a regular file after the directory was listed (ENOTDIR) is left out.
func TestFileWhoseParentWasReplacedIsLeftOut(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFiles(t, src, map[string]string{"d/x": "x", "e": "e"})
	d := filepath.Join(src, "d")
	onceAt(t, "open", filepath.Join(d, "x"), func() {
		if err := os.RemoveAll(d); err != nil {
			t.Error(err)
		}
		if err := os.WriteFile(d, []byte("now a file"), 0o644); err != nil {
			t.Error(err)
		}
	})
	r := newRepo(t)
	res := backupResult(t, r, src)
	if res.Vanished != 1 || !reflect.DeepEqual(res.VanishedPaths, []string{"d/x"}) {
		t.Errorf("vanished %d %q, want 1 [d/x]", res.Vanished, res.VanishedPaths)
	}
	got := sortedPaths(entries(t, r, res.Snapshot))
	if want := []string{".", "d", "e"}; !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot holds %q, want %q", got, want)
	}
}

// TestDirectoryRemovedMidWalkIsLeftOutWithItsContent: a directory removed
// (or replaced by a file) after its parent was listed and before it is
// listed itself is left out with everything in it, and counted once.
func TestDirectoryRemovedMidWalkIsLeftOutWithItsContent(t *testing.T) {
	outside := t.TempDir() // what a symlink put in d's place points at: never read
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("not in the tree"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, replace := range []string{"", "file", "symlink"} {
		name := "removed"
		if replace != "" {
			name = "replaced by a " + replace
		}
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			writeFiles(t, src, map[string]string{"a": "a", "d/x": "x", "d/sub/y": "y", "d/sub/z": randomText(2, 400<<10), "dz": "dz"})
			if err := os.Symlink("x", filepath.Join(src, "d", "link")); err != nil {
				t.Fatal(err)
			}
			d := filepath.Join(src, "d")
			onceAt(t, "list", d, func() {
				if err := os.RemoveAll(d); err != nil {
					t.Error(err)
				}
				switch replace {
				case "file":
					if err := os.WriteFile(d, []byte("not a directory"), 0o644); err != nil {
						t.Error(err)
					}
				case "symlink":
					if err := os.Symlink(outside, d); err != nil {
						t.Error(err)
					}
				}
			})
			r := newRepo(t)
			res := backupResult(t, r, src)
			if res.Vanished != 1 || !reflect.DeepEqual(res.VanishedPaths, []string{"d"}) {
				t.Errorf("vanished %d %q, want 1 [d]", res.Vanished, res.VanishedPaths)
			}
			got := sortedPaths(entries(t, r, res.Snapshot))
			if want := []string{".", "a", "dz"}; !reflect.DeepEqual(got, want) {
				t.Errorf("snapshot holds %q, want %q", got, want)
			}
			if tot := res.Snapshot.Totals; tot.Files != 2 || tot.Dirs != 1 || tot.Symlinks != 0 {
				t.Errorf("totals %+v, want 2 files and the root", tot)
			}
			if replace == "" {
				dst := filepath.Join(t.TempDir(), "dst")
				restore(t, r, res.Snapshot.ID, dst, Merge, false)
				requireSameTree(t, describe(t, src), describe(t, dst))
			}
		})
	}
}

// TestFileChangedWhileReadIsStoredAsRead: a file that grows, shrinks or is
// rewritten while it is open for the backup's read is stored with the bytes
// read and a size equal to their length, and counted; its listed mtime is
// kept, so the next backup reads it again.
func TestFileChangedWhileReadIsStoredAsRead(t *testing.T) {
	big := randomText(3, 600<<10)
	for _, tc := range []struct {
		name, before string
		change       func(path string) error
	}{
		{"small file grows", "0123456789", func(p string) error { return appendTo(p, "appended") }},
		{"small file grows past a chunk", "0123456789", func(p string) error { return appendTo(p, randomText(4, 300<<10)) }},
		{"large file grows", big, func(p string) error { return appendTo(p, randomText(5, 100<<10)) }},
		{"large file shrinks", big, func(p string) error { return os.Truncate(p, 100<<10) }},
		// The read-ahead holds a few MiB at most: it cannot reach the end
		// before the append.
		{"file read with O_DIRECT grows", randomText(6, directMinSize+4097), func(p string) error { return appendTo(p, randomText(7, 100<<10)) }},
		{"small file is emptied", "0123456789", func(p string) error { return os.Truncate(p, 0) }},
		{"rewritten in place, same size", "0123456789", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("ABCDE"), 0)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			writeFiles(t, src, map[string]string{"base/16384": tc.before, "other": "unchanged"})
			victim := filepath.Join(src, "base", "16384")
			listed, err := os.Stat(victim)
			if err != nil {
				t.Fatal(err)
			}
			onceAt(t, "read", victim, func() {
				if err := tc.change(victim); err != nil {
					t.Error(err)
				}
			})
			r := newRepo(t)
			res := backupResult(t, r, src)
			if res.ChangedDuringRead != 1 || !reflect.DeepEqual(res.ChangedPaths, []string{"base/16384"}) {
				t.Errorf("changed during read %d %q, want 1 [base/16384]", res.ChangedDuringRead, res.ChangedPaths)
			}
			if res.Vanished != 0 {
				t.Errorf("vanished %d %q, want 0", res.Vanished, res.VanishedPaths)
			}
			now, err := os.ReadFile(victim)
			if err != nil {
				t.Fatal(err)
			}
			e := entries(t, r, res.Snapshot)["base/16384"]
			if e == nil {
				t.Fatal("the changed file is not in the snapshot")
			}
			if e.Size != int64(len(now)) {
				t.Errorf("recorded size %d, the file read has %d bytes", e.Size, len(now))
			}
			if e.MTime != listed.ModTime().UnixNano() {
				t.Errorf("recorded mtime %d, want the listed %d", e.MTime, listed.ModTime().UnixNano())
			}
			if want := int64(len(now) + len("unchanged")); res.Snapshot.Totals.Bytes != want {
				t.Errorf("total bytes %d, want %d", res.Snapshot.Totals.Bytes, want)
			}
			dst := filepath.Join(t.TempDir(), "dst")
			restore(t, r, res.Snapshot.ID, dst, Merge, false)
			got, err := os.ReadFile(filepath.Join(dst, "base", "16384"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, now) {
				t.Errorf("restored %d bytes, not the %d read", len(got), len(now))
			}
			// The next backup reads it again, and finds nothing changed.
			testHook = nil
			again := backupResult(t, r, src)
			if again.ChangedDuringRead != 0 || again.Vanished != 0 {
				t.Errorf("second backup: changed %d, vanished %d; want 0, 0", again.ChangedDuringRead, again.Vanished)
			}
			st, _ := os.Stat(victim)
			if e := entries(t, r, again.Snapshot)["base/16384"]; e.MTime != st.ModTime().UnixNano() || e.Size != st.Size() {
				t.Errorf("second backup recorded mtime %d size %d, want %d %d", e.MTime, e.Size, st.ModTime().UnixNano(), st.Size())
			}
		})
	}
}

func appendTo(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// TestVanishedPathsAreBounded: at most MaxExamplePaths paths are named, each
// cut to MaxExamplePathBytes without splitting a UTF-8 sequence; the count
// covers all.
func TestVanishedPathsAreBounded(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	files := map[string]string{}
	long := strings.Repeat("é", 100) // 200 bytes, below a name's limit of 255
	for i := 0; i < 15; i++ {
		files[filepath.Join(long, long, string(rune('a'+i)))] = "x"
	}
	writeFiles(t, src, files)
	testHook = func(op, p string) {
		if op == "open" {
			os.Remove(p)
		}
	}
	t.Cleanup(func() { testHook = nil })
	res := backupResult(t, newRepo(t), src)
	if res.Vanished != 15 || len(res.VanishedPaths) != MaxExamplePaths {
		t.Fatalf("vanished %d with %d paths, want 15 with %d", res.Vanished, len(res.VanishedPaths), MaxExamplePaths)
	}
	for _, p := range res.VanishedPaths {
		if len(p) > MaxExamplePathBytes || !utf8.ValidString(p) || !strings.HasSuffix(p, "…") {
			t.Errorf("path %q (%d bytes) not cut to %d valid bytes ending in …", p, len(p), MaxExamplePathBytes)
		}
	}
}

// sizes of the files the replacement tests use: one read whole by
// readSmallFile, one chunked by readLargeFile, one read with O_DIRECT where
// the filesystem allows it.
var readerSizes = []struct {
	name string
	size int
}{{"small", 20}, {"large", 600 << 10}, {"direct", directMinSize + 12345}}

// TestFileReplacedByRenameIsLeftOut: a file that another file is renamed
// over between the listing and the read is gone: it is left out and counted,
// not stored with the new file's content under the listed file's metadata
// and hard-link group. Its hard link b keeps the listed content, alone, and
// the unrelated c is untouched.
func TestFileReplacedByRenameIsLeftOut(t *testing.T) {
	for _, tc := range readerSizes {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			listed, other := randomText(10, tc.size), randomText(11, tc.size)
			writeFiles(t, src, map[string]string{"a": listed, "c": other})
			a := filepath.Join(src, "a")
			if err := os.Link(a, filepath.Join(src, "b")); err != nil {
				t.Fatal(err)
			}
			want := describe(t, src)
			onceAt(t, "open", a, func() {
				// Outside the tree, on the same filesystem.
				tmp := filepath.Join(dir, "new")
				if err := os.WriteFile(tmp, []byte("the new a, written by mv new a"), 0o600); err != nil {
					t.Error(err)
				}
				if err := os.Rename(tmp, a); err != nil {
					t.Error(err)
				}
			})
			r := newRepo(t)
			res := backupResult(t, r, src)
			if res.Vanished != 1 || !reflect.DeepEqual(res.VanishedPaths, []string{"a"}) {
				t.Errorf("vanished %d %q, want 1 [a]", res.Vanished, res.VanishedPaths)
			}
			// The rename took a link from b's inode, which changed its
			// ctime: b counts as changed if it was read after that.
			if res.ChangedDuringRead > 1 || res.ChangedDuringRead == 1 && !reflect.DeepEqual(res.ChangedPaths, []string{"b"}) {
				t.Errorf("changed during read %d %q, want none or [b]", res.ChangedDuringRead, res.ChangedPaths)
			}
			got := sortedPaths(entries(t, r, res.Snapshot))
			if w := []string{".", "b", "c"}; !reflect.DeepEqual(got, w) {
				t.Errorf("snapshot holds %q, want %q", got, w)
			}
			dst := filepath.Join(t.TempDir(), "dst")
			restore(t, r, res.Snapshot.ID, dst, Merge, false)
			restored := describe(t, dst)
			for _, p := range []string{"b", "c"} {
				// b was listed as a's second link; alone now, it is restored
				// alone.
				w := strings.TrimSuffix(want[p], " hardlink-of=a")
				if restored[p] != w {
					t.Errorf("%s restored as\n  %s\nwant\n  %s", p, restored[p], w)
				}
			}
			if _, ok := restored["a"]; ok {
				t.Errorf("a restored: %s", restored["a"])
			}
		})
	}
}

// TestFileReplacedByFIFOIsLeftOut: a listed file replaced by a FIFO (or a
// socket) before it is opened is left out and counted; the backup does not
// wait for a writer.
func TestFileReplacedByFIFOIsLeftOut(t *testing.T) {
	for _, by := range []string{"FIFO", "socket"} {
		for _, tc := range readerSizes {
			t.Run(by+" "+tc.name, func(t *testing.T) {
				src := filepath.Join(t.TempDir(), "src")
				writeFiles(t, src, map[string]string{"a": "kept", "p": randomText(12, tc.size), "z": "kept too"})
				p := filepath.Join(src, "p")
				if by == "socket" && len(p) >= 100 {
					t.Skip("path too long for a socket address")
				}
				onceAt(t, "open", p, func() {
					if err := os.Remove(p); err != nil {
						t.Error(err)
					}
					if by == "FIFO" {
						if err := syscall.Mkfifo(p, 0o644); err != nil {
							t.Error(err)
						}
						return
					}
					ln, err := net.Listen("unix", p)
					if err != nil {
						t.Error(err)
						return
					}
					t.Cleanup(func() { ln.Close() })
				})
				r := newRepo(t)
				type outcome struct {
					res *BackupResult
					err error
				}
				done := make(chan outcome, 1)
				go func() {
					res, err := BackupWithResult(context.Background(), r, BackupOptions{Source: src})
					done <- outcome{res, err}
				}()
				var o outcome
				select {
				case o = <-done:
				case <-time.After(30 * time.Second):
					t.Errorf("the backup still runs after 30s")
					// Let each open that waits for a writer return, until
					// the backup ends.
					tick := time.NewTicker(50 * time.Millisecond)
				wait:
					for {
						select {
						case o = <-done:
							break wait
						case <-tick.C:
							unblockFIFO(p)
						}
					}
					tick.Stop()
				}
				if o.err != nil {
					t.Fatal(o.err)
				}
				res := o.res
				if res.Vanished != 1 || !reflect.DeepEqual(res.VanishedPaths, []string{"p"}) {
					t.Errorf("vanished %d %q, want 1 [p]", res.Vanished, res.VanishedPaths)
				}
				got := sortedPaths(entries(t, r, res.Snapshot))
				if want := []string{".", "a", "z"}; !reflect.DeepEqual(got, want) {
					t.Errorf("snapshot holds %q, want %q", got, want)
				}
			})
		}
	}
}

// TestFileRewrittenInPlaceWithItsMtimeRestoredIsCounted: a file rewritten in
// place at the same size while it is read, its mtime then set back (rsync
// --inplace, cp -p, touch -r), has a new status change time: it is counted
// as changed, stored as read with its listed metadata, and read again by the
// next backup, although its size, mtime and inode are as listed.
func TestFileRewrittenInPlaceWithItsMtimeRestoredIsCounted(t *testing.T) {
	for _, tc := range readerSizes {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			writeFiles(t, src, map[string]string{"base/16384": randomText(13, tc.size), "other": "unchanged"})
			victim := filepath.Join(src, "base", "16384")
			var listed syscall.Stat_t
			if err := syscall.Lstat(victim, &listed); err != nil {
				t.Fatal(err)
			}
			mtime := time.Unix(0, listed.Mtim.Nano())
			onceAt(t, "read", victim, func() {
				f, err := os.OpenFile(victim, os.O_WRONLY, 0)
				if err != nil {
					t.Error(err)
					return
				}
				_, err = f.WriteAt([]byte(randomText(14, tc.size)), 0)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					t.Error(err)
				}
				// touch -d: the old mtime back. The kernel's clock for
				// ctime is coarse; set it again until it shows.
				for {
					if err := os.Chtimes(victim, mtime, mtime); err != nil {
						t.Error(err)
						return
					}
					var st syscall.Stat_t
					if err := syscall.Lstat(victim, &st); err != nil {
						t.Error(err)
						return
					}
					if st.Ctim != listed.Ctim {
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
			r := newRepo(t)
			res := backupResult(t, r, src)
			if res.ChangedDuringRead != 1 || !reflect.DeepEqual(res.ChangedPaths, []string{"base/16384"}) {
				t.Errorf("changed during read %d %q, want 1 [base/16384]", res.ChangedDuringRead, res.ChangedPaths)
			}
			if res.Vanished != 0 {
				t.Errorf("vanished %d %q, want 0", res.Vanished, res.VanishedPaths)
			}
			var now syscall.Stat_t
			if err := syscall.Lstat(victim, &now); err != nil {
				t.Fatal(err)
			}
			if now.Size != listed.Size || now.Mtim != listed.Mtim || now.Ino != listed.Ino {
				t.Fatalf("size, mtime or inode not as listed: %+v, listed %+v", now, listed)
			}
			e := entries(t, r, res.Snapshot)["base/16384"]
			if e == nil {
				t.Fatal("the changed file is not in the snapshot")
			}
			if e.MTime != listed.Mtim.Nano() || e.Size != listed.Size {
				t.Errorf("recorded mtime %d size %d, want the listed %d %d", e.MTime, e.Size, listed.Mtim.Nano(), listed.Size)
			}
			// The next backup reads it again rather than reuse this read.
			opened := 0
			testHook = func(op, p string) {
				if op == "open" && p == victim {
					opened++
				}
			}
			again := backupResult(t, r, src)
			if opened != 1 || again.ChangedDuringRead != 0 {
				t.Errorf("second backup opened the file %d times and counted %d changed; want 1 and 0", opened, again.ChangedDuringRead)
			}
		})
	}
}
