package engine

import (
	"container/heap"
	"path/filepath"
	"sync"
	"sync/atomic"

	"example.com/backup-operator/pkg/mover/repo"
)

const (
	prefetchWorkers = 8
	// prefetchAhead bounds the listings loaded but not yet entered by the walk.
	prefetchAhead = 64
)

// dirLoad is the listing of one directory, loaded by whoever claims it first:
// a prefetching goroutine, or the walker itself when it gets there first.
type dirLoad struct {
	path     string
	claimed  atomic.Bool
	byWorker bool // written before done is closed
	done     chan struct{}
	kids     []child
	err      error
}

// prefetcher lists directories ahead of a walk, nearest in walk order first.
type prefetcher struct {
	root  string
	hook  func(op, path string) // testHook or nil
	pre   *Prelisting           // listings made before the walk, or nil
	mu    sync.Mutex
	cond  *sync.Cond
	queue loadQueue
	// slots holds one token per listing a worker loaded and the walk has not
	// consumed yet, plus one per worker waiting for work.
	slots  chan struct{}
	stop   chan struct{}
	closed bool
	wg     sync.WaitGroup
}

func newPrefetcher(root string, hook func(op, path string), pre *Prelisting) *prefetcher {
	p := &prefetcher{root: root, hook: hook, pre: pre, slots: make(chan struct{}, prefetchAhead), stop: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	for i := 0; i < prefetchWorkers; i++ {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *prefetcher) work() {
	defer p.wg.Done()
	for {
		select {
		case p.slots <- struct{}{}:
		case <-p.stop:
			return
		}
		p.mu.Lock()
		for len(p.queue) == 0 && !p.closed {
			p.cond.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return
		}
		d := heap.Pop(&p.queue).(*dirLoad)
		p.mu.Unlock()
		if !d.claimed.CompareAndSwap(false, true) {
			<-p.slots // the walker got there first
			continue
		}
		d.byWorker = true
		d.kids, d.err = p.list(d.path)
		close(d.done)
	}
}

// schedule queues the subdirectories of a directory the walk just entered.
func (p *prefetcher) schedule(parent string, kids []child) {
	p.mu.Lock()
	defer p.mu.Unlock()
	added := false
	for i := range kids {
		k := &kids[i]
		if k.st.mode&0o170000 != 0o040000 {
			continue
		}
		path := k.name
		if parent != "." {
			path = parent + "/" + k.name
		}
		k.load = &dirLoad{path: path, done: make(chan struct{})}
		heap.Push(&p.queue, k.load)
		added = true
	}
	if added {
		p.cond.Broadcast()
	}
}

// wait returns a directory's listing, loading it here if no worker has started.
func (p *prefetcher) wait(d *dirLoad) ([]child, error) {
	if d.claimed.CompareAndSwap(false, true) {
		return p.list(d.path)
	}
	<-d.done
	if d.byWorker {
		<-p.slots
	}
	kids := d.kids
	d.kids = nil // the walk holds the listing now; d is dropped later
	return kids, d.err
}

// list lists the directory at path (relative to the root), or takes its
// listing from the Prelisting.
func (p *prefetcher) list(path string) ([]child, error) {
	if kids, ok := p.pre.take(path); ok {
		return kids, nil
	}
	return listDir(filepath.Join(p.root, filepath.FromSlash(path)), true, p.hook)
}

// discard drops a directory the walk will not enter.
func (p *prefetcher) discard(d *dirLoad) {
	if d.claimed.CompareAndSwap(false, true) {
		return
	}
	go func() {
		<-d.done
		d.kids = nil
		if d.byWorker {
			<-p.slots
		}
	}()
}

func (p *prefetcher) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
}

// loadQueue is a min-heap of listings in walk order.
type loadQueue []*dirLoad

func (q loadQueue) Len() int           { return len(q) }
func (q loadQueue) Less(i, j int) bool { return repo.ComparePaths(q[i].path, q[j].path) < 0 }
func (q loadQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *loadQueue) Push(x any)        { *q = append(*q, x.(*dirLoad)) }
func (q *loadQueue) Pop() any {
	old := *q
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return d
}
