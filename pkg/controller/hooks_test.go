package controller

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8stesting "k8s.io/client-go/testing"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// execCall is one command the test executor was asked to run.
type execCall struct {
	seq                       int
	namespace, pod, container string
	command                   []string
}

func (c execCall) String() string {
	return fmt.Sprintf("%s/%s[%s] %s", c.namespace, c.pod, c.container, strings.Join(c.command, " "))
}

// execBehavior is what a command does in the test executor; the zero value
// exits with 0 at once.
type execBehavior struct {
	exit   int           // the exit code
	stderr string        // written before it exits
	block  bool          // runs until its context ends (its timeout)
	gate   chan struct{} // when set, runs until it is closed
	delay  time.Duration // runs this long (after the gate)
}

// testExecutor is a HookExecutor that records every call, in order, and
// runs each command as its behavior (by the command line) says.
type testExecutor struct {
	mu       sync.Mutex
	calls    []execCall
	behavior map[string]execBehavior
}

func (e *testExecutor) Exec(ctx context.Context, namespace, pod, container string, command []string, _, stderr io.Writer) error {
	e.mu.Lock()
	e.calls = append(e.calls, execCall{seq: len(e.calls), namespace: namespace, pod: pod, container: container, command: slices.Clone(command)})
	b := e.behavior[strings.Join(command, " ")]
	e.mu.Unlock()
	if b.stderr != "" {
		_, _ = io.WriteString(stderr, b.stderr)
	}
	switch {
	case b.block:
		<-ctx.Done()
		return ctx.Err()
	case b.gate != nil:
		select {
		case <-b.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if b.delay > 0 {
		select {
		case <-time.After(b.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if b.exit != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with non-zero exit code: exit status %d", b.exit), Code: b.exit}
	}
	return nil
}

// made returns the calls so far, as "namespace/pod[container] command".
func (e *testExecutor) made() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, c := range e.calls {
		out = append(out, c.String())
	}
	return out
}

// useExecutor gives f's Manager a test executor.
func useExecutor(f *fixture, behavior map[string]execBehavior) *testExecutor {
	e := &testExecutor{behavior: behavior}
	f.m.exec = e
	return e
}

// waitHookRuns waits until every command the Manager started has ended and
// woken its object.
func (f *fixture) waitHookRuns() {
	f.t.Helper()
	done := make(chan struct{})
	go func() {
		f.m.hooks.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		f.t.Fatal("hook commands still running after 10s")
	}
}

// execAction is a hook action running the command name (its one word).
func execAction(name string, onError v1alpha1.HookErrorMode) v1alpha1.HookAction {
	return v1alpha1.HookAction{Name: name, Exec: &v1alpha1.ExecHook{Command: []string{name}},
		Timeout: ptr.To(intstr.FromString("60s")), OnError: onError, WhenNoPods: v1alpha1.HookNoPodsSkip}
}

// hookedBackup is Backup prod/b of claim prod/data with the hook actions.
func hookedBackup(pre, post []v1alpha1.HookAction) *v1alpha1.Backup {
	b := newBackup("prod", "b", "uid-1", "prod")
	b.Spec.Hooks = &v1alpha1.BackupHooks{Pre: pre, Post: post}
	return b
}

// runningPod is a running pod whose one container "db" mounts claim "data".
func runningPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("pod-uid-" + name), Labels: map[string]string{"app": "db"}},
		Spec: corev1.PodSpec{NodeName: "node-1",
			Volumes:    []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
			Containers: []corev1.Container{{Name: "db", VolumeMounts: []corev1.VolumeMount{{Name: "d", MountPath: "/var/lib/db"}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
}

// controlledBy makes a pod a replica of a workload (a controller ownerRef).
func controlledBy(p *corev1.Pod, kind, name string) *corev1.Pod {
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: types.UID(kind + "-" + name), Controller: ptr.To(true)}}
	return p
}

// hookPhases renders status.hooks as "Pre/a@db-0=Succeeded ...".
func hookPhases(st []v1alpha1.HookStatus) string {
	var out []string
	for _, s := range st {
		e := string(s.Stage) + "/" + s.Name
		if s.Pod != "" {
			e += "@" + s.Pod
		}
		out = append(out, e+"="+string(s.Phase))
	}
	return strings.Join(out, " ")
}

// failJob marks a Job Failed, as the Job controller would after its retries.
func (f *fixture) failJob(job *batchv1.Job) {
	f.t.Helper()
	job = job.DeepCopy()
	if job.UID == "" {
		job.UID = types.UID("job-uid-" + job.Name)
	}
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}}
	if _, err := f.kube.BatchV1().Jobs(job.Namespace).UpdateStatus(context.Background(), job, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.cache(job)
}

// jobCreates counts the Jobs the operator asked the API server to create.
func jobCreates(f *fixture) int {
	n := 0
	for _, a := range f.kube.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "jobs" {
			n++
		}
	}
	return n
}

func countContaining(events []string, s string) int {
	n := 0
	for _, e := range events {
		if strings.Contains(e, s) {
			n++
		}
	}
	return n
}

func hookFailureCount(t *testing.T, kind, stage string) float64 {
	t.Helper()
	v, err := testutil.GetCounterMetricValue(hookFailures.WithLabelValues(kind, stage))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Pre actions run one after the other, each only after the one before
// ended, and the mover Job is created only once all of them succeeded; the
// post action runs after the Job completed, while the Backup is Running and
// Finishing, and the Backup is Completed after it. A command's end wakes the
// Backup; a sync while a command runs changes nothing.
func TestBackupHooksRunInOrder(t *testing.T) {
	gateA := make(chan struct{})
	bk := hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail), execAction("b", v1alpha1.HookFail)},
		[]v1alpha1.HookAction{execAction("c", v1alpha1.HookContinue)})
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	e := useExecutor(f, map[string]execBehavior{"a": {gate: gateA}})
	var hooksAtJobCreate string
	f.kube.PrependReactor("create", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		got, _ := f.client.BackupV1alpha1().Backups("prod").Get(context.Background(), "b", metav1.GetOptions{})
		hooksAtJobCreate = hookPhases(got.Status.Hooks)
		return false, nil, nil
	})

	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Running" || got.Status.Phase != v1alpha1.BackupPhasePending ||
		!strings.Contains(got.Status.Message, "running pre hook a") {
		t.Fatalf("after the first sync: hooks %q phase %q message %q, want a Running, Pending", p, got.Status.Phase, got.Status.Message)
	}
	if st := got.Status.Hooks[0]; st.Container != "db" || st.StartTime == nil {
		t.Errorf("entry %+v, want container db and a start time", st)
	}
	if len(f.jobs("prod")) != 0 {
		t.Fatal("a Job was created while a pre hook runs")
	}
	waitFor(t, "a to be run", func() bool { return len(e.made()) == 1 })

	// While a runs, a sync writes nothing and starts nothing.
	writes(f.client)
	f.syncBackup("prod", "b")
	if w := writes(f.client); len(w) != 0 {
		t.Errorf("a sync while a runs wrote %q", w)
	}
	if len(e.made()) != 1 || len(f.jobs("prod")) != 0 {
		t.Fatalf("calls %q, %d Jobs while a runs", e.made(), len(f.jobs("prod")))
	}

	close(gateA)
	f.waitHookRuns()
	if q := drain(f.m.backupQueue); !slices.Contains(q, "prod/b") {
		t.Errorf("the end of a did not wake the Backup: queue %q", q)
	}
	f.syncBackup("prod", "b")
	if p := hookPhases(f.backup("prod", "b").Status.Hooks); p != "Pre/a@db-0=Succeeded Pre/b@db-0=Running" {
		t.Fatalf("after a ended: %q, want a Succeeded and b Running", p)
	}
	if len(f.jobs("prod")) != 0 {
		t.Fatal("a Job was created while b runs")
	}
	f.waitHookRuns()
	for i := 0; i < 3 && len(f.jobs("prod")) == 0; i++ {
		f.syncBackup("prod", "b")
	}
	job := f.onlyJob("prod")
	if hooksAtJobCreate != "Pre/a@db-0=Succeeded Pre/b@db-0=Succeeded" {
		t.Errorf("hooks when the Job was created: %q, want both pre actions Succeeded", hooksAtJobCreate)
	}
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseRunning {
		t.Fatalf("phase %q with its Job, want Running", got.Status.Phase)
	}
	if len(e.made()) != 2 {
		t.Fatalf("calls %q before the copy ended, want a and b only", e.made())
	}

	f.finishJob(&job, summaryA)
	f.syncBackup("prod", "b")
	got = f.backup("prod", "b")
	fin := condition(got.Status.Conditions, v1alpha1.ConditionFinishing)
	if got.Status.Phase != v1alpha1.BackupPhaseRunning || fin == nil || fin.Status != metav1.ConditionTrue || fin.Reason != reasonSnapshotStored ||
		!strings.HasSuffix(hookPhases(got.Status.Hooks), "Post/c@db-0=Running") || !strings.Contains(got.Status.Message, "running post hook c") {
		t.Fatalf("after the copy: phase %q Finishing %+v hooks %q message %q, want Running, Finishing (SnapshotStored), c Running",
			got.Status.Phase, fin, hookPhases(got.Status.Hooks), got.Status.Message)
	}
	f.waitHookRuns()
	f.syncBackup("prod", "b")
	got = f.backup("prod", "b")
	if got.Status.Phase != v1alpha1.BackupPhaseCompleted || got.Status.SnapshotID != "aaaaaaaaaaaaaaaaaaaaaaaa" ||
		condition(got.Status.Conditions, v1alpha1.ConditionFinishing) != nil || condition(got.Status.Conditions, v1alpha1.ConditionHookFailed) != nil {
		t.Fatalf("phase %q snapshot %q conditions %+v, want Completed without Finishing or HookFailed", got.Status.Phase, got.Status.SnapshotID, got.Status.Conditions)
	}
	if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Succeeded Pre/b@db-0=Succeeded Post/c@db-0=Succeeded" {
		t.Errorf("status.hooks %q, want 3 entries Succeeded", p)
	}
	for _, st := range got.Status.Hooks {
		if st.ExitCode == nil || *st.ExitCode != 0 || st.CompletionTime == nil || !strings.Contains(st.Message, "exited with 0") {
			t.Errorf("entry %+v, want exit code 0, a completion time and a message", st)
		}
	}
	var order []string
	for _, c := range e.calls {
		order = append(order, fmt.Sprint(c.seq, " ", c))
	}
	if got := strings.Join(order, ", "); got != "0 prod/db-0[db] a, 1 prod/db-0[db] b, 2 prod/db-0[db] c" {
		t.Errorf("calls %s", got)
	}
	ev := f.drainEvents()
	if n := countContaining(ev, "Normal HookSucceeded"); n != 3 {
		t.Errorf("%d HookSucceeded events, want 3: %q", n, ev)
	}
	if countContaining(ev, "Normal Completed") != 1 {
		t.Errorf("no Completed event: %q", ev)
	}
}

