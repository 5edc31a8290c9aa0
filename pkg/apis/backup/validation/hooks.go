package validation

import (
	"fmt"
	"time"

	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"example.com/backup-operator/pkg/apis/backup"
)

// MaxHookActions bounds each list of hook actions (and so status.hooks).
const MaxHookActions = 10

// MaxHookTimeout is the longest timeout a hook action may have.
const MaxHookTimeout = 6 * time.Hour

// MaxHookCommandBytes bounds the total size of a hook's command.
const MaxHookCommandBytes = 16 * 1024

// HookTimeout is a hook action's timeout: its timeout field (a duration with
// a unit), or 60s when unset. Validation has refused anything else. It
// reads either version's field (the same type).
func HookTimeout(t *intstr.IntOrString) time.Duration {
	if t == nil || t.Type != intstr.String {
		return time.Minute
	}
	d, err := time.ParseDuration(t.StrVal)
	if err != nil || d <= 0 {
		return time.Minute
	}
	return d
}

func validateBackupHooks(h *backup.BackupHooks, fld *field.Path) field.ErrorList {
	if h == nil {
		return nil
	}
	allErrs := validateHookActions(h.Pre, fld.Child("pre"))
	return append(allErrs, validateHookActions(h.Post, fld.Child("post"))...)
}

func validateRestoreHooks(h *backup.RestoreHooks, fld *field.Path) field.ErrorList {
	if h == nil {
		return nil
	}
	return validateHookActions(h.Post, fld.Child("post"))
}

func validateHookActions(actions []backup.HookAction, fld *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(actions) > MaxHookActions {
		allErrs = append(allErrs, field.TooMany(fld, len(actions), MaxHookActions))
	}
	names := sets.New[string]()
	for i := range actions {
		a, af := &actions[i], fld.Index(i)
		switch {
		case a.Name == "":
			allErrs = append(allErrs, field.Required(af.Child("name"), "a short name for the action (a DNS label such as \"dump\"), shown in status.hooks and events"))
		case names.Has(a.Name):
			allErrs = append(allErrs, field.Duplicate(af.Child("name"), a.Name))
		default:
			for _, msg := range validation.IsDNS1123Label(a.Name) {
				allErrs = append(allErrs, field.Invalid(af.Child("name"), a.Name, msg))
			}
		}
		names.Insert(a.Name)
		allErrs = append(allErrs, validateExecHook(a.Exec, af.Child("exec"))...)
		if a.PodSelector != nil {
			allErrs = append(allErrs, metav1validation.ValidateLabelSelector(a.PodSelector, metav1validation.LabelSelectorValidationOptions{}, af.Child("podSelector"))...)
		}
		allErrs = append(allErrs, validateHookTimeout(a.Timeout, af.Child("timeout"))...)
		switch a.OnError {
		case backup.HookFail, backup.HookContinue:
		default:
			allErrs = append(allErrs, field.NotSupported(af.Child("onError"), a.OnError, []string{string(backup.HookFail), string(backup.HookContinue)}))
		}
		switch a.WhenNoPods {
		case backup.HookNoPodsSkip, backup.HookNoPodsFail:
		default:
			allErrs = append(allErrs, field.NotSupported(af.Child("whenNoPods"), a.WhenNoPods, []string{string(backup.HookNoPodsSkip), string(backup.HookNoPodsFail)}))
		}
	}
	return allErrs
}

func validateExecHook(e *backup.ExecHook, fld *field.Path) field.ErrorList {
	if e == nil {
		return field.ErrorList{field.Required(fld, "the command to run, for example exec: {command: [sh, -c, \"pg_dump -Fc -f /dump/app.pgc app\"]}")}
	}
	var allErrs field.ErrorList
	size := 0
	for _, arg := range e.Command {
		size += len(arg)
	}
	switch {
	case len(e.Command) == 0 || e.Command[0] == "":
		allErrs = append(allErrs, field.Required(fld.Child("command"),
			"the program and its arguments, for example [pg_dump, -Fc, -f, /dump/app.pgc, app]; there is no implicit shell, write [sh, -c, \"...\"] for shell syntax"))
	case size > MaxHookCommandBytes:
		allErrs = append(allErrs, field.TooLong(fld.Child("command"), "", MaxHookCommandBytes))
	}
	if e.Container != "" {
		for _, msg := range validation.IsDNS1123Label(e.Container) {
			allErrs = append(allErrs, field.Invalid(fld.Child("container"), e.Container, msg))
		}
	}
	return allErrs
}

// validateHookTimeout: a duration with a unit, above zero and at most
// MaxHookTimeout. A bare number (60, or "60") is refused rather than read in
// some unit: a unit left out is a mistake the API should point at.
func validateHookTimeout(t *intstr.IntOrString, fld *field.Path) field.ErrorList {
	if t == nil {
		return nil // defaulted; internal objects built in code may leave it out
	}
	if t.Type == intstr.Int {
		return field.ErrorList{field.Invalid(fld, t.IntVal,
			fmt.Sprintf("a duration needs a unit; write \"%ds\" for seconds or \"%dm\" for minutes", t.IntVal, t.IntVal))}
	}
	d, err := time.ParseDuration(t.StrVal)
	switch {
	case err != nil:
		return field.ErrorList{field.Invalid(fld, t.StrVal, "not a duration with a unit (e.g. \"30s\", \"5m\", \"1h30m\"): "+err.Error())}
	case d <= 0:
		return field.ErrorList{field.Invalid(fld, t.StrVal, "must be greater than 0")}
	case d > MaxHookTimeout:
		return field.ErrorList{field.Invalid(fld, t.StrVal, fmt.Sprintf("must be at most %s; a longer step belongs in the workload itself", MaxHookTimeout))}
	}
	return nil
}

// MaxHookStderrBytes bounds status.hooks[].stderr, as the controller writes it.
const MaxHookStderrBytes = 1024

// validateHookStatuses checks status.hooks as the controller writes it.
func validateHookStatuses(hooks []backup.HookStatus, fld *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i := range hooks {
		h, hf := &hooks[i], fld.Index(i)
		switch h.Stage {
		case backup.HookStagePre, backup.HookStagePost:
		default:
			allErrs = append(allErrs, field.NotSupported(hf.Child("stage"), h.Stage, []string{string(backup.HookStagePre), string(backup.HookStagePost)}))
		}
		switch h.Phase {
		case backup.HookPhaseRunning, backup.HookPhaseSucceeded, backup.HookPhaseFailed, backup.HookPhaseTimedOut, backup.HookPhaseSkipped, backup.HookPhaseUnknown:
		default:
			allErrs = append(allErrs, field.NotSupported(hf.Child("phase"), h.Phase, []string{string(backup.HookPhaseRunning), string(backup.HookPhaseSucceeded),
				string(backup.HookPhaseFailed), string(backup.HookPhaseTimedOut), string(backup.HookPhaseSkipped), string(backup.HookPhaseUnknown)}))
		}
		for _, msg := range validation.IsDNS1123Label(h.Name) {
			allErrs = append(allErrs, field.Invalid(hf.Child("name"), h.Name, msg))
		}
		if len(h.Stderr) > MaxHookStderrBytes {
			allErrs = append(allErrs, field.TooLong(hf.Child("stderr"), "", MaxHookStderrBytes))
		}
	}
	return allErrs
}
