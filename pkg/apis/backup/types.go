package backup

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConcurrencyPolicy says what a schedule does when the previous Backup of the
// same policy is still running.
type ConcurrencyPolicy string

const (
	// ForbidConcurrent skips a scheduled run while another Backup of the policy is active.
	ForbidConcurrent ConcurrencyPolicy = "Forbid"
	// AllowConcurrent starts the run regardless.
	AllowConcurrent ConcurrencyPolicy = "Allow"
)

// BackupPhase is the lifecycle phase of a Backup.
type BackupPhase string

const (
	BackupPhasePending   BackupPhase = "Pending"
	BackupPhaseRunning   BackupPhase = "Running"
	BackupPhaseCompleted BackupPhase = "Completed"
	BackupPhaseFailed    BackupPhase = "Failed"
)

// RestorePhase is the lifecycle phase of a RestoreJob.
type RestorePhase string

const (
	RestorePhasePending   RestorePhase = "Pending"
	RestorePhaseRunning   RestorePhase = "Running"
	RestorePhaseCompleted RestorePhase = "Completed"
	RestorePhaseFailed    RestorePhase = "Failed"
)

// RestoreMode says how a restore treats files in the target that the backup lacks.
type RestoreMode string

const (
	RestoreModeMerge  RestoreMode = "Merge"
	RestoreModeMirror RestoreMode = "Mirror"
)

// VolumeTarget names the PersistentVolumeClaim that is backed up.
type VolumeTarget struct {
	PVCName   string
	Namespace string
}

// RepositoryStorage is where the backup repository lives: a claim or S3.
type RepositoryStorage struct {
	PVCName      string
	S3           *S3Storage
	Encryption   *RepositoryEncryption
	Immutability *Immutability
}

// S3Storage is a repository location in S3-compatible object storage.
type S3Storage struct {
	Endpoint              string
	Bucket                string
	Prefix                string
	Region                string
	CredentialsSecretRef  LocalSecretReference
	CASecretRef           *LocalSecretReference
	InsecureSkipTLSVerify bool
}

// LocalSecretReference names a Secret in the target's namespace.
type LocalSecretReference struct {
	Name string
}

// RepositoryEncryption says where the repository's password is.
type RepositoryEncryption struct {
	SecretRef LocalSecretReference
}

// ImmutabilityMode is the S3 Object Lock retention mode.
type ImmutabilityMode string

const (
	ImmutabilityGovernance ImmutabilityMode = "Governance"
	ImmutabilityCompliance ImmutabilityMode = "Compliance"
)

// Immutability locks a backup's objects against deletion and overwriting.
type Immutability struct {
	Mode ImmutabilityMode
}

