// Package controller holds the controllers that run inside backup-apiserver:
// the policy controller (schedules), the backup controller (mover Jobs,
// status, retention, data deletion through a finalizer) and the restore
// controller (safety re-check, mover Jobs). Each follows the usual shape:
// informers feed a rate-limited work queue, a sync handler reconciles one
// object idempotently, and status is written on a deep copy through /status.
// Among replicas, only the holder of a Lease runs them (RunElected).
package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/generated/clientset/versioned"
	"example.com/backup-operator/pkg/generated/clientset/versioned/scheme"
	"example.com/backup-operator/pkg/generated/informers/externalversions"
	backuplisters "example.com/backup-operator/pkg/generated/listers/backup/v1alpha1"
	"example.com/backup-operator/pkg/safety"

	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// Options configure the controllers. A zero field means its default, which
// NewManager fills in (see Defaulted).
type Options struct {
	// MoverImage is the image of the data mover Jobs (this operator's image).
	MoverImage string
	// JobDeadline bounds a mover Job's run time (activeDeadlineSeconds).
	// Default 6h.
	JobDeadline time.Duration
	// JobBackoffLimit is how often a mover Job retries a failed pod
	// (backoffLimit). Default 2; negative asks for no retries, and NewManager
	// turns it into 0, so a Manager's value is always the Job's.
	JobBackoffLimit int32
	// JobTTL is how long a finished mover Job is kept
	// (ttlSecondsAfterFinished). Default 24h.
	JobTTL time.Duration
	// MoverRequests and MoverLimits are the mover container's resources. nil
	// means the defaults (requests cpu 100m and memory 128Mi, limits memory
	// 1Gi); an empty list sets none.
	MoverRequests corev1.ResourceList
	MoverLimits   corev1.ResourceList
	// LockWait is how long a prune waits for the repository's exclusive lock
	// (the mover's --lock-wait). Default 30m.
	LockWait time.Duration
	// Workers is the number of workers of each controller. Default 2.
	Workers int
	// PodSecurityDefault is the Pod Security level the mover follows in a
	// namespace without the pod-security.kubernetes.io/enforce label: the
	// cluster's default (its AdmissionConfiguration). Default privileged.
	PodSecurityDefault string
	// MaxMovers is how many data mover Jobs run at once in the cluster;
	// more wait (condition Queued). Default 20.
	MaxMovers int
	// MaxMoversPerNode is how many data mover Jobs run at once on one node
	// (a Job whose node is not known yet counts against MaxMovers only).
	// Default 4.
	MaxMoversPerNode int
	// HookExecutor runs hook commands in pods (pods/exec through the API
	// server: NewHookExecutor). Without one, hook actions fail with a
	// message saying so.
	HookExecutor HookExecutor
	// ReaderIdleTimeout is how long a reader pod of the files subresource
	// waits without requests before it exits. Default 2m.
	ReaderIdleTimeout time.Duration
	// ReaderKeyNamespace holds the Secret ReaderKeySecret, the key every
	// replica derives the reader pods' tokens from (created when missing).
	// Default backup-system.
	ReaderKeyNamespace string
	// Now is the clock (tests may replace it).
	Now func() time.Time
}

// Defaulted returns o with every zero field set to its default. The server's
// flags take their defaults from Options{}.Defaulted().
func (o Options) Defaulted() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.JobDeadline == 0 {
		o.JobDeadline = 6 * time.Hour
	}
	if o.JobBackoffLimit == 0 {
		o.JobBackoffLimit = 2
	}
	if o.JobTTL == 0 {
		o.JobTTL = 24 * time.Hour
	}
	if o.MoverRequests == nil {
		o.MoverRequests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}
	}
	if o.MoverLimits == nil {
		o.MoverLimits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}
	}
	if o.LockWait == 0 {
		o.LockWait = 30 * time.Minute
	}
	if o.ReaderKeyNamespace == "" {
		o.ReaderKeyNamespace = "backup-system"
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.PodSecurityDefault == "" {
		o.PodSecurityDefault = "privileged"
	}
	if o.MaxMovers == 0 {
		o.MaxMovers = 20
	}
	if o.MaxMoversPerNode == 0 {
		o.MaxMoversPerNode = 4
	}
	if o.ReaderIdleTimeout == 0 {
		o.ReaderIdleTimeout = 2 * time.Minute
	}
	return o
}

