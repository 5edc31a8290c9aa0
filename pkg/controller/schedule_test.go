package controller

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// policyBackup is a Backup of the policy p in phase, finished (when it is)
// at the RFC 3339 time done.
func policyBackup(p *v1alpha1.BackupPolicy, name string, phase v1alpha1.BackupPhase, done string) *v1alpha1.Backup {
	b := newBackup(p.Namespace, name, "uid-"+name, p.Spec.Target.Namespace)
	b.Labels = map[string]string{v1alpha1.PolicyLabel: p.Name}
	b.Spec.PolicyName = p.Name
	b.Status.Phase = phase
	if done != "" {
		b.Status.CompletionTime = ptr.To(metav1.NewTime(utc(done)))
		b.CreationTimestamp = metav1.NewTime(utc(done).Add(-10 * time.Minute))
	}
	if phase == v1alpha1.BackupPhaseCompleted {
		b.Status.SnapshotID = snapshotID
	}
	return b
}

// scheduledAt marks the policy's run at the RFC 3339 time as handled.
func scheduledAt(p *v1alpha1.BackupPolicy, s string) *v1alpha1.BackupPolicy {
	p.Status.LastScheduleTime = ptr.To(metav1.NewTime(utc(s)))
	return p
}

// The policy's status says what a user asks about it: the newest successful
// Backup (by completion, not by name or list order), the Backups in progress
// (sorted; finished and deleting ones are not), when the next run is, and
// Ready.
func TestPolicyStatus(t *testing.T) {
	p := scheduledAt(newPolicy("prod", "db"), "2026-11-30T02:00:00Z")
	p.Spec.Retention.KeepLast = ptr.To[int32](10)
	deleting := policyBackup(p, "db-deleting", v1alpha1.BackupPhasePending, "")
	deleting.DeletionTimestamp = ptr.To(metav1.NewTime(utc("2026-11-30T01:59:00Z")))
	f := newFixture(t, p,
		policyBackup(p, "db-a-newest", v1alpha1.BackupPhaseCompleted, "2026-11-29T02:10:00Z"),
		policyBackup(p, "db-z-older", v1alpha1.BackupPhaseCompleted, "2026-11-28T02:10:00Z"),
		policyBackup(p, "db-failed", v1alpha1.BackupPhaseFailed, "2026-11-29T03:00:00Z"),
		policyBackup(p, "db-running", v1alpha1.BackupPhaseRunning, ""),
		policyBackup(p, "db-new", "", ""),
		deleting)
	res := f.syncPolicy("prod", "db")
	got := f.policy("prod", "db").Status
	if got.LastSuccessfulBackup != "db-a-newest" || got.LastSuccessfulTime == nil || !got.LastSuccessfulTime.Time.Equal(utc("2026-11-29T02:10:00Z")) {
		t.Errorf("lastSuccessfulBackup %q at %v, want db-a-newest at 2026-11-29T02:10:00Z", got.LastSuccessfulBackup, got.LastSuccessfulTime)
	}
	if strings.Join(got.Active, " ") != "db-new db-running" {
		t.Errorf("active %q, want the Backup without a phase and the Running one", got.Active)
	}
	if got.NextScheduleTime == nil || !got.NextScheduleTime.Time.Equal(utc("2026-12-01T02:00:00Z")) {
		t.Errorf("nextScheduleTime %v, want 2026-12-01T02:00:00Z", got.NextScheduleTime)
	}
	c := condition(got.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "Scheduled" || c.Message != "next run at 2026-12-01T02:00:00Z" || got.ObservedGeneration != 1 {
		t.Errorf("Ready %+v observedGeneration %d, want True saying when the next run is", c, got.ObservedGeneration)
	}
	if want := utc("2026-12-01T02:00:00Z").Sub(f.now); res.after < want || res.after > want+time.Second {
		t.Errorf("requeue after %s, want about %s", res.after, want)
	}
	if b := f.policyBackups("prod", "db"); len(b) != 6 {
		t.Errorf("Backups %q: nothing was due, nothing is created or deleted", b)
	}
}

// A schedule (or time zone) that cannot be parsed makes the policy not Ready
// with the reason, and no Backup is created.
func TestInvalidSchedule(t *testing.T) {
	for _, tc := range []struct {
		name, schedule string
		tz             *string
		msg            string
	}{
		{"not cron", "every night", nil, "every"},
		{"time zone in the schedule", "CRON_TZ=Europe/Berlin 0 2 * * *", nil, "set spec.timeZone instead"},
		{"unknown zone", "0 2 * * *", ptr.To("Mars/Olympus_Mons"), "Mars/Olympus_Mons"},
		{"Local", "0 2 * * *", ptr.To("Local"), "depends on the server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPolicy("prod", "db")
			p.Spec.Schedule, p.Spec.TimeZone = tc.schedule, tc.tz
			f := newFixture(t, p, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
			res := f.syncPolicy("prod", "db")
			got := f.policy("prod", "db").Status
			c := condition(got.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "InvalidSchedule" || !strings.Contains(c.Message, tc.msg) {
				t.Errorf("Ready %+v, want False: InvalidSchedule mentioning %q", c, tc.msg)
			}
			if b := f.policyBackups("prod", "db"); len(b) != 0 || got.NextScheduleTime != nil || res.after != 0 {
				t.Errorf("Backups %q next %v requeue %s, want nothing scheduled", b, got.NextScheduleTime, res.after)
			}
		})
	}
}

// A suspended policy creates no scheduled Backup and has no next run; on
// resuming, only the newest run that fell due is created.
func TestSuspendedPolicy(t *testing.T) {
	p := newPolicy("prod", "db")
	p.Spec.Suspend = true
	f := newFixture(t, p, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncPolicy("prod", "db")
	got := f.policy("prod", "db")
	c := condition(got.Status.Conditions, v1alpha1.ConditionReady)
	if b := f.policyBackups("prod", "db"); len(b) != 0 || got.Status.NextScheduleTime != nil || got.Status.LastScheduleTime != nil {
		t.Errorf("Backups %q next %v last %v, want nothing scheduled while suspended", b, got.Status.NextScheduleTime, got.Status.LastScheduleTime)
	}
	if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "suspended") {
		t.Errorf("Ready %+v, want it to say the policy is suspended", c)
	}

	got.Spec.Suspend = false
	f.cache(got)
	f.now = utc("2026-12-02T02:00:30Z")
	f.syncPolicy("prod", "db")
	if b := f.policyBackups("prod", "db"); strings.Join(b, " ") != "db-202612020200" {
		t.Errorf("Backups %q after resuming, want only the newest run db-202612020200", b)
	}
}

// startingDeadlineSeconds: a run found later than the deadline is skipped,
// counted in missedRuns once (not again on the next sync), with an event; a
// run within the deadline is created.
func TestStartingDeadline(t *testing.T) {
	p := newPolicy("prod", "db")
	p.Spec.StartingDeadlineSeconds = ptr.To[int64](10) // the fixture's clock is 30s after the run
	f := newFixture(t, p, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncPolicy("prod", "db")
	f.syncPolicy("prod", "db")
	got := f.policy("prod", "db").Status
	if b := f.policyBackups("prod", "db"); len(b) != 0 || got.MissedRuns != 1 {
		t.Errorf("Backups %q missedRuns %d, want the late run skipped and counted once", b, got.MissedRuns)
	}
	if got.LastScheduleTime == nil || !got.LastScheduleTime.Time.Equal(utc("2026-11-30T02:00:00Z")) {
		t.Errorf("lastScheduleTime %v, want the skipped run's time", got.LastScheduleTime)
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Warning MissedSchedule") || !strings.Contains(ev, "past startingDeadlineSeconds=10") {
		t.Errorf("no event saying the run was late: %s", ev)
	}

	p = newPolicy("prod", "db")
	p.Spec.StartingDeadlineSeconds = ptr.To[int64](60)
	f = newFixture(t, p, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncPolicy("prod", "db")
	if b := f.policyBackups("prod", "db"); strings.Join(b, " ") != "db-202611300200" {
		t.Errorf("Backups %q, want the run within its deadline created", b)
	}
}

// concurrencyPolicy Forbid (the default) skips a run while a Backup of the
// policy is active, and counts it missed; Allow creates it anyway.
func TestConcurrencyPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy     v1alpha1.ConcurrencyPolicy
		wantNew    bool
		wantMissed int64
	}{{"", false, 1}, {v1alpha1.ForbidConcurrent, false, 1}, {v1alpha1.AllowConcurrent, true, 0}} {
		t.Run("policy "+string(tc.policy), func(t *testing.T) {
			p := scheduledAt(newPolicy("prod", "db"), "2026-11-29T02:00:00Z")
			p.Spec.ConcurrencyPolicy = tc.policy
			f := newFixture(t, p, policyBackup(p, "db-202611290200", v1alpha1.BackupPhaseRunning, ""), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
			f.syncPolicy("prod", "db")
			got := f.policy("prod", "db").Status
			created := strings.Contains(strings.Join(f.policyBackups("prod", "db"), " "), "db-202611300200")
			if created != tc.wantNew || got.MissedRuns != tc.wantMissed {
				t.Errorf("created %v missedRuns %d, want %v and %d", created, got.MissedRuns, tc.wantNew, tc.wantMissed)
			}
			wantActive := "db-202611290200"
			if tc.wantNew {
				wantActive += " db-202611300200"
			}
			if strings.Join(got.Active, " ") != wantActive {
				t.Errorf("active %q, want %q", got.Active, wantActive)
			}
			if ev := strings.Join(f.drainEvents(), "\n"); !tc.wantNew && !strings.Contains(ev, "Backup db-202611290200 is still active (concurrencyPolicy: Forbid)") {
				t.Errorf("no event naming the active Backup: %s", ev)
			}
		})
	}
}

// Runs missed while the operator was down are not made up: only the newest
// due run is created, the others are counted in missedRuns.
func TestMissedRunsWhileDown(t *testing.T) {
	p := scheduledAt(newPolicy("prod", "db"), "2026-11-27T02:00:00Z")
	p.CreationTimestamp = metav1.NewTime(utc("2026-11-01T00:00:00Z"))
	f := newFixture(t, p, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncPolicy("prod", "db")
	got := f.policy("prod", "db").Status
	if b := f.policyBackups("prod", "db"); strings.Join(b, " ") != "db-202611300200" || got.MissedRuns != 2 {
		t.Errorf("Backups %q missedRuns %d, want only db-202611300200 and the runs of Nov 28 and 29 missed", b, got.MissedRuns)
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "2 scheduled runs were missed") {
		t.Errorf("no event about the missed runs: %s", ev)
	}
}

// A schedule in a time zone follows robfig/cron across daylight saving
// changes: "30 2 * * *" in Europe/Berlin has no run on 2026-03-29 (02:30 does
// not exist that day; the clocks jump from 02:00 to 03:00) and nothing is
// counted missed; on 2026-10-25, when 02:30 happens twice, it runs twice.
// Backup names are in UTC, so the two runs get distinct names.
func TestScheduleAcrossDaylightSaving(t *testing.T) {
	berlin := func(last string) *v1alpha1.BackupPolicy {
		p := scheduledAt(newPolicy("prod", "db"), last)
		p.CreationTimestamp = metav1.NewTime(utc("2026-03-01T00:00:00Z"))
		p.Spec.Schedule, p.Spec.TimeZone = "30 2 * * *", ptr.To("Europe/Berlin")
		p.Spec.ConcurrencyPolicy = v1alpha1.AllowConcurrent
		return p
	}
	objs := func(p *v1alpha1.BackupPolicy) []runtime.Object {
		return []runtime.Object{p, boundPVC("prod", "data"), boundPVC("prod", "backup-repo")}
	}

	t.Run("spring forward", func(t *testing.T) {
		f := newFixture(t, objs(berlin("2026-03-28T01:30:00Z"))...) // 02:30 CET on the 28th
		f.now = utc("2026-03-29T12:00:00Z")
		f.syncPolicy("prod", "db")
		got := f.policy("prod", "db").Status
		if b := f.policyBackups("prod", "db"); len(b) != 0 || got.MissedRuns != 0 {
			t.Errorf("Backups %q missedRuns %d on 2026-03-29, want no run and nothing missed", b, got.MissedRuns)
		}
		if got.NextScheduleTime == nil || !got.NextScheduleTime.Time.Equal(utc("2026-03-30T00:30:00Z")) {
			t.Errorf("nextScheduleTime %v, want 2026-03-30T00:30:00Z (02:30 CEST)", got.NextScheduleTime)
		}
		f.now = utc("2026-03-30T00:30:30Z")
		f.syncPolicy("prod", "db")
		if b := f.policyBackups("prod", "db"); strings.Join(b, " ") != "db-202603300030" || f.policy("prod", "db").Status.MissedRuns != 0 {
			t.Errorf("Backups %q, want db-202603300030 and nothing missed", b)
		}
	})
	t.Run("fall back", func(t *testing.T) {
		f := newFixture(t, objs(berlin("2026-10-24T00:30:00Z"))...) // 02:30 CEST on the 24th
		f.now = utc("2026-10-25T00:30:30Z")                         // 02:30 CEST
		f.syncPolicy("prod", "db")
		if next := f.policy("prod", "db").Status.NextScheduleTime; next == nil || !next.Time.Equal(utc("2026-10-25T01:30:00Z")) {
			t.Errorf("nextScheduleTime %v, want 2026-10-25T01:30:00Z (02:30 CET, the same wall time again)", next)
		}
		f.now = utc("2026-10-25T01:30:30Z") // 02:30 CET
		f.syncPolicy("prod", "db")
		if b := f.policyBackups("prod", "db"); strings.Join(b, " ") != "db-202610250030 db-202610250130" {
			t.Errorf("Backups %q, want both runs of 2026-10-25", b)
		}
	})
}

// A Backup of the scheduled name that is not the policy's is a missed run
// also when the cache has not seen it yet (created a moment ago): it is
// counted in missedRuns and is not listed as the policy's active Backup, as
// when the cache has it (TestScheduledNameTakenByAnotherBackup).
func TestScheduledNameTakenBeforeTheCacheSawIt(t *testing.T) {
	f := newFixture(t, newPolicy("prod", "db"), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	if err := f.client.Tracker().Add(newBackup("prod", "db-202611300200", "someone-else", "prod")); err != nil {
		t.Fatal(err)
	}
	f.syncPolicy("prod", "db")
	got := f.policy("prod", "db").Status
	if got.MissedRuns != 1 || len(got.Active) != 0 {
		t.Errorf("missedRuns %d active %q, want the run missed and nothing active", got.MissedRuns, got.Active)
	}
}

// An on-demand Backup whose name is taken by a Backup that is not the
// policy's leaves that Backup alone and says so.
func TestTriggerNameTaken(t *testing.T) {
	p := scheduledAt(newPolicy("prod", "db"), "2026-11-30T02:00:00Z")
	p.Annotations = map[string]string{v1alpha1.TriggerAnnotation: "now"}
	taken := newBackup("prod", "db-manual-"+shortHash("now"), "someone-else", "prod")
	f := newFixture(t, p, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	if err := f.client.Tracker().Add(taken); err != nil {
		t.Fatal(err)
	}
	f.syncPolicy("prod", "db")
	if got := f.backup("prod", taken.Name); got.Spec.PolicyName != "" || got.UID != "someone-else" {
		t.Errorf("the other Backup was changed: %+v", got)
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Warning BackupNameTaken") {
		t.Errorf("no BackupNameTaken event: %s", ev)
	}
}
