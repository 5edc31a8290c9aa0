package cli_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.com/backup-operator/hack/cluster"
	"example.com/backup-operator/pkg/mover/cli"
	"example.com/backup-operator/pkg/mover/repo"
	"example.com/backup-operator/pkg/mover/report"
)

// serveLog collects a reader's stderr and finds the address it serves on.
type serveLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func newServeLog() *serveLog { return &serveLog{wrote: make(chan struct{}, 1)} }

func (l *serveLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return l.buf.Write(p)
}

func (l *serveLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

var servingOn = regexp.MustCompile(`serving .* on (\S+) \(`)

// address waits for the line that names the address served on.
func (l *serveLog) address(t *testing.T, exited <-chan int) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		if m := servingOn.FindStringSubmatch(l.String()); m != nil {
			return "http://" + m[1]
		}
		select {
		case <-l.wrote:
		case code := <-exited:
			t.Fatalf("backup-mover serve exited %d before serving:\n%s", code, l)
		case <-deadline:
			t.Fatalf("backup-mover serve did not start serving:\n%s", l)
		}
	}
}

// reader is a running `backup-mover serve`.
type reader struct {
	url    string
	log    *serveLog
	exited chan int // its exit code, once
}

// startServe runs `backup-mover serve` in this process on a free port of
// the loopback interface.
func startServe(t *testing.T, args ...string) *reader {
	t.Helper()
	r := &reader{log: newServeLog(), exited: make(chan int, 1)}
	args = append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)
	go func() { r.exited <- cli.Main(args, io.Discard, r.log) }()
	r.url = r.log.address(t, r.exited)
	t.Cleanup(func() {
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			t.Errorf("backup-mover serve still runs 30 s after the test")
		}
	})
	return r
}

// waitExit returns the exit code and how long the reader took to exit.
func (r *reader) waitExit(t *testing.T, within time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case code := <-r.exited:
		r.exited <- code
		return code, time.Since(start)
	case <-time.After(within):
		t.Fatalf("backup-mover serve still runs after %s:\n%s", within, r.log)
		return 0, 0
	}
}

// running reports whether the reader has not exited.
func (r *reader) running() bool {
	select {
	case code := <-r.exited:
		r.exited <- code
		return false
	default:
		return true
	}
}

// fileURL is the URL of a snapshot path, each component escaped.
func fileURL(base, snap, p string) string {
	u := base + "/v1/snapshots/" + snap + "/files"
	if p != "" {
		parts := strings.Split(p, "/")
		for i, s := range parts {
			parts[i] = url.PathEscape(s)
		}
		u += "/" + strings.Join(parts, "/")
	}
	return u
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, u string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, u, err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

type listing struct {
	Path  string `json:"path"`
	Items []struct {
		Name       string    `json:"name"`
		Type       string    `json:"type"`
		Size       int64     `json:"size"`
		Mode       uint32    `json:"mode"`
		UID        uint32    `json:"uid"`
		GID        uint32    `json:"gid"`
		ModTime    time.Time `json:"modTime"`
		LinkTarget string    `json:"linkTarget"`
	} `json:"items"`
}

type apiError struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func mustDo(t *testing.T, u string) []byte {
	t.Helper()
	r := do(t, http.MethodGet, u, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, r.status, r.body)
	}
	return r.body
}

// backupJSON backs up src in this process and returns the snapshot ID.
func backupJSON(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	args = append([]string{"backup", "--json"}, args...)
	if code := cli.Main(args, &out, &out); code != 0 {
		t.Fatalf("backup-mover %v exited %d:\n%s", args, code, out.String())
	}
	var s struct {
		SnapshotID string `json:"snapshotID"`
	}
	if err := json.Unmarshal([]byte(lastLine(out.String())), &s); err != nil || s.SnapshotID == "" {
		t.Fatalf("backup result %q: %v", lastLine(out.String()), err)
	}
	return s.SnapshotID
}

// serveFixture is a backed-up tree every read-only test serves.
type serveFixture struct {
	src, repo, snap string
	big             []byte
	// boundaries are offsets in big where one chunk ends and the next begins.
	boundaries []int64
}

var (
	fixtureOnce sync.Once
	fixture     *serveFixture
	fixtureErr  error
)

// bigSize is the size of the file of several chunks.
const bigSize = 20 << 20

func getFixture(t *testing.T) *serveFixture {
	t.Helper()
	fixtureOnce.Do(func() { fixture, fixtureErr = makeFixture(t) })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixture
}