// A pre action that exits 1 with onError Fail stops the Backup before
// anything is copied: no Job is ever created, the post actions still run,
// and the Backup fails (PreHookFailed) with a message naming the hook, its
// exit code and the end of its stderr. The failure is counted.
func TestFailedPreHookFailsTheBackup(t *testing.T) {
	bk := hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail), execAction("b", v1alpha1.HookFail)},
		[]v1alpha1.HookAction{execAction("c", v1alpha1.HookContinue)})
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	e := useExecutor(f, map[string]execBehavior{"a": {exit: 1, stderr: "checking the server\nFATAL: could not connect to the server\n"}})
	before := hookFailureCount(t, "Backup", "pre")

	f.syncBackup("prod", "b")
	f.waitHookRuns()
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	fin := condition(got.Status.Conditions, v1alpha1.ConditionFinishing)
	if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Failed Post/c@db-0=Running" || fin == nil || fin.Reason != "PreHookFailed" {
		t.Fatalf("after a failed: hooks %q Finishing %+v, want a Failed, b not run, c Running, Finishing PreHookFailed", p, fin)
	}
	if got.Status.Phase == v1alpha1.BackupPhaseFailed {
		t.Fatal("failed before its post action ran")
	}
	f.waitHookRuns()
	f.syncBackup("prod", "b")
	got = f.backup("prod", "b")
	msg := got.Status.Message
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "PreHookFailed" {
		t.Fatalf("phase %q reason %q, want Failed: PreHookFailed", got.Status.Phase, failedReason(got.Status.Conditions))
	}
	for _, want := range []string{"pre hook a in pod db-0 (container db)", "exited with 1", "stderr: checking the server | FATAL: could not connect to the server", "nothing was copied"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	a := got.Status.Hooks[0]
	if a.ExitCode == nil || *a.ExitCode != 1 || !strings.Contains(a.Stderr, "FATAL: could not connect") {
		t.Errorf("entry of a %+v, want exit code 1 and its stderr", a)
	}
	if hf := condition(got.Status.Conditions, v1alpha1.ConditionHookFailed); hf == nil || hf.Status != metav1.ConditionTrue || hf.Reason != "HookFailed" {
		t.Errorf("HookFailed condition %+v", hf)
	}
	if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Failed Post/c@db-0=Succeeded" {
		t.Errorf("status.hooks %q", p)
	}
	if n := jobCreates(f); n != 0 || len(f.jobs("prod")) != 0 {
		t.Errorf("%d Jobs created, want none", n)
	}
	if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] a", "prod/db-0[db] c"}) {
		t.Errorf("calls %q, want a then c", calls)
	}
	ev := strings.Join(f.drainEvents(), "\n")
	for _, want := range []string{"Warning HookFailed pre hook a in pod prod/db-0 (container db): exited with 1", "Warning PreHookFailed"} {
		if !strings.Contains(ev, want) {
			t.Errorf("events lack %q: %s", want, ev)
		}
	}
	if after := hookFailureCount(t, "Backup", "pre"); after != before+1 {
		t.Errorf("backup_operator_hook_failures_total{kind=Backup,stage=pre} went from %v to %v, want one more", before, after)
	}
	// A Failed Backup runs nothing again.
	f.syncBackup("prod", "b")
	if len(e.made()) != 2 {
		t.Errorf("calls after the end: %q", e.made())
	}
}

// A pre action with onError Continue that fails is recorded (HookFailed)
// and the backup goes on: the Job is created, and the Backup is Completed
// with the HookFailed condition, its message saying what failed.
func TestFailedPreHookWithContinue(t *testing.T) {
	bk := hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookContinue)}, nil)
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	useExecutor(f, map[string]execBehavior{"a": {exit: 1, stderr: "warning: flush failed"}})
	f.syncBackup("prod", "b")
	f.waitHookRuns()
	for i := 0; i < 3 && len(f.jobs("prod")) == 0; i++ {
		f.syncBackup("prod", "b")
	}
	job := f.onlyJob("prod")
	f.finishJob(&job, summaryA)
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	hf := condition(got.Status.Conditions, v1alpha1.ConditionHookFailed)
	if got.Status.Phase != v1alpha1.BackupPhaseCompleted || hf == nil || hf.Status != metav1.ConditionTrue {
		t.Fatalf("phase %q HookFailed %+v, want Completed with HookFailed True", got.Status.Phase, hf)
	}
	if !strings.Contains(got.Status.Message, "pre hook a") || !strings.Contains(got.Status.Message, "exited with 1") {
		t.Errorf("message %q does not say that a failed", got.Status.Message)
	}
	if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Failed" {
		t.Errorf("status.hooks %q", p)
	}
}

// A command that runs longer than its timeout is abandoned: TimedOut, and
// with onError Fail the Backup fails saying so.
func TestHookTimeout(t *testing.T) {
	a := execAction("a", v1alpha1.HookFail)
	a.Timeout = ptr.To(intstr.FromString("1s"))
	f := newFixture(t, hookedBackup([]v1alpha1.HookAction{a}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	useExecutor(f, map[string]execBehavior{"a": {block: true}})
	start := time.Now()
	f.syncBackup("prod", "b")
	f.waitHookRuns()
	if took := time.Since(start); took < time.Second || took > 5*time.Second {
		t.Errorf("the command was abandoned after %s, want its 1s timeout", took)
	}
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=TimedOut" {
		t.Fatalf("status.hooks %q, want a TimedOut", p)
	}
	if st := got.Status.Hooks[0]; !strings.Contains(st.Message, "after 1s (its timeout)") || st.ExitCode != nil {
		t.Errorf("entry %+v, want a message naming the 1s timeout and no exit code", st)
	}
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "PreHookFailed" ||
		!strings.Contains(got.Status.Message, "1s (its timeout)") {
		t.Errorf("phase %q reason %q message %q, want Failed: PreHookFailed naming the timeout", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Message)
	}
	if hf := condition(got.Status.Conditions, v1alpha1.ConditionHookFailed); hf == nil || hf.Reason != "HookTimedOut" {
		t.Errorf("HookFailed condition %+v, want reason HookTimedOut", hf)
	}
}

// A command recorded Running by an earlier process is not run again by a
// new Manager: its entry becomes Unknown (a failure), the post action runs
// exactly once, and the Backup fails.
func TestHookRunningBeforeARestartIsNotRunAgain(t *testing.T) {
	bk := hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, []v1alpha1.HookAction{execAction("c", v1alpha1.HookContinue)})
	started := metav1.NewTime(time.Date(2026, 11, 30, 2, 0, 5, 0, time.UTC))
	bk.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhasePending, Message: "running pre hook a before the copy",
		Hooks: []v1alpha1.HookStatus{{Stage: v1alpha1.HookStagePre, Name: "a", Pod: "db-0", Container: "db", Phase: v1alpha1.HookPhaseRunning, StartTime: &started}}}
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	e := useExecutor(f, nil)

	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Unknown Post/c@db-0=Running" {
		t.Fatalf("status.hooks %q, want a Unknown and c Running", p)
	}
	if st := got.Status.Hooks[0]; !strings.Contains(st.Message, "restarted") || st.CompletionTime == nil {
		t.Errorf("entry of a %+v, want a message about the restart", st)
	}
	f.waitHookRuns()
	for i := 0; i < 3; i++ {
		f.syncBackup("prod", "b")
	}
	got = f.backup("prod", "b")
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "PreHookFailed" {
		t.Errorf("phase %q reason %q, want Failed: PreHookFailed", got.Status.Phase, failedReason(got.Status.Conditions))
	}
	if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] c"}) {
		t.Errorf("calls %q, want only c, once", calls)
	}
	if hf := condition(got.Status.Conditions, v1alpha1.ConditionHookFailed); hf == nil || hf.Reason != "HookUnknown" {
		t.Errorf("HookFailed condition %+v, want reason HookUnknown", hf)
	}
	if len(f.jobs("prod")) != 0 {
		t.Error("a Job was created after a pre action of unknown outcome")
	}
}

// A container name that matches no container of the pod fails the action
// without running anything, and the message lists the pod's containers.
func TestHookContainerThatDoesNotExist(t *testing.T) {
	a := execAction("a", v1alpha1.HookFail)
	a.Exec.Container = "postgres"
	pod := runningPod("prod", "db-0")
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "metrics"})
	f := newFixture(t, hookedBackup([]v1alpha1.HookAction{a}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), pod)
	e := useExecutor(f, nil)
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Failed" {
		t.Fatalf("status.hooks %q, want a Failed", p)
	}
	if msg := got.Status.Hooks[0].Message; !strings.Contains(msg, `pod db-0 has no container "postgres" (its containers: db, metrics)`) || !strings.Contains(msg, "nothing was run") {
		t.Errorf("message %q, want the pod's containers listed", msg)
	}
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "PreHookFailed" {
		t.Errorf("phase %q reason %q, want Failed: PreHookFailed", got.Status.Phase, failedReason(got.Status.Conditions))
	}
	f.waitHookRuns()
	if calls := e.made(); len(calls) != 0 {
		t.Errorf("the executor was called: %q", calls)
	}
}

