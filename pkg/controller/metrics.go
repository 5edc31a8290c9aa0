package controller

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// Metrics are served on backup-apiserver's /metrics.
var (
	backupsTotal = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "backup_operator", Name: "backups_total", Help: "Backups finished, by result (completed or failed).", StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
	restoresTotal = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "backup_operator", Name: "restores_total", Help: "Restores finished, by result (completed or failed).", StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
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
)

var registerOnce sync.Once

func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(backupsTotal, restoresTotal, backupDuration, backupBytes, lastSuccess, missedSchedules, activeJobs, hookDuration, hookFailures)
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
