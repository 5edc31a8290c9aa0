// Command memory is `make bench-apiserver-memory`: backup-apiserver's memory
// with many Backups stored, without a full cluster. It starts etcd and
// kube-apiserver on free ports (hack/cluster) and backup-apiserver as it is
// deployed (embedded etcd, controllers on, registered through its
// APIService), makes claims marked Bound (no kubelet or provisioner runs),
// then creates Backups as `make bench-controller` stores them: each names a
// repository claim that does not exist, so the controllers fail it at once.
// At each checkpoint (-stored 3000,10000), once every Backup is Failed and the
// server has been idle for -settle, it reads the process's memory from /proc
// (VmRSS, VmHWM, RssAnon, RssFile), the Go heap from the server's /metrics,
// the size of the embedded etcd's database file, and saves a heap profile
// from /debug/pprof/heap (read it with `go tool pprof -top -inuse_space`);
// with the server's CPU time while it filled (and the runtime's estimate of
// the garbage collector's), it prints a table.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"example.com/backup-operator/hack/bench/benchutil"
	"example.com/backup-operator/hack/cluster"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/generated/clientset/versioned"
)

const ns = "bench-memory"

func main() {
	stored := flag.String("stored", "3000,10000", "checkpoints: Backups stored when memory is read, ascending, comma-separated")
	claims := flag.Int("claims", 300, "target claims the Backups name in turn (marked Bound)")
	settle := flag.Duration("settle", 15*time.Second, "idle time after the last Backup failed before memory is read")
	steady := flag.Duration("steady", 0, "when above 0, read the memory again this long after the first reading of each checkpoint (past an etcd compaction: --etcd-compaction-interval, default 5m)")
	out := flag.String("out", filepath.Join(cluster.RepoRoot(), "_output", "bench-memory"), "directory for the heap profiles")
	args := flag.String("args", "", "further backup-apiserver flags, space-separated (e.g. --etcd-compaction-interval=1m)")
	memLimit := flag.String("gomemlimit", "", "GOMEMLIMIT for backup-apiserver (e.g. 250MiB); empty leaves it unset")
	keep := flag.Bool("keep", false, "keep the working directory (logs, etcd data) and print its path")
	timeout := flag.Duration("timeout", 60*time.Minute, "give up after this long")
	flag.Parse()
	var checkpoints []int
	for _, s := range strings.Split(*stored, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || (len(checkpoints) > 0 && n <= checkpoints[len(checkpoints)-1]) {
			fmt.Fprintf(os.Stderr, "bench-apiserver-memory: -stored %q: want ascending positive counts like 3000,10000\n", *stored)
			os.Exit(2)
		}
		checkpoints = append(checkpoints, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	b := &bench{claims: *claims, settle: *settle, steady: *steady, out: *out, memLimit: *memLimit, keep: *keep}
	if *args != "" {
		b.args = strings.Fields(*args)
	}
	if err := b.run(ctx, checkpoints); err != nil {
		fmt.Fprintln(os.Stderr, "bench-apiserver-memory:", err)
		os.Exit(1)
	}
}

type bench struct {
	claims   int
	settle   time.Duration
	steady   time.Duration
	out      string
	args     []string
	memLimit string
	keep     bool

	cp     *cluster.ControlPlane
	server *cluster.BackupAPIServer
	kube   kubernetes.Interface
	ours   versioned.Interface
	// finished counts the Backups seen Completed or Failed.
	finished atomic.Int64
}

// reading is the memory at one checkpoint.
type reading struct {
	stored               int
	after                time.Duration // idle time since every Backup finished
	rss, hwm, anon, file int64
	peak                 int64 // highest VmRSS sampled while filling up to this checkpoint
	heapInuse, heapAlloc float64
	nextGC, goSys        float64
	etcdDB               int64
	historyCapacity      float64 // the watch cache's event history of Backups
	profile              string
	fill                 time.Duration
	// cpu is backup-apiserver's CPU time (user and system, from /proc) from
	// the first Backup created until the last one failed: the fill.
	cpu float64
	// gcCPU is the Go runtime's estimate of its garbage collector's CPU time
	// over the same interval (go_cpu_classes_gc_total_cpu_seconds_total). The
	// runtime counts a pause as every core busy and updates the figure at the
	// end of each collection, so it is an overestimate, to compare only with
	// itself (GOGC against GOGC), not a share of cpu.
	gcCPU float64
}

func (b *bench) run(ctx context.Context, checkpoints []int) error {
	dir, err := os.MkdirTemp("", "bench-apiserver-memory-")
	if err != nil {
		return err
	}
	if b.keep {
		benchutil.Logf("working directory %s (kept)", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		return err
	}
	benchutil.Logf("building backup-apiserver")
	if err := cluster.BuildOperator(filepath.Join(dir, "bin")); err != nil {
		return err
	}
	benchutil.Logf("starting etcd and kube-apiserver")
	if b.cp, err = cluster.StartControlPlane(ctx, cluster.ControlPlaneOptions{Dir: filepath.Join(dir, "cluster")}); err != nil {
		return err
	}
	defer b.cp.Stop()
	// Only backup-apiserver gets the limit: the variable is set while its
	// process starts (children inherit this environment).
	if b.memLimit != "" {
		os.Setenv("GOMEMLIMIT", b.memLimit)
	}
	benchutil.Logf("starting backup-apiserver (embedded etcd, controllers on) %s", strings.Join(b.args, " "))
	b.server, err = b.cp.StartBackupAPIServerWith(ctx, cluster.BackupAPIServerOptions{
		Bin: filepath.Join(dir, "bin", "backup-apiserver"), Dir: filepath.Join(dir, "backup-apiserver"),
		Args: append([]string{"--controllers=true"}, b.args...)})
	os.Unsetenv("GOMEMLIMIT")
	if err != nil {
		return err
	}
	defer b.server.Stop()
	pid := b.server.Process.PID()

	cfg, err := clientcmd.BuildConfigFromFlags("", b.cp.AdminKubeconfig)
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
	if err := b.setUp(ctx); err != nil {
		return err
	}
	stopWatch, err := benchutil.WatchFinished(ctx, b.ours, ns, &b.finished)
	if err != nil {
		return err
	}
	defer stopWatch()

	idle, err := b.read(ctx, pid, 0, "")
	if err != nil {
		return err
	}
	readings := []reading{idle}
	have := 0
	for _, want := range checkpoints {
		r, err := b.fill(ctx, pid, have, want)
		if err != nil {
			return fmt.Errorf("%w\nbackup-apiserver log:\n%s", err, b.server.Process.Tail(30))
		}
		readings = append(readings, r)
		if b.steady > 0 {
			benchutil.Logf("waiting %s more for the steady state", b.steady)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(b.steady):
			}
			s, err := b.read(ctx, pid, want, fmt.Sprintf("heap-%d-steady.pb.gz", want))
			if err != nil {
				return err
			}
			s.after, s.peak, s.fill = r.after+b.steady, r.peak, r.fill
			readings = append(readings, s)
		}
		have = want
	}
	b.print(readings)
	return nil
}

// setUp makes the namespace and the target claims, marked Bound: nothing
// binds them here, and a Backup of a Pending claim waits instead of failing.
func (b *bench) setUp(ctx context.Context) error {
	benchutil.Logf("making namespace %s with %d claims marked Bound", ns, b.claims)
	if _, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	return benchutil.Parallel(b.claims, 20, func(i int) error {
		c, err := b.kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("data-%d", i)},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Mi")}}}},
			metav1.CreateOptions{})
		if err != nil {
			return err
		}
		c.Status.Phase = corev1.ClaimBound
		_, err = b.kube.CoreV1().PersistentVolumeClaims(ns).UpdateStatus(ctx, c, metav1.UpdateOptions{})
		return err
	})
}