// With no running pod the action is Skipped (the claim is quiet) and the
// backup goes on; with whenNoPods Fail it fails, and onError Fail fails the
// Backup.
func TestHookWithoutPods(t *testing.T) {
	t.Run("skip", func(t *testing.T) {
		pending := runningPod("prod", "db-0")
		pending.Status.Phase = corev1.PodPending
		f := newFixture(t, hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), pending)
		e := useExecutor(f, nil)
		f.syncBackup("prod", "b")
		got := f.backup("prod", "b")
		if p := hookPhases(got.Status.Hooks); p != "Pre/a=Skipped" || !strings.Contains(got.Status.Hooks[0].Message, "no running pod in namespace prod mounts claim data") {
			t.Fatalf("status.hooks %q %+v, want a Skipped saying no pod runs", p, got.Status.Hooks)
		}
		f.syncBackup("prod", "b")
		if len(f.jobs("prod")) != 1 || f.backup("prod", "b").Status.Phase != v1alpha1.BackupPhaseRunning {
			t.Errorf("%d Jobs, phase %q: want the copy to start", len(f.jobs("prod")), f.backup("prod", "b").Status.Phase)
		}
		if condition(f.backup("prod", "b").Status.Conditions, v1alpha1.ConditionHookFailed) != nil {
			t.Error("a skipped action set HookFailed")
		}
		if len(e.made()) != 0 {
			t.Errorf("calls %q", e.made())
		}
		if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Normal HookSkipped pre hook a") {
			t.Errorf("no HookSkipped event: %s", ev)
		}
	})
	t.Run("fail", func(t *testing.T) {
		a := execAction("a", v1alpha1.HookFail)
		a.WhenNoPods = v1alpha1.HookNoPodsFail
		f := newFixture(t, hookedBackup([]v1alpha1.HookAction{a}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
		useExecutor(f, nil)
		f.syncBackup("prod", "b")
		got := f.backup("prod", "b")
		if p := hookPhases(got.Status.Hooks); p != "Pre/a=Failed" || !strings.Contains(got.Status.Hooks[0].Message, "whenNoPods: Fail") {
			t.Fatalf("status.hooks %q %+v, want a Failed (whenNoPods: Fail)", p, got.Status.Hooks)
		}
		if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "PreHookFailed" || len(f.jobs("prod")) != 0 {
			t.Errorf("phase %q reason %q Jobs %d, want Failed: PreHookFailed, no Job", got.Status.Phase, failedReason(got.Status.Conditions), len(f.jobs("prod")))
		}
	})
}

// An action runs in one pod per workload (the first by name among a
// controller's running pods; a pod without a controller is its own), or in
// every selected pod with allPods. A pod being deleted or not Running is
// never used, nor one of the operator's own mover pods.
func TestHookPodSelection(t *testing.T) {
	replica := func(name string) *corev1.Pod { return controlledBy(runningPod("prod", name), "StatefulSet", "db") }
	deleting := replica("db-0")
	deleting.DeletionTimestamp = ptr.To(metav1.NewTime(time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)))
	notRunning := replica("db-1")
	notRunning.Status.Phase = corev1.PodPending
	mover := runningPod("prod", "a-mover")
	mover.Labels = map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy, "app": "db"}
	for _, tc := range []struct {
		name   string
		pods   []*corev1.Pod
		mutate func(a *v1alpha1.HookAction)
		want   []string
	}{
		{"one per StatefulSet", []*corev1.Pod{replica("db-2"), replica("db-0"), replica("db-1")}, nil, []string{"db-0"}},
		{"allPods", []*corev1.Pod{replica("db-2"), replica("db-0"), replica("db-1")}, func(a *v1alpha1.HookAction) { a.AllPods = true }, []string{"db-0", "db-1", "db-2"}},
		{"one per ReplicaSet and per StatefulSet", []*corev1.Pod{controlledBy(runningPod("prod", "web-x"), "ReplicaSet", "web"),
			controlledBy(runningPod("prod", "web-a"), "ReplicaSet", "web"), replica("db-1"), replica("db-0")}, nil, []string{"db-0", "web-a"}},
		{"pods without a controller are their own", []*corev1.Pod{runningPod("prod", "p2"), runningPod("prod", "p1")}, nil, []string{"p1", "p2"}},
		{"deleted and pending pods are not used", []*corev1.Pod{deleting, notRunning, replica("db-2")}, nil, []string{"db-2"}},
		{"deleted and pending pods are not used with allPods", []*corev1.Pod{deleting, notRunning, replica("db-2")},
			func(a *v1alpha1.HookAction) { a.AllPods = true }, []string{"db-2"}},
		{"mover pods are not used", []*corev1.Pod{mover, runningPod("prod", "db-0")}, func(a *v1alpha1.HookAction) { a.AllPods = true }, []string{"db-0"}},
		{"mover pods are not used by a selector", []*corev1.Pod{mover, runningPod("prod", "db-0")}, func(a *v1alpha1.HookAction) {
			a.AllPods, a.PodSelector = true, &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
		}, []string{"db-0"}},
		{"a selector picks pods that do not mount the claim", []*corev1.Pod{runningPod("prod", "db-0"), func() *corev1.Pod {
			p := runningPod("prod", "cache-0")
			p.Labels = map[string]string{"app": "cache"}
			p.Spec.Volumes, p.Spec.Containers = nil, []corev1.Container{{Name: "redis"}}
			return p
		}()}, func(a *v1alpha1.HookAction) {
			a.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}}
		}, []string{"cache-0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := execAction("a", v1alpha1.HookFail)
			if tc.mutate != nil {
				tc.mutate(&a)
			}
			objs := []runtime.Object{hookedBackup([]v1alpha1.HookAction{a}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo")}
			for _, p := range tc.pods {
				objs = append(objs, p.DeepCopy())
			}
			f := newFixture(t, objs...)
			e := useExecutor(f, nil)
			f.syncBackup("prod", "b")
			f.waitHookRuns()
			var pods []string
			for _, c := range e.calls {
				pods = append(pods, c.pod)
			}
			slices.Sort(pods)
			if !slices.Equal(pods, tc.want) {
				t.Errorf("ran in %q, want %q", pods, tc.want)
			}
			var entries []string
			for _, st := range f.backup("prod", "b").Status.Hooks {
				entries = append(entries, st.Pod)
			}
			if !slices.Equal(entries, tc.want) {
				t.Errorf("status.hooks name pods %q, want %q", entries, tc.want)
			}
		})
	}
}

// Without exec.container an action runs in the container that mounts the
// claim; when several do, it fails and asks for exec.container.
func TestHookDefaultContainer(t *testing.T) {
	t.Run("the one mounting the claim", func(t *testing.T) {
		pod := runningPod("prod", "db-0")
		pod.Spec.Containers = []corev1.Container{{Name: "sidecar"}, pod.Spec.Containers[0], {Name: "metrics"}}
		f := newFixture(t, hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), pod)
		e := useExecutor(f, nil)
		f.syncBackup("prod", "b")
		f.waitHookRuns()
		if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] a"}) {
			t.Errorf("calls %q, want a in container db", calls)
		}
	})
	t.Run("two mounting the claim", func(t *testing.T) {
		pod := runningPod("prod", "db-0")
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "agent", VolumeMounts: []corev1.VolumeMount{{Name: "d", MountPath: "/data"}}})
		f := newFixture(t, hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), pod)
		e := useExecutor(f, nil)
		f.syncBackup("prod", "b")
		got := f.backup("prod", "b")
		if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Failed" ||
			!strings.Contains(got.Status.Hooks[0].Message, "containers db, agent of pod db-0 all mount claim data; set exec.container") {
			t.Errorf("status.hooks %q %+v, want a Failed asking for exec.container", p, got.Status.Hooks)
		}
		f.waitHookRuns()
		if len(e.made()) != 0 {
			t.Errorf("calls %q", e.made())
		}
	})
}

// A Job that fails still runs the post actions; the Backup is Failed
// (MoverFailed) after them, the Finishing condition carrying that reason
// across syncs meanwhile.
func TestPostHookAfterAFailedCopy(t *testing.T) {
	gate := make(chan struct{})
	bk := hookedBackup(nil, []v1alpha1.HookAction{execAction("c", v1alpha1.HookContinue)})
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	e := useExecutor(f, map[string]execBehavior{"c": {gate: gate}})
	f.syncBackup("prod", "b")
	if len(e.made()) != 0 {
		t.Fatalf("calls %q before the copy", e.made())
	}
	job := f.onlyJob("prod")
	f.failJob(&job)
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	fin := condition(got.Status.Conditions, v1alpha1.ConditionFinishing)
	if fin == nil || fin.Reason != "MoverFailed" || got.Status.Phase == v1alpha1.BackupPhaseFailed || hookPhases(got.Status.Hooks) != "Post/c@db-0=Running" {
		t.Fatalf("phase %q Finishing %+v hooks %q, want c Running and Finishing (MoverFailed)", got.Status.Phase, fin, hookPhases(got.Status.Hooks))
	}
	waitFor(t, "c to be run", func() bool { return len(e.made()) == 1 })
	writes(f.client)
	f.syncBackup("prod", "b")
	if w := writes(f.client); len(w) != 0 {
		t.Errorf("a sync while c runs wrote %q", w)
	}
	if fin := condition(f.backup("prod", "b").Status.Conditions, v1alpha1.ConditionFinishing); fin == nil || fin.Reason != "MoverFailed" {
		t.Errorf("Finishing %+v after another sync, want MoverFailed kept", fin)
	}
	close(gate)
	f.waitHookRuns()
	f.syncBackup("prod", "b")
	got = f.backup("prod", "b")
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "MoverFailed" || condition(got.Status.Conditions, v1alpha1.ConditionFinishing) != nil {
		t.Errorf("phase %q reason %q conditions %+v, want Failed: MoverFailed, Finishing gone", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Conditions)
	}
	if !strings.Contains(got.Status.Message, "BackoffLimitExceeded") || hookPhases(got.Status.Hooks) != "Post/c@db-0=Succeeded" {
		t.Errorf("message %q hooks %q", got.Status.Message, hookPhases(got.Status.Hooks))
	}
	if len(e.made()) != 1 {
		t.Errorf("calls %q, want c once", e.made())
	}
}

