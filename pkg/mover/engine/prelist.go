package engine

import (
	"container/heap"
	"path/filepath"
	"sync"
	"time"

	"example.com/backup-operator/pkg/mover/repo"
)

// prelistMaxEntries bounds what a Prelisting holds (an entry takes about a
// hundred bytes): the walk takes listings as it gets to them, so a larger
// tree is listed ahead only in part.
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
// than a prefetched one; the walk treats both alike, and what changes
// before a file is read is found as in any backup.
type Prelisting struct {
	root    string
	started time.Time

	mu      sync.Mutex
	cond    *sync.Cond
	queue   pathQueue
	dirs    map[string][]child // by path relative to root, "." the root
	entries int
	active  int // workers listing a directory
	stopped bool
	wg      sync.WaitGroup
}

// StartPrelisting starts listing the tree at root in the background.
func StartPrelisting(root string) *Prelisting {
	p := &Prelisting{root: root, started: time.Now(), queue: pathQueue{"."}, dirs: map[string][]child{}}
	p.cond = sync.NewCond(&p.mu)
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
		rel := heap.Pop(&p.queue).(string)
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
		p.dirs[rel] = kids
		p.entries += len(kids)
		for i := range kids {
			if kids[i].st.mode&0o170000 == 0o040000 && !kids[i].gone {
				path := kids[i].name
				if rel != "." {
					path = rel + "/" + path
				}
				heap.Push(&p.queue, path)
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
		return nil
	}
	return p
}

// take returns the listing of the directory rel (relative to the root) and
// forgets it, if it was listed.
func (p *Prelisting) take(rel string) ([]child, bool) {
	if p == nil {
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	kids, ok := p.dirs[rel]
	delete(p.dirs, rel)
	return kids, ok
}

// pathQueue is a min-heap of relative paths in walk order.
type pathQueue []string

func (q pathQueue) Len() int           { return len(q) }
func (q pathQueue) Less(i, j int) bool { return repo.ComparePaths(q[i], q[j]) < 0 }
func (q pathQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *pathQueue) Push(x any)        { *q = append(*q, x.(string)) }
func (q *pathQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
