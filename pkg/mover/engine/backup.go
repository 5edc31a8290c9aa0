package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"example.com/backup-operator/pkg/mover/chunker"
	"example.com/backup-operator/pkg/mover/repo"
	"example.com/backup-operator/pkg/mover/report"
)

// BackupOptions configure Backup.
type BackupOptions struct {
	Source string
	// Tags are stored in the snapshot.
	Tags map[string]string
	// ParentTag picks the parent snapshot: the newest whose tag of this name
	// has the same value as in Tags. Empty: the newest of the same source path.
	ParentTag string
	// NoParent reads every file even when a parent snapshot exists.
	NoParent bool
	// Progress, if set, is called about once a second.
	Progress func(report.Progress)
	// Workers hash and compress chunks of large files; 0 means the number of CPUs.
	Workers int
	// Prelisted, if set, is a Prelisting of Source started before the
	// repository was opened: the backup stops it when its walk starts, and
	// the walk takes the listings it made.
	Prelisted *Prelisting
}

type counters struct {
	bytesDone, bytesTotal, filesDone, filesTotal atomic.Int64
}

func (c *counters) snapshot() report.Progress {
	return report.Progress{Type: report.ProgressType, BytesDone: c.bytesDone.Load(), BytesTotal: c.bytesTotal.Load(),
		FilesDone: c.filesDone.Load(), FilesTotal: c.filesTotal.Load()}
}

func reportProgress(ctx context.Context, c *counters, fn func(report.Progress)) (stop func()) {
	if fn == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				fn(c.snapshot())
			}
		}
	}()
	return func() { close(done); wg.Wait(); fn(c.snapshot()) }
}

// fileJob is one manifest entry on its way through the pipeline; entries are
// written to the manifest in walk order, whatever order workers finish in.
// Many wait in the in-order window, so a job holds no more than its entry
// and, for a file to read, what its read checks.
type fileJob struct {
	entry  repo.Entry
	root   string     // the source directory; the file is root/entry.Path
	listed listedFile // of a file to read
	err    error      // set before done.Done
	// vanished: the entry was gone when read and is left out of the
	// snapshot; changed: the file changed while read and is stored as read.
	// Set before done.Done.
	vanished, changed bool
	done              sync.WaitGroup
}

// listedFile is what the walk's lstat said of a regular file that is to be
// read: the read opens only this inode (see openListed), and counts the file
// as changed when its fstat after the read shows another status change time.
type listedFile struct {
	dev, ino uint64
	ctime    int64 // nanoseconds since the Unix epoch
}

// is reports whether st is the listed file, and still a regular file.
func (l listedFile) is(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFREG && uint64(st.Dev) == l.dev && st.Ino == l.ino
}

// finish records a job's outcome.
func (j *fileJob) finish(err error) {
	j.err = err
	j.done.Done()
}

// abs is the file's path on disk.
func (j *fileJob) abs() string { return filepath.Join(j.root, filepath.FromSlash(j.entry.Path)) }

// chunkTask is one chunk to hash, compress and store.
type chunkTask struct {
	data  []byte
	buf   *[]byte
	out   *repo.ID
	wg    *sync.WaitGroup
	err   *atomic.Pointer[error]
	file  *fileCompressibility
	index int
	// stream is the Writer stream the chunk goes to (repo.Writer.AddTo).
	stream int
}

// fileCompressibility lets a file whose chunks do not compress (media,
// encrypted or already compressed data) skip the compressor: after two
// incompressible chunks only every 64th chunk is tried again.
type fileCompressibility struct {
	incompressible atomic.Int32
}

func (f *fileCompressibility) try(index int) bool {
	return f.incompressible.Load() < 2 || index%64 == 0
}

func (f *fileCompressibility) record(shrank bool) {
	if shrank {
		f.incompressible.Store(0)
	} else {
		f.incompressible.Add(1)
	}
}

