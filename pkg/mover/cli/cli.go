// Package cli is the command line of backup-mover. Scripts and the operator's
// controllers rely on its contract: the commands and flags below, JSON progress
// lines on stdout, --json results, a summary file, and exit 0 only on full success.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"example.com/backup-operator/pkg/mover/engine"
	"example.com/backup-operator/pkg/mover/repo"
	"example.com/backup-operator/pkg/mover/report"
)

type options struct {
	repo, source, target, snapshot, summaryFile, mode, parentTag string
	jsonOut, dryRun, noParent                                    bool
	forget, tags, paths                                          []string

	// Where the repository is and how to open it.
	s3                     repo.S3Options
	passwordFile           string
	lockMode, lockUntil    string
	newPasswordFile, keyID string
}

// readPassword reads a password file: its content, less one trailing
// newline (as `echo pw > file` leaves).
func readPassword(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the repository password: %w", err)
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	if len(data) == 0 {
		return nil, fmt.Errorf("the password file %s is empty", path)
	}
	return data, nil
}

// storage returns the repository's storage and how to open it.
func (o *options) storage(lock bool) (repo.Storage, repo.Options, error) {
	var ro repo.Options
	if o.passwordFile != "" {
		pw, err := readPassword(o.passwordFile)
		if err != nil {
			return nil, ro, err
		}
		ro.Password = pw
	}
	if lock && (o.lockMode != "" || o.lockUntil != "") {
		if o.lockMode == "" || o.lockUntil == "" {
			return nil, ro, usageError{errors.New("--lock-mode and --lock-until go together")}
		}
		mode, err := repo.ParseRetentionMode(o.lockMode)
		if err != nil {
			return nil, ro, usageError{err}
		}
		until, err := time.Parse(time.RFC3339, o.lockUntil)
		if err != nil {
			return nil, ro, usageError{fmt.Errorf("--lock-until: %w (want an RFC 3339 time such as 2026-12-31T00:00:00Z)", err)}
		}
		if !until.After(time.Now()) {
			return nil, ro, usageError{fmt.Errorf("--lock-until %s is not in the future", o.lockUntil)}
		}
		ro.Retention = &repo.Retention{Mode: mode, Until: until}
	}
	s3 := o.s3
	s3.AccessKey, s3.SecretKey = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	st, err := repo.OpenStorageLocation(o.repo, s3)
	return st, ro, err
}

// open opens the repository --repo names.
func (o *options) open(ctx context.Context) (*repo.Repo, error) {
	st, ro, err := o.storage(false)
	if err != nil {
		return nil, err
	}
	return repo.OpenStorage(ctx, st, ro)
}