// A post action with onError Fail that fails after the snapshot was stored
// fails the Backup (PostHookFailed); the snapshot stays recorded, so that
// deleting the Backup removes it.
func TestFailedPostHookAfterTheSnapshot(t *testing.T) {
	bk := hookedBackup(nil, []v1alpha1.HookAction{execAction("c", v1alpha1.HookFail)})
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	useExecutor(f, map[string]execBehavior{"c": {exit: 2, stderr: "pg_stop_backup failed"}})
	before := hookFailureCount(t, "Backup", "post")
	f.syncBackup("prod", "b")
	job := f.onlyJob("prod")
	f.finishJob(&job, summaryA)
	f.syncBackup("prod", "b")
	f.waitHookRuns()
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "PostHookFailed" || got.Status.SnapshotID != "aaaaaaaaaaaaaaaaaaaaaaaa" {
		t.Fatalf("phase %q reason %q snapshot %q, want Failed: PostHookFailed with the snapshot kept", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.SnapshotID)
	}
	for _, want := range []string{"snapshot aaaaaaaaaaaa is stored", "post hook c in pod db-0", "exited with 2", "pg_stop_backup failed"} {
		if !strings.Contains(got.Status.Message, want) {
			t.Errorf("message %q lacks %q", got.Status.Message, want)
		}
	}
	if got.Status.Stats == nil || got.Status.Stats.Files != 1 {
		t.Errorf("stats %+v, want the mover's", got.Status.Stats)
	}
	if after := hookFailureCount(t, "Backup", "post"); after != before+1 {
		t.Errorf("hook failures (Backup, post) went from %v to %v", before, after)
	}
}

// A Backup deleted while its Job runs, with post actions due: the Job is
// deleted first (foreground, so its pods are gone), then the post actions
// run, and only then does the finalizer go.
func TestDeletedBackupRunsPostHooksAfterStoppingTheJob(t *testing.T) {
	bk := hookedBackup(nil, []v1alpha1.HookAction{execAction("c", v1alpha1.HookContinue)})
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	e := useExecutor(f, nil)
	f.syncBackup("prod", "b")
	job := f.onlyJob("prod")
	job.UID = "job-uid"
	if _, err := f.kube.BatchV1().Jobs("prod").Update(context.Background(), &job, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.cache(&job)
	deleting := f.backup("prod", "b")
	deleting.DeletionTimestamp = ptr.To(metav1.NewTime(f.now))
	if _, err := f.client.BackupV1alpha1().Backups("prod").Update(context.Background(), deleting, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.resync()
	f.kube.ClearActions()

	res := f.syncBackup("prod", "b")
	var deleted []k8stesting.DeleteActionImpl
	for _, a := range f.kube.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok {
			deleted = append(deleted, d)
		}
	}
	if len(deleted) != 1 || deleted[0].Name != job.Name || deleted[0].DeleteOptions.PropagationPolicy == nil ||
		*deleted[0].DeleteOptions.PropagationPolicy != metav1.DeletePropagationForeground {
		t.Fatalf("deleted %+v, want the Job, foreground", deleted)
	}
	if res.after == 0 || len(e.made()) != 0 || hookPhases(f.backup("prod", "b").Status.Hooks) != "" {
		t.Fatalf("requeue %s calls %q hooks %q: want to wait for the Job, no post action yet", res.after, e.made(), hookPhases(f.backup("prod", "b").Status.Hooks))
	}
	// The Job is still there, being deleted: still no post action.
	going := job.DeepCopy()
	going.DeletionTimestamp = ptr.To(metav1.NewTime(f.now))
	f.cache(going)
	if err := f.kube.Tracker().Add(going); err != nil {
		t.Fatal(err)
	}
	f.syncBackup("prod", "b")
	if len(e.made()) != 0 || hookPhases(f.backup("prod", "b").Status.Hooks) != "" {
		t.Fatalf("calls %q hooks %q while the Job's pods go", e.made(), hookPhases(f.backup("prod", "b").Status.Hooks))
	}
	if !hasFinalizer(f.backup("prod", "b"), v1alpha1.DataFinalizer) {
		t.Fatal("the finalizer went before the post action ran")
	}
	// The Job is gone.
	if err := f.kube.Tracker().Delete(batchv1.SchemeGroupVersion.WithResource("jobs"), "prod", job.Name); err != nil {
		t.Fatal(err)
	}
	f.jobInformerDelete(going)
	f.syncBackup("prod", "b")
	if p := hookPhases(f.backup("prod", "b").Status.Hooks); p != "Post/c@db-0=Running" {
		t.Fatalf("hooks %q after the Job went, want c Running", p)
	}
	if !hasFinalizer(f.backup("prod", "b"), v1alpha1.DataFinalizer) {
		t.Fatal("the finalizer went while the post action runs")
	}
	f.waitHookRuns()
	for i := 0; i < 3; i++ {
		if _, err := f.m.syncBackup(context.Background(), "prod", "b"); err != nil {
			t.Fatal(err)
		}
		f.resync()
	}
	got, err := f.client.BackupV1alpha1().Backups("prod").Get(context.Background(), "b", metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	if err == nil {
		if hasFinalizer(got, v1alpha1.DataFinalizer) {
			t.Errorf("the finalizer stayed after the post action; hooks %q", hookPhases(got.Status.Hooks))
		}
		if p := hookPhases(got.Status.Hooks); p != "Post/c@db-0=Succeeded" {
			t.Errorf("hooks %q", p)
		}
	}
	if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] c"}) {
		t.Errorf("calls %q, want c once", calls)
	}
}

// A deleted Backup whose post stage was stopped by a failed post action
// with onError Fail (the actions after it never ran, by design) is not held
// by its hooks: the finalizer proceeds and prunes its snapshot.
func TestDeletedBackupAfterAFailedPostStageIsPruned(t *testing.T) {
	bk := hookedBackup(nil, []v1alpha1.HookAction{execAction("c", v1alpha1.HookFail), execAction("d", v1alpha1.HookContinue)})
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	e := useExecutor(f, map[string]execBehavior{"c": {exit: 1}})
	f.syncBackup("prod", "b")
	job := f.onlyJob("prod")
	f.finishJob(&job, summaryA)
	f.syncBackup("prod", "b")
	f.waitHookRuns()
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "PostHookFailed" || hookPhases(got.Status.Hooks) != "Post/c@db-0=Failed" {
		t.Fatalf("phase %q reason %q hooks %q, want Failed: PostHookFailed after c alone", got.Status.Phase, failedReason(got.Status.Conditions), hookPhases(got.Status.Hooks))
	}
	got.DeletionTimestamp = ptr.To(metav1.NewTime(f.now))
	if _, err := f.client.BackupV1alpha1().Backups("prod").Update(context.Background(), got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.resync()
	for i := 0; i < 3; i++ {
		f.syncBackup("prod", "b")
	}
	var prune bool
	for _, j := range f.jobs("prod") {
		if j.Labels[v1alpha1.JobKindLabel] == "prune" {
			prune = true
		}
	}
	if !prune {
		t.Errorf("no prune Job for the deleted Backup's snapshot: the deletion is held (hooks %q)", hookPhases(f.backup("prod", "b").Status.Hooks))
	}
	if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] c"}) {
		t.Errorf("calls %q, want c only", calls)
	}
}

// Without an executor (a server that runs none) an action fails, saying so.
func TestHookWithoutAnExecutor(t *testing.T) {
	f := newFixture(t, hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	f.syncBackup("prod", "b")
	f.waitHookRuns()
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Failed" || !strings.Contains(got.Status.Hooks[0].Message, "runs no hook executor") {
		t.Errorf("status.hooks %q %+v", p, got.Status.Hooks)
	}
	if got.Status.Phase != v1alpha1.BackupPhaseFailed {
		t.Errorf("phase %q, want Failed", got.Status.Phase)
	}
}