// BackupResult is a completed backup: its snapshot, and what changed in the
// source while it was read.
type BackupResult struct {
	Snapshot *repo.Snapshot
	// Vanished counts the entries (files, symlinks, directories with their
	// content) that were listed but gone when read: deleted, or a directory
	// on their path replaced, or, for a file, replaced by another file
	// (renamed over it) or by a FIFO, socket, device or directory. They are
	// not in the snapshot.
	Vanished int64
	// ChangedDuringRead counts the files whose size, modification time or
	// status change time (ctime) after the read differed from their listing,
	// or whose bytes read differed from the listed size: they are stored as
	// read, with the size read, and the next backup reads them again. A
	// chmod, chown or new hard link during the read changes the ctime too.
	ChangedDuringRead int64
	// VanishedPaths and ChangedPaths name up to MaxExamplePaths of each, in
	// walk order, each cut to at most MaxExamplePathBytes.
	VanishedPaths, ChangedPaths []string
}

// Bounds of BackupResult's path lists.
const (
	MaxExamplePaths     = 10
	MaxExamplePathBytes = 256
)

// Backup stores Source as a new snapshot and returns it; BackupWithResult
// also says what changed in the source while it was read.
func Backup(ctx context.Context, r *repo.Repo, o BackupOptions) (*repo.Snapshot, error) {
	res, err := BackupWithResult(ctx, r, o)
	if err != nil {
		return nil, err
	}
	return res.Snapshot, nil
}

// BackupWithResult stores Source as a new snapshot.
//
// An entry that vanishes between the walk's listing and its read is left out
// and counted; a file that changes while it is read is stored as read and
// counted. A backup never records an entry it could not read.
//
// It takes the shared lock and picks the parent (lockForBackup, openParent),
// runs the walk and the file pipeline (startProgress, startChunkWorkers,
// startFileReaders, startWalk), writes the entries to the manifest in walk
// order (collectEntries), and finally makes the data, the manifest and the
// snapshot durable in that order (finishSnapshot).
func BackupWithResult(ctx context.Context, r *repo.Repo, o BackupOptions) (*BackupResult, error) {
	start := time.Now()
	defer o.Prelisted.Stop() // on every return; stopped before the walk below
	lock, err := lockForBackup(ctx, r)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	parent, parentEntries, err := openParent(r, o)
	if err != nil {
		return nil, err
	}
	if parentEntries != nil {
		defer parentEntries.Close()
	}
	pre := o.Prelisted.usable(o.Source)
	if pre != nil && pre.started.Before(start) {
		start = pre.started // the snapshot is as old as its oldest listing
	}
	w, err := newPrefetchingWalker(o.Source, pre)
	if err != nil {
		return nil, err
	}
	defer w.close()
	mw, err := r.NewManifestWriter()
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			mw.Abort()
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var c counters
	stopProgress := startProgress(ctx, &c, o, parent)

	writer := r.NewWriter()
	// Runs after the workers stopped (defers run last first); a no-op once
	// Finish ran.
	defer writer.Abort()
	if err := writer.AdoptOrphans(); err != nil {
		return nil, err
	}
	params := r.Config.Chunker
	bufPool := newChunkBuffers()
	tasks, stopWorkers := startChunkWorkers(o.Workers, writer, &c, bufPool)
	defer stopWorkers()
	small, large, waitReaders := startFileReaders(params, writer, &c, tasks, bufPool)
	ordered, walkErr := startWalk(ctx, w, parentEntries, writer, int64(params.Min), small, large, &c)

	res := &BackupResult{}
	totals, firstErr := collectEntries(ordered, mw, &c, cancel, res)
	waitReaders()
	stopProgress()
	if err := <-walkErr; err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return nil, firstErr
	}
	snap, err := finishSnapshot(r, lock, o, start, parent, totals, writer, mw, &committed)
	if err != nil {
		return nil, err
	}
	res.Snapshot = snap
	return res, nil
}

// lockForBackup takes the shared repository lock and loads the index under
// it: a prune may have rewritten the index before the lock was granted. The
// caller unlocks; on error nothing is held.
func lockForBackup(ctx context.Context, r *repo.Repo) (*repo.Lock, error) {
	lock, err := r.LockContext(ctx, repo.Shared, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	if err := r.LoadIndex(); err != nil { // prune may have rewritten it before we got the lock
		lock.Unlock()
		return nil, err
	}
	return lock, nil
}

// openParent picks the parent snapshot (see findParent) and opens its
// manifest, which the walk reads beside the source to reuse unchanged files.
// Without a parent both results are nil; otherwise the caller closes the
// manifest reader.
func openParent(r *repo.Repo, o BackupOptions) (*repo.Snapshot, *repo.ManifestReader, error) {
	parent, err := findParent(r, o)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		return nil, nil, nil
	}
	parentEntries, err := r.OpenManifest(parent.Manifest)
	if err != nil {
		return nil, nil, fmt.Errorf("parent snapshot %s: %w", parent.ID.Short(), err)
	}
	return parent, parentEntries, nil
}

