package main

import (
	"bufio"
	"context"
	"fmt"

	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

type restoreFlags struct {
	to         string
	newPVC     string
	mode       string
	paths      []string
	yes        bool
	allowInUse bool
	timeout    time.Duration
}

func (o *options) restoreCommand() *cobra.Command {
	var rf restoreFlags
	c := &cobra.Command{
		Use:   "restore BACKUP (--to PVC | --new-pvc SIZE) [--mode Mirror] [--path P]...",
		Short: "Preview a restore of BACKUP (a dry-run RestoreJob), ask, then restore with a progress bar",
		Long: `Restore a Completed Backup into a claim in two steps: a RestoreJob with
dryRun: true first, whose preview (+ created, ~ overwritten, - deleted paths
and their counts) is shown; then, once confirmed, a second RestoreJob that
writes, followed until Completed or Failed.

--to PVC restores into an existing claim; --new-pvc SIZE creates the claim
(named by --to, default BACKUP-restore) with the dry run, and the restore
then writes into it. Confirmation is read from the terminal; without one,
--yes is required. Refusals of the API (403, 409, 422) are shown as the API
words them. Exit codes: 0 Completed (or declined), 1 Failed, 2 refused or
bad arguments, 3 timed out or interrupted (the RestoreJob goes on).`,
		Example: `  kubectl backup restore database-backups-202611260200 --to postgres-data
  kubectl backup restore database-backups-202611260200 --to postgres-data --mode Mirror --path conf --path pgdata/pg_wal
  kubectl backup restore database-backups-202611260200 --new-pvc 20Gi --to postgres-copy --yes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runRestore(cmd.Context(), args[0], rf)
		},
	}
	fl := c.Flags()
	fl.StringVar(&rf.to, "to", "", "the claim to restore into (with --new-pvc: the name of the new claim)")
	fl.StringVar(&rf.newPVC, "new-pvc", "", "create the claim with this size (for example 20Gi)")
	fl.StringVar(&rf.mode, "mode", string(v1alpha1.RestoreModeMerge), "Merge (keep files the backup lacks) or Mirror (delete them)")
	fl.StringArrayVar(&rf.paths, "path", nil, "restore only this file or directory of the backup (relative to its root); repeatable")
	fl.BoolVarP(&rf.yes, "yes", "y", false, "restore without asking after the preview")
	fl.BoolVar(&rf.allowInUse, "allow-in-use", false, "allow a claim a running pod mounts (spec.allowInUse)")
	fl.DurationVar(&rf.timeout, "timeout", 0, "give up following after this long (exit code 3); 0: no limit")
	return c
}

// restoreSpecs are the dry run's and the restore's specs for backup and
// the flags. With --new-pvc the dry run creates the claim and the restore
// writes into it.
func restoreSpecs(backup string, rf restoreFlags) (dry, real v1alpha1.RestoreJobSpec, err error) {
	if rf.to == "" && rf.newPVC == "" {
		return dry, real, withCode(exitError, "--to PVC or --new-pvc SIZE is required")
	}
	var mode v1alpha1.RestoreMode
	switch strings.ToLower(rf.mode) {
	case "merge":
		mode = v1alpha1.RestoreModeMerge
	case "mirror":
		mode = v1alpha1.RestoreModeMirror
	default:
		return dry, real, withCode(exitError, "--mode must be Merge or Mirror, not %q", rf.mode)
	}
	real = v1alpha1.RestoreJobSpec{BackupName: backup, Target: v1alpha1.RestoreTarget{PVCName: rf.to}, Mode: mode, Paths: rf.paths, AllowInUse: rf.allowInUse}
	dry = *real.DeepCopy()
	dry.DryRun = true
	if rf.newPVC != "" {
		size, err := resource.ParseQuantity(rf.newPVC)
		if err != nil {
			return dry, real, withCode(exitError, "--new-pvc %q: %v", rf.newPVC, err)
		}
		if dry.Target.PVCName == "" {
			dry.Target.PVCName = backup + "-restore"
			real.Target.PVCName = dry.Target.PVCName
		}
		dry.Target.NewPVC = &v1alpha1.NewPVCSpec{Size: &size}
	}
	return dry, real, nil
}

func (o *options) runRestore(ctx context.Context, backup string, rf restoreFlags) error {
	dry, real, err := restoreSpecs(backup, rf)
	if err != nil {
		return err
	}
	c := o.client.BackupV1alpha1().RestoreJobs(o.ns)
	w := o.display()
	var created []runtime.Object
	printCreated := func() error {
		if o.output == "" {
			return nil
		}
		return o.printObject(list(created...))
	}
	deadline := time.Time{}
	if rf.timeout > 0 {
		deadline = time.Now().Add(rf.timeout)
	}
	left := func() time.Duration {
		if deadline.IsZero() {
			return 0
		}
		return max(time.Until(deadline), time.Nanosecond)
	}

	// The preview.
	d, err := c.Create(ctx, &v1alpha1.RestoreJob{ObjectMeta: metav1.ObjectMeta{GenerateName: backup + "-preview-"}, Spec: dry}, metav1.CreateOptions{})
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintf(w, "restorejob/%s created (dry run of backup/%s into claim %s)\n", d.Name, backup, dry.Target.PVCName)
	d, ob, err := o.followRestore(ctx, d.Name, left())
	if d != nil {
		created = append(created, withKind(d, "RestoreJob"))
	}
	if err != nil {
		return err
	}
	if ob.failed {
		_ = printCreated()
		return withCode(exitFailed, "the dry run restorejob/%s failed: %s", d.Name, oneLine(d.Status.Message))
	}
	writePreview(w, d.Status.Preview)

	if !rf.yes {
		if !isTerminal(o.in) {
			_ = printCreated()
			return withCode(exitError, "not restoring: confirmation needs a terminal on stdin; after reviewing the preview above, run again with --yes")
		}
		what := "restore backup/" + backup + " into claim " + real.Target.PVCName
		if real.Mode == v1alpha1.RestoreModeMirror {
			what += " (Mirror: deletes what the backup lacks)"
		}
		fmt.Fprintf(w, "%s? [y/N] ", what)
		answer, _ := bufio.NewReader(o.in).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(w, "not restored")
			if rf.newPVC != "" {
				fmt.Fprintf(w, "the claim %s created for the preview is left in place; `kubectl delete pvc %s -n %s` removes it\n", dry.Target.PVCName, dry.Target.PVCName, o.ns)
			}
			return printCreated()
		}
	}

	r, err := c.Create(ctx, &v1alpha1.RestoreJob{ObjectMeta: metav1.ObjectMeta{GenerateName: backup + "-restore-"}, Spec: real}, metav1.CreateOptions{})
	if err != nil {
		_ = printCreated()
		return apiError(err)
	}
	fmt.Fprintf(w, "restorejob/%s created\n", r.Name)
	r, ob, err = o.followRestore(ctx, r.Name, left())
	if r != nil {
		created = append(created, withKind(r, "RestoreJob"))
	}
	if err != nil {
		_ = printCreated()
		return err
	}
	fmt.Fprintln(w, restoreSummary(r))
	if err := printCreated(); err != nil {
		return err
	}
	if ob.failed {
		return withCode(exitFailed, "restorejob/%s failed", r.Name)
	}
	return nil
}

func (o *options) followRestore(ctx context.Context, name string, timeout time.Duration) (*v1alpha1.RestoreJob, observation, error) {
	var last *v1alpha1.RestoreJob
	w := o.display()
	f := &follower{w: w, what: "restorejob/" + name, now: o.now, terminal: isTerminal(w)}
	ob, err := o.follow(ctx, f, timeout, func(ctx context.Context) (observation, error) {
		r, err := o.client.BackupV1alpha1().RestoreJobs(o.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return observation{}, apiError(err)
		}
		last = r
		return restoreObservation(r), nil
	})
	return last, ob, err
}

// restoreSummary is the line that ends following a restore.
func restoreSummary(r *v1alpha1.RestoreJob) string {
	s := fmt.Sprintf("restorejob/%s %s", r.Name, r.Status.Phase)
	if st := r.Status.Stats; st != nil && r.Status.Phase == v1alpha1.RestorePhaseCompleted {
		s += fmt.Sprintf(": %d files, %s written", st.Files, humanBytes(st.Bytes))
		if r.Status.Verified {
			s += ", verified"
		}
	}
	if r.Status.StartTime != nil && r.Status.CompletionTime != nil {
		s += " in " + shortDuration(r.Status.CompletionTime.Sub(r.Status.StartTime.Time))
	}
	if r.Status.Message != "" {
		s += ": " + oneLine(r.Status.Message)
	}
	return s
}
