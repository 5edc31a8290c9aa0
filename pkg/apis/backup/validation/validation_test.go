package validation

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/backup-operator/pkg/apis/backup"
)

func int32p(v int32) *int32 { return &v }
func strp(s string) *string { return &s }

func validPolicy() *backup.BackupPolicy {
	return &backup.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "database-backups", Namespace: "default"},
		Spec: backup.BackupPolicySpec{
			Schedule:          "0 2 * * *",
			Target:            backup.VolumeTarget{PVCName: "postgres-data", Namespace: "production"},
			Storage:           backup.RepositoryStorage{PVCName: "backup-repo"},
			Retention:         backup.RetentionPolicy{KeepLast: int32p(7)},
			ConcurrencyPolicy: backup.ForbidConcurrent,
		},
	}
}

func TestValidateBackupPolicy(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(p *backup.BackupPolicy)
		wantErr string // field path of the expected error; "" means valid
	}{
		{"canonical", func(p *backup.BackupPolicy) {}, ""},
		{"descriptor", func(p *backup.BackupPolicy) { p.Spec.Schedule = "@daily" }, ""},
		{"every", func(p *backup.BackupPolicy) { p.Spec.Schedule = "@every 30m" }, ""},
		{"ranges and steps", func(p *backup.BackupPolicy) { p.Spec.Schedule = "*/15 1-5 * JAN-MAR MON-FRI" }, ""},
		{"time zone", func(p *backup.BackupPolicy) { p.Spec.TimeZone = strp("Europe/Berlin") }, ""},
		{"empty schedule", func(p *backup.BackupPolicy) { p.Spec.Schedule = " " }, "spec.schedule"},
		{"minute out of range", func(p *backup.BackupPolicy) { p.Spec.Schedule = "61 2 * * *" }, "spec.schedule"},
		{"six fields", func(p *backup.BackupPolicy) { p.Spec.Schedule = "0 0 2 * * *" }, "spec.schedule"},
		{"unknown descriptor", func(p *backup.BackupPolicy) { p.Spec.Schedule = "@fortnightly" }, "spec.schedule"},
		{"zone in schedule", func(p *backup.BackupPolicy) { p.Spec.Schedule = "CRON_TZ=UTC 0 2 * * *" }, "spec.schedule"},
		{"unknown zone", func(p *backup.BackupPolicy) { p.Spec.TimeZone = strp("Mars/Olympus") }, "spec.timeZone"},
		{"Local zone", func(p *backup.BackupPolicy) { p.Spec.TimeZone = strp("Local") }, "spec.timeZone"},
		{"negative keepLast", func(p *backup.BackupPolicy) { p.Spec.Retention.KeepLast = int32p(-1) }, "spec.retention.keepLast"},
		{"negative keepFailed", func(p *backup.BackupPolicy) { p.Spec.Retention.KeepFailed = int32p(-2) }, "spec.retention.keepFailed"},
		{"no keep", func(p *backup.BackupPolicy) { p.Spec.Retention = backup.RetentionPolicy{KeepFailed: int32p(3)} }, "spec.retention"},
		{"keepDaily alone", func(p *backup.BackupPolicy) { p.Spec.Retention = backup.RetentionPolicy{KeepDaily: int32p(7)} }, ""},
		{"missing pvc", func(p *backup.BackupPolicy) { p.Spec.Target.PVCName = "" }, "spec.target.pvcName"},
		{"bad pvc name", func(p *backup.BackupPolicy) { p.Spec.Target.PVCName = "Postgres_Data" }, "spec.target.pvcName"},
		{"bad namespace", func(p *backup.BackupPolicy) { p.Spec.Target.Namespace = "prod.eu" }, "spec.target.namespace"},
		{"bad storage", func(p *backup.BackupPolicy) { p.Spec.Storage.PVCName = "-repo" }, "spec.storage.pvcName"},
		{"bad concurrency", func(p *backup.BackupPolicy) { p.Spec.ConcurrencyPolicy = "Replace" }, "spec.concurrencyPolicy"},
		{"zero deadline", func(p *backup.BackupPolicy) { d := int64(0); p.Spec.StartingDeadlineSeconds = &d }, "spec.startingDeadlineSeconds"},
		{"policy name with dot", func(p *backup.BackupPolicy) { p.Name = "db.backups" }, "metadata.name"},
		{"policy name too long", func(p *backup.BackupPolicy) { p.Name = strings.Repeat("a", 51) }, "metadata.name"},
		{"mover as a user", func(p *backup.BackupPolicy) {
			p.Spec.MoverSecurityContext = &backup.MoverSecurityContext{RunAsUser: int64p(1000), RunAsGroup: int64p(0), FSGroup: int64p(2000)}
		}, ""},
		{"mover as root", func(p *backup.BackupPolicy) {
			p.Spec.MoverSecurityContext = &backup.MoverSecurityContext{RunAsUser: int64p(0)}
		}, "spec.moverSecurityContext.runAsUser"},
		{"negative fsGroup", func(p *backup.BackupPolicy) {
			p.Spec.MoverSecurityContext = &backup.MoverSecurityContext{FSGroup: int64p(-1)}
		}, "spec.moverSecurityContext.fsGroup"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validPolicy()
			tc.mutate(p)
			errs := ValidateBackupPolicy(p)
			if tc.wantErr == "" {
				if len(errs) != 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("want an error on %s, got none", tc.wantErr)
			}
			for _, e := range errs {
				if e.Field != tc.wantErr {
					t.Errorf("error on %s, want %s: %v", e.Field, tc.wantErr, e)
				}
			}
		})
	}
}