// startProgress sets the progress totals, from the parent snapshot if there
// is one or else by a scan of the source in the background, and starts
// reporting progress to o.Progress. stop reports a last time and returns once
// the reporter has ended.
func startProgress(ctx context.Context, c *counters, o BackupOptions, parent *repo.Snapshot) (stop func()) {
	if parent != nil {
		// The parent's totals are a good estimate and cost no second walk.
		c.bytesTotal.Store(parent.Totals.Bytes)
		c.filesTotal.Store(parent.Totals.Files)
	} else {
		go scanTotals(ctx, o.Source, c)
	}
	return reportProgress(ctx, c, o.Progress)
}

// startChunkWorkers starts the workers that hash, compress and store the
// chunks of large files sent on tasks; n of them, or repo.CPUs if n <= 0.
// stop closes tasks and waits for the workers to end.
func startChunkWorkers(n int, writer *repo.Writer, c *counters, bufPool *chunkBuffers) (tasks chan chunkTask, stop func()) {
	workers := n
	if workers <= 0 {
		workers = repo.CPUs
	}
	// Unbuffered: a chunk waits in its reader until a worker is free, so at
	// most one chunk per reader and one per worker are in memory.
	tasks = make(chan chunkTask)
	var taskWG sync.WaitGroup
	for i := 0; i < workers; i++ {
		taskWG.Add(1)
		go func() {
			defer taskWG.Done()
			for t := range tasks {
				id, err := store(writer, t.data, t.file, t.index, t.stream)
				*t.out = id
				if err != nil {
					t.err.CompareAndSwap(nil, &err)
				}
				c.bytesDone.Add(int64(len(t.data)))
				bufPool.put(t.buf)
				t.wg.Done()
			}
		}()
	}
	return tasks, func() { close(tasks); taskWG.Wait() }
}

// startFileReaders starts the readers of the files the walk queues on small
// and large. Small files (one chunk) are read, hashed and stored by many
// goroutines at once, so the disk's latency for one file overlaps the others.
// Large files are cut into chunks by two readers that hand the chunks to the
// chunk workers on tasks; each reader reads into one buffer of the largest
// chunk size, taken when it gets its first large file. Each reader finishes its job with the outcome. wait
// returns once both channels are closed and every reader has ended.
func startFileReaders(params chunker.Params, writer *repo.Writer, c *counters, tasks chan<- chunkTask, bufPool *chunkBuffers) (small, large chan *fileJob, wait func()) {
	small = make(chan *fileJob, 256)
	large = make(chan *fileJob, 16)
	var readerWG sync.WaitGroup
	for i := 0; i < smallReaders; i++ {
		readerWG.Add(1)
		go func() {
			defer readerWG.Done()
			buf := make([]byte, params.Min+1)
			for j := range small {
				j.finish(readSmallFile(j, buf, writer, c, func(j *fileJob) error {
					fill, err := readLargeFile(j, params, bufPool.get(params.Max), tasks, bufPool, 0)
					bufPool.put(fill)
					return err
				}))
			}
		}()
	}
	for i := 0; i < 2; i++ {
		readerWG.Add(1)
		stream := 1 + i // each reader's chunks in packs of their own
		go func() {
			defer readerWG.Done()
			var fill *[]byte // taken by the first large file: a no-change backup never needs it
			for j := range large {
				if fill == nil {
					fill = bufPool.get(params.Max)
				}
				var err error
				fill, err = readLargeFile(j, params, fill, tasks, bufPool, stream)
				j.finish(err)
			}
			bufPool.put(fill)
		}()
	}
	return small, large, readerWG.Wait
}

