package v1alpha1

import "k8s.io/apimachinery/pkg/runtime"

func addDefaultingFuncs(scheme *runtime.Scheme) error {
	return RegisterDefaults(scheme)
}

// Defaults that depend on the object's namespace or on server flags
// (target.namespace, storage.pvcName) are filled by the REST strategies, which
// know both; the ones here depend on the field alone.

// SetDefaults_BackupPolicySpec defaults the concurrency policy.
func SetDefaults_BackupPolicySpec(obj *BackupPolicySpec) {
	if obj.ConcurrencyPolicy == "" {
		obj.ConcurrencyPolicy = ForbidConcurrent
	}
}

// SetDefaults_RetentionPolicy keeps the newest failed Backup for inspection.
func SetDefaults_RetentionPolicy(obj *RetentionPolicy) {
	if obj.KeepFailed == nil {
		one := int32(1)
		obj.KeepFailed = &one
	}
}

// SetDefaults_RestoreJobSpec defaults the restore mode to the non-destructive Merge.
func SetDefaults_RestoreJobSpec(obj *RestoreJobSpec) {
	if obj.Mode == "" {
		obj.Mode = RestoreModeMerge
	}
}
