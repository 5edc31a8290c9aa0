// Package controller holds the controllers that run inside backup-apiserver:
// the policy controller (schedules), the backup controller (mover Jobs,
// status, retention, data deletion through a finalizer) and the restore
// controller (safety re-check, mover Jobs). Each follows the usual shape:
// informers feed a rate-limited work queue, a sync handler reconciles one
// object idempotently, and status is written on a deep copy through /status.
package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/generated/clientset/versioned"
	"example.com/backup-operator/pkg/generated/clientset/versioned/scheme"
	"example.com/backup-operator/pkg/generated/informers/externalversions"
	backuplisters "example.com/backup-operator/pkg/generated/listers/backup/v1alpha1"
	"example.com/backup-operator/pkg/safety"

	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// Options configure the controllers.
type Options struct {
	// MoverImage is the image of the data mover Jobs (this operator's image).
	MoverImage string
	// JobDeadline bounds a mover Job's run time.
	JobDeadline time.Duration
	// Now is the clock (tests may replace it).
	Now func() time.Time
}

// Manager runs the three controllers.
type Manager struct {
	opts     Options
	kube     kubernetes.Interface
	client   versioned.Interface
	recorder record.EventRecorder
	checker  *safety.Checker

	policies backuplisters.BackupPolicyLister
	backups  backuplisters.BackupLister
	restores backuplisters.RestoreJobLister
	jobs     batchlisters.JobLister
	pods     corelisters.PodLister
	pvcs     corelisters.PersistentVolumeClaimLister

	policyQueue  workqueue.TypedRateLimitingInterface[string]
	backupQueue  workqueue.TypedRateLimitingInterface[string]
	restoreQueue workqueue.TypedRateLimitingInterface[string]

	synced []cache.InformerSynced
}

// NewManager wires the controllers to informers. Call Run after the informer
// factories are started.
func NewManager(opts Options, kube kubernetes.Interface, client versioned.Interface, kubeInformers kubeinformers.SharedInformerFactory,
	own externalversions.SharedInformerFactory, checker *safety.Checker) *Manager {
	registerMetrics()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.JobDeadline == 0 {
		opts.JobDeadline = 6 * time.Hour
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartStructuredLogging(0)
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	utilruntime.Must(v1alpha1.AddToScheme(scheme.Scheme))
	m := &Manager{
		opts: opts, kube: kube, client: client, checker: checker,
		recorder: broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "backup-operator"}),
		policies: own.Backup().V1alpha1().BackupPolicies().Lister(),
		backups:  own.Backup().V1alpha1().Backups().Lister(),
		restores: own.Backup().V1alpha1().RestoreJobs().Lister(),
		jobs:     kubeInformers.Batch().V1().Jobs().Lister(),
		pods:     kubeInformers.Core().V1().Pods().Lister(),
		pvcs:     kubeInformers.Core().V1().PersistentVolumeClaims().Lister(),
		policyQueue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "backuppolicies"}),
		backupQueue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "backups"}),
		restoreQueue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "restorejobs"}),
	}
	enqueue := func(q workqueue.TypedRateLimitingInterface[string]) cache.ResourceEventHandler {
		add := func(obj interface{}) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				q.Add(key)
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, n interface{}) { add(n) }, DeleteFunc: add}
	}
	pi := own.Backup().V1alpha1().BackupPolicies().Informer()
	bi := own.Backup().V1alpha1().Backups().Informer()
	ri := own.Backup().V1alpha1().RestoreJobs().Informer()
	ji := kubeInformers.Batch().V1().Jobs().Informer()
	_, _ = pi.AddEventHandler(enqueue(m.policyQueue))
	_, _ = bi.AddEventHandler(enqueue(m.backupQueue))
	_, _ = ri.AddEventHandler(enqueue(m.restoreQueue))
	// A Backup changing re-evaluates its policy (active list, retention).
	_, _ = bi.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { m.enqueuePolicyOf(obj) },
		UpdateFunc: func(_, n interface{}) { m.enqueuePolicyOf(n) },
		DeleteFunc: func(obj interface{}) { m.enqueuePolicyOf(obj) },
	})
	// A Job changing wakes the object that owns it.
	jobOwner := func(obj interface{}) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		j, ok := obj.(metav1.Object)
		if !ok || j.GetLabels()[v1alpha1.ManagedByLabel] != v1alpha1.ManagedBy {
			return
		}
		key := j.GetAnnotations()[v1alpha1.OwnerAnnotation]
		if key == "" {
			return
		}
		switch j.GetLabels()[v1alpha1.JobKindLabel] {
		case "backup", "prune":
			m.backupQueue.Add(key)
		case "restore":
			m.restoreQueue.Add(key)
		case "import":
			m.policyQueue.Add(key)
		}
	}
	_, _ = ji.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: jobOwner, UpdateFunc: func(_, n interface{}) { jobOwner(n) }, DeleteFunc: jobOwner})
	m.synced = []cache.InformerSynced{pi.HasSynced, bi.HasSynced, ri.HasSynced, ji.HasSynced,
		kubeInformers.Core().V1().Pods().Informer().HasSynced, kubeInformers.Core().V1().PersistentVolumeClaims().Informer().HasSynced}
	return m
}