func makeFixture(t *testing.T) (*serveFixture, error) {
	// Beside the test binary's build, removed by TestMain: tests share it.
	base, err := os.MkdirTemp(filepath.Dir(mover), "serve-")
	if err != nil {
		return nil, err
	}
	f := &serveFixture{src: filepath.Join(base, "src"), repo: filepath.Join(base, "repo")}
	f.big = make([]byte, bigSize)
	rand.New(rand.NewSource(7)).Read(f.big)
	mtime := time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC)
	type node struct {
		path, link string
		data       []byte
		mode       fs.FileMode
		dir        bool
	}
	nodes := []node{
		{path: "big.bin", data: f.big, mode: 0o644},
		{path: "dir with space", dir: true, mode: 0o755},
		{path: "dir with space/ü%#?.txt", data: []byte("escaped\n"), mode: 0o600},
		{path: "empty", dir: true, mode: 0o700},
		{path: "etc", dir: true, mode: 0o755},
		{path: "etc/app.conf", data: []byte("listen = 8080\n"), mode: 0o640},
		{path: "etc/link", link: "app.conf"},
		{path: "etc/setuid", data: []byte("#!/bin/sh\n"), mode: 0o755 | fs.ModeSetuid},
		{path: "etc/sub", dir: true, mode: 0o750},
		{path: "etc/sub/deep.txt", data: []byte("deep\n"), mode: 0o644},
		{path: "zz", data: []byte("after etc's subtree\n"), mode: 0o644},
	}
	for _, n := range nodes {
		p := filepath.Join(f.src, n.path)
		switch {
		case n.dir:
			err = os.MkdirAll(p, 0o755)
		case n.link != "":
			err = os.Symlink(n.link, p)
		default:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.WriteFile(p, n.data, 0o644)
			}
		}
		if err == nil && n.link == "" {
			err = os.Chmod(p, n.mode)
		}
		if err != nil {
			return nil, err
		}
	}
	// Times last: writing into a directory changes its time.
	for i := len(nodes) - 1; i >= 0; i-- {
		if err := os.Chtimes(filepath.Join(f.src, nodes[i].path), mtime, mtime); nodes[i].link == "" && err != nil {
			return nil, err
		}
	}
	f.snap = backupJSON(t, "--repo", f.repo, "--source", f.src)
	f.boundaries, err = chunkBoundaries(f.repo, f.snap, "big.bin")
	if err != nil {
		return nil, err
	}
	if len(f.boundaries) < 3 {
		return nil, fmt.Errorf("big.bin is %d chunks; the range tests need several", len(f.boundaries)+1)
	}
	return f, nil
}

