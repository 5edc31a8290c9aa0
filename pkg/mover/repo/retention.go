package repo

import (
	"errors"
	"fmt"
	"sync"
)

// ExtendLocks makes every object a new snapshot depends on stay locked at
// least until the repository's retention ends: the packs holding its blobs
// (packs written by earlier backups included), every index file, the
// config and the key files. The snapshot's own new objects were written
// locked already. It does nothing when the repository was opened without a
// retention.
func (r *Repo) ExtendLocks(packs map[ID]bool) error {
	if r.retention == nil {
		return nil
	}
	rt, ok := r.Store.(Retainer)
	if !ok {
		return errors.New("the repository's storage cannot lock objects")
	}
	names := []string{configName}
	for _, dir := range []string{indexDir, keysDir} {
		if err := r.Store.List(r.ctx, dir, func(oi ObjectInfo) error { names = append(names, oi.Name); return nil }); err != nil {
			return err
		}
	}
	for p := range packs {
		names = append(names, packName(p))
	}
	work := make(chan string)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				if err := rt.ExtendRetention(r.ctx, name, *r.retention); err != nil {
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