func TestErrorsSayWhatToDo(t *testing.T) {
	p := validPolicy()
	p.Spec.Schedule = "61 2 * * *"
	p.Spec.Retention = backup.RetentionPolicy{}
	msg := ValidateBackupPolicy(p).ToAggregate().Error()
	for _, want := range []string{"use five fields", "for example keepLast: 7"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks advice %q", msg, want)
		}
	}
}

func TestScheduleRunsInItsTimeZone(t *testing.T) {
	sched, err := ParseSchedule("0 2 * * *", strp("Europe/Berlin"))
	if err != nil {
		t.Fatal(err)
	}
	// 2026-11-26 00:30 UTC is 01:30 in Berlin; the next 02:00 Berlin is 01:00 UTC.
	from := mustTime(t, "2026-11-26T00:30:00Z")
	if got, want := sched.Next(from).UTC(), mustTime(t, "2026-11-26T01:00:00Z"); !got.Equal(want) {
		t.Errorf("next run %s, want %s", got, want)
	}
}

func TestBackupValidation(t *testing.T) {
	b := &backup.Backup{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"}}
	if errs := ValidateBackup(b); len(errs) != 1 || errs[0].Field != "spec.target.pvcName" {
		t.Errorf("empty Backup: %v", errs)
	}
	b.Spec.PolicyName = "p"
	b.Spec.Target = backup.VolumeTarget{PVCName: "data", Namespace: "ns"}
	if errs := ValidateBackup(b); len(errs) != 0 {
		t.Errorf("valid Backup: %v", errs)
	}
	changed := b.DeepCopy()
	changed.Spec.Target.PVCName = "other"
	changed.ResourceVersion = "1"
	b.ResourceVersion = "1"
	if errs := ValidateBackupUpdate(changed, b); len(errs) != 1 || errs[0].Field != "spec" {
		t.Errorf("spec change: %v", errs)
	}
	if errs := ValidateBackupUpdate(b.DeepCopy(), b); len(errs) != 0 {
		t.Errorf("no-op update: %v", errs)
	}
}

func TestRestoreJobValidation(t *testing.T) {
	valid := func() *backup.RestoreJob {
		return &backup.RestoreJob{
			ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns", ResourceVersion: "1"},
			Spec:       backup.RestoreJobSpec{BackupName: "b", Target: backup.RestoreTarget{PVCName: "data"}, Mode: backup.RestoreModeMerge},
		}
	}
	cases := []struct {
		name    string
		mutate  func(r *backup.RestoreJob)
		wantErr string
	}{
		{"valid", func(r *backup.RestoreJob) {}, ""},
		{"no backup", func(r *backup.RestoreJob) { r.Spec.BackupName = "" }, "spec.backupName"},
		{"no target", func(r *backup.RestoreJob) { r.Spec.Target.PVCName = "" }, "spec.target.pvcName"},
		{"bad mode", func(r *backup.RestoreJob) { r.Spec.Mode = "Replace" }, "spec.mode"},
		{"zero size", func(r *backup.RestoreJob) {
			q := resource.MustParse("0")
			r.Spec.Target.NewPVC = &backup.NewPVCSpec{Size: &q}
		}, "spec.target.newPVC.size"},
		{"bad access mode", func(r *backup.RestoreJob) {
			r.Spec.Target.NewPVC = &backup.NewPVCSpec{AccessModes: []string{"ReadOnlyMany"}}
		}, "spec.target.newPVC.accessModes[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := valid()
			tc.mutate(r)
			errs := ValidateRestoreJob(r)
			if tc.wantErr == "" && len(errs) != 0 || tc.wantErr != "" && (len(errs) != 1 || errs[0].Field != tc.wantErr) {
				t.Errorf("want error on %q, got %v", tc.wantErr, errs)
			}
		})
	}
	old := valid()
	changed := valid()
	changed.Spec.DryRun = true
	if errs := ValidateRestoreJobUpdate(changed, old); len(errs) != 1 || errs[0].Field != "spec" {
		t.Errorf("spec change: %v", errs)
	}
	q1, q2 := resource.MustParse("1Gi"), resource.MustParse("1024Mi")
	a, b := valid(), valid()
	a.Spec.Target.NewPVC = &backup.NewPVCSpec{Size: &q1}
	b.Spec.Target.NewPVC = &backup.NewPVCSpec{Size: &q2}
	if errs := ValidateRestoreJobUpdate(a, b); len(errs) != 0 {
		t.Errorf("equal quantities in different units count as a change: %v", errs)
	}
}

func mustTime(t *testing.T, s string) (tm time.Time) {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func int64p(v int64) *int64 { return &v }
