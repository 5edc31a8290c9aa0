package backup

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// HookErrorMode says what a failed hook action does to its Backup or RestoreJob.
type HookErrorMode string

// Hook error modes.
const (
	HookFail     HookErrorMode = "Fail"
	HookContinue HookErrorMode = "Continue"
)

// HookNoPodsMode says what a hook action does when no running pod matches.
type HookNoPodsMode string

// No-pods modes.
const (
	HookNoPodsSkip HookNoPodsMode = "Skip"
	HookNoPodsFail HookNoPodsMode = "Fail"
)

// ExecHook runs a command in a container of a running pod.
type ExecHook struct {
	Command   []string
	Container string
}

// HookAction is one command run in the workload's pods.
type HookAction struct {
	Name        string
	Exec        *ExecHook
	PodSelector *metav1.LabelSelector
	AllPods     bool
	Timeout     *intstr.IntOrString
	OnError     HookErrorMode
	WhenNoPods  HookNoPodsMode
}

// BackupHooks run around a backup's copy.
type BackupHooks struct {
	Pre  []HookAction
	Post []HookAction
}

// RestoreHooks run after a restore wrote its data.
type RestoreHooks struct {
	Post []HookAction
}

// HookStage is when a hook action runs.
type HookStage string

// Hook stages.
const (
	HookStagePre  HookStage = "Pre"
	HookStagePost HookStage = "Post"
)

// HookPhase is the state of one hook action in one pod.
type HookPhase string

// Hook phases.
const (
	HookPhaseRunning   HookPhase = "Running"
	HookPhaseSucceeded HookPhase = "Succeeded"
	HookPhaseFailed    HookPhase = "Failed"
	HookPhaseTimedOut  HookPhase = "TimedOut"
	HookPhaseSkipped   HookPhase = "Skipped"
	HookPhaseUnknown   HookPhase = "Unknown"
)

// HookStatus is the outcome of one hook action in one pod.
type HookStatus struct {
	Stage          HookStage
	Name           string
	Pod            string
	Container      string
	Phase          HookPhase
	ExitCode       *int32
	StartTime      *metav1.Time
	CompletionTime *metav1.Time
	Duration       *metav1.Duration
	Stderr         string
	Message        string
}
