package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PruneResult says what prune removed.
type PruneResult struct {
	Forgotten      []string `json:"forgotten"`
	PacksDeleted   int      `json:"packsDeleted"`
	PacksRewritten int      `json:"packsRewritten"`
	BlobsDeleted   int      `json:"blobsDeleted"`
	BytesFreed     int64    `json:"bytesFreed"`
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
func (r *Repo) Prune(ctx context.Context, forget []ID, wait time.Duration) (*PruneResult, error) {
	lock, err := r.LockContext(ctx, Exclusive, wait)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	if err := r.LoadIndex(); err != nil {
		return nil, fmt.Errorf("prune stopped before deleting anything: %w", err)
	}
	res := &PruneResult{Forgotten: []string{}}
	for _, id := range forget {
		if _, err := os.Stat(filepath.Join(r.Dir, snapshotsDir, id.String())); errors.Is(err, os.ErrNotExist) {
			continue // already forgotten (a repeated prune after a crash)
		}
		if err := r.removeSnapshot(id); err != nil {
			return res, err
		}
		res.Forgotten = append(res.Forgotten, id.String())
	}

	CrashAt("prune-after-forget")
	snaps, err := r.Snapshots()
	if err != nil {
		return res, fmt.Errorf("prune stopped before deleting data: %w", err)
	}
	live := map[ID]bool{}
	manifests := map[ID]bool{}
	for _, s := range snaps {
		manifests[s.Manifest] = true
		m, err := r.OpenManifest(s.Manifest)
		if err != nil {
			return res, fmt.Errorf("prune stopped before deleting data: snapshot %s: %w", s.ID.Short(), err)
		}
		for {
			e, err := m.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				m.Close()
				return res, fmt.Errorf("prune stopped before deleting data: snapshot %s: %w", s.ID.Short(), err)
			}
			for _, c := range e.Chunks {
				live[c] = true
			}
		}
		m.Close()
	}

	r.mu.RLock()
	packLive := map[ID]int{}
	packDead := map[ID]int{}
	for id, loc := range r.index {
		if live[id] {
			packLive[loc.Pack]++
		} else {
			packDead[loc.Pack]++
		}
	}
	r.mu.RUnlock()
	for id := range live {
		if _, ok := r.Lookup(id); !ok {
			return res, fmt.Errorf("prune stopped before deleting data: blob %s is referenced but missing; run verify", id.Short())
		}
	}

	// Step 3: move live blobs out of mixed packs.
	rw := r.newRewriter()
	for id := range live {
		loc, _ := r.Lookup(id)
		if packDead[loc.Pack] == 0 {
			continue
		}
		data, err := r.readBlobAt(id, loc, nil)
		if err != nil {
			return res, fmt.Errorf("prune stopped before deleting data: %w", err)
		}
		if _, err := rw.Add(id, data, loc.Compressed); err != nil {
			return res, err
		}
	}
	if err := rw.Finish(); err != nil {
		return res, err
	}
	CrashAt("prune-after-rewrite")
	for p := range packDead {
		if packLive[p] > 0 {
			res.PacksRewritten++
		}
	}

	// Step 4: one index of the live blobs, then drop the older index files.
	oldIndexes, err := r.listIDs(indexDir)
	if err != nil {
		return res, err
	}
	liveLocs := map[ID]Location{}
	usedPacks := map[ID]bool{}
	r.mu.RLock()
	for id := range live {
		loc := r.index[id]
		liveLocs[id] = loc
		usedPacks[loc.Pack] = true
	}
	res.BlobsDeleted = len(r.index) - len(live)
	r.mu.RUnlock()
	var newIndex ID
	if len(liveLocs) > 0 {
		data := compressAll(encodeIndex(liveLocs))
		var err error
		if newIndex, err = writeContentAddressed(filepath.Join(r.Dir, indexDir), data); err != nil {
			return res, err
		}
	}
	CrashAt("prune-after-new-index")
	for _, id := range oldIndexes {
		if id != newIndex {
			if err := removeFile(filepath.Join(r.Dir, indexDir, id.String())); err != nil {
				return res, err
			}
		}
	}
	if err := syncDir(filepath.Join(r.Dir, indexDir)); err != nil {
		return res, err
	}
	r.mu.Lock()
	r.index = liveLocs
	r.mu.Unlock()

	// Step 5: packs no index refers to (dead, rewritten, or left by a crashed backup).
	r.packs.closeAll()
	packs, err := r.Packs()
	if err != nil {
		return res, err
	}
	for _, p := range packs {
		if usedPacks[p] {
			continue
		}
		path := packPath(r.Dir, p)
		if st, err := os.Stat(path); err == nil {
			res.BytesFreed += st.Size()
		}
		if err := removeFile(path); err != nil {
			return res, err
		}
		res.PacksDeleted++
		CrashAt("prune-mid-pack-delete")
	}
	allManifests, err := r.listIDs(manifestsDir)
	if err != nil {
		return res, err
	}
	for _, m := range allManifests {
		if !manifests[m] {
			path := filepath.Join(r.Dir, manifestsDir, m.String())
			if st, err := os.Stat(path); err == nil {
				res.BytesFreed += st.Size()
			}
			if err := removeFile(path); err != nil {
				return res, err
			}
		}
	}
	r.removeStaleTemporaries()
	return res, nil
}

// removeStaleTemporaries deletes temporary files that crashed writers left,
// once they are old enough that no live writer can still own them.
func (r *Repo) removeStaleTemporaries() {
	cutoff := time.Now().Add(-4 * LeaseDuration)
	_ = filepath.Walk(r.Dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasPrefix(info.Name(), ".tmp-") && info.ModTime().Before(cutoff) {
			_ = os.Remove(path)
		}
		return nil
	})
}
