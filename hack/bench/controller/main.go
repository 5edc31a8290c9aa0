// Command controller is `make bench-controller`: the 2 AM burst. On the local
// cluster it makes N claims, then N Kubernetes CronJobs that all fire in the
// same minute, then N BackupPolicies that all fire in the same minute (one
// claim each, one shared repository claim), and measures for both: the lag
// from the scheduled time to each Job (CronJob) or Backup (ours) as a watch
// sees it (p50/p99), the time until all N are done, and the most pods at
// once. For backup-apiserver it measures CPU seconds, peak RSS and the API
// requests per second its controllers send, and then its RSS with `-stored`
// Backups in its storage. It prints a table. -kubeconfig reuses a cluster
// from `make run DETACH=1`; otherwise the benchmark brings up its own.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/hack/bench/benchutil"
	"example.com/backup-operator/hack/cluster"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/generated/clientset/versioned"
	backupinformers "example.com/backup-operator/pkg/generated/informers/externalversions"
)

const ns = "bench-controller"

func main() {
	n := flag.Int("n", 1000, "policies, and CronJobs, that fire in the same minute")
	stored := flag.Int("stored", 10000, "Backups in storage for the memory measurement")
	kubeconfig := flag.String("kubeconfig", "", "a running local cluster's admin kubeconfig (default: bring up a cluster)")
	timeout := flag.Duration("timeout", 90*time.Minute, "give up after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *n, *stored, *kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "bench-controller:", err)
		os.Exit(1)
	}
}

type bench struct {
	kube  kubernetes.Interface
	ours  versioned.Interface
	dir   string // the cluster's directory (certificates), "" if unknown
	start time.Time
}

func run(ctx context.Context, n, stored int, kubeconfig string) error {
	b := &bench{start: time.Now()}
	if kubeconfig == "" {
		dir, err := os.MkdirTemp("", "bench-controller-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		l, err := cluster.Up(ctx, cluster.LocalOptions{Dir: dir, APIServerPort: 6443, Log: benchutil.Logf})
		if err != nil {
			return err
		}
		defer l.Stop()
		kubeconfig = l.AdminKubeconfig
	}
	b.dir = filepath.Dir(kubeconfig)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 500, 1000 // the benchmark's own client is not what is measured
	if b.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if b.ours, err = versioned.NewForConfig(cfg); err != nil {
		return err
	}

	benchutil.Logf("making namespace %s with %d claims and a repository claim", ns, n)
	if err := b.setUp(ctx, n); err != nil {
		return err
	}
	defer b.kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})

	cron, err := b.cronJobs(ctx, n)
	if err != nil {
		return err
	}
	ourRun, err := b.policies(ctx, n)
	if err != nil {
		return err
	}
	rss, err := b.storedBackups(ctx, n, stored)
	if err != nil {
		return err
	}
	limit := operatorFlag(ctx, b.kube, "--max-movers", "20") + " (" + operatorFlag(ctx, b.kube, "--max-movers-per-node", "4") + " per node)"
	fmt.Printf("\n%d schedules firing at the same minute, one node (2 cores)\n\n", n)
	fmt.Printf("| | backup-operator (BackupPolicy → Backup) | Kubernetes CronJob controller (CronJob → Job) | ratio |\n|---|---|---|---|\n")
	row := func(what string, ours, theirs time.Duration) {
		fmt.Printf("| %s | %s | %s | %.2fx |\n", what, ours.Round(time.Millisecond), theirs.Round(time.Millisecond), ours.Seconds()/theirs.Seconds())
	}
	row("lag, scheduled time → object, p50", ourRun.p50, cron.p50)
	row("lag, scheduled time → object, p99", ourRun.p99, cron.p99)
	row("scheduled time → all done", ourRun.allDone, cron.allDone)
	fmt.Printf("| failed | %d | %d | |\n", ourRun.failed, cron.failed)
	fmt.Printf("| most pods at once | %d (mover limit %s) | %d | |\n", ourRun.peakPods, limit, cron.peakPods)
	fmt.Printf("| backup-apiserver CPU | %.1f s | | |\n", ourRun.cpu)
	fmt.Printf("| backup-apiserver peak RSS | %d MiB | | |\n", ourRun.peakRSS>>20)
	fmt.Printf("| API requests our controllers sent | %.0f (%.1f/s, peak %.0f/s over 10 s) | | |\n", ourRun.requests, ourRun.requests/ourRun.window.Seconds(), ourRun.peakRate)
	fmt.Printf("| backup-apiserver RSS with %d Backups stored | %d MiB (peak %d MiB) | | |\n", rss.stored, rss.rss>>20, rss.peak>>20)
	fmt.Printf("| … anonymous / mapped files (etcd database) / Go heap in use | %d / %d (%d) / %.0f MiB | | |\n", rss.anon>>20, rss.file>>20, rss.etcdDB>>20, rss.heapInuse/(1<<20))
	if rss.profile != "" {
		fmt.Printf("\nheap profile with %d stored: go tool pprof -top -inuse_space %s\n", rss.stored, rss.profile)
	}
	fmt.Println("\ndone (Failed counts as done, and is counted):")
	fmt.Println("  CronJob: every Job Complete (a busybox pod running `true`)")
	fmt.Println("  ours: every Backup Completed (a backup-mover pod backing up its claim)")
	return nil
}