func (m *Manager) enqueuePolicyOf(obj interface{}) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if b, ok := obj.(*v1alpha1.Backup); ok && b.Spec.PolicyName != "" {
		m.policyQueue.Add(b.Namespace + "/" + b.Spec.PolicyName)
	}
}

// Run starts workers and blocks until ctx ends.
func (m *Manager) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer m.policyQueue.ShutDown()
	defer m.backupQueue.ShutDown()
	defer m.restoreQueue.ShutDown()
	logger := klog.FromContext(ctx)
	logger.Info("Starting controllers")
	if !cache.WaitForCacheSync(ctx.Done(), m.synced...) {
		return
	}
	for i := 0; i < workers; i++ {
		go wait.UntilWithContext(ctx, func(ctx context.Context) { m.work(ctx, m.policyQueue, m.syncPolicy) }, time.Second)
		go wait.UntilWithContext(ctx, func(ctx context.Context) { m.work(ctx, m.backupQueue, m.syncBackup) }, time.Second)
		go wait.UntilWithContext(ctx, func(ctx context.Context) { m.work(ctx, m.restoreQueue, m.syncRestore) }, time.Second)
	}
	go wait.UntilWithContext(ctx, func(context.Context) { m.countActiveJobs() }, 10*time.Second)
	<-ctx.Done()
	logger.Info("Stopping controllers")
}

// countActiveJobs sets the active_jobs gauge from the Job cache.
func (m *Manager) countActiveJobs() {
	jobs, err := m.jobs.List(labels.SelectorFromSet(labels.Set{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy}))
	if err != nil {
		return
	}
	counts := map[string]int{"backup": 0, "restore": 0, "prune": 0}
	for _, j := range jobs {
		if done, failed, _, _, _ := m.jobOutcome(j); !done && !failed {
			counts[j.Labels[v1alpha1.JobKindLabel]]++
		}
	}
	for kind, n := range counts {
		activeJobs.WithLabelValues(kind).Set(float64(n))
	}
}

// result of a sync: requeue after a delay (0: no requeue).
type result struct{ after time.Duration }

func (m *Manager) work(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], sync func(context.Context, string, string) (result, error)) {
	for {
		key, shutdown := q.Get()
		if shutdown {
			return
		}
		func() {
			defer q.Done(key)
			ns, name, err := cache.SplitMetaNamespaceKey(key)
			if err != nil {
				q.Forget(key)
				return
			}
			res, err := sync(klog.NewContext(ctx, klog.FromContext(ctx).WithValues("key", key)), ns, name)
			if err != nil {
				utilruntime.HandleErrorWithContext(ctx, err, "Sync failed; will retry", "key", key)
				q.AddRateLimited(key)
				return
			}
			q.Forget(key)
			if res.after > 0 {
				q.AddAfter(key, res.after)
			}
		}()
	}
}
