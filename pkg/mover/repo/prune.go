package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"
)

// PruneResult says what prune removed.
type PruneResult struct {
	Forgotten      []string `json:"forgotten"`
	PacksDeleted   int      `json:"packsDeleted"`
	PacksRewritten int      `json:"packsRewritten"`
	BlobsDeleted   int      `json:"blobsDeleted"`
	BytesFreed     int64    `json:"bytesFreed"`
	// Retained counts objects prune would have deleted but kept because
	// they are locked (S3 Object Lock); a later prune deletes them once
	// their locks end, at the latest RetainedUntil.
	Retained      int        `json:"retained,omitempty"`
	RetainedUntil *time.Time `json:"retainedUntil,omitempty"`
	// RetainedSnapshots are forgotten snapshots whose objects are locked:
	// hidden by a tombstone until their locks end.
	RetainedSnapshots []string `json:"retainedSnapshots,omitempty"`
}

// retained records an object kept because of its lock.
func (res *PruneResult) retained(until time.Time) {
	res.Retained++
	if res.RetainedUntil == nil || until.After(*res.RetainedUntil) {
		u := until.UTC()
		res.RetainedUntil = &u
	}
}

// deleteOrKeep deletes an object unless it is locked; a locked one is
// counted in res. It reports whether the object was deleted.
func (r *Repo) deleteOrKeep(name string, res *PruneResult) (bool, error) {
	err := r.Store.Delete(r.ctx, name)
	var re *RetainedError
	if errors.As(err, &re) {
		res.retained(re.Until)
		return false, nil
	}
	return err == nil, err
}

// Prune forgets the given snapshots and deletes the data no remaining
// snapshot references. It holds the exclusive lock, and orders its writes so
// that a crash at any step leaves every remaining snapshot readable:
//
//  1. delete the forgotten snapshot files (the commit point);
//  2. read every remaining manifest; if any cannot be read, stop here;
//  3. copy live blobs out of packs that also hold dead ones, into new packs
//     with their own index;
//  4. write one index of all live blobs, then delete the older index files;
//  5. only then delete the packs no index refers to, and unused manifests.
//
// Each step is one helper below (forgetSnapshots, liveBlobs and
// checkLiveIndexed, repackMixedPacks, writeLiveIndex, deleteUnusedPacks and
// deleteUnusedManifests); they run strictly in this order. On an error the
// result says what was done so far.
func (r *Repo) Prune(ctx context.Context, forget []ID, wait time.Duration) (*PruneResult, error) {
	return r.PruneTagged(ctx, forget, nil, wait)
}

// PruneTagged is Prune that also forgets every snapshot carrying one of
// tags (key to value), looked up once the prune holds the repository: a
// Backup's duplicate snapshots (OnceTag) go with the one it recorded, even
// one published by a mover that was still running when the prune was asked for.
func (r *Repo) PruneTagged(ctx context.Context, forget []ID, tags map[string]string, wait time.Duration) (*PruneResult, error) {
	lock, err := r.LockContext(ctx, Exclusive, wait)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	// First, so that what crashed writers left cannot make the repository
	// too full for the packs step 3 writes (and again at the end).
	r.removeStaleTemporaries()
	if err := r.LoadIndex(); err != nil {
		return nil, fmt.Errorf("prune stopped before deleting anything: %w", err)
	}
	for k, v := range tags {
		tagged, err := r.snapshotsTagged(k, v)
		if err != nil {
			return nil, fmt.Errorf("prune stopped before deleting anything: %w", err)
		}
		for _, s := range tagged {
			forget = append(forget, s.ID)
		}
	}
	res := &PruneResult{Forgotten: []string{}}
	// Step 1.
	if err := r.forgetSnapshots(forget, res); err != nil {
		return res, err
	}
	CrashAt("prune-after-forget")
	// Step 2.
	live, manifests, err := r.liveBlobs()
	if err != nil {
		return res, err
	}
	packLive, packDead := r.packUsage(live)
	if err := r.checkLiveIndexed(live); err != nil {
		return res, err
	}
	// Step 3. Not in a bucket with Object Lock: the packs it would empty
	// are locked, so copying their live blobs would only add data.
	if rt, ok := r.Store.(Retainer); ok {
		locking, err := rt.LockingEnabled(r.ctx)
		if err != nil {
			return res, err
		}
		if locking {
			for p := range packDead {
				packDead[p] = 0
			}
		}
	}
	if err := r.repackMixedPacks(live, packLive, packDead, res); err != nil {
		return res, err
	}
	// Step 4.
	usedPacks, err := r.writeLiveIndex(live, res)
	if err != nil {
		return res, err
	}
	// Step 5.
	if err := r.deleteUnusedPacks(usedPacks, res); err != nil {
		return res, err
	}
	if err := r.deleteUnusedManifests(manifests, res); err != nil {
		return res, err
	}
	r.removeStaleTemporaries()
	return res, nil
}