// chunkBoundaries returns the offsets at which a file's chunks begin,
// but the first, from the repository's index.
func chunkBoundaries(repoDir, snap, p string) ([]int64, error) {
	r, err := repo.Open(repoDir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := r.LoadIndex(); err != nil {
		return nil, err
	}
	id, err := r.ResolveSnapshot(snap)
	if err != nil {
		return nil, err
	}
	s, err := r.LoadSnapshot(id)
	if err != nil {
		return nil, err
	}
	m, err := r.OpenManifest(s.Manifest)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	for {
		e, err := m.Next()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if e.Path != p {
			continue
		}
		var out []int64
		var off int64
		for _, c := range e.Chunks[:len(e.Chunks)-1] {
			loc, ok := r.Lookup(c)
			if !ok {
				return nil, fmt.Errorf("chunk %s of %s is not indexed", c.Short(), p)
			}
			off += int64(loc.RawLength)
			out = append(out, off)
		}
		return out, nil
	}
}

// repoState lists a repository's files with their sizes and times.
func repoState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d %d\n", p, info.Mode(), info.Size(), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestServe reads a snapshot through `backup-mover serve`: listings of the
// root and of nested directories, a file whole and in ranges, a symlink, an
// empty directory, and the errors; the repository is not changed.
func TestServe(t *testing.T) {
	f := getFixture(t)
	before := repoState(t, f.repo)
	r := startServe(t, "--repo", f.repo, "--idle-timeout", "1m")
	defer func() {
		syscall.Kill(os.Getpid(), syscall.SIGINT) // Main's handler takes it
		if code, _ := r.waitExit(t, 30*time.Second); code != 0 {
			t.Errorf("serve exited %d after SIGINT", code)
		}
		if after := repoState(t, f.repo); after != before {
			t.Errorf("serving changed the repository:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	}()
	snap := f.snap

	t.Run("healthz", func(t *testing.T) {
		if got := string(mustDo(t, r.url+"/healthz")); got != "ok" {
			t.Errorf("healthz: %q", got)
		}
	})

	checkListing := func(t *testing.T, p string, wantPath string, wantNames ...string) listing {
		t.Helper()
		resp := do(t, http.MethodGet, fileURL(r.url, snap, p), nil)
		if resp.status != 200 || resp.header.Get("Content-Type") != "application/json" || resp.header.Get("X-Backup-Entry-Type") != "Directory" {
			t.Fatalf("GET %q: %d %v %s", p, resp.status, resp.header, resp.body)
		}
		var l listing
		if err := json.Unmarshal(resp.body, &l); err != nil {
			t.Fatalf("GET %q: %v in %s", p, err, resp.body)
		}
		var names []string
		for _, it := range l.Items {
			names = append(names, it.Name)
			// Every field against the source.
			src := filepath.Join(f.src, filepath.FromSlash(wantPath), it.Name)
			if wantPath == "." {
				src = filepath.Join(f.src, it.Name)
			}
			info, err := os.Lstat(src)
			if err != nil {
				t.Errorf("%s: %v", it.Name, err)
				continue
			}
			st := info.Sys().(*syscall.Stat_t)
			wantType, wantSize, wantTarget := "File", info.Size(), ""
			switch {
			case info.IsDir():
				wantType, wantSize = "Directory", 0
			case info.Mode()&fs.ModeSymlink != 0:
				wantType, wantSize = "Symlink", 0
				wantTarget, _ = os.Readlink(src)
			}
			if it.Type != wantType || it.Size != wantSize || it.Mode != st.Mode&0o7777 || it.UID != st.Uid || it.GID != st.Gid ||
				!it.ModTime.Equal(info.ModTime()) || it.LinkTarget != wantTarget {
				t.Errorf("%s/%s: %+v; want %s, %d bytes, mode %o, %d:%d, %s, target %q", wantPath, it.Name, it,
					wantType, wantSize, st.Mode&0o7777, st.Uid, st.Gid, info.ModTime().UTC().Format(time.RFC3339Nano), wantTarget)
			}
		}
		if l.Path != wantPath || strings.Join(names, ",") != strings.Join(wantNames, ",") {
			t.Errorf("GET %q: path %q items %q; want %q, %q", p, l.Path, names, wantPath, wantNames)
		}
		return l
	}

	t.Run("root", func(t *testing.T) {
		for _, p := range []string{"", "."} {
			checkListing(t, p, ".", "big.bin", "dir with space", "empty", "etc", "zz")
		}
		// A prefix of the ID names the snapshot too.
		resp := do(t, http.MethodGet, fileURL(r.url, snap[:12], ""), nil)
		if resp.status != 200 {
			t.Errorf("by a 12-digit prefix: %d %s", resp.status, resp.body)
		}
	})
	t.Run("nested", func(t *testing.T) {
		l := checkListing(t, "etc", "etc", "app.conf", "link", "setuid", "sub")
		if l.Items[2].Mode != 0o4755 {
			t.Errorf("setuid file: mode %o, want 4755", l.Items[2].Mode)
		}
		checkListing(t, "etc/sub", "etc/sub", "deep.txt")
		checkListing(t, "dir with space", "dir with space", "ü%#?.txt")
	})
	t.Run("empty directory", func(t *testing.T) {
		checkListing(t, "empty", "empty")
		if body := mustDo(t, fileURL(r.url, snap, "empty")); !bytes.Contains(body, []byte(`"items":[]`)) {
			t.Errorf("empty directory: %s", body)
		}
	})
	t.Run("symlink", func(t *testing.T) {
		resp := do(t, http.MethodGet, fileURL(r.url, snap, "etc/link"), nil)
		var l listing
		json.Unmarshal(resp.body, &l)
		if resp.status != 200 || resp.header.Get("X-Backup-Entry-Type") != "Symlink" || l.Path != "etc/link" ||
			len(l.Items) != 1 || l.Items[0].Name != "link" || l.Items[0].Type != "Symlink" || l.Items[0].LinkTarget != "app.conf" {
			t.Errorf("symlink: %d %s %s", resp.status, resp.header.Get("X-Backup-Entry-Type"), resp.body)
		}
	})
	t.Run("small files", func(t *testing.T) {
		for _, p := range []string{"etc/app.conf", "etc/sub/deep.txt", "dir with space/ü%#?.txt", "zz"} {
			want, _ := os.ReadFile(filepath.Join(f.src, p))
			resp := do(t, http.MethodGet, fileURL(r.url, snap, p), nil)
			if resp.status != 200 || !bytes.Equal(resp.body, want) || resp.header.Get("X-Backup-Entry-Type") != "File" ||
				resp.header.Get("Content-Type") != "application/octet-stream" {
				t.Errorf("%s: %d %v %q; want %q", p, resp.status, resp.header, resp.body, want)
			}
		}
	})
	t.Run("whole file", func(t *testing.T) {
		resp := do(t, http.MethodGet, fileURL(r.url, snap, "big.bin"), nil)
		if resp.status != 200 || !bytes.Equal(resp.body, f.big) {
			t.Fatalf("big.bin: %d, %d bytes (want %d, equal: %v)", resp.status, len(resp.body), len(f.big), bytes.Equal(resp.body, f.big))
		}
		info, _ := os.Stat(filepath.Join(f.src, "big.bin"))
		if resp.header.Get("Content-Length") != fmt.Sprint(bigSize) || resp.header.Get("Last-Modified") != info.ModTime().UTC().Format(http.TimeFormat) ||
			resp.header.Get("X-Backup-Entry-Type") != "File" || resp.header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("big.bin headers: %v", resp.header)
		}
		head := do(t, http.MethodHead, fileURL(r.url, snap, "big.bin"), nil)
		if head.status != 200 || len(head.body) != 0 || head.header.Get("Content-Length") != fmt.Sprint(bigSize) {
			t.Errorf("HEAD big.bin: %d, %d bytes, %v", head.status, len(head.body), head.header)
		}
	})
	t.Run("ranges", func(t *testing.T) {
		b := f.boundaries[len(f.boundaries)/2]
		for _, c := range []struct {
			name, header string
			from, to     int64 // inclusive
		}{
			{"start", "bytes=0-99", 0, 99},
			{"across a chunk boundary", fmt.Sprintf("bytes=%d-%d", b-1000, b+999), b - 1000, b + 999},
			{"suffix", "bytes=-10", bigSize - 10, bigSize - 1},
			{"open-ended, from the middle of a chunk", fmt.Sprintf("bytes=%d-", f.boundaries[0]+12345), f.boundaries[0] + 12345, bigSize - 1},
		} {
			resp := do(t, http.MethodGet, fileURL(r.url, snap, "big.bin"), map[string]string{"Range": c.header})
			want := fmt.Sprintf("bytes %d-%d/%d", c.from, c.to, bigSize)
			if resp.status != http.StatusPartialContent || resp.header.Get("Content-Range") != want || !bytes.Equal(resp.body, f.big[c.from:c.to+1]) {
				t.Errorf("%s (%s): %d %q, %d bytes; want 206 %q and the file's bytes", c.name, c.header, resp.status, resp.header.Get("Content-Range"), len(resp.body), want)
			}
		}
		// If-Range with the current validator honours the range; a stale one gets the whole file.
		whole := do(t, http.MethodHead, fileURL(r.url, snap, "big.bin"), nil)
		etag := whole.header.Get("ETag")
		resp := do(t, http.MethodGet, fileURL(r.url, snap, "big.bin"), map[string]string{"Range": "bytes=5-9", "If-Range": etag})
		if etag == "" || resp.status != http.StatusPartialContent || !bytes.Equal(resp.body, f.big[5:10]) {
			t.Errorf("If-Range %s: %d, %d bytes", etag, resp.status, len(resp.body))
		}
		resp = do(t, http.MethodGet, fileURL(r.url, snap, "big.bin"), map[string]string{"Range": "bytes=5-9", "If-Range": `"stale"`})
		if resp.status != 200 || len(resp.body) != bigSize {
			t.Errorf("stale If-Range: %d, %d bytes", resp.status, len(resp.body))
		}
		resp = do(t, http.MethodGet, fileURL(r.url, snap, "big.bin"), map[string]string{"If-Modified-Since": whole.header.Get("Last-Modified")})
		if resp.status != http.StatusNotModified || len(resp.body) != 0 {
			t.Errorf("If-Modified-Since its time: %d, %d bytes", resp.status, len(resp.body))
		}
		resp = do(t, http.MethodGet, fileURL(r.url, snap, "big.bin"), map[string]string{"Range": fmt.Sprintf("bytes=%d-", bigSize)})
		if resp.status != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("range past the end: %d", resp.status)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			name, method, url string
			code              int
			reason, message   string
		}{
			{"missing path", "GET", fileURL(r.url, snap, "etc/missing.conf"), 404, "NotFound", fmt.Sprintf("%q does not exist in snapshot %s", "etc/missing.conf", snap[:12])},
			{"beneath a file", "GET", fileURL(r.url, snap, "etc/app.conf/x"), 404, "NotFound", "does not exist"},
			{"past the last entry", "GET", fileURL(r.url, snap, "zzz"), 404, "NotFound", "does not exist"},
			{"missing snapshot", "GET", fileURL(r.url, strings.Repeat("0", 64), ""), 404, "NotFound", "snapshot 0000"},
			{"not a snapshot id", "GET", fileURL(r.url, "latest", ""), 404, "NotFound", "snapshot latest"},
			{"dot-dot", "GET", r.url + "/v1/snapshots/" + snap + "/files/etc/../etc", 400, "BadRequest", ".."},
			{"escaped dot-dot", "GET", r.url + "/v1/snapshots/" + snap + "/files/%2e%2e/x", 400, "BadRequest", ".."},
			{"absolute", "GET", r.url + "/v1/snapshots/" + snap + "/files//etc", 400, "BadRequest", "absolute"},
			{"empty component", "GET", r.url + "/v1/snapshots/" + snap + "/files/etc//app.conf", 400, "BadRequest", "empty"},
			{"trailing slash", "GET", r.url + "/v1/snapshots/" + snap + "/files/etc/", 400, "BadRequest", "empty"},
			{"POST", "POST", fileURL(r.url, snap, "etc"), 405, "MethodNotAllowed", "read-only"},
			{"DELETE", "DELETE", fileURL(r.url, snap, "big.bin"), 405, "MethodNotAllowed", "read-only"},
			{"unknown endpoint", "GET", r.url + "/v1/snapshots/" + snap, 404, "NotFound", "not served"},
		} {
			resp := do(t, c.method, c.url, nil)
			var e apiError
			if err := json.Unmarshal(resp.body, &e); err != nil || resp.status != c.code || e.Code != c.code || e.Reason != c.reason ||
				!strings.Contains(e.Message, c.message) || resp.header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: %d %s; want %d %s with %q", c.name, resp.status, resp.body, c.code, c.reason, c.message)
			}
			if c.code == 405 && resp.header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s: Allow %q", c.name, resp.header.Get("Allow"))
			}
		}
	})
	t.Run("log", func(t *testing.T) {
		log := r.log.String()
		for _, want := range []string{
			fmt.Sprintf(`GET "/v1/snapshots/%s/files/big.bin" 200 %d `, snap, bigSize),
			fmt.Sprintf(`GET "/v1/snapshots/%s/files/big.bin" 206 100 `, snap),
			fmt.Sprintf(`GET "/v1/snapshots/%s/files/etc/missing.conf" 404 `, snap),
		} {
			if !strings.Contains(log, want) {
				t.Errorf("no line with %q in the log:\n%s", want, log)
			}
		}
	})
}

