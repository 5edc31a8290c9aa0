package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/apis/backup/validation"
	"example.com/backup-operator/pkg/safety"
)

// HookExecutor runs a command in a container of a pod and returns when it
// has exited (nil for exit code 0, an error carrying the code otherwise,
// see utilexec.ExitError) or when ctx ends.
type HookExecutor interface {
	Exec(ctx context.Context, namespace, pod, container string, command []string, stdout, stderr io.Writer) error
}

// NewHookExecutor returns the executor that runs hooks through the
// Kubernetes API server's pods/exec, as kubectl exec does: WebSocket first,
// SPDY when the server does not upgrade to it.
func NewHookExecutor(config *rest.Config) (HookExecutor, error) {
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	return &apiExecutor{config: config, client: client}, nil
}

type apiExecutor struct {
	config *rest.Config
	client kubernetes.Interface
}

func (e *apiExecutor) Exec(ctx context.Context, namespace, pod, container string, command []string, stdout, stderr io.Writer) error {
	req := e.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: command, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(e.config, "GET", req.URL().String())
	if err != nil {
		return err
	}
	spdy, err := remotecommand.NewSPDYExecutor(e.config, "POST", req.URL())
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: stdout, Stderr: stderr})
}

// stderrTailBytes bounds status.hooks[].stderr.
const stderrTailBytes = 1024

// tailWriter keeps the last n bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	n   int
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.n {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.n:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.ToValidUTF8(string(w.buf), "")
}

// hookRun is one hook action in one pod that this Manager recorded Running:
// first an intent (launch starts it), started once its record is stored.
type hookRun struct {
	launch   func(ctx context.Context)
	started  bool
	done     bool
	exitCode *int32
	stderr   string
	err      error // the command could not be run, or its stream broke
	timedOut bool
	duration time.Duration
}

// hookRuns are the hook commands this Manager started, by hookKey. A command
// recorded Running in an object's status that is not here was started by an
// earlier process (or term of leadership): its outcome is unknown.
type hookRuns struct {
	mu   sync.Mutex
	runs map[string]*hookRun
	wg   sync.WaitGroup
}

func hookKey(uid types.UID, stage v1alpha1.HookStage, name, pod string) string {
	return string(uid) + "/" + string(stage) + "/" + name + "/" + pod
}

func (h *hookRuns) get(key string) (hookRun, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.runs[key]
	if !ok {
		return hookRun{}, false
	}
	return *r, true
}

func (h *hookRuns) forget(keys []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range keys {
		if r, ok := h.runs[k]; ok && r.done {
			delete(h.runs, k)
		}
	}
}

// forgetOwner drops every run of an object that goes; a command still
// running ends unrecorded.
func (h *hookRuns) forgetOwner(uid types.UID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.runs {
		if strings.HasPrefix(k, string(uid)+"/") {
			delete(h.runs, k)
		}
	}
}

// running reports whether a command of the object that this Manager
// started has not ended yet.
func (h *hookRuns) running(uid types.UID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, r := range h.runs {
		if strings.HasPrefix(k, string(uid)+"/") && r.started && !r.done {
			return true
		}
	}
	return false
}

// intend registers a command about to be recorded Running; it is started
// (launch) only after that record is stored. A command already started
// under the key is kept: a reconcile on a stale cache may intend it again,
// and its status write then conflicts.
func (h *hookRuns) intend(key string, launch func(ctx context.Context)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.runs[key]; ok && r.started {
		return
	}
	if h.runs == nil {
		h.runs = map[string]*hookRun{}
	}
	h.runs[key] = &hookRun{launch: launch}
}

// drop forgets an intended command that will not start.
func (h *hookRuns) drop(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.runs[key]; ok && !r.started {
		delete(h.runs, key)
	}
}

