package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConcurrencyPolicy says what a schedule does when the previous Backup of the
// same policy is still running.
// +enum
type ConcurrencyPolicy string

const (
	// ForbidConcurrent skips a scheduled run while another Backup of the policy is
	// Pending or Running, and records the skip in status and an event.
	ForbidConcurrent ConcurrencyPolicy = "Forbid"
	// AllowConcurrent starts the scheduled run regardless of active Backups.
	AllowConcurrent ConcurrencyPolicy = "Allow"
)

// BackupPhase is the lifecycle phase of a Backup.
// +enum
type BackupPhase string

const (
	// BackupPhasePending means the Backup is accepted and waits for its Job.
	BackupPhasePending BackupPhase = "Pending"
	// BackupPhaseRunning means the data mover Job is copying data.
	BackupPhaseRunning BackupPhase = "Running"
	// BackupPhaseCompleted means the snapshot is durably stored in the repository.
	BackupPhaseCompleted BackupPhase = "Completed"
	// BackupPhaseFailed means no snapshot was stored; status.message says why.
	BackupPhaseFailed BackupPhase = "Failed"
)

// RestorePhase is the lifecycle phase of a RestoreJob.
// +enum
type RestorePhase string

const (
	// RestorePhasePending means the RestoreJob is accepted and waits for its Job.
	RestorePhasePending RestorePhase = "Pending"
	// RestorePhaseRunning means the data mover Job is writing (or diffing) data.
	RestorePhaseRunning RestorePhase = "Running"
	// RestorePhaseCompleted means every file was written and verified (or, for a
	// dry run, the preview is complete).
	RestorePhaseCompleted RestorePhase = "Completed"
	// RestorePhaseFailed means the restore stopped; status.message says why.
	RestorePhaseFailed RestorePhase = "Failed"
)

// RestoreMode says how a restore treats files in the target that the backup lacks.
// +enum
type RestoreMode string

const (
	// RestoreModeMerge overwrites files that differ from the backup and keeps
	// files the backup does not contain.
	RestoreModeMerge RestoreMode = "Merge"
	// RestoreModeMirror also deletes files the backup does not contain, so the
	// volume equals the backup afterwards.
	RestoreModeMirror RestoreMode = "Mirror"
)

// Condition types used in status.conditions.
const (
	// ConditionReady is True on a BackupPolicy whose schedule and target are usable.
	ConditionReady = "Ready"
	// ConditionCompleted is True on a Backup or RestoreJob that finished successfully.
	// `kubectl wait --for=condition=Completed` waits for it.
	ConditionCompleted = "Completed"
	// ConditionFailed is True on a Backup or RestoreJob that failed.
	ConditionFailed = "Failed"
	// ConditionMoverBlocked is True on a Backup or RestoreJob whose data mover
	// Job cannot create its pod (an admission refusal such as Pod Security,
	// a quota) or whose pod cannot start (a Secret that spec.storage names is
	// missing); the message carries the reason. The object fails when this
	// lasts five minutes.
	ConditionMoverBlocked = "MoverBlocked"
	// ConditionHookFailed is True on a Backup or RestoreJob when a hook
	// action failed, timed out or was interrupted, also when its onError is
	// Continue; status.hooks has the details.
	ConditionHookFailed = "HookFailed"
	// ConditionFinishing is True on a Backup whose data mover has finished
	// (or failed, or never started because a pre hook failed) while its post
	// hook actions run; its reason and message are those of the phase the
	// Backup takes once they are done.
	ConditionFinishing = "Finishing"
	// ConditionQueued is True on a Backup or RestoreJob (phase Pending) that
	// waits for one of the limited data mover slots (--max-movers,
	// --max-movers-per-node); the message says how many run. Queued Backups
	// start in the order of their scheduled time; RestoreJobs and prunes go
	// before them.
	ConditionQueued = "Queued"
)

