package controller

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubeinformers "k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/generated/clientset/versioned/fake"
	"example.com/backup-operator/pkg/generated/informers/externalversions"
	"example.com/backup-operator/pkg/safety"
)

// fixture is a Manager on fake clientsets whose informer caches are filled
// directly with the same objects, sample-controller style: a sync reads the
// caches and writes through the clientsets, and the test reads the result
// back from the clientsets and the recorded events.
type fixture struct {
	t       *testing.T
	kube    *kubefake.Clientset
	client  *fake.Clientset
	kubeInf kubeinformers.SharedInformerFactory
	own     externalversions.SharedInformerFactory
	events  *record.FakeRecorder
	m       *Manager
	now     time.Time
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	f := &fixture{t: t, now: time.Date(2026, 11, 30, 2, 0, 30, 0, time.UTC)}
	var kubeObjs, ownObjs []runtime.Object
	for _, o := range objs {
		switch o.(type) {
		case *v1alpha1.Backup, *v1alpha1.BackupPolicy, *v1alpha1.RestoreJob:
			ownObjs = append(ownObjs, o)
		default:
			kubeObjs = append(kubeObjs, o)
		}
	}
	f.kube = kubefake.NewClientset(kubeObjs...)
	f.client = fake.NewSimpleClientset(ownObjs...)
	f.kubeInf = kubeinformers.NewSharedInformerFactory(f.kube, 0)
	f.own = externalversions.NewSharedInformerFactory(f.client, 0)
	pods := f.kubeInf.Core().V1().Pods().Informer()
	if err := pods.AddIndexers(cache.Indexers{safety.PodsByPVCIndex: safety.PodsByPVC}); err != nil {
		t.Fatal(err)
	}
	backups, restores := f.own.Backup().V1alpha1().Backups().Informer(), f.own.Backup().V1alpha1().RestoreJobs().Informer()
	if err := backups.AddIndexers(safety.BackupIndexers()); err != nil {
		t.Fatal(err)
	}
	if err := restores.AddIndexers(safety.RestoreIndexers()); err != nil {
		t.Fatal(err)
	}
	checker := &safety.Checker{
		PVCs: f.kubeInf.Core().V1().PersistentVolumeClaims().Lister(), Pods: pods.GetIndexer(),
		Backups: backups.GetIndexer(), Restores: restores.GetIndexer(),
	}
	f.m = NewManager(Options{MoverImage: "backup-operator:test", Now: func() time.Time { return f.now }}, f.kube, f.client, f.kubeInf, f.own, checker)
	f.events = record.NewFakeRecorder(100)
	f.m.recorder = f.events
	for _, o := range objs {
		f.cache(o)
	}
	return f
}

// cache puts an object into the informer cache the controllers read.
func (f *fixture) cache(o runtime.Object) {
	f.t.Helper()
	var inf cache.SharedIndexInformer
	switch o.(type) {
	case *v1alpha1.Backup:
		inf = f.own.Backup().V1alpha1().Backups().Informer()
	case *v1alpha1.BackupPolicy:
		inf = f.own.Backup().V1alpha1().BackupPolicies().Informer()
	case *v1alpha1.RestoreJob:
		inf = f.own.Backup().V1alpha1().RestoreJobs().Informer()
	case *batchv1.Job:
		inf = f.kubeInf.Batch().V1().Jobs().Informer()
	case *corev1.Pod:
		inf = f.kubeInf.Core().V1().Pods().Informer()
	case *corev1.PersistentVolumeClaim:
		inf = f.kubeInf.Core().V1().PersistentVolumeClaims().Informer()
	case *corev1.Namespace:
		return // read from the clientset
	case *corev1.Secret:
		return // in the clientset only: the controllers never read Secrets
	default:
		f.t.Fatalf("no cache for %T", o)
	}
	if err := inf.GetIndexer().Add(trimmed(f.t, o)); err != nil {
		f.t.Fatal(err)
	}
}