// Main runs the command line and returns the exit code: 0 on success, 2 for
// a usage error (an unknown command or flag, a bad or missing flag value), 1
// for any other failure.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	o := &options{}
	root := &cobra.Command{
		Use:           "backup-mover",
		Short:         "Back up and restore directory trees to a deduplicating, verifiable repository",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&o.repo, "repo", "", "repository: a directory, or s3:http(s)://host[:port]/bucket[/prefix] with credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (required)")
	root.PersistentFlags().StringVar(&o.s3.Region, "s3-region", "", "S3 region (default: the server's)")
	root.PersistentFlags().StringVar(&o.s3.CAFile, "s3-ca-file", "", "PEM file of a CA to trust for an https S3 endpoint, besides the system's")
	root.PersistentFlags().BoolVar(&o.s3.InsecureSkipVerify, "s3-insecure-skip-tls-verify", false, "do not check the S3 endpoint's certificate (testing only)")
	root.PersistentFlags().StringVar(&o.passwordFile, "password-file", "", "file holding the repository password: needed for an encrypted repository, and makes backup/init create one")
	root.PersistentFlags().BoolVar(&o.jsonOut, "json", false, "print the result as JSON")
	root.PersistentFlags().StringVar(&o.summaryFile, "summary-file", "", "also write a JSON summary (under 4 KiB) to this file, e.g. /dev/termination-log")
	_ = root.MarkPersistentFlagRequired("repo")

	out := &printer{w: stdout, json: &o.jsonOut}
	root.AddCommand(
		&cobra.Command{Use: "init", Short: "Create an empty repository", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error {
			st, ro, err := o.storage(false)
			if err != nil {
				return err
			}
			r, err := repo.InitStorage(ctx, st, ro)
			if err != nil {
				return err
			}
			return out.result(map[string]string{"repository": o.repo, "id": r.Config.ID}, "initialized repository "+r.Config.ID+" at "+o.repo)
		}},
		backupCmd(ctx, o, out, stderr),
		restoreCmd(ctx, o, out, false),
		restoreCmd(ctx, o, out, true),
		verifyCmd(ctx, o, out),
		lsCmd(ctx, o, out),
		keyCmd(ctx, o, out),
		pruneCmd(ctx, o, out),
		serveCmd(ctx, o, stderr),
	)
	// An error cobra returns before a command runs is in the command line: an
	// unknown command or flag, a bad flag value, a missing required flag.
	ran := false
	var wrap func(*cobra.Command)
	wrap = func(parent *cobra.Command) {
		for _, c := range parent.Commands() {
			if run := c.RunE; run != nil {
				c.RunE = func(c *cobra.Command, args []string) error {
					ran = true
					return run(c, args)
				}
			}
			wrap(c)
		}
	}
	wrap(root)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err != nil && !ran {
		err = usageError{err}
	}
	if err != nil {
		fmt.Fprintln(stderr, "backup-mover:", err)
		if o.summaryFile != "" {
			_ = writeSummary(o.summaryFile, report.Summary{Operation: "error", Error: truncate(err.Error(), 2000)})
		}
	}
	return exitCode(err)
}

// usageError is an error in how backup-mover was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// exitCode is Main's exit code for what the command returned.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

type printer struct {
	w    io.Writer
	json *bool
}

func (p *printer) result(v any, text string) error {
	if *p.json {
		return json.NewEncoder(p.w).Encode(v)
	}
	_, err := fmt.Fprintln(p.w, text)
	return err
}

// progress prints one JSON line; progress lines are JSON whatever --json says,
// so a controller or script can follow them.
func (p *printer) progress(pr report.Progress) {
	data, _ := json.Marshal(pr)
	fmt.Fprintln(p.w, string(data))
}

// writeSummary writes s as JSON to path, under 4000 bytes if it can: it
// drops example paths of a backup first (their counts stay), then halves the
// paths of a restore or diff (and sets Truncated).
func writeSummary(path string, s report.Summary) error {
	data, _ := json.Marshal(s)
	for len(data) > 4000 && len(s.VanishedPaths)+len(s.ChangedPaths) > 0 {
		if len(s.VanishedPaths) >= len(s.ChangedPaths) {
			s.VanishedPaths = s.VanishedPaths[:len(s.VanishedPaths)-1]
		} else {
			s.ChangedPaths = s.ChangedPaths[:len(s.ChangedPaths)-1]
		}
		data, _ = json.Marshal(s)
	}
	for len(data) > 4000 && len(s.Paths) > 0 {
		s.Paths = s.Paths[:len(s.Paths)/2]
		s.Truncated = true
		data, _ = json.Marshal(s)
	}
	return os.WriteFile(path, data, 0o644)
}

// warnChanges prints a warning line for the entries that vanished during a
// backup and one for the files that changed while they were read, if any.
func warnChanges(w io.Writer, vanished, changed int64) {
	if vanished > 0 {
		fmt.Fprintf(w, "warning: %s during the backup and %s not in the snapshot\n",
			plural(vanished, "file vanished", "files vanished"), plural1(vanished, "is", "are"))
	}
	if changed > 0 {
		fmt.Fprintf(w, "warning: %s while %s read; stored as read\n",
			plural(changed, "file changed", "files changed"), plural1(changed, "it was", "they were"))
	}
}