// startWalk runs walkForBackup in its own goroutine. Every entry's job goes
// on ordered, in walk order, and a file to read also on small or large. When
// the walk ends it closes small, large and ordered, and sends its error (nil
// on success) on walkErr.
func startWalk(ctx context.Context, w *walker, parentEntries *repo.ManifestReader, writer *repo.Writer, smallSize int64, small, large chan *fileJob, c *counters) (ordered <-chan *fileJob, walkErr <-chan error) {
	// Entries on their way to the manifest, in walk order. The window is wide
	// so that small files are read while a large file before them is chunked
	// (64k entries of about 250 bytes).
	jobs := make(chan *fileJob, 65536)
	errc := make(chan error, 1)
	go func() {
		defer close(jobs)
		defer close(large)
		defer close(small)
		errc <- walkForBackup(ctx, w, parentEntries, writer, smallSize, small, large, jobs, c)
	}()
	return jobs, errc
}

// collectEntries waits for each job in walk order and adds its entry to the
// manifest, counting the totals, and in res the entries that vanished or
// changed. At the first error it cancels the backup and from then on only
// drains ordered, so the walk and the readers can end. It returns once
// ordered is closed.
func collectEntries(ordered <-chan *fileJob, mw *repo.ManifestWriter, c *counters, cancel context.CancelFunc, res *BackupResult) (repo.Totals, error) {
	var totals repo.Totals
	var firstErr error
	for j := range ordered {
		j.done.Wait()
		if err := j.err; err != nil && firstErr == nil {
			firstErr = err
			cancel()
		}
		if firstErr != nil {
			continue
		}
		if j.vanished {
			res.Vanished++
			res.VanishedPaths = addExample(res.VanishedPaths, j.entry.Path)
			continue
		}
		if j.changed {
			res.ChangedDuringRead++
			res.ChangedPaths = addExample(res.ChangedPaths, j.entry.Path)
			// No inode (never 0 on disk): the next backup cannot take the
			// file for unchanged and reuse what was read here, even if the
			// writer put its size and mtime back (rsync --inplace, touch -r).
			j.entry.Inode = 0
		}
		switch j.entry.Type {
		case repo.TypeFile:
			totals.Files++
			totals.Bytes += j.entry.Size
			c.filesDone.Add(1)
		case repo.TypeDir:
			totals.Dirs++
		case repo.TypeSymlink:
			totals.Symlinks++
		}
		if err := mw.Add(&j.entry); err != nil && firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	return totals, firstErr
}

// addExample appends path to a list of example paths, up to
// MaxExamplePaths, cut to MaxExamplePathBytes (ending in "…" when cut, and
// not inside a UTF-8 sequence).
func addExample(list []string, path string) []string {
	if len(list) >= MaxExamplePaths {
		return list
	}
	if len(path) > MaxExamplePathBytes {
		const ellipsis = "…"
		n := MaxExamplePathBytes - len(ellipsis)
		for n > 0 && !utf8.RuneStart(path[n]) {
			n--
		}
		path = path[:n] + ellipsis
	}
	return append(list, path)
}

// finishSnapshot makes a completed backup durable, in an order that leaves
// the repository consistent after a crash at any step: the new packs and
// their index, then the manifest, and only then the snapshot that refers to
// both, which is published only while the lock is still held. *committed is
// set once the manifest writer has been closed (whether or not that
// succeeded), so the caller no longer aborts it.
func finishSnapshot(r *repo.Repo, lock *repo.Lock, o BackupOptions, start time.Time, parent *repo.Snapshot, totals repo.Totals, writer *repo.Writer, mw *repo.ManifestWriter, committed *bool) (*repo.Snapshot, error) {
	repo.CrashAt("backup-before-index")
	if err := writer.Finish(); err != nil {
		return nil, err
	}
	repo.CrashAt("backup-before-manifest")
	manifestID, manifestSize, err := mw.Close()
	*committed = true
	if err != nil {
		return nil, fmt.Errorf("writing manifest: %w", err)
	}
	totals.NewBytes = writer.NewBytes.Load()
	totals.StoredBytes = writer.StoredBytes.Load() + manifestSize
	host, _ := os.Hostname()
	snap := &repo.Snapshot{Time: start.UTC(), Source: o.Source, Hostname: host, Manifest: manifestID, ManifestSize: manifestSize, Totals: totals, Tags: o.Tags}
	if parent != nil {
		snap.Parent = &parent.ID
	}
	if err := r.LockOlderBlobs(mw.OlderBlobs()); err != nil {
		return nil, fmt.Errorf("locking the snapshot's data: %w", err)
	}
	repo.CrashAt("backup-before-snapshot")
	if !lock.Held() {
		return nil, errors.New("the repository lock expired during the backup (was the process paused?); a prune may have removed data this snapshot needs, so it is not published: run the backup again")
	}
	if err := r.SaveSnapshot(snap); err != nil {
		return nil, fmt.Errorf("publishing snapshot: %w", err)
	}
	return snap, nil
}

func findParent(r *repo.Repo, o BackupOptions) (*repo.Snapshot, error) {
	if o.NoParent {
		return nil, nil
	}
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		s := snaps[i]
		if o.ParentTag != "" {
			if v, ok := o.Tags[o.ParentTag]; ok && s.Tags[o.ParentTag] == v {
				return s, nil
			}
			continue
		}
		if s.Source == o.Source {
			return s, nil
		}
	}
	return nil, nil
}

