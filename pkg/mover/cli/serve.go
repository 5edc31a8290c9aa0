package cli

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"example.com/backup-operator/pkg/mover/repo"
	"example.com/backup-operator/pkg/mover/report"
)

// serveGrace is how long a stopping server lets requests in progress finish.
const serveGrace = 5 * time.Second

// serveCmd is `backup-mover serve`: a read-only HTTP reader of the
// repository's snapshots, for the API server's backups/files subresource,
// which starts it in a short-lived pod and proxies requests to it. It takes
// no lease and never writes to the repository, so it works on a read-only
// mount while backups and prunes run (repo.Reader says how reads survive a
// prune).
//
//	GET /healthz                                   200 "ok" (503 once idle
//	                                               and about to exit)
//	GET /v1/snapshots/{snapshotID}/files[/{path}]  a directory's children
//	                                               (JSON), a file's content
//	                                               (with Range), a symlink
//
// Errors are JSON (report.ReaderError). With report.ReaderTokenHashEnv set,
// every request but /healthz must carry the token whose SHA-256 it holds in
// report.ReaderTokenHeader, else 401: the API server starts the reader with
// it, so that other pods, which reach the reader's port directly, read
// nothing.
func serveCmd(ctx context.Context, o *options, stderr io.Writer) *cobra.Command {
	var listen string
	var idle, exitDelay time.Duration
	c := &cobra.Command{Use: "serve", Short: "Serve the snapshots' files read-only over HTTP until no request came for --idle-timeout", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if idle <= 0 {
				return usageError{fmt.Errorf("--idle-timeout %s: want a positive duration such as 2m", idle)}
			}
			if exitDelay < 0 {
				return usageError{fmt.Errorf("--exit-delay %s: want 0 or a positive duration such as 3s", exitDelay)}
			}
			tokenHash, err := readerTokenHash()
			if err != nil {
				return err
			}
			return serve(ctx, o, listen, idle, exitDelay, tokenHash, stderr)
		}}
	c.Flags().StringVar(&listen, "listen", ":8080", "address to serve plain HTTP on")
	c.Flags().DurationVar(&idle, "idle-timeout", 2*time.Minute, "exit once no request has been in progress for this long (health probes do not count)")
	c.Flags().DurationVar(&exitDelay, "exit-delay", 0, "once idle, answer /healthz with 503 for this long before exiting, so that clients routing by readiness stop sending requests first; a request meanwhile keeps the reader running")
	return c
}

// readerTokenHash is the SHA-256 of the token every request must carry,
// from report.ReaderTokenHashEnv; nil when it is not set.
func readerTokenHash() ([]byte, error) {
	v := os.Getenv(report.ReaderTokenHashEnv)
	if v == "" {
		return nil, nil
	}
	h, err := hex.DecodeString(v)
	if err != nil || len(h) != sha256.Size {
		return nil, fmt.Errorf("%s must be a SHA-256 in hex (64 characters)", report.ReaderTokenHashEnv)
	}
	return h, nil
}

// serve opens the repository, serves it on listen until it is idle for
// idle or ctx ends (a signal), and then lets the requests in progress
// finish for up to serveGrace.
func serve(ctx context.Context, o *options, listen string, idle, exitDelay time.Duration, tokenHash []byte, stderr io.Writer) error {
	// Storage calls outlive ctx by the grace period: a signal must not
	// break the downloads that are finishing.
	repoCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	r, err := o.open(repoCtx)
	if err != nil {
		return err
	}
	defer r.Close()
	x, err := repo.NewReader(r)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	log := &lineLogger{w: stderr}
	s := &server{x: x, log: log, idle: newIdleTimer(idle, exitDelay), tokenHash: tokenHash}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: idle}
	auth := "no token asked"
	if tokenHash != nil {
		auth = "requests need the token of " + report.ReaderTokenHashEnv
	}
	log.printf("serving %s on %s (read-only; %s; exits after %s without requests)", r.Store, ln.Addr(), auth, idle)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-s.idle.done:
		log.printf("no request for %s: exiting", idle+exitDelay)
	case <-ctx.Done():
		log.printf("interrupted: finishing the requests in progress (at most %s)", serveGrace)
	}
	sctx, scancel := context.WithTimeout(context.Background(), serveGrace)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.printf("requests still in progress after %s: closing their connections", serveGrace)
		srv.Close()
	}
	return nil
}

