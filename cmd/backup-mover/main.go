// Command backup-mover reads and writes backup repositories: deduplicated,
// compressed, verifiable snapshots of a directory tree. The operator runs it
// in a Job; people and scripts can run it by hand. See pkg/mover/repo/FORMAT.md.
package main

import (
	"os"
	"runtime/debug"

	"example.com/backup-operator/pkg/mover/cli"
)

func main() {
	// Chunk buffers are large and short-lived; collecting sooner keeps the
	// peak memory of a backup low at little CPU cost. GOGC overrides it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(40)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
