package controller

import (
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// Metrics are served on backup-apiserver's /metrics. The alerting rules in
// artifacts/monitoring read them: a label set they use is part of their
// contract.
var (
	backupsTotal = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "backup_operator", Name: "backups_total", Help: "Backups finished, by namespace, policy (empty for a Backup without one) and result (completed or failed).", StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "policy", "result"})
	restoresTotal = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "backup_operator", Name: "restores_total", Help: "Restores finished, by namespace of the RestoreJob and result (completed or failed).", StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "result"})
	backupDuration = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Namespace: "backup_operator", Name: "backup_duration_seconds", Help: "Wall time of completed backups.",
		Buckets: metrics.ExponentialBuckets(1, 2, 16), StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "policy"})
	backupBytes = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "backup_operator", Name: "backup_bytes_total", Help: "Bytes of data backed up (total) and newly stored (new).", StabilityLevel: metrics.ALPHA,
	}, []string{"kind"})
	lastSuccess = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace: "backup_operator", Name: "last_successful_backup_timestamp_seconds", Help: "Completion time of the newest successful backup of each policy.", StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "policy"})
	missedSchedules = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "backup_operator", Name: "missed_schedules_total", Help: "Scheduled runs skipped (too late, or forbidden by concurrencyPolicy).", StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "policy", "reason"})
	activeJobs = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace: "backup_operator", Name: "active_jobs", Help: "Data mover Jobs running, by kind (backup, restore, prune).", StabilityLevel: metrics.ALPHA,
	}, []string{"kind"})
	policyInterval = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace: "backup_operator", Name: "policy_schedule_interval_seconds",
		Help: "The interval of each policy's schedule around now: the longer of the gap between its two newest due runs and the gap from the newest to the next " +
			"(both the interval, for a regular schedule). Absent for a suspended policy.", StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "policy"})
	policyCreated = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace: "backup_operator", Name: "policy_created_timestamp_seconds", Help: "Creation time of each policy.", StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "policy"})
	prunesTotal = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "backup_operator", Name: "prunes_total",
		Help: "Prune Jobs finished (removing a deleted Backup's snapshot from its repository), by namespace and policy of the Backup and result (completed or failed).", StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "policy", "result"})
)

var registerOnce sync.Once

func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(backupsTotal, restoresTotal, backupDuration, backupBytes, lastSuccess, missedSchedules, activeJobs, hookDuration, hookFailures,
			policyInterval, policyCreated, prunesTotal)
	})
}

// Hook metrics.
var (
	hookDuration = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Namespace: "backup_operator", Name: "hook_duration_seconds", Help: "Wall time of hook commands, by kind (Backup or RestoreJob), stage (pre or post) and phase (Succeeded, Failed, TimedOut).",
		Buckets: metrics.ExponentialBuckets(0.1, 2, 16), StabilityLevel: metrics.ALPHA,
	}, []string{"kind", "stage", "phase"})
	hookFailures = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "backup_operator", Name: "hook_failures_total", Help: "Hook actions that failed, timed out or were interrupted, by kind (Backup or RestoreJob) and stage (pre or post).", StabilityLevel: metrics.ALPHA,
	}, []string{"kind", "stage"})
)

// observePolicyMetrics sets the gauges of a reconciled policy from its status
// and schedule (status.lastSuccessfulTime, not only the Backups this process
// saw complete, so a new leader reports every policy at once), and creates its
// counters at zero: a counter first exported at 1 shows Prometheus no
// increase.
func observePolicyMetrics(p *v1alpha1.BackupPolicy, status *v1alpha1.BackupPolicyStatus, sched cron.Schedule, now time.Time) {
	ns, name := p.Namespace, p.Name
	policyCreated.WithLabelValues(ns, name).Set(float64(p.CreationTimestamp.Unix()))
	if t := status.LastSuccessfulTime; t != nil {
		lastSuccess.WithLabelValues(ns, name).Set(float64(t.Unix()))
	} else {
		// A policy deleted and created again under its name has no success
		// of its own: it does not inherit the old one's.
		lastSuccess.DeleteLabelValues(ns, name)
	}
	if interval := scheduleInterval(sched, now); interval > 0 && !p.Spec.Suspend {
		policyInterval.WithLabelValues(ns, name).Set(interval.Seconds())
	} else {
		policyInterval.DeleteLabelValues(ns, name) // not judged: nothing is due
	}
	for _, result := range []string{"completed", "failed"} {
		backupsTotal.WithLabelValues(ns, name, result)
		prunesTotal.WithLabelValues(ns, name, result)
	}
}

// forgetPolicyMetrics drops the gauges of a policy that is gone (or being
// deleted), so nothing judges it. Its counters stay: they count what happened.
func forgetPolicyMetrics(ns, name string) {
	lastSuccess.DeleteLabelValues(ns, name)
	policyInterval.DeleteLabelValues(ns, name)
	policyCreated.DeleteLabelValues(ns, name)
}

// resetPolicyGauges drops every policy's gauges when the controllers stop:
// only the holder of the Lease reports what the policies look like, so a
// replica that lost it leaves no stale value behind.
func resetPolicyGauges() {
	lastSuccess.Reset()
	policyInterval.Reset()
	policyCreated.Reset()
}

// scheduleInterval is the interval sched promises around now: the longer of
// the gap between its two newest runs at or before now and the gap from the
// newer of them to the next run. For a regular schedule both are its interval;
// for an irregular one ("0 9 * * 1-5") the longer gap keeps a weekend, or the
// night of a schedule that runs only by day, from counting as a missed run.
// Zero when the schedule has no next run.
func scheduleInterval(sched cron.Schedule, now time.Time) time.Duration {
	next := sched.Next(now)
	after := sched.Next(next)
	if next.IsZero() || !after.After(next) {
		return 0
	}
	// cron schedules only go forward: walk from far enough back to see two
	// runs, further each time (at most maxCatchUp steps in all).
	steps := 0
	for back := 3 * after.Sub(next); steps < maxCatchUp; back *= 2 {
		var newest, before time.Time
		for t := sched.Next(now.Add(-back)); !t.IsZero() && !t.After(now) && steps < maxCatchUp; t = sched.Next(t) {
			before, newest = newest, t
			steps++
		}
		if !before.IsZero() {
			return max(newest.Sub(before), next.Sub(newest))
		}
		if back > 10*365*24*time.Hour {
			break
		}
	}
	return next.Sub(now) // no two runs in ten years: as good as never
}

// countPrune counts a prune Job that has just finished, by the namespace and
// policy of the Backup whose snapshot it removes (the Backup stays until its
// controller has read the outcome). Called once per Job, on the update that
// finishes it, so a failed Job that stays for its TTL counts once.
func (m *Manager) countPrune(job *batchv1.Job) {
	if job.Labels[v1alpha1.JobKindLabel] != "prune" {
		return
	}
	ns, name, err := cache.SplitMetaNamespaceKey(job.Annotations[v1alpha1.OwnerAnnotation])
	if err != nil || ns == "" {
		ns = job.Namespace
	}
	policy := ""
	if b, err := m.backups.Backups(ns).Get(name); err == nil {
		policy = b.Spec.PolicyName
	}
	result := "failed"
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			result = "completed"
		}
	}
	prunesTotal.WithLabelValues(ns, policy, result).Inc()
}