// launch starts an intended command, once.
func (h *hookRuns) launch(ctx context.Context, key string) {
	h.mu.Lock()
	r, ok := h.runs[key]
	if !ok || r.started {
		h.mu.Unlock()
		return
	}
	r.started = true
	launch := r.launch
	h.mu.Unlock()
	launch(ctx)
}

// finish records a command's outcome, unless its object went meanwhile.
func (h *hookRuns) finish(key string, result hookRun) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.runs[key]
	if !ok {
		return false
	}
	result.started, result.done = true, true
	*r = result
	return true
}

// hookStage is one stage (pre or post) of one object's hooks.
type hookStage struct {
	owner     runtime.Object // for events
	uid       types.UID
	kind      string // Backup or RestoreJob, for metrics
	namespace string // of the pods: the target claim's
	claim     string // the target claim, for the default pod selection
	stage     v1alpha1.HookStage
	actions   []v1alpha1.HookAction
	status    []v1alpha1.HookStatus     // the object's status.hooks
	wake      func(after time.Duration) // requeues the object
	// collectOnly records the outcome of commands that run, and starts no
	// new action.
	collectOnly bool
}

// stageProgress is how far a stage got in one reconcile.
type stageProgress struct {
	// status is the object's new status.hooks.
	status []v1alpha1.HookStatus
	// done: every action has an outcome, or a failed action with onError
	// Fail stopped the stage (failed then names it).
	done   bool
	failed *v1alpha1.HookStatus
	// running is the action being run, for the status message.
	running string
	// waiting says why the running action has not started yet (a pod it
	// would run in is being deleted); the object was requeued.
	waiting string
	// start launches the commands recorded Running in status; call it only
	// after status was written, so a command is never run without a record.
	start func(ctx context.Context)
	// finished are the entries that reached an outcome in this reconcile:
	// report them (events, metrics) after status was written.
	finished []v1alpha1.HookStatus
	keys     []string // of finished runs, forgotten after the write
}

// hookStarted reports whether any action of stage has a status entry.
func hookStarted(status []v1alpha1.HookStatus, stage v1alpha1.HookStage) bool {
	for _, s := range status {
		if s.Stage == stage {
			return true
		}
	}
	return false
}

