// Package report is the contract between backup-mover and the controllers
// that run it: the summary it writes to --summary-file (a Job's termination
// message), the progress lines it prints while it works, and the rows of
// `backup-mover ls --json`. The mover writes these types and the controllers
// read them; the package imports nothing of Kubernetes.
package report

import "time"

// Summary is what an operation writes to --summary-file: small, under 4 KiB.
type Summary struct {
	Operation       string  `json:"operation"`
	SnapshotID      string  `json:"snapshotID,omitempty"`
	Files           int64   `json:"files"`
	Bytes           int64   `json:"bytes"`
	NewBytes        int64   `json:"newBytes"`
	StoredBytes     int64   `json:"storedBytes"`
	DurationSeconds float64 `json:"durationSeconds"`
	// Backup fields. Vanished counts entries (files, symlinks, directories
	// with their content) that were listed but gone when read; they are not
	// in the snapshot. ChangedDuringRead counts files whose size,
	// modification time or inode changed between the listing and the end of
	// their read; they are stored as read. VanishedPaths and ChangedPaths
	// name up to 10 of each, at most 256 bytes each; the mover drops them
	// first when the summary would not fit in 4 KiB.
	Vanished          int64    `json:"vanished,omitempty"`
	ChangedDuringRead int64    `json:"changedDuringRead,omitempty"`
	VanishedPaths     []string `json:"vanishedPaths,omitempty"`
	ChangedPaths      []string `json:"changedPaths,omitempty"`
	// Restore and diff fields.
	Creates    int64    `json:"creates,omitempty"`
	Overwrites int64    `json:"overwrites,omitempty"`
	Deletes    int64    `json:"deletes,omitempty"`
	Paths      []string `json:"paths,omitempty"`
	Truncated  bool     `json:"truncated,omitempty"`
	Verified   bool     `json:"verified,omitempty"`
	// XattrsSkipped counts extended attributes the target refused;
	// XattrWarning names the first.
	XattrsSkipped int64  `json:"xattrsSkipped,omitempty"`
	XattrWarning  string `json:"xattrWarning,omitempty"`
	// OwnersNotPreserved counts restored entries a mover that is not root
	// could not give their recorded owner (or, existing and another user's,
	// their mode and times).
	OwnersNotPreserved int64 `json:"ownersNotPreserved,omitempty"`
	// Prune fields. Retained counts objects kept because they are locked
	// (S3 Object Lock) until RetainedUntil at the latest; a later prune
	// deletes them.
	Forgotten     int        `json:"forgotten,omitempty"`
	PacksDeleted  int        `json:"packsDeleted,omitempty"`
	BytesFreed    int64      `json:"bytesFreed,omitempty"`
	Retained      int        `json:"retained,omitempty"`
	RetainedUntil *time.Time `json:"retainedUntil,omitempty"`
	// LockedUntil is when the objects of a backup's snapshot stop being
	// locked, when it was made with --lock-mode.
	LockedUntil *time.Time `json:"lockedUntil,omitempty"`
	// Error is set when the operation failed.
	Error string `json:"error,omitempty"`
}

// ProgressType is the type field of a progress line.
const ProgressType = "progress"

// Progress is one line the mover prints to stdout about once a second while
// it backs up or restores.
type Progress struct {
	Type       string `json:"type"` // ProgressType
	BytesDone  int64  `json:"bytesDone"`
	BytesTotal int64  `json:"bytesTotal"`
	FilesDone  int64  `json:"filesDone"`
	FilesTotal int64  `json:"filesTotal"`
}

// Snapshot is one row of `backup-mover ls --json` (a JSON array on one line).
type Snapshot struct {
	ID           string            `json:"id"`
	Time         time.Time         `json:"time"`
	Source       string            `json:"source"`
	Hostname     string            `json:"hostname,omitempty"`
	Parent       string            `json:"parent,omitempty"`
	Manifest     string            `json:"manifest"`
	ManifestSize int64             `json:"manifestSize"`
	Totals       Totals            `json:"totals"`
	Tags         map[string]string `json:"tags,omitempty"`
}

// Totals describe a snapshot's files and what its backup added.
type Totals struct {
	Files       int64 `json:"files"`
	Dirs        int64 `json:"dirs"`
	Symlinks    int64 `json:"symlinks"`
	Bytes       int64 `json:"bytes"`
	NewBytes    int64 `json:"newBytes"`
	StoredBytes int64 `json:"storedBytes"`
}

// The reader protocol: `backup-mover serve` answers the API server's
// backups/files subresource with these.
const (
	// ReaderTokenHashEnv names the reader's environment variable holding the
	// SHA-256 (hex) of the token it requires; without it no token is asked.
	ReaderTokenHashEnv = "BACKUP_READER_TOKEN_SHA256"
	// ReaderTokenHeader carries that token on every request but /healthz.
	ReaderTokenHeader = "X-Backup-Reader-Token"
	// ReaderEntryTypeHeader is the entry type (ReaderEntry.Type) of what a
	// successful response describes: Directory and Symlink come as a
	// ReaderListing, File as its content.
	ReaderEntryTypeHeader = "X-Backup-Entry-Type"
)

// ReaderError is the body of every error the reader answers.
type ReaderError struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// ReaderListing is a directory's children (or a symlink alone) in a snapshot.
type ReaderListing struct {
	Path  string        `json:"path"`
	Items []ReaderEntry `json:"items"`
}

// ReaderEntry is one entry of a ReaderListing.
type ReaderEntry struct {
	Name       string    `json:"name"`
	Type       string    `json:"type"` // Directory, File or Symlink
	Size       int64     `json:"size"`
	Mode       uint32    `json:"mode"`
	UID        uint32    `json:"uid"`
	GID        uint32    `json:"gid"`
	ModTime    time.Time `json:"modTime"`
	LinkTarget string    `json:"linkTarget,omitempty"`
}
