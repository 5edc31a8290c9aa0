package validation

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// validAction is a hook action as the API server holds it after defaulting.
func validAction(name string) backup.HookAction {
	t := intstr.FromString("60s")
	return backup.HookAction{Name: name, Exec: &backup.ExecHook{Command: []string{"sh", "-c", "pg_dump -Fc -f /dump/app.pgc app"}},
		Timeout: &t, OnError: backup.HookFail, WhenNoPods: backup.HookNoPodsSkip}
}

func timeout(v intstr.IntOrString) *intstr.IntOrString { return &v }

// hookCases are mutations of one action (the first) and the error each
// earns: its field below the action, its type and part of its detail.
var hookCases = []struct {
	name   string
	mutate func(a *backup.HookAction)
	field  string // below the action, e.g. "timeout"; "" means valid
	typ    field.ErrorType
	detail string
}{
	{"valid", func(a *backup.HookAction) {}, "", "", ""},
	{"no timeout (defaulted)", func(a *backup.HookAction) { a.Timeout = nil }, "", "", ""},
	{"timeout 90s", func(a *backup.HookAction) { a.Timeout = timeout(intstr.FromString("90s")) }, "", "", ""},
	{"timeout 1h30m", func(a *backup.HookAction) { a.Timeout = timeout(intstr.FromString("1h30m")) }, "", "", ""},
	{"timeout 6h", func(a *backup.HookAction) { a.Timeout = timeout(intstr.FromString("6h")) }, "", "", ""},
	{"timeout as a number", func(a *backup.HookAction) { a.Timeout = timeout(intstr.FromInt32(60)) }, "timeout", field.ErrorTypeInvalid, `a duration needs a unit; write "60s"`},
	{"timeout as a number in a string", func(a *backup.HookAction) { a.Timeout = timeout(intstr.FromString("60")) }, "timeout", field.ErrorTypeInvalid, "not a duration with a unit"},
	{"timeout 0s", func(a *backup.HookAction) { a.Timeout = timeout(intstr.FromString("0s")) }, "timeout", field.ErrorTypeInvalid, "greater than 0"},
	{"negative timeout", func(a *backup.HookAction) { a.Timeout = timeout(intstr.FromString("-5s")) }, "timeout", field.ErrorTypeInvalid, "greater than 0"},
	{"timeout 7h", func(a *backup.HookAction) { a.Timeout = timeout(intstr.FromString("7h")) }, "timeout", field.ErrorTypeInvalid, "at most 6h0m0s"},
	{"no name", func(a *backup.HookAction) { a.Name = "" }, "name", field.ErrorTypeRequired, "a short name"},
	{"name not a DNS label", func(a *backup.HookAction) { a.Name = "Dump_DB" }, "name", field.ErrorTypeInvalid, ""},
	{"no exec", func(a *backup.HookAction) { a.Exec = nil }, "exec", field.ErrorTypeRequired, "the command to run"},
	{"empty command", func(a *backup.HookAction) { a.Exec.Command = nil }, "exec.command", field.ErrorTypeRequired, "no implicit shell"},
	{"empty program", func(a *backup.HookAction) { a.Exec.Command = []string{"", "x"} }, "exec.command", field.ErrorTypeRequired, ""},
	{"command too long", func(a *backup.HookAction) {
		a.Exec.Command = []string{"sh", "-c", strings.Repeat("x", MaxHookCommandBytes)}
	}, "exec.command", field.ErrorTypeTooLong, ""},
	{"container name", func(a *backup.HookAction) { a.Exec.Container = "postgres" }, "", "", ""},
	{"bad container name", func(a *backup.HookAction) { a.Exec.Container = "Postgres_Main" }, "exec.container", field.ErrorTypeInvalid, ""},
	{"pod selector", func(a *backup.HookAction) {
		a.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
	}, "", "", ""},
	{"invalid pod selector operator", func(a *backup.HookAction) {
		a.PodSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near", Values: []string{"db"}}}}
	}, "podSelector.matchExpressions[0].operator", field.ErrorTypeInvalid, ""},
	{"invalid pod selector label", func(a *backup.HookAction) {
		a.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "not valid!"}}
	}, "podSelector.matchLabels", field.ErrorTypeInvalid, ""},
	{"onError Continue", func(a *backup.HookAction) { a.OnError = backup.HookContinue }, "", "", ""},
	{"bad onError", func(a *backup.HookAction) { a.OnError = "Ignore" }, "onError", field.ErrorTypeNotSupported, `"Fail", "Continue"`},
	{"whenNoPods Fail", func(a *backup.HookAction) { a.WhenNoPods = backup.HookNoPodsFail }, "", "", ""},
	{"bad whenNoPods", func(a *backup.HookAction) { a.WhenNoPods = "Wait" }, "whenNoPods", field.ErrorTypeNotSupported, `"Skip", "Fail"`},
}

