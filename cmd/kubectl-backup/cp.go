package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

func (o *options) cpCommand() *cobra.Command {
	var overwrite bool
	c := &cobra.Command{
		Use:   "cp BACKUP:PATH LOCAL",
		Short: "Copy a file or directory of a Completed Backup to the local disk (or a file to stdout)",
		Long: `Copy a file, directory or symlink of a Completed Backup out of its
snapshot through the files subresource (RBAC: get on backups/files). PATH is
relative to the backup's root; BACKUP: alone is the whole backup.

A file is written to LOCAL, or into LOCAL when it is a directory, under a
temporary name that is renamed once the file is complete; - writes it to
stdout. A file larger than --range-size (64 MiB) comes in Range
requests, so that no request outlives kube-apiserver's request timeout (60 s
by default) on a slow link; the ranges after the first must match its ETag. A directory's content is copied into LOCAL (created when missing),
as kubectl cp does, with its files, directories and symlinks. Files and
directories get the snapshot's permission bits and modification times
(not setuid, setgid or sticky, and not the owners: the copy is yours);
symlinks are copied as links, never followed.

An existing file is never replaced without --overwrite: the whole copy is
refused before anything is written. The first request for a repository may
wait while the server starts its reader: a 503 is tried again as its
Retry-After says, for --retry-for. Errors are the server's (404 no such path,
409 Backup not Completed, 403). Exit codes: 0 copied, 2 refused, bad
arguments or a failed copy, 3 interrupted (no partial file is left under
the file's name).`,
		Example: `  kubectl backup cp database-backups-202611260200:conf/postgresql.conf .
  kubectl backup cp database-backups-202611260200:conf ./conf-before -n production
  kubectl backup cp database-backups-202611260200: ./everything
  kubectl backup cp database-backups-202611260200:conf/pg_hba.conf - | diff - pg_hba.conf`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runCp(cmd.Context(), args[0], args[1], overwrite)
		},
	}
	c.Flags().BoolVar(&overwrite, "overwrite", false, "replace files (and symlinks) that exist under LOCAL")
	c.Flags().DurationVar(&o.retryFor, "retry-for", time.Minute, "how long to keep trying while the server answers 503 (starting the reader of the repository)")
	c.Flags().Int64Var(&o.rangeSize, "range-size", rangeSize, "the most bytes of a file one request asks for: a larger file comes in Range requests, each within kube-apiserver's request timeout")
	return c
}

// parseSource splits BACKUP:PATH; PATH is a snapshotPath.
func parseSource(s string) (backup, p string, err error) {
	backup, rest, ok := strings.Cut(s, ":")
	if !ok || backup == "" {
		return "", "", withCode(exitError, "the source %q is not BACKUP:PATH (for example database-backups-202611260200:conf/app.conf; BACKUP: alone is the whole backup)", s)
	}
	p, err = snapshotPath(rest)
	return backup, p, err
}

// copyItem is an entry of the snapshot to copy and where it goes.
type copyItem struct {
	rel   string // path in the snapshot; "" is the root
	local string
	entry backupFile
	// top is the entry the command named; exists is a directory that was
	// there before (the copy merges into it).
	top, exists bool
}

// copyPlan is what a copy writes, found by walking the listings before
// anything is written.
type copyPlan struct {
	items               []copyItem
	files, dirs, links  int
	bytes               int64
	conflicts           []string
	skipped             []string
	overwrite, rootNoMD bool
}

func (o *options) runCp(ctx context.Context, src, dst string, overwrite bool) error {
	if o.output != "" {
		return withCode(exitError, "cp prints no objects: -o is for ls, status, now and restore")
	}
	backup, p, err := parseSource(src)
	if err != nil {
		return err
	}
	if dst == "" {
		return withCode(exitError, "LOCAL is empty: give a file or directory to copy to, or - for stdout")
	}
	e, err := o.stat(ctx, backup, p)
	if err != nil {
		return err
	}
	root := e == nil
	if root {
		e = &backupFile{Type: typeDirectory}
	}
	if dst == "-" {
		if e.Type != typeFile {
			return withCode(exitError, "- writes one file to stdout, and %s of backup/%s is a %s; give a local path", displayPath(p), backup, strings.ToLower(e.Type))
		}
		return o.copyToStdout(ctx, backup, p, e)
	}

	local := dst
	if e.Type != typeDirectory {
		if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
			local = filepath.Join(dst, path.Base(p))
		} else if strings.HasSuffix(dst, string(filepath.Separator)) {
			return withCode(exitError, "%s is not a directory; create it first, or name the file without the trailing %s", dst, string(filepath.Separator))
		}
	}
	if fi, err := os.Stat(filepath.Dir(filepath.Clean(local))); err != nil || !fi.IsDir() {
		return withCode(exitError, "%s: the directory %s does not exist; create it first", local, filepath.Dir(filepath.Clean(local)))
	}
	plan := &copyPlan{overwrite: overwrite, rootNoMD: root}
	if err := o.planCopy(ctx, plan, backup, p, *e, local); err != nil {
		return err
	}
	if n := len(plan.conflicts); n > 0 {
		more := ""
		if n > 1 {
			more = fmt.Sprintf(" (and %d more)", n-1)
		}
		return withCode(exitError, "not copying: %s exists%s; --overwrite replaces what the backup has under the same name", plan.conflicts[0], more)
	}
	for _, s := range plan.skipped {
		fmt.Fprintf(o.errOut, "skipping %s: neither a file, a directory nor a symlink\n", s)
	}
	return o.runPlan(ctx, backup, p, local, plan)
}