// VolumeTarget names the PersistentVolumeClaim that is backed up.
type VolumeTarget struct {
	// pvcName is the name of the PersistentVolumeClaim to back up.
	// +required
	PVCName string `json:"pvcName"`
	// namespace of the PersistentVolumeClaim. Defaults to the namespace of the
	// object that names it. A namespace other than the object's own needs the
	// requester's permission to read PersistentVolumeClaims there.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// RepositoryStorage is where the backup repository lives: a
// PersistentVolumeClaim in the target's namespace (pvcName) or a location in
// S3-compatible object storage (s3), exactly one of them; with optional
// client-side encryption and, for S3, object-lock immutability. Several
// policies may share one repository; identical data is stored once.
//
// On a BackupPolicy the repository may change; Backups created afterwards use
// the new one, and every Backup keeps the repository it was written to (its
// spec.storage), where retention also removes its data. On update, a request
// that newly sets one of pvcName or s3 while leaving the other unchanged
// replaces the other, so `kubectl apply` and `kubectl edit` can switch a
// policy between a claim and S3 without removing the old field by hand.
type RepositoryStorage struct {
	// pvcName is the name of the repository PersistentVolumeClaim in the target's
	// namespace. Defaults to the server's --default-repository-pvc (backup-repo)
	// when s3 is not set either. Not together with s3.
	// +optional
	PVCName string `json:"pvcName,omitempty"`
	// s3 keeps the repository in an S3-compatible bucket (AWS S3, MinIO, ...),
	// off the cluster's own disks. Not together with pvcName.
	// +optional
	S3 *S3Storage `json:"s3,omitempty"`
	// encryption encrypts everything the repository stores (data, snapshot
	// manifests and indexes) with a key protected by a password from a Secret.
	// It works for claims and S3 alike. A repository is created encrypted or
	// not and stays so: adding or removing encryption for an existing
	// repository makes the next backup fail; point storage at a new location
	// instead. Another Secret holding the same password may be named at any time.
	// +optional
	Encryption *RepositoryEncryption `json:"encryption,omitempty"`
	// immutability locks every object a backup writes (S3 Object Lock) until
	// the end of the Backup's retention horizon, so that nobody, including the
	// repository's own credentials, can delete or overwrite it before then.
	// The horizon, shown in the Backup's status.lockedUntil, starts at the
	// Backup's scheduled time (or creation time) and is the longest of
	// keepDaily days, keepWeekly weeks, keepMonthly times 31 days and keepLast
	// times the schedule's interval, at least 24 hours; a Backup without a
	// policy is locked for 24 hours. Pruning keeps locked objects and removes
	// them once their lock has expired. S3 only; the bucket must have been
	// created with object lock enabled.
	// +optional
	Immutability *Immutability `json:"immutability,omitempty"`
}

// S3Storage is a repository location in S3-compatible object storage. The
// data mover reaches the endpoint from the target's namespace over the pod
// network.
type S3Storage struct {
	// endpoint is the URL of the S3 service: scheme, host and optional port,
	// nothing else, for example "https://s3.eu-central-1.amazonaws.com" or
	// "http://minio.backup-storage.svc:9000". The scheme decides whether TLS is
	// used: https (verified against the system's CAs, or caSecretRef) or http
	// (no TLS: credentials' signatures and data travel unencrypted on the
	// network; use it only inside a trusted network).
	// +required
	Endpoint string `json:"endpoint"`
	// bucket is the name of an existing bucket: 3 to 63 lowercase letters,
	// digits, dots and hyphens, beginning and ending with a letter or digit.
	// +required
	Bucket string `json:"bucket"`
	// prefix is the key prefix under which the repository lives in the
	// bucket, for example "production/postgres-data": a relative path of
	// letters, digits and - _ . ! * ' ( ) separated by single slashes, without
	// "." or ".." segments. Empty means the bucket's root. One bucket can hold
	// several repositories under different prefixes.
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// region is the bucket's region, for example "us-east-1", when the service
	// needs one for signing. Empty lets the client find it out (or use the
	// service's default).
	// +optional
	Region string `json:"region,omitempty"`
	// credentialsSecretRef names a Secret in the target's namespace holding
	// the keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. The Secret is read
	// only by the data mover's pod (as environment variables); the operator
	// never reads it. Whoever creates or changes the object must be allowed
	// to get this Secret.
	// +required
	CredentialsSecretRef LocalSecretReference `json:"credentialsSecretRef"`
	// caSecretRef names a Secret in the target's namespace whose key ca.crt
	// holds the PEM certificate(s) of the CA that signed the endpoint's
	// certificate, for a service with a private CA. https endpoints only.
	// Whoever creates or changes the object must be allowed to get this Secret.
	// +optional
	CASecretRef *LocalSecretReference `json:"caSecretRef,omitempty"`
	// insecureSkipTLSVerify makes the data mover accept any certificate from
	// an https endpoint. Anyone on the network path can then pose as the
	// service and receive the data; prefer caSecretRef. Allowed only with an
	// https endpoint and without caSecretRef; the API answers with a warning.
	// Defaults to false.
	// +optional
	InsecureSkipTLSVerify bool `json:"insecureSkipTLSVerify,omitempty"`
}

// LocalSecretReference names a Secret in the namespace of the claim that is
// backed up (spec.target.namespace).
type LocalSecretReference struct {
	// name of the Secret.
	// +required
	Name string `json:"name"`
}

// RepositoryEncryption says where the repository's password is.
type RepositoryEncryption struct {
	// secretRef names a Secret in the target's namespace whose key "password"
	// holds the repository password. The Secret is mounted into the data
	// mover's pod only; the operator never reads it. A wrong password fails
	// the backup or restore with a clear message, never with garbage data.
	// Whoever creates or changes the object must be allowed to get this Secret.
	// +required
	SecretRef LocalSecretReference `json:"secretRef"`
}

// ImmutabilityMode is the S3 Object Lock retention mode.
// +enum
type ImmutabilityMode string

const (
	// ImmutabilityGovernance locks objects so that only users with the
	// special permission s3:BypassGovernanceRetention can delete them early.
	ImmutabilityGovernance ImmutabilityMode = "Governance"
	// ImmutabilityCompliance locks objects so that nobody, not even the
	// bucket's root account, can delete them before the lock expires.
	ImmutabilityCompliance ImmutabilityMode = "Compliance"
)

// Immutability locks a backup's objects against deletion and overwriting.
type Immutability struct {
	// mode is the Object Lock mode: Governance (users with the bypass
	// permission may still delete early) or Compliance (nobody can).
	// +required
	Mode ImmutabilityMode `json:"mode"`
}

// RetentionPolicy says which Backups of a policy are kept. A Backup is kept when
// any rule keeps it; the newest successful Backup is always kept. At least one
// of keepLast, keepDaily, keepWeekly or keepMonthly must be set and above zero.
type RetentionPolicy struct {
	// keepLast keeps the newest N successful Backups.
	// +optional
	KeepLast *int32 `json:"keepLast,omitempty"`
	// keepDaily keeps the newest successful Backup of each of the last N days
	// (in the policy's time zone) that have one.
	// +optional
	KeepDaily *int32 `json:"keepDaily,omitempty"`
	// keepWeekly keeps the newest successful Backup of each of the last N ISO weeks
	// that have one.
	// +optional
	KeepWeekly *int32 `json:"keepWeekly,omitempty"`
	// keepMonthly keeps the newest successful Backup of each of the last N
	// calendar months that have one.
	// +optional
	KeepMonthly *int32 `json:"keepMonthly,omitempty"`
	// keepFailed keeps the newest N failed Backups for inspection; older failed
	// Backups are deleted. Defaults to 1.
	// +optional
	KeepFailed *int32 `json:"keepFailed,omitempty"`
}

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BackupPolicy backs up one PersistentVolumeClaim on a cron schedule and keeps a
// retention window of the Backups it creates.
type BackupPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired schedule, target and retention.
	// +optional
	Spec BackupPolicySpec `json:"spec,omitempty"`
	// status is the observed state of the schedule, written by the controller.
	// +optional
	Status BackupPolicyStatus `json:"status,omitempty"`
}