// plural is "n one" or "n many".
func plural(n int64, one, many string) string {
	return fmt.Sprintf("%d %s", n, plural1(n, one, many))
}

// plural1 is one when n is 1, else many.
func plural1(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// backupGCPercent is a backup's GOGC. Its large buffers (chunks, pack
// writes, compressor output) are pooled and bounded, so what the collector
// frees is mostly the metadata of the entries walked, which is little to
// mark: collecting at 20% growth instead of the process default keeps the
// heap near what is live (the blob index and the bounded buffers) at a cost
// that does not show in a backup's time. See README (Tests and benchmarks).
const backupGCPercent = 20

// tuneBackupGC sets backupGCPercent unless GOGC says otherwise.
func tuneBackupGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(backupGCPercent)
	}
}

func parseTags(tags []string) (map[string]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, t := range tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("usage: --tag %q: want key=value", t)}
		}
		m[k] = v
	}
	return m, nil
}

func backupCmd(ctx context.Context, o *options, out *printer, stderr io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "backup", Short: "Store --source as a new snapshot (initialises an empty --repo); prints the snapshot id", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			tuneBackupGC()
			tags, err := parseTags(o.tags)
			if err != nil {
				return err
			}
			st, ro, err := o.storage(true)
			if err != nil {
				return err
			}
			// The source is listed while the repository is opened (an
			// encrypted one's key derived), locked and read.
			pre := engine.StartPrelisting(o.source)
			defer pre.Stop()
			r, err := repo.OpenOrInitStorage(ctx, st, ro)
			if err != nil {
				return err
			}
			defer r.Close()
			start := time.Now()
			res, err := engine.BackupWithResult(ctx, r, engine.BackupOptions{Source: o.source, Tags: tags, ParentTag: o.parentTag, NoParent: o.noParent, Progress: out.progress, Prelisted: pre})
			if err != nil {
				return err
			}
			snap := res.Snapshot
			s := report.Summary{Operation: "backup", SnapshotID: snap.ID.String(), Files: snap.Totals.Files, Bytes: snap.Totals.Bytes,
				NewBytes: snap.Totals.NewBytes, StoredBytes: snap.Totals.StoredBytes, DurationSeconds: time.Since(start).Seconds(),
				Vanished: res.Vanished, ChangedDuringRead: res.ChangedDuringRead, VanishedPaths: res.VanishedPaths, ChangedPaths: res.ChangedPaths}
			warnChanges(stderr, res.Vanished, res.ChangedDuringRead)
			if ro.Retention != nil {
				until := ro.Retention.Until.UTC()
				s.LockedUntil = &until
			}
			if o.summaryFile != "" {
				if err := writeSummary(o.summaryFile, s); err != nil {
					return err
				}
			}
			return out.result(s, snap.ID.String())
		}}
	c.Flags().StringVar(&o.source, "source", "", "directory to back up (required)")
	c.Flags().StringArrayVar(&o.tags, "tag", nil, "key=value stored in the snapshot (repeatable)")
	c.Flags().StringVar(&o.parentTag, "parent-tag", "", "use as parent the newest snapshot with the same value of this tag (default: same source path)")
	c.Flags().BoolVar(&o.noParent, "no-parent", false, "read every file, even unchanged ones")
	c.Flags().StringVar(&o.lockMode, "lock-mode", "", "lock every object of the snapshot (S3 Object Lock): governance or compliance; with --lock-until")
	c.Flags().StringVar(&o.lockUntil, "lock-until", "", "RFC 3339 time until which the snapshot's objects stay locked")
	_ = c.MarkFlagRequired("source")
	return c
}