// hookedRestore is RestoreJob prod/r of Backup prod/b into claim prod/data,
// which a running pod uses (allowInUse), with post actions.
func hookedRestore(t *testing.T, dryRun bool, post ...v1alpha1.HookAction) *fixture {
	r := newRestore("prod", "r", "b", "data")
	r.Spec.AllowInUse, r.Spec.DryRun = true, dryRun
	r.Spec.Hooks = &v1alpha1.RestoreHooks{Post: post}
	return newFixture(t, completedBackup("prod", "b", 1000), r, claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
}

const restoreSummary = `{"operation":"restore","files":3,"bytes":4096,"creates":1,"overwrites":2,"deletes":0,"verified":true}`

// A RestoreJob's post actions run after its Job completed, and it is
// Completed after them; a failed one with onError Fail fails it
// (PostHookFailed); a dry run and a failed restore run none and record them
// Skipped.
func TestRestorePostHooks(t *testing.T) {
	t.Run("run after the data is written", func(t *testing.T) {
		gate := make(chan struct{})
		f := hookedRestore(t, false, execAction("load", v1alpha1.HookFail))
		e := useExecutor(f, map[string]execBehavior{"load": {gate: gate}})
		f.syncRestore("prod", "r")
		job := f.onlyJob("prod")
		if len(e.made()) != 0 || len(f.restore("prod", "r").Status.Hooks) != 0 {
			t.Fatalf("calls %q before the data was written", e.made())
		}
		f.finishJob(&job, restoreSummary)
		f.syncRestore("prod", "r")
		got := f.restore("prod", "r")
		if got.Status.Phase != v1alpha1.RestorePhaseRunning || hookPhases(got.Status.Hooks) != "Post/load@db-0=Running" || !strings.Contains(got.Status.Message, "running post hook load") {
			t.Fatalf("phase %q hooks %q message %q, want Running with load running", got.Status.Phase, hookPhases(got.Status.Hooks), got.Status.Message)
		}
		waitFor(t, "load to be run", func() bool { return len(e.made()) == 1 })
		close(gate)
		f.waitHookRuns()
		if q := drain(f.m.restoreQueue); !slices.Contains(q, "prod/r") {
			t.Errorf("the end of load did not wake the RestoreJob: %q", q)
		}
		f.syncRestore("prod", "r")
		got = f.restore("prod", "r")
		if got.Status.Phase != v1alpha1.RestorePhaseCompleted || hookPhases(got.Status.Hooks) != "Post/load@db-0=Succeeded" ||
			condition(got.Status.Conditions, v1alpha1.ConditionCompleted) == nil || got.Status.Stats == nil {
			t.Errorf("phase %q hooks %q conditions %+v, want Completed with load Succeeded", got.Status.Phase, hookPhases(got.Status.Hooks), got.Status.Conditions)
		}
		if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] load"}) {
			t.Errorf("calls %q", calls)
		}
		if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Normal HookSucceeded post hook load") || !strings.Contains(ev, "Normal Completed") {
			t.Errorf("events %s", ev)
		}
	})
	t.Run("the Job's TTL ends while they run", func(t *testing.T) {
		gate := make(chan struct{})
		f := hookedRestore(t, false, execAction("load", v1alpha1.HookFail))
		useExecutor(f, map[string]execBehavior{"load": {gate: gate}})
		f.syncRestore("prod", "r")
		job := f.onlyJob("prod")
		f.finishJob(&job, restoreSummary)
		f.syncRestore("prod", "r")
		// The finished Job goes (ttlSecondsAfterFinished) while load runs.
		if err := f.kube.BatchV1().Jobs("prod").Delete(context.Background(), job.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		f.jobInformerDelete(&job)
		close(gate)
		f.waitHookRuns()
		f.syncRestore("prod", "r")
		got := f.restore("prod", "r")
		if got.Status.Phase != v1alpha1.RestorePhaseCompleted || hookPhases(got.Status.Hooks) != "Post/load@db-0=Succeeded" || got.Status.Stats == nil || !got.Status.Verified {
			t.Errorf("phase %q hooks %q stats %+v verified %v message %q, want Completed from what status recorded",
				got.Status.Phase, hookPhases(got.Status.Hooks), got.Status.Stats, got.Status.Verified, got.Status.Message)
		}
	})
	t.Run("a failed one fails the restore", func(t *testing.T) {
		f := hookedRestore(t, false, execAction("load", v1alpha1.HookFail), execAction("restart", v1alpha1.HookFail))
		e := useExecutor(f, map[string]execBehavior{"load": {exit: 3, stderr: "pg_restore: error: could not open input file"}})
		before := hookFailureCount(t, "RestoreJob", "post")
		f.syncRestore("prod", "r")
		job := f.onlyJob("prod")
		f.finishJob(&job, restoreSummary)
		f.syncRestore("prod", "r")
		f.waitHookRuns()
		f.syncRestore("prod", "r")
		got := f.restore("prod", "r")
		if got.Status.Phase != v1alpha1.RestorePhaseFailed || failedReason(got.Status.Conditions) != "PostHookFailed" {
			t.Fatalf("phase %q reason %q, want Failed: PostHookFailed", got.Status.Phase, failedReason(got.Status.Conditions))
		}
		for _, want := range []string{"the data was restored and verified, but post hook load in pod db-0", "exited with 3", "could not open input file"} {
			if !strings.Contains(got.Status.Message, want) {
				t.Errorf("message %q lacks %q", got.Status.Message, want)
			}
		}
		if p := hookPhases(got.Status.Hooks); p != "Post/load@db-0=Failed" {
			t.Errorf("hooks %q, want restart not run after load failed", p)
		}
		if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] load"}) {
			t.Errorf("calls %q", calls)
		}
		if after := hookFailureCount(t, "RestoreJob", "post"); after != before+1 {
			t.Errorf("hook failures (RestoreJob, post) went from %v to %v", before, after)
		}
		if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Warning PostHookFailed") {
			t.Errorf("no PostHookFailed event: %s", ev)
		}
	})
	t.Run("dry run", func(t *testing.T) {
		f := hookedRestore(t, true, execAction("load", v1alpha1.HookFail))
		e := useExecutor(f, nil)
		f.syncRestore("prod", "r")
		job := f.onlyJob("prod")
		f.finishJob(&job, restoreSummary)
		f.syncRestore("prod", "r")
		f.waitHookRuns()
		got := f.restore("prod", "r")
		if got.Status.Phase != v1alpha1.RestorePhaseCompleted || hookPhases(got.Status.Hooks) != "Post/load=Skipped" || !strings.Contains(got.Status.Hooks[0].Message, "dry run") {
			t.Errorf("phase %q hooks %+v, want Completed with load Skipped (dry run)", got.Status.Phase, got.Status.Hooks)
		}
		if len(e.made()) != 0 {
			t.Errorf("calls %q", e.made())
		}
	})
	t.Run("failed restore", func(t *testing.T) {
		f := hookedRestore(t, false, execAction("load", v1alpha1.HookFail))
		e := useExecutor(f, nil)
		f.syncRestore("prod", "r")
		job := f.onlyJob("prod")
		f.failJob(&job)
		f.syncRestore("prod", "r")
		f.waitHookRuns()
		got := f.restore("prod", "r")
		if got.Status.Phase != v1alpha1.RestorePhaseFailed || failedReason(got.Status.Conditions) != "MoverFailed" ||
			hookPhases(got.Status.Hooks) != "Post/load=Skipped" || !strings.Contains(got.Status.Hooks[0].Message, "the restore failed") {
			t.Errorf("phase %q reason %q hooks %+v, want Failed: MoverFailed with load Skipped", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Hooks)
		}
		if len(e.made()) != 0 {
			t.Errorf("calls %q", e.made())
		}
	})
}

// The end of a command's stderr is kept (at most 1024 bytes, valid UTF-8),
// and a message carries its last lines on one line.
func TestStderrTail(t *testing.T) {
	w := &tailWriter{n: stderrTailBytes}
	for i := 0; i < 100; i++ {
		fmt.Fprintf(w, "line %03d: some output\n", i)
	}
	s := w.String()
	if len(s) > stderrTailBytes || !strings.HasSuffix(s, "line 099: some output\n") {
		t.Errorf("tail of %d bytes ending %q", len(s), s[max(0, len(s)-30):])
	}
	if l := lastLine(s); !strings.HasPrefix(l, "...") || len(l) > 400 || strings.Contains(l, "\n") || !strings.HasSuffix(l, "line 098: some output | line 099: some output") {
		t.Errorf("lastLine %q", l)
	}
	w = &tailWriter{n: 4}
	_, _ = w.Write([]byte("aé"))  // 3 bytes
	_, _ = w.Write([]byte("xyz")) // keeps the last 4: one byte of é, then xyz
	if got := w.String(); got != "xyz" {
		t.Errorf("tail %q, want the broken rune dropped", got)
	}
}

// deleteClaim removes a claim from the API and the cache, as if deleted.
func (f *fixture) deleteClaim(ns, name string) {
	f.t.Helper()
	if err := f.kube.CoreV1().PersistentVolumeClaims(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.kubeInf.Core().V1().PersistentVolumeClaims().Informer().GetIndexer().Delete(boundPVC(ns, name)); err != nil {
		f.t.Fatal(err)
	}
}

// A failure that arrives while a pre command runs (the repository claim or
// the target claim deleted) starts no post action beside it: the Backup is
// Finishing with the failure's reason until the pre command has ended; then
// its outcome is recorded, the post action runs, and the Backup is Failed
// with the original reason.
func TestFailureWhilePreHookRunsWaitsForIt(t *testing.T) {
	for _, tc := range []struct{ name, claim, reason, msg string }{
		{"repository claim deleted", "backup-repo", "RepositoryNotFound", "the repository PersistentVolumeClaim prod/backup-repo does not exist"},
		{"target claim deleted", "data", "TargetNotFound", "PersistentVolumeClaim prod/data does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := make(chan struct{})
			bk := hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, []v1alpha1.HookAction{execAction("c", v1alpha1.HookContinue)})
			f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
			e := useExecutor(f, map[string]execBehavior{"a": {gate: gate}})
			f.syncBackup("prod", "b")
			waitFor(t, "a to be run", func() bool { return len(e.made()) == 1 })

			f.deleteClaim("prod", tc.claim)
			f.syncBackup("prod", "b")
			got := f.backup("prod", "b")
			fin := condition(got.Status.Conditions, v1alpha1.ConditionFinishing)
			if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Running" || fin == nil || fin.Reason != tc.reason || got.Status.Phase == v1alpha1.BackupPhaseFailed {
				t.Fatalf("after the failure: hooks %q phase %q Finishing %+v, want a still Running, no post action, Finishing (%s)", p, got.Status.Phase, fin, tc.reason)
			}
			if !strings.Contains(got.Status.Message, tc.msg) || !strings.Contains(got.Status.Message, "waiting for pre hook a to end") {
				t.Errorf("message %q, want the failure and that it waits for a", got.Status.Message)
			}
			// Another sync while a runs writes nothing and starts nothing.
			writes(f.client)
			f.syncBackup("prod", "b")
			if w := writes(f.client); len(w) != 0 {
				t.Errorf("a sync while a runs wrote %q", w)
			}
			time.Sleep(50 * time.Millisecond)
			if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] a"}) {
				t.Fatalf("calls %q while a runs, want a alone", calls)
			}

			close(gate)
			f.waitHookRuns()
			f.syncBackup("prod", "b")
			got = f.backup("prod", "b")
			fin = condition(got.Status.Conditions, v1alpha1.ConditionFinishing)
			if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Succeeded Post/c@db-0=Running" || fin == nil || fin.Reason != tc.reason || got.Status.Phase == v1alpha1.BackupPhaseFailed {
				t.Fatalf("after a ended: hooks %q phase %q Finishing %+v, want a Succeeded, c Running, Finishing (%s)", p, got.Status.Phase, fin, tc.reason)
			}
			f.waitHookRuns()
			f.syncBackup("prod", "b")
			got = f.backup("prod", "b")
			if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != tc.reason ||
				condition(got.Status.Conditions, v1alpha1.ConditionFinishing) != nil || !strings.Contains(got.Status.Message, tc.msg) {
				t.Errorf("phase %q reason %q conditions %+v message %q, want Failed: %s", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Conditions, got.Status.Message, tc.reason)
			}
			if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Succeeded Post/c@db-0=Succeeded" {
				t.Errorf("status.hooks %q", p)
			}
			if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] a", "prod/db-0[db] c"}) {
				t.Errorf("calls %q, want a then c", calls)
			}
			if n := jobCreates(f); n != 0 {
				t.Errorf("%d Jobs created", n)
			}
		})
	}
}