// planCopy walks the listings from rel (entry e) and records each entry
// with its local path in plan, and the local files it would replace.
func (o *options) planCopy(ctx context.Context, plan *copyPlan, backup, top string, e backupFile, local string) error {
	var walk func(rel string, e backupFile, local string, fresh bool) error
	walk = func(rel string, e backupFile, local string, fresh bool) error {
		it := copyItem{rel: rel, local: local, entry: e, top: rel == top}
		if !fresh {
			stat := os.Lstat
			if it.top {
				stat = os.Stat // LOCAL may be a symlink to a directory
			}
			fi, err := stat(local)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				fresh = true
			case err != nil:
				return withCode(exitError, "%v", err)
			case e.Type == typeDirectory && fi.IsDir():
				it.exists = true
			case e.Type == typeDirectory:
				return withCode(exitError, "not copying: %s exists and is not a directory, where the backup has the directory %s; move it away first", local, displayPath(rel))
			case fi.IsDir():
				return withCode(exitError, "not copying: %s is a directory, where the backup has the %s %s; move it away first", local, strings.ToLower(e.Type), rel)
			case !plan.overwrite:
				plan.conflicts = append(plan.conflicts, local)
			}
		}
		plan.items = append(plan.items, it)
		switch e.Type {
		case typeFile:
			plan.files++
			plan.bytes += e.Size
			return nil
		case typeSymlink:
			plan.links++
			return nil
		}
		if !it.top {
			plan.dirs++
		}
		l, _, file, err := o.list(ctx, backup, rel)
		if err != nil {
			return err
		}
		if file {
			return withCode(exitError, "backup/%s: %s was listed as a directory and read as a file", backup, displayPath(rel))
		}
		for _, c := range l.Items {
			if !validName(c.Name) {
				return withCode(exitError, "backup/%s: the listing of %s has an entry named %q; not copying it", backup, displayPath(rel), c.Name)
			}
			switch c.Type {
			case typeDirectory, typeFile, typeSymlink:
			default:
				plan.skipped = append(plan.skipped, path.Join(rel, c.Name))
				continue
			}
			if err := walk(path.Join(rel, c.Name), c, filepath.Join(local, c.Name), fresh); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(top, e, local, false)
}

// runPlan writes plan's entries in order (a directory before its content),
// then the directories' modes and times, deepest first.
func (o *options) runPlan(ctx context.Context, backup, p, local string, plan *copyPlan) error {
	meter := &copyMeter{w: o.out, terminal: isTerminal(o.out), total: plan.bytes, now: o.now}
	var files int
	var written int64
	fail := func(it copyItem, err error) error {
		meter.clear()
		what := fmt.Sprintf("%d of %d files (%s) were copied to %s", files, plan.files, humanBytes(written), local)
		if ctx.Err() != nil {
			return &codeError{code: exitTimeout, err: fmt.Errorf("interrupted while copying %s: %s", displayPath(it.rel), what)}
		}
		if _, ok := errors.AsType[*codeError](err); ok {
			return withCode(exitError, "%v; %s", err, what)
		}
		return withCode(exitError, "copying %s: %v; %s", displayPath(it.rel), err, what)
	}
	for _, it := range plan.items {
		switch it.entry.Type {
		case typeDirectory:
			if !it.exists {
				if err := os.Mkdir(it.local, 0o700); err != nil {
					return fail(it, err)
				}
			}
		case typeSymlink:
			if err := writeSymlink(it.local, it.entry.LinkTarget, it.entry.ModTime); err != nil {
				return fail(it, err)
			}
		case typeFile:
			meter.file = it.rel
			n, err := o.copyFile(ctx, backup, it, meter)
			written += n
			if err != nil {
				return fail(it, err)
			}
			files++
		}
	}
	for i := len(plan.items) - 1; i >= 0; i-- {
		it := plan.items[i]
		if it.entry.Type != typeDirectory || (it.top && (it.exists || plan.rootNoMD)) {
			continue // LOCAL keeps its own mode when it was there; the root has none
		}
		if err := os.Chmod(it.local, fs.FileMode(it.entry.Mode&0o777)); err != nil {
			return fail(it, err)
		}
		if !it.entry.ModTime.IsZero() {
			if err := os.Chtimes(it.local, it.entry.ModTime, it.entry.ModTime); err != nil {
				return fail(it, err)
			}
		}
	}
	meter.clear()
	fmt.Fprintf(o.out, "backup/%s:%s copied to %s: %s\n", backup, displayPath(p), local, copySummary(files, written, plan.dirs, plan.links))
	return nil
}

// copySummary counts what a copy wrote: "3 files (12345 bytes, 12.1 KiB),
// 2 directories, 1 symlink"; no files are named only when nothing else was
// written.
func copySummary(files int, bytes int64, dirs, links int) string {
	var parts []string
	if files > 0 || dirs+links == 0 {
		parts = append(parts, fmt.Sprintf("%s (%d bytes, %s)", plural(files, "file", "files"), bytes, humanBytes(bytes)))
	}
	if dirs > 0 {
		parts = append(parts, plural(dirs, "directory", "directories"))
	}
	if links > 0 {
		parts = append(parts, plural(links, "symlink", "symlinks"))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// copyFile streams the file of it to it.local through a temporary file.
func (o *options) copyFile(ctx context.Context, backup string, it copyItem, meter *copyMeter) (int64, error) {
	body, size, err := o.openFile(ctx, backup, it.rel, it.entry.Size)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	return writeFile(it.local, &countingReader{r: body, meter: meter}, size, it.entry.Mode, it.entry.ModTime)
}

// copyToStdout streams the file p to stdout.
func (o *options) copyToStdout(ctx context.Context, backup, p string, e *backupFile) error {
	body, size, err := o.openFile(ctx, backup, p, e.Size)
	if err != nil {
		return err
	}
	defer body.Close()
	n, err := io.Copy(o.out, body)
	if err == nil && n != size {
		err = fmt.Errorf("%d bytes of %d arrived", n, size)
	}
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx)
		}
		return withCode(exitError, "copying %s of backup/%s: %v", p, backup, err)
	}
	return nil
}