// forgetSnapshots is step 1 of Prune, its commit point: it deletes the
// snapshot objects of forget, in order, and records each in res.Forgotten.
// A snapshot already gone (a repeated prune after a crash) is skipped. A
// locked one is hidden by a tombstone and listed in res.RetainedSnapshots;
// snapshots hidden so by earlier prunes are deleted once their locks end.
func (r *Repo) forgetSnapshots(forget []ID, res *PruneResult) error {
	earlier, err := r.forgotten()
	if err != nil {
		return err
	}
	for id := range earlier {
		forget = append(forget, id)
	}
	done := map[ID]bool{}
	for _, id := range forget {
		if done[id] {
			continue
		}
		done[id] = true
		if _, err := r.Store.Stat(r.ctx, objectName(snapshotsDir, id)); notExist(err) {
			if earlier[id] {
				if err := r.Store.Delete(r.ctx, objectName(forgottenDir, id)); err != nil && !errors.Is(err, ErrRetained) {
					return err
				}
			}
			continue // already forgotten (a repeated prune after a crash)
		} else if err != nil {
			return err
		}
		until, err := r.forgetSnapshot(id)
		if err != nil {
			return err
		}
		if until != nil {
			res.retained(*until)
			res.RetainedSnapshots = append(res.RetainedSnapshots, id.String())
		}
		if !earlier[id] {
			res.Forgotten = append(res.Forgotten, id.String())
		}
	}
	return nil
}

// liveBlobs is step 2 of Prune: it reads the manifest of every remaining
// snapshot and returns the blobs they reference (live) and the manifests
// themselves. If any snapshot or manifest cannot be read it fails, and
// Prune stops before deleting data.
func (r *Repo) liveBlobs() (live, manifests map[ID]bool, err error) {
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, nil, fmt.Errorf("prune stopped before deleting data: %w", err)
	}
	live = map[ID]bool{}
	manifests = map[ID]bool{}
	for _, s := range snaps {
		manifests[s.Manifest] = true
		m, err := r.OpenManifest(s.Manifest)
		if err != nil {
			return nil, nil, fmt.Errorf("prune stopped before deleting data: snapshot %s: %w", s.ID.Short(), err)
		}
		for {
			e, err := m.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				m.Close()
				return nil, nil, fmt.Errorf("prune stopped before deleting data: snapshot %s: %w", s.ID.Short(), err)
			}
			for _, c := range e.Chunks {
				live[c] = true
			}
		}
		m.Close()
	}
	return live, manifests, nil
}

// packUsage counts, for each pack, how many of the indexed blobs in it are
// live and how many are dead.
func (r *Repo) packUsage(live map[ID]bool) (packLive, packDead map[ID]int) {
	r.mu.RLock()
	packLive = map[ID]int{}
	packDead = map[ID]int{}
	for id, loc := range r.index.all {
		if live[id] {
			packLive[loc.Pack]++
		} else {
			packDead[loc.Pack]++
		}
	}
	r.mu.RUnlock()
	return packLive, packDead
}

// checkLiveIndexed fails if a live blob is missing from the index: Prune
// then stops before deleting data.
func (r *Repo) checkLiveIndexed(live map[ID]bool) error {
	for id := range live {
		if _, ok := r.Lookup(id); !ok {
			return fmt.Errorf("prune stopped before deleting data: blob %s is referenced but missing; run verify", id.Short())
		}
	}
	return nil
}