// An action this Manager recorded Running, whose status write was stored
// but whose answer was lost (so its commands were never started), is
// started by the next sync, once, and ends with its outcome, not Unknown.
// An entry Running that a previous Manager started is Unknown: not run
// again, and it may still run in its pod.
func TestHookRecordedButNotStarted(t *testing.T) {
	t.Run("recorded by this Manager", func(t *testing.T) {
		gate := make(chan struct{})
		f := newFixture(t, hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
		e := useExecutor(f, map[string]execBehavior{"a": {gate: gate}})
		// What runPreHooks does, up to a status write whose answer is lost:
		// the entry is stored Running, and its commands are not started.
		b := f.backup("prod", "b")
		p := f.m.advanceHooks(f.m.backupHookStage(b, v1alpha1.HookStagePre))
		if got := hookPhases(p.status); got != "Pre/a@db-0=Running" || p.start == nil {
			t.Fatalf("advanceHooks: %q (start %v), want a Running", got, p.start != nil)
		}
		c := b.DeepCopy()
		c.Status.Hooks, c.Status.Phase = p.status, v1alpha1.BackupPhasePending
		if _, err := f.client.BackupV1alpha1().Backups("prod").UpdateStatus(context.Background(), c, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.resync()

		f.syncBackup("prod", "b")
		if got := hookPhases(f.backup("prod", "b").Status.Hooks); got != "Pre/a@db-0=Running" {
			t.Fatalf("after the next sync: %q, want a Running (started now)", got)
		}
		waitFor(t, "a to be run", func() bool { return len(e.made()) == 1 })
		f.syncBackup("prod", "b")
		close(gate)
		f.waitHookRuns()
		f.syncBackup("prod", "b")
		got := f.backup("prod", "b")
		if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Succeeded" || got.Status.Hooks[0].ExitCode == nil || *got.Status.Hooks[0].ExitCode != 0 {
			t.Fatalf("status.hooks %q %+v, want a Succeeded with exit code 0", p, got.Status.Hooks)
		}
		if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] a"}) {
			t.Errorf("calls %q, want a once", calls)
		}
		for i := 0; i < 3 && len(f.jobs("prod")) == 0; i++ {
			f.syncBackup("prod", "b")
		}
		if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseRunning || len(f.jobs("prod")) != 1 {
			t.Errorf("phase %q with %d Jobs, want the copy started", got.Status.Phase, len(f.jobs("prod")))
		}
	})
	t.Run("started by a previous Manager", func(t *testing.T) {
		bk := hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, nil)
		started := metav1.NewTime(time.Date(2026, 11, 30, 2, 0, 5, 0, time.UTC))
		bk.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhasePending,
			Hooks: []v1alpha1.HookStatus{{Stage: v1alpha1.HookStagePre, Name: "a", Pod: "db-0", Container: "db", Phase: v1alpha1.HookPhaseRunning, StartTime: &started}}}
		f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
		e := useExecutor(f, nil)
		f.syncBackup("prod", "b")
		f.waitHookRuns()
		got := f.backup("prod", "b")
		if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Unknown" {
			t.Fatalf("status.hooks %q, want a Unknown", p)
		}
		if msg := got.Status.Hooks[0].Message; !strings.Contains(msg, "was not run again") || !strings.Contains(msg, "may still run in pod db-0") {
			t.Errorf("message %q, want that it was not run again and may still run in pod db-0", msg)
		}
		if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "PreHookFailed" {
			t.Errorf("phase %q reason %q, want Failed: PreHookFailed", got.Status.Phase, failedReason(got.Status.Conditions))
		}
		if calls := e.made(); len(calls) != 0 {
			t.Errorf("calls %q", calls)
		}
	})
}

// An action runs once per workload: the pods of a Deployment's two
// ReplicaSets (a rollout) are one workload, and the action runs in the
// first of them by name.
func TestHookRunsOncePerDeployment(t *testing.T) {
	rs := func(name string) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name, UID: types.UID("rs-" + name),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "deployment-web", Controller: ptr.To(true)}}}}
	}
	f := newFixture(t, hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"),
		controlledBy(runningPod("prod", "web-7f9c-x2"), "ReplicaSet", "web-7f9c"), controlledBy(runningPod("prod", "web-5d4b-k8"), "ReplicaSet", "web-5d4b"))
	replicaSets := f.kubeInf.Apps().V1().ReplicaSets()
	for _, r := range []*appsv1.ReplicaSet{rs("web-7f9c"), rs("web-5d4b")} {
		if err := f.kube.Tracker().Add(r); err != nil {
			t.Fatal(err)
		}
		if err := replicaSets.Informer().GetIndexer().Add(trimmed(t, r)); err != nil {
			t.Fatal(err)
		}
	}
	f.m.checker.ReplicaSets = replicaSets.Lister()
	e := useExecutor(f, nil)
	f.syncBackup("prod", "b")
	f.waitHookRuns()
	if calls := e.made(); !slices.Equal(calls, []string{"prod/web-5d4b-k8[db] a"}) {
		t.Errorf("calls %q, want one, in the first pod by name", calls)
	}
	if p := hookPhases(f.backup("prod", "b").Status.Hooks); p != "Pre/a@web-5d4b-k8=Running" {
		t.Errorf("status.hooks %q", p)
	}
}

// laterQueue records the keys added with a delay.
type laterQueue struct {
	workqueue.TypedRateLimitingInterface[string]
	mu    sync.Mutex
	later []string
}

func (q *laterQueue) AddAfter(key string, d time.Duration) {
	q.mu.Lock()
	q.later = append(q.later, fmt.Sprintf("%s after %s", key, d))
	q.mu.Unlock()
	q.TypedRateLimitingInterface.AddAfter(key, d)
}

func (q *laterQueue) added() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.later)
}

// An action whose only matching pod is being deleted (its containers may
// still write the claim) waits: nothing is recorded, the Backup's message
// names the pod, and the Backup is requeued. Once the pod has gone the
// action is Skipped (no running pod) and the copy starts.
func TestHookWaitsForAPodBeingDeleted(t *testing.T) {
	going := runningPod("prod", "db-0")
	going.DeletionTimestamp = ptr.To(metav1.NewTime(time.Date(2026, 11, 30, 2, 0, 20, 0, time.UTC)))
	f := newFixture(t, hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), going)
	q := &laterQueue{TypedRateLimitingInterface: f.m.backupQueue}
	f.m.backupQueue = q
	e := useExecutor(f, nil)

	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if len(got.Status.Hooks) != 0 || got.Status.Phase != v1alpha1.BackupPhasePending {
		t.Fatalf("hooks %q phase %q, want nothing recorded while db-0 is being deleted, Pending", hookPhases(got.Status.Hooks), got.Status.Phase)
	}
	if msg := got.Status.Message; !strings.Contains(msg, "waiting to run pre hook a") || !strings.Contains(msg, "pod db-0 is being deleted") {
		t.Errorf("message %q, want that a waits for pod db-0", msg)
	}
	if later := q.added(); len(later) != 1 || !strings.HasPrefix(later[0], "prod/b after ") {
		t.Errorf("requeued %q, want prod/b after a delay", later)
	}
	if len(f.jobs("prod")) != 0 || len(e.made()) != 0 {
		t.Fatalf("%d Jobs, calls %q while db-0 is being deleted", len(f.jobs("prod")), e.made())
	}

	if err := f.kubeInf.Core().V1().Pods().Informer().GetIndexer().Delete(going); err != nil {
		t.Fatal(err)
	}
	f.syncBackup("prod", "b")
	if p := hookPhases(f.backup("prod", "b").Status.Hooks); p != "Pre/a=Skipped" {
		t.Fatalf("status.hooks %q after the pod went, want a Skipped", p)
	}
	f.syncBackup("prod", "b")
	if len(f.jobs("prod")) != 1 || len(e.made()) != 0 {
		t.Errorf("%d Jobs, calls %q: want the copy started without a", len(f.jobs("prod")), e.made())
	}
}

