package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// LockKind is shared (backups, restores, verify: many at once) or exclusive
// (prune: alone).
type LockKind string

const (
	Shared    LockKind = "shared"
	Exclusive LockKind = "exclusive"
)

// LeaseDuration is how long a lock stays valid without a refresh. A holder
// refreshes it every LeaseDuration/4; a crashed holder's lock expires by itself.
var LeaseDuration = 60 * time.Second

// clockSkew is how far apart the clocks of two movers may be: a lease is
// taken for expired only that long after its expiry, and its holder stops
// trusting it that long before (10 s, or a sixth of a shorter lease).
func clockSkew() time.Duration { return min(10*time.Second, LeaseDuration/6) }

type lockFile struct {
	Kind     LockKind  `json:"kind"`
	Hostname string    `json:"hostname"`
	PID      int       `json:"pid"`
	Expires  time.Time `json:"expires"`
}

// Lock is a held lease on the repository.
type Lock struct {
	r    *Repo
	name string
	// renewed is when the lease was last written, on the monotonic clock;
	// lost is set once a refresh found the lease gone (a prune removed it
	// as expired): it is never written again.
	mu      sync.Mutex
	renewed time.Time
	lost    bool
	kind    LockKind
	stop    chan struct{}
	done    sync.WaitGroup
}

// ErrLocked means a conflicting lock is held.
var ErrLocked = errors.New("repository is locked")

// LockContext takes a lease of the given kind, waiting up to wait for
// conflicting leases to end. Every taker first writes its own lock file and
// then looks for conflicts, so two takers can never both believe they won.
// The wait ends as soon as ctx does: it then returns an error wrapping
// ctx.Err() and leaves no lock file of its own behind.
func (r *Repo) LockContext(ctx context.Context, kind LockKind, wait time.Duration) (*Lock, error) {
	deadline := time.Now().Add(wait)
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("waiting for the %s repository lock: %w", kind, err)
		}
		l, conflict, err := r.tryLock(kind)
		if err != nil {
			return nil, err
		}
		if l != nil {
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: %s (it expires by itself at the latest %s after its holder stops)", ErrLocked, conflict, LeaseDuration)
		}
		retry := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			retry.Stop()
			return nil, fmt.Errorf("stopped waiting for the %s repository lock (%s): %w", kind, conflict, ctx.Err())
		case <-retry.C:
		}
	}
}

func (r *Repo) tryLock(kind LockKind) (*Lock, string, error) {
	host, _ := os.Hostname()
	l := &Lock{r: r, name: locksDir + "/" + randomHex(16), kind: kind, stop: make(chan struct{})}
	if err := l.write(host); err != nil {
		return nil, "", err
	}
	conflict, err := r.conflictingLock(l.name, kind)
	if err != nil || conflict != "" {
		_ = r.Store.Delete(r.ctx, l.name)
		return nil, conflict, err
	}
	l.done.Add(1)
	go l.refresh(host)
	return l, "", nil
}

func (l *Lock) write(host string) error {
	now := time.Now()
	data, _ := json.Marshal(lockFile{Kind: l.kind, Hostname: host, PID: os.Getpid(), Expires: now.Add(LeaseDuration)})
	if err := l.r.Store.Put(l.r.ctx, l.name, data, PutOptions{}); err != nil {
		return err
	}
	l.mu.Lock()
	l.renewed = now
	l.mu.Unlock()
	return nil
}

// renew refreshes the lease unless it is gone: a lease another process
// removed as expired is not brought back, so Held stays false.
func (l *Lock) renew(host string) {
	l.mu.Lock()
	lost := l.lost
	l.mu.Unlock()
	if lost {
		return
	}
	if _, err := l.r.Store.Stat(l.r.ctx, l.name); notExist(err) {
		l.mu.Lock()
		l.lost = true
		l.mu.Unlock()
		return
	}
	_ = l.write(host)
}

func (l *Lock) refresh(host string) {
	defer l.done.Done()
	t := time.NewTicker(LeaseDuration / 4)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.renew(host)
		}
	}
}

// conflictingLock describes a live lock other than own that conflicts with kind.
// Expired locks are removed on the way.
func (r *Repo) conflictingLock(own string, kind LockKind) (string, error) {
	var names []string
	if err := r.Store.List(r.ctx, locksDir, func(oi ObjectInfo) error { names = append(names, oi.Name); return nil }); err != nil {
		return "", err
	}
	for _, name := range names {
		if name == own {
			continue
		}
		data, err := r.Store.Get(r.ctx, name, 0, -1, nil)
		if notExist(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		var lf lockFile
		if json.Unmarshal(data, &lf) != nil {
			continue // not a lock of ours
		}
		if time.Now().After(lf.Expires.Add(clockSkew())) || holderIsGone(lf) {
			_ = r.Store.Delete(r.ctx, name)
			continue
		}
		if kind == Exclusive || lf.Kind == Exclusive {
			return fmt.Sprintf("%s lock held by pid %d on %s until %s", lf.Kind, lf.PID, lf.Hostname, lf.Expires.Format(time.RFC3339)), nil
		}
	}
	return "", nil
}

// Held reports whether the lease is still ours: its object exists and
// names a time in the future. A holder that was paused longer than the
// lease may have lost it to prune, and must not publish anything that
// relies on it.
func (l *Lock) Held() bool {
	l.mu.Lock()
	fresh := !l.lost && time.Since(l.renewed) < LeaseDuration-clockSkew()
	l.mu.Unlock()
	if !fresh {
		return false // not renewed in time: another process may have seen it expire
	}
	data, err := l.r.Store.Get(l.r.ctx, l.name, 0, -1, nil)
	if err != nil {
		return false
	}
	var lf lockFile
	return json.Unmarshal(data, &lf) == nil && time.Now().Before(lf.Expires)
}

// holderIsGone reports whether the lock was taken on this host by a process
// that no longer exists: such a lock is dead before its lease ends. A reused
// PID only makes the lock look alive, which errs on the safe side.
func holderIsGone(lf lockFile) bool {
	host, _ := os.Hostname()
	if lf.Hostname != host || lf.PID <= 0 || lf.PID == os.Getpid() {
		return false
	}
	return syscall.Kill(lf.PID, 0) == syscall.ESRCH
}

// Unlock releases the lease.
func (l *Lock) Unlock() {
	close(l.stop)
	l.done.Wait()
	// Released even when the repository's context has ended (a cancelled
	// backup): a lease left behind would block prune until it expires.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(l.r.ctx), 30*time.Second)
	defer cancel()
	_ = l.r.Store.Delete(ctx, l.name)
}
