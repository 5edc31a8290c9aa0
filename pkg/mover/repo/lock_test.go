package repo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func lockFiles(t *testing.T, r *Repo) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(r.Dir, locksDir))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// A wait for a conflicting lock ends when its context does, long before the
// wait it was given, and leaves only the holder's lock file.
func TestLockWaitEndsWithItsContext(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	held, err := r.LockContext(context.Background(), Exclusive, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()

	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancelled before the first try", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			l, err := r.LockContext(ctx, Shared, time.Hour)
			if l != nil {
				l.Unlock()
				t.Fatal("shared lock granted while an exclusive lock is held")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want one wrapping %v", err, tc.want)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the wait took %s after its context ended at 300ms; it must end promptly", took)
			}
			if n := lockFiles(t, r); n != 1 {
				t.Errorf("%d lock files after the wait, want only the holder's", n)
			}
		})
	}
	if !held.Held() {
		t.Error("the holder's lock was disturbed by the waiters")
	}
}

// A waiting LockContext still takes the lock once the holder lets go.
func TestLockContextTakesTheLockWhenReleased(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	held, err := r.LockContext(context.Background(), Shared, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(200*time.Millisecond, held.Unlock)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := r.LockContext(ctx, Exclusive, time.Minute)
	if err != nil {
		t.Fatalf("exclusive lock not taken after the shared one was released: %v", err)
	}
	if !l.Held() {
		t.Error("lock taken but not held")
	}
	l.Unlock()
	if n := lockFiles(t, r); n != 0 {
		t.Errorf("%d lock files after Unlock, want none", n)
	}
}
