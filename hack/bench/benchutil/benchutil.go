// Package benchutil holds what the cluster benchmarks (bench-controller,
// bench-apiserver-memory) share: timestamped progress lines, a bounded
// worker pool, and a process's memory from /proc.
package benchutil

import (
	"fmt"
	"os"
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
