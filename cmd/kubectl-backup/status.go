package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// policyStatus is one policy's line of `status`, also its -o json form.
type policyStatus struct {
	Namespace          string     `json:"namespace"`
	Name               string     `json:"name"`
	Schedule           string     `json:"schedule"`
	Suspended          bool       `json:"suspended,omitempty"`
	LastSuccessful     string     `json:"lastSuccessfulBackup,omitempty"`
	LastSuccessfulTime *time.Time `json:"lastSuccessfulTime,omitempty"`
	Interval           string     `json:"interval,omitempty"`
	NextRun            *time.Time `json:"nextRun,omitempty"`
	Late               bool       `json:"late"`
	LateBy             string     `json:"lateBy,omitempty"`
	ScheduleError      string     `json:"scheduleError,omitempty"`
}

// activeStatus is a Backup or RestoreJob that is Pending or Running.
type activeStatus struct {
	Kind       string             `json:"kind"`
	Namespace  string             `json:"namespace"`
	Name       string             `json:"name"`
	Phase      string             `json:"phase"`
	Progress   *v1alpha1.Progress `json:"progress,omitempty"`
	Message    string             `json:"message,omitempty"`
	DryRun     bool               `json:"dryRun,omitempty"`
	StartTime  *time.Time         `json:"startTime,omitempty"`
	percentage int
}

// failureStatus is a recently Failed Backup or RestoreJob.
type failureStatus struct {
	Kind      string     `json:"kind"`
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Time      *time.Time `json:"time,omitempty"`
	Message   string     `json:"message,omitempty"`
}

type statusReport struct {
	Policies []policyStatus  `json:"policies"`
	Active   []activeStatus  `json:"active"`
	Failures []failureStatus `json:"recentFailures"`
}