func restoreCmd(ctx context.Context, o *options, out *printer, diff bool) *cobra.Command {
	use, short := "restore", "Restore --snapshot into --target, verifying every byte"
	if diff {
		use, short = "diff", "Show what a restore of --snapshot into --target would change; touches nothing"
	}
	c := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			mode := engine.RestoreMode(strings.ToLower(o.mode))
			if mode != "" && mode != engine.Merge && mode != engine.Mirror {
				return usageError{fmt.Errorf("unknown restore mode %q: use merge or mirror", mode)}
			}
			if err := engine.CheckPaths(o.paths); err != nil {
				return usageError{fmt.Errorf("--path: %w", err)}
			}
			r, err := o.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			id, err := r.ResolveSnapshot(o.snapshot)
			if err != nil {
				return err
			}
			start := time.Now()
			res, err := engine.Restore(ctx, r, engine.RestoreOptions{Snapshot: id, Target: o.target,
				Mode: mode, DryRun: diff || o.dryRun, Paths: o.paths, Progress: out.progress})
			if err != nil {
				return err
			}
			s := report.Summary{Operation: use, SnapshotID: res.Snapshot, Files: res.FilesWritten, Bytes: res.BytesWritten,
				Creates: res.Creates, Overwrites: res.Overwrites, Deletes: res.Deletes, Paths: res.Paths, Truncated: res.Truncated,
				Verified: res.Verified, XattrsSkipped: res.XattrsSkipped, XattrWarning: truncate(res.XattrWarning, 500), OwnersNotPreserved: res.OwnersNotPreserved,
				DurationSeconds: time.Since(start).Seconds()}
			if res.DryRun {
				s.Operation = "diff"
			}
			if o.summaryFile != "" {
				if err := writeSummary(o.summaryFile, s); err != nil {
					return err
				}
			}
			var b strings.Builder
			verb := "changed"
			if res.DryRun {
				verb = "would change"
			}
			fmt.Fprintf(&b, "%s %d created, %d overwritten, %d deleted, %d unchanged", verb, res.Creates, res.Overwrites, res.Deletes, res.Unchanged)
			if len(res.Selection) > 0 {
				fmt.Fprintf(&b, " at or beneath %s", strings.Join(res.Selection, ", "))
			}
			for _, p := range res.Paths {
				b.WriteString("\n" + p)
			}
			if res.Truncated {
				b.WriteString("\n… (more changes not listed)")
			}
			if res.XattrsSkipped > 0 {
				fmt.Fprintf(&b, "\nwarning: %d extended attributes were not restored, the first: %s", res.XattrsSkipped, res.XattrWarning)
			}
			return out.result(res, b.String())
		}}
	c.Flags().StringVar(&o.snapshot, "snapshot", "", "snapshot id (a unique prefix of 8+ digits, or latest) (required)")
	c.Flags().StringVar(&o.target, "target", "", "directory to restore into (required)")
	c.Flags().StringVar(&o.mode, "mode", "merge", "merge (overwrite what differs, keep the rest) or mirror (also delete what the snapshot lacks)")
	c.Flags().StringArrayVar(&o.paths, "path", nil, "restore only this file or directory of the snapshot, relative to its root, to the same path beneath --target (repeatable; mirror deletes only beneath the paths; default: everything)")
	if !diff {
		c.Flags().BoolVar(&o.dryRun, "dry-run", false, "report what would change and touch nothing (same as diff)")
	}
	_ = c.MarkFlagRequired("snapshot")
	_ = c.MarkFlagRequired("target")
	return c
}