// checkHookErrors checks that errs is exactly the one error a case wants,
// on the action at path.
func checkHookErrors(t *testing.T, errs field.ErrorList, path, fld string, typ field.ErrorType, detail string) {
	t.Helper()
	if fld == "" {
		if len(errs) != 0 {
			t.Errorf("unexpected errors: %v", errs)
		}
		return
	}
	want := path + "." + fld
	if len(errs) != 1 || errs[0].Field != want || errs[0].Type != typ || !strings.Contains(errs[0].Error(), detail) {
		t.Errorf("want one %s error on %s (%q), got %v", typ, want, detail, errs)
	}
}

// The same rules hold for each list of actions, with errors on the exact
// field: a policy's and a Backup's spec.hooks.pre and spec.hooks.post, a
// RestoreJob's spec.hooks.post.
func TestHookActionValidation(t *testing.T) {
	lists := []struct {
		name     string
		path     string
		validate func(actions []backup.HookAction) field.ErrorList
	}{
		{"policy pre", "spec.hooks.pre[0]", func(actions []backup.HookAction) field.ErrorList {
			p := validPolicy()
			p.Spec.Hooks = &backup.BackupHooks{Pre: actions}
			return ValidateBackupPolicy(p)
		}},
		{"policy post", "spec.hooks.post[0]", func(actions []backup.HookAction) field.ErrorList {
			p := validPolicy()
			p.Spec.Hooks = &backup.BackupHooks{Pre: []backup.HookAction{validAction("other")}, Post: actions}
			return ValidateBackupPolicy(p)
		}},
		{"backup pre", "spec.hooks.pre[0]", func(actions []backup.HookAction) field.ErrorList {
			return ValidateBackup(hookedBackup(&backup.BackupHooks{Pre: actions}))
		}},
		{"backup post", "spec.hooks.post[0]", func(actions []backup.HookAction) field.ErrorList {
			return ValidateBackup(hookedBackup(&backup.BackupHooks{Post: actions}))
		}},
		{"restore post", "spec.hooks.post[0]", func(actions []backup.HookAction) field.ErrorList {
			return ValidateRestoreJob(hookedRestore(&backup.RestoreHooks{Post: actions}))
		}},
	}
	for _, l := range lists {
		for _, tc := range hookCases {
			t.Run(l.name+"/"+tc.name, func(t *testing.T) {
				a := validAction("dump")
				tc.mutate(&a)
				checkHookErrors(t, l.validate([]backup.HookAction{a}), l.path, tc.field, tc.typ, tc.detail)
			})
		}
	}
}

func hookedBackup(h *backup.BackupHooks) *backup.Backup {
	return &backup.Backup{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"},
		Spec: backup.BackupSpec{Target: backup.VolumeTarget{PVCName: "data", Namespace: "ns"}, Storage: backup.RepositoryStorage{PVCName: "backup-repo"}, Hooks: h}}
}

func hookedRestore(h *backup.RestoreHooks) *backup.RestoreJob {
	return &backup.RestoreJob{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"},
		Spec: backup.RestoreJobSpec{BackupName: "b", Target: backup.RestoreTarget{PVCName: "data"}, Mode: backup.RestoreModeMerge, Hooks: h}}
}

