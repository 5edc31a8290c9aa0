package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

func (o *options) nowCommand() *cobra.Command {
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "now POLICY",
		Short: "Start a Backup of POLICY now (its trigger annotation); --wait follows it until Completed or Failed",
		Long: `Start a Backup of POLICY now: sets the policy's annotation
backup.example.com/trigger to a new value, as
  kubectl annotate bp POLICY backup.example.com/trigger=$(date +%s) --overwrite
does, and waits until the operator names the Backup it created.

With --wait, follows the Backup until it is Completed or Failed, with a
progress bar on a terminal. Exit codes: 0 Completed (or, without --wait,
created), 1 Failed, 2 refused or bad arguments, 3 timed out or interrupted
(the Backup goes on).`,
		Example: `  kubectl backup now database-backups
  kubectl backup now database-backups -n production --wait
  kubectl backup now database-backups --wait --timeout 30m -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runNow(cmd.Context(), args[0], wait, timeout)
		},
	}
	c.Flags().BoolVar(&wait, "wait", false, "follow the Backup until it is Completed or Failed")
	c.Flags().DurationVar(&timeout, "timeout", 0, "give up waiting after this long (exit code 3); 0: no limit (without --wait: 1m for the operator to answer)")
	return c
}

func (o *options) runNow(ctx context.Context, policy string, wait bool, timeout time.Duration) error {
	c := o.client.BackupV1alpha1()
	w := o.display()
	if _, err := c.BackupPolicies(o.ns).Get(ctx, policy, metav1.GetOptions{}); err != nil {
		return apiError(err)
	}
	value := strconv.FormatInt(o.now().UnixNano(), 10)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{v1alpha1.TriggerAnnotation: value}}})
	if _, err := c.BackupPolicies(o.ns).Patch(ctx, policy, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return apiError(err)
	}
	fmt.Fprintf(w, "backuppolicy/%s triggered (%s=%s)\n", policy, v1alpha1.TriggerAnnotation, value)

	// The operator answers the value in status.lastTrigger, naming the Backup.
	answerTimeout := timeout
	if answerTimeout == 0 && !wait {
		answerTimeout = time.Minute
	}
	start := time.Now()
	var trigger *v1alpha1.TriggerStatus
	waiter := &follower{w: w, what: "backuppolicy/" + policy, now: o.now, terminal: isTerminal(w)}
	_, err := o.follow(ctx, waiter, answerTimeout, func(ctx context.Context) (observation, error) {
		p, err := c.BackupPolicies(o.ns).Get(ctx, policy, metav1.GetOptions{})
		if err != nil {
			return observation{}, apiError(err)
		}
		if t := p.Status.LastTrigger; t != nil && t.Value == value {
			trigger = t
			return observation{done: true}, nil
		}
		return observation{phase: "waiting for the operator to create the Backup"}, nil
	})
	if err != nil {
		return err
	}
	if trigger.BackupName == "" {
		return withCode(exitFailed, "the operator answered the trigger without creating a Backup; `kubectl describe bp %s -n %s` shows why in its events", policy, o.ns)
	}
	name := trigger.BackupName
	fmt.Fprintf(w, "backup/%s created\n", name)
	if !wait {
		if o.output != "" {
			b, err := c.Backups(o.ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return apiError(err)
			}
			return o.printObject(withKind(b, "Backup"))
		}
		return nil
	}

	if timeout > 0 {
		timeout -= time.Since(start)
		if timeout <= 0 {
			timeout = time.Nanosecond
		}
	}
	var last *v1alpha1.Backup
	f := &follower{w: w, what: "backup/" + name, now: o.now, terminal: isTerminal(w)}
	ob, err := o.follow(ctx, f, timeout, func(ctx context.Context) (observation, error) {
		b, err := c.Backups(o.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return observation{}, apiError(err)
		}
		last = b
		return backupObservation(b), nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, backupSummary(last))
	if o.output != "" {
		if err := o.printObject(withKind(last, "Backup")); err != nil {
			return err
		}
	}
	if ob.failed {
		return &codeError{code: exitFailed, err: fmt.Errorf("backup/%s failed", name)}
	}
	return nil
}

// backupSummary is the line that ends following a Backup.
func backupSummary(b *v1alpha1.Backup) string {
	s := fmt.Sprintf("backup/%s %s", b.Name, b.Status.Phase)
	if st := b.Status.Stats; st != nil && b.Status.Phase == v1alpha1.BackupPhaseCompleted {
		s += fmt.Sprintf(": %d files, %s (%s new)", st.Files, humanBytes(st.Bytes), humanBytes(st.NewBytes))
	}
	if b.Status.StartTime != nil && b.Status.CompletionTime != nil {
		s += " in " + shortDuration(b.Status.CompletionTime.Sub(b.Status.StartTime.Time))
	}
	if b.Status.Message != "" {
		s += ": " + oneLine(b.Status.Message)
	}
	return s
}