// walkForBackup walks the source beside the parent manifest (both in the same
// order) and queues one job per entry.
func walkForBackup(ctx context.Context, w *walker, parentManifest *repo.ManifestReader, writer *repo.Writer, smallSize int64, small, large, ordered chan<- *fileJob, c *counters) error {
	var parent *entryStream
	if parentManifest != nil {
		parent = streamEntries(parentManifest)
		defer parent.stop()
	}
	var pe *repo.Entry
	advance := func() error {
		if parent == nil {
			return nil
		}
		e, err := parent.Next()
		if err == io.EOF {
			pe, parent = nil, nil
			return nil
		}
		pe = e
		return err
	}
	if err := advance(); err != nil {
		return err
	}
	send := func(j *fileJob) error {
		select {
		case ordered <- j:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	sendVanished := func(path string) error {
		return send(&fileJob{entry: repo.Entry{Path: path}, vanished: true})
	}
	n := w.first()
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		typ, ok := entryType(n.info.Mode())
		var target string
		if typ == repo.TypeSymlink {
			var err error
			target, err = os.Readlink(w.abs(n.path))
			if vanished(err) || errors.Is(err, syscall.EINVAL) { // EINVAL: no longer a symlink
				if err := sendVanished(n.path); err != nil {
					return err
				}
				ok = false
			} else if err != nil {
				return err
			}
		}
		if ok {
			st := n.stat
			e := repo.Entry{Path: n.path, Type: typ, Mode: modeBits(n.info.Mode()), UID: st.Uid, GID: st.Gid,
				MTime: n.info.ModTime().UnixNano(), Xattrs: n.xattrs}
			j := &fileJob{}
			j.done.Add(1)
			switch typ {
			case repo.TypeSymlink:
				e.Target = target
			case repo.TypeFile:
				e.Size = n.info.Size()
				e.Inode = st.Ino
				j.listed = listedFile{dev: uint64(st.Dev), ino: st.Ino, ctime: st.Ctim.Nano()}
				if st.Nlink > 1 {
					e.LinkGroup = st.Dev<<40 ^ st.Ino // inode numbers are never 0
				}
			}
			// Skip to the parent's entry for this path, if any.
			for pe != nil && repo.ComparePaths(pe.Path, n.path) < 0 {
				if err := advance(); err != nil {
					return err
				}
			}
			reuse := false
			if typ == repo.TypeFile && pe != nil && pe.Path == n.path && pe.Type == repo.TypeFile &&
				pe.Size == e.Size && pe.MTime == e.MTime && pe.Inode == e.Inode && allStored(writer, pe.Chunks) {
				e.Chunks = pe.Chunks
				reuse = true
				c.bytesDone.Add(e.Size)
			}
			j.entry = e
			if typ == repo.TypeFile && !reuse {
				j.root = w.root
				jobs := large
				if e.Size < smallSize {
					jobs = small
				}
				select {
				case jobs <- j:
				case <-ctx.Done():
					return ctx.Err()
				}
			} else {
				j.done.Done()
			}
			if err := send(j); err != nil {
				return err
			}
		} else if n.info.IsDir() {
			w.skip()
		}
		var err error
		n, err = w.next()
		// The entries that vanished before n, in walk order.
		for _, path := range w.takeVanished() {
			if err := sendVanished(path); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// entryStream decodes a manifest in its own goroutine, a batch ahead of the
// reader, so decoding overlaps the walk.
type entryStream struct {
	batches chan []*repo.Entry
	cur     []*repo.Entry
	err     error // set before batches is closed
	quit    chan struct{}
	done    chan struct{}
}

func streamEntries(m *repo.ManifestReader) *entryStream {
	s := &entryStream{batches: make(chan []*repo.Entry, 4), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.batches)
		batch := make([]*repo.Entry, 0, 256)
		for {
			e, err := m.Next()
			if err != nil {
				if err != io.EOF {
					s.err = err
				}
				if len(batch) > 0 {
					select {
					case s.batches <- batch:
					case <-s.quit:
					}
				}
				return
			}
			batch = append(batch, e)
			if len(batch) == cap(batch) {
				select {
				case s.batches <- batch:
				case <-s.quit:
					return
				}
				batch = make([]*repo.Entry, 0, 256)
			}
		}
	}()
	return s
}

// Next returns the next entry, or io.EOF.
func (s *entryStream) Next() (*repo.Entry, error) {
	for len(s.cur) == 0 {
		b, ok := <-s.batches
		if !ok {
			if s.err != nil {
				return nil, s.err
			}
			return nil, io.EOF
		}
		s.cur = b
	}
	e := s.cur[0]
	s.cur = s.cur[1:]
	return e, nil
}

// stop ends the decoding goroutine and waits for it.
func (s *entryStream) stop() {
	close(s.quit)
	<-s.done
}

func allStored(w *repo.Writer, ids []repo.ID) bool {
	for _, id := range ids {
		if !w.Has(id) {
			return false
		}
	}
	return true
}

// chunkBuffers recycles chunk buffers in power-of-two size classes, so a
// chunk of 1 MiB holds 1 MiB and not the largest chunk size. Each class keeps
// two free buffers (the chunks in flight are bounded by the readers and
// workers); the rest go back to the garbage collector.
type chunkBuffers struct {
	classes [32]chan *[]byte
}

func newChunkBuffers() *chunkBuffers {
	b := &chunkBuffers{}
	for i := range b.classes {
		b.classes[i] = make(chan *[]byte, 2)
	}
	return b
}

func (b *chunkBuffers) class(n int) chan *[]byte { return b.classes[bits.Len(uint(n-1))] }

func (b *chunkBuffers) get(n int) *[]byte {
	select {
	case buf := <-b.class(n):
		return buf
	default:
		buf := make([]byte, 1<<bits.Len(uint(n-1)))
		return &buf
	}
}

func (b *chunkBuffers) put(buf *[]byte) {
	if buf == nil {
		return
	}
	select {
	case b.class(cap(*buf)) <- buf:
	default:
	}
}

// store hashes one chunk and adds it to the repository, in the packs of
// stream: 0 for small files, one stream for each reader of large files.
func store(w *repo.Writer, data []byte, comp *fileCompressibility, index, stream int) (repo.ID, error) {
	id := w.BlobID(data)
	try := comp.try(index)
	shrank, err := w.AddTo(stream, id, data, try)
	if try {
		comp.record(shrank)
	}
	return id, err
}

// smallReaders read, hash and store small files concurrently.
const smallReaders = 12

// readSmallFile reads a file listed as smaller than one chunk, hashes and
// stores it; one that grew past buf is handed to large.
func readSmallFile(j *fileJob, buf []byte, w *repo.Writer, c *counters, large func(*fileJob) error) error {
	if testHook != nil {
		testHook("open", j.abs())
	}
	f, err := openNoFollow(j.abs(), j.listed)
	if openVanished(err) {
		j.vanished = true // deleted or replaced since it was listed
		return nil
	}
	if err != nil {
		return err
	}
	if testHook != nil {
		testHook("read", j.abs())
	}
	n, err := io.ReadFull(f, buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	if err == nil && n < len(buf) {
		j.changed, err = changedSinceListed(j, f, int64(n))
	}
	f.Close()
	if err != nil {
		return fmt.Errorf("reading %s: %w", j.abs(), err)
	}
	if n == len(buf) {
		return large(j) // it grew since it was listed
	}
	j.entry.Size = int64(n)
	if n == 0 {
		j.entry.Chunks = nil
		return nil
	}
	id, err := store(w, buf[:n], &fileCompressibility{}, 0, 0)
	if err != nil {
		return err
	}
	c.bytesDone.Add(int64(n))
	j.entry.Chunks = []repo.ID{id}
	return nil
}

// openVanished reports whether an error opening a listed file says it is
// gone: removed, a directory on its path replaced, replaced by a symlink
// (ELOOP from O_NOFOLLOW), or replaced by anything but the listed regular
// file (errNotListed).
func openVanished(err error) bool {
	return vanished(err) || errors.Is(err, syscall.ELOOP) || errors.Is(err, errNotListed)
}

// changedSinceListed reports whether the open file f, read to its end with
// read bytes, is not what the walk listed for j: its size, modification time
// or status change time differs, or it is another inode.
func changedSinceListed(j *fileJob, f interface{ Stat() (os.FileInfo, error) }, read int64) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	e := &j.entry
	return read != e.Size || st.Size != e.Size || st.Mtim.Nano() != e.MTime ||
		uint64(st.Dev) != j.listed.dev || st.Ino != j.listed.ino || st.Ctim.Nano() != j.listed.ctime, nil
}

// readLargeFile cuts one file into chunks and waits until all its chunks are
// stored. Each chunk is read into fill (of the largest chunk size): a chunk
// of more than half that goes to the workers in fill itself, and the next is
// read into a fresh buffer; a smaller one is copied into a buffer of its size
// class. It returns the buffer to read the next file into.
func readLargeFile(j *fileJob, p chunker.Params, fill *[]byte, tasks chan<- chunkTask, pool *chunkBuffers, stream int) (*[]byte, error) {
	if testHook != nil {
		testHook("open", j.abs())
	}
	f, err := openFile(j.abs(), j.entry.Size, j.listed)
	if openVanished(err) {
		j.vanished = true // deleted or replaced since it was listed
		return fill, nil
	}
	if err != nil {
		return fill, err
	}
	defer f.Close()
	if testHook != nil {
		testHook("read", j.abs())
	}
	sp := chunker.NewSplitter(f, p)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	var ids []repo.ID
	var slots []*repo.ID
	var size int64
	comp := &fileCompressibility{}
	for {
		data, err := sp.Next(*fill)
		if err == io.EOF {
			break
		}
		if err != nil {
			wg.Wait()
			return fill, fmt.Errorf("reading %s: %w", j.abs(), err)
		}
		size += int64(len(data))
		var buf *[]byte
		if pool.class(len(data)) == pool.class(p.Max) {
			buf, fill = fill, pool.get(p.Max)
		} else {
			buf = pool.get(len(data))
			data = (*buf)[:copy((*buf)[:len(data)], data)]
		}
		slot := new(repo.ID)
		slots = append(slots, slot)
		wg.Add(1)
		tasks <- chunkTask{data: data, buf: buf, out: slot, wg: &wg, err: &failed, file: comp, index: len(slots) - 1, stream: stream}
	}
	wg.Wait()
	if e := failed.Load(); e != nil {
		return fill, *e
	}
	if j.changed, err = changedSinceListed(j, f, size); err != nil {
		return fill, err
	}
	ids = make([]repo.ID, len(slots))
	for i, s := range slots {
		ids[i] = *s
	}
	j.entry.Chunks = ids
	j.entry.Size = size // stored as read: the size may differ from the listing's
	return fill, nil
}

// scanTotals counts files and bytes ahead of the backup, for progress.
func scanTotals(ctx context.Context, root string, c *counters) {
	w, err := newWalker(root, false)
	if err != nil {
		return
	}
	for ctx.Err() == nil {
		n, err := w.next()
		if err != nil {
			return
		}
		if n.info.Mode().IsRegular() {
			c.filesTotal.Add(1)
			c.bytesTotal.Add(n.info.Size())
		}
	}
}