// Names are unique within a list (not across pre and post), and a list
// holds at most MaxHookActions actions.
func TestHookListValidation(t *testing.T) {
	p := validPolicy()
	p.Spec.Hooks = &backup.BackupHooks{Pre: []backup.HookAction{validAction("dump"), validAction("flush"), validAction("dump")}}
	errs := ValidateBackupPolicy(p)
	if len(errs) != 1 || errs[0].Field != "spec.hooks.pre[2].name" || errs[0].Type != field.ErrorTypeDuplicate {
		t.Errorf("duplicate name: %v", errs)
	}

	p.Spec.Hooks = &backup.BackupHooks{Pre: []backup.HookAction{validAction("dump")}, Post: []backup.HookAction{validAction("dump")}}
	if errs := ValidateBackupPolicy(p); len(errs) != 0 {
		t.Errorf("one name in pre and in post: %v", errs)
	}

	many := func(n int) []backup.HookAction {
		var out []backup.HookAction
		for i := 0; i < n; i++ {
			out = append(out, validAction(fmt.Sprintf("step-%d", i)))
		}
		return out
	}
	p.Spec.Hooks = &backup.BackupHooks{Pre: many(MaxHookActions), Post: many(MaxHookActions)}
	if errs := ValidateBackupPolicy(p); len(errs) != 0 {
		t.Errorf("%d actions in each list: %v", MaxHookActions, errs)
	}
	p.Spec.Hooks = &backup.BackupHooks{Post: many(MaxHookActions + 1)}
	errs = ValidateBackupPolicy(p)
	if len(errs) != 1 || errs[0].Field != "spec.hooks.post" || errs[0].Type != field.ErrorTypeTooMany {
		t.Errorf("%d actions: %v", MaxHookActions+1, errs)
	}
	if errs := ValidateRestoreJob(hookedRestore(&backup.RestoreHooks{Post: many(MaxHookActions + 1)})); len(errs) != 1 || errs[0].Field != "spec.hooks.post" || errs[0].Type != field.ErrorTypeTooMany {
		t.Errorf("a RestoreJob with %d actions: %v", MaxHookActions+1, errs)
	}
	if errs := ValidateBackup(hookedBackup(&backup.BackupHooks{Pre: many(MaxHookActions + 1)})); len(errs) != 1 || errs[0].Field != "spec.hooks.pre" || errs[0].Type != field.ErrorTypeTooMany {
		t.Errorf("a Backup with %d actions: %v", MaxHookActions+1, errs)
	}

	// Empty hooks are valid.
	p.Spec.Hooks = &backup.BackupHooks{}
	if errs := ValidateBackupPolicy(p); len(errs) != 0 {
		t.Errorf("empty hooks: %v", errs)
	}
	if errs := ValidateRestoreJob(hookedRestore(&backup.RestoreHooks{})); len(errs) != 0 {
		t.Errorf("empty restore hooks: %v", errs)
	}
}

// A policy's hooks may change; a Backup's and a RestoreJob's may not (their
// whole spec is immutable).
func TestHookUpdates(t *testing.T) {
	old := validPolicy()
	old.ResourceVersion = "1"
	p := old.DeepCopy()
	p.Spec.Hooks = &backup.BackupHooks{Pre: []backup.HookAction{validAction("dump")}}
	if errs := ValidateBackupPolicyUpdate(p, old); len(errs) != 0 {
		t.Errorf("adding hooks to a policy: %v", errs)
	}
	p.Spec.Hooks.Pre[0].Timeout = timeout(intstr.FromInt32(30))
	if errs := ValidateBackupPolicyUpdate(p, old); len(errs) != 1 || errs[0].Field != "spec.hooks.pre[0].timeout" {
		t.Errorf("an update is validated like a create: %v", errs)
	}

	oldB := hookedBackup(nil)
	oldB.ResourceVersion = "1"
	b := oldB.DeepCopy()
	b.Spec.Hooks = &backup.BackupHooks{Post: []backup.HookAction{validAction("resume")}}
	if errs := ValidateBackupUpdate(b, oldB); len(errs) != 1 || errs[0].Field != "spec" {
		t.Errorf("adding hooks to a Backup: %v", errs)
	}
	oldR := hookedRestore(nil)
	oldR.ResourceVersion = "1"
	r := oldR.DeepCopy()
	r.Spec.Hooks = &backup.RestoreHooks{Post: []backup.HookAction{validAction("load")}}
	if errs := ValidateRestoreJobUpdate(r, oldR); len(errs) != 1 || errs[0].Field != "spec" {
		t.Errorf("adding hooks to a RestoreJob: %v", errs)
	}
}