// TestServeReadOnly: a reader that cannot write anywhere in the repository
// (another user, the repository's files and directories not writable)
// serves it.
func TestServeReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the reader as another user")
	}
	f := getFixture(t)
	base := t.TempDir()
	if err := os.Chmod(filepath.Dir(base), 0o755); err != nil { // t.TempDir's parent is 0700
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	repoDir := filepath.Join(base, "repo")
	if err := os.CopyFS(repoDir, os.DirFS(f.repo)); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(repoDir, func(p string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			return os.Chmod(p, 0o555)
		}
		return os.Chmod(p, 0o444)
	})
	defer filepath.WalkDir(repoDir, func(p string, d fs.DirEntry, err error) error { return os.Chmod(p, 0o755) })
	bin := filepath.Join(base, "backup-mover")
	data, err := os.ReadFile(mover)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--repo", repoDir, "--listen", "127.0.0.1:0", "--idle-timeout", "500ms")
	cmd.Dir = "/"
	cmd.Env = []string{"TMPDIR=/nonexistent"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	log := newServeLog()
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	go func() { cmd.Wait(); exited <- cmd.ProcessState.ExitCode() }()
	u := log.address(t, exited)
	if got := mustDo(t, fileURL(u, f.snap, "big.bin")); !bytes.Equal(got, f.big) {
		t.Errorf("big.bin read by a reader that cannot write: %d bytes, not the file's", len(got))
	}
	var l listing
	json.Unmarshal(mustDo(t, fileURL(u, f.snap, "etc")), &l)
	if len(l.Items) != 4 {
		t.Errorf("etc: %+v", l)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exited %d:\n%s", code, log)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the reader did not exit when idle:\n%s", log)
	}
}