// Manager runs the three controllers. It runs once (Run); a new term of
// leadership builds a new one.
type Manager struct {
	opts        Options
	kube        kubernetes.Interface
	client      versioned.Interface
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	checker     *safety.Checker
	exec        HookExecutor
	// hooks are the hook commands this Manager started.
	hooks hookRuns
	// slots are the data mover slots granted and not yet seen in use.
	slots struct {
		mu       sync.Mutex
		reserved map[types.UID]slotReservation
	}

	policies backuplisters.BackupPolicyLister
	backups  backuplisters.BackupLister
	restores backuplisters.RestoreJobLister
	jobs     batchlisters.JobLister
	pods     corelisters.PodLister
	pvcs     corelisters.PersistentVolumeClaimLister

	policyQueue  workqueue.TypedRateLimitingInterface[string]
	backupQueue  workqueue.TypedRateLimitingInterface[string]
	restoreQueue workqueue.TypedRateLimitingInterface[string]

	// handlers are this Manager's event handlers on the shared informers,
	// removed when Run returns.
	handlers []handler
	synced   []cache.InformerSynced
}

type handler struct {
	informer     cache.SharedIndexInformer
	registration cache.ResourceEventHandlerRegistration
}

// eventCacheEntries is how many recent events' keys the event correlator
// keeps in each of its caches.
const eventCacheEntries = 512

// addToScheme registers the group with the clientset's scheme once: the
// scheme is read concurrently by the clients, and each term of leadership
// builds a new Manager.
var addToScheme sync.Once