// HookTimeout reads a valid timeout, and falls back to a minute for what
// validation refuses.
func TestHookTimeoutValue(t *testing.T) {
	for _, tc := range []struct {
		t    *intstr.IntOrString
		want string
	}{
		{nil, "1m0s"},
		{timeout(intstr.FromString("90s")), "1m30s"},
		{timeout(intstr.FromString("1h30m")), "1h30m0s"},
		{timeout(intstr.FromInt32(60)), "1m0s"},
		{timeout(intstr.FromString("0s")), "1m0s"},
		{timeout(intstr.FromString("soon")), "1m0s"},
	} {
		if got := HookTimeout(tc.t).String(); got != tc.want {
			t.Errorf("HookTimeout(%v) = %s, want %s", tc.t, got, tc.want)
		}
	}
}

// status.hooks is validated on /status writes of Backups and RestoreJobs,
// as the controller writes it: a known stage and phase, a DNS label for a
// name, and at most 1024 bytes of stderr; each error names its entry.
func TestHookStatusValidation(t *testing.T) {
	good := backup.HookStatus{Stage: backup.HookStagePre, Name: "dump", Pod: "db-0", Container: "db", Phase: backup.HookPhaseSucceeded}
	for _, tc := range []struct {
		name   string
		mutate func(h *backup.HookStatus)
		field  string // below the entry; "" means valid
		typ    field.ErrorType
	}{
		{"valid", func(h *backup.HookStatus) {}, "", ""},
		{"post, Running", func(h *backup.HookStatus) { h.Stage, h.Phase = backup.HookStagePost, backup.HookPhaseRunning }, "", ""},
		{"every outcome: Unknown", func(h *backup.HookStatus) { h.Phase = backup.HookPhaseUnknown }, "", ""},
		{"stderr of 1024 bytes", func(h *backup.HookStatus) { h.Stderr = strings.Repeat("e", 1024) }, "", ""},
		{"bad phase", func(h *backup.HookStatus) { h.Phase = "Done" }, "phase", field.ErrorTypeNotSupported},
		{"no phase", func(h *backup.HookStatus) { h.Phase = "" }, "phase", field.ErrorTypeNotSupported},
		{"bad stage", func(h *backup.HookStatus) { h.Stage = "During" }, "stage", field.ErrorTypeNotSupported},
		{"stderr of 1025 bytes", func(h *backup.HookStatus) { h.Stderr = strings.Repeat("e", 1025) }, "stderr", field.ErrorTypeTooLong},
		{"bad name", func(h *backup.HookStatus) { h.Name = "Dump_DB" }, "name", field.ErrorTypeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := good
			tc.mutate(&bad)
			want := func(t *testing.T, errs field.ErrorList) {
				t.Helper()
				if tc.field == "" {
					if len(errs) != 0 {
						t.Errorf("unexpected errors: %v", errs)
					}
					return
				}
				if f := "status.hooks[1]." + tc.field; len(errs) != 1 || errs[0].Field != f || errs[0].Type != tc.typ {
					t.Errorf("want one %s error on %s, got %v", tc.typ, f, errs)
				}
			}
			oldB := hookedBackup(nil)
			oldB.ResourceVersion = "1"
			b := oldB.DeepCopy()
			b.Status.Hooks = []backup.HookStatus{good, bad}
			want(t, ValidateBackupStatusUpdate(b, oldB))

			oldR := hookedRestore(nil)
			oldR.ResourceVersion = "1"
			r := oldR.DeepCopy()
			r.Status.Hooks = []backup.HookStatus{good, bad}
			want(t, ValidateRestoreJobStatusUpdate(r, oldR))
		})
	}
}