// TestServeEncrypted: an encrypted repository is served with its password;
// a wrong password fails at start and says so.
func TestServeEncrypted(t *testing.T) {
	dir := t.TempDir()
	src, repoDir := filepath.Join(dir, "src"), filepath.Join(dir, "repo")
	pw, wrong := filepath.Join(dir, "pw"), filepath.Join(dir, "wrong")
	os.WriteFile(pw, []byte("correct horse\n"), 0o600)
	os.WriteFile(wrong, []byte("battery staple\n"), 0o600)
	content := make([]byte, 3<<20)
	rand.New(rand.NewSource(3)).Read(content)
	os.MkdirAll(filepath.Join(src, "data"), 0o755)
	os.WriteFile(filepath.Join(src, "data", "blob"), content, 0o644)
	snap := backupJSON(t, "--repo", repoDir, "--password-file", pw, "--source", src)

	r := startServe(t, "--repo", repoDir, "--password-file", pw, "--idle-timeout", "2s")
	if got := mustDo(t, fileURL(r.url, snap, "data/blob")); !bytes.Equal(got, content) {
		t.Errorf("data/blob: %d bytes, not the file's", len(got))
	}
	resp := do(t, http.MethodGet, fileURL(r.url, snap, "data/blob"), map[string]string{"Range": "bytes=1000000-1000009"})
	if resp.status != 206 || !bytes.Equal(resp.body, content[1000000:1000010]) {
		t.Errorf("range of data/blob: %d %d bytes", resp.status, len(resp.body))
	}
	if code, _ := r.waitExit(t, 30*time.Second); code != 0 {
		t.Errorf("exited %d", code)
	}
	if strings.Contains(r.log.String(), "correct horse") {
		t.Errorf("the password is in the log:\n%s", r.log)
	}

	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Main([]string{"serve", "--repo", repoDir, "--password-file", wrong, "--listen", "127.0.0.1:0"}, io.Discard, &stderr)
	}()
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(stderr.String(), "wrong password") || strings.Contains(stderr.String(), "serving") {
			t.Errorf("wrong password: exit %d, %q; want 1 and a message that says wrong password", code, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve with a wrong password did not exit")
	}
	stderr.Reset()
	if code := cli.Main([]string{"serve", "--repo", repoDir, "--listen", "127.0.0.1:0"}, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "--password-file") {
		t.Errorf("no password: exit %d, %q", code, stderr.String())
	}
}