// NewManager wires the controllers to informers, with opts' zero fields
// defaulted. Call Run after the informer factories are started (again: Start
// starts the informers NewManager asked for).
func NewManager(opts Options, kube kubernetes.Interface, client versioned.Interface, kubeInformers kubeinformers.SharedInformerFactory,
	own externalversions.SharedInformerFactory, checker *safety.Checker) *Manager {
	registerMetrics()
	opts = opts.Defaulted()
	if opts.JobBackoffLimit < 0 {
		opts.JobBackoffLimit = 0
	}
	// The event correlator remembers recent events per object to count
	// repeats and throttle a noisy object; client-go's 4,096 entries in each
	// of its three caches held 7 MiB once a burst of Backups had each sent
	// its own events (make bench-apiserver-memory).
	broadcaster := record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{LRUCacheSize: eventCacheEntries}))
	broadcaster.StartStructuredLogging(0)
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	addToScheme.Do(func() { utilruntime.Must(v1alpha1.AddToScheme(scheme.Scheme)) })
	m := &Manager{
		opts: opts, kube: kube, client: client, checker: checker, broadcaster: broadcaster, exec: opts.HookExecutor,
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
	m.addHandler(pi, enqueue(m.policyQueue))
	m.addHandler(bi, enqueue(m.backupQueue))
	m.addHandler(ri, enqueue(m.restoreQueue))
	// A Backup changing re-evaluates its policy (active list, retention).
	m.addHandler(bi, cache.ResourceEventHandlerFuncs{
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
	m.addHandler(ji, cache.ResourceEventHandlerFuncs{AddFunc: jobOwner, UpdateFunc: func(_, n interface{}) { jobOwner(n) }, DeleteFunc: jobOwner})
	// A mover Job that ends frees a slot: wake the first waiters.
	m.addHandler(ji, cache.ResourceEventHandlerFuncs{
		UpdateFunc: m.jobUpdated,
		DeleteFunc: func(obj interface{}) {
			if j, ok := obj.(*batchv1.Job); !ok || j.Labels[v1alpha1.ManagedByLabel] == v1alpha1.ManagedBy {
				m.wakeQueue()
			}
		},
	})
	m.synced = append(m.synced, pi.HasSynced, bi.HasSynced, ri.HasSynced, ji.HasSynced,
		kubeInformers.Core().V1().Pods().Informer().HasSynced, kubeInformers.Core().V1().PersistentVolumeClaims().Informer().HasSynced)
	return m
}

// jobUpdated sees a mover Job end: its slot is free, so the first waiters
// are woken, and a prune is counted (once per Job: on this update only).
func (m *Manager) jobUpdated(o, n interface{}) {
	oj, ok1 := o.(*batchv1.Job)
	nj, ok2 := n.(*batchv1.Job)
	if ok1 && ok2 && nj.Labels[v1alpha1.ManagedByLabel] == v1alpha1.ManagedBy && !safety.JobFinished(oj) && safety.JobFinished(nj) {
		m.countPrune(nj) // first: its Backup, which names the policy, goes soon after
		m.wakeQueue()
	}
}

// addHandler adds h to inf and remembers it for removal when Run returns.
// Added to a running informer, h first receives every cached object.
func (m *Manager) addHandler(inf cache.SharedIndexInformer, h cache.ResourceEventHandler) {
	reg, err := inf.AddEventHandler(h)
	if err != nil {
		// Only a stopped informer refuses; the server is shutting down.
		utilruntime.HandleError(fmt.Errorf("adding a controller's event handler: %w", err))
		return
	}
	m.handlers = append(m.handlers, handler{informer: inf, registration: reg})
	m.synced = append(m.synced, reg.HasSynced)
}

func (m *Manager) enqueuePolicyOf(obj interface{}) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if b, ok := obj.(*v1alpha1.Backup); ok && b.Spec.PolicyName != "" {
		m.policyQueue.Add(b.Namespace + "/" + b.Spec.PolicyName)
	}
}

// Run starts Options.Workers workers per controller and blocks until ctx ends
// and every worker has returned. A Manager runs once: when Run returns, its
// queues, its event handlers and its event broadcaster are shut down.
func (m *Manager) Run(ctx context.Context) {
	defer utilruntime.HandleCrash()
	logger := klog.FromContext(ctx)
	logger.Info("Starting controllers", "workers", m.opts.Workers)
	var workers sync.WaitGroup
	defer func() {
		m.policyQueue.ShutDown()
		m.backupQueue.ShutDown()
		m.restoreQueue.ShutDown()
		workers.Wait()
		m.hooks.wg.Wait() // hook commands end with ctx
		for _, h := range m.handlers {
			_ = h.informer.RemoveEventHandler(h.registration)
		}
		m.broadcaster.Shutdown()
		resetPolicyGauges()
		logger.Info("Controllers stopped")
	}()
	if !cache.WaitForCacheSync(ctx.Done(), m.synced...) {
		return
	}
	every := func(period time.Duration, f func(context.Context)) {
		workers.Go(func() { wait.UntilWithContext(ctx, f, period) })
	}
	for i := 0; i < m.opts.Workers; i++ {
		every(time.Second, func(ctx context.Context) { m.work(ctx, m.policyQueue, m.syncPolicy) })
		every(time.Second, func(ctx context.Context) { m.work(ctx, m.backupQueue, m.syncBackup) })
		every(time.Second, func(ctx context.Context) { m.work(ctx, m.restoreQueue, m.syncRestore) })
	}
	every(10*time.Second, func(context.Context) { m.countActiveJobs() })
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
		if !safety.JobFinished(j) {
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
		if ctx.Err() != nil {
			// Stopping (the Lease is lost, or the server ends): the keys left
			// are the next leader's, which lists everything afresh.
			q.Done(key)
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

// LeaderElection names the coordination.k8s.io Lease whose holder runs the
// controllers, and its timing: the holder renews it within RenewDeadline, and
// the others, retrying every RetryPeriod, take over a Lease that has not been
// renewed for LeaseDuration.
type LeaderElection struct {
	Namespace, Name string
	// Identity is this process's holderIdentity; unique per process.
	Identity                                  string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// RunElected campaigns for the Lease and calls run while this process holds
// it, until ctx ends. run must return only once its context has ended and
// everything it started has stopped; the API server keeps serving throughout.
//
// Losing the Lease cancels run's context, and the process campaigns again once
// run has returned: a Lease regained later starts a fresh run, and two runs
// never overlap. When ctx ends, run is stopped first and the Lease released
// after it has returned, so another replica takes over at once, but never
// while this one still acts.
func RunElected(ctx context.Context, kube kubernetes.Interface, le LeaderElection, run func(context.Context)) error {
	logger := klog.FromContext(ctx).WithValues("lease", le.Namespace+"/"+le.Name, "identity", le.Identity)
	logger.Info("Campaigning for the controllers' Lease")
	for ctx.Err() == nil {
		if err := campaign(ctx, logger, kube, le, run); err != nil {
			return err
		}
	}
	return nil
}

// releaseLease gives up the Lease if this process still holds it, so another
// replica takes over at once instead of after the lease duration.
func releaseLease(ctx context.Context, kube kubernetes.Interface, le LeaderElection) error {
	ctx, cancel := context.WithTimeout(ctx, le.RenewDeadline)
	defer cancel()
	leases := kube.CoordinationV1().Leases(le.Namespace)
	lease, err := leases.Get(ctx, le.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != le.Identity {
		return nil
	}
	now := metav1.NewMicroTime(time.Now())
	lease.Spec.HolderIdentity = nil
	lease.Spec.LeaseDurationSeconds = ptr.To[int32](1)
	lease.Spec.RenewTime = &now
	lease.Spec.AcquireTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// campaign runs one leader elector until ctx ends or the Lease is lost, and
// returns after run (if it started) has returned.
func campaign(ctx context.Context, logger klog.Logger, kube kubernetes.Interface, le LeaderElection, run func(context.Context)) error {
	// The elector's context ends only after run has returned. The elector
	// never releases the Lease itself (its ReleaseOnCancel would release it
	// as soon as a renewal fails, while run is still stopping): a lost Lease
	// expires, and on shutdown releaseLease gives it up after run returned.
	electCtx, stopElecting := context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), logger))
	defer stopElecting()
	var (
		mu      sync.Mutex
		closing bool // no new run may start
		running bool // run has started
		stopped = make(chan struct{})
	)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: le.Namespace, Name: le.Name},
			Client:     kube.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: le.Identity},
		},
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: false,
		Name:            le.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leading context.Context) {
				mu.Lock()
				if closing {
					mu.Unlock()
					return
				}
				running = true
				mu.Unlock()
				defer close(stopped)
				runCtx, cancel := context.WithCancel(leading)
				defer cancel()
				defer context.AfterFunc(ctx, cancel)()
				logger.Info("Acquired the controllers' Lease")
				run(runCtx)
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election on Lease %s/%s: %w; check the --leader-elect-* flags", le.Namespace, le.Name, err)
	}
	elected := make(chan struct{})
	go func() {
		defer close(elected)
		elector.Run(electCtx)
	}()
	select {
	case <-elected: // the Lease was lost
	case <-ctx.Done():
	}
	mu.Lock()
	closing = true
	led := running
	mu.Unlock()
	if led {
		<-stopped
	}
	stopElecting()
	<-elected
	switch {
	case led && ctx.Err() != nil:
		if err := releaseLease(context.WithoutCancel(ctx), kube, le); err != nil {
			logger.Info("Controllers stopped; could not release the controllers' Lease, it expires instead", "err", err)
			break
		}
		logger.Info("Controllers stopped; released the controllers' Lease")
	case led:
		logger.Info("Lost the controllers' Lease; controllers stopped, campaigning again")
	}
	return nil
}
