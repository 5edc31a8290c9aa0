package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

func (o *options) lsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "ls BACKUP [PATH]",
		Short: "List a directory of a Completed Backup (its root without PATH), as ls -l does",
		Long: `List a directory of a Completed Backup through its files subresource
(RBAC: get on backups/files): mode, owner (uid:gid), size, modification time
and name of each entry, "-> target" after a symlink. PATH is relative to the
backup's root; a file or symlink lists itself. -o json or yaml prints the
BackupFileList as the server returns it.

The first request for a repository may wait while the server starts its
reader: a 503 is tried again as its Retry-After says, for --retry-for.
Errors are the server's (404 no such path, 409 Backup not Completed, 403).
Exit codes: 0 listed, 2 refused or bad arguments, 3 interrupted.`,
		Example: `  kubectl backup ls database-backups-202611260200
  kubectl backup ls database-backups-202611260200 pgdata/pg_wal -n production
  kubectl backup ls database-backups-202611260200 conf -o json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := ""
			if len(args) == 2 {
				p = args[1]
			}
			return o.runLs(cmd.Context(), args[0], p)
		},
	}
	c.Flags().DurationVar(&o.retryFor, "retry-for", time.Minute, "how long to keep trying while the server answers 503 (starting the reader of the repository)")
	return c
}

func (o *options) runLs(ctx context.Context, backup, arg string) error {
	p, err := snapshotPath(arg)
	if err != nil {
		return err
	}
	l, raw, file, err := o.list(ctx, backup, p)
	if err != nil {
		return err
	}
	if file {
		// A regular file lists itself, from its directory's listing.
		e, err := o.stat(ctx, backup, p)
		if err != nil {
			return err
		}
		l = &backupFileList{Kind: fileListKind, APIVersion: v1alpha1.SchemeGroupVersion.String(), Path: p, Items: []backupFile{*e}}
		if raw, err = json.Marshal(l); err != nil {
			return err
		}
	}
	switch o.output {
	case "json":
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "    "); err != nil {
			return err
		}
		b.WriteByte('\n')
		_, err := o.out.Write(b.Bytes())
		return err
	case "yaml":
		y, err := yaml.JSONToYAML(raw)
		if err != nil {
			return err
		}
		_, err = o.out.Write(y)
		return err
	}
	if len(l.Items) == 0 {
		fmt.Fprintf(o.errOut, "backup/%s: %s is an empty directory\n", backup, path.Join("/", p))
		return nil
	}
	writeFileTable(o.out, l.Items, time.Local)
	return nil
}