// Defaulting (the scheme's, as the API server applies it): a Backup's (and
// a policy's) pre actions fail it and post actions continue, both skipped
// without a pod; a RestoreJob's post actions fail it, also when no pod
// matches. Values set are kept.
func TestHookDefaults(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.RegisterDefaults(scheme); err != nil {
		t.Fatal(err)
	}
	action := func(name string) v1alpha1.HookAction {
		return v1alpha1.HookAction{Name: name, Exec: &v1alpha1.ExecHook{Command: []string{name}}}
	}
	type defaults struct {
		OnError    v1alpha1.HookErrorMode
		WhenNoPods v1alpha1.HookNoPodsMode
		Timeout    string
	}
	got := func(a v1alpha1.HookAction) defaults {
		d := defaults{OnError: a.OnError, WhenNoPods: a.WhenNoPods}
		if a.Timeout != nil {
			d.Timeout = a.Timeout.String()
		}
		return d
	}

	r := &v1alpha1.RestoreJob{Spec: v1alpha1.RestoreJobSpec{Hooks: &v1alpha1.RestoreHooks{Post: []v1alpha1.HookAction{action("load")}}}}
	scheme.Default(r)
	if d := got(r.Spec.Hooks.Post[0]); d != (defaults{v1alpha1.HookFail, v1alpha1.HookNoPodsFail, "60s"}) {
		t.Errorf("RestoreJob post action defaulted to %+v, want onError Fail, whenNoPods Fail, 60s", d)
	}

	b := &v1alpha1.Backup{Spec: v1alpha1.BackupSpec{Hooks: &v1alpha1.BackupHooks{Pre: []v1alpha1.HookAction{action("quiesce")}, Post: []v1alpha1.HookAction{action("resume")}}}}
	scheme.Default(b)
	if d := got(b.Spec.Hooks.Pre[0]); d != (defaults{v1alpha1.HookFail, v1alpha1.HookNoPodsSkip, "60s"}) {
		t.Errorf("Backup pre action defaulted to %+v, want onError Fail, whenNoPods Skip", d)
	}
	if d := got(b.Spec.Hooks.Post[0]); d != (defaults{v1alpha1.HookContinue, v1alpha1.HookNoPodsSkip, "60s"}) {
		t.Errorf("Backup post action defaulted to %+v, want onError Continue, whenNoPods Skip", d)
	}

	p := &v1alpha1.BackupPolicy{Spec: v1alpha1.BackupPolicySpec{Hooks: &v1alpha1.BackupHooks{Pre: []v1alpha1.HookAction{action("quiesce")}, Post: []v1alpha1.HookAction{action("resume")}}}}
	scheme.Default(p)
	if pre, post := got(p.Spec.Hooks.Pre[0]), got(p.Spec.Hooks.Post[0]); pre.OnError != v1alpha1.HookFail || pre.WhenNoPods != v1alpha1.HookNoPodsSkip ||
		post.OnError != v1alpha1.HookContinue || post.WhenNoPods != v1alpha1.HookNoPodsSkip {
		t.Errorf("BackupPolicy actions defaulted to pre %+v, post %+v", pre, post)
	}

	set := action("load")
	set.OnError, set.WhenNoPods = v1alpha1.HookContinue, v1alpha1.HookNoPodsSkip
	r = &v1alpha1.RestoreJob{Spec: v1alpha1.RestoreJobSpec{Hooks: &v1alpha1.RestoreHooks{Post: []v1alpha1.HookAction{set}}}}
	scheme.Default(r)
	if d := got(r.Spec.Hooks.Post[0]); d.OnError != v1alpha1.HookContinue || d.WhenNoPods != v1alpha1.HookNoPodsSkip {
		t.Errorf("values set were changed: %+v", d)
	}
}