func verifyCmd(ctx context.Context, o *options, out *printer) *cobra.Command {
	c := &cobra.Command{Use: "verify", Short: "Re-read and re-hash everything a snapshot references (or the whole repository)", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			r, err := o.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			var ids []repo.ID
			if o.snapshot != "" {
				id, err := r.ResolveSnapshot(o.snapshot)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			res, err := engine.Verify(ctx, r, ids, o.snapshot == "")
			if err != nil {
				return err
			}
			var b strings.Builder
			fmt.Fprintf(&b, "checked %d snapshots, %d blobs, %d bytes: ", res.Snapshots, res.Blobs, res.Bytes)
			if res.OK() {
				b.WriteString("no damage found")
			} else {
				fmt.Fprintf(&b, "%d damaged objects", len(res.Damaged))
				for _, d := range res.Damaged {
					fmt.Fprintf(&b, "\n%s: %s", d.Object, d.Error)
				}
			}
			if err := out.result(res, b.String()); err != nil {
				return err
			}
			if !res.OK() {
				return fmt.Errorf("repository damaged: %d objects failed verification", len(res.Damaged))
			}
			return nil
		}}
	c.Flags().StringVar(&o.snapshot, "snapshot", "", "verify only this snapshot")
	return c
}

func lsCmd(ctx context.Context, o *options, out *printer) *cobra.Command {
	c := &cobra.Command{Use: "ls", Short: "List snapshots, or the files of --snapshot", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			r, err := o.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			if o.snapshot == "" {
				snaps, err := r.Snapshots()
				if err != nil {
					return err
				}
				if *out.json {
					rows := []report.Snapshot{}
					for _, s := range snaps {
						rows = append(rows, snapshotRow(s))
					}
					return json.NewEncoder(out.w).Encode(rows)
				}
				tw := tabwriter.NewWriter(out.w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTIME\tFILES\tBYTES\tNEW BYTES\tSOURCE")
				for _, s := range snaps {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", s.ID, s.Time.Format(time.RFC3339), s.Totals.Files, s.Totals.Bytes, s.Totals.NewBytes, s.Source)
				}
				return tw.Flush()
			}
			id, err := r.ResolveSnapshot(o.snapshot)
			if err != nil {
				return err
			}
			snap, err := r.LoadSnapshot(id)
			if err != nil {
				return err
			}
			m, err := r.OpenManifest(snap.Manifest)
			if err != nil {
				return err
			}
			defer m.Close()
			enc := json.NewEncoder(out.w)
			for {
				e, err := m.Next()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if *out.json {
					e.Chunks = nil
					if err := enc.Encode(e); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(out.w, "%s %04o %5d %5d %12d %s %s\n", e.Type[:1], e.Mode, e.UID, e.GID, e.Size,
					time.Unix(0, e.MTime).UTC().Format(time.RFC3339), e.Path)
			}
		}}
	c.Flags().StringVar(&o.snapshot, "snapshot", "", "list this snapshot's entries")
	return c
}

func pruneCmd(ctx context.Context, o *options, out *printer) *cobra.Command {
	var wait time.Duration
	var forgetTags []string
	c := &cobra.Command{Use: "prune", Short: "Forget snapshots and delete the data no remaining snapshot references", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			r, err := o.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			var ids []repo.ID
			for _, f := range o.forget {
				id, err := r.ResolveSnapshot(f)
				if err != nil {
					// Forgetting a snapshot that is already gone is not an error:
					// prune is repeated after a crash.
					if full, perr := repo.ParseID(f); perr == nil {
						ids = append(ids, full)
						continue
					}
					return err
				}
				ids = append(ids, id)
			}
			tagged, err := parseTags(forgetTags)
			if err != nil {
				return err
			}
			start := time.Now()
			res, err := r.PruneTagged(ctx, ids, tagged, wait)
			if err != nil {
				return err
			}
			if o.summaryFile != "" {
				s := report.Summary{Operation: "prune", Forgotten: len(res.Forgotten), PacksDeleted: res.PacksDeleted, BytesFreed: res.BytesFreed,
					Retained: res.Retained, RetainedUntil: res.RetainedUntil, DurationSeconds: time.Since(start).Seconds()}
				if err := writeSummary(o.summaryFile, s); err != nil {
					return err
				}
			}
			text := fmt.Sprintf("forgot %d snapshots; deleted %d packs, rewrote %d, freed %d bytes",
				len(res.Forgotten), res.PacksDeleted, res.PacksRewritten, res.BytesFreed)
			if res.Retained > 0 {
				text += fmt.Sprintf("; kept %d locked objects (S3 Object Lock) until %s at the latest: a later prune deletes them", res.Retained, res.RetainedUntil.Format(time.RFC3339))
			}
			return out.result(res, text)
		}}
	c.Flags().StringArrayVar(&o.forget, "forget", nil, "snapshot id to forget (repeatable); none: only delete unreferenced data")
	c.Flags().StringArrayVar(&forgetTags, "forget-tag", nil, "also forget every snapshot with this tag, key=value (repeatable), such as backup-uid=UID for all of one Backup's")
	c.Flags().DurationVar(&wait, "lock-wait", 10*time.Minute, "how long to wait for running backups and restores to finish")
	return c
}

