package backup

import (
	"context"
	"fmt"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/user"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/safety"
)

// SecretRefs lists the Secrets a repository names, each with the field that
// names it: the S3 credentials, the S3 CA and the encryption password.
func SecretRefs(s *backup.RepositoryStorage, fld *field.Path) []safety.SecretRef {
	var refs []safety.SecretRef
	if s3 := s.S3; s3 != nil {
		f := fld.Child("s3")
		refs = append(refs, safety.SecretRef{Name: s3.CredentialsSecretRef.Name, Field: f.Child("credentialsSecretRef", "name")})
		if s3.CASecretRef != nil {
			refs = append(refs, safety.SecretRef{Name: s3.CASecretRef.Name, Field: f.Child("caSecretRef", "name")})
		}
	}
	if e := s.Encryption; e != nil {
		refs = append(refs, safety.SecretRef{Name: e.SecretRef.Name, Field: fld.Child("encryption", "secretRef", "name")})
	}
	return refs
}

// CheckSecrets refuses (403) an object whose storage names a Secret in
// namespace (the target's) that the requester may not get; nil when it names
// none or the requester may get all of them. kind and name make the error.
func CheckSecrets(ctx context.Context, checker *safety.Checker, u user.Info, namespace string, s *backup.RepositoryStorage,
	gr schema.GroupResource, kind schema.GroupKind, name string) error {
	refs := SecretRefs(s, field.NewPath("spec", "storage"))
	if checker == nil || len(refs) == 0 {
		return nil
	}
	if ref := checker.CheckSecretsReadable(ctx, u, namespace, refs); ref != nil {
		return ref.Error(gr, kind, name)
	}
	return nil
}

// CheckHooks refuses (403) an object with hooks when the requester may not
// create pods/exec in namespace (the target's, where the hooks' pods run).
func CheckHooks(ctx context.Context, checker *safety.Checker, u user.Info, namespace string, hasHooks bool,
	gr schema.GroupResource, kind schema.GroupKind, name string) error {
	if checker == nil || !hasHooks {
		return nil
	}
	if ref := checker.CheckExecAllowed(ctx, u, namespace, field.NewPath("spec", "hooks")); ref != nil {
		return ref.Error(gr, kind, name)
	}
	return nil
}

// HasBackupHooks reports whether h has any action.
func HasBackupHooks(h *backup.BackupHooks) bool {
	return h != nil && len(h.Pre)+len(h.Post) > 0
}

// StorageWarnings are the warnings a repository earns on create and update:
// an S3 repository whose certificate is not verified, or one that is not
// encrypted, and a claim repository that is the claim it backs up.
func StorageWarnings(s *backup.RepositoryStorage, targetPVC string) []string {
	var out []string
	if s.S3 == nil && targetPVC != "" && targetPVC == s.PVCName {
		out = append(out, "spec.storage.pvcName equals spec.target.pvcName: the repository would back itself up; use a separate claim")
	}
	if s.S3 != nil && s.S3.InsecureSkipTLSVerify {
		out = append(out, "spec.storage.s3.insecureSkipTLSVerify is true: the data mover accepts any certificate from the endpoint, so anyone on the network path can pose as it; prefer caSecretRef with your CA's certificate")
	}
	if s.S3 != nil && s.Encryption == nil {
		out = append(out, "spec.storage.encryption is not set: the bucket's owner and anyone with its credentials can read the backed-up files; set spec.storage.encryption.secretRef on a new repository location to encrypt")
	}
	return out
}

// EncryptionChangeWarning warns about an update that adds or removes
// encryption while the repository stays where it is: a repository is
// created encrypted or not and stays so, so the next backup into it fails
// (the data mover says why). The change itself is allowed, like any change
// of a policy's storage: it is right for a location that holds no repository
// yet, which only the data mover can tell.
func EncryptionChangeWarning(s, old *backup.RepositoryStorage) string {
	if (s.Encryption == nil) == (old.Encryption == nil) || !SameLocation(s, old) {
		return ""
	}
	change := "adds"
	if s.Encryption == nil {
		change = "removes"
	}
	return fmt.Sprintf("this update %s spec.storage.encryption but keeps the repository's location: a repository is created encrypted or not and stays so, "+
		"so backups into an existing repository there will fail; keep the old setting, or point spec.storage at a new location (another claim, bucket or prefix)", change)
}

// SameLocation reports whether two repositories are at the same place (a
// claim or an S3 location), whatever their encryption and immutability.
func SameLocation(a, b *backup.RepositoryStorage) bool {
	if a.PVCName != b.PVCName || (a.S3 == nil) != (b.S3 == nil) {
		return false
	}
	if a.S3 == nil {
		return true
	}
	return a.S3.Endpoint == b.S3.Endpoint && a.S3.Bucket == b.S3.Bucket && a.S3.Prefix == b.S3.Prefix
}

// SameStorage reports whether two repositories are semantically equal,
// location, Secrets, encryption and immutability included.
func SameStorage(a, b *backup.RepositoryStorage) bool {
	return apiequality.Semantic.DeepEqual(a, b)
}

// RepositoryCell is a repository as a table cell: the claim's name, or
// s3://<bucket>[/<prefix>].
func RepositoryCell(s *backup.RepositoryStorage) string {
	if s.S3 == nil {
		return OrNone(s.PVCName)
	}
	cell := "s3://" + s.S3.Bucket
	if s.S3.Prefix != "" {
		cell += "/" + s.S3.Prefix
	}
	return cell
}

// RepositoryColumn is the column of RepositoryCell.
func RepositoryColumn(priority int32) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Repository", Type: "string", Priority: priority,
		Description: "Where the backups are stored: the repository claim's name, or s3://bucket/prefix."}
}
