package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listedAll waits until p has listed its whole tree (or reached its bound).
func listedAll(t *testing.T, p *Prelisting) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p.mu.Lock()
		done := p.stopped && p.active == 0
		p.mu.Unlock()
		if done {
			p.Stop()
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the prelisting did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countLists sets testHook for the test to count the directories the
// backup's walk lists itself.
func countLists(t *testing.T) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	testHook = func(op, _ string) {
		if op == "list" {
			n.Add(1)
		}
	}
	t.Cleanup(func() { testHook = nil })
	return &n
}

func countDirs(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	if err := filepath.WalkDir(root, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			n++
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPrelistedBackup: a backup given a finished Prelisting of its source
// lists no directory itself, takes every listing, and stores the same tree;
// with a bound below the tree's size, the walk lists the rest itself.
func TestPrelistedBackup(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 7, 150)
	want := describe(t, src)
	dirs := countDirs(t, src)
	for _, bound := range []int{1 << 16, 40} {
		prelistMaxEntries = bound
		t.Cleanup(func() { prelistMaxEntries = 1 << 16 })
		p := StartPrelisting(src)
		listedAll(t, p)
		p.mu.Lock()
		listed := int64(len(p.dirs))
		p.mu.Unlock()
		if bound > 1000 && listed != dirs {
			t.Fatalf("bound %d: %d directories listed ahead, the tree has %d", bound, listed, dirs)
		}
		if bound < 1000 && (listed == 0 || listed >= dirs) {
			t.Fatalf("bound %d: %d directories listed ahead of %d", bound, listed, dirs)
		}
		lists := countLists(t)
		r := newRepo(t)
		res, err := BackupWithResult(context.Background(), r, BackupOptions{Source: src, Prelisted: p})
		if err != nil {
			t.Fatal(err)
		}
		if got := lists.Load(); got != dirs-listed {
			t.Errorf("bound %d: the walk listed %d directories itself, want %d (%d of %d listed ahead)", bound, got, dirs-listed, listed, dirs)
		}
		if left, _ := p.take("."); left != nil {
			t.Errorf("bound %d: the root's listing was not taken", bound)
		}
		if len(p.dirs) != 0 {
			t.Errorf("bound %d: %d listings left untaken", bound, len(p.dirs))
		}
		dst := filepath.Join(t.TempDir(), "dst")
		restore(t, r, res.Snapshot.ID, dst, RestoreMode(""), false)
		got := describe(t, dst)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("bound %d: %s restored as %q, want %q", bound, k, got[k], v)
			}
		}
		if len(got) != len(want) {
			t.Errorf("bound %d: %d entries restored, want %d", bound, len(got), len(want))
		}
	}
}

// TestPrelistingThenTheTreeChanges: between the listing ahead and the
// walk, a directory is removed and a file grows. The removed directory's
// parent changed (its mtime), so the walk lists it again and the snapshot
// holds nothing of what was removed. The file's listing is used: without a
// parent snapshot the file is read, stored as read and counted as changed
// during the read; with one, its listing matches the parent's and the
// parent's content is kept, as it was when listed. The snapshot's time is
// the listing's start, before either change.
func TestPrelistingThenTheTreeChanges(t *testing.T) {
	for _, withParent := range []bool{false, true} {
		src := filepath.Join(t.TempDir(), "src")
		for _, d := range []string{"a", "b/c"} {
			if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{"a/grows.txt", "b/c/one.txt", "b/c/two.txt", "b/stays.txt"} {
			if err := os.WriteFile(filepath.Join(src, f), []byte("before "+f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r := newRepo(t)
		if withParent {
			backup(t, r, src)
		}
		p := StartPrelisting(src)
		listedAll(t, p)
		time.Sleep(10 * time.Millisecond) // the changes get later mtimes
		changed := time.Now()
		grown := "before a/grows.txt and what was appended after the listing"
		if err := os.WriteFile(filepath.Join(src, "a/grows.txt"), []byte(grown), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(src, "b/c")); err != nil {
			t.Fatal(err)
		}
		res, err := BackupWithResult(context.Background(), r, BackupOptions{Source: src, Prelisted: p})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Snapshot.Time.Before(changed) || !res.Snapshot.Time.Equal(p.started.UTC()) {
			t.Errorf("parent %v: snapshot time %v, want the listing's start %v (before the changes at %v)", withParent, res.Snapshot.Time, p.started, changed)
		}
		es := entries(t, r, res.Snapshot)
		for path := range es {
			if path == "b/c" || strings.HasPrefix(path, "b/c/") {
				t.Errorf("parent %v: %s, removed before the walk, is in the snapshot", withParent, path)
			}
		}
		if es["b/stays.txt"] == nil {
			t.Errorf("parent %v: b/stays.txt missing", withParent)
		}
		want := grown
		if withParent {
			want = "before a/grows.txt"
		} else if res.ChangedDuringRead != 1 {
			t.Errorf("parent %v: changed during the read %d, want 1: %v", withParent, res.ChangedDuringRead, res.ChangedPaths)
		}
		dst := filepath.Join(t.TempDir(), "dst")
		restore(t, r, res.Snapshot.ID, dst, RestoreMode(""), false)
		if data, err := os.ReadFile(filepath.Join(dst, "a/grows.txt")); err != nil || string(data) != want {
			t.Errorf("parent %v: a/grows.txt restored as %q, %v; want %q", withParent, data, err, want)
		}
	}
}

// TestPrelistingNotUsed: listings made too long before the walk (the
// backup waited for the repository's lock) or of another source are not
// used: the walk lists every directory itself.
func TestPrelistingNotUsed(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 3, 40)
	other := filepath.Join(t.TempDir(), "other")
	genTree(t, other, 4, 40)
	dirs := countDirs(t, src)
	for _, c := range []struct {
		name string
		p    func() *Prelisting
	}{
		{"too old", func() *Prelisting {
			p := StartPrelisting(src)
			listedAll(t, p)
			p.started = time.Now().Add(-prelistMaxAge - time.Second)
			return p
		}},
		{"another source", func() *Prelisting {
			p := StartPrelisting(other)
			listedAll(t, p)
			return p
		}},
	} {
		p := c.p()
		lists := countLists(t)
		if _, err := BackupWithResult(context.Background(), newRepo(t), BackupOptions{Source: src, Prelisted: p}); err != nil {
			t.Fatal(err)
		}
		if got := lists.Load(); got != dirs {
			t.Errorf("%s: the walk listed %d directories itself, want all %d", c.name, got, dirs)
		}
	}
}
