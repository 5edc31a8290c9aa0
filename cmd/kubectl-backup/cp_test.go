package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSnapshotPath(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"/":                 "",
		".":                 "",
		"./":                "",
		"etc":               "etc",
		"/etc/app.conf":     "etc/app.conf",
		"etc//conf.d/./x/":  "etc/conf.d/x",
		"a b/c%d?e#f":       "a b/c%d?e#f",
		"...":               "...",
		"..data/..2026_x":   "..data/..2026_x",
		"pgdata/pg_wal/000": "pgdata/pg_wal/000",
	} {
		got, err := snapshotPath(in)
		if err != nil || got != want {
			t.Errorf("snapshotPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"..", "../etc", "etc/../../x", "a/.."} {
		if got, err := snapshotPath(in); err == nil || !strings.Contains(err.Error(), `".." is not allowed`) {
			t.Errorf("snapshotPath(%q) = %q, %v; want a refusal", in, got, err)
		}
	}
}

func TestParseSource(t *testing.T) {
	for _, c := range []struct{ in, backup, path string }{
		{"db-202611260200:etc/app.conf", "db-202611260200", "etc/app.conf"},
		{"db:", "db", ""},
		{"db:/", "db", ""},
		{"db:dir/with:colon", "db", "dir/with:colon"},
	} {
		b, p, err := parseSource(c.in)
		if err != nil || b != c.backup || p != c.path {
			t.Errorf("parseSource(%q) = %q, %q, %v; want %q, %q", c.in, b, p, err, c.backup, c.path)
		}
	}
	for _, in := range []string{"db", ":etc", "", "db:../x"} {
		if _, _, err := parseSource(in); err == nil {
			t.Errorf("parseSource(%q) was accepted", in)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{"a": true, ".hidden": true, "...": true, "": false, ".": false, "..": false, "a/b": false, "nul\x00": false} {
		if validName(name) != want {
			t.Errorf("validName(%q) = %v", name, !want)
		}
	}
}

func TestCopySummary(t *testing.T) {
	if got, want := copySummary(1, 123, 0, 0), "1 file (123 bytes, 123 B)"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got, want := copySummary(3, 5<<20, 1, 2), "3 files (5242880 bytes, 5.0 MiB), 1 directory, 2 symlinks"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got, want := copySummary(0, 0, 0, 1), "1 symlink"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got, want := copySummary(0, 0, 2, 0), "2 directories"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got, want := copySummary(0, 0, 0, 0), "0 files (0 bytes, 0 B)"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

// entries lists dir's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "app.conf")
	mtime := time.Date(2026, 11, 30, 12, 0, 0, 123456000, time.UTC)
	n, err := writeFile(local, strings.NewReader("key = value\n"), 12, 0o640, mtime)
	if err != nil || n != 12 {
		t.Fatalf("writeFile: %d, %v", n, err)
	}
	fi, err := os.Lstat(local)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o640 || !fi.ModTime().Equal(mtime) || fi.Size() != 12 {
		t.Errorf("written file: mode %v, mtime %v, size %d", fi.Mode(), fi.ModTime(), fi.Size())
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory after the write: %q, want only app.conf", got)
	}

	// Read-only and setuid bits: the content is written, the permission
	// bits (only) set after.
	if _, err := writeFile(filepath.Join(dir, "ro"), strings.NewReader("x"), 1, 0o4444, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ro")); err != nil || fi.Mode() != 0o444 {
		t.Errorf("read-only file: %v, %v", fi.Mode(), err)
	}

	// Fewer bytes than announced, or a read that fails: the file under its
	// name stays as it was, no temporary file is left.
	if _, err := writeFile(local, strings.NewReader("short"), 12, 0o644, mtime); err == nil || !strings.Contains(err.Error(), "5 bytes of 12") {
		t.Errorf("a short read: %v", err)
	}
	broken := io.MultiReader(strings.NewReader("partial"), errReader{errors.New("connection reset")})
	if _, err := writeFile(local, broken, -1, 0o644, mtime); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("a failed read: %v", err)
	}
	if data, err := os.ReadFile(local); err != nil || string(data) != "key = value\n" {
		t.Errorf("after failed writes the file holds %q, %v", data, err)
	}
	if got := entries(t, dir); strings.Join(got, ",") != "app.conf,ro" {
		t.Errorf("directory after failed writes: %q", got)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestWriteSymlink(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "link")
	mtime := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := writeSymlink(local, "../nowhere/app.conf", mtime); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(local); err != nil || target != "../nowhere/app.conf" {
		t.Errorf("link target %q, %v", target, err)
	}
	if fi, err := os.Lstat(local); err != nil || !fi.ModTime().Equal(mtime) {
		t.Errorf("link time: %v, %v; want %v", fi.ModTime(), err, mtime)
	}
	// Over an existing file: the file is replaced by the link, not written through.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSymlink(file, "link", mtime); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(file); err != nil || target != "link" {
		t.Errorf("replaced file: target %q, %v", target, err)
	}
	if got := entries(t, dir); strings.Join(got, ",") != "file,link" {
		t.Errorf("directory after the links: %q", got)
	}
}