// advanceHooks moves a stage on: the actions run one after the other, each
// in its pods at once. An action is recorded Running (with its pods) before
// it is started, and its outcome recorded when its commands end; an entry
// found Running that this Manager did not start is marked Unknown and not run
// again. It never blocks: commands run in goroutines that wake the object.
func (m *Manager) advanceHooks(s hookStage) stageProgress {
	now := metav1.NewTime(m.opts.Now())
	out := stageProgress{status: append([]v1alpha1.HookStatus(nil), s.status...)}
	for i := range s.actions {
		a := &s.actions[i]
		var idx []int
		for j, st := range out.status {
			if st.Stage == s.stage && st.Name == a.Name {
				idx = append(idx, j)
			}
		}
		if len(idx) == 0 {
			if s.collectOnly {
				break
			}
			entries, toRun, wait := m.startAction(s, a, now)
			if wait != "" {
				out.running, out.waiting = a.Name, wait
				s.wake(5 * time.Second)
				return out
			}
			out.status = append(out.status, entries...)
			for _, e := range entries {
				if e.Phase != v1alpha1.HookPhaseRunning {
					out.finished = append(out.finished, e) // decided now: no pod, no such container
				}
			}
			if len(toRun) == 0 {
				if f := firstFailed(entries); f != nil && a.OnError == v1alpha1.HookFail {
					out.done, out.failed = true, f
					return out
				}
				continue
			}
			out.running = a.Name
			timeout := hookTimeout(a)
			var keys []string
			for _, st := range toRun {
				key := hookKey(s.uid, s.stage, a.Name, st.Pod)
				pod, container := st.Pod, st.Container
				m.hooks.intend(key, func(ctx context.Context) {
					m.runHook(ctx, s, key, a.Exec.Command, pod, container, timeout)
				})
				keys = append(keys, key)
			}
			out.start = m.launcher(keys)
			return out
		}
		pending := false
		var relaunch []string
		for _, j := range idx {
			st := &out.status[j]
			if st.Phase != v1alpha1.HookPhaseRunning {
				continue
			}
			key := hookKey(s.uid, s.stage, st.Name, st.Pod)
			run, ok := m.hooks.get(key)
			switch {
			case !ok:
				st.Phase, st.CompletionTime = v1alpha1.HookPhaseUnknown, &now
				st.Message = fmt.Sprintf("recorded as started, but the operator restarted or lost its leadership before it recorded the outcome: "+
					"it was not run again, may still run in pod %s, and counts as failed", st.Pod)
				out.finished = append(out.finished, *st)
			case !run.started && s.collectOnly:
				// Recorded Running by a status write whose answer was lost,
				// and the object is failing or going: it never runs.
				m.hooks.drop(key)
				st.Phase, st.StartTime, st.CompletionTime = v1alpha1.HookPhaseSkipped, nil, &now
				st.Message = "not started: the object was failing or being deleted before this command started"
				out.finished = append(out.finished, *st)
			case !run.started:
				// Recorded Running by a status write whose answer was lost:
				// this Manager never started it, so it starts now.
				pending = true
				relaunch = append(relaunch, key)
			case !run.done:
				pending = true
			default:
				recordRun(st, run, hookTimeout(a), now)
				out.finished = append(out.finished, *st)
				out.keys = append(out.keys, key)
			}
		}
		if pending {
			out.running = a.Name
			if len(relaunch) > 0 {
				out.start = m.launcher(relaunch)
			}
			return out
		}
		var entries []v1alpha1.HookStatus
		for _, j := range idx {
			entries = append(entries, out.status[j])
		}
		if f := firstFailed(entries); f != nil && a.OnError == v1alpha1.HookFail {
			out.done, out.failed = true, f
			return out
		}
	}
	out.done = true
	return out
}

// launcher starts the intended commands of keys.
func (m *Manager) launcher(keys []string) func(ctx context.Context) {
	return func(ctx context.Context) {
		for _, k := range keys {
			m.hooks.launch(ctx, k)
		}
	}
}

func firstFailed(entries []v1alpha1.HookStatus) *v1alpha1.HookStatus {
	for i := range entries {
		if safety.HookFailedPhase(entries[i].Phase) {
			e := entries[i]
			return &e
		}
	}
	return nil
}

// recordRun writes a finished command's outcome into its status entry.
func recordRun(st *v1alpha1.HookStatus, run hookRun, timeout time.Duration, now metav1.Time) {
	st.CompletionTime = &now
	st.Stderr = run.stderr
	st.ExitCode = run.exitCode
	took := run.duration.Round(time.Millisecond)
	st.Duration = &metav1.Duration{Duration: took}
	switch {
	case run.timedOut:
		st.Phase = v1alpha1.HookPhaseTimedOut
		st.Message = fmt.Sprintf("still running after %s (its timeout); abandoned: the connection was closed, and the command may still run in the container. Raise timeout (at most 6h) if it needs longer", timeout)
	case run.exitCode != nil && *run.exitCode == 0:
		st.Phase = v1alpha1.HookPhaseSucceeded
		st.Message = fmt.Sprintf("exited with 0 after %s", took)
	case run.exitCode != nil:
		st.Phase = v1alpha1.HookPhaseFailed
		st.Message = fmt.Sprintf("exited with %d after %s", *run.exitCode, took)
	default:
		st.Phase = v1alpha1.HookPhaseFailed
		st.Message = fmt.Sprintf("could not be run: %v; check that the pod runs and its container has the command", run.err)
	}
}

// maxHookPods bounds the pods one action runs in (and so status.hooks).
const maxHookPods = 20

