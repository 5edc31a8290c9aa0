package benchutil

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"k8s.io/client-go/tools/cache"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/generated/clientset/versioned"
	backupinformers "example.com/backup-operator/pkg/generated/informers/externalversions"
)

// WatchFinished counts into finished the Backups of namespace that reach
// Completed or Failed, from a watch (one list, then events), so that the
// server's memory is not disturbed by repeated full lists: a list of 10,000
// Backups every few seconds leaves some 10 MB of garbage in the server each
// time. It returns once the watch has synced; stop ends it.
func WatchFinished(ctx context.Context, client versioned.Interface, namespace string, finished *atomic.Int64) (stop func(), err error) {
	factory := backupinformers.NewSharedInformerFactoryWithOptions(client, 0, backupinformers.WithNamespace(namespace))
	inf := factory.Backup().V1alpha1().Backups().Informer()
	var mu sync.Mutex
	done := map[string]bool{}
	handle := func(o any) {
		bk, ok := o.(*v1alpha1.Backup)
		if !ok || (bk.Status.Phase != v1alpha1.BackupPhaseFailed && bk.Status.Phase != v1alpha1.BackupPhaseCompleted) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !done[bk.Name] {
			done[bk.Name] = true
			finished.Add(1)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: handle, UpdateFunc: func(_, o any) { handle(o) }}); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	factory.Start(wctx.Done())
	if !cache.WaitForCacheSync(wctx.Done(), inf.HasSynced) {
		cancel()
		return nil, fmt.Errorf("watching Backups: %w", ctx.Err())
	}
	return func() { cancel(); factory.Shutdown() }, nil
}
