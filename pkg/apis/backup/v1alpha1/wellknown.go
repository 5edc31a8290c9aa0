package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Well-known annotations, labels and finalizers of backup.example.com: what
// users, tools and the operator's own controllers read and write on objects.
// Each is defined here once.
const (
	// PolicyLabel names the BackupPolicy of a Backup, so
	// `kubectl get backups -l backup.example.com/policy=NAME` lists them.
	PolicyLabel = GroupName + "/policy"

	// DataFinalizer keeps a Backup until its snapshot is removed from the repository.
	DataFinalizer = GroupName + "/data"

	// TriggerAnnotation on a BackupPolicy starts one on-demand Backup per value:
	//   kubectl annotate bp NAME backup.example.com/trigger=$(date +%s) --overwrite
	// The answered value is recorded in status.lastTrigger; a value is answered once.
	TriggerAnnotation = GroupName + "/trigger"

	// MoverFinalizer keeps a RestoreJob until its data mover Job has stopped:
	// deleting a RestoreJob stops its writes before the object goes (owner
	// references cannot reach a Job in another namespace).
	MoverFinalizer = GroupName + "/mover"

	// ImportAnnotation on a BackupPolicy imports, once per value, the snapshots
	// its repository holds for it and re-creates their Backups: the way back
	// after the API server's own storage is lost.
	//   kubectl annotate bp NAME backup.example.com/import=$(date +%s) --overwrite
	ImportAnnotation = GroupName + "/import"

	// ImportedSnapshotAnnotation marks a Backup re-created from a snapshot; the
	// importer, not a mover Job, gives it its status.
	ImportedSnapshotAnnotation = GroupName + "/imported-snapshot"

	// ScheduledTimeAnnotation records the scheduled time a Backup was created for.
	ScheduledTimeAnnotation = GroupName + "/scheduled-time"

	// RestoredFromAnnotation on a claim a RestoreJob created names its Backup
	// as namespace/name.
	RestoredFromAnnotation = GroupName + "/restored-from"
)

// Labels and annotations on the Jobs and pods the controllers create. Label
// values longer than 63 characters are shortened with a hash of the whole
// value; the owner annotation always carries it in full.
const (
	// ManagedByLabel and ManagedBy mark everything the operator creates.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "backup-operator"
	// JobKindLabel is backup, restore, prune or import.
	JobKindLabel = GroupName + "/kind"
	// OwnerNamespaceLabel, OwnerNameLabel and OwnerUIDLabel identify the
	// Backup, RestoreJob or BackupPolicy a Job works for; the UID is what
	// decides whether a Job is the owner's (the name may be reused).
	OwnerNamespaceLabel = GroupName + "/owner-namespace"
	OwnerNameLabel      = GroupName + "/owner-name"
	OwnerUIDLabel       = GroupName + "/owner-uid"
	// RepositoryLabel is the repository claim a Job opens.
	RepositoryLabel = GroupName + "/repository"
	// ClaimLabel is the claim a backup or restore Job reads or writes (in the
	// Job's namespace): a running mover Job keeps the claim busy.
	ClaimLabel = GroupName + "/claim"
	// OwnerAnnotation is the owner's namespace/name, in full.
	OwnerAnnotation = GroupName + "/owner"
)

// LabelValue returns s when it is a valid label value, and otherwise (object
// names may be 253 characters, label values 63) a prefix of it with a hash of
// the whole, so that distinct values stay distinct. The labels above carry
// their values through it.
func LabelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	n := s
	if len(n) > 52 {
		n = n[:52]
	}
	n = strings.TrimRight(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '-'
	}, n), "-._")
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:])[:10]
	if n == "" {
		return h
	}
	return n + "-" + h
}
