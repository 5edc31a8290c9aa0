package engine

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"example.com/backup-operator/pkg/mover/repo"
	"example.com/backup-operator/pkg/mover/report"
)

func restorePaths(t *testing.T, r *repo.Repo, id repo.ID, target string, mode RestoreMode, dry bool, paths ...string) *RestoreResult {
	t.Helper()
	res, err := Restore(context.Background(), r, RestoreOptions{Snapshot: id, Target: target, Mode: mode, DryRun: dry, Paths: paths})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// outsideOf returns the entries of tree that are not at or beneath any of paths.
func outsideOf(tree map[string]string, paths ...string) map[string]string {
	out := map[string]string{}
	for p, line := range tree {
		in := false
		for _, s := range paths {
			if p == s || strings.HasPrefix(p, s+"/") {
				in = true
			}
		}
		if !in {
			out[p] = line
		}
	}
	return out
}

func beneath(tree map[string]string, paths ...string) map[string]string {
	out := map[string]string{}
	outside := outsideOf(tree, paths...)
	for p, line := range tree {
		if _, ok := outside[p]; !ok {
			out[p] = line
		}
	}
	return out
}

// pathsTree is a source with two directories, a top-level file and names
// that sort between and around them ("a.b" after "a/...", "a-b" before).
func pathsTree(t *testing.T) string {
	src := filepath.Join(t.TempDir(), "src")
	writeFiles(t, src, map[string]string{
		"a/one":           "a one " + randomText(1, 5000),
		"a/sub/deep":      "a deep " + randomText(2, 70000),
		"a/sub/deeper/x":  "x",
		"a-b/file":        "a-b",
		"a.b":             "a.b",
		"b/one":           "b one",
		"b/sub/deep":      "b deep " + randomText(3, 3000),
		"top.txt":         "top",
		"z/last/file.txt": "z",
	})
	return src
}

// change damages a copy the way the e2e test does: files changed in a/ and
// b/, extra files in both and at the top.
func change(t *testing.T, dst string) {
	t.Helper()
	for p, content := range map[string]string{
		"a/one": "changed", "a/sub/deep": "changed too", "b/one": "changed", "top.txt": "changed",
		"a/extra": "extra", "a/sub/extra-dir/f": "extra", "b/extra": "extra", "extra-top": "extra", "a-b/extra": "extra",
	} {
		abs := filepath.Join(dst, p)
		os.MkdirAll(filepath.Dir(abs), 0o755)
		if err := os.WriteFile(abs, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Metadata of directories outside the selection and of the top
	// directory, which a restore of "a" must leave as they are.
	for _, d := range []string{".", "b", "a-b"} {
		if err := os.Chmod(filepath.Join(dst, d), 0o751); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRestorePathsMergeAndMirrorTouchNothingOutside(t *testing.T) {
	src := pathsTree(t)
	want := describe(t, src)
	r := newRepo(t)
	snap := backup(t, r, src)
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r, snap.ID, dst, Merge, false)
	change(t, dst)
	before := describe(t, dst)

	// Dry run, Mirror: only changes beneath a/ are listed, nothing is written.
	var last report.Progress
	dry, err := Restore(context.Background(), r, RestoreOptions{Snapshot: snap.ID, Target: dst, Mode: Mirror, DryRun: true, Paths: []string{"a"},
		Progress: func(p report.Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	wantPreview := []string{"- a/extra", "~ a/one", "~ a/sub/deep", "- a/sub/extra-dir"}
	if !reflect.DeepEqual(dry.Paths, wantPreview) || dry.Creates != 0 || dry.Overwrites != 2 || dry.Deletes != 2 {
		t.Errorf("dry run of a, Mirror: %+v, want paths %q", dry, wantPreview)
	}
	if !reflect.DeepEqual(dry.Selection, []string{"a"}) {
		t.Errorf("selection = %q", dry.Selection)
	}
	// The totals are the selection's: 3 files under a/.
	var aBytes int64
	for _, f := range []string{"a/one", "a/sub/deep", "a/sub/deeper/x"} {
		info, err := os.Stat(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		aBytes += info.Size()
	}
	if last.FilesTotal != 3 || last.FilesDone != 3 || last.BytesTotal != aBytes {
		t.Errorf("progress of a restore of a: %+v, want 3 files of %d bytes", last, aBytes)
	}
	requireSameTree(t, before, describe(t, dst))

	// Merge: a/ as in the snapshot but its extra files; the rest untouched.
	res := restorePaths(t, r, snap.ID, dst, Merge, false, "a")
	if res.Overwrites != 2 || res.Creates != 0 || res.Deletes != 0 || res.FilesWritten != 2 {
		t.Errorf("merge of a: %+v", res)
	}
	got := describe(t, dst)
	requireSameTree(t, outsideOf(before, "a"), outsideOf(got, "a"))
	wantA := beneath(want, "a")
	for _, extra := range []string{"a/extra", "a/sub/extra-dir", "a/sub/extra-dir/f"} {
		wantA[extra] = before[extra]
	}
	requireSameTree(t, wantA, beneath(got, "a"))
	if got["."] != before["."] {
		t.Errorf("the top directory changed: %s, was %s", got["."], before["."])
	}

	// Mirror: also a/'s extra files go; b/'s and the top's stay.
	change(t, dst)
	before = describe(t, dst)
	res = restorePaths(t, r, snap.ID, dst, Mirror, false, "a")
	if res.Deletes != 2 || res.Overwrites != 2 {
		t.Errorf("mirror of a: %+v", res)
	}
	got = describe(t, dst)
	requireSameTree(t, outsideOf(before, "a"), outsideOf(got, "a"))
	requireSameTree(t, beneath(want, "a"), beneath(got, "a"))
	for _, p := range []string{"b/extra", "extra-top", "a-b/extra"} {
		if _, err := os.Stat(filepath.Join(dst, p)); err != nil {
			t.Errorf("%s outside the selection: %v", p, err)
		}
	}

	// Several paths, a file among them; a second run changes nothing.
	res = restorePaths(t, r, snap.ID, dst, Mirror, false, "top.txt", "b/sub", "a-b")
	// a-b is selected: its mode is restored too.
	if res.Overwrites != 2 || res.Deletes != 1 || !reflect.DeepEqual(res.Paths, []string{"~ a-b", "- a-b/extra", "~ top.txt"}) {
		t.Errorf("mirror of top.txt, b/sub, a-b: %+v", res)
	}
	if again := restorePaths(t, r, snap.ID, dst, Mirror, false, "top.txt", "b/sub", "a-b", "a"); again.Creates+again.Overwrites+again.Deletes != 0 {
		t.Errorf("a second restore changed %q", again.Paths)
	}
	if got := describe(t, dst)["b/one"]; !strings.Contains(got, "size=7 ") {
		t.Errorf("b/one, not selected, was restored: %s", got)
	}
}

func TestRestorePathsCreateMissingParents(t *testing.T) {
	src := pathsTree(t)
	if err := os.Chmod(filepath.Join(src, "a", "sub"), 0o710); err != nil {
		t.Fatal(err)
	}
	want := describe(t, src)
	r := newRepo(t)
	snap := backup(t, r, src)

	// Into a target that does not exist: the dry run lists the parents it
	// would create, the restore creates them with the snapshot's metadata.
	dst := filepath.Join(t.TempDir(), "new")
	dry := restorePaths(t, r, snap.ID, dst, Mirror, true, "a/sub/deeper")
	if !reflect.DeepEqual(dry.Paths, []string{"+ a", "+ a/sub", "+ a/sub/deeper", "+ a/sub/deeper/x"}) {
		t.Errorf("dry run into nothing: %q", dry.Paths)
	}
	if _, err := os.Lstat(dst); !os.IsNotExist(err) {
		t.Fatalf("a dry run created the target: %v", err)
	}
	res := restorePaths(t, r, snap.ID, dst, Mirror, false, "a/sub/deeper")
	if res.Creates != 4 || !res.Verified {
		t.Errorf("restore into nothing: %+v", res)
	}
	got := describe(t, dst)
	for _, p := range []string{".", "a", "a/sub", "a/sub/deeper", "a/sub/deeper/x"} {
		if got[p] != want[p] {
			t.Errorf("%s: %s, want %s", p, got[p], want[p])
		}
	}
	if len(got) != 5 {
		t.Errorf("restored %d entries, want 5: %v", len(got), got)
	}

	// Into an existing tree whose "a" exists with other metadata: "a" keeps
	// its owner and mode (its modification time changes, as with any new
	// entry in a directory), "a/sub" is created with the snapshot's.
	dst = t.TempDir()
	os.Mkdir(filepath.Join(dst, "a"), 0o700)
	noTime := func(line string) string { return line[:strings.Index(line, " mtime=")] }
	beforeA := noTime(describe(t, dst)["a"])
	restorePaths(t, r, snap.ID, dst, Merge, false, "a/sub/deep")
	got = describe(t, dst)
	if noTime(got["a"]) != beforeA || !strings.HasPrefix(beforeA, "drwx------ ") {
		t.Errorf("existing parent a changed: %s, was %s", got["a"], beforeA)
	}
	if got["a/sub"] != want["a/sub"] || got["a/sub/deep"] != want["a/sub/deep"] {
		t.Errorf("a/sub: %s\nwant %s", got["a/sub"], want["a/sub"])
	}
}

func TestRestorePathsMissingFromTheSnapshotWriteNothing(t *testing.T) {
	src := pathsTree(t)
	r := newRepo(t)
	snap := backup(t, r, src)
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r, snap.ID, dst, Merge, false)
	change(t, dst)
	before := describe(t, dst)
	for _, paths := range [][]string{{"nope"}, {"a", "zz/nope"}, {"a/one/below-a-file", "b", "a/missing"}, {"a.b/x"}} {
		for _, mode := range []RestoreMode{Merge, Mirror} {
			_, err := Restore(context.Background(), r, RestoreOptions{Snapshot: snap.ID, Target: dst, Mode: mode, Paths: paths})
			if err == nil || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("%q: want an error, got %v", paths, err)
			}
			for _, p := range paths {
				if p != "a" && p != "b" && !strings.Contains(err.Error(), `"`+p+`"`) {
					t.Errorf("%q: the error does not name %q: %v", paths, p, err)
				}
			}
		}
	}
	requireSameTree(t, before, describe(t, dst))
	// Not even the target is created.
	fresh := filepath.Join(t.TempDir(), "fresh")
	if _, err := Restore(context.Background(), r, RestoreOptions{Snapshot: snap.ID, Target: fresh, Paths: []string{"a", "nope"}}); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Lstat(fresh); !os.IsNotExist(err) {
		t.Errorf("the target was created: %v", err)
	}
}

func TestRestorePathsRefuseAFileOrSymlinkWhereAParentGoes(t *testing.T) {
	src := pathsTree(t)
	r := newRepo(t)
	snap := backup(t, r, src)

	dst := t.TempDir()
	writeFiles(t, dst, map[string]string{"a": "a file where the snapshot has a directory", "b/one": "keep"})
	before := describe(t, dst)
	_, err := Restore(context.Background(), r, RestoreOptions{Snapshot: snap.ID, Target: dst, Mode: Mirror, Paths: []string{"b", "a/sub"}})
	if err == nil || !strings.Contains(err.Error(), `a file at "a"`) || !strings.Contains(err.Error(), `restore "a" instead`) {
		t.Fatalf("want a refusal naming a, got %v", err)
	}
	requireSameTree(t, before, describe(t, dst))
	// Restoring "a" itself replaces the file: it is selected.
	restorePaths(t, r, snap.ID, dst, Merge, false, "a")
	if info, err := os.Lstat(filepath.Join(dst, "a")); err != nil || !info.IsDir() {
		t.Fatalf("a: %v %v", info, err)
	}

	// A symlink where a parent goes is never followed.
	outside := t.TempDir()
	dst = t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dst, "a")); err != nil {
		t.Fatal(err)
	}
	_, err = Restore(context.Background(), r, RestoreOptions{Snapshot: snap.ID, Target: dst, Paths: []string{"a/sub"}})
	if err == nil || !strings.Contains(err.Error(), `a symlink at "a"`) {
		t.Fatalf("want a refusal naming the symlink a, got %v", err)
	}
	if names, _ := os.ReadDir(outside); len(names) != 0 {
		t.Errorf("restore wrote through a symlink: %v", names)
	}
}

// TestRestorePathsWithHardLinksAcrossTheSelection: a file hard-linked to
// one outside the selection is restored as a file of its own, and replacing
// it in the target leaves its link partner outside alone.
func TestRestorePathsWithHardLinksAcrossTheSelection(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a/f": "linked content", "b/keep": "b"})
	if err := os.Link(filepath.Join(src, "a/f"), filepath.Join(src, "b/f")); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	snap := backup(t, r, src)

	dst := t.TempDir()
	restorePaths(t, r, snap.ID, dst, Merge, false, "b")
	if data, err := os.ReadFile(filepath.Join(dst, "b/f")); err != nil || string(data) != "linked content" {
		t.Fatalf("b/f: %q %v", data, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "a")); !os.IsNotExist(err) {
		t.Errorf("a, not selected, exists: %v", err)
	}

	dst = t.TempDir()
	restore(t, r, snap.ID, dst, Merge, false)
	os.WriteFile(filepath.Join(dst, "a/f"), []byte("changed through both links"), 0o644)
	restorePaths(t, r, snap.ID, dst, Merge, false, "a")
	if data, _ := os.ReadFile(filepath.Join(dst, "a/f")); string(data) != "linked content" {
		t.Errorf("a/f = %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(dst, "b/f")); string(data) != "changed through both links" {
		t.Errorf("b/f, outside the selection, = %q", data)
	}
}

func TestCheckPaths(t *testing.T) {
	for _, ok := range [][]string{nil, {"a"}, {"a/b", "a.b", "a-b", ".hidden", "x/..."}} {
		if err := CheckPaths(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, c := range []struct {
		paths []string
		msg   string
	}{
		{[]string{"/a"}, `write "a"`},
		{[]string{"a/"}, `write "a"`},
		{[]string{"a/../b"}, `".." element`},
		{[]string{"./a"}, `write "a"`},
		{[]string{"a//b"}, `write "a/b"`},
		{[]string{"."}, "leave out the paths"},
		{[]string{""}, "empty path"},
		{[]string{"a", "a"}, "listed twice"},
		{[]string{"a/b", "a"}, `"a/b" is beneath path "a"`},
		{[]string{"a\x00"}, "NUL"},
		{[]string{strings.Repeat("x", MaxPathLength+1)}, "longer than 4096"},
	} {
		if err := CheckPaths(c.paths); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: want an error saying %q, got %v", c.paths, c.msg, err)
		}
	}
}

// TestRestorePathsReadNothingOutside: the content of files outside the
// selection is never read. With the stored data of b/ damaged, a restore of
// a/ succeeds and verifies, while a restore of b/ (or everything) fails.
func TestRestorePathsReadNothingOutside(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a/f": randomText(5, 20000), "b/f": randomText(6, 200000), "c/f": "c"})
	r := newRepo(t)
	snap := backup(t, r, src)
	if err := r.LoadIndex(); err != nil {
		t.Fatal(err)
	}
	b := entries(t, r, snap)["b/f"]
	if b == nil || len(b.Chunks) == 0 {
		t.Fatal("no chunks for b/f")
	}
	for _, id := range b.Chunks {
		loc, ok := r.Lookup(id)
		if !ok {
			t.Fatalf("chunk %s of b/f is not in the index", id.Short())
		}
		s := loc.Pack.String()
		pack := filepath.Join(r.Dir, "packs", s[:2], s)
		f, err := os.OpenFile(pack, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("damage"), loc.Offset+int64(loc.Length)/2); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}

	dst := t.TempDir()
	res := restorePaths(t, r, snap.ID, dst, Mirror, false, "a", "c")
	if !res.Verified || res.FilesWritten != 2 {
		t.Errorf("restore of a and c: %+v", res)
	}
	if data, err := os.ReadFile(filepath.Join(dst, "a/f")); err != nil || string(data) != randomText(5, 20000) {
		t.Errorf("a/f: %v", err)
	}
	for _, paths := range [][]string{{"b"}, nil} {
		if _, err := Restore(context.Background(), r, RestoreOptions{Snapshot: snap.ID, Target: t.TempDir(), Paths: paths}); err == nil {
			t.Errorf("restore of %q succeeded from damaged data of b/f: the damage does not bite, the test proves nothing", paths)
		}
	}
}