// lineLogger writes whole lines to a writer shared by concurrent requests.
type lineLogger struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineLogger) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format+"\n", args...)
}

// idleTimer closes done once no request has been in progress for idle,
// and then exitDelay more: meanwhile it is stopping (not ready), and a
// request that comes takes it back to serving.
type idleTimer struct {
	idle, exitDelay time.Duration
	done            chan struct{}

	mu       sync.Mutex
	inFlight int
	lastEnd  time.Time
	stopping bool
	closed   bool
	timer    *time.Timer
	delay    *time.Timer
}

func newIdleTimer(idle, exitDelay time.Duration) *idleTimer {
	t := &idleTimer{idle: idle, exitDelay: exitDelay, done: make(chan struct{}), lastEnd: time.Now()}
	t.timer = time.AfterFunc(idle, t.fire)
	return t
}

// begin records a request starting.
func (t *idleTimer) begin() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inFlight++
	t.timer.Stop()
	if t.stopping {
		t.stopping = false
		t.delay.Stop()
	}
}

// isStopping reports whether the reader is idle and about to exit.
func (t *idleTimer) isStopping() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopping || t.closed
}

// end records a request ending.
func (t *idleTimer) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inFlight--
	t.lastEnd = time.Now()
	if t.inFlight == 0 {
		t.timer.Reset(t.idle)
	}
}

func (t *idleTimer) fire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inFlight > 0 || t.closed {
		return
	}
	// A request that began and ended while this call waited for mu
	// started the wait again.
	if left := t.idle - time.Since(t.lastEnd); left > 0 {
		t.timer.Reset(left)
		return
	}
	if t.exitDelay <= 0 {
		t.closed = true
		close(t.done)
		return
	}
	t.stopping = true
	t.delay = time.AfterFunc(t.exitDelay, t.exit)
}

// exit ends the exit delay, unless a request came meanwhile.
func (t *idleTimer) exit() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopping && t.inFlight == 0 && !t.closed {
		t.closed = true
		close(t.done)
	}
}

// server serves one repository's snapshots.
type server struct {
	x    *repo.Reader
	log  *lineLogger
	idle *idleTimer
	// tokenHash is the SHA-256 of the token requests must carry; nil asks
	// none.
	tokenHash []byte
}

// httpError is an error with its response status.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) *httpError {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

var reasons = map[int]string{
	http.StatusBadRequest:          "BadRequest",
	http.StatusUnauthorized:        "Unauthorized",
	http.StatusNotFound:            "NotFound",
	http.StatusMethodNotAllowed:    "MethodNotAllowed",
	http.StatusInternalServerError: "InternalError",
}

// writeError writes err as the JSON error body with its status: an
// *httpError's own, else 500.
func writeError(w http.ResponseWriter, err error) {
	he, ok := err.(*httpError)
	if !ok {
		he = &httpError{code: http.StatusInternalServerError, msg: err.Error()}
	}
	h := w.Header()
	for k := range h {
		delete(h, k)
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if he.code == http.StatusMethodNotAllowed {
		h.Set("Allow", "GET, HEAD")
	}
	w.WriteHeader(he.code)
	_ = json.NewEncoder(w).Encode(report.ReaderError{Code: he.code, Reason: reasons[he.code], Message: he.msg})
}

// loggedWriter records a response's status and body bytes for the log line.
type loggedWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *loggedWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggedWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *loggedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP answers health probes (not logged) and, with the token, the
// snapshots' files: one log line per request (method, path, status, body
// bytes, duration), each counted as activity.
func (s *server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/healthz" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.idle.isStopping() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "stopping: idle")
			return
		}
		io.WriteString(w, "ok")
		return
	}
	start := time.Now()
	lw := &loggedWriter{ResponseWriter: w}
	if s.tokenHash != nil {
		got := sha256.Sum256([]byte(req.Header.Get(report.ReaderTokenHeader)))
		if subtle.ConstantTimeCompare(got[:], s.tokenHash) != 1 {
			writeError(lw, errorf(http.StatusUnauthorized, "this reader answers backup-apiserver only: read the files through the API, such as kubectl get --raw /apis/backup.example.com/v1alpha1/namespaces/NAMESPACE/backups/NAME/files/PATH"))
			s.log.printf("%s %q %d without the reader's token", req.Method, req.URL.EscapedPath(), lw.status)
			return
		}
	}
	s.idle.begin()
	defer func() {
		s.idle.end()
		status := lw.status
		if status == 0 {
			status = http.StatusOK
		}
		if p := recover(); p != nil {
			s.log.printf("%s %q %d %d %s aborted", req.Method, req.URL.EscapedPath(), status, lw.bytes, time.Since(start).Round(time.Microsecond))
			panic(p)
		}
		s.log.printf("%s %q %d %d %s", req.Method, req.URL.EscapedPath(), status, lw.bytes, time.Since(start).Round(time.Microsecond))
	}()
	if err := s.route(lw, req); err != nil {
		writeError(lw, err)
	}
}