// BackupPolicySpec is the desired schedule, target and retention of a BackupPolicy.
type BackupPolicySpec struct {
	// schedule in cron format: five fields ("0 2 * * *" is daily at 02:00),
	// or a descriptor: @yearly, @monthly, @weekly, @daily, @hourly, or
	// "@every <duration>" (for example "@every 30m").
	// +required
	Schedule string `json:"schedule"`
	// timeZone is the IANA time zone the schedule is read in, for example
	// "Europe/Berlin". Defaults to UTC.
	// +optional
	TimeZone *string `json:"timeZone,omitempty"`
	// suspend stops new scheduled Backups while true. Running Backups go on, and
	// Backups created by hand are not affected. Defaults to false.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// target is the PersistentVolumeClaim to back up.
	// +required
	Target VolumeTarget `json:"target"`
	// storage is the repository the Backups are written to. Whoever creates
	// the policy, or changes its target or storage, must be allowed to get
	// every Secret it names.
	// +optional
	Storage RepositoryStorage `json:"storage,omitempty"`
	// retention says which of this policy's Backups are kept; the others are
	// deleted together with the data only they reference.
	// +required
	Retention RetentionPolicy `json:"retention"`
	// concurrencyPolicy is Forbid (default: a scheduled run is skipped while a
	// Backup of this policy is active) or Allow.
	// +optional
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`
	// startingDeadlineSeconds: a scheduled run that is missed (the server was down)
	// still starts if it is at most this many seconds late; older missed runs are
	// skipped and counted in status.missedRuns. Unset means a missed run is always
	// started once, however late.
	// +optional
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`
	// moverSecurityContext is who the data mover runs as in a namespace that
	// enforces the Pod Security level "restricted" (no root, no capabilities).
	// Copied into the Backups the policy creates.
	// Each field it sets replaces that of a running pod that mounts the
	// claim (a runAsUser neither gives fails the object). In namespaces enforcing
	// "privileged" or "baseline" the mover runs as root and this field is not
	// used.
	// +optional
	MoverSecurityContext *MoverSecurityContext `json:"moverSecurityContext,omitempty"`
	// hooks are commands run in the workload's pods around each backup, to
	// make its snapshot application-consistent. Copied into the Backups the
	// policy creates. Whoever sets or changes them (or the target) must be
	// allowed to create pods/exec in the target's namespace; the policy's
	// Backups run them on that person's authority.
	// +optional
	Hooks *BackupHooks `json:"hooks,omitempty"`
}