// startAction picks the pods and containers of an action and returns its
// status entries: Running for each command to start (toRun), or an outcome
// decided now (no pod matched; a container that does not exist; too many
// pods). wait, when set, says why the action cannot be decided yet: a pod it
// would run in is being deleted, and may still write the claim.
func (m *Manager) startAction(s hookStage, a *v1alpha1.HookAction, now metav1.Time) (entries, toRun []v1alpha1.HookStatus, wait string) {
	pods, terminating, err := m.hookPods(s.namespace, s.claim, a)
	if err == nil && len(pods) == 0 && len(terminating) > 0 {
		return nil, nil, fmt.Sprintf("pod %s is being deleted; the action runs (or is skipped) once it has gone or runs again", strings.Join(terminating, ", "))
	}
	if err != nil || len(pods) == 0 {
		e := v1alpha1.HookStatus{Stage: s.stage, Name: a.Name, Phase: v1alpha1.HookPhaseSkipped, CompletionTime: &now}
		which := fmt.Sprintf("no running pod in namespace %s mounts claim %s", s.namespace, s.claim)
		quiet := "with no running pod the claim is quiet"
		if a.PodSelector != nil {
			which = fmt.Sprintf("no running pod in namespace %s matches the podSelector", s.namespace)
			quiet = "set whenNoPods: Fail if the action must run"
		}
		if err != nil {
			which = err.Error()
		}
		if a.WhenNoPods == v1alpha1.HookNoPodsFail {
			e.Phase, e.Message = v1alpha1.HookPhaseFailed, which+" (whenNoPods: Fail); start the workload, or change podSelector"
		} else {
			e.Message = which + ": skipped (whenNoPods: Skip; " + quiet + ")"
		}
		return []v1alpha1.HookStatus{e}, nil, ""
	}
	if len(pods) > maxHookPods {
		advice := "narrow podSelector"
		if a.AllPods {
			advice += ", or leave allPods unset to run once per workload"
		}
		return []v1alpha1.HookStatus{{Stage: s.stage, Name: a.Name, Phase: v1alpha1.HookPhaseFailed, CompletionTime: &now, Message: fmt.Sprintf(
			"%d pods match, and an action runs in at most %d; %s; nothing was run", len(pods), maxHookPods, advice)}}, nil, ""
	}
	for _, pod := range pods {
		e := v1alpha1.HookStatus{Stage: s.stage, Name: a.Name, Pod: pod.Name}
		container, err := hookContainer(pod, s.claim, a.Exec.Container)
		if err != nil {
			e.Phase, e.CompletionTime, e.Message = v1alpha1.HookPhaseFailed, &now, err.Error()+"; nothing was run"
			entries = append(entries, e)
			continue
		}
		e.Container, e.Phase, e.StartTime = container, v1alpha1.HookPhaseRunning, &now
		entries = append(entries, e)
		toRun = append(toRun, e)
	}
	return entries, toRun, ""
}

// hookPods are the running pods an action runs in: the selected ones (or
// the ones that mount the claim), by name, and unless allPods one per
// workload (its first pod by name: a StatefulSet's, or a Deployment's across
// its ReplicaSets; a pod without a controller is its own). terminating names
// the matching pods that are being deleted while their containers may still
// run; none of the operator's own mover pods is ever chosen.
func (m *Manager) hookPods(namespace, claim string, a *v1alpha1.HookAction) (pods []*corev1.Pod, terminating []string, err error) {
	var matched []*corev1.Pod
	if a.PodSelector == nil {
		matched = m.checker.PodsUsing(namespace, claim)
	} else {
		sel, err := metav1.LabelSelectorAsSelector(a.PodSelector)
		if err != nil {
			return nil, nil, fmt.Errorf("podSelector: %v", err)
		}
		if matched, err = m.pods.Pods(namespace).List(sel); err != nil {
			return nil, nil, err
		}
	}
	var running []*corev1.Pod
	for _, p := range matched {
		switch {
		case p.Labels[v1alpha1.ManagedByLabel] == v1alpha1.ManagedBy:
		case p.Status.Phase != corev1.PodRunning:
		case p.DeletionTimestamp != nil:
			// Waited for until its grace period is over (deletionTimestamp)
			// and a minute more; a pod left after that is on a node that
			// does not answer, and is not waited for.
			if m.opts.Now().Before(p.DeletionTimestamp.Add(time.Minute)) {
				terminating = append(terminating, p.Name)
			}
		default:
			running = append(running, p)
		}
	}
	sort.Slice(running, func(i, j int) bool { return running[i].Name < running[j].Name })
	sort.Strings(terminating)
	if a.AllPods {
		return running, terminating, nil
	}
	seen := map[string]bool{}
	for _, p := range running {
		owner := m.checker.OwnerOf(p)
		if owner == "" {
			owner = "Pod " + p.Name
		}
		if !seen[owner] {
			seen[owner] = true
			pods = append(pods, p)
		}
	}
	return pods, terminating, nil
}

