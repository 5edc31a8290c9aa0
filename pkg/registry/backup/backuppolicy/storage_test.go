package backuppolicy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/safety"
)

func s3Storage() backup.RepositoryStorage {
	return backup.RepositoryStorage{
		S3: &backup.S3Storage{Endpoint: "http://minio.backup-storage.svc:9000", Bucket: "backups", Prefix: "production/postgres-data",
			CredentialsSecretRef: backup.LocalSecretReference{Name: "s3-credentials"}},
		Encryption: &backup.RepositoryEncryption{SecretRef: backup.LocalSecretReference{Name: "repo-password"}},
	}
}

// TestPolicySecretsNeedTheRequestersAccess: creating a policy needs get on
// every Secret its storage names, in the target's namespace; an update
// needs it again when the target or the storage changes, and not otherwise.
func TestPolicySecretsNeedTheRequestersAccess(t *testing.T) {
	var asked []string
	readers := map[string]bool{"alice prod/s3-credentials": true, "alice prod/repo-password": true, "bob prod/s3-credentials": true}
	az := authorizer.AuthorizerFunc(func(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
		if a.GetResource() != "secrets" {
			return authorizer.DecisionAllow, "", nil
		}
		q := a.GetUser().GetName() + " " + a.GetNamespace() + "/" + a.GetName()
		asked = append(asked, q)
		if a.GetVerb() == "get" && readers[q] {
			return authorizer.DecisionAllow, "", nil
		}
		return authorizer.DecisionDeny, "", nil
	})
	r := &REST{checker: &safety.Checker{Authorizer: az}}
	as := func(name string) context.Context {
		return genericapirequest.WithUser(context.Background(), &user.DefaultInfo{Name: name})
	}
	stored := &backup.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "db"},
		Spec: backup.BackupPolicySpec{Schedule: "@daily", Target: backup.VolumeTarget{Namespace: "prod", PVCName: "data"}, Storage: s3Storage()}}

	if err := r.checkCreate(as("alice"), stored.DeepCopy()); err != nil {
		t.Errorf("alice may read both Secrets: %v", err)
	}
	err := r.checkCreate(as("bob"), stored.DeepCopy())
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `spec.storage.encryption.secretRef.name: you (bob) may not get Secret "repo-password" in namespace "prod"`) {
		t.Errorf("bob may not read the password: %v", err)
	}

	for _, tc := range []struct {
		name   string
		mutate func(p *backup.BackupPolicy)
		asks   bool
	}{
		{"schedule", func(p *backup.BackupPolicy) { p.Spec.Schedule = "@hourly" }, false},
		{"trigger annotation", func(p *backup.BackupPolicy) { p.Annotations = map[string]string{"backup.example.com/trigger": "1"} }, false},
		{"prefix", func(p *backup.BackupPolicy) { p.Spec.Storage.S3.Prefix = "elsewhere" }, true},
		{"endpoint", func(p *backup.BackupPolicy) { p.Spec.Storage.S3.Endpoint = "http://evil.example.com" }, true},
		{"password Secret", func(p *backup.BackupPolicy) { p.Spec.Storage.Encryption.SecretRef.Name = "other" }, true},
		{"immutability", func(p *backup.BackupPolicy) {
			p.Spec.Storage.Immutability = &backup.Immutability{Mode: backup.ImmutabilityGovernance}
		}, true},
		{"target claim", func(p *backup.BackupPolicy) { p.Spec.Target.PVCName = "other" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked = nil
			p := stored.DeepCopy()
			tc.mutate(p)
			err := r.checkUpdate(as("bob"), p, stored)
			if tc.asks != (len(asked) > 0) {
				t.Errorf("asked %v, want questions: %v", asked, tc.asks)
			}
			if tc.asks && !apierrors.IsForbidden(err) || !tc.asks && err != nil {
				t.Errorf("bob's update: %v", err)
			}
		})
	}
	// Secrets are the target namespace's: moving the target asks there.
	asked = nil
	p := stored.DeepCopy()
	p.Spec.Target.Namespace = "staging"
	if err := r.checkUpdate(as("alice"), p, stored); !apierrors.IsForbidden(err) || fmt.Sprint(asked) != "[alice staging/s3-credentials]" {
		t.Errorf("moving the target: %v, asked %v", err, asked)
	}
}