// An action matching more than 20 pods (allPods) runs nowhere: one Failed
// entry says how many matched and what to do.
func TestHookInTooManyPods(t *testing.T) {
	a := execAction("a", v1alpha1.HookFail)
	a.AllPods = true
	objs := []runtime.Object{hookedBackup([]v1alpha1.HookAction{a}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo")}
	for i := 0; i < 21; i++ {
		objs = append(objs, runningPod("prod", fmt.Sprintf("db-%02d", i)))
	}
	f := newFixture(t, objs...)
	e := useExecutor(f, nil)
	f.syncBackup("prod", "b")
	f.waitHookRuns()
	got := f.backup("prod", "b")
	if p := hookPhases(got.Status.Hooks); p != "Pre/a=Failed" {
		t.Fatalf("status.hooks %q, want one entry, Failed", p)
	}
	for _, want := range []string{"21 pods match", "at most 20", "narrow podSelector", "nothing was run"} {
		if !strings.Contains(got.Status.Hooks[0].Message, want) {
			t.Errorf("message %q lacks %q", got.Status.Hooks[0].Message, want)
		}
	}
	if calls := e.made(); len(calls) != 0 {
		t.Errorf("%d calls, want none", len(calls))
	}
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "PreHookFailed" {
		t.Errorf("phase %q reason %q, want Failed: PreHookFailed", got.Status.Phase, failedReason(got.Status.Conditions))
	}
}

// Post actions undo what a pre command did: when the only pre action
// failed without running anything (no such container; no pod with
// whenNoPods Fail) and no Job was started, they do not run, and the Backup
// fails (PreHookFailed) at once.
func TestNoPostHookWhenNoPreCommandRan(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(a *v1alpha1.HookAction)
		entry  string
	}{
		{"no such container", func(a *v1alpha1.HookAction) { a.Exec.Container = "postgres" }, "Pre/a@db-0=Failed"},
		{"no pod", func(a *v1alpha1.HookAction) {
			a.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "nothing"}}
			a.WhenNoPods = v1alpha1.HookNoPodsFail
		}, "Pre/a=Failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := execAction("a", v1alpha1.HookFail)
			tc.mutate(&a)
			bk := hookedBackup([]v1alpha1.HookAction{a}, []v1alpha1.HookAction{execAction("c", v1alpha1.HookContinue)})
			f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
			e := useExecutor(f, nil)
			f.syncBackup("prod", "b")
			f.waitHookRuns()
			f.syncBackup("prod", "b")
			f.waitHookRuns()
			got := f.backup("prod", "b")
			if p := hookPhases(got.Status.Hooks); p != tc.entry {
				t.Errorf("status.hooks %q, want %s and no post action", p, tc.entry)
			}
			if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "PreHookFailed" ||
				condition(got.Status.Conditions, v1alpha1.ConditionFinishing) != nil {
				t.Errorf("phase %q reason %q conditions %+v, want Failed: PreHookFailed", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Conditions)
			}
			if calls := e.made(); len(calls) != 0 {
				t.Errorf("calls %q, want none", calls)
			}
		})
	}
}

// A deleted Backup whose post actions run still holds its claim: a newer
// Backup of the claim waits until they are done, then starts.
func TestDeletedBackupHoldsItsClaimWhilePostHooksRun(t *testing.T) {
	gate := make(chan struct{})
	bk := hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, []v1alpha1.HookAction{execAction("c", v1alpha1.HookContinue)})
	ended := metav1.NewTime(bk.CreationTimestamp.Add(10 * time.Second))
	bk.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhasePending, Hooks: []v1alpha1.HookStatus{{Stage: v1alpha1.HookStagePre, Name: "a", Pod: "db-0", Container: "db",
		Phase: v1alpha1.HookPhaseSucceeded, ExitCode: ptr.To[int32](0), StartTime: &ended, CompletionTime: &ended}}}
	bk.DeletionTimestamp = ptr.To(metav1.NewTime(bk.CreationTimestamp.Add(20 * time.Second)))
	newer := newBackup("prod", "b2", "uid-2", "prod")
	newer.CreationTimestamp = metav1.NewTime(bk.CreationTimestamp.Add(time.Minute))
	f := newFixture(t, bk, newer, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	e := useExecutor(f, map[string]execBehavior{"c": {gate: gate}})

	f.syncBackup("prod", "b")
	if p := hookPhases(f.backup("prod", "b").Status.Hooks); p != "Pre/a@db-0=Succeeded Post/c@db-0=Running" {
		t.Fatalf("deleted Backup: hooks %q, want c Running", p)
	}
	f.syncBackup("prod", "b2")
	got := f.backup("prod", "b2")
	if got.Status.Phase != v1alpha1.BackupPhasePending || !strings.Contains(got.Status.Message, "Backup prod/b uses PersistentVolumeClaim prod/data") || len(f.jobs("prod")) != 0 {
		t.Fatalf("newer Backup: phase %q message %q, %d Jobs; want it to wait for the deleted one", got.Status.Phase, got.Status.Message, len(f.jobs("prod")))
	}

	close(gate)
	f.waitHookRuns()
	f.syncBackup("prod", "b")
	if p := hookPhases(f.backup("prod", "b").Status.Hooks); p != "Pre/a@db-0=Succeeded Post/c@db-0=Succeeded" {
		t.Fatalf("deleted Backup: hooks %q, want c Succeeded", p)
	}
	f.syncBackup("prod", "b2")
	if got := f.backup("prod", "b2"); got.Status.Phase != v1alpha1.BackupPhaseRunning || len(f.jobs("prod")) != 1 {
		t.Errorf("newer Backup: phase %q message %q, %d Jobs; want it started", got.Status.Phase, got.Status.Message, len(f.jobs("prod")))
	}
	if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] c"}) {
		t.Errorf("calls %q", calls)
	}
}

// A RestoreJob's post action as the API server defaults it (whenNoPods
// Fail, onError Fail) that finds no pod fails the RestoreJob
// (PostHookFailed): the data is written, but the step did not run.
func TestRestorePostHookWithoutAPodFails(t *testing.T) {
	hooks := &v1alpha1.RestoreHooks{Post: []v1alpha1.HookAction{{Name: "load", Exec: &v1alpha1.ExecHook{Command: []string{"load"}},
		PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "loader"}}}}}
	v1alpha1.SetDefaults_RestoreHooks(hooks)
	f := hookedRestore(t, false, hooks.Post...)
	e := useExecutor(f, nil)
	f.syncRestore("prod", "r")
	job := f.onlyJob("prod")
	f.finishJob(&job, restoreSummary)
	f.syncRestore("prod", "r")
	f.waitHookRuns()
	got := f.restore("prod", "r")
	if got.Status.Phase != v1alpha1.RestorePhaseFailed || failedReason(got.Status.Conditions) != "PostHookFailed" {
		t.Fatalf("phase %q reason %q hooks %q, want Failed: PostHookFailed", got.Status.Phase, failedReason(got.Status.Conditions), hookPhases(got.Status.Hooks))
	}
	if p := hookPhases(got.Status.Hooks); p != "Post/load=Failed" || !strings.Contains(got.Status.Hooks[0].Message, "whenNoPods: Fail") {
		t.Errorf("status.hooks %q %+v, want load Failed (whenNoPods: Fail)", p, got.Status.Hooks)
	}
	if !strings.Contains(got.Status.Message, "no running pod in namespace prod matches the podSelector") {
		t.Errorf("message %q", got.Status.Message)
	}
	if calls := e.made(); len(calls) != 0 {
		t.Errorf("calls %q", calls)
	}
}

// The grace period for a refused Job create counts from when the Backup
// was ready for its Job, the end of its pre actions: a Backup created ten
// minutes ago whose pre action ended a minute ago waits, and fails once
// the period has passed since that end.
func TestJobCreateGraceCountsFromThePreHooks(t *testing.T) {
	bk := hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, nil)
	ended := metav1.NewTime(bk.CreationTimestamp.Add(9 * time.Minute))
	started := metav1.NewTime(ended.Add(-30 * time.Second))
	bk.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhasePending, Hooks: []v1alpha1.HookStatus{{Stage: v1alpha1.HookStagePre, Name: "a", Pod: "db-0", Container: "db",
		Phase: v1alpha1.HookPhaseSucceeded, ExitCode: ptr.To[int32](0), StartTime: &started, CompletionTime: &ended}}}
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	e := useExecutor(f, nil)
	f.kube.PrependReactor("create", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x", fmt.Errorf("exceeded quota: jobs"))
	})
	f.now = bk.CreationTimestamp.Add(10 * time.Minute)
	if res := f.syncBackup("prod", "b"); res.after == 0 {
		t.Error("no retry scheduled")
	}
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhasePending || !strings.Contains(got.Status.Message, "exceeded quota") {
		t.Fatalf("phase %q reason %q message %q, want Pending with the refusal", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Message)
	}
	f.now = ended.Add(moverPodCreateTimeout + time.Second)
	f.syncBackup("prod", "b")
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "JobCreateRefused" {
		t.Errorf("phase %q reason %q, want Failed: JobCreateRefused", got.Status.Phase, failedReason(got.Status.Conditions))
	}
	if calls := e.made(); len(calls) != 0 {
		t.Errorf("calls %q: the pre action ran again", calls)
	}
}