// trimmed is o as the server's informers cache it: kube-apiserver's objects
// pass TrimCached, so every test reads what the controllers read in a server.
func trimmed(t *testing.T, o runtime.Object) interface{} {
	t.Helper()
	switch o.(type) {
	case *v1alpha1.Backup, *v1alpha1.BackupPolicy, *v1alpha1.RestoreJob:
		return o
	}
	out, err := TrimCached(o.DeepCopyObject())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// resync copies what the clientsets hold now into the caches, as the
// informers would.
func (f *fixture) resync() {
	f.t.Helper()
	ctx := context.Background()
	bs, _ := f.client.BackupV1alpha1().Backups("").List(ctx, metav1.ListOptions{})
	for i := range bs.Items {
		f.own.Backup().V1alpha1().Backups().Informer().GetIndexer().Update(&bs.Items[i])
	}
	ps, _ := f.client.BackupV1alpha1().BackupPolicies("").List(ctx, metav1.ListOptions{})
	for i := range ps.Items {
		f.own.Backup().V1alpha1().BackupPolicies().Informer().GetIndexer().Update(&ps.Items[i])
	}
	rs, _ := f.client.BackupV1alpha1().RestoreJobs("").List(ctx, metav1.ListOptions{})
	for i := range rs.Items {
		f.own.Backup().V1alpha1().RestoreJobs().Informer().GetIndexer().Update(&rs.Items[i])
	}
	js, _ := f.kube.BatchV1().Jobs("").List(ctx, metav1.ListOptions{})
	for i := range js.Items {
		f.kubeInf.Batch().V1().Jobs().Informer().GetIndexer().Update(trimmed(f.t, &js.Items[i]))
	}
}

func (f *fixture) syncBackup(ns, name string) result {
	f.t.Helper()
	res, err := f.m.syncBackup(context.Background(), ns, name)
	if err != nil {
		f.t.Fatalf("syncBackup %s/%s: %v", ns, name, err)
	}
	f.resync()
	return res
}

func (f *fixture) syncPolicy(ns, name string) result {
	f.t.Helper()
	res, err := f.m.syncPolicy(context.Background(), ns, name)
	if err != nil {
		f.t.Fatalf("syncPolicy %s/%s: %v", ns, name, err)
	}
	f.resync()
	return res
}

func (f *fixture) backup(ns, name string) *v1alpha1.Backup {
	f.t.Helper()
	b, err := f.client.BackupV1alpha1().Backups(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("reading Backup %s/%s: %v", ns, name, err)
	}
	return b
}

func (f *fixture) jobs(ns string) []batchv1.Job {
	f.t.Helper()
	l, err := f.kube.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return l.Items
}

// drainEvents returns the events recorded so far.
func (f *fixture) drainEvents() []string {
	var out []string
	for {
		select {
		case e := <-f.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func boundPVC(ns, name string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}}
}

// newBackup is a Backup as the API server stores it: with a UID, the data
// finalizer and its target's namespace filled in.
func newBackup(ns, name, uid, targetNS string) *v1alpha1.Backup {
	return &v1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Generation: 1, Finalizers: []string{v1alpha1.DataFinalizer},
			CreationTimestamp: metav1.NewTime(time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC))},
		Spec: v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{Namespace: targetNS, PVCName: "data"},
			Storage: v1alpha1.RepositoryStorage{PVCName: "backup-repo"}},
	}
}

// finishJob marks a Job Complete with a mover pod whose termination message
// is summary, as the Job controller and kubelet would.
func (f *fixture) finishJob(job *batchv1.Job, summary string) {
	f.t.Helper()
	job = job.DeepCopy()
	if job.UID == "" {
		job.UID = types.UID("job-uid-" + job.Name)
	}
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	if _, err := f.kube.BatchV1().Jobs(job.Namespace).UpdateStatus(context.Background(), job, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.cache(job)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: job.Namespace, Name: job.Name + "-abcde", Labels: map[string]string{batchv1.ControllerUidLabel: string(job.UID)}},
		Spec:       corev1.PodSpec{NodeName: "node-1"},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{Name: moverContainer,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: summary}}}}},
	}
	f.cache(pod)
}

func (f *fixture) syncRestore(ns, name string) result {
	f.t.Helper()
	res, err := f.m.syncRestore(context.Background(), ns, name)
	if err != nil {
		f.t.Fatalf("syncRestore %s/%s: %v", ns, name, err)
	}
	f.resync()
	return res
}

func (f *fixture) restore(ns, name string) *v1alpha1.RestoreJob {
	f.t.Helper()
	r, err := f.client.BackupV1alpha1().RestoreJobs(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("reading RestoreJob %s/%s: %v", ns, name, err)
	}
	return r
}

func (f *fixture) policy(ns, name string) *v1alpha1.BackupPolicy {
	f.t.Helper()
	p, err := f.client.BackupV1alpha1().BackupPolicies(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("reading BackupPolicy %s/%s: %v", ns, name, err)
	}
	return p
}

// podLogs makes the fake API server answer every pod log request with log,
// as a mover pod's stdout.
func (f *fixture) podLogs(log string) {
	f.kube.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "log" {
			return false, nil, nil
		}
		return true, &runtime.Unknown{Raw: []byte(log)}, nil
	})
}

// writes returns the verbs and resources (with subresource) the clientset
// was asked to change since the last call, e.g. "update backups/status".
func writes(c interface {
	Actions() []k8stesting.Action
	ClearActions()
}) []string {
	var out []string
	for _, a := range c.Actions() {
		switch a.GetVerb() {
		case "get", "list", "watch":
			continue
		}
		r := a.GetResource().Resource
		if s := a.GetSubresource(); s != "" {
			r += "/" + s
		}
		out = append(out, a.GetVerb()+" "+r)
	}
	c.ClearActions()
	return out
}

// jobInformerDelete removes a Job from the informer cache, as a delete event would.
func (f *fixture) jobInformerDelete(job *batchv1.Job) {
	f.t.Helper()
	if err := f.kubeInf.Batch().V1().Jobs().Informer().GetIndexer().Delete(job); err != nil {
		f.t.Fatal(err)
	}
}