// An update that newly sets one location replaces the other when that one
// is carried over unchanged; anything else is left to validation.
func TestSwitchLocation(t *testing.T) {
	claim := backup.RepositoryStorage{PVCName: "backup-repo"}
	s3 := s3Storage()
	both := s3Storage()
	both.PVCName = "backup-repo"
	otherClaim := s3Storage()
	otherClaim.PVCName = "other-repo"
	otherS3 := both
	otherS3.S3 = &backup.S3Storage{Endpoint: "http://other:9000", Bucket: "b12", CredentialsSecretRef: backup.LocalSecretReference{Name: "c"}}
	for _, tc := range []struct {
		name          string
		update, old   backup.RepositoryStorage
		wantPVC       string
		wantS3Removed bool
	}{
		{"claim to S3", both, claim, "", false},
		{"S3 to claim", both, s3, "backup-repo", true},
		{"both new", both, backup.RepositoryStorage{}, "backup-repo", false},
		{"S3 and another claim", otherClaim, claim, "other-repo", false},
		{"another S3 and the claim from S3", otherS3, s3, "backup-repo", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := *tc.update.DeepCopy()
			switchLocation(&s, &tc.old)
			if s.PVCName != tc.wantPVC || (s.S3 == nil) != tc.wantS3Removed {
				t.Errorf("got pvcName %q, s3 %v", s.PVCName, s.S3)
			}
			if s.Encryption == nil {
				t.Error("encryption was dropped")
			}
		})
	}
	// Through PrepareForUpdate, as kubectl apply of an S3 policy over one
	// with the defaulted claim would send it.
	old := stored()
	old.Spec.Storage = backup.RepositoryStorage{PVCName: "backup-repo"}
	p := old.DeepCopy()
	p.Spec.Storage.S3 = s3Storage().S3
	NewStrategy(nil, "backup-repo").PrepareForUpdate(context.Background(), p, old)
	if p.Spec.Storage.PVCName != "" || p.Spec.Storage.S3 == nil {
		t.Errorf("switch to S3: %+v", p.Spec.Storage)
	}
	// And an S3 policy is not given the default claim.
	p = stored()
	p.Spec.Storage = s3Storage()
	NewStrategy(nil, "backup-repo").PrepareForCreate(context.Background(), p)
	if p.Spec.Storage.PVCName != "" {
		t.Errorf("an S3 policy got the default claim %q", p.Spec.Storage.PVCName)
	}
}

func TestStorageWarnings(t *testing.T) {
	s := NewStrategy(nil, "backup-repo")
	ctx := context.Background()
	p := stored()
	p.Spec.Storage = s3Storage()
	p.Spec.Storage.S3.Endpoint = "https://s3.example.com"
	if w := s.WarningsOnCreate(ctx, p); len(w) != 0 {
		t.Errorf("an encrypted, verified S3 repository earns warnings: %v", w)
	}
	p.Spec.Storage.S3.InsecureSkipTLSVerify = true
	p.Spec.Storage.Encryption = nil
	w := strings.Join(s.WarningsOnCreate(ctx, p), "\n")
	for _, want := range []string{"insecureSkipTLSVerify is true", "prefer caSecretRef", "encryption is not set"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q: %s", want, w)
		}
	}

	old := stored()
	old.Spec.Storage = s3Storage()
	p = old.DeepCopy()
	p.Spec.Storage.Encryption = nil
	if w := strings.Join(s.WarningsOnUpdate(ctx, p, old), "\n"); !strings.Contains(w, "removes spec.storage.encryption but keeps the repository's location") {
		t.Errorf("removing encryption in place: %s", w)
	}
	p.Spec.Storage.S3.Prefix = "new-place"
	if w := strings.Join(s.WarningsOnUpdate(ctx, p, old), "\n"); strings.Contains(w, "keeps the repository's location") {
		t.Errorf("a new location may be unencrypted: %s", w)
	}
	old = stored()
	p = old.DeepCopy()
	p.Spec.Storage.Encryption = &backup.RepositoryEncryption{SecretRef: backup.LocalSecretReference{Name: "pw"}}
	if w := strings.Join(s.WarningsOnUpdate(ctx, p, old), "\n"); !strings.Contains(w, "adds spec.storage.encryption") {
		t.Errorf("adding encryption to a claim repository in place: %s", w)
	}
	p = old.DeepCopy()
	p.Spec.Storage.Encryption = &backup.RepositoryEncryption{SecretRef: backup.LocalSecretReference{Name: "pw"}}
	old.Spec.Storage.Encryption = &backup.RepositoryEncryption{SecretRef: backup.LocalSecretReference{Name: "old-pw"}}
	if w := s.WarningsOnUpdate(ctx, p, old); len(w) != 0 {
		t.Errorf("another Secret with the password earns warnings: %v", w)
	}
}

func TestRepositoryColumn(t *testing.T) {
	p := stored()
	p.Spec.Storage = s3Storage()
	table, err := tableConvertor.ConvertToTable(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "Name,Schedule,Suspend,Target,Repository,Last Schedule,Last Success,Age" {
		t.Errorf("columns %s", got)
	}
	if got := table.Rows[0].Cells[4]; got != "s3://backups/production/postgres-data" {
		t.Errorf("S3 cell %v", got)
	}
	p.Spec.Storage = backup.RepositoryStorage{PVCName: "backup-repo"}
	table, _ = tableConvertor.ConvertToTable(context.Background(), p, nil)
	if got := table.Rows[0].Cells[4]; got != "backup-repo" {
		t.Errorf("claim cell %v", got)
	}
}
