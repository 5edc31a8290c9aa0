package repo

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// LockOlderBlobs makes a new snapshot's locks cover what it uses from
// earlier backups: it writes an index of those blobs (locked like every
// object this backup writes), so the snapshot does not depend on older
// index files, whose locks may end first; and it extends the locks of their
// packs, of the config and of the key files to at least the repository's
// retention. Locks are extended with slack (half the time left), so that the
// next backups of a schedule mostly find them long enough and only read
// them. It does nothing without a retention.
func (r *Repo) LockOlderBlobs(refs map[ID]Location) error {
	if r.retention == nil {
		return nil
	}
	rt, ok := r.Store.(Retainer)
	if !ok {
		return errors.New("the repository's storage cannot lock objects")
	}
	if len(refs) > 0 {
		if _, _, err := r.writeIndex(refs); err != nil {
			return fmt.Errorf("writing the snapshot's index of older blobs: %w", err)
		}
	}
	names := []string{configName}
	if err := r.Store.List(r.ctx, keysDir, func(oi ObjectInfo) error { names = append(names, oi.Name); return nil }); err != nil {
		return err
	}
	packs := map[ID]bool{}
	for _, l := range refs {
		packs[l.Pack] = true
	}
	for p := range packs {
		names = append(names, packName(p))
	}
	if len(packs) > 0 {
		// One listing tells the storage every pack's versions at once.
		if err := r.Store.List(r.ctx, packsDir, func(ObjectInfo) error { return nil }); err != nil {
			return err
		}
	}
	want := *r.retention
	if left := time.Until(want.Until); left > 0 {
		want.Until = want.Until.Add(left / 2)
	}
	minimum := r.retention.Until
	work := make(chan string)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				if err := rt.ExtendRetention(r.ctx, name, minimum, want); err != nil {
					select {
					case errs <- fmt.Errorf("%s: %w", name, err):
					default:
					}
				}
			}
		}()
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
