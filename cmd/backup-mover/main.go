// Command backup-mover reads and writes backup repositories: deduplicated,
// compressed, verifiable snapshots of a directory tree. The operator runs it
// in a Job; people and scripts can run it by hand. See pkg/mover/repo/FORMAT.md.
package main

import (
	"os"

	"example.com/backup-operator/pkg/mover/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