// route serves /v1/snapshots/{snapshotID}/files[/{path}]. The path is
// taken from the decoded URL path as it is: a ServeMux would redirect
// paths with "..", which must be refused instead.
func (s *server) route(w http.ResponseWriter, req *http.Request) error {
	rest, ok := strings.CutPrefix(req.URL.Path, "/v1/snapshots/")
	var ref, p string
	if ok {
		ref, rest, _ = strings.Cut(rest, "/")
		if rest == "files" {
			p, ok = "", true
		} else {
			p, ok = strings.CutPrefix(rest, "files/")
		}
	}
	if !ok || ref == "" {
		return errorf(http.StatusNotFound, "%q is not served here: GET /v1/snapshots/{snapshotID}/files/{path}", req.URL.Path)
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return errorf(http.StatusMethodNotAllowed, "method %s is not allowed: the snapshots are read-only (GET or HEAD)", req.Method)
	}
	p, err := cleanPath(p)
	if err != nil {
		return err
	}
	snap, err := s.x.Snapshot(strings.ToLower(ref))
	if err != nil {
		return snapshotError(ref, err)
	}
	return s.serveEntry(w, req, snap, p)
}

// cleanPath checks a path of the URL: slash-separated and relative to the
// snapshot root, "" or "." for the root.
func cleanPath(p string) (string, error) {
	if p == "" || p == "." {
		return ".", nil
	}
	if strings.HasPrefix(p, "/") {
		return "", errorf(http.StatusBadRequest, "path %q is absolute: give it relative to the snapshot root, such as etc/app.conf", p)
	}
	if err := repo.ValidatePath(p); err != nil {
		return "", errorf(http.StatusBadRequest, "%v: give a path relative to the snapshot root, such as etc/app.conf", err)
	}
	return p, nil
}

// snapshotError turns an error finding a snapshot into a response.
func snapshotError(ref string, err error) error {
	switch {
	case errors.Is(err, repo.ErrSnapshotNotFound):
		return errorf(http.StatusNotFound, "snapshot %s does not exist in the repository", ref)
	case errors.Is(err, repo.ErrAmbiguousSnapshot):
		return errorf(http.StatusBadRequest, "%v", err)
	}
	return err
}

// serveEntry finds the entry at p in the snapshot's manifest and serves it.
// The manifest is streamed and read only up to the end of p's subtree.
func (s *server) serveEntry(w http.ResponseWriter, req *http.Request, snap *repo.Snapshot, p string) error {
	m, err := s.x.OpenManifest(snap)
	if err != nil {
		return snapshotError(snap.ID.Short(), err)
	}
	open := true
	closeManifest := func() {
		if open {
			m.Close()
			open = false
		}
	}
	defer closeManifest()
	var e *repo.Entry
	for {
		e, err = m.Next()
		if err == io.EOF {
			e = nil
			break
		}
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", snap.ID.Short(), err)
		}
		c := repo.ComparePaths(e.Path, p)
		if c == 0 {
			break
		}
		if c > 0 {
			e = nil
			break
		}
	}
	if e == nil {
		return errorf(http.StatusNotFound, "%q does not exist in snapshot %s", p, snap.ID.Short())
	}
	switch e.Type {
	case repo.TypeFile:
		closeManifest() // its file and decoder are not needed while the content is sent
		return s.serveFile(w, req, e)
	case repo.TypeSymlink:
		return writeListing(w, req, "Symlink", p, func(add func(*repo.Entry, string) error) error {
			return add(e, baseName(e.Path))
		})
	default:
		return writeListing(w, req, "Directory", p, func(add func(*repo.Entry, string) error) error {
			prefix := p + "/"
			if p == "." {
				prefix = ""
			}
			for {
				c, err := m.Next()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return fmt.Errorf("snapshot %s: %w", snap.ID.Short(), err)
				}
				if !strings.HasPrefix(c.Path, prefix) {
					return nil // past the subtree
				}
				if name := c.Path[len(prefix):]; !strings.Contains(name, "/") {
					if err := add(c, name); err != nil {
						return err
					}
				}
			}
		})
	}
}

