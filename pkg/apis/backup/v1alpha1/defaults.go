package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

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

// DefaultHookTimeout is a hook action's timeout when it sets none.
const DefaultHookTimeout = "60s"

// SetDefaults_BackupHooks defaults each action; pre actions fail the Backup
// by default, post actions continue (the data is stored by then), and an
// action with no running pod is skipped (the claim is quiet).
func SetDefaults_BackupHooks(obj *BackupHooks) {
	defaultHookActions(obj.Pre, HookFail, HookNoPodsSkip)
	defaultHookActions(obj.Post, HookContinue, HookNoPodsSkip)
}

// SetDefaults_RestoreHooks defaults each action: a post action that fails,
// or finds no pod to run in, fails the RestoreJob (its data is written, but
// a step such as loading a dump did not happen).
func SetDefaults_RestoreHooks(obj *RestoreHooks) {
	defaultHookActions(obj.Post, HookFail, HookNoPodsFail)
}

func defaultHookActions(actions []HookAction, onError HookErrorMode, noPods HookNoPodsMode) {
	for i := range actions {
		a := &actions[i]
		if a.Timeout == nil {
			t := intstr.FromString(DefaultHookTimeout)
			a.Timeout = &t
		}
		if a.OnError == "" {
			a.OnError = onError
		}
		if a.WhenNoPods == "" {
			a.WhenNoPods = noPods
		}
	}
}