// readySince is a Backup's creation, or the latest end of a pre action.
func TestReadySince(t *testing.T) {
	created := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return ptr.To(metav1.NewTime(created.Add(d))) }
	for _, tc := range []struct {
		name  string
		hooks []v1alpha1.HookStatus
		want  time.Time
	}{
		{"no hooks", nil, created},
		{"pre ended", []v1alpha1.HookStatus{{Stage: v1alpha1.HookStagePre, Name: "a", CompletionTime: at(2 * time.Minute)},
			{Stage: v1alpha1.HookStagePre, Name: "b", CompletionTime: at(5 * time.Minute)}, {Stage: v1alpha1.HookStagePre, Name: "c", CompletionTime: at(3 * time.Minute)}}, created.Add(5 * time.Minute)},
		{"post ends do not count", []v1alpha1.HookStatus{{Stage: v1alpha1.HookStagePre, Name: "a", CompletionTime: at(time.Minute)},
			{Stage: v1alpha1.HookStagePost, Name: "c", CompletionTime: at(9 * time.Minute)}}, created.Add(time.Minute)},
		{"a running pre action", []v1alpha1.HookStatus{{Stage: v1alpha1.HookStagePre, Name: "a", StartTime: at(time.Minute), Phase: v1alpha1.HookPhaseRunning}}, created},
		{"an end before the creation (clock skew)", []v1alpha1.HookStatus{{Stage: v1alpha1.HookStagePre, Name: "a", CompletionTime: at(-time.Minute)}}, created},
	} {
		b := newBackup("prod", "b", "uid-1", "prod")
		b.Status.Hooks = tc.hooks
		if got := readySince(b); !got.Equal(tc.want) {
			t.Errorf("%s: readySince = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// An action in two pods, one of which lacks the named container: that
// pod's Failed entry is reported (a HookFailed event, the failure metric)
// once, like any failure, while the command runs in the other pod.
func TestHookFailedInOnePodIsReported(t *testing.T) {
	a := execAction("a", v1alpha1.HookFail)
	a.AllPods, a.Exec.Container = true, "db"
	other := runningPod("prod", "db-1")
	other.Spec.Containers = []corev1.Container{{Name: "agent", VolumeMounts: other.Spec.Containers[0].VolumeMounts}}
	f := newFixture(t, hookedBackup([]v1alpha1.HookAction{a}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"), other)
	e := useExecutor(f, nil)
	before := hookFailureCount(t, "Backup", "pre")
	f.syncBackup("prod", "b")
	if p := hookPhases(f.backup("prod", "b").Status.Hooks); p != "Pre/a@db-0=Running Pre/a@db-1=Failed" {
		t.Fatalf("status.hooks %q, want a Running in db-0 and Failed in db-1", p)
	}
	f.waitHookRuns()
	for i := 0; i < 3; i++ {
		f.syncBackup("prod", "b")
	}
	got := f.backup("prod", "b")
	if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Succeeded Pre/a@db-1=Failed" {
		t.Errorf("status.hooks %q", p)
	}
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "PreHookFailed" {
		t.Errorf("phase %q reason %q, want Failed: PreHookFailed", got.Status.Phase, failedReason(got.Status.Conditions))
	}
	ev := f.drainEvents()
	if n := countContaining(ev, `Warning HookFailed pre hook a in pod prod/db-1: pod db-1 has no container "db"`); n != 1 {
		t.Errorf("%d HookFailed events for db-1, want 1: %q", n, ev)
	}
	if after := hookFailureCount(t, "Backup", "pre"); after != before+1 {
		t.Errorf("backup_operator_hook_failures_total{kind=Backup,stage=pre} went from %v to %v, want one more", before, after)
	}
	if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] a"}) {
		t.Errorf("calls %q", calls)
	}
}

// status.hooks[].duration is how long the command ran (its own time, not
// the controller's clock), and the duration metric observes it.
func TestHookDuration(t *testing.T) {
	f := newFixture(t, hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	useExecutor(f, map[string]execBehavior{"a": {delay: 200 * time.Millisecond}})
	h := hookDuration.WithLabelValues("Backup", "pre", string(v1alpha1.HookPhaseSucceeded))
	count0, err := testutil.GetHistogramMetricCount(h)
	if err != nil {
		t.Fatal(err)
	}
	sum0, err := testutil.GetHistogramMetricValue(h)
	if err != nil {
		t.Fatal(err)
	}
	f.syncBackup("prod", "b")
	f.waitHookRuns()
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	if p := hookPhases(got.Status.Hooks); p != "Pre/a@db-0=Succeeded" {
		t.Fatalf("status.hooks %q", p)
	}
	st := got.Status.Hooks[0]
	if st.Duration == nil || st.Duration.Duration < 200*time.Millisecond || st.Duration.Duration > 10*time.Second {
		t.Fatalf("duration %v, want the command's 200ms or a little more", st.Duration)
	}
	count1, _ := testutil.GetHistogramMetricCount(h)
	sum1, _ := testutil.GetHistogramMetricValue(h)
	if count1 != count0+1 {
		t.Errorf("hook_duration_seconds observed %d times, want once", count1-count0)
	}
	if d := sum1 - sum0; d < 0.2 || d-st.Duration.Seconds() > 1e-6 || st.Duration.Seconds()-d > 1e-6 {
		t.Errorf("hook_duration_seconds observed %vs, want status.hooks[0].duration (%s)", d, st.Duration.Duration)
	}
}

// A RestoreJob deleted while its post command runs keeps its finalizer
// until the command has ended and its outcome is in status.hooks; then the
// finalizer goes.
func TestDeletedRestoreRecordsItsRunningPostHook(t *testing.T) {
	gate := make(chan struct{})
	f := hookedRestore(t, false, execAction("load", v1alpha1.HookFail))
	e := useExecutor(f, map[string]execBehavior{"load": {gate: gate}})
	f.syncRestore("prod", "r")
	job := f.onlyJob("prod")
	f.finishJob(&job, restoreSummary)
	f.syncRestore("prod", "r")
	waitFor(t, "load to be run", func() bool { return len(e.made()) == 1 })
	r := f.restore("prod", "r")
	if hookPhases(r.Status.Hooks) != "Post/load@db-0=Running" || !hasFinalizer(r, v1alpha1.MoverFinalizer) {
		t.Fatalf("hooks %q finalizers %q, want load Running and the finalizer", hookPhases(r.Status.Hooks), r.Finalizers)
	}
	r.DeletionTimestamp = ptr.To(metav1.NewTime(f.now))
	if _, err := f.client.BackupV1alpha1().RestoreJobs("prod").Update(context.Background(), r, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.resync()

	for i := 0; i < 2; i++ {
		f.syncRestore("prod", "r")
		if got := f.restore("prod", "r"); !hasFinalizer(got, v1alpha1.MoverFinalizer) || hookPhases(got.Status.Hooks) != "Post/load@db-0=Running" {
			t.Fatalf("while load runs: finalizers %q hooks %q, want the finalizer kept", got.Finalizers, hookPhases(got.Status.Hooks))
		}
	}
	close(gate)
	f.waitHookRuns()
	for i := 0; i < 3 && hasFinalizer(f.restore("prod", "r"), v1alpha1.MoverFinalizer); i++ {
		f.syncRestore("prod", "r")
	}
	got := f.restore("prod", "r")
	if hasFinalizer(got, v1alpha1.MoverFinalizer) {
		t.Errorf("the finalizer stayed after load ended; hooks %q", hookPhases(got.Status.Hooks))
	}
	if p := hookPhases(got.Status.Hooks); p != "Post/load@db-0=Succeeded" || got.Status.Hooks[0].ExitCode == nil {
		t.Errorf("status.hooks %q %+v, want load's outcome recorded", p, got.Status.Hooks)
	}
	if calls := e.made(); !slices.Equal(calls, []string{"prod/db-0[db] load"}) {
		t.Errorf("calls %q", calls)
	}
}

// A pod whose grace period ended more than a minute ago (its node does not
// answer) is not waited for: the action is decided without it.
func TestHookDoesNotWaitForAPodStuckTerminating(t *testing.T) {
	stuck := runningPod("prod", "db-0")
	stuck.DeletionTimestamp = ptr.To(metav1.NewTime(time.Date(2026, 11, 30, 1, 58, 0, 0, time.UTC)))
	f := newFixture(t, hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, nil), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), stuck)
	e := useExecutor(f, nil)
	f.syncBackup("prod", "b")
	if p := hookPhases(f.backup("prod", "b").Status.Hooks); p != "Pre/a=Skipped" {
		t.Fatalf("status.hooks %q, want a Skipped: db-0's grace period ended 2.5 minutes ago", p)
	}
	if len(e.made()) != 0 {
		t.Errorf("calls %q", e.made())
	}
}

// An action recorded Running whose commands were never started (the answer
// to that status write was lost) does not start once the Backup is failing:
// it is recorded Skipped, and with no pre command started no post runs.
func TestHookRecordedButNotStartedWhileFailing(t *testing.T) {
	bk := hookedBackup([]v1alpha1.HookAction{execAction("a", v1alpha1.HookFail)}, []v1alpha1.HookAction{execAction("c", v1alpha1.HookContinue)})
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"), runningPod("prod", "db-0"))
	e := useExecutor(f, nil)
	b := f.backup("prod", "b")
	p := f.m.advanceHooks(f.m.backupHookStage(b, v1alpha1.HookStagePre))
	c := b.DeepCopy()
	c.Status.Hooks, c.Status.Phase = p.status, v1alpha1.BackupPhasePending
	if _, err := f.client.BackupV1alpha1().Backups("prod").UpdateStatus(context.Background(), c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.resync()
	f.deleteClaim("prod", "backup-repo")
	for i := 0; i < 3; i++ {
		f.syncBackup("prod", "b")
	}
	f.waitHookRuns()
	got := f.backup("prod", "b")
	if ph := hookPhases(got.Status.Hooks); ph != "Pre/a@db-0=Skipped" || got.Status.Hooks[0].StartTime != nil {
		t.Errorf("status.hooks %q %+v, want a Skipped without a start time", ph, got.Status.Hooks)
	}
	if got.Status.Phase != v1alpha1.BackupPhaseFailed || failedReason(got.Status.Conditions) != "RepositoryNotFound" {
		t.Errorf("phase %q reason %q, want Failed: RepositoryNotFound", got.Status.Phase, failedReason(got.Status.Conditions))
	}
	if calls := e.made(); len(calls) != 0 {
		t.Errorf("calls %q, want none (neither a nor c)", calls)
	}
}