func baseName(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// entryTypes are the listing's names of the manifest's entry types.
var entryTypes = map[repo.EntryType]string{repo.TypeDir: "Directory", repo.TypeFile: "File", repo.TypeSymlink: "Symlink"}

// commitWriter tells whether anything reached the response.
type commitWriter struct {
	w         io.Writer
	committed bool
}

func (c *commitWriter) Write(p []byte) (int, error) {
	c.committed = true
	return c.w.Write(p)
}

// writeListing writes {"path":p,"items":[...]} with the items each adds,
// streamed: a directory's children are never all in memory. An error
// before the first 64 KiB were sent is the response; after, the connection
// is cut so the client cannot take the truncated listing for a whole one.
func writeListing(w http.ResponseWriter, req *http.Request, kind, p string, each func(add func(*repo.Entry, string) error) error) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(report.ReaderEntryTypeHeader, kind)
	if req.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	cw := &commitWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	head, _ := json.Marshal(p)
	fmt.Fprintf(bw, `{"path":%s,"items":[`, head)
	n := 0
	err := each(func(e *repo.Entry, name string) error {
		it := report.ReaderEntry{Name: name, Type: entryTypes[e.Type], Size: e.Size, Mode: e.Mode, UID: e.UID, GID: e.GID,
			ModTime: time.Unix(0, e.MTime).UTC(), LinkTarget: e.Target}
		data, err := json.Marshal(it)
		if err != nil {
			return err
		}
		if n > 0 {
			bw.WriteByte(',')
		}
		n++
		_, err = bw.Write(data)
		return err
	})
	if err != nil {
		if !cw.committed {
			return err
		}
		panic(http.ErrAbortHandler)
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// serveFile sends a file's content, honouring Range, If-Range and
// If-Modified-Since; it reads only the chunks the requested bytes are in.
func (s *server) serveFile(w http.ResponseWriter, req *http.Request, e *repo.Entry) error {
	f, err := s.x.OpenFile(e)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set(report.ReaderEntryTypeHeader, "File")
	h.Set("ETag", contentTag(e))
	rf := &readErrorRecorder{r: f}
	hw := &heldHeader{ResponseWriter: w}
	http.ServeContent(hw, req, "", time.Unix(0, e.MTime), rf)
	switch {
	case rf.err != nil && !hw.sent:
		return rf.err // nothing sent yet: the response is the error
	case rf.err != nil:
		// The status and length are sent: cutting the connection is how
		// the client learns the content is not whole.
		s.log.printf("%q: %v", e.Path, rf.err)
		panic(http.ErrAbortHandler)
	}
	hw.send()
	return nil
}

// heldHeader holds the status back until the first byte of the body, so a
// read that fails before it can still be answered with an error.
type heldHeader struct {
	http.ResponseWriter
	status int
	sent   bool
}

func (h *heldHeader) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}

func (h *heldHeader) Write(p []byte) (int, error) {
	h.send()
	return h.ResponseWriter.Write(p)
}

// send sends the status held, if any.
func (h *heldHeader) send() {
	if !h.sent && h.status != 0 {
		h.ResponseWriter.WriteHeader(h.status)
	}
	h.sent = true
}

// contentTag is a strong ETag of a file's content: the hash of its chunk
// IDs, which name the content exactly.
func contentTag(e *repo.Entry) string {
	h := sha256.New()
	for _, c := range e.Chunks {
		h.Write(c[:])
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

// readErrorRecorder keeps the error a read failed with other than io.EOF
// (http.ServeContent drops it: the response is already under way).
type readErrorRecorder struct {
	r   io.ReadSeeker
	err error
}

func (r *readErrorRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func (r *readErrorRecorder) Seek(offset int64, whence int) (int64, error) {
	return r.r.Seek(offset, whence)
}
