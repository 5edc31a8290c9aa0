package controller

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// drain returns the keys q holds now, sorted.
func drain(q workqueue.TypedRateLimitingInterface[string]) []string {
	var keys []string
	for q.Len() > 0 {
		k, _ := q.Get()
		q.Done(k)
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func moverJobObject(ns, name, kind, owner string, managed bool) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{v1alpha1.JobKindLabel: kind}}}
	if managed {
		j.Labels[v1alpha1.ManagedByLabel] = v1alpha1.ManagedBy
	}
	if owner != "" {
		j.Annotations = map[string]string{v1alpha1.OwnerAnnotation: owner}
	}
	return j
}

// startInformers starts the fixture's informers on the fake clientsets and
// waits until the Manager's handlers have seen every listed object. It
// returns a channel that is closed once the Job informer watches.
func (f *fixture) startInformers(ctx context.Context) <-chan struct{} {
	f.t.Helper()
	watching := make(chan struct{})
	f.kube.PrependWatchReactor("jobs", func(a k8stesting.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if w, ok := a.(k8stesting.WatchActionImpl); ok {
			opts = w.ListOptions
		}
		w, err := f.kube.Tracker().Watch(a.GetResource(), a.GetNamespace(), opts)
		select {
		case <-watching:
		default:
			close(watching)
		}
		return true, w, err
	})
	f.kubeInf.Start(ctx.Done())
	f.own.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), f.m.synced...) {
		f.t.Fatal("informers did not sync")
	}
	return watching
}

// A mover Job's events wake its owner: the owner annotation (the full
// namespace/name, also of an owner in another namespace) is enqueued in the
// queue of the Job's kind (backup and prune: Backups, restore: RestoreJobs,
// import: BackupPolicies), also when the Job is deleted. Jobs the operator
// does not manage, or without an owner, wake nothing. A Backup's events wake
// its policy.
func TestEventsWakeTheOwner(t *testing.T) {
	withPolicy := newBackup("prod", "db-1", "uid-1", "prod")
	withPolicy.Spec.PolicyName = "db"
	f := newFixture(t)
	for _, o := range []runtime.Object{
		moverJobObject("prod", "j-backup", "backup", "team-a/b1", true),
		moverJobObject("prod", "j-prune", "prune", "team-a/b2", true),
		moverJobObject("prod", "j-restore", "restore", "team-b/r1", true),
		moverJobObject("prod", "j-import", "import", "prod/importer", true),
		moverJobObject("prod", "j-foreign", "backup", "prod/not-ours", false),
		moverJobObject("prod", "j-no-owner", "backup", "", true),
	} {
		if err := f.kube.Tracker().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []*v1alpha1.Backup{withPolicy, newBackup("prod", "lone", "uid-2", "prod")} {
		if err := f.client.Tracker().Add(b); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watching := f.startInformers(ctx)

	if got := strings.Join(drain(f.m.backupQueue), " "); got != "prod/db-1 prod/lone team-a/b1 team-a/b2" {
		t.Errorf("Backup queue %q, want the two Backups and the owners of the backup and prune Jobs", got)
	}
	if got := strings.Join(drain(f.m.restoreQueue), " "); got != "team-b/r1" {
		t.Errorf("RestoreJob queue %q, want the restore Job's owner", got)
	}
	if got := strings.Join(drain(f.m.policyQueue), " "); got != "prod/db prod/importer" {
		t.Errorf("policy queue %q, want the Backup's policy and the import Job's owner", got)
	}

	select {
	case <-watching:
	case <-time.After(5 * time.Second):
		t.Fatal("the Job informer does not watch")
	}
	if err := f.kube.BatchV1().Jobs("prod").Delete(ctx, "j-restore", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted Job's owner", func() bool { return f.m.restoreQueue.Len() == 1 })
	if got := strings.Join(drain(f.m.restoreQueue), " "); got != "team-b/r1" {
		t.Errorf("RestoreJob queue %q after the Job was deleted, want its owner", got)
	}
}

// Running, the controllers act on what the informers deliver: a Backup that
// exists gets its mover Job and is Running. Run returns once its context
// ends.
func TestRunActsOnBackups(t *testing.T) {
	f := newFixture(t)
	for _, o := range []runtime.Object{boundPVC("prod", "data"), boundPVC("prod", "backup-repo")} {
		if err := f.kube.Tracker().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.client.Tracker().Add(newBackup("prod", "b", "uid-1", "prod")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.startInformers(ctx)
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		f.m.Run(runCtx)
	}()
	waitFor(t, "the Backup to run", func() bool {
		b, err := f.client.BackupV1alpha1().Backups("prod").Get(ctx, "b", metav1.GetOptions{})
		return err == nil && b.Status.Phase == v1alpha1.BackupPhaseRunning
	})
	if jobs := f.jobs("prod"); len(jobs) != 1 || jobs[0].Labels[v1alpha1.OwnerUIDLabel] != "uid-1" {
		t.Errorf("want the Backup's one mover Job, got %+v", jobs)
	}
	stop()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if !f.m.backupQueue.ShuttingDown() {
		t.Error("the queues are still open after Run returned")
	}
}
