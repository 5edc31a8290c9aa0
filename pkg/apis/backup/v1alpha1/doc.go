// +k8s:openapi-gen=true
// +k8s:deepcopy-gen=package
// +k8s:conversion-gen=example.com/backup-operator/pkg/apis/backup
// +k8s:defaulter-gen=TypeMeta
// +groupName=backup.example.com
// +k8s:openapi-model-package=com.example.backup.v1alpha1

// Package v1alpha1 is the v1alpha1 version of the backup.example.com API:
// BackupPolicy (when and what to back up), Backup (one backup of one PVC) and
// RestoreJob (one restore of one Backup).
package v1alpha1
