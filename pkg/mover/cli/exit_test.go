package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"example.com/backup-operator/pkg/mover/repo"
)

func TestExitCode(t *testing.T) {
	_, tagErr := parseTags([]string{"novalue"})
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"success", nil, 0},
		{"failure", errors.New("writing pack: no space left on device"), 1},
		{"usage", usageError{errors.New("unknown flag: --bogus")}, 2},
		{"wrapped usage", fmt.Errorf("restore: %w", usageError{errors.New("bad --mode")}), 2},
		{"bad --tag", tagErr, 2},
		{"locked", fmt.Errorf("%w: held by a backup", repo.ErrLocked), 1},
		{"not a repository", fmt.Errorf("opening: %w", repo.ErrNotRepository), 1},
		{"interrupted", context.Canceled, 1},
		// What an error says does not matter, only what it is.
		{"damage that says unknown", errors.New(`manifest entry "a" has unknown type 9`), 1},
		{"path that says unknown", &os.PathError{Op: "lstat", Path: "/data/unknown", Err: os.ErrNotExist}, 1},
		{"failure that says required flag", errors.New("required flag missing from the config"), 1},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("%s: exitCode(%v) = %d, want %d", c.name, c.err, got, c.want)
		}
	}
}

func TestMainExitCodes(t *testing.T) {
	dir := t.TempDir()
	repoDir, src := filepath.Join(dir, "repo"), filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
	cases := []struct {
		want int
		args []string
	}{
		{0, []string{"backup", "--repo", repoDir, "--source", src}},
		{0, []string{"verify", "--repo", repoDir}},
		{2, []string{"bogus"}},
		{2, []string{"ls"}},
		{2, []string{"ls", "--repo", repoDir, "--bogus"}},
		{2, []string{"ls", "--repo", repoDir, "extra-argument"}},
		{2, []string{"prune", "--repo", repoDir, "--lock-wait", "soon"}},
		{2, []string{"backup", "--repo", repoDir}},
		{2, []string{"backup", "--repo", repoDir, "--source", src, "--tag", "novalue"}},
		{2, []string{"restore", "--repo", repoDir, "--snapshot", "latest", "--target", filepath.Join(dir, "t"), "--mode", "sideways"}},
		{1, []string{"backup", "--repo", repoDir, "--source", filepath.Join(dir, "unknown")}},
		{1, []string{"ls", "--repo", filepath.Join(dir, "none")}},
		{1, []string{"restore", "--repo", repoDir, "--snapshot", "0000000000", "--target", filepath.Join(dir, "t")}},
	}
	for _, c := range cases {
		if got := Main(c.args, io.Discard, io.Discard); got != c.want {
			t.Errorf("backup-mover %v exited %d, want %d", c.args, got, c.want)
		}
	}
}