// BackupPolicyStatus is the observed state of a BackupPolicy.
type BackupPolicyStatus struct {
	// observedGeneration is the spec generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// lastScheduleTime is the scheduled time of the newest Backup this policy created.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// nextScheduleTime is when the next Backup will be created.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
	// lastSuccessfulBackup is the name of the newest Completed Backup of this policy.
	// +optional
	LastSuccessfulBackup string `json:"lastSuccessfulBackup,omitempty"`
	// lastSuccessfulTime is when lastSuccessfulBackup completed.
	// +optional
	LastSuccessfulTime *metav1.Time `json:"lastSuccessfulTime,omitempty"`
	// active lists the names of this policy's Pending or Running Backups.
	// +optional
	// +listType=set
	Active []string `json:"active,omitempty"`
	// missedRuns counts scheduled runs that were skipped because they were older
	// than startingDeadlineSeconds or forbidden by concurrencyPolicy.
	// +optional
	MissedRuns int64 `json:"missedRuns,omitempty"`
	// lastImport is the outcome of the newest import of this policy's
	// snapshots from its repository, asked for with the annotation
	// backup.example.com/import (the way back after the API server's own
	// storage is lost).
	// +optional
	LastImport *ImportStatus `json:"lastImport,omitempty"`
	// lastTrigger is the newest value of the annotation backup.example.com/trigger
	// that was answered with an on-demand Backup. A value is answered once:
	// deleting its Backup does not bring it back; set a new value for a new
	// Backup.
	// +optional
	LastTrigger *TriggerStatus `json:"lastTrigger,omitempty"`
	// conditions: Ready says whether the schedule is usable.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// TriggerStatus records an answered on-demand request.
type TriggerStatus struct {
	// value is the backup.example.com/trigger annotation value that was answered.
	Value string `json:"value"`
	// backupName is the Backup created for it.
	// +optional
	BackupName string `json:"backupName,omitempty"`
	// time is when the Backup was created.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// ImportStatus is the outcome of one import of a repository's snapshots.
type ImportStatus struct {
	// value is the backup.example.com/import annotation value this import answered.
	Value string `json:"value"`
	// time is when the import finished.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
	// imported is how many Backups were re-created from snapshots.
	// +optional
	Imported int64 `json:"imported,omitempty"`
	// message says what was found, or why the import failed.
	// +optional
	Message string `json:"message,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BackupPolicyList is a list of BackupPolicy objects.
type BackupPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items is the list of BackupPolicy objects.
	Items []BackupPolicy `json:"items"`
}

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Backup is one backup of one PersistentVolumeClaim: a snapshot of its files in a
// repository. Created by a BackupPolicy's schedule or by hand (on demand). Its
// spec cannot change after create; deleting it removes the data only it references.
type Backup struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says what to back up and where to. Immutable.
	// +optional
	Spec BackupSpec `json:"spec,omitempty"`
	// status is the progress and outcome, written by the controller.
	// +optional
	Status BackupStatus `json:"status,omitempty"`
}

// BackupSpec says what to back up and where to. Immutable after create.
type BackupSpec struct {
	// policyName is the BackupPolicy (in the Backup's namespace) this Backup
	// belongs to, if any. Retention only ever deletes Backups of a policy. When
	// set and target is empty, target is copied from the policy, and so is
	// storage when it is empty too.
	// +optional
	PolicyName string `json:"policyName,omitempty"`
	// target is the PersistentVolumeClaim to back up.
	// +optional
	Target VolumeTarget `json:"target,omitempty"`
	// storage is the repository the snapshot is written to. The requester
	// must be allowed to get every Secret it names; the Backups a policy
	// creates itself (scheduled, triggered, imported) carry exactly the
	// policy's storage, whose author was checked, and need no one's access.
	// +optional
	Storage RepositoryStorage `json:"storage,omitempty"`
	// moverSecurityContext is who the data mover runs as in a namespace that
	// enforces the Pod Security level "restricted" (no root, no capabilities).
	// Copied from the policy when unset; restores of this Backup use it too.
	// Each field it sets replaces that of a running pod that mounts the
	// claim (a runAsUser neither gives fails the object). In namespaces enforcing
	// "privileged" or "baseline" the mover runs as root and this field is not
	// used.
	// +optional
	MoverSecurityContext *MoverSecurityContext `json:"moverSecurityContext,omitempty"`
	// hooks are commands run in the workload's pods around the copy. Copied
	// from the policy when the Backup names only its policy. The requester
	// must be allowed to create pods/exec in the target's namespace; the
	// Backups a policy creates itself carry exactly the policy's hooks,
	// whose author was checked.
	// +optional
	Hooks *BackupHooks `json:"hooks,omitempty"`
}

// BackupStats are the numbers the data mover reports for a finished backup.
type BackupStats struct {
	// files is the number of files, directories and links in the snapshot.
	// +optional
	Files int64 `json:"files,omitempty"`
	// bytes is the total size of the files in the snapshot.
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
	// newBytes is how many of those bytes were not in the repository before
	// (before compression).
	// +optional
	NewBytes int64 `json:"newBytes,omitempty"`
	// storedBytes is what this backup added to the repository on disk
	// (compressed new data plus metadata).
	// +optional
	StoredBytes int64 `json:"storedBytes,omitempty"`
	// vanished is the number of files and directories that were deleted
	// between the data mover listing them and reading them. They are not in
	// the snapshot (nothing is recorded for data that was never read).
	// +optional
	Vanished int64 `json:"vanished,omitempty"`
	// changedDuringRead is the number of files whose size, modification or
	// change time changed while the data mover read them; they are stored as
	// read, which may mix old and new content (the next backup reads them
	// again). A file replaced by another one (renamed over it) counts as
	// vanished. A workload that writes during the backup needs hooks for a
	// consistent snapshot.
	// +optional
	ChangedDuringRead int64 `json:"changedDuringRead,omitempty"`
}

// Progress is how far a running data mover has got.
type Progress struct {
	// bytesDone is the number of bytes processed so far.
	// +optional
	BytesDone int64 `json:"bytesDone,omitempty"`
	// bytesTotal is the number of bytes to process, when known.
	// +optional
	BytesTotal int64 `json:"bytesTotal,omitempty"`
}

// BackupStatus is the observed state of a Backup.
type BackupStatus struct {
	// observedGeneration is the spec generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// phase is Pending, Running, Completed or Failed.
	// +optional
	Phase BackupPhase `json:"phase,omitempty"`
	// startTime is when the data mover Job was created.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when the Backup reached Completed or Failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// node is the node the data mover ran on.
	// +optional
	Node string `json:"node,omitempty"`
	// jobName is the batch/v1 Job running the data mover, in the target's namespace.
	// +optional
	JobName string `json:"jobName,omitempty"`
	// snapshotID is the repository snapshot this Backup stored.
	// +optional
	SnapshotID string `json:"snapshotID,omitempty"`
	// lockedUntil is when the object lock of this Backup's data expires, for a
	// repository with spec.storage.immutability: until then no object the
	// backup wrote can be deleted or overwritten, and deleting the Backup
	// leaves them in the bucket (a later prune removes them once unlocked).
	// Set when the data mover starts.
	// +optional
	LockedUntil *metav1.Time `json:"lockedUntil,omitempty"`
	// stats are the data mover's totals for a Completed Backup.
	// +optional
	Stats *BackupStats `json:"stats,omitempty"`
	// progress of a Running Backup: the data mover's latest report, read every
	// few seconds. Cleared when the backup ends; stats then hold the totals.
	// +optional
	Progress *Progress `json:"progress,omitempty"`
	// hooks is the outcome of each hook action in each pod, in the order
	// they ran. An action is recorded as Running before it is started, so a
	// restart of the operator never runs it twice.
	// +optional
	// +listType=atomic
	Hooks []HookStatus `json:"hooks,omitempty"`
	// conditions: Completed or Failed, for `kubectl wait`; HookFailed when a
	// hook action failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// message is a human-readable explanation of the phase, and what to do
	// about a failure.
	// +optional
	Message string `json:"message,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BackupList is a list of Backup objects.
type BackupList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items is the list of Backup objects.
	Items []Backup `json:"items"`
}

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// RestoreJob restores one Completed Backup into an existing PersistentVolumeClaim
// or a new one. It is checked for safety when created (the backup completed, the
// target is bound, large enough, not in use, not busy) and again right before
// the data is written. Set spec.dryRun to preview what would change.
type RestoreJob struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which Backup to restore, where and how. Immutable.
	// +optional
	Spec RestoreJobSpec `json:"spec,omitempty"`
	// status reports the safety checks, the preview, progress and outcome.
	// +optional
	Status RestoreJobStatus `json:"status,omitempty"`
}

// NewPVCSpec asks the restore to create its target PersistentVolumeClaim.
type NewPVCSpec struct {
	// storageClassName of the new claim. Defaults to the cluster's default StorageClass.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
	// size of the new claim. Defaults to the backup's data size plus 10%, at least 1Gi.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`
	// accessModes of the new claim. Defaults to [ReadWriteOnce].
	// +optional
	// +listType=atomic
	AccessModes []string `json:"accessModes,omitempty"`
}

// RestoreTarget names the PersistentVolumeClaim a restore writes into.
type RestoreTarget struct {
	// pvcName is the claim to restore into. It must exist and be Bound, unless
	// newPVC is set, in which case it must not exist yet.
	// +required
	PVCName string `json:"pvcName"`
	// namespace of the claim. Defaults to the RestoreJob's namespace. Another
	// namespace needs the requester's permission to update claims there.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// newPVC creates the claim before restoring into it.
	// +optional
	NewPVC *NewPVCSpec `json:"newPVC,omitempty"`
}

// RestoreJobSpec says which Backup to restore, where and how. Immutable after create.
type RestoreJobSpec struct {
	// backupName is the Completed Backup to restore.
	// +required
	BackupName string `json:"backupName"`
	// backupNamespace is the namespace of the Backup. Defaults to the RestoreJob's
	// namespace. Another namespace needs the requester's permission to read
	// Backups there.
	// +optional
	BackupNamespace string `json:"backupNamespace,omitempty"`
	// target is the claim to restore into.
	// +required
	Target RestoreTarget `json:"target"`
	// mode is Merge (default: overwrite files that differ, keep the others) or
	// Mirror (also delete files the backup does not contain).
	// +optional
	Mode RestoreMode `json:"mode,omitempty"`
	// dryRun computes what the restore would create, overwrite and delete and
	// reports it in status.preview, writing nothing. The way to preview a restore.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
	// paths limits the restore to these files and directories of the backup,
	// each relative to the snapshot root (the claim's top directory) and
	// written to the same path in the target claim: "app/config" restores
	// that directory, or file, with everything beneath it. Missing parent
	// directories are created with the backup's metadata; existing ones are
	// left as they are. Mode Mirror deletes only beneath these paths, and the
	// dry run's preview lists only changes beneath them. A path is relative
	// (no leading "/"), clean (no "." or ".." element, no empty element, no
	// trailing "/"), at most 4096 bytes, at most 100 paths, none listed twice
	// or beneath another listed path. A path the backup does not hold fails
	// the restore before anything is written. Empty: everything.
	// +optional
	// +listType=atomic
	Paths []string `json:"paths,omitempty"`
	// allowInUse permits restoring into a claim that a running pod mounts. By
	// default such a restore is refused, because the application would see its
	// files change underneath it; scale the workload down instead.
	// +optional
	AllowInUse bool `json:"allowInUse,omitempty"`
	// moverSecurityContext is who the data mover runs as in a namespace that
	// enforces the Pod Security level "restricted" (no root, no capabilities).
	// Unset, the restore runs as its Backup's moverSecurityContext says.
	// Each field it sets replaces that of a running pod that mounts the
	// claim (a runAsUser neither gives fails the object). In namespaces enforcing
	// "privileged" or "baseline" the mover runs as root and this field is not
	// used.
	// +optional
	MoverSecurityContext *MoverSecurityContext `json:"moverSecurityContext,omitempty"`
	// hooks are commands run in the workload's pods after the data is
	// written, for example to load a dump. The requester must be allowed
	// to create pods/exec in the target's namespace.
	// +optional
	Hooks *RestoreHooks `json:"hooks,omitempty"`
}

// MoverSecurityContext is the identity of a data mover that may not run as root.
type MoverSecurityContext struct {
	// runAsUser is the user ID the mover runs as; it must not be 0.
	// +optional
	RunAsUser *int64 `json:"runAsUser,omitempty"`
	// runAsGroup is the primary group ID the mover runs as.
	// +optional
	RunAsGroup *int64 `json:"runAsGroup,omitempty"`
	// fsGroup is the supplementary group that owns the claims' files where the
	// volume type supports it.
	// +optional
	FSGroup *int64 `json:"fsGroup,omitempty"`
}

// RestoreCheck is the outcome of one safety check.
type RestoreCheck struct {
	// name of the check, for example BackupCompleted, TargetBound, TargetLargeEnough,
	// TargetNotInUse, TargetNotBusy.
	Name string `json:"name"`
	// passed is true when the check allowed the restore.
	Passed bool `json:"passed"`
	// message explains the outcome.
	// +optional
	Message string `json:"message,omitempty"`
}

// RestorePreview is what a restore changes, or would change for a dry run.
type RestorePreview struct {
	// creates is the number of files the restore creates.
	// +optional
	Creates int64 `json:"creates,omitempty"`
	// overwrites is the number of existing files whose content or metadata differ.
	// +optional
	Overwrites int64 `json:"overwrites,omitempty"`
	// deletes is the number of files a Mirror restore removes.
	// +optional
	Deletes int64 `json:"deletes,omitempty"`
	// paths lists changed paths, each prefixed by "+" (create), "~" (overwrite)
	// or "-" (delete), up to a limit.
	// +optional
	// +listType=atomic
	Paths []string `json:"paths,omitempty"`
	// truncated is true when more paths changed than paths lists.
	// +optional
	Truncated bool `json:"truncated,omitempty"`
}

// RestoreStats are the numbers the data mover reports for a finished restore.
type RestoreStats struct {
	// files is the number of entries written.
	// +optional
	Files int64 `json:"files,omitempty"`
	// bytes is the number of bytes written.
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
}

// RestoreJobStatus is the observed state of a RestoreJob.
type RestoreJobStatus struct {
	// observedGeneration is the spec generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// phase is Pending, Running, Completed or Failed.
	// +optional
	Phase RestorePhase `json:"phase,omitempty"`
	// startTime is when the data mover Job was created.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when the RestoreJob reached Completed or Failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// jobName is the batch/v1 Job running the data mover.
	// +optional
	JobName string `json:"jobName,omitempty"`
	// checks are the safety checks made right before the data was touched.
	// +optional
	// +listType=map
	// +listMapKey=name
	Checks []RestoreCheck `json:"checks,omitempty"`
	// preview is what the restore changed, or would change for a dry run.
	// +optional
	Preview *RestorePreview `json:"preview,omitempty"`
	// stats are the data mover's totals.
	// +optional
	Stats *RestoreStats `json:"stats,omitempty"`
	// progress of a Running restore: the data mover's latest report, read
	// every few seconds. Cleared when the restore ends; stats then hold the
	// totals.
	// +optional
	Progress *Progress `json:"progress,omitempty"`
	// verified is true when every restored byte matched its recorded hash.
	// +optional
	Verified bool `json:"verified,omitempty"`
	// hooks is the outcome of each post action in each pod, in the order
	// they ran.
	// +optional
	// +listType=atomic
	Hooks []HookStatus `json:"hooks,omitempty"`
	// conditions: Completed or Failed, for `kubectl wait`; HookFailed when a
	// hook action failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// message is a human-readable explanation of the phase.
	// +optional
	Message string `json:"message,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// RestoreJobList is a list of RestoreJob objects.
type RestoreJobList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items is the list of RestoreJob objects.
	Items []RestoreJob `json:"items"`
}

// BackupFileType is the type of an entry of a Backup's snapshot.
type BackupFileType string

const (
	// BackupFileDirectory is a directory.
	BackupFileDirectory BackupFileType = "Directory"
	// BackupFileFile is a regular file.
	BackupFileFile BackupFileType = "File"
	// BackupFileSymlink is a symbolic link (never followed).
	BackupFileSymlink BackupFileType = "Symlink"
)

// BackupFile is one entry of a Backup's snapshot, as the files subresource
// lists it.
type BackupFile struct {
	// name is the entry's name within its directory.
	Name string `json:"name"`
	// type is Directory, File or Symlink.
	Type BackupFileType `json:"type"`
	// size is a file's size in bytes; 0 for directories and symlinks.
	Size int64 `json:"size"`
	// mode is the permission bits, setuid, setgid and sticky included (07777).
	Mode int32 `json:"mode"`
	// uid is the numeric owner.
	UID int64 `json:"uid"`
	// gid is the numeric group.
	GID int64 `json:"gid"`
	// modTime is the entry's modification time when it was backed up.
	ModTime metav1.MicroTime `json:"modTime"`
	// linkTarget is a symlink's target, as stored.
	// +optional
	LinkTarget string `json:"linkTarget,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BackupFileList is what GET on a directory (or a symlink) of the files
// subresource of a Backup returns:
// /apis/backup.example.com/v1alpha1/namespaces/NS/backups/NAME/files/PATH.
// GET on a regular file returns the file's content instead.
type BackupFileList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// path is the directory listed, relative to the snapshot's root ("." for
	// the root); for a symlink, the link's path.
	Path string `json:"path"`
	// items are the directory's entries, sorted by name; for a symlink, the
	// link itself.
	// +listType=atomic
	Items []BackupFile `json:"items"`
}

// +k8s:conversion-gen:explicit-from=net/url.Values
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BackupFilesOptions are the options of the files subresource of a Backup.
type BackupFilesOptions struct {
	metav1.TypeMeta `json:",inline"`
	// path is the path in the snapshot, relative to its root: slash-separated,
	// without "." or ".." components. Empty lists the root.
	// +optional
	Path string `json:"path,omitempty"`
}