// repackMixedPacks is step 3 of Prune: it copies the live blobs of every
// pack that also holds dead ones into new packs, with their own index, and
// counts the rewritten packs in res.PacksRewritten. The old packs stay until
// step 5.
func (r *Repo) repackMixedPacks(live map[ID]bool, packLive, packDead map[ID]int, res *PruneResult) error {
	rw := r.newRewriter()
	defer rw.Abort()
	for id := range live {
		loc, _ := r.Lookup(id)
		if packDead[loc.Pack] == 0 {
			continue
		}
		data, err := r.readBlobAt(id, loc, nil)
		if err != nil {
			return fmt.Errorf("prune stopped before deleting data: %w", err)
		}
		if _, err := rw.Add(id, data, loc.Compressed); err != nil {
			return err
		}
	}
	if err := rw.Finish(); err != nil {
		return err
	}
	CrashAt("prune-after-rewrite")
	for p := range packDead {
		if packLive[p] > 0 {
			res.PacksRewritten++
		}
	}
	return nil
}

// writeLiveIndex is step 4 of Prune: it writes one index of the live blobs,
// then deletes the older index files and syncs the index directory, and
// replaces the in-memory index with the live blobs. It sets
// res.BlobsDeleted and returns the packs the new index refers to.
func (r *Repo) writeLiveIndex(live map[ID]bool, res *PruneResult) (usedPacks map[ID]bool, err error) {
	oldIndexes, err := r.listIDs(indexDir)
	if err != nil {
		return nil, err
	}
	// The new index is encoded from the loaded one, and the loaded one
	// then loses its dead blobs: no second index of the live blobs is held.
	usedPacks = map[ID]bool{}
	r.mu.RLock()
	for id := range live {
		loc, _ := r.index.get(id)
		usedPacks[loc.Pack] = true
	}
	res.BlobsDeleted = r.index.len() - len(live)
	var newIndex ID
	if len(live) > 0 {
		newIndex, _, err = r.writeBlobIndex(r.index, func(id ID) bool { return live[id] })
	}
	r.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	CrashAt("prune-after-new-index")
	for _, id := range oldIndexes {
		if id != newIndex {
			if _, err := r.deleteOrKeep(objectName(indexDir, id), res); err != nil {
				return nil, err
			}
		}
	}
	r.mu.Lock()
	for id := range r.index.m {
		if !live[id] {
			delete(r.index.m, id)
		}
	}
	r.mu.Unlock()
	return usedPacks, nil
}

// deleteUnusedPacks is the first half of step 5 of Prune: it deletes every
// pack no index refers to (dead, rewritten, or left by a crashed backup),
// counting them and their bytes in res. A locked pack is kept and counted
// in res.Retained (reading the index ignores locations in packs that are
// gone, so an index kept by its own lock may outlive them).
func (r *Repo) deleteUnusedPacks(usedPacks map[ID]bool, res *PruneResult) error {
	return r.deleteUnused(packsDir, usedPacks, res, func() {
		res.PacksDeleted++
		CrashAt("prune-mid-pack-delete")
	})
}

// deleteUnusedManifests is the second half of step 5 of Prune: it deletes
// every manifest no remaining snapshot refers to, counting its bytes in res.
func (r *Repo) deleteUnusedManifests(manifests map[ID]bool, res *PruneResult) error {
	return r.deleteUnused(manifestsDir, manifests, res, func() {})
}

// deleteUnused deletes the content-addressed objects in dir that are not
// in used, adding their bytes to res and calling deleted after each; locked
// ones are kept and counted in res.Retained.
func (r *Repo) deleteUnused(dir string, used map[ID]bool, res *PruneResult, deleted func()) error {
	var unused []ObjectInfo
	err := r.Store.List(r.ctx, dir, func(oi ObjectInfo) error {
		if id, err := ParseID(path.Base(oi.Name)); err == nil && !used[id] {
			unused = append(unused, oi)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, oi := range unused {
		gone, err := r.deleteOrKeep(oi.Name, res)
		if err != nil {
			return err
		}
		if gone {
			res.BytesFreed += oi.Size
			deleted()
		}
	}
	return nil
}

// removeStaleTemporaries deletes temporary files that crashed writers left
// in a directory repository, once they are old enough that no live writer
// can still own them. (An S3 upload is atomic and leaves nothing.)
func (r *Repo) removeStaleTemporaries() {
	if fst, ok := r.Store.(*FileStorage); ok {
		cutoff := time.Now().Add(-4 * LeaseDuration)
		fst.removeTemporaries(func(info os.FileInfo) bool { return info.ModTime().Before(cutoff) })
	}
}