// operatorFlag reads a flag of the operator's container, or def.
func operatorFlag(ctx context.Context, kube kubernetes.Interface, name, def string) string {
	ss, err := kube.AppsV1().StatefulSets("backup-system").Get(ctx, "backup-apiserver", metav1.GetOptions{})
	if err != nil {
		return def
	}
	for _, c := range ss.Spec.Template.Spec.Containers {
		for _, a := range append(c.Command, c.Args...) {
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v
			}
		}
	}
	return def
}

func (b *bench) setUp(ctx context.Context, n int) error {
	_, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	claim := func(name, size string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}}}
	}
	if _, err := b.kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, claim("backup-repo", "10Gi"), metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := benchutil.Parallel(n, 20, func(i int) error {
		_, err := b.kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, claim(fmt.Sprintf("data-%d", i), "10Mi"), metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 2*time.Second, 15*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := b.kube.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		bound := 0
		for _, c := range l.Items {
			if c.Status.Phase == corev1.ClaimBound {
				bound++
			}
		}
		return bound == n+1, nil
	})
}

// nextMinute is the first whole minute at least lead from now.
func nextMinute(lead time.Duration) time.Time {
	return time.Now().UTC().Add(lead).Truncate(time.Minute).Add(time.Minute)
}

func cronAt(t time.Time) string {
	return fmt.Sprintf("%d %d %d %d *", t.Minute(), t.Hour(), t.Day(), int(t.Month()))
}

type outcome struct {
	p50, p99, allDone time.Duration
	peakPods          int
	failed            int
	cpu               float64
	peakRSS           int64
	requests          float64
	peakRate          float64
	window            time.Duration
}

// seen records when each object was first seen and when it was done.
type seen struct {
	mu      sync.Mutex
	first   map[string]time.Time
	done    map[string]time.Time
	failed  int
	n       int
	allDone chan struct{}
}

func newSeen(n int) *seen {
	return &seen{first: map[string]time.Time{}, done: map[string]time.Time{}, n: n, allDone: make(chan struct{})}
}

// observe records an object; done: it finished (failed: without success).
func (s *seen) observe(name string, done, failed bool) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.first[name]; !ok {
		s.first[name] = now
	}
	if _, ok := s.done[name]; done && !ok {
		s.done[name] = now
		if failed {
			s.failed++
		}
		if len(s.done) == s.n {
			close(s.allDone)
		}
	}
}