func (o *options) statusCommand() *cobra.Command {
	var since, grace time.Duration
	c := &cobra.Command{
		Use:   "status",
		Short: "Policies with their last success and next run, running Backups and RestoreJobs, recent failures",
		Example: `  kubectl backup status
  kubectl backup status -A
  kubectl backup status -n production -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := o.collectStatus(cmd.Context(), since, grace)
			if err != nil {
				return err
			}
			if o.output != "" {
				return o.printObject(r)
			}
			o.writeStatus(o.out, r, isTerminal(o.out))
			return nil
		},
	}
	c.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "every namespace")
	c.Flags().DurationVar(&since, "failures-since", 24*time.Hour, "failures that ended within this long are listed")
	c.Flags().DurationVar(&grace, "late-after", time.Hour, "a policy is late when a scheduled run is this much overdue (at most one interval of its schedule) with no success since")
	return c
}

func timePtr(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.Time
	return &v
}

func (o *options) collectStatus(ctx context.Context, since, grace time.Duration) (*statusReport, error) {
	ns := o.ns
	if o.allNamespaces {
		ns = metav1.NamespaceAll
	}
	c := o.client.BackupV1alpha1()
	policies, err := c.BackupPolicies(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError(err)
	}
	backups, err := c.Backups(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError(err)
	}
	restores, err := c.RestoreJobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError(err)
	}
	now := o.now()
	r := &statusReport{Policies: []policyStatus{}, Active: []activeStatus{}, Failures: []failureStatus{}}
	for _, p := range policies.Items {
		ps := policyStatus{Namespace: p.Namespace, Name: p.Name, Schedule: p.Spec.Schedule, Suspended: p.Spec.Suspend,
			LastSuccessful: p.Status.LastSuccessfulBackup, LastSuccessfulTime: timePtr(p.Status.LastSuccessfulTime)}
		ref := p.CreationTimestamp.Time
		if ps.LastSuccessfulTime != nil {
			ref = *ps.LastSuccessfulTime
		}
		info, err := lateness(p.Spec.Schedule, p.Spec.TimeZone, ref, now, grace)
		if err != nil {
			ps.ScheduleError = err.Error()
		} else {
			ps.Interval = shortDuration(info.Interval)
			if !p.Spec.Suspend {
				ps.NextRun = &info.Next
				if info.Late {
					ps.Late, ps.LateBy = true, shortDuration(info.LateBy)
				}
			}
		}
		r.Policies = append(r.Policies, ps)
	}
	recent := func(t *metav1.Time, created metav1.Time) *time.Time {
		at := created.Time
		if t != nil {
			at = t.Time
		}
		if now.Sub(at) > since {
			return nil
		}
		return &at
	}
	for _, b := range backups.Items {
		switch b.Status.Phase {
		case "", v1alpha1.BackupPhasePending, v1alpha1.BackupPhaseRunning:
			if b.DeletionTimestamp != nil {
				continue
			}
			r.Active = append(r.Active, activeStatus{Kind: "Backup", Namespace: b.Namespace, Name: b.Name, Phase: string(cmp.Or(b.Status.Phase, v1alpha1.BackupPhasePending)),
				Progress: b.Status.Progress, Message: b.Status.Message, StartTime: timePtr(b.Status.StartTime)})
		case v1alpha1.BackupPhaseFailed:
			if at := recent(b.Status.CompletionTime, b.CreationTimestamp); at != nil {
				r.Failures = append(r.Failures, failureStatus{Kind: "Backup", Namespace: b.Namespace, Name: b.Name, Time: at, Message: b.Status.Message})
			}
		}
	}
	for _, j := range restores.Items {
		switch j.Status.Phase {
		case "", v1alpha1.RestorePhasePending, v1alpha1.RestorePhaseRunning:
			if j.DeletionTimestamp != nil {
				continue
			}
			r.Active = append(r.Active, activeStatus{Kind: "RestoreJob", Namespace: j.Namespace, Name: j.Name, Phase: string(cmp.Or(j.Status.Phase, v1alpha1.RestorePhasePending)),
				Progress: j.Status.Progress, Message: j.Status.Message, DryRun: j.Spec.DryRun, StartTime: timePtr(j.Status.StartTime)})
		case v1alpha1.RestorePhaseFailed:
			if at := recent(j.Status.CompletionTime, j.CreationTimestamp); at != nil {
				r.Failures = append(r.Failures, failureStatus{Kind: "RestoreJob", Namespace: j.Namespace, Name: j.Name, Time: at, Message: j.Status.Message})
			}
		}
	}
	slices.SortFunc(r.Failures, func(a, b failureStatus) int { return b.Time.Compare(*a.Time) })
	return r, nil
}

// writeStatus renders r as text; bars draws progress bars.
func (o *options) writeStatus(w io.Writer, r *statusReport, bars bool) {
	now := o.now()
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	ns := func(n string) string {
		if o.allNamespaces {
			return n + "\t"
		}
		return ""
	}
	nsHead := ""
	if o.allNamespaces {
		nsHead = "NAMESPACE\t"
	}
	if len(r.Policies) == 0 {
		fmt.Fprintln(w, "No BackupPolicies.")
	} else {
		fmt.Fprintln(tw, nsHead+"POLICY\tSCHEDULE\tLAST SUCCESS\tAGO\tSTATE\tNEXT RUN")
		for _, p := range r.Policies {
			last := cmp.Or(p.LastSuccessful, "-")
			if p.LastSuccessfulTime == nil {
				last = "never"
			}
			agoText := "-"
			if p.LastSuccessfulTime != nil {
				agoText = ago(p.LastSuccessfulTime, now)
			}
			if p.Interval != "" {
				agoText += " (every " + p.Interval + ")"
			}
			state, next := "OK", "-"
			switch {
			case p.ScheduleError != "":
				state = "BAD SCHEDULE: " + p.ScheduleError
			case p.Suspended:
				state = "suspended"
			case p.Late:
				state = "LATE by " + p.LateBy
			}
			if p.NextRun != nil {
				next = ago(p.NextRun, now)
			}
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\n", ns(p.Namespace), p.Name, p.Schedule, last, agoText, state, next)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	if len(r.Active) == 0 {
		fmt.Fprintln(w, "Nothing running.")
	} else {
		fmt.Fprintln(tw, nsHead+"RUNNING\tPHASE\tPROGRESS")
		for _, a := range r.Active {
			what := strings.ToLower(a.Kind) + "/" + a.Name
			if a.DryRun {
				what += " (dry run)"
			}
			progress := a.Message
			if a.Progress != nil {
				if bars {
					progress = progressBarLine(a.Progress, 0, 20)
				} else {
					progress = progressText(a.Progress, 0)
				}
			}
			fmt.Fprintf(tw, "%s%s\t%s\t%s\n", ns(a.Namespace), what, a.Phase, progress)
		}
		tw.Flush()
	}

	if len(r.Failures) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, nsHead+"FAILED\tWHEN\tMESSAGE")
		for _, f := range r.Failures {
			fmt.Fprintf(tw, "%s%s\t%s\t%s\n", ns(f.Namespace), strings.ToLower(f.Kind)+"/"+f.Name, ago(f.Time, now), oneLine(f.Message))
		}
		tw.Flush()
	}
}

// oneLine keeps a message on its table row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
