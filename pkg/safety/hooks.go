package safety

import (
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// HookFailedPhase reports whether a hook outcome counts as a failure.
func HookFailedPhase(p v1alpha1.HookPhase) bool {
	return p == v1alpha1.HookPhaseFailed || p == v1alpha1.HookPhaseTimedOut || p == v1alpha1.HookPhaseUnknown
}

// PostHooksDue reports whether b's post actions must run before it takes a
// final phase or goes: it has some, and a pre command was started or its
// data mover Job was. Post undoes what pre did, so without either there is
// nothing to undo.
func PostHooksDue(b *v1alpha1.Backup) bool {
	if b.Spec.Hooks == nil || len(b.Spec.Hooks.Post) == 0 {
		return false
	}
	if b.Status.JobName != "" {
		return true
	}
	for _, st := range b.Status.Hooks {
		if st.Stage == v1alpha1.HookStagePre && st.StartTime != nil {
			return true
		}
	}
	return false
}

// HookStageFinished reports whether a stage is over: every action has an
// outcome, or a failed action with onError Fail stopped the stage (the
// actions after it never run).
func HookStageFinished(status []v1alpha1.HookStatus, stage v1alpha1.HookStage, actions []v1alpha1.HookAction) bool {
	for _, a := range actions {
		found, failed := false, false
		for _, st := range status {
			if st.Stage == stage && st.Name == a.Name {
				found = true
				if st.Phase == v1alpha1.HookPhaseRunning {
					return false
				}
				failed = failed || HookFailedPhase(st.Phase)
			}
		}
		if !found {
			return false
		}
		if failed && a.OnError == v1alpha1.HookFail {
			return true
		}
	}
	return true
}

// PostHooksPending reports whether a deleted Backup still has post actions
// to run: it keeps its claim until they are done, so that nothing else
// starts on the claim between its pre actions and its post actions.
func PostHooksPending(b *v1alpha1.Backup) bool {
	return b.DeletionTimestamp != nil && PostHooksDue(b) && !HookStageFinished(b.Status.Hooks, v1alpha1.HookStagePost, b.Spec.Hooks.Post)
}