// rangeSize is the most one request of a download asks for. kube-apiserver
// ends a request to an aggregated API after its request timeout (60 s by
// default) whatever it is doing, so a file larger than this comes in ranges,
// each its own request, the ones after the first with If-Range on the first
// one's ETag; at 64 MiB a request fits in 60 s down to about 1 MB/s.
const rangeSize = 64 << 20

// openFile opens the file p of backup, listed with size bytes, for reading:
// one GET when it fits in o.rangeSize (--range-size), else a rangeReader.
// It returns the size the server gives.
func (o *options) openFile(ctx context.Context, backup, p string, size int64) (io.ReadCloser, int64, error) {
	chunk := o.rangeSize
	if chunk <= 0 {
		return nil, 0, withCode(exitError, "--range-size %d: want a positive number of bytes", chunk)
	}
	if size <= chunk {
		resp, err := o.getFiles(ctx, backup, p, nil)
		if err != nil {
			return nil, 0, err
		}
		if isJSON(resp) {
			resp.Body.Close()
			return nil, 0, withCode(exitError, "backup/%s: %s was listed as a file and read as a listing", backup, p)
		}
		if resp.ContentLength >= 0 {
			size = resp.ContentLength
		}
		return resp.Body, size, nil
	}
	r := &rangeReader{o: o, ctx: ctx, backup: backup, p: p, size: size, chunk: chunk}
	// The first range now, so that a refusal is the copy's error before a
	// temporary file is made.
	if err := r.next(); err != nil {
		return nil, 0, err
	}
	return r, size, nil
}

// rangeReader reads a file of a backup one range request at a time.
type rangeReader struct {
	o                *options
	ctx              context.Context
	backup, p        string
	size, chunk, off int64
	etag             string
	body             io.ReadCloser
	left             int64 // bytes of body not read yet
}