// TestServeExitsWhenIdle: with no request for --idle-timeout the reader
// exits 0; health probes do not keep it alive, a download in progress
// does, however slowly it is read.
func TestServeExitsWhenIdle(t *testing.T) {
	f := getFixture(t)
	const idle = 300 * time.Millisecond

	t.Run("no requests", func(t *testing.T) {
		r := startServe(t, "--repo", f.repo, "--idle-timeout", idle.String())
		code, took := r.waitExit(t, 30*time.Second)
		t.Logf("exited %d after %s", code, took)
		if code != 0 || !strings.Contains(r.log.String(), "no request for 300ms") {
			t.Errorf("exit code %d; log:\n%s", code, r.log)
		}
	})
	t.Run("health probes", func(t *testing.T) {
		r := startServe(t, "--repo", f.repo, "--idle-timeout", idle.String())
		start := time.Now()
		probes := 0
		for r.running() && time.Since(start) < 10*time.Second {
			if resp, err := http.Get(r.url + "/healthz"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				probes++
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(start)
		t.Logf("exited after %s and %d probes", took, probes)
		if took > 3*time.Second || probes < 3 {
			t.Errorf("probed %d times, exited after %s: probes kept it alive", probes, took)
		}
	})
	t.Run("slow download", func(t *testing.T) {
		r := startServe(t, "--repo", f.repo, "--idle-timeout", idle.String())
		resp, err := http.Get(fileURL(r.url, f.snap, "big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h := sha256.New()
		if _, err := io.CopyN(h, resp.Body, 64<<10); err != nil {
			t.Fatal(err)
		}
		for range 4 { // 1.2 s, four times the idle timeout, reading 64 KiB at a time
			time.Sleep(idle)
			if !r.running() {
				t.Fatalf("exited while a download was in progress:\n%s", r.log)
			}
			if _, err := io.CopyN(h, resp.Body, 64<<10); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := io.Copy(h, resp.Body); err != nil {
			t.Fatal(err)
		}
		if got, want := h.Sum(nil), sha256.Sum256(f.big); !bytes.Equal(got, want[:]) {
			t.Error("the slowly read download differs from the file")
		}
		resp.Body.Close()
		code, took := r.waitExit(t, 30*time.Second)
		t.Logf("exited %d %s after the download ended", code, took)
		if code != 0 {
			t.Errorf("exit code %d", code)
		}
	})
	t.Run("bad flag", func(t *testing.T) {
		if code := cli.Main([]string{"serve", "--repo", f.repo, "--idle-timeout", "0s"}, io.Discard, io.Discard); code != 2 {
			t.Errorf("--idle-timeout 0s: exit %d, want 2", code)
		}
	})
}

// TestServeFinishesDownloadsOnSIGTERM: the built binary, stopped with
// SIGTERM during a download, lets the download finish and exits 0.
func TestServeFinishesDownloadsOnSIGTERM(t *testing.T) {
	f := getFixture(t)
	cmd := exec.Command(mover, "serve", "--repo", f.repo, "--listen", "127.0.0.1:0")
	log := newServeLog()
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	go func() { cmd.Wait(); exited <- cmd.ProcessState.ExitCode() }()
	defer cmd.Process.Kill()
	u := log.address(t, exited)
	resp, err := http.Get(fileURL(u, f.snap, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(append(head, rest...), f.big) {
		t.Errorf("download interrupted by SIGTERM: %d bytes, %v", len(head)+len(rest), err)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exited %d after SIGTERM:\n%s", code, log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM:\n%s", log)
	}
	if !strings.Contains(log.String(), "interrupted") {
		t.Errorf("log:\n%s", log)
	}
}

// TestServeDuringPrune: a prune that forgets one of two snapshots sharing
// data, and repacks the packs the reader's index names, runs while the
// reader serves: every file of the remaining snapshot still reads whole,
// the forgotten one is not found, and a snapshot published later is. In a
// directory, and in an encrypted repository in a MinIO bucket.
func TestServeDuringPrune(t *testing.T) {
	t.Run("directory", func(t *testing.T) {
		servePruneCase(t, "--repo", filepath.Join(t.TempDir(), "repo"))
	})
	t.Run("s3 encrypted", func(t *testing.T) {
		if testing.Short() {
			t.Skip("needs a MinIO server (not in -short)")
		}
		m, err := cluster.StartHostMinIO(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Stop)
		if err := m.MakeBucket(context.Background(), "serve", false); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
		pw := filepath.Join(t.TempDir(), "pw")
		os.WriteFile(pw, []byte("s3 password\n"), 0o600)
		r := servePruneCase(t, "--repo", "s3:"+m.Endpoint+"/serve/some/prefix", "--password-file", pw)
		if log := r.log.String(); strings.Contains(log, m.SecretKey) || strings.Contains(log, "s3 password") {
			t.Errorf("a secret is in the log:\n%s", log)
		}
	})
}

// servePruneCase runs TestServeDuringPrune on the repository repoArgs name
// and returns the reader, stopped.
func servePruneCase(t *testing.T, repoArgs ...string) *reader {
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(11))
	write := func(p string, n int) {
		data := make([]byte, n)
		rng.Read(data)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srcA, srcB, srcC := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	for i := range 12 {
		write(filepath.Join(srcA, "shared", fmt.Sprintf("f%02d", i)), 20000+rng.Intn(600000))
	}
	os.CopyFS(srcB, os.DirFS(srcA))
	os.CopyFS(srcC, os.DirFS(srcA))
	write(filepath.Join(srcA, "a-only"), 2<<20)
	write(filepath.Join(srcB, "b-only"), 2<<20)
	write(filepath.Join(srcC, "c-only"), 1<<20)
	snapA := backupJSON(t, append(repoArgs, "--source", srcA)...)
	snapB := backupJSON(t, append(repoArgs, "--source", srcB)...)

	r := startServe(t, append(repoArgs, "--idle-timeout", "1m")...)
	defer func() {
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		r.waitExit(t, 30*time.Second)
	}()
	// Before the prune: a listing, and a file only snapshot B holds (its
	// pack stays: reading it keeps no pack the prune deletes open).
	var l listing
	json.Unmarshal(mustDo(t, fileURL(r.url, snapB, "shared")), &l)
	if len(l.Items) != 12 {
		t.Fatalf("shared: %d items", len(l.Items))
	}
	want, _ := os.ReadFile(filepath.Join(srcB, "b-only"))
	if !bytes.Equal(mustDo(t, fileURL(r.url, snapB, "b-only")), want) {
		t.Fatal("b-only differs before the prune")
	}

	var out bytes.Buffer
	args := append([]string{"prune", "--forget", snapA, "--json"}, repoArgs...)
	if code := cli.Main(args, &out, &out); code != 0 {
		t.Fatalf("prune exited %d: %s", code, out.String())
	}
	var res repo.PruneResult
	json.Unmarshal(out.Bytes(), &res)
	t.Logf("prune: %s", strings.TrimSpace(out.String()))
	// No pack was written between the reader's start and the prune but
	// the prune's own, which it does not delete: every pack it deleted is
	// one the reader's index names.
	if res.PacksRewritten == 0 || res.PacksDeleted == 0 {
		t.Fatalf("the prune rewrote %d packs and deleted %d: nothing the reader's index names was deleted", res.PacksRewritten, res.PacksDeleted)
	}

	files := 0
	filepath.WalkDir(srcB, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(srcB, p)
		want, _ := os.ReadFile(p)
		resp := do(t, http.MethodGet, fileURL(r.url, snapB, filepath.ToSlash(rel)), nil)
		if resp.status != 200 || !bytes.Equal(resp.body, want) {
			t.Errorf("%s after the prune: %d, %d bytes (want %d): %.300s", rel, resp.status, len(resp.body), len(want), resp.body)
		}
		files++
		return nil
	})
	if files != 13 {
		t.Errorf("read %d files, want 13", files)
	}
	resp := do(t, http.MethodGet, fileURL(r.url, snapA, "a-only"), nil)
	if resp.status != 404 || !bytes.Contains(resp.body, []byte("NotFound")) {
		t.Errorf("the forgotten snapshot: %d %s", resp.status, resp.body)
	}

	// Published after the reader started.
	snapC := backupJSON(t, append(repoArgs, "--source", srcC)...)
	want, _ = os.ReadFile(filepath.Join(srcC, "c-only"))
	if got := mustDo(t, fileURL(r.url, snapC, "c-only")); !bytes.Equal(got, want) {
		t.Errorf("c-only of a snapshot published after the reader started: %d bytes, not the file's", len(got))
	}
	return r
}

// TestServeMissingPack: a file whose pack is gone for good (not moved by a
// prune) is a 500 InternalError that says what is missing, sent before any
// of the content.
func TestServeMissingPack(t *testing.T) {
	dir := t.TempDir()
	src, repoDir := filepath.Join(dir, "src"), filepath.Join(dir, "repo")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("content"), 0o644)
	snap := backupJSON(t, "--repo", repoDir, "--source", src)
	r := startServe(t, "--repo", repoDir, "--idle-timeout", "1s")
	packs, _ := filepath.Glob(filepath.Join(repoDir, "packs", "*", "*"))
	for _, p := range packs {
		os.Remove(p)
	}
	resp := do(t, http.MethodGet, fileURL(r.url, snap, "f"), nil)
	var e apiError
	json.Unmarshal(resp.body, &e)
	if resp.status != 500 || e.Reason != "InternalError" || !strings.Contains(e.Message, "missing from the repository index") ||
		resp.header.Get("Content-Length") == "7" || resp.header.Get("X-Backup-Entry-Type") != "" {
		t.Errorf("file without its pack: %d %v %s", resp.status, resp.header, resp.body)
	}
	if code, _ := r.waitExit(t, 30*time.Second); code != 0 {
		t.Errorf("exited %d", code)
	}
}

// TestServeToken: with the token's hash in its environment, the reader
// answers 401 to a request without the token or with another, and serves
// the one that carries it; health probes need none. A request refused does
// not keep the reader alive.
func TestServeToken(t *testing.T) {
	f := getFixture(t)
	token := "3f9a0c6e-reader-token"
	sum := sha256.Sum256([]byte(token))
	t.Setenv(report.ReaderTokenHashEnv, hex.EncodeToString(sum[:]))
	r := startServe(t, "--repo", f.repo, "--idle-timeout", "1s")
	u := fileURL(r.url, f.snap, "big.bin")
	for _, header := range []map[string]string{nil, {report.ReaderTokenHeader: "another"}, {report.ReaderTokenHeader: token + "x"}} {
		resp := do(t, http.MethodGet, u, header)
		var e apiError
		json.Unmarshal(resp.body, &e)
		if resp.status != http.StatusUnauthorized || e.Code != 401 || e.Reason != "Unauthorized" || !strings.Contains(e.Message, "kubectl get --raw") {
			t.Errorf("token %q: %d %s; want 401 saying how to read the files", header[report.ReaderTokenHeader], resp.status, resp.body)
		}
		if bytes.Contains(resp.body, f.big[:64]) {
			t.Error("a refused request got the file's content")
		}
	}
	if resp := do(t, http.MethodGet, u, map[string]string{report.ReaderTokenHeader: token}); resp.status != 200 || !bytes.Equal(resp.body, f.big) {
		t.Errorf("with the token: %d, %d bytes", resp.status, len(resp.body))
	}
	if resp := do(t, http.MethodGet, r.url+"/healthz", nil); resp.status != 200 {
		t.Errorf("/healthz without a token: %d", resp.status)
	}
	// Refused requests, one every 200 ms, do not keep it running. The reader
	// may exit between the check and the request, so a request that finds
	// nobody listening is not an error here.
	start := time.Now()
	for r.running() && time.Since(start) < 10*time.Second {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
		}
		time.Sleep(200 * time.Millisecond)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("still running %s into refused requests", took)
	}
	if strings.Contains(r.log.String(), token) {
		t.Errorf("the token is in the log:\n%s", r.log)
	}
	t.Setenv(report.ReaderTokenHashEnv, "not hex")
	var stderr bytes.Buffer
	if code := cli.Main([]string{"serve", "--repo", f.repo, "--listen", "127.0.0.1:0"}, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), report.ReaderTokenHashEnv) {
		t.Errorf("a malformed hash: exit %d, %q", code, stderr.String())
	}
}

// TestServeExitDelay: once idle, the reader answers /healthz 503 for
// --exit-delay before it exits, so whoever routes by readiness stops first;
// a request meanwhile is served and takes it back to ready.
func TestServeExitDelay(t *testing.T) {
	f := getFixture(t)
	r := startServe(t, "--repo", f.repo, "--idle-timeout", "1s", "--exit-delay", "1500ms")
	health := func() int {
		resp, err := http.Get(r.url + "/healthz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := health(); got != 200 {
		t.Fatalf("/healthz at start: %d", got)
	}
	waitHealth := func(want int) {
		t.Helper()
		for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
			if health() == want {
				return
			}
		}
		t.Fatalf("/healthz never answered %d:\n%s", want, r.log)
	}
	waitHealth(http.StatusServiceUnavailable)
	if !r.running() {
		t.Fatal("exited without the exit delay")
	}
	// A request in the delay is served and makes the reader ready again.
	if got := mustDo(t, fileURL(r.url, f.snap, "big.bin")); !bytes.Equal(got, f.big) {
		t.Error("big.bin in the exit delay: not the file's content")
	}
	served := time.Now()
	if got := health(); got != 200 {
		t.Errorf("/healthz after a request in the exit delay: %d, want 200", got)
	}
	// Ready for 1 s (idle), then 503 for 1.5 s, then gone: the first
	// delay's end (1.5 s after the first 503) passes meanwhile.
	var first503, gone time.Time
	for start := time.Now(); gone.IsZero() && time.Since(start) < 30*time.Second; time.Sleep(20 * time.Millisecond) {
		switch code := health(); {
		case code == http.StatusServiceUnavailable && first503.IsZero():
			first503 = time.Now()
		case code == 0 && !r.running():
			gone = time.Now()
		}
	}
	t.Logf("after the request in the delay: 503 after %s, exited after %s", first503.Sub(served), gone.Sub(served))
	if first503.IsZero() || gone.IsZero() || first503.Sub(served) < 300*time.Millisecond || gone.Sub(first503) < time.Second {
		t.Errorf("want /healthz 503 about 1 s after the last request and the exit 1.5 s after that")
	}
	if code, _ := r.waitExit(t, time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if strings.Contains(r.log.String(), "/healthz") {
		t.Errorf("health probes are logged:\n%s", r.log)
	}
}