func (s *seen) lags(at time.Time) (p50, p99, all time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lags []time.Duration
	for _, t := range s.first {
		lags = append(lags, t.Sub(at))
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	pct := func(p float64) time.Duration { return lags[int(float64(len(lags)-1)*p)] }
	var last time.Time
	for _, t := range s.done {
		if t.After(last) {
			last = t
		}
	}
	return pct(0.5), pct(0.99), last.Sub(at)
}

// podPeak counts, every half second, the pods matching selector that are
// neither Succeeded nor Failed, and keeps the most.
func (b *bench) podPeak(ctx context.Context, selector string) func() int {
	factory := informers.NewSharedInformerFactoryWithOptions(b.kube, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	pods := factory.Core().V1().Pods().Informer()
	ctx, cancel := context.WithCancel(ctx)
	factory.Start(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), pods.HasSynced)
	var mu sync.Mutex
	peak := 0
	go wait.UntilWithContext(ctx, func(context.Context) {
		live := 0
		for _, o := range pods.GetStore().List() {
			if p := o.(*corev1.Pod); p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				live++
			}
		}
		mu.Lock()
		peak = max(peak, live)
		mu.Unlock()
	}, 500*time.Millisecond)
	return func() int {
		cancel()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

func (b *bench) cronJobs(ctx context.Context, n int) (outcome, error) {
	at := nextMinute(time.Duration(n)*20*time.Millisecond + 20*time.Second)
	benchutil.Logf("CronJob controller: %d CronJobs firing at %s", n, at.Format("15:04"))
	s := newSeen(n)
	factory := informers.NewSharedInformerFactoryWithOptions(b.kube, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "bench=cronjob" }))
	jobs := factory.Batch().V1().Jobs().Informer()
	handle := func(o any) {
		if j, ok := o.(*batchv1.Job); ok {
			s.observe(j.Name, j.Status.Succeeded > 0 || j.Status.Failed > 0, j.Status.Failed > 0)
		}
	}
	jobs.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: handle, UpdateFunc: func(_, o any) { handle(o) }})
	jctx, stop := context.WithCancel(ctx)
	defer stop()
	factory.Start(jctx.Done())
	peak := b.podPeak(ctx, "bench=cronjob")
	if err := benchutil.Parallel(n, 20, func(i int) error {
		_, err := b.kube.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cron-%d", i)},
			Spec: batchv1.CronJobSpec{Schedule: cronAt(at), TimeZone: ptr.To("Etc/UTC"),
				JobTemplate: batchv1.JobTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"bench": "cronjob"}},
					Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"bench": "cronjob"}},
						Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, AutomountServiceAccountToken: ptr.To(false), EnableServiceLinks: ptr.To(false),
							Containers: []corev1.Container{{Name: "c", Image: cluster.BusyboxImage, ImagePullPolicy: corev1.PullNever, Command: []string{"/bin/busybox", "true"}}}}}}}}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return outcome{}, err
	}
	if time.Now().After(at) {
		return outcome{}, fmt.Errorf("creating %d CronJobs took past their time %s", n, at)
	}
	select {
	case <-s.allDone:
	case <-ctx.Done():
		return outcome{}, fmt.Errorf("CronJobs: %d of %d Jobs done: %w", len(s.done), n, ctx.Err())
	}
	var o outcome
	o.p50, o.p99, o.allDone = s.lags(at)
	o.peakPods = peak()
	o.failed = s.failed
	benchutil.Logf("CronJob controller: all %d Jobs done %s after their time (%d failed)", n, o.allDone.Round(time.Second), o.failed)
	// Out of the way of the next run.
	bg := metav1.DeletePropagationBackground
	if err := b.kube.BatchV1().CronJobs(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return o, err
	}
	if err := b.kube.BatchV1().Jobs(ns).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &bg}, metav1.ListOptions{LabelSelector: "bench=cronjob"}); err != nil {
		return o, err
	}
	return o, wait.PollUntilContextTimeout(ctx, 2*time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := b.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "bench=cronjob"})
		return err == nil && len(l.Items) == 0, nil
	})
}

// operatorProcess finds this cluster's backup-apiserver PID on this machine
// (the local cluster's containers are processes here): its command, in the
// cgroup of the operator pod.
func (b *bench) operatorProcess(ctx context.Context) (int, error) {
	pod, err := b.kube.CoreV1().Pods("backup-system").Get(ctx, "backup-apiserver-0", metav1.GetOptions{})
	if err != nil {
		return 0, err
	}
	uid := string(pod.UID)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.HasPrefix(string(cmd), "/backup-apiserver\x00") {
			continue
		}
		if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil && (strings.Contains(string(cg), uid) || strings.Contains(string(cg), strings.ReplaceAll(uid, "-", "_"))) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no backup-apiserver process of pod backup-system/backup-apiserver-0 (%s) on this machine", uid)
}

// rss is the process's resident set size in bytes.
func rss(pid int) int64 { return benchutil.ProcStatus(pid, "VmRSS:") }

