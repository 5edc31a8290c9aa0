package validation

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

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

func s3Policy() *backup.BackupPolicy {
	p := validPolicy()
	p.Spec.Storage = backup.RepositoryStorage{
		S3: &backup.S3Storage{Endpoint: "http://minio.backup-storage.svc:9000", Bucket: "backups", Prefix: "production/postgres-data",
			Region: "us-east-1", CredentialsSecretRef: backup.LocalSecretReference{Name: "s3-credentials"}},
		Encryption:   &backup.RepositoryEncryption{SecretRef: backup.LocalSecretReference{Name: "repo-password"}},
		Immutability: &backup.Immutability{Mode: backup.ImmutabilityGovernance},
	}
	return p
}

func TestValidateStorage(t *testing.T) {
	https := func(s *backup.S3Storage) { s.Endpoint = "https://s3.eu-central-1.amazonaws.com" }
	cases := []struct {
		name    string
		mutate  func(s *backup.RepositoryStorage)
		wantErr string // field path of every expected error; "" means valid
		advice  string // part of the message that says what to do
	}{
		{"the issue's shape", func(s *backup.RepositoryStorage) {}, "", ""},
		{"minimal s3", func(s *backup.RepositoryStorage) {
			*s = backup.RepositoryStorage{S3: &backup.S3Storage{Endpoint: "https://s3.amazonaws.com", Bucket: "b12", CredentialsSecretRef: backup.LocalSecretReference{Name: "c"}}}
		}, "", ""},
		{"compliance", func(s *backup.RepositoryStorage) { s.Immutability.Mode = backup.ImmutabilityCompliance }, "", ""},
		{"https with CA", func(s *backup.RepositoryStorage) {
			https(s.S3)
			s.S3.CASecretRef = &backup.LocalSecretReference{Name: "s3-ca"}
		}, "", ""},
		{"https insecure", func(s *backup.RepositoryStorage) { https(s.S3); s.S3.InsecureSkipTLSVerify = true }, "", ""},
		{"trailing slash on endpoint", func(s *backup.RepositoryStorage) { s.S3.Endpoint = "https://s3.example.com/" }, "", ""},
		{"IPv6 endpoint", func(s *backup.RepositoryStorage) { s.S3.Endpoint = "http://[::1]:9000" }, "", ""},
		{"encrypted claim", func(s *backup.RepositoryStorage) {
			*s = backup.RepositoryStorage{PVCName: "backup-repo", Encryption: s.Encryption}
		}, "", ""},
		{"both claim and s3", func(s *backup.RepositoryStorage) { s.PVCName = "backup-repo" }, "spec.storage.pvcName", "remove pvcName to use S3"},
		{"no endpoint", func(s *backup.RepositoryStorage) { s.S3.Endpoint = "" }, "spec.storage.s3.endpoint", "for example"},
		{"ftp endpoint", func(s *backup.RepositoryStorage) { s.S3.Endpoint = "ftp://minio:9000" }, "spec.storage.s3.endpoint", "https://"},
		{"no scheme", func(s *backup.RepositoryStorage) { s.S3.Endpoint = "minio.backup-storage.svc:9000" }, "spec.storage.s3.endpoint", "https://"},
		{"uppercase scheme", func(s *backup.RepositoryStorage) { s.S3.Endpoint = "HTTP://minio:9000" }, "spec.storage.s3.endpoint", "lowercase"},
		{"endpoint with path", func(s *backup.RepositoryStorage) { s.S3.Endpoint = "http://minio:9000/backups" }, "spec.storage.s3.endpoint", "put the bucket in bucket"},
		{"endpoint with query", func(s *backup.RepositoryStorage) { s.S3.Endpoint = "http://minio:9000?x=1" }, "spec.storage.s3.endpoint", "scheme, host and optional port"},
		{"endpoint with user", func(s *backup.RepositoryStorage) { s.S3.Endpoint = "http://key:secret@minio:9000" }, "spec.storage.s3.endpoint", "credentialsSecretRef"},
		{"endpoint without host", func(s *backup.RepositoryStorage) { s.S3.Endpoint = "http://:9000" }, "spec.storage.s3.endpoint", "name a host"},
		{"endpoint with bad port", func(s *backup.RepositoryStorage) { s.S3.Endpoint = "http://minio:99999" }, "spec.storage.s3.endpoint", "1 to 65535"},
		{"no bucket", func(s *backup.RepositoryStorage) { s.S3.Bucket = "" }, "spec.storage.s3.bucket", "existing bucket"},
		{"short bucket", func(s *backup.RepositoryStorage) { s.S3.Bucket = "ab" }, "spec.storage.s3.bucket", "3 to 63"},
		{"long bucket", func(s *backup.RepositoryStorage) { s.S3.Bucket = strings.Repeat("a", 64) }, "spec.storage.s3.bucket", "3 to 63"},
		{"uppercase bucket", func(s *backup.RepositoryStorage) { s.S3.Bucket = "Backups" }, "spec.storage.s3.bucket", "lowercase"},
		{"underscore bucket", func(s *backup.RepositoryStorage) { s.S3.Bucket = "my_backups" }, "spec.storage.s3.bucket", "lowercase"},
		{"bucket ends with hyphen", func(s *backup.RepositoryStorage) { s.S3.Bucket = "backups-" }, "spec.storage.s3.bucket", "begin and end"},
		{"bucket with two dots", func(s *backup.RepositoryStorage) { s.S3.Bucket = "my..backups" }, "spec.storage.s3.bucket", "adjacent periods"},
		{"bucket like an IP", func(s *backup.RepositoryStorage) { s.S3.Bucket = "192.168.5.4" }, "spec.storage.s3.bucket", "IP address"},
		{"reserved bucket prefix", func(s *backup.RepositoryStorage) { s.S3.Bucket = "xn--backups" }, "spec.storage.s3.bucket", "reserved prefix"},
		{"reserved bucket suffix", func(s *backup.RepositoryStorage) { s.S3.Bucket = "backups-s3alias" }, "spec.storage.s3.bucket", "reserved suffix"},
		{"absolute prefix", func(s *backup.RepositoryStorage) { s.S3.Prefix = "/production" }, "spec.storage.s3.prefix", "relative path"},
		{"prefix with ..", func(s *backup.RepositoryStorage) { s.S3.Prefix = "production/../other" }, "spec.storage.s3.prefix", "clean path"},
		{"prefix is ..", func(s *backup.RepositoryStorage) { s.S3.Prefix = ".." }, "spec.storage.s3.prefix", "'..'"},
		{"prefix with trailing slash", func(s *backup.RepositoryStorage) { s.S3.Prefix = "production/" }, "spec.storage.s3.prefix", `"production"`},
		{"prefix with empty segment", func(s *backup.RepositoryStorage) { s.S3.Prefix = "a//b" }, "spec.storage.s3.prefix", "clean path"},
		{"prefix with space", func(s *backup.RepositoryStorage) { s.S3.Prefix = "my backups" }, "spec.storage.s3.prefix", "only letters"},
		{"long prefix", func(s *backup.RepositoryStorage) { s.S3.Prefix = strings.Repeat("a", 513) }, "spec.storage.s3.prefix", "at most 512"},
		{"region with space", func(s *backup.RepositoryStorage) { s.S3.Region = "us east" }, "spec.storage.s3.region", "us-east-1"},
		{"region with slash", func(s *backup.RepositoryStorage) { s.S3.Region = "us/east" }, "spec.storage.s3.region", "us-east-1"},
		{"no credentials", func(s *backup.RepositoryStorage) { s.S3.CredentialsSecretRef.Name = "" }, "spec.storage.s3.credentialsSecretRef.name", "AWS_ACCESS_KEY_ID"},
		{"bad credentials name", func(s *backup.RepositoryStorage) { s.S3.CredentialsSecretRef.Name = "S3_Credentials" }, "spec.storage.s3.credentialsSecretRef.name", "kubectl get secrets"},
		{"bad CA name", func(s *backup.RepositoryStorage) {
			https(s.S3)
			s.S3.CASecretRef = &backup.LocalSecretReference{Name: "-ca"}
		}, "spec.storage.s3.caSecretRef.name", "kubectl get secrets"},
		{"empty CA name", func(s *backup.RepositoryStorage) {
			https(s.S3)
			s.S3.CASecretRef = &backup.LocalSecretReference{}
		}, "spec.storage.s3.caSecretRef.name", "ca.crt"},
		{"CA with http", func(s *backup.RepositoryStorage) { s.S3.CASecretRef = &backup.LocalSecretReference{Name: "s3-ca"} }, "spec.storage.s3.caSecretRef", "https://"},
		{"insecure with http", func(s *backup.RepositoryStorage) { s.S3.InsecureSkipTLSVerify = true }, "spec.storage.s3.insecureSkipTLSVerify", "remove it"},
		{"insecure with CA", func(s *backup.RepositoryStorage) {
			https(s.S3)
			s.S3.CASecretRef = &backup.LocalSecretReference{Name: "s3-ca"}
			s.S3.InsecureSkipTLSVerify = true
		}, "spec.storage.s3.insecureSkipTLSVerify", "remove insecureSkipTLSVerify"},
		{"no password secret", func(s *backup.RepositoryStorage) { s.Encryption.SecretRef.Name = "" }, "spec.storage.encryption.secretRef.name", `"password"`},
		{"bad password secret", func(s *backup.RepositoryStorage) { s.Encryption.SecretRef.Name = "repo.password." }, "spec.storage.encryption.secretRef.name", "kubectl get secrets"},
		{"immutable claim", func(s *backup.RepositoryStorage) { s.S3 = nil; s.PVCName = "backup-repo" }, "spec.storage.immutability", "needs an S3 repository"},
		{"no lock mode", func(s *backup.RepositoryStorage) { s.Immutability.Mode = "" }, "spec.storage.immutability.mode", "Governance"},
		{"unknown lock mode", func(s *backup.RepositoryStorage) { s.Immutability.Mode = "governance" }, "spec.storage.immutability.mode", "Governance"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := s3Policy()
			tc.mutate(&p.Spec.Storage)
			check := func(kind string, errs field.ErrorList) {
				if tc.wantErr == "" {
					if len(errs) != 0 {
						t.Fatalf("%s: unexpected errors: %v", kind, errs)
					}
					return
				}
				if len(errs) == 0 {
					t.Fatalf("%s: want an error on %s, got none", kind, tc.wantErr)
				}
				for _, e := range errs {
					if e.Field != tc.wantErr {
						t.Errorf("%s: error on %s, want %s: %v", kind, e.Field, tc.wantErr, e)
					}
				}
				if msg := errs.ToAggregate().Error(); !strings.Contains(msg, tc.advice) {
					t.Errorf("%s: message lacks %q: %s", kind, tc.advice, msg)
				}
			}
			check("BackupPolicy", ValidateBackupPolicy(p))
			// A Backup's storage follows the same rules, under the same path.
			b := &backup.Backup{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"},
				Spec: backup.BackupSpec{Target: backup.VolumeTarget{PVCName: "data", Namespace: "ns"}, Storage: p.Spec.Storage}}
			check("Backup", ValidateBackup(b))
		})
	}
}

func TestIsS3BucketName(t *testing.T) {
	for _, name := range []string{"backups", "my-backups.example.com", "b12", "123", strings.Repeat("a", 63)} {
		if msgs := IsS3BucketName(name); len(msgs) != 0 {
			t.Errorf("%q refused: %v", name, msgs)
		}
	}
	for _, name := range []string{"", "a", "-backups", "backups.", "back.-ups", "1.2.3.4", "sthree-x", "x--table-s3", "ab_c"} {
		if msgs := IsS3BucketName(name); len(msgs) == 0 {
			t.Errorf("%q accepted", name)
		}
	}
}
