package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// HookErrorMode says what a failed hook action does to its Backup or RestoreJob.
// +enum
type HookErrorMode string

const (
	// HookFail fails the Backup or RestoreJob. A failed pre action stops the
	// backup before anything is copied (post actions still run).
	HookFail HookErrorMode = "Fail"
	// HookContinue records the failure (status.hooks, an event, the
	// HookFailed condition) and goes on.
	HookContinue HookErrorMode = "Continue"
)

// HookNoPodsMode says what a hook action does when no running pod matches.
// +enum
type HookNoPodsMode string

const (
	// HookNoPodsSkip skips the action and records it as Skipped: with no
	// running pod the claim is quiet (the workload is scaled down), so there
	// is nothing to quiesce.
	HookNoPodsSkip HookNoPodsMode = "Skip"
	// HookNoPodsFail treats the action as failed (its onError decides).
	HookNoPodsFail HookNoPodsMode = "Fail"
)

// ExecHook runs a command in a container of a running pod, as
// `kubectl exec` does, through the Kubernetes API server.
type ExecHook struct {
	// command is the program and its arguments (argv). There is no implicit
	// shell: write [sh, -c, "..."] for shell syntax. The command must exit
	// with 0 to succeed.
	// +required
	// +listType=atomic
	Command []string `json:"command"`
	// container is the name of the container to run in. Defaults to the
	// container of the pod that mounts the target claim (the only container,
	// when the pod has one). A name that matches no container of a selected
	// pod fails the action; no other container is picked instead.
	// +optional
	Container string `json:"container,omitempty"`
}

// HookAction is one command run in the pods of the workload around a backup
// or after a restore.
type HookAction struct {
	// name identifies the action in status.hooks, events and metrics; unique
	// within its list, a DNS label (lowercase letters, digits and '-', at
	// most 63 characters).
	// +required
	Name string `json:"name"`
	// exec is the command to run.
	// +required
	Exec *ExecHook `json:"exec"`
	// podSelector selects the pods, in the target claim's namespace, to run
	// in. Defaults to the running pods that mount the target claim. Only
	// running pods that are not being deleted are used.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// allPods runs the action in every selected pod (at most 20). By
	// default it runs in one pod per workload: among the selected pods with
	// the same owner (a StatefulSet, a Deployment across its ReplicaSets),
	// the first by name, so a three-replica database is dumped once, not
	// three times.
	// +optional
	AllPods bool `json:"allPods,omitempty"`
	// timeout is how long the command may run, a duration with a unit such
	// as "30s", "5m" or "1h30m" (at most 6h); a bare number is refused,
	// because a unit left out is a mistake, not seconds. Defaults to "60s".
	// An action that runs longer is abandoned (its connection is closed; the
	// process may go on in the container) and counts as failed (TimedOut).
	// +optional
	Timeout *intstr.IntOrString `json:"timeout,omitempty"`
	// onError is Fail or Continue. Defaults to Fail, except for a Backup's
	// post actions, which default to Continue: the data is stored by then,
	// and a failure is recorded without discarding it.
	// +optional
	OnError HookErrorMode `json:"onError,omitempty"`
	// whenNoPods is Skip or Fail: what the action does when no running pod
	// matches. Skip records it as Skipped (with no running pod the claim is
	// quiet, say the workload is scaled down); Fail counts as a failure,
	// which onError then decides on. Defaults to Skip, except for a
	// RestoreJob's post actions, which default to Fail: a restore whose load
	// step did not run is not complete. While a matching pod is being
	// deleted, the action waits for it to go.
	// +optional
	WhenNoPods HookNoPodsMode `json:"whenNoPods,omitempty"`
}

// BackupHooks are commands run in the workload's pods around the copy, to
// make a snapshot application-consistent (for a database: dump it into the
// claim, or hold it in backup mode). The order is: every pre action, one
// after the other; the data mover; every post action. Post actions run
// whenever the pre stage began, also when a pre action or the copy failed
// (like finally). Hooks run with the operator's permission to exec into pods:
// whoever sets them must be allowed to create pods/exec in the target's
// namespace, and a policy's Backups run its hooks on the authority of
// whoever last set the policy's hooks (or its target).
type BackupHooks struct {
	// pre actions run before the data mover starts. A failed pre action
	// with onError Fail fails the Backup with nothing copied.
	// +optional
	// +listType=map
	// +listMapKey=name
	Pre []HookAction `json:"pre,omitempty"`
	// post actions run after the data mover has finished (or was not
	// started because a pre action failed).
	// +optional
	// +listType=map
	// +listMapKey=name
	Post []HookAction `json:"post,omitempty"`
}

// RestoreHooks are commands run in the workload's pods after a restore has
// written its data, for example to load a dump or restart a process. They do
// not run for a dry run or a failed restore. Whoever sets them must be
// allowed to create pods/exec in the target's namespace.
type RestoreHooks struct {
	// post actions run, one after the other, after the data is written and
	// verified; the RestoreJob completes after them.
	// +optional
	// +listType=map
	// +listMapKey=name
	Post []HookAction `json:"post,omitempty"`
}

// HookStage is when a hook action runs.
// +enum
type HookStage string

const (
	// HookStagePre runs before the data mover.
	HookStagePre HookStage = "Pre"
	// HookStagePost runs after the data mover.
	HookStagePost HookStage = "Post"
)

// HookPhase is the state of one hook action in one pod.
// +enum
type HookPhase string

const (
	// HookPhaseRunning means the command was started (recorded before it was).
	HookPhaseRunning HookPhase = "Running"
	// HookPhaseSucceeded means the command exited with 0.
	HookPhaseSucceeded HookPhase = "Succeeded"
	// HookPhaseFailed means the command exited with another code, or could
	// not be run (no such container, the pod went away, no pod matched with
	// whenNoPods Fail).
	HookPhaseFailed HookPhase = "Failed"
	// HookPhaseTimedOut means the command ran longer than its timeout and
	// was abandoned.
	HookPhaseTimedOut HookPhase = "TimedOut"
	// HookPhaseSkipped means the action did not run: no running pod matched
	// (whenNoPods Skip), or a restore's post action after a dry run or a
	// failed restore.
	HookPhaseSkipped HookPhase = "Skipped"
	// HookPhaseUnknown means the command was recorded as started, but the
	// operator restarted (or lost its leadership) before it recorded the
	// outcome: it counts as failed, it was not run again, and it may still
	// run in the pod.
	HookPhaseUnknown HookPhase = "Unknown"
)

// HookStatus is the outcome of one hook action in one pod.
type HookStatus struct {
	// stage is Pre or Post.
	Stage HookStage `json:"stage"`
	// name of the action.
	Name string `json:"name"`
	// pod the command ran in, in the target's namespace; empty when no pod matched.
	// +optional
	Pod string `json:"pod,omitempty"`
	// container the command ran in.
	// +optional
	Container string `json:"container,omitempty"`
	// phase is Running, Succeeded, Failed, TimedOut, Skipped or Unknown.
	Phase HookPhase `json:"phase"`
	// exitCode of the command, when it exited.
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`
	// startTime is when the command was started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when its outcome was recorded.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// duration is how long the command ran, until it exited or was abandoned.
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`
	// stderr is the end of the command's standard error (at most 1024 bytes).
	// +optional
	Stderr string `json:"stderr,omitempty"`
	// message explains the outcome.
	// +optional
	Message string `json:"message,omitempty"`
}