// hwm is the process's peak resident set size so far, in bytes.
func hwm(pid int) int64 { return benchutil.ProcStatus(pid, "VmHWM:") }

// requests sums rest_client_requests_total from the operator's /metrics
// (every request its clients sent: to kube-apiserver and to itself).
func (b *bench) requests() (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := b.debugGet(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	sum, found := benchutil.MetricSum(body, "rest_client_requests_total")
	if !found {
		return 0, fmt.Errorf("no rest_client_requests_total in the operator's /metrics")
	}
	return sum, nil
}

// debugGet reads a path of backup-apiserver on its port (8443 on the host
// network of the local cluster) as the cluster admin.
func (b *bench) debugGet(ctx context.Context, path string) ([]byte, error) {
	return benchutil.DebugGet(ctx, filepath.Join(b.dir, "pki"), 8443, path)
}

func (b *bench) policies(ctx context.Context, n int) (outcome, error) {
	pid, err := b.operatorProcess(ctx)
	if err != nil {
		return outcome{}, err
	}
	at := nextMinute(time.Duration(n)*30*time.Millisecond + 20*time.Second)
	benchutil.Logf("backup-operator: %d BackupPolicies firing at %s", n, at.Format("15:04"))
	s := newSeen(n)
	factory := backupinformers.NewSharedInformerFactoryWithOptions(b.ours, 0, backupinformers.WithNamespace(ns))
	backups := factory.Backup().V1alpha1().Backups().Informer()
	handle := func(o any) {
		if bk, ok := o.(*v1alpha1.Backup); ok {
			failed := bk.Status.Phase == v1alpha1.BackupPhaseFailed
			s.observe(bk.Name, failed || bk.Status.Phase == v1alpha1.BackupPhaseCompleted, failed)
			if failed {
				benchutil.Logf("Backup %s failed: %s", bk.Name, bk.Status.Message)
			}
		}
	}
	backups.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: handle, UpdateFunc: func(_, o any) { handle(o) }})
	bctx, stop := context.WithCancel(ctx)
	defer stop()
	factory.Start(bctx.Done())
	peak := b.podPeak(ctx, v1alpha1.ManagedByLabel+"="+v1alpha1.ManagedBy)
	if err := benchutil.Parallel(n, 20, func(i int) error {
		_, err := b.ours.BackupV1alpha1().BackupPolicies(ns).Create(ctx, &v1alpha1.BackupPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("policy-%d", i)},
			Spec: v1alpha1.BackupPolicySpec{Schedule: cronAt(at), TimeZone: ptr.To("Etc/UTC"),
				Target:    v1alpha1.VolumeTarget{PVCName: fmt.Sprintf("data-%d", i)},
				Storage:   v1alpha1.RepositoryStorage{PVCName: "backup-repo"},
				Retention: v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](3)}}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return outcome{}, err
	}
	if time.Now().After(at) {
		return outcome{}, fmt.Errorf("creating %d BackupPolicies took past their time %s", n, at)
	}
	// The measured window starts shortly before the scheduled time.
	time.Sleep(time.Until(at.Add(-2 * time.Second)))
	cpu0, req0, hwm0 := benchutil.CPUSeconds(pid), 0.0, hwm(pid)
	if req0, err = b.requests(); err != nil {
		return outcome{}, err
	}
	var peakRSS int64
	var peakRate float64
	lastReq, lastT := req0, time.Now()
	sample := time.NewTicker(time.Second)
	defer sample.Stop()
	start := time.Now()
wait:
	for {
		select {
		case <-s.allDone:
			break wait
		case <-ctx.Done():
			return outcome{}, fmt.Errorf("Backups: %d of %d done: %w", len(s.done), n, ctx.Err())
		case now := <-sample.C:
			peakRSS = max(peakRSS, rss(pid))
			if now.Sub(lastT) >= 10*time.Second {
				if r, err := b.requests(); err == nil {
					peakRate = max(peakRate, (r-lastReq)/now.Sub(lastT).Seconds())
					lastReq, lastT = r, now
				}
			}
		}
	}
	var o outcome
	o.window = time.Since(start)
	o.cpu = benchutil.CPUSeconds(pid) - cpu0
	req1, _ := b.requests()
	o.requests = req1 - req0
	o.peakRate = peakRate
	o.peakRSS = max(peakRSS, rss(pid))
	if h := hwm(pid); h > hwm0 {
		o.peakRSS = h // the kernel's high-water mark rose during the run: it is the peak
	}
	o.p50, o.p99, o.allDone = s.lags(at)
	o.peakPods = peak()
	o.failed = s.failed
	benchutil.Logf("backup-operator: all %d Backups done %s after their time (%d failed)", n, o.allDone.Round(time.Second), o.failed)
	return o, nil
}

