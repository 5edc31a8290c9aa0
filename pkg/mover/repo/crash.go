package repo

import "os"

// CrashAt ends the process at a named step when BACKUP_MOVER_CRASH_AT names
// it, exactly as SIGKILL would (exit status 137, no cleanup). The crash tests
// use it to stop backup and prune between every pair of durable writes.
func CrashAt(step string) {
	if os.Getenv("BACKUP_MOVER_CRASH_AT") == step {
		os.Exit(137)
	}
}