// snapshotRow is a snapshot as `ls --json` prints it.
func snapshotRow(s *repo.Snapshot) report.Snapshot {
	row := report.Snapshot{ID: s.ID.String(), Time: s.Time, Source: s.Source, Hostname: s.Hostname,
		Manifest: s.Manifest.String(), ManifestSize: s.ManifestSize, Tags: s.Tags,
		Totals: report.Totals{Files: s.Totals.Files, Dirs: s.Totals.Dirs, Symlinks: s.Totals.Symlinks,
			Bytes: s.Totals.Bytes, NewBytes: s.Totals.NewBytes, StoredBytes: s.Totals.StoredBytes}}
	if s.Parent != nil {
		row.Parent = s.Parent.String()
	}
	return row
}

func keyCmd(ctx context.Context, o *options, out *printer) *cobra.Command {
	c := &cobra.Command{Use: "key", Short: "Manage the passwords of an encrypted repository (opened with --password-file)"}
	open := func() (*repo.Repo, []byte, error) {
		if o.passwordFile == "" {
			return nil, nil, usageError{errors.New("--password-file is required: a key is managed with a password that opens the repository")}
		}
		r, err := o.open(ctx)
		if err != nil {
			return nil, nil, err
		}
		pw, _ := readPassword(o.passwordFile)
		return r, pw, nil
	}
	list := &cobra.Command{Use: "list", Short: "List the repository's keys", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error {
		r, pw, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		keys, err := r.Keys(pw)
		if err != nil {
			return err
		}
		if *out.json {
			return json.NewEncoder(out.w).Encode(keys)
		}
		tw := tabwriter.NewWriter(out.w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tHOST\tCURRENT")
		for _, k := range keys {
			cur := ""
			if k.Current {
				cur = "*"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID[:16], k.Created.Format(time.RFC3339), k.Hostname, cur)
		}
		return tw.Flush()
	}}
	add := &cobra.Command{Use: "add", Short: "Let the password in --new-password-file open the repository too", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error {
		newPW, err := readPassword(o.newPasswordFile)
		if err != nil {
			return err
		}
		r, _, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		id, err := r.AddKey(newPW)
		if err != nil {
			return err
		}
		return out.result(map[string]string{"id": id}, "added key "+id)
	}}
	add.Flags().StringVar(&o.newPasswordFile, "new-password-file", "", "file holding the new password (required)")
	_ = add.MarkFlagRequired("new-password-file")
	remove := &cobra.Command{Use: "remove ID", Short: "Remove a key (not the one given with --password-file)", Args: cobra.ExactArgs(1), RunE: func(_ *cobra.Command, args []string) error {
		r, pw, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		if err := r.RemoveKey(args[0], pw); err != nil {
			return err
		}
		return out.result(map[string]string{"removed": args[0]}, "removed key "+args[0])
	}}
	c.AddCommand(list, add, remove)
	return c
}
