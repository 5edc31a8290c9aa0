package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Totals are a snapshot's sizes.
type Totals struct {
	Files    int64 `json:"files"`
	Dirs     int64 `json:"dirs"`
	Symlinks int64 `json:"symlinks"`
	Bytes    int64 `json:"bytes"`
	// NewBytes and StoredBytes describe what the backup that made the snapshot
	// added to the repository.
	NewBytes    int64 `json:"newBytes"`
	StoredBytes int64 `json:"storedBytes"`
}

// Snapshot is a snapshot file. Its ID is the SHA-256 of the file; it is
// written last, so a snapshot is visible only when everything it names is durable.
type Snapshot struct {
	Time     time.Time `json:"time"`
	Source   string    `json:"source"`
	Hostname string    `json:"hostname,omitempty"`
	Parent   *ID       `json:"parent,omitempty"`
	Manifest ID        `json:"manifest"`
	// ManifestSize lets verify and prune budget their reads.
	ManifestSize int64  `json:"manifestSize"`
	Totals       Totals `json:"totals"`
	// Tags are free key/value pairs (for example the Backup object's name and
	// namespace) from which the Backup can be re-created if the API server's
	// own storage is lost.
	Tags map[string]string `json:"tags,omitempty"`

	ID ID `json:"-"`
}

// OnceTag names what a snapshot is the backup of (the operator sets it to
// the Backup object's UID): a repository keeps one snapshot per value. A
// backup run again after its first attempt published its snapshot (a mover
// killed before it could report, a pod deleted while its container still
// ran) ends with that snapshot rather than a second one.
const OnceTag = "backup-uid"

// SaveSnapshot publishes a snapshot and returns it with its ID set. When the
// snapshot carries OnceTag and the repository already holds a snapshot with
// the same value, nothing is written and s becomes that snapshot.
func (r *Repo) SaveSnapshot(s *Snapshot) error {
	once := s.Tags[OnceTag]
	if once != "" {
		prev, err := r.snapshotsTagged(OnceTag, once)
		if err != nil {
			return err
		}
		if len(prev) > 0 {
			*s = *prev[0]
			return nil
		}
		if betweenLookAndWrite != nil {
			betweenLookAndWrite()
		}
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	id, err := r.writeContentAddressed(snapshotsDir, r.seal(data, aadSnapshot))
	s.ID = id
	if err != nil || once == "" {
		return err
	}
	// Two attempts that published at the same moment both see both: the
	// snapshot with the smaller ID stays, and the other attempt forgets its
	// own and ends with the one that stays. (An attempt that looked before
	// the other published keeps its own; the repository then holds two, and
	// the prune of the Backup's deletion forgets both by their tag.) This
	// second look is best effort: the snapshot is published, so whatever
	// goes wrong here, the backup ends with it.
	all, err := r.snapshotsTagged(OnceTag, once)
	if err == nil && len(all) > 1 && all[0].ID != id {
		if _, err := r.forgetSnapshot(id); err == nil {
			*s = *all[0]
		}
	}
	return nil
}

// betweenLookAndWrite lets a test publish a competing snapshot at the worst moment.
var betweenLookAndWrite func()

// snapshotsTagged returns the snapshots whose tag key has value, smallest
// ID first.
func (r *Repo) snapshotsTagged(key, value string) ([]*Snapshot, error) {
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	var out []*Snapshot
	for _, s := range snaps {
		if s.Tags[key] == value {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.String() < out[j].ID.String() })
	return out, nil
}

// LoadSnapshot reads and verifies one snapshot.
func (r *Repo) LoadSnapshot(id ID) (*Snapshot, error) {
	data, err := r.readVerified(snapshotsDir, id)
	if notExist(err) {
		return nil, fmt.Errorf("snapshot %s does not exist (backup-mover ls lists them)", id.Short())
	}
	if err != nil {
		return nil, err
	}
	if data, err = r.open(data, aadSnapshot); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id.Short(), err)
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("snapshot %s is damaged: %w", id.Short(), err)
	}
	s.ID = id
	return &s, nil
}

// Snapshots returns every snapshot, oldest first.
func (r *Repo) Snapshots() ([]*Snapshot, error) {
	ids, err := r.SnapshotIDs()
	if err != nil {
		return nil, err
	}
	var out []*Snapshot
	for _, id := range ids {
		s, err := r.LoadSnapshot(id)
		if err != nil {
			// Forgotten since the listing (by a prune, or by a duplicate
			// attempt of one Backup, which may run beside readers).
			if _, serr := r.Store.Stat(r.ctx, objectName(snapshotsDir, id)); notExist(serr) {
				continue
			}
			return nil, err
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// ResolveSnapshot accepts a full ID or a unique prefix of at least 8 digits,
// or "latest".
func (r *Repo) ResolveSnapshot(ref string) (ID, error) {
	ids, err := r.SnapshotIDs()
	if err != nil {
		return ID{}, err
	}
	if ref == "latest" {
		snaps, err := r.Snapshots()
		if err != nil {
			return ID{}, err
		}
		if len(snaps) == 0 {
			return ID{}, errors.New("the repository has no snapshots")
		}
		return snaps[len(snaps)-1].ID, nil
	}
	if len(ref) < 8 {
		return ID{}, fmt.Errorf("snapshot id %q is too short: give at least 8 hex digits", ref)
	}
	var found []ID
	for _, id := range ids {
		if strings.HasPrefix(id.String(), ref) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return ID{}, fmt.Errorf("snapshot %s does not exist (backup-mover ls lists them)", ref)
	case 1:
		return found[0], nil
	default:
		return ID{}, fmt.Errorf("snapshot id %s is ambiguous: give more digits", ref)
	}
}

// forgetSnapshot deletes a snapshot object (prune's first, committing
// step). A snapshot whose object is locked gets a tombstone instead
// (forgotten/<id>), which hides it from every reader; a later prune deletes
// both once the lock has ended. It returns the lock's end when it left a
// tombstone.
func (r *Repo) forgetSnapshot(id ID) (*time.Time, error) {
	err := r.Store.Delete(r.ctx, objectName(snapshotsDir, id))
	var re *RetainedError
	if errors.As(err, &re) {
		if err := r.Store.Put(r.ctx, objectName(forgottenDir, id), nil, PutOptions{}); err != nil {
			return nil, err
		}
		return &re.Until, nil
	}
	if err != nil {
		return nil, err
	}
	// A tombstone under a bucket's default retention stays until its lock
	// ends; it then hides a snapshot that no longer exists, which is harmless.
	if err := r.Store.Delete(r.ctx, objectName(forgottenDir, id)); err != nil && !errors.Is(err, ErrRetained) {
		return nil, err
	}
	return nil, nil
}

// SnapshotIDs lists the snapshots without reading them; forgotten ones
// (whose objects are still locked) are left out.
func (r *Repo) SnapshotIDs() ([]ID, error) {
	ids, err := r.listIDs(snapshotsDir)
	if err != nil {
		return nil, err
	}
	forgotten, err := r.forgotten()
	if err != nil || len(forgotten) == 0 {
		return ids, err
	}
	out := ids[:0]
	for _, id := range ids {
		if !forgotten[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// forgotten is the set of snapshots with a tombstone.
func (r *Repo) forgotten() (map[ID]bool, error) {
	ids, err := r.listIDs(forgottenDir)
	if err != nil {
		return nil, err
	}
	set := make(map[ID]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set, nil
}