// next asks for the range at r.off.
func (r *rangeReader) next() error {
	end := min(r.off+r.chunk, r.size) - 1
	h := http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", r.off, end)}}
	if r.etag != "" {
		h.Set("If-Range", r.etag)
	}
	resp, err := r.o.getFiles(r.ctx, r.backup, r.p, h)
	if err != nil {
		return err
	}
	var first, last, total int64
	_, scanErr := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &total)
	switch {
	case resp.StatusCode == http.StatusPartialContent && scanErr == nil && first == r.off && last == end && total == r.size:
	case resp.StatusCode == http.StatusPartialContent || r.off == 0:
		resp.Body.Close()
		return fmt.Errorf("the server answered bytes %d-%d with %s %q, not that range of a file of %d bytes", r.off, end, resp.Status, resp.Header.Get("Content-Range"), r.size)
	default:
		// 200 to a later range: If-Range did not match, the content differs
		// from the first range's.
		resp.Body.Close()
		return fmt.Errorf("the file changed between ranges of its download (ETag %s, then %s)", r.etag, resp.Header.Get("ETag"))
	}
	if r.etag == "" {
		if r.etag = resp.Header.Get("ETag"); r.etag == "" {
			resp.Body.Close()
			return fmt.Errorf("the server gave no ETag for a download in ranges (larger than --range-size), so it cannot be read as one file; give --range-size %d or more", r.size)
		}
	}
	r.body, r.left = resp.Body, last-first+1
	return nil
}

func (r *rangeReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if r.body != nil {
			n, err := r.body.Read(p[:min(int64(len(p)), r.left)])
			r.off += int64(n)
			r.left -= int64(n)
			if r.left == 0 {
				r.body.Close()
				r.body = nil
				err = nil
			} else if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		if r.off >= r.size {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}
}

func (r *rangeReader) Close() error {
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}

// writeFile writes r to local through a temporary file beside it, which is
// given mode's permission bits and mtime and renamed to local once size
// bytes are in it; it returns how many bytes it read. The temporary file
// is removed when anything fails.
func writeFile(local string, r io.Reader, size int64, mode uint32, mtime time.Time) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(local), "."+filepath.Base(local)+".part-*")
	if err != nil {
		return 0, err
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	n, err := io.Copy(f, r)
	if err != nil {
		return n, err
	}
	if size >= 0 && n != size {
		return n, fmt.Errorf("%d bytes of %d arrived", n, size)
	}
	if err := f.Chmod(fs.FileMode(mode & 0o777)); err != nil {
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(f.Name(), mtime, mtime); err != nil {
			return n, err
		}
	}
	if err := os.Rename(f.Name(), local); err != nil {
		return n, err
	}
	done = true
	return n, nil
}

// writeSymlink makes local a symlink to target with mtime, through a
// temporary link beside it renamed over local.
func writeSymlink(local, target string, mtime time.Time) error {
	for try := 0; ; try++ {
		tmp := filepath.Join(filepath.Dir(local), fmt.Sprintf(".%s.part-%d", filepath.Base(local), rand.Uint32()))
		err := os.Symlink(target, tmp)
		if errors.Is(err, fs.ErrExist) && try < 10 {
			continue
		}
		if err != nil {
			return err
		}
		if !mtime.IsZero() {
			err = lchtimes(tmp, mtime)
		}
		if err == nil {
			err = os.Rename(tmp, local)
		}
		if err != nil {
			os.Remove(tmp)
		}
		return err
	}
}

// countingReader reports what is read through it to a copyMeter.
type countingReader struct {
	r     io.Reader
	meter *copyMeter
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.meter.add(int64(n))
	return n, err
}

// copyMeter draws a copy's progress in place on a terminal: the file being
// copied, a bar of the bytes of the whole copy, the rate and time left;
// elsewhere nothing.
type copyMeter struct {
	w        io.Writer
	terminal bool
	total    int64
	now      func() time.Time
	file     string

	done  int64
	rate  rateMeter
	drawn time.Time
	shown bool
}

func (m *copyMeter) add(n int64) {
	m.done += n
	if !m.terminal {
		return
	}
	now := m.now()
	if now.Sub(m.drawn) < 100*time.Millisecond {
		return
	}
	m.rate.observe(now, m.done)
	m.drawn = now
	line := "copying " + safeName(m.file) + " " + progressBarLine(&v1alpha1.Progress{BytesDone: m.done, BytesTotal: m.total}, m.rate.rate(), 30)
	fmt.Fprint(m.w, "\r\x1b[K"+line)
	m.shown = true
}

// clear ends the line drawn in place.
func (m *copyMeter) clear() {
	if m.shown {
		fmt.Fprint(m.w, "\r\x1b[K")
		m.shown = false
	}
}