type storedRSS struct {
	stored    int
	rss, peak int64
	// anon and file split rss: the Go runtime's memory, and mapped files
	// (the binary, the embedded etcd's database); etcdDB is that
	// database's size, heapInuse the Go heap in use.
	anon, file, etcdDB int64
	heapInuse          float64
	// profile is a heap profile taken at the reading ("" if it failed).
	profile string
}

// storedBackups fills the operator's storage up to stored Backups (those
// beyond the policies' own fail at once: their repository claim does not
// exist, so no pods run) and measures RSS once they are all Failed.
func (b *bench) storedBackups(ctx context.Context, have, stored int) (storedRSS, error) {
	pid, err := b.operatorProcess(ctx)
	if err != nil {
		return storedRSS{}, err
	}
	// Counted from a watch, as bench-apiserver-memory counts them.
	var finished atomic.Int64
	stopWatch, err := benchutil.WatchFinished(ctx, b.ours, ns, &finished)
	if err != nil {
		return storedRSS{}, err
	}
	defer stopWatch()
	extra := stored - have
	benchutil.Logf("storing %d more Backups (%d in all)", extra, stored)
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Second):
				if r := rss(pid); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	err = benchutil.Parallel(extra, 20, func(i int) error {
		_, err := b.ours.BackupV1alpha1().Backups(ns).Create(ctx, &v1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("stored-%d", i)},
			Spec: v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{PVCName: fmt.Sprintf("data-%d", i%have)},
				Storage: v1alpha1.RepositoryStorage{PVCName: "no-such-repository"}}}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		close(done)
		return storedRSS{}, err
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, 30*time.Minute, true, func(ctx context.Context) (bool, error) {
		return finished.Load() >= int64(stored), nil
	})
	close(done)
	if err != nil {
		return storedRSS{}, fmt.Errorf("%d of %d stored Backups finished: %w", finished.Load(), stored, err)
	}
	time.Sleep(15 * time.Second)
	r := rss(pid)
	out := storedRSS{stored: stored, rss: r, peak: max(peak.Load(), r),
		anon: benchutil.ProcStatus(pid, "RssAnon:"), file: benchutil.ProcStatus(pid, "RssFile:") + benchutil.ProcStatus(pid, "RssShmem:")}
	// The container's files, through its mount namespace.
	if fi, err := os.Stat(fmt.Sprintf("/proc/%d/root/var/lib/backup-apiserver/etcd/member/snap/db", pid)); err == nil {
		out.etcdDB = fi.Size()
	} else {
		benchutil.Logf("the embedded etcd's database size is unknown (0 below): %v", err)
	}
	if metrics, err := b.debugGet(ctx, "/metrics"); err == nil {
		out.heapInuse = benchutil.Metric(metrics, "go_memstats_heap_inuse_bytes")
	} else {
		benchutil.Logf("the Go heap in use is unknown (0 below): %v", err)
	}
	// A heap profile, to see where the memory went without another run.
	if data, err := b.debugGet(ctx, "/debug/pprof/heap"); err != nil {
		benchutil.Logf("no heap profile: %v", err)
	} else {
		dir := filepath.Join(cluster.RepoRoot(), "_output", "bench-controller")
		p := filepath.Join(dir, fmt.Sprintf("heap-%d-stored.pprof", stored))
		if err := os.MkdirAll(dir, 0o755); err == nil && os.WriteFile(p, data, 0o644) == nil {
			out.profile = p
		}
	}
	benchutil.Logf("backup-apiserver RSS with %d Backups stored: %d MiB (anonymous %d MiB, mapped files %d MiB; etcd database %d MiB; Go heap in use %.0f MiB)",
		stored, r>>20, out.anon>>20, out.file>>20, out.etcdDB>>20, out.heapInuse/(1<<20))
	return out, nil
}
