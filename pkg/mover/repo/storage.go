package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// Storage is where a repository's objects live: a directory (a PVC) or an
// S3 bucket. Object names are slash-separated paths relative to the
// repository's root ("config", "packs/ab/<id>", "locks/<random>"); one
// repository format is stored the same way on every backend. Every method
// takes a context and returns when it ends.
//
// What the repository relies on:
//   - Put is atomic: a reader sees an object whole or not at all, never a
//     prefix of it.
//   - A completed Put is durable and visible to every later Get and List
//     (read-after-write and list-after-write consistency).
//   - Get of a name that does not exist fails with an error wrapping
//     fs.ErrNotExist.
type Storage interface {
	// String describes the storage for messages; it never holds credentials.
	String() string
	// List calls fn for every object whose name starts with dir + "/".
	List(ctx context.Context, dir string, fn func(ObjectInfo) error) error
	// Stat returns an object's size.
	Stat(ctx context.Context, name string) (ObjectInfo, error)
	// Get reads length bytes of an object from offset (length < 0: to its
	// end), appending them to dst[:0].
	Get(ctx context.Context, name string, offset, length int64, dst []byte) ([]byte, error)
	// Download streams a whole object into w.
	Download(ctx context.Context, name string, w io.Writer) error
	// Put stores data as name, atomically.
	Put(ctx context.Context, name string, data []byte, o PutOptions) error
	// TempFile returns a local file in which a large object (a pack, a
	// manifest) is assembled before PutFile publishes it.
	TempFile(ctx context.Context, dir string) (*os.File, error)
	// PutFile publishes the temporary file f as name, atomically, and
	// removes f, whatever the outcome.
	PutFile(ctx context.Context, name string, f *os.File, o PutOptions) error
	// Delete removes an object; one that does not exist is no error. An
	// object under retention is not removed: the error wraps ErrRetained.
	Delete(ctx context.Context, name string) error
	// Close releases what the storage holds open.
	Close() error
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// PutOptions qualify a Put.
type PutOptions struct {
	// IfAbsent makes the Put fail with an error wrapping fs.ErrExist when
	// the object exists already (a conditional write).
	IfAbsent bool
	// Retention, when set, locks the object against deletion and
	// overwriting until Retention.Until (S3 Object Lock).
	Retention *Retention
}

// RetentionMode is the S3 Object Lock mode.
type RetentionMode string

const (
	// Governance: users with s3:BypassGovernanceRetention may still remove the lock.
	Governance RetentionMode = "GOVERNANCE"
	// Compliance: nobody can remove the lock before it ends, not even the bucket's owner.
	Compliance RetentionMode = "COMPLIANCE"
)

// Retention is an object lock.
type Retention struct {
	Mode  RetentionMode
	Until time.Time
}

// ParseRetentionMode accepts governance or compliance in any case.
func ParseRetentionMode(s string) (RetentionMode, error) {
	switch RetentionMode(upper(s)) {
	case Governance:
		return Governance, nil
	case Compliance:
		return Compliance, nil
	}
	return "", fmt.Errorf("lock mode %q is not governance or compliance", s)
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Retainer is a Storage with object locks (an S3 bucket created with
// Object Lock).
type Retainer interface {
	Storage
	// LockingEnabled reports whether the storage can lock objects.
	LockingEnabled(ctx context.Context) (bool, error)
	// Retention returns an object's lock; a zero Until means none.
	Retention(ctx context.Context, name string) (Retention, error)
	// ExtendRetention sets an object's lock to r unless it already lasts
	// until minimum.
	ExtendRetention(ctx context.Context, name string, minimum time.Time, r Retention) error
}

// ErrRetained means an object is locked and cannot be deleted yet.
var ErrRetained = errors.New("object is locked (S3 Object Lock)")

// RetainedError says until when a Delete was refused.
type RetainedError struct {
	Name  string
	Until time.Time
}

func (e *RetainedError) Error() string {
	return fmt.Sprintf("%s is locked until %s", e.Name, e.Until.UTC().Format(time.RFC3339))
}

func (e *RetainedError) Unwrap() error { return ErrRetained }

// notExist reports whether err means the object is missing.
func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
