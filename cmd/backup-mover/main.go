// Command backup-mover reads and writes backup repositories: deduplicated,
// compressed, verifiable snapshots of a directory tree. The operator runs it
// in a Job; people and scripts can run it by hand. See pkg/mover/repo/FORMAT.md.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"

	"example.com/backup-operator/pkg/mover/cli"
)

func main() {
	// Chunk buffers are large and short-lived; collecting sooner keeps the
	// peak memory of a backup low at little CPU cost. GOGC overrides it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(40)
	}
	// Reading many small files blocks in the kernel often and briefly; a P
	// stuck in such a read idles until the runtime takes it back. Twice as
	// many Ps as CPUs keeps the CPUs busy (the hashing workers stay at one
	// per CPU). GOMAXPROCS overrides it.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2 * runtime.NumCPU())
	}
	// BACKUP_MOVER_CPUPROFILE names a file for a CPU profile of the run
	// (go tool pprof reads it); for performance work, not for production.
	if path := os.Getenv("BACKUP_MOVER_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "backup-mover: cpu profile:", err)
			os.Exit(2)
		}
		code := cli.Main(os.Args[1:], os.Stdout, os.Stderr)
		pprof.StopCPUProfile()
		f.Close()
		os.Exit(code)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
