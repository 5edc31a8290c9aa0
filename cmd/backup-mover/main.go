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
	"example.com/backup-operator/pkg/mover/repo"
)

func main() {
	// Chunk buffers are large and short-lived; collecting sooner keeps the
	// peak memory of a backup low at little CPU cost. GOGC overrides it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(40)
	}
	// Reading many small files blocks in the kernel often and briefly. A P
	// stuck in such a read idles until the runtime takes it back, and a small
	// file's reader waits behind the hashing workers for a P. Four Ps per CPU
	// keep the disk and the CPUs busy together; hashing workers and
	// compressors stay at one per CPU (repo.CPUs, which follows a container's
	// CPU limit). GOMAXPROCS overrides it.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(4 * repo.CPUs)
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
