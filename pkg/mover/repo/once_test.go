package repo

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

// TestSnapshotOncePerBackup: a backup run again after its first attempt
// published (the mover killed before it reported) ends with the first
// attempt's snapshot, not a second one; snapshots of other Backups and
// untagged ones are unaffected.
func TestSnapshotOncePerBackup(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snap := func(uid string, at time.Time) *Snapshot {
		s := &Snapshot{Time: at, Source: "/source", Manifest: Hash([]byte(at.String())), Totals: Totals{Files: int64(at.Second())}}
		if uid != "" {
			s.Tags = map[string]string{OnceTag: uid, "backup": "ns/b"}
		}
		return s
	}
	t0 := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	first := snap("uid-1", t0)
	if err := r.SaveSnapshot(first); err != nil {
		t.Fatal(err)
	}
	retry := snap("uid-1", t0.Add(time.Minute))
	if err := r.SaveSnapshot(retry); err != nil {
		t.Fatal(err)
	}
	if retry.ID != first.ID || retry.Totals.Files != first.Totals.Files || !retry.Time.Equal(first.Time) {
		t.Errorf("the retried backup ended with snapshot %s (%v), want the first attempt's %s", retry.ID.Short(), retry.Time, first.ID.Short())
	}
	other := snap("uid-2", t0.Add(2*time.Minute))
	if err := r.SaveSnapshot(other); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := r.SaveSnapshot(snap("", t0.Add(3*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := r.SnapshotIDs()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 { // uid-1, uid-2, and the untagged one (the same content twice)
		t.Errorf("%d snapshots, want 3: %v", len(ids), ids)
	}
}

// TestSnapshotOnceRace: another attempt publishes between this one's look
// and its write. Whichever ID is smaller stays: this attempt forgets its own
// when the other's is smaller, and ends with the one that stays.
func TestSnapshotOnceRace(t *testing.T) {
	for i := range 6 {
		r, err := Init(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2026, 12, 1, 2, 0, i, 0, time.UTC)
		var other ID
		betweenLookAndWrite = func() {
			s := &Snapshot{Time: t0.Add(time.Second), Source: "/source", Tags: map[string]string{OnceTag: "uid-1"}}
			data, _ := json.MarshalIndent(s, "", "  ")
			if other, err = r.writeContentAddressed(snapshotsDir, r.seal(data, aadSnapshot)); err != nil {
				t.Fatal(err)
			}
		}
		mine := &Snapshot{Time: t0, Source: "/source", Tags: map[string]string{OnceTag: "uid-1"}}
		err = r.SaveSnapshot(mine)
		betweenLookAndWrite = nil
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := r.SnapshotIDs()
		if mine.ID.String() > other.String() {
			t.Errorf("ended with %s, want the smaller %s", mine.ID.Short(), other.Short())
		}
		if mine.ID == other && len(ids) != 1 {
			t.Errorf("the attempt with the larger ID left its snapshot: %v", ids)
		}
		if mine.ID != other && len(ids) != 2 {
			t.Errorf("the attempt with the smaller ID kept %v; the other attempt forgets its own", ids)
		}
		r.Close()
	}
}

// TestPruneForgetsEveryDuplicate: the prune of a Backup's deletion forgets
// the snapshot it recorded and any other with its backup-uid (an attempt
// that published beside it), and no one else's.
func TestPruneForgetsEveryDuplicate(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	t0 := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	mw, err := r.NewManifestWriter() // an empty tree
	if err != nil {
		t.Fatal(err)
	}
	manifest, size, err := mw.Close()
	if err != nil {
		t.Fatal(err)
	}
	var ids []ID
	for i, uid := range []string{"uid-1", "uid-1", "uid-2"} {
		s := &Snapshot{Time: t0.Add(time.Duration(i) * time.Second), Source: "/source", Manifest: manifest, ManifestSize: size, Tags: map[string]string{OnceTag: uid}}
		data, _ := json.MarshalIndent(s, "", "  ")
		id, err := r.writeContentAddressed(snapshotsDir, r.seal(data, aadSnapshot))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	res, err := r.PruneTagged(context.Background(), []ID{ids[0]}, map[string]string{OnceTag: "uid-1"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	left, _ := r.SnapshotIDs()
	if len(res.Forgotten) != 2 || len(left) != 1 || left[0] != ids[2] {
		t.Errorf("forgot %v, left %v; want both of uid-1 forgotten and %s left", res.Forgotten, left, ids[2].Short())
	}
}
