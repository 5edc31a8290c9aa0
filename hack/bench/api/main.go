// Command api benchmarks backup.example.com against the same objects served as
// a CustomResourceDefinition, on one real kube-apiserver in one run: create
// 5,000 Backups, list them all, list with a field selector, and watch. It
// prints p50/p99 latency, throughput, backup-apiserver's RSS and a table of
// ratios. Run it with `make bench-api`.
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
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"example.com/backup-operator/hack/cluster"
)

const crd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: backups.crdbench.example.com
spec:
  group: crdbench.example.com
  names: {kind: Backup, listKind: BackupList, plural: backups, singular: backup}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    selectableFields:
    - jsonPath: .spec.target.pvcName
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              policyName: {type: string}
              target:
                type: object
                properties:
                  pvcName: {type: string}
                  namespace: {type: string}
              storage:
                type: object
                properties:
                  pvcName: {type: string}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
`

type subject struct {
	name      string
	gvr       schema.GroupVersionResource
	client    dynamic.Interface
	namespace string
}

type result struct {
	createLat, listLat, selectLat, watchLat []time.Duration
	createWall                              time.Duration
}

func main() {
	objects := flag.Int("objects", 5000, "Backups to create per subject")
	workers := flag.Int("workers", 16, "concurrent creating clients")
	lists := flag.Int("lists", 20, "full lists per subject (and ten times as many field-selector lists)")
	watched := flag.Int("watched", 1000, "creates observed through a watch per subject")
	flag.Parse()
	if err := run(*objects, *workers, *lists, *watched); err != nil {
		fmt.Fprintln(os.Stderr, "bench-api:", err)
		os.Exit(1)
	}
}

func run(objects, workers, lists, watched int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-api-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Println("starting etcd, kube-apiserver and backup-apiserver ...")
	if err := cluster.BuildOperator(filepath.Join(dir, "bin")); err != nil {
		return err
	}
	cp, err := cluster.StartControlPlane(ctx, cluster.ControlPlaneOptions{Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		return err
	}
	defer cp.Stop()
	srv, err := cp.StartBackupAPIServer(ctx, filepath.Join(dir, "bin", "backup-apiserver"), filepath.Join(dir, "backup-apiserver"))
	if err != nil {
		return err
	}
	defer srv.Stop()
	if _, err := cluster.KubectlStdin(ctx, cp.AdminKubeconfig, crd, "apply", "-f", "-"); err != nil {
		return err
	}
	if _, err := cp.Kubectl(ctx, "wait", "--for=condition=Established", "crd/backups.crdbench.example.com", "--timeout=60s"); err != nil {
		return err
	}
	if _, err := cp.Kubectl(ctx, "create", "namespace", "bench"); err != nil {
		return err
	}
	if _, err := cp.Kubectl(ctx, "create", "namespace", "bench-direct"); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.AdminKubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 5000, 10000
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}

	// The same requests sent to our server's own port, not through the
	// kube-apiserver: what the aggregator's proxy hop costs. The server is the
	// one this benchmark started on loopback, so its certificate is not checked.
	directCfg := rest.CopyConfig(cfg)
	directCfg.Host = fmt.Sprintf("https://127.0.0.1:%d", srv.Port)
	directCfg.TLSClientConfig.CAData, directCfg.TLSClientConfig.CAFile = nil, ""
	directCfg.TLSClientConfig.Insecure = true
	direct, err := dynamic.NewForConfig(directCfg)
	if err != nil {
		return err
	}
	ours := schema.GroupVersionResource{Group: "backup.example.com", Version: "v1alpha1", Resource: "backups"}
	subjects := []subject{
		{"aggregated (ours)", ours, client, "bench"},
		{"CRD", schema.GroupVersionResource{Group: "crdbench.example.com", Version: "v1alpha1", Resource: "backups"}, client, "bench"},
		{"ours, direct", ours, direct, "bench-direct"},
	}
	// Warm every path (discovery, connections, watch caches) before measuring.
	for _, s := range subjects {
		if _, err := s.client.Resource(s.gvr).Namespace(s.namespace).List(ctx, metav1.ListOptions{}); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	results, err := measure(ctx, subjects, objects, workers, lists, watched)
	if err != nil {
		return err
	}
	rss, hwm := procMemory(srv.Process.PID())
	report(subjects, results, objects, rss, hwm)
	return nil
}

func object(gvr schema.GroupVersionResource, i int) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gvr.Group + "/" + gvr.Version,
		"kind":       "Backup",
		"metadata":   map[string]any{"name": fmt.Sprintf("b-%05d", i)},
		"spec": map[string]any{
			"policyName": "policy-" + strconv.Itoa(i%10),
			"target":     map[string]any{"pvcName": "pvc-" + strconv.Itoa(i%50), "namespace": "bench"},
			"storage":    map[string]any{"pvcName": "backup-repo"},
		},
	}}
}

// measure creates the objects through each subject in turn, all workers on
// one subject at a time, so the subjects do not compete for the CPUs. The
// latency phases then take turns: each round sends one request to every
// subject, first subject rotating, so a drift in the machine's speed touches
// all subjects alike.
func measure(ctx context.Context, subjects []subject, objects, workers, lists, watched int) ([]result, error) {
	rs := make([]result, len(subjects))
	cs := make([]dynamic.ResourceInterface, len(subjects))
	for i, s := range subjects {
		cs[i] = s.client.Resource(s.gvr).Namespace(s.namespace)
		fmt.Printf("creating %d Backups through %s ...\n", objects, s.name)
		var err error
		if rs[i].createLat, rs[i].createWall, err = create(ctx, cs[i], s.gvr, objects, workers); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	turns := func(what string, n int, lat func(r *result) *[]time.Duration, f func(i, k int) error) error {
		fmt.Printf("%s, %d per subject, taking turns ...\n", what, n)
		for k := 0; k < n; k++ {
			for j := range subjects {
				i := (j + k) % len(subjects)
				t := time.Now()
				if err := f(i, k); err != nil {
					return fmt.Errorf("%s: %s: %w", subjects[i].name, what, err)
				}
				*lat(&rs[i]) = append(*lat(&rs[i]), time.Since(t))
			}
		}
		return nil
	}

	err := turns("list all", lists, func(r *result) *[]time.Duration { return &r.listLat }, func(i, _ int) error {
		l, err := cs[i].List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) != objects {
			err = fmt.Errorf("list returned %d items, want %d", len(l.Items), objects)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	err = turns("list with a field selector", lists*10, func(r *result) *[]time.Duration { return &r.selectLat }, func(i, k int) error {
		l, err := cs[i].List(ctx, metav1.ListOptions{FieldSelector: "spec.target.pvcName=pvc-" + strconv.Itoa(k%50)})
		if err == nil && len(l.Items) != objects/50 {
			err = fmt.Errorf("field selector returned %d items, want %d", len(l.Items), objects/50)
		}
		return err
	})
	if err != nil {
		return nil, err
	}

	// Watch latency: from the start of a create to the ADDED event.
	watches := make([]watch.Interface, len(subjects))
	for i := range subjects {
		w, err := cs[i].Watch(ctx, metav1.ListOptions{ResourceVersion: "0", FieldSelector: "spec.target.pvcName=pvc-watch"})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", subjects[i].name, err)
		}
		defer w.Stop()
		watches[i] = w
	}
	err = turns("create and watch", watched, func(r *result) *[]time.Duration { return &r.watchLat }, func(i, k int) error {
		obj := object(subjects[i].gvr, objects+k)
		unstructured.SetNestedField(obj.Object, "pvc-watch", "spec", "target", "pvcName")
		if _, err := cs[i].Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			return err
		}
		for {
			select {
			case ev, ok := <-watches[i].ResultChan():
				if !ok {
					return fmt.Errorf("watch closed")
				}
				if ev.Type == watch.Added {
					return nil
				}
			case <-time.After(30 * time.Second):
				return fmt.Errorf("no watch event for create %d", k)
			}
		}
	})
	return rs, err
}

// create makes objects Backups with workers concurrent clients and returns
// each create's latency and the wall time of all.
func create(ctx context.Context, c dynamic.ResourceInterface, gvr schema.GroupVersionResource, objects, workers int) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, objects)
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				_, err := c.Create(ctx, object(gvr, i), metav1.CreateOptions{})
				lat[i] = time.Since(t)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < objects; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return lat, time.Since(start), firstErr
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func procMemory(pid int) (rss, hwm string) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?", "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rss = f[1] + " kB"
		}
		if len(f) >= 2 && f[0] == "VmHWM:" {
			hwm = f[1] + " kB"
		}
	}
	return rss, hwm
}

func report(subjects []subject, results []result, objects int, rss, hwm string) {
	f := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	type row struct {
		metric      string
		value       func(r result) float64
		unit        string
		lowerBetter bool
	}
	pct := func(get func(r result) []time.Duration, p float64) func(r result) float64 {
		return func(r result) float64 { return f(percentile(get(r), p)) }
	}
	create := func(r result) []time.Duration { return r.createLat }
	list := func(r result) []time.Duration { return r.listLat }
	sel := func(r result) []time.Duration { return r.selectLat }
	watchL := func(r result) []time.Duration { return r.watchLat }
	rows := []row{
		{"create throughput", func(r result) float64 { return float64(objects) / r.createWall.Seconds() }, "obj/s", false},
		{"create p50", pct(create, .5), "ms", true},
		{"create p99", pct(create, .99), "ms", true},
		{fmt.Sprintf("list all %d p50", objects), pct(list, .5), "ms", true},
		{fmt.Sprintf("list all %d p99", objects), pct(list, .99), "ms", true},
		{"field selector p50", pct(sel, .5), "ms", true},
		{"field selector p99", pct(sel, .99), "ms", true},
		{"watch event p50", pct(watchL, .5), "ms", true},
		{"watch event p99", pct(watchL, .99), "ms", true},
	}
	ratio := func(a, b float64, lowerBetter bool) string {
		if lowerBetter {
			return fmt.Sprintf("%.2fx time", a/b)
		}
		return fmt.Sprintf("%.2fx rate", a/b)
	}
	fmt.Println()
	fmt.Printf("| %-22s | %18s | %18s | %-17s | %18s | %-17s |\n", "metric", subjects[0].name, subjects[1].name, "ours vs CRD", subjects[2].name, "direct vs CRD")
	fmt.Printf("|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 24), strings.Repeat("-", 20), strings.Repeat("-", 20), strings.Repeat("-", 19), strings.Repeat("-", 20), strings.Repeat("-", 19))
	for _, r := range rows {
		a, b, c := r.value(results[0]), r.value(results[1]), r.value(results[2])
		fmt.Printf("| %-22s | %12.2f %-5s | %12.2f %-5s | %-17s | %12.2f %-5s | %-17s |\n", r.metric, a, r.unit, b, r.unit, ratio(a, b, r.lowerBetter), c, r.unit, ratio(c, b, r.lowerBetter))
	}
	fmt.Println("\n\"ours vs CRD\" is the comparison users see; \"ours, direct\" sends the same requests to our server's own port, without the kube-apiserver's proxy hop.")
	fmt.Printf("backup-apiserver memory after the run (embedded etcd included): RSS %s, peak %s\n", rss, hwm)
}