// fill creates Backups stored-<have>..stored-<want-1>, waits until all are
// finished, lets the server settle and reads its memory.
func (b *bench) fill(ctx context.Context, pid, have, want int) (reading, error) {
	benchutil.Logf("storing %d more Backups (%d in all)", want-have, want)
	var peak atomic.Int64
	sampling, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampling.Done():
				return
			case <-t.C:
				if r := benchutil.ProcStatus(pid, "VmRSS:"); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	gc0, err := b.gcCPU(ctx)
	if err != nil {
		return reading{}, err
	}
	start, cpu0 := time.Now(), benchutil.CPUSeconds(pid)
	err = benchutil.Parallel(want-have, 20, func(i int) error {
		i += have
		_, err := b.ours.BackupV1alpha1().Backups(ns).Create(ctx, &v1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("stored-%d", i)},
			Spec: v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{PVCName: fmt.Sprintf("data-%d", i%b.claims)},
				Storage: v1alpha1.RepositoryStorage{PVCName: "no-such-repository"}}}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return reading{}, err
	}
	for b.finished.Load() < int64(want) {
		select {
		case <-ctx.Done():
			return reading{}, fmt.Errorf("%d of %d Backups finished: %w", b.finished.Load(), want, ctx.Err())
		case <-time.After(time.Second):
		}
		if b.server.Process.Exited() {
			return reading{}, fmt.Errorf("backup-apiserver exited")
		}
	}
	filled, cpu := time.Since(start), benchutil.CPUSeconds(pid)-cpu0
	gc1, err := b.gcCPU(ctx)
	if err != nil {
		return reading{}, err
	}
	benchutil.Logf("all %d Backups finished %s after the first was created; settling for %s", want, filled.Round(time.Second), b.settle)
	select {
	case <-ctx.Done():
		return reading{}, ctx.Err()
	case <-time.After(b.settle):
	}
	stopSampling()
	r, err := b.read(ctx, pid, want, fmt.Sprintf("heap-%d.pb.gz", want))
	r.peak = max(peak.Load(), r.rss)
	r.fill = filled
	r.after = b.settle
	r.cpu, r.gcCPU = cpu, gc1-gc0
	return r, err
}

