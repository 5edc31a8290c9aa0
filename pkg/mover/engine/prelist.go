package engine

import (
	"container/heap"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"example.com/backup-operator/pkg/mover/repo"
)

// prelistMaxEntries bounds what a Prelisting holds (an entry takes about a
// hundred bytes; the directories being listed when it is reached may add
// theirs): the walk takes listings as it gets to them, so a larger tree is
// listed ahead only in part.
var prelistMaxEntries = 1 << 16

// prelistMaxAge: a backup whose walk starts later than this after its
// Prelisting started (it waited for the repository's lock) lists the tree
// again rather than take listings that old.
const prelistMaxAge = 10 * time.Second

// Prelisting lists the directories of a backup's source, nearest in walk
// order first, before the backup's walk starts: while the repository is
// opened (an encrypted one's key derivation takes about 0.1 s of one CPU),
// locked, and its index and the parent snapshot are read. The walk takes
// each listing made instead of listing the directory again (Backup stops
// the listing first), so the source's metadata is read from disk once, and
// partly meanwhile. A listing is at most prelistMaxAge old, a little older
// than a prefetched one: a directory whose inode, mtime or ctime changed
// since (an entry added, removed or renamed; the directory replaced or
// gone) is listed again, and the snapshot's time is when the listing
// started. What changes in a file before it is read is found as in any
// backup.
type Prelisting struct {
	root    string
	started time.Time

	mu      sync.Mutex
	cond    *sync.Cond
	queue   pathQueue
	dirs    map[string]prelisted // by path relative to root, "." the root
	entries int
	active  int // workers listing a directory
	stopped bool
	wg      sync.WaitGroup
}

// prelisted is a directory's listing and the directory's lstat before it.
type prelisted struct {
	kids []child
	st   lstat
}

// StartPrelisting starts listing the tree at root in the background.
func StartPrelisting(root string) *Prelisting {
	p := &Prelisting{root: root, started: time.Now(), dirs: map[string]prelisted{}}
	p.cond = sync.NewCond(&p.mu)
	var st unix.Stat_t
	if unix.Lstat(root, &st) == nil {
		p.queue = pathQueue{{".", compactStat(&st)}}
	}
	for i := 0; i < prefetchWorkers; i++ {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *Prelisting) work() {
	defer p.wg.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for len(p.queue) == 0 && p.active > 0 && !p.stopped {
			p.cond.Wait()
		}
		if p.stopped || len(p.queue) == 0 || p.entries >= prelistMaxEntries {
			// Stopped, the tree listed, or the bound reached: the others end too.
			p.stopped = true
			p.cond.Broadcast()
			return
		}
		q := heap.Pop(&p.queue).(queued)
		rel := q.path
		p.active++
		p.mu.Unlock()
		kids, err := listDir(filepath.Join(p.root, filepath.FromSlash(rel)), true, nil)
		p.mu.Lock()
		p.active--
		if err != nil {
			// The walk lists it again and meets the error itself.
			p.cond.Broadcast()
			continue
		}
		p.dirs[rel] = prelisted{kids: kids, st: q.st}
		p.entries += len(kids)
		for i := range kids {
			if kids[i].st.mode&0o170000 == 0o040000 && !kids[i].gone {
				path := kids[i].name
				if rel != "." {
					path = rel + "/" + path
				}
				heap.Push(&p.queue, queued{path, kids[i].st})
			}
		}
		p.cond.Broadcast()
	}
}

// Stop ends the listing; listings under way are finished first. What was
// listed stays for the walk.
func (p *Prelisting) Stop() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

// usable returns p, stopped, when its listings may serve a walk of source
// starting now; else nil.
func (p *Prelisting) usable(source string) *Prelisting {
	if p == nil {
		return nil
	}
	p.Stop()
	if p.root != source || time.Since(p.started) > prelistMaxAge {
		p.mu.Lock()
		p.dirs = nil // not to be held through the backup
		p.mu.Unlock()
		return nil
	}
	return p
}

// take returns the listing of the directory rel (relative to the root) and
// forgets it, if it was listed and the directory has not changed since: its
// lstat still gives the same inode, mtime and ctime.
func (p *Prelisting) take(rel string) ([]child, bool) {
	if p == nil {
		return nil, false
	}
	p.mu.Lock()
	d, ok := p.dirs[rel]
	delete(p.dirs, rel)
	p.mu.Unlock()
	if !ok {
		return nil, false
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(p.root, filepath.FromSlash(rel)), &st); err != nil {
		return nil, false // the walk lists it, and finds it gone
	}
	// A kernel without fine-grained timestamps (before Linux 6.13) may give
	// a change within the same tick the same times: an entry added then is
	// newer than the snapshot's time (the listing's start), one removed is
	// found gone when the walk reads it.
	now := compactStat(&st)
	if now.dev != d.st.dev || now.ino != d.st.ino || now.mtime != d.st.mtime || now.ctime != d.st.ctime {
		return nil, false
	}
	return d.kids, true
}

// queued is a directory to list: its path relative to the root, and its
// lstat in its parent's listing.
type queued struct {
	path string
	st   lstat
}

// pathQueue is a min-heap of directories in walk order.
type pathQueue []queued

func (q pathQueue) Len() int           { return len(q) }
func (q pathQueue) Less(i, j int) bool { return repo.ComparePaths(q[i].path, q[j].path) < 0 }
func (q pathQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *pathQueue) Push(x any)        { *q = append(*q, x.(queued)) }
func (q *pathQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
