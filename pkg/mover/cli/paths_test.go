package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"example.com/backup-operator/pkg/mover/report"
)

// TestRestorePathFlags: --path limits restore and diff to the paths given;
// a malformed path is a usage error (2), one the snapshot lacks a failure
// (1) that names it, with nothing written.
func TestRestorePathFlags(t *testing.T) {
	dir := t.TempDir()
	repoDir, src, dst := filepath.Join(dir, "repo"), filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for p, content := range map[string]string{"a/f": "a", "b/f": "b", "-x/f": "dash", "top": "top"} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), []byte(content), 0o644)
	}
	if code := Main([]string{"backup", "--repo", repoDir, "--source", src}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("backup exited %d", code)
	}
	os.MkdirAll(filepath.Join(dst, "a"), 0o755)
	os.MkdirAll(filepath.Join(dst, "b"), 0o755)
	os.WriteFile(filepath.Join(dst, "a/extra"), []byte("extra"), 0o644)
	os.WriteFile(filepath.Join(dst, "b/extra"), []byte("extra"), 0o644)
	base := []string{"--repo", repoDir, "--snapshot", "latest", "--target", dst}
	summary := filepath.Join(dir, "summary")

	for _, c := range []struct {
		want int
		args []string
		says string
	}{
		{2, []string{"restore", "--path", "/a"}, `write "a"`},
		{2, []string{"restore", "--path=a/../b"}, `".." element`},
		{2, []string{"diff", "--path", "a/"}, `write "a"`},
		{2, []string{"restore", "--path", "a", "--path", "a/f"}, "beneath"},
		{1, []string{"restore", "--mode", "mirror", "--path", "a", "--path", "nope"}, `holds no "nope"; nothing was written`},
	} {
		var stderr bytes.Buffer
		if got := Main(append(c.args, base...), io.Discard, &stderr); got != c.want || !strings.Contains(stderr.String(), c.says) {
			t.Errorf("backup-mover %v exited %d saying %q; want %d saying %q", c.args, got, stderr.String(), c.want, c.says)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "a/extra")); err != nil {
		t.Fatalf("a refused restore deleted a/extra: %v", err)
	}

	// diff --path lists only what changes beneath the path.
	var out bytes.Buffer
	if code := Main(append([]string{"diff", "--mode", "mirror", "--path", "a", "--summary-file", summary}, base...), &out, io.Discard); code != 0 {
		t.Fatalf("diff exited %d: %s", code, out.String())
	}
	var s report.Summary
	data, _ := os.ReadFile(summary)
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if s.Operation != "diff" || !reflect.DeepEqual(s.Paths, []string{"- a/extra", "+ a/f"}) {
		t.Errorf("diff summary: %+v", s)
	}
	if !strings.Contains(out.String(), "at or beneath a\n") {
		t.Errorf("diff output does not name the selection:\n%s", out.String())
	}

	// A path that looks like a flag is a path in the --path=VALUE form.
	if code := Main(append([]string{"restore", "--mode", "mirror", "--path", "a", "--path=-x", "--summary-file", summary}, base...), io.Discard, io.Discard); code != 0 {
		t.Fatalf("restore exited %d", code)
	}
	data, _ = os.ReadFile(summary)
	json.Unmarshal(data, &s)
	if !reflect.DeepEqual(s.Paths, []string{"+ -x", "+ -x/f", "- a/extra", "+ a/f"}) || s.Files != 2 || !s.Verified {
		t.Errorf("restore summary: %+v", s)
	}
	for p, want := range map[string]bool{"a/f": true, "a/extra": false, "b/extra": true, "b/f": false, "top": false, "-x/f": true} {
		if _, err := os.Stat(filepath.Join(dst, p)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", p, err == nil, want)
		}
	}
}