// gcCPU is the runtime's estimate of the server's garbage collection CPU
// seconds so far.
func (b *bench) gcCPU(ctx context.Context) (float64, error) {
	metrics, err := b.get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	return benchutil.Metric(metrics, "go_cpu_classes_gc_total_cpu_seconds_total"), nil
}

// read takes the process's memory, the Go heap from /metrics, the etcd
// database's size and (with profile) a heap profile, taken last.
func (b *bench) read(ctx context.Context, pid, stored int, profile string) (reading, error) {
	r := reading{stored: stored,
		rss: benchutil.ProcStatus(pid, "VmRSS:"), hwm: benchutil.ProcStatus(pid, "VmHWM:"),
		anon: benchutil.ProcStatus(pid, "RssAnon:"), file: benchutil.ProcStatus(pid, "RssFile:") + benchutil.ProcStatus(pid, "RssShmem:")}
	metrics, err := b.get(ctx, "/metrics")
	if err != nil {
		return r, err
	}
	r.heapInuse = benchutil.Metric(metrics, "go_memstats_heap_inuse_bytes")
	r.heapAlloc = benchutil.Metric(metrics, "go_memstats_heap_alloc_bytes")
	r.nextGC = benchutil.Metric(metrics, "go_memstats_next_gc_bytes")
	r.goSys = benchutil.Metric(metrics, "go_memstats_sys_bytes")
	r.historyCapacity = benchutil.Metric(metrics, `watch_cache_capacity{group="backup.example.com",resource="backups"}`)
	if fi, err := os.Stat(filepath.Join(b.server.Dir, "etcd", "member", "snap", "db")); err == nil {
		r.etcdDB = fi.Size()
	}
	if profile != "" {
		data, err := b.get(ctx, "/debug/pprof/heap")
		if err != nil {
			return r, fmt.Errorf("heap profile (is --profiling off?): %w", err)
		}
		r.profile = filepath.Join(b.out, profile)
		if err := os.WriteFile(r.profile, data, 0o644); err != nil {
			return r, err
		}
	}
	benchutil.Logf("%d stored: VmRSS %d MiB (anon %d, file %d), VmHWM %d MiB, Go heap in use %.0f MiB", stored, r.rss>>20, r.anon>>20, r.file>>20, r.hwm>>20, r.heapInuse/(1<<20))
	return r, nil
}

// get reads a path of backup-apiserver directly on its port as the cluster
// admin.
func (b *bench) get(ctx context.Context, path string) ([]byte, error) {
	return benchutil.DebugGet(ctx, filepath.Join(b.cp.Dir, "pki"), b.server.Port, path)
}

func (b *bench) print(rs []reading) {
	mib := func(v int64) string { return fmt.Sprintf("%d MiB", v>>20) }
	fmib := func(v float64) string { return fmt.Sprintf("%.0f MiB", v/(1<<20)) }
	flags := strings.Join(b.args, " ")
	if b.memLimit != "" {
		flags = strings.TrimSpace(flags + " GOMEMLIMIT=" + b.memLimit)
	}
	if flags == "" {
		flags = "defaults"
	}
	fmt.Printf("\nbackup-apiserver with embedded etcd and controllers (%s); memory read once every Backup failed and the server was idle\n\n", flags)
	fmt.Println("| Backups stored | idle | VmRSS | RssAnon | RssFile | VmHWM | peak VmRSS while filling | Go heap in use | Go heap live (alloc) | next GC | Go runtime sys | etcd db file | watch cache history of Backups | filled in | CPU while filling | GC CPU while filling (runtime's estimate) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		after, peak, fill, cpu, gc := "", "", "", "", ""
		if r.stored > 0 {
			after, peak, fill = r.after.String(), mib(r.peak), r.fill.Round(time.Second).String()
		}
		if r.cpu > 0 { // the fill's own row, not a steady reading after it
			cpu, gc = fmt.Sprintf("%.1f s", r.cpu), fmt.Sprintf("%.1f s", r.gcCPU)
		}
		fmt.Printf("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f events | %s | %s | %s |\n", r.stored, after, mib(r.rss), mib(r.anon), mib(r.file), mib(r.hwm), peak,
			fmib(r.heapInuse), fmib(r.heapAlloc), fmib(r.nextGC), fmib(r.goSys), mib(r.etcdDB), r.historyCapacity, fill, cpu, gc)
	}
	fmt.Println()
	for _, r := range rs {
		if r.profile != "" {
			fmt.Printf("heap profile at %d (%s idle): go tool pprof -top -inuse_space %s\n", r.stored, r.after, r.profile)
		}
	}
}