// hookContainer is the container an action runs in: the one it names (which
// must exist), else the one container that mounts the claim, else the pod's
// only container. Anything else is an error that says what to set.
func hookContainer(pod *corev1.Pod, claim, name string) (string, error) {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	if name != "" {
		for _, n := range names {
			if n == name {
				return name, nil
			}
		}
		return "", fmt.Errorf("pod %s has no container %q (its containers: %s); set exec.container to one of them", pod.Name, name, strings.Join(names, ", "))
	}
	volumes := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
			volumes[v.Name] = true
		}
	}
	var mounting []string
	for _, c := range pod.Spec.Containers {
		for _, vm := range c.VolumeMounts {
			if volumes[vm.Name] {
				mounting = append(mounting, c.Name)
				break
			}
		}
	}
	switch {
	case len(mounting) == 1:
		return mounting[0], nil
	case len(mounting) > 1:
		return "", fmt.Errorf("containers %s of pod %s all mount claim %s; set exec.container to the one to run in", strings.Join(mounting, ", "), pod.Name, claim)
	case len(names) == 1:
		return names[0], nil
	}
	return "", fmt.Errorf("no container of pod %s mounts claim %s and it has several (%s); set exec.container", pod.Name, claim, strings.Join(names, ", "))
}

// hookTimeout is an action's timeout (validation.HookTimeout).
func hookTimeout(a *v1alpha1.HookAction) time.Duration { return validation.HookTimeout(a.Timeout) }

// runHook runs one command in a goroutine, bounded by its timeout, and
// wakes the object when it ends. A command cut short because the Manager
// stops is left Running in status: the next leader reports it as Unknown.
func (m *Manager) runHook(ctx context.Context, s hookStage, key string, command []string, pod, container string, timeout time.Duration) {
	m.hooks.wg.Add(1)
	go func() {
		defer m.hooks.wg.Done()
		if m.exec == nil {
			m.hooks.finish(key, hookRun{err: errors.New("this server runs no hook executor")})
			s.wake(0)
			return
		}
		logger := klog.FromContext(ctx).WithValues("stage", s.stage, "pod", klog.KRef(s.namespace, pod), "container", container)
		runCtx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		stderr := &tailWriter{n: stderrTailBytes}
		start := time.Now()
		err := m.exec.Exec(runCtx, s.namespace, pod, container, command, io.Discard, stderr)
		took := time.Since(start)
		if ctx.Err() != nil {
			logger.Info("Hook command abandoned: the controllers are stopping")
			return // not done: the next term reports it as Unknown
		}
		result := hookRun{stderr: stderr.String(), duration: took}
		var exitErr utilexec.ExitError
		switch {
		case err == nil:
			result.exitCode = ptr.To(int32(0))
		case runCtx.Err() != nil:
			result.timedOut = true
		case errors.As(err, &exitErr) && exitErr.Exited():
			result.exitCode = ptr.To(int32(exitErr.ExitStatus()))
		default:
			result.err = err
		}
		logger.V(2).Info("Hook command ended", "duration", took, "exitCode", result.exitCode, "timedOut", result.timedOut, "err", result.err)
		if m.hooks.finish(key, result) {
			s.wake(0)
		}
	}()
}

