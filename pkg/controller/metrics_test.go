package controller

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/apis/backup/validation"
)

// series reads one series of the operator's /metrics registry: its value and
// whether it is exported at all.
func series(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// The interval the alert "no success within twice the interval" judges by:
// a regular schedule's interval, and for an irregular one the longer of the
// two gaps around now, so a weekend or a night is never a missed run.
func TestScheduleInterval(t *testing.T) {
	const day = 24 * time.Hour
	cases := []struct {
		schedule, now string
		want          time.Duration
	}{
		{"0 2 * * *", "2026-11-30T02:00:30Z", day},
		{"*/5 * * * *", "2026-11-30T12:03:00Z", 5 * time.Minute},
		{"0 */6 * * *", "2026-11-30T12:00:00Z", 6 * time.Hour}, // at a run: it is the newest
		// Weekdays at 09:00 (2026-11-28 is a Saturday).
		{"0 9 * * 1-5", "2026-11-28T12:00:00Z", 3 * day}, // Friday's run to Monday's
		{"0 9 * * 1-5", "2026-11-30T10:00:00Z", 3 * day}, // Monday: Friday's to Monday's
		{"0 9 * * 1-5", "2026-12-01T10:00:00Z", day},     // Tuesday
		// Every 5 minutes from 09:00 to 17:55.
		{"*/5 9-17 * * *", "2026-11-30T03:00:00Z", 15*time.Hour + 5*time.Minute},
		{"*/5 9-17 * * *", "2026-11-30T09:02:00Z", 15*time.Hour + 5*time.Minute}, // the first run of the day may still run
		{"*/5 9-17 * * *", "2026-11-30T12:01:00Z", 5 * time.Minute},
		// Monthly: November's 30 days and December's 31.
		{"0 0 1 * *", "2026-12-15T00:00:00Z", 31 * day},
	}
	for _, tc := range cases {
		sched, err := validation.ParseSchedule(tc.schedule, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := scheduleInterval(sched, utc(tc.now)); got != tc.want {
			t.Errorf("%q at %s: interval %s, want %s", tc.schedule, tc.now, got, tc.want)
		}
	}
}

// A reconciled policy exports what the alerts need: its newest success (from
// its status, so also after a restart), its creation time, its schedule's
// interval, and its counters at zero. A suspended policy has no interval (it
// is not judged), and a deleted one no gauges.
func TestPolicyMetrics(t *testing.T) {
	p := scheduledAt(newPolicy("metrics", "db"), "2026-11-30T02:00:00Z")
	f := newFixture(t, p, policyBackup(p, "db-old", v1alpha1.BackupPhaseCompleted, "2026-11-29T02:10:00Z"))
	f.syncPolicy("metrics", "db")
	l := map[string]string{"namespace": "metrics", "policy": "db"}
	for name, want := range map[string]float64{
		"backup_operator_last_successful_backup_timestamp_seconds": float64(utc("2026-11-29T02:10:00Z").Unix()),
		"backup_operator_policy_created_timestamp_seconds":         float64(p.CreationTimestamp.Unix()),
		"backup_operator_policy_schedule_interval_seconds":         86400,
	} {
		if v, ok := series(t, name, l); !ok || v != want {
			t.Errorf("%s%v = %v (exported: %v), want %v", name, l, v, ok, want)
		}
	}
	for _, name := range []string{"backup_operator_backups_total", "backup_operator_prunes_total"} {
		for _, result := range []string{"completed", "failed"} {
			if v, ok := series(t, name, map[string]string{"namespace": "metrics", "policy": "db", "result": result}); !ok || v != 0 {
				t.Errorf("%s{result=%q} = %v (exported: %v), want 0 before anything happened", name, result, v, ok)
			}
		}
	}

	// A Backup of the policy fails: counted under its namespace and policy.
	b := policyBackup(p, "db-new", "", "")
	f.cache(b)
	if _, err := f.client.BackupV1alpha1().Backups("metrics").Create(t.Context(), b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.syncBackup("metrics", "db-new") // no target claim
	if got := f.backup("metrics", "db-new"); got.Status.Phase != v1alpha1.BackupPhaseFailed {
		t.Fatalf("phase %q, want Failed", got.Status.Phase)
	}
	if v, _ := series(t, "backup_operator_backups_total", map[string]string{"namespace": "metrics", "policy": "db", "result": "failed"}); v != 1 {
		t.Errorf("backups_total{namespace=metrics,policy=db,result=failed} = %v, want 1", v)
	}

	suspended := f.policy("metrics", "db")
	suspended.Spec.Suspend = true
	f.cache(suspended)
	f.syncPolicy("metrics", "db")
	if _, ok := series(t, "backup_operator_policy_schedule_interval_seconds", l); ok {
		t.Error("a suspended policy still has an interval: it would be judged late")
	}
	if _, ok := series(t, "backup_operator_last_successful_backup_timestamp_seconds", l); !ok {
		t.Error("a suspended policy lost its newest success")
	}

	if err := f.own.Backup().V1alpha1().BackupPolicies().Informer().GetIndexer().Delete(suspended); err != nil {
		t.Fatal(err)
	}
	f.m.syncPolicy(t.Context(), "metrics", "db")
	for _, name := range []string{"backup_operator_last_successful_backup_timestamp_seconds", "backup_operator_policy_created_timestamp_seconds"} {
		if _, ok := series(t, name, l); ok {
			t.Errorf("%s of a deleted policy is still exported", name)
		}
	}
}

// A prune Job is counted once, when it finishes, by its Backup's namespace and
// policy and its outcome: not again while a failed Job stays for its TTL.
func TestPruneCounted(t *testing.T) {
	p := newPolicy("metrics-prune", "db")
	b := policyBackup(p, "db-1", v1alpha1.BackupPhaseCompleted, "2026-11-29T02:10:00Z")
	b.DeletionTimestamp = ptr.To(metav1.NewTime(utc("2026-11-30T02:00:00Z")))
	f := newFixture(t, p, b)
	job := f.m.moverJob(jobSpec{kind: "prune", namespace: "metrics-prune", name: jobName("prune", b, ""), owner: b, ownerKind: "Backup",
		repo: b.Spec.Storage, args: []string{"prune"}})
	ended := func(job *batchv1.Job, typ batchv1.JobConditionType) *batchv1.Job {
		j := job.DeepCopy()
		j.Status.Conditions = []batchv1.JobCondition{{Type: typ, Status: corev1.ConditionTrue}}
		return j
	}
	count := func(result string) float64 {
		v, _ := series(t, "backup_operator_prunes_total", map[string]string{"namespace": "metrics-prune", "policy": "db", "result": result})
		return v
	}
	failed := ended(job, batchv1.JobFailed)
	f.m.jobUpdated(job, failed)
	f.m.jobUpdated(failed, failed) // a resync, or a later change of the finished Job
	if got := count("failed"); got != 1 {
		t.Errorf("prunes_total{result=failed} = %v after one failed Job, want 1", got)
	}
	f.m.jobUpdated(job, ended(job, batchv1.JobComplete))
	if got := count("completed"); got != 1 {
		t.Errorf("prunes_total{result=completed} = %v, want 1", got)
	}
	// Other Jobs are not prunes.
	backupJob := job.DeepCopy()
	backupJob.Labels[v1alpha1.JobKindLabel] = "backup"
	f.m.jobUpdated(backupJob, ended(backupJob, batchv1.JobFailed))
	if got := count("failed"); got != 1 {
		t.Errorf("a backup Job counted as a prune: prunes_total{result=failed} = %v", got)
	}
}
