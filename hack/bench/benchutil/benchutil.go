// Package benchutil holds what the cluster benchmarks (bench-controller,
// bench-apiserver-memory) share: timestamped progress lines, a bounded
// worker pool, a process's memory and CPU time from /proc, and backup-apiserver's own
// /metrics and /debug/pprof read on its port.
package benchutil

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Logf prints one progress line with the time of day.
func Logf(format string, args ...any) {
	fmt.Printf("[%s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// Parallel runs fn(0..n-1) on workers goroutines and returns the first error;
// no new call starts after one failed.
func Parallel(n, workers int, fn func(i int) error) error {
	var mu sync.Mutex
	var first error
	next := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil || i >= n
				mu.Unlock()
				if stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// ProcStatus returns a field of /proc/PID/status given in kB (such as
// "VmRSS:" or "VmHWM:") in bytes; 0 when the process or the field is gone.
func ProcStatus(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// CPUSeconds is the process's user and system CPU time so far, in seconds;
// 0 when the process is gone.
func CPUSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data)[strings.LastIndexByte(string(data), ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // USER_HZ
}

// DebugGet reads a path of backup-apiserver (such as /metrics or
// /debug/pprof/heap) directly on 127.0.0.1:port as the cluster admin, with
// the client certificate in pkiDir (admin.crt, admin.key); the server
// authorizes it through kube-apiserver.
func DebugGet(ctx context.Context, pkiDir string, port int, path string) ([]byte, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "admin.crt"), filepath.Join(pkiDir, "admin.key"))
	if err != nil {
		return nil, err
	}
	// The server's certificate is its own; this reads numbers on loopback.
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", path, resp.Status, body)
	}
	return body, nil
}

var metricLine = regexp.MustCompile(`(?m)^(\w+(?:\{[^}]*\})?) ([0-9.e+]+)$`)

// Metric is the sample of the Prometheus text with this name and labels (in
// the order the server writes them), or 0.
func Metric(text []byte, name string) float64 {
	for _, m := range metricLine.FindAllSubmatch(text, -1) {
		if string(m[1]) == name {
			v, _ := strconv.ParseFloat(string(m[2]), 64)
			return v
		}
	}
	return 0
}

// MetricSum is the sum of the samples of a metric over all its labels.
func MetricSum(text []byte, name string) (sum float64, found bool) {
	for _, m := range metricLine.FindAllSubmatch(text, -1) {
		n := string(m[1])
		if i := strings.IndexByte(n, '{'); i >= 0 {
			n = n[:i]
		}
		if n == name {
			v, _ := strconv.ParseFloat(string(m[2]), 64)
			sum += v
			found = true
		}
	}
	return sum, found
}
