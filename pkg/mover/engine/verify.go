package engine

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"example.com/backup-operator/pkg/mover/repo"
)

// Damage is one object that failed verification.
type Damage struct {
	Object string `json:"object"` // e.g. "pack 3fa2…", "blob 91bc…", "snapshot 02de…"
	Error  string `json:"error"`
}

// VerifyResult lists what verify checked and what it found damaged.
type VerifyResult struct {
	Snapshots int      `json:"snapshots"`
	Blobs     int      `json:"blobs"`
	Bytes     int64    `json:"bytes"`
	Damaged   []Damage `json:"damaged"`
}

// OK reports whether nothing is damaged.
func (v *VerifyResult) OK() bool { return len(v.Damaged) == 0 }

// Verify re-reads and re-hashes everything the given snapshots reference (all
// snapshots when ids is empty): snapshot files, manifests, and every blob.
// With whole set, it also checks every pack and index file of the repository.
func Verify(ctx context.Context, r *repo.Repo, ids []repo.ID, whole bool) (*VerifyResult, error) {
	lock, err := r.LockContext(ctx, repo.Shared, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	res := &VerifyResult{Damaged: []Damage{}}
	damage := func(obj string, err error) {
		res.Damaged = append(res.Damaged, Damage{Object: obj, Error: err.Error()})
	}
	if err := r.LoadIndex(); err != nil {
		damage("index", err)
		return res, nil
	}
	if len(ids) == 0 {
		all, err := r.SnapshotIDs()
		if err != nil {
			return nil, err
		}
		ids = all
	}
	blobs := map[repo.ID]bool{}
	for _, id := range ids {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		snap, err := r.LoadSnapshot(id)
		if err != nil {
			damage("snapshot "+id.Short(), err)
			continue
		}
		res.Snapshots++
		if err := collectBlobs(r, snap, blobs); err != nil {
			damage("manifest "+snap.Manifest.Short()+" of snapshot "+id.Short(), err)
		}
	}
	// Read blobs pack by pack, in offset order, so the disk reads sequentially.
	type ref struct {
		id  repo.ID
		loc repo.Location
	}
	var refs []ref
	for id := range blobs {
		loc, ok := r.Lookup(id)
		if !ok {
			damage("blob "+id.Short(), fmt.Errorf("referenced but missing from the index"))
			continue
		}
		refs = append(refs, ref{id, loc})
	}
	sort.Slice(refs, func(i, j int) bool {
		a, b := refs[i].loc, refs[j].loc
		if a.Pack != b.Pack {
			return a.Pack.String() < b.Pack.String()
		}
		return a.Offset < b.Offset
	})
	var buf []byte
	for _, rf := range refs {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		data, err := r.ReadBlob(rf.id, buf)
		if err != nil {
			damage("blob "+rf.id.Short(), err)
			continue
		}
		buf = data[:0]
		res.Blobs++
		res.Bytes += int64(len(data))
	}
	if whole {
		packs, err := r.Packs()
		if err != nil {
			return nil, err
		}
		for _, p := range packs {
			if err := r.CheckPack(p); err != nil {
				damage("pack "+p.Short(), err)
			}
		}
	}
	return res, nil
}

func collectBlobs(r *repo.Repo, snap *repo.Snapshot, into map[repo.ID]bool) error {
	m, err := r.OpenManifest(snap.Manifest)
	if err != nil {
		return err
	}
	defer m.Close()
	for {
		e, err := m.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		for _, c := range e.Chunks {
			into[c] = true
		}
	}
}
