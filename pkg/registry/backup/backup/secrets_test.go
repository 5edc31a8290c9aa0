package backup

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/safety"
)

// policyMap is a PolicyGetter over a map of the namespace's policies.
type policyMap map[string]*backup.BackupPolicy

func (m policyMap) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	if p, ok := m[name]; ok {
		return p.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(backup.Resource("backuppolicies"), name)
}

// secretReaders answers "get secrets" for the users it lists, by namespace
// and name, and records those questions; it allows everything else.
type secretReaders struct {
	allowed map[string]bool // "user namespace/name"
	asked   []string
}

func (a *secretReaders) Authorize(_ context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	if attrs.GetResource() != "secrets" {
		return authorizer.DecisionAllow, "", nil
	}
	q := attrs.GetUser().GetName() + " " + attrs.GetNamespace() + "/" + attrs.GetName()
	a.asked = append(a.asked, attrs.GetVerb()+" "+attrs.GetResource()+" "+q)
	if attrs.GetVerb() == "get" && a.allowed[q] {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionDeny, "", nil
}

func s3Storage() backup.RepositoryStorage {
	return backup.RepositoryStorage{
		S3: &backup.S3Storage{Endpoint: "http://minio.backup-storage.svc:9000", Bucket: "backups", Prefix: "production/postgres-data",
			CredentialsSecretRef: backup.LocalSecretReference{Name: "s3-credentials"}},
		Encryption: &backup.RepositoryEncryption{SecretRef: backup.LocalSecretReference{Name: "repo-password"}},
	}
}

var (
	server = &user.DefaultInfo{Name: user.APIServerUser, Groups: []string{user.AllAuthenticated, user.SystemPrivilegedGroup}}
	alice  = &user.DefaultInfo{Name: "alice", Groups: []string{user.AllAuthenticated}}
	bob    = &user.DefaultInfo{Name: "bob", Groups: []string{user.AllAuthenticated}}
	// impostor has the server's name but not its group.
	impostor = &user.DefaultInfo{Name: user.APIServerUser, Groups: []string{user.AllAuthenticated}}
)

// TestBackupSecretsNeedTheRequestersAccess covers the Secret rule of a new
// Backup: the requester must be allowed to get every Secret its storage
// names, in the target's namespace; the server's own identity (the policy
// controller, the importer) only for a Backup that carries its policy's
// target namespace and storage, and then without asking the authorizer.
func TestBackupSecretsNeedTheRequestersAccess(t *testing.T) {
	policy := &backup.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "db"},
		Spec: backup.BackupPolicySpec{Target: backup.VolumeTarget{Namespace: "prod", PVCName: "data"}, Storage: s3Storage()}}
	fromPolicy := func(mutate func(b *backup.Backup)) *backup.Backup {
		b := &backup.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "db-202611300200"},
			Spec: backup.BackupSpec{PolicyName: "db", Target: backup.VolumeTarget{Namespace: "prod", PVCName: "data"}, Storage: s3Storage()}}
		if mutate != nil {
			mutate(b)
		}
		return b
	}
	cases := []struct {
		name      string
		u         user.Info
		b         *backup.Backup
		allowed   bool
		asks      bool   // whether the authorizer is asked about Secrets
		forbidden string // part of the 403 message
	}{
		{"alice may read both Secrets", alice, fromPolicy(nil), true, true, ""},
		{"bob may read only the credentials", bob, fromPolicy(nil), false, true, `may not get Secret "repo-password" in namespace "prod"`},
		{"bob's on-demand Backup of the policy is checked too", bob, fromPolicy(func(b *backup.Backup) { b.Name = "before-upgrade" }), false, true, `"repo-password"`},
		{"a claim repository names no Secret", bob, fromPolicy(func(b *backup.Backup) { b.Spec.Storage = backup.RepositoryStorage{PVCName: "backup-repo"} }), true, false, ""},
		{"the server's Backup of its policy", server, fromPolicy(nil), true, false, ""},
		{"the server's import of another claim of the policy", server, fromPolicy(func(b *backup.Backup) { b.Spec.Target.PVCName = "old-data" }), true, false, ""},
		{"the server's Backup with other Secrets than its policy", server, fromPolicy(func(b *backup.Backup) {
			b.Spec.Storage.Encryption.SecretRef.Name = "other-password"
		}), false, false, `BackupPolicy "db"`},
		{"the server's Backup in another namespace than its policy's target", server, fromPolicy(func(b *backup.Backup) {
			b.Spec.Target.Namespace = "staging"
		}), false, false, "target namespace, storage and hooks"},
		{"the server's Backup of a policy that is gone", server, fromPolicy(func(b *backup.Backup) { b.Spec.PolicyName = "gone" }), false, false, `BackupPolicy "gone"`},
		{"the server's Backup without a policy", server, fromPolicy(func(b *backup.Backup) { b.Spec.PolicyName = "" }), false, false, "must carry"},
		{"the server's name without its group is anybody", impostor, fromPolicy(nil), false, true, `may not get Secret "s3-credentials"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			az := &secretReaders{allowed: map[string]bool{
				"alice prod/s3-credentials": true, "alice prod/repo-password": true, "bob prod/s3-credentials": true}}
			r := &REST{policies: policyMap{"db": policy}, checker: &safety.Checker{Authorizer: authorizer.AuthorizerFunc(az.Authorize)}}
			ctx := genericapirequest.WithUser(genericapirequest.WithNamespace(context.Background(), "prod"), tc.u)
			err := r.checkCreate(ctx, tc.b)
			switch {
			case tc.allowed && err != nil:
				t.Errorf("refused: %v", err)
			case !tc.allowed && !apierrors.IsForbidden(err):
				t.Errorf("want 403, got %v", err)
			case !tc.allowed && !strings.Contains(err.Error(), tc.forbidden):
				t.Errorf("message lacks %q: %v", tc.forbidden, err)
			}
			if asked := len(az.asked) > 0; asked != tc.asks {
				t.Errorf("authorizer asked about Secrets: %v, want %v (%s)", asked, tc.asks, fmt.Sprint(az.asked))
			}
		})
	}
}
