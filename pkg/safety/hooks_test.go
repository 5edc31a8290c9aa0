package safety

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// Post actions are due once a pre command was started (it may have changed
// something post undoes) or the data mover Job was; an action that failed
// or was skipped without running starts nothing.
func TestPostHooksDue(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 11, 30, 2, 1, 0, 0, time.UTC))
	pre := func(phase v1alpha1.HookPhase, started bool) v1alpha1.HookStatus {
		st := v1alpha1.HookStatus{Stage: v1alpha1.HookStagePre, Name: "quiesce", Pod: "db-0", Phase: phase, CompletionTime: &at}
		if started {
			st.StartTime = &at
		}
		return st
	}
	for _, tc := range []struct {
		name   string
		mutate func(b *v1alpha1.Backup)
		due    bool
	}{
		{"nothing started", func(b *v1alpha1.Backup) {}, false},
		{"a pre command ran", func(b *v1alpha1.Backup) {
			b.Status.Hooks = []v1alpha1.HookStatus{pre(v1alpha1.HookPhaseSucceeded, true)}
		}, true},
		{"a pre command runs", func(b *v1alpha1.Backup) {
			st := pre(v1alpha1.HookPhaseRunning, true)
			st.CompletionTime = nil
			b.Status.Hooks = []v1alpha1.HookStatus{st}
		}, true},
		{"a pre command of unknown outcome", func(b *v1alpha1.Backup) { b.Status.Hooks = []v1alpha1.HookStatus{pre(v1alpha1.HookPhaseUnknown, true)} }, true},
		{"the pre action failed without running (no such container)", func(b *v1alpha1.Backup) {
			b.Status.Hooks = []v1alpha1.HookStatus{pre(v1alpha1.HookPhaseFailed, false)}
		}, false},
		{"the pre action was skipped (no pod)", func(b *v1alpha1.Backup) {
			st := pre(v1alpha1.HookPhaseSkipped, false)
			st.Pod = ""
			b.Status.Hooks = []v1alpha1.HookStatus{st}
		}, false},
		{"the Job was started", func(b *v1alpha1.Backup) { b.Status.JobName = "backup-b-x" }, true},
		{"only a post entry", func(b *v1alpha1.Backup) {
			st := pre(v1alpha1.HookPhaseSucceeded, true)
			st.Stage = v1alpha1.HookStagePost
			b.Status.Hooks = []v1alpha1.HookStatus{st}
		}, false},
		{"no post actions", func(b *v1alpha1.Backup) {
			b.Spec.Hooks.Post = nil
			b.Status.JobName = "backup-b-x"
		}, false},
		{"no hooks", func(b *v1alpha1.Backup) {
			b.Spec.Hooks = nil
			b.Status.JobName = "backup-b-x"
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := hookBackup("b", 1)
			tc.mutate(b)
			if got := PostHooksDue(b); got != tc.due {
				t.Errorf("PostHooksDue = %v, want %v", got, tc.due)
			}
			// Pending only for a deleted Backup.
			if PostHooksPending(b) {
				t.Error("PostHooksPending for a Backup that is not deleted")
			}
			b.DeletionTimestamp = &at
			if got := PostHooksPending(b); got != tc.due {
				t.Errorf("PostHooksPending of the deleted Backup = %v, want %v (no post entry yet)", got, tc.due)
			}
		})
	}
}

// A stage is finished when every action has its outcome, or when a failed
// action with onError Fail stopped it.
func TestHookStageFinished(t *testing.T) {
	actions := []v1alpha1.HookAction{{Name: "a", OnError: v1alpha1.HookFail}, {Name: "b", OnError: v1alpha1.HookContinue}}
	entry := func(name string, phase v1alpha1.HookPhase) v1alpha1.HookStatus {
		return v1alpha1.HookStatus{Stage: v1alpha1.HookStagePost, Name: name, Pod: "db-0", Phase: phase}
	}
	for _, tc := range []struct {
		name     string
		status   []v1alpha1.HookStatus
		finished bool
	}{
		{"nothing recorded", nil, false},
		{"a runs", []v1alpha1.HookStatus{entry("a", v1alpha1.HookPhaseRunning)}, false},
		{"a succeeded, b not started", []v1alpha1.HookStatus{entry("a", v1alpha1.HookPhaseSucceeded)}, false},
		{"both have outcomes", []v1alpha1.HookStatus{entry("a", v1alpha1.HookPhaseSucceeded), entry("b", v1alpha1.HookPhaseFailed)}, true},
		{"a failed with onError Fail", []v1alpha1.HookStatus{entry("a", v1alpha1.HookPhaseTimedOut)}, true},
		{"a in one pod still runs", []v1alpha1.HookStatus{entry("a", v1alpha1.HookPhaseFailed), entry("a", v1alpha1.HookPhaseRunning)}, false},
		{"entries of the other stage", []v1alpha1.HookStatus{{Stage: v1alpha1.HookStagePre, Name: "a", Phase: v1alpha1.HookPhaseSucceeded},
			{Stage: v1alpha1.HookStagePre, Name: "b", Phase: v1alpha1.HookPhaseSucceeded}}, false},
	} {
		if got := HookStageFinished(tc.status, v1alpha1.HookStagePost, actions); got != tc.finished {
			t.Errorf("%s: HookStageFinished = %v, want %v", tc.name, got, tc.finished)
		}
	}
}