// RetentionPolicy says which Backups of a policy are kept.
type RetentionPolicy struct {
	KeepLast    *int32
	KeepDaily   *int32
	KeepWeekly  *int32
	KeepMonthly *int32
	KeepFailed  *int32
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BackupPolicy schedules Backups of one PVC and keeps a retention window.
type BackupPolicy struct {
	metav1.TypeMeta
	metav1.ObjectMeta

	Spec   BackupPolicySpec
	Status BackupPolicyStatus
}

// BackupPolicySpec is the desired schedule and retention.
type BackupPolicySpec struct {
	Schedule                string
	TimeZone                *string
	Suspend                 bool
	Target                  VolumeTarget
	Storage                 RepositoryStorage
	Retention               RetentionPolicy
	ConcurrencyPolicy       ConcurrencyPolicy
	StartingDeadlineSeconds *int64
	MoverSecurityContext    *MoverSecurityContext
	Hooks                   *BackupHooks
}

// BackupPolicyStatus is the observed state of a BackupPolicy.
type BackupPolicyStatus struct {
	ObservedGeneration   int64
	LastScheduleTime     *metav1.Time
	NextScheduleTime     *metav1.Time
	LastSuccessfulBackup string
	LastSuccessfulTime   *metav1.Time
	Active               []string
	MissedRuns           int64
	LastImport           *ImportStatus
	LastTrigger          *TriggerStatus
	Conditions           []metav1.Condition
}

// TriggerStatus records an answered on-demand request.
type TriggerStatus struct {
	Value      string
	BackupName string
	Time       *metav1.Time
}

// ImportStatus is the outcome of one import of a repository's snapshots.
type ImportStatus struct {
	Value    string
	Time     *metav1.Time
	Imported int64
	Message  string
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BackupPolicyList is a list of BackupPolicy objects.
type BackupPolicyList struct {
	metav1.TypeMeta
	metav1.ListMeta
	Items []BackupPolicy
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Backup is one backup of one PVC.
type Backup struct {
	metav1.TypeMeta
	metav1.ObjectMeta

	Spec   BackupSpec
	Status BackupStatus
}

// BackupSpec says what to back up and where to. Immutable after create.
type BackupSpec struct {
	PolicyName           string
	Target               VolumeTarget
	Storage              RepositoryStorage
	MoverSecurityContext *MoverSecurityContext
	Hooks                *BackupHooks
}

// BackupStats are the numbers the data mover reports for a finished backup.
type BackupStats struct {
	Files             int64
	Bytes             int64
	NewBytes          int64
	StoredBytes       int64
	Vanished          int64
	ChangedDuringRead int64
}

// Progress is how far a running Job has got.
type Progress struct {
	BytesDone  int64
	BytesTotal int64
}

// BackupStatus is the observed state of a Backup.
type BackupStatus struct {
	ObservedGeneration int64
	Phase              BackupPhase
	StartTime          *metav1.Time
	CompletionTime     *metav1.Time
	Node               string
	JobName            string
	SnapshotID         string
	LockedUntil        *metav1.Time
	Stats              *BackupStats
	Progress           *Progress
	Hooks              []HookStatus
	Conditions         []metav1.Condition
	Message            string
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BackupList is a list of Backup objects.
type BackupList struct {
	metav1.TypeMeta
	metav1.ListMeta
	Items []Backup
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// RestoreJob restores one Backup into a PVC.
type RestoreJob struct {
	metav1.TypeMeta
	metav1.ObjectMeta

	Spec   RestoreJobSpec
	Status RestoreJobStatus
}

// NewPVCSpec asks the restore to create its target PVC.
type NewPVCSpec struct {
	StorageClassName *string
	Size             *resource.Quantity
	AccessModes      []string
}

// RestoreTarget names the PVC a restore writes into.
type RestoreTarget struct {
	PVCName   string
	Namespace string
	NewPVC    *NewPVCSpec
}

// RestoreJobSpec says which Backup to restore, where and how. Immutable after create.
type RestoreJobSpec struct {
	BackupName      string
	BackupNamespace string
	Target          RestoreTarget
	Mode            RestoreMode
	DryRun          bool
	// Paths limits the restore to these snapshot paths (relative, clean);
	// empty: everything.
	Paths                []string
	AllowInUse           bool
	MoverSecurityContext *MoverSecurityContext
	Hooks                *RestoreHooks
}

// MoverSecurityContext is the identity of a data mover that may not run as root.
type MoverSecurityContext struct {
	RunAsUser  *int64
	RunAsGroup *int64
	FSGroup    *int64
}

// RestoreCheck is the outcome of one safety check.
type RestoreCheck struct {
	Name    string
	Passed  bool
	Message string
}

// RestorePreview is what a restore changes (or would change, for a dry run).
type RestorePreview struct {
	Creates    int64
	Overwrites int64
	Deletes    int64
	Paths      []string
	Truncated  bool
}

// RestoreStats are the numbers the data mover reports for a finished restore.
type RestoreStats struct {
	Files int64
	Bytes int64
}

// RestoreJobStatus is the observed state of a RestoreJob.
type RestoreJobStatus struct {
	ObservedGeneration int64
	Phase              RestorePhase
	StartTime          *metav1.Time
	CompletionTime     *metav1.Time
	JobName            string
	Checks             []RestoreCheck
	Preview            *RestorePreview
	Stats              *RestoreStats
	Progress           *Progress
	Verified           bool
	Hooks              []HookStatus
	Conditions         []metav1.Condition
	Message            string
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// RestoreJobList is a list of RestoreJob objects.
type RestoreJobList struct {
	metav1.TypeMeta
	metav1.ListMeta
	Items []RestoreJob
}

// BackupFileType is the type of an entry of a Backup's snapshot.
type BackupFileType string

// The entry types of a snapshot.
const (
	BackupFileDirectory BackupFileType = "Directory"
	BackupFileFile      BackupFileType = "File"
	BackupFileSymlink   BackupFileType = "Symlink"
)

// BackupFile is one entry of a Backup's snapshot.
type BackupFile struct {
	Name       string
	Type       BackupFileType
	Size       int64
	Mode       int32
	UID        int64
	GID        int64
	ModTime    metav1.MicroTime
	LinkTarget string
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BackupFileList is a directory (or a symlink) of a Backup's snapshot.
type BackupFileList struct {
	metav1.TypeMeta
	metav1.ListMeta
	Path  string
	Items []BackupFile
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BackupFilesOptions are the options of the files subresource of a Backup.
type BackupFilesOptions struct {
	metav1.TypeMeta
	Path string
}