// reportHooks emits an event and metrics per finished entry, once its
// outcome is stored, and forgets the runs it came from.
func (m *Manager) reportHooks(s hookStage, p stageProgress) {
	for _, st := range p.finished {
		where := "pod " + s.namespace + "/" + st.Pod
		if st.Container != "" {
			where += " (container " + st.Container + ")"
		}
		stage := strings.ToLower(string(st.Stage))
		switch {
		case st.Phase == v1alpha1.HookPhaseSucceeded:
			m.recorder.Eventf(s.owner, corev1.EventTypeNormal, "HookSucceeded", "%s hook %s in %s %s", stage, st.Name, where, st.Message)
		case st.Phase == v1alpha1.HookPhaseSkipped:
			m.recorder.Eventf(s.owner, corev1.EventTypeNormal, "HookSkipped", "%s hook %s: %s", stage, st.Name, st.Message)
		default:
			msg := fmt.Sprintf("%s hook %s", stage, st.Name)
			if st.Pod != "" {
				msg += " in " + where
			}
			msg += ": " + st.Message
			if st.Stderr != "" {
				msg += "; stderr: " + lastLine(st.Stderr)
			}
			m.recorder.Event(s.owner, corev1.EventTypeWarning, "HookFailed", msg)
			hookFailures.WithLabelValues(s.kind, stage).Inc()
		}
		if st.Duration != nil {
			hookDuration.WithLabelValues(s.kind, stage, string(st.Phase)).Observe(st.Duration.Seconds())
		}
	}
	m.hooks.forget(p.keys)
}

// hookFailureMessage describes the failed entry that stopped a stage: which
// hook, where, its exit code and the end of its stderr.
func hookFailureMessage(st *v1alpha1.HookStatus) string {
	msg := fmt.Sprintf("%s hook %s", strings.ToLower(string(st.Stage)), st.Name)
	if st.Pod != "" {
		msg += " in pod " + st.Pod
		if st.Container != "" {
			msg += " (container " + st.Container + ")"
		}
	}
	msg += ": " + st.Message
	if st.Stderr != "" {
		msg += "; stderr: " + lastLine(st.Stderr)
	}
	return msg
}

// lastLine is the end of a command's stderr for a one-line message: its last
// 300 bytes (after "..." when cut), line breaks shown as " | ".
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = "..." + strings.ToValidUTF8(s[len(s)-300:], "")
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}

// hookFailedCondition sets or clears the HookFailed condition from status.hooks.
func hookFailedCondition(status []v1alpha1.HookStatus, generation int64) *metav1.Condition {
	for i := range status {
		if safety.HookFailedPhase(status[i].Phase) {
			return &metav1.Condition{Type: v1alpha1.ConditionHookFailed, Status: metav1.ConditionTrue, Reason: "Hook" + string(status[i].Phase),
				Message: hookFailureMessage(&status[i]), ObservedGeneration: generation}
		}
	}
	return nil
}

// skipHooks records every action of a stage as Skipped, with why.
func skipHooks(status []v1alpha1.HookStatus, stage v1alpha1.HookStage, actions []v1alpha1.HookAction, why string, now metav1.Time) []v1alpha1.HookStatus {
	out := append([]v1alpha1.HookStatus(nil), status...)
	for _, a := range actions {
		found := false
		for _, st := range out {
			if st.Stage == stage && st.Name == a.Name {
				found = true
			}
		}
		if !found {
			out = append(out, v1alpha1.HookStatus{Stage: stage, Name: a.Name, Phase: v1alpha1.HookPhaseSkipped, CompletionTime: &now, Message: why})
		}
	}
	return out
}
