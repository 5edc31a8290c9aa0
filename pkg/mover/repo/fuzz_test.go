package repo

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeEntry: no input may crash the decoder, and every entry it accepts
// has a path that stays beneath any root it is joined to.
func FuzzDecodeEntry(f *testing.F) {
	for _, e := range []Entry{
		{Path: ".", Type: TypeDir, Mode: 0o755},
		{Path: "a/b", Type: TypeFile, Mode: 0o644, UID: 1, GID: 1, MTime: 5, Size: 3, Chunks: []ID{{0xab}}},
		{Path: "../x", Type: TypeSymlink, Mode: 0o777, Target: "/etc"},
		{Path: "l", Type: TypeFile, Mode: 0o644, Size: 1, LinkGroup: 7, Inode: 9, Chunks: []ID{{1}, {2}}},
		{Path: "x", Type: TypeDir, Mode: 0o755, Xattrs: []Xattr{{Name: "system.posix_acl_access", Value: []byte{2, 0, 0, 0}}, {Name: "user.a", Value: nil}}},
	} {
		f.Add(AppendEntry(nil, &e))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := DecodeEntry(line)
		if err != nil {
			return
		}
		requireBeneath(t, e.Path)
		again, err := DecodeEntry(AppendEntry(nil, &e))
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("accepted entry does not survive re-encoding: %+v -> %+v, %v", e, again, err)
		}
	})
}

func TestEntryXattrs(t *testing.T) {
	ok := Entry{Path: "f", Type: TypeFile, Mode: 0o640, Size: 1, Chunks: []ID{{1}},
		Xattrs: []Xattr{{Name: "security.capability", Value: []byte{1, 2}}, {Name: "user.empty", Value: []byte{}}, {Name: "user.z", Value: []byte("v")}}}
	got, err := DecodeEntry(AppendEntry(nil, &ok))
	if err != nil || !reflect.DeepEqual(got, ok) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	plain := Entry{Path: "f", Type: TypeFile, Mode: 0o640}
	if a, b := len(AppendEntry(nil, &plain)), len(AppendEntry(nil, &Entry{Path: "f", Type: TypeFile, Mode: 0o640, Xattrs: []Xattr{}})); a != b {
		t.Errorf("an entry without extended attributes grew from %d to %d bytes", a, b)
	}
	for name, e := range map[string]Entry{
		"unsorted":  {Path: "f", Type: TypeFile, Xattrs: []Xattr{{Name: "user.b"}, {Name: "user.a"}}},
		"duplicate": {Path: "f", Type: TypeFile, Xattrs: []Xattr{{Name: "user.a"}, {Name: "user.a"}}},
		"empty":     {Path: "f", Type: TypeFile, Xattrs: []Xattr{{Name: ""}}},
		"long":      {Path: "f", Type: TypeFile, Xattrs: []Xattr{{Name: "user." + strings.Repeat("n", 255)}}},
		"large":     {Path: "f", Type: TypeFile, Xattrs: []Xattr{{Name: "user.a", Value: make([]byte, 64<<10+1)}}},
		"symlink":   {Path: "l", Type: TypeSymlink, Target: "t", Xattrs: []Xattr{{Name: "user.a"}}},
	} {
		if _, err := DecodeEntry(AppendEntry(nil, &e)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A present but empty list is not the encoder's output: refused.
	if _, err := DecodeEntry(append(AppendEntry(nil, &plain), 0)); err == nil {
		t.Error("an empty extended attribute list was accepted")
	}
}

// FuzzValidatePath: an accepted path never leaves the root.
func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{".", "a", "a/b", "../a", "a/../../b", "/abs", "a//b", "a/./b", "..", "a/..", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidatePath(p) != nil {
			return
		}
		requireBeneath(t, p)
		if p != "." {
			// Parent of a valid path is valid too.
			if err := ValidatePath(Parent(p)); err != nil {
				t.Fatalf("parent of valid %q is invalid: %v", p, err)
			}
		}
	})
}

func requireBeneath(t *testing.T, p string) {
	t.Helper()
	root := "/restore/root"
	joined := filepath.Join(root, filepath.FromSlash(p))
	if joined != root && !strings.HasPrefix(joined, root+"/") {
		t.Fatalf("accepted path %q escapes the root: %s", p, joined)
	}
}

// FuzzDecodeIndex: no input may crash the index decoder or yield an entry
// with impossible bounds.
func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex(map[ID]Location{{0xef}: {Pack: ID{0xcd}, Offset: 0, Length: 10, RawLength: 12, Compressed: true}}))
	f.Add(encodeIndex(map[ID]Location{{1}: {Pack: ID{2}, Offset: 5, Length: 1}, {3}: {Pack: ID{4}, Offset: 1 << 40, Length: 1 << 20, RawLength: 1 << 21}}))
	f.Add([]byte("BKI2\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		locs, err := DecodeIndex(data)
		if err != nil {
			return
		}
		for _, l := range locs {
			if l.Offset < 0 || l.Length == 0 {
				t.Fatalf("impossible location accepted: %+v", l)
			}
		}
	})
}

func TestComparePathsMatchesWalkOrder(t *testing.T) {
	ordered := []string{".", "a", "a/b", "a/b/c", "a.b", "a0", "b", "b/a"}
	for i := range ordered {
		for j := range ordered {
			got := ComparePaths(ordered[i], ordered[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("ComparePaths(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestLocks(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	shared1, err := r.LockContext(context.Background(), Shared, 0)
	if err != nil {
		t.Fatal(err)
	}
	shared2, err := r.LockContext(context.Background(), Shared, 0)
	if err != nil {
		t.Fatalf("two shared locks must coexist: %v", err)
	}
	if _, err := r.LockContext(context.Background(), Exclusive, 0); err == nil {
		t.Fatal("exclusive lock granted while shared locks are held")
	}
	shared1.Unlock()
	shared2.Unlock()
	ex, err := r.LockContext(context.Background(), Exclusive, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.LockContext(context.Background(), Shared, 0); err == nil {
		t.Fatal("shared lock granted while an exclusive lock is held")
	}
	if !ex.Held() {
		t.Error("held lock reports not held")
	}
	ex.Unlock()
}
