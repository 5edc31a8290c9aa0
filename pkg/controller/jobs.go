package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/mover/report"
	"example.com/backup-operator/pkg/safety"
)

// maxJobName keeps Job names short enough that the Job controller's pod
// names and job-name labels stay valid (CronJob uses the same limit).
const maxJobName = 52

// jobName derives the name of the Job of one kind that works for owner: the
// kind, as much of the owner's name as fits, and a hash of the owner's
// namespace, name and UID (and extra, which distinguishes several Jobs of one
// owner). Two owners never share a name: not two Backups of the same name in
// different namespaces, and not a Backup and the one re-created after it under
// the same name.
func jobName(kind string, owner metav1.Object, extra string) string {
	h := shortHash(owner.GetNamespace() + "/" + owner.GetName() + "/" + string(owner.GetUID()) + "/" + extra)
	n := owner.GetName()
	if room := maxJobName - len(kind) - len(h) - 2; len(n) > room {
		n = strings.TrimRight(n[:room], ".-")
	}
	return kind + "-" + n + "-" + h
}

// shortHash is ten hex digits of the SHA-256 of s.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:10]
}

// ownedBy reports whether job works for owner: it is controlled by the owner
// (possible only in the owner's namespace), or, without a controller
// reference, carries our labels with the owner's UID. A Job of the expected
// name that is neither is someone else's and is never used.
func ownedBy(job *batchv1.Job, owner metav1.Object) bool {
	if ref := metav1.GetControllerOf(job); ref != nil {
		return ref.UID == owner.GetUID()
	}
	l := job.Labels
	if l[v1alpha1.ManagedByLabel] != v1alpha1.ManagedBy {
		return false
	}
	if uid, ok := l[v1alpha1.OwnerUIDLabel]; ok {
		return uid == string(owner.GetUID())
	}
	// A Job made before Jobs carried the owner's UID: its owner labels name
	// the owner, and it is not older than the owner (so not a predecessor's).
	return l[v1alpha1.OwnerNamespaceLabel] == owner.GetNamespace() && l[v1alpha1.OwnerNameLabel] == owner.GetName() &&
		!job.CreationTimestamp.Time.Before(owner.GetCreationTimestamp().Time)
}

// moverJobName is the name of the owner's mover Job of kind: the one its
// status records, or (before a status write, or when it was lost) the one
// jobName gives it. Sync and finalizer look for the same Job through it.
func moverJobName(kind string, owner metav1.Object, recorded string) string {
	if recorded != "" {
		return recorded
	}
	return jobName(kind, owner, "")
}

// jobRefused is a Job problem that retrying cannot fix: the API refused the
// Job as invalid, or a Job of its name exists that is not the owner's. The
// owner is marked Failed with reason and message.
type jobRefused struct{ reason, msg string }

func (e *jobRefused) Error() string { return e.msg }

func foreignJob(job *batchv1.Job) error {
	return &jobRefused{reason: "JobConflict", msg: fmt.Sprintf(
		"Job %s/%s exists but was not created for this object (its owner reference or %s label names another); it is left alone and not used. Delete that Job if it is stale, or create a new object under another name",
		job.Namespace, job.Name, v1alpha1.OwnerUIDLabel)}
}

type jobSpec struct {
	kind            string // backup, restore, prune, import
	namespace, name string // the Job
	owner           metav1.Object
	ownerKind       string // Backup, RestoreJob or BackupPolicy
	// repo is the repository the mover opens: its location, Secrets and
	// encryption become the mover's flags, environment and volumes
	// (repoAccess).
	repo      v1alpha1.RepositoryStorage
	sourcePVC string // mounted read-only at /source (backup)
	targetPVC string // mounted read-write at /target (restore)
	// args are the mover's command (args[0]: backup, restore, diff, prune,
	// ls) and its flags; the repository's flags follow the command.
	args     []string
	nodeName string
	security moverSecurity
}

// Where the mover finds the repository's files and Secrets in its pod.
const (
	repoMountPath      = "/repo"
	s3CADir            = "/etc/backup-mover/s3-ca"
	s3CAKey            = "ca.crt"
	passwordDir        = "/etc/backup-mover/password"
	passwordKey        = "password"
	accessKeyIDEnv     = "AWS_ACCESS_KEY_ID"
	secretAccessKeyEnv = "AWS_SECRET_ACCESS_KEY"
)

// repoAccess is how a mover reaches a repository: the flags that follow
// its command, the environment and the volumes. A claim is mounted at /repo
// (--repo /repo). An S3 repository is named by its location (--repo
// s3:<endpoint>/<bucket>[/<prefix>], plus --s3-region, --s3-ca-file with the
// CA Secret mounted, --s3-insecure-skip-tls-verify as set), its keys come
// from the credentials Secret as environment variables, and /tmp is an
// emptyDir for the packs the mover stages before uploading them (the root
// filesystem is read-only). The password of an encrypted repository is a
// file of its Secret's volume (--password-file). Secrets are referenced,
// never read: their values reach only the mover's pod, never its arguments,
// the Job's spec, status, events or logs.
func repoAccess(s v1alpha1.RepositoryStorage) (args []string, env []corev1.EnvVar, volumes []corev1.Volume, mounts []corev1.VolumeMount) {
	secretVolume := func(name, secret, key, dir string) {
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: secret, Items: []corev1.KeyToPath{{Key: key, Path: key}}}}})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: dir, ReadOnly: true})
	}
	if s3 := s.S3; s3 != nil {
		args = append(args, "--repo", v1alpha1.S3Location(s3))
		if s3.Region != "" {
			args = append(args, "--s3-region", s3.Region)
		}
		if s3.CASecretRef != nil {
			secretVolume("s3-ca", s3.CASecretRef.Name, s3CAKey, s3CADir)
			args = append(args, "--s3-ca-file", s3CADir+"/"+s3CAKey)
		}
		if s3.InsecureSkipTLSVerify {
			args = append(args, "--s3-insecure-skip-tls-verify")
		}
		for _, key := range []string{accessKeyIDEnv, secretAccessKeyEnv} {
			env = append(env, corev1.EnvVar{Name: key, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: s3.CredentialsSecretRef.Name}, Key: key}}})
		}
		volumes = append(volumes, corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"})
	} else {
		args = append(args, "--repo", repoMountPath)
		volumes = append(volumes, corev1.Volume{Name: "repo", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: s.PVCName}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "repo", MountPath: repoMountPath})
	}
	if e := s.Encryption; e != nil {
		secretVolume("password", e.SecretRef.Name, passwordKey, passwordDir)
		args = append(args, "--password-file", passwordDir+"/"+passwordKey)
	}
	return args, env, volumes, mounts
}

// repoDescription names a repository in messages and events: "repository
// claim <namespace>/<name>" or "S3 repository s3:<endpoint>/<bucket>/<prefix>".
func repoDescription(namespace string, s v1alpha1.RepositoryStorage) string {
	if s.S3 != nil {
		return "S3 repository " + v1alpha1.S3Location(s.S3)
	}
	return "repository claim " + namespace + "/" + s.PVCName
}

// moverJob builds the data mover Job: the mover's pod (moverPod) with a
// deadline and retries.
func (m *Manager) moverJob(s jobSpec) *batchv1.Job {
	lbls, spec := m.moverPod(s)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.namespace, Labels: lbls,
			Annotations: map[string]string{v1alpha1.OwnerAnnotation: s.owner.GetNamespace() + "/" + s.owner.GetName()}},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To(m.opts.JobBackoffLimit),
			ActiveDeadlineSeconds:   ptr.To(int64(m.opts.JobDeadline.Seconds())),
			TTLSecondsAfterFinished: ptr.To(int32(m.opts.JobTTL.Seconds())),
			Template:                corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbls}, Spec: spec},
		},
	}
	if s.owner.GetNamespace() == s.namespace {
		// Owner references cannot cross namespaces; elsewhere the UID label
		// ties the Job to its owner.
		job.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(s.owner, v1alpha1.SchemeGroupVersion.WithKind(s.ownerKind))}
	}
	return job
}

// moverPod builds the labels and the spec of a data mover pod: our image,
// the repository (repoAccess), the data at /source (read-only) or /target,
// a restrictive security context with only the capabilities the operation
// needs, and requests. The mover needs no API access; it uses the pod
// network only to reach an S3 endpoint (cluster DNS, no service links) and,
// as a reader, to answer the kube-apiserver's pod proxy.
func (m *Manager) moverPod(s jobSpec) (map[string]string, corev1.PodSpec) {
	repoArgs, env, volumes, mounts := repoAccess(s.repo)
	command := append([]string{"/backup-mover", s.args[0]}, repoArgs...)
	command = append(command, s.args[1:]...)
	if s.sourcePVC != "" {
		volumes = append(volumes, corev1.Volume{Name: "source", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: s.sourcePVC, ReadOnly: true}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "source", MountPath: "/source", ReadOnly: true})
	}
	if s.targetPVC != "" {
		volumes = append(volumes, corev1.Volume{Name: "target", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: s.targetPVC}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "target", MountPath: "/target"})
	}
	lbls := map[string]string{
		v1alpha1.ManagedByLabel:      v1alpha1.ManagedBy,
		v1alpha1.JobKindLabel:        s.kind,
		v1alpha1.OwnerNamespaceLabel: v1alpha1.LabelValue(s.owner.GetNamespace()),
		v1alpha1.OwnerNameLabel:      v1alpha1.LabelValue(s.owner.GetName()),
		v1alpha1.OwnerUIDLabel:       string(s.owner.GetUID()),
		v1alpha1.RepositoryLabel:     v1alpha1.RepositoryLabelValue(s.repo),
	}
	if claim := s.sourcePVC + s.targetPVC; claim != "" {
		lbls[v1alpha1.ClaimLabel] = v1alpha1.LabelValue(claim)
	}
	return lbls, corev1.PodSpec{
		RestartPolicy:                corev1.RestartPolicyNever,
		AutomountServiceAccountToken: ptr.To(false),
		EnableServiceLinks:           ptr.To(false),
		NodeName:                     s.nodeName,
		SecurityContext:              s.security.pod,
		Containers: []corev1.Container{{
			Name:                     moverContainer,
			Image:                    m.opts.MoverImage,
			ImagePullPolicy:          corev1.PullIfNotPresent,
			Command:                  command,
			Env:                      env,
			TerminationMessagePath:   "/dev/termination-log",
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			VolumeMounts:             mounts,
			Resources:                corev1.ResourceRequirements{Requests: m.opts.MoverRequests.DeepCopy(), Limits: m.opts.MoverLimits.DeepCopy()},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				ReadOnlyRootFilesystem:   ptr.To(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: s.security.caps},
			},
		}},
		Volumes: volumes,
	}
}

// moverPodCreateTimeout bounds how long a mover Job may fail to create its
// pod (refused by admission: Pod Security, a quota) before its owner fails.
const moverPodCreateTimeout = 5 * time.Minute

// blockedPodCheckAfter is how long a Job may go without a pod before the
// controller looks for the reason in the Job's events.
const blockedPodCheckAfter = 10 * time.Second

// moverBlocked returns why the Job cannot create its pod (the newest
// FailedCreate event of the Job, which carries the admission message) or
// its pod cannot start the mover (podBlocked), or "" when neither: the pod
// runs or ran, or the Job and its pod are young enough to be on their way.
func (m *Manager) moverBlocked(ctx context.Context, job *batchv1.Job, pod *corev1.Pod) string {
	if pod != nil {
		if msg := m.podBlocked(ctx, pod); msg != "" {
			return "cannot start its pod: " + msg
		}
		return ""
	}
	if job.UID == "" || job.Status.Active > 0 || job.Status.Succeeded > 0 || job.Status.Failed > 0 ||
		m.opts.Now().Sub(job.CreationTimestamp.Time) < blockedPodCheckAfter {
		return ""
	}
	events, err := m.kube.CoreV1().Events(job.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.uid": string(job.UID), "reason": "FailedCreate"}.String()})
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Cannot read the mover Job's events", "job", klog.KObj(job), "err", err)
		return ""
	}
	var newest *corev1.Event
	for i := range events.Items {
		e := &events.Items[i]
		if e.InvolvedObject.UID != job.UID || e.Reason != "FailedCreate" {
			continue
		}
		if newest == nil || eventTime(e).After(eventTime(newest)) {
			newest = e
		}
	}
	if newest == nil {
		return ""
	}
	return "cannot create its pod: " + newest.Message
}

// podBlocked returns why a pending mover pod cannot start its container,
// and so never will by itself: a Secret (or a key of it) that the pod takes
// its environment from is missing (CreateContainerConfigError, with the
// kubelet's message naming it), or a Secret volume, such as an encrypted
// repository's password, cannot be mounted (the newest FailedMount event of
// the pod that names a secret). "" for a pod that runs, ran, or is young.
func (m *Manager) podBlocked(ctx context.Context, pod *corev1.Pod) string {
	if pod.Status.Phase != corev1.PodPending || pod.UID == "" || m.opts.Now().Sub(pod.CreationTimestamp.Time) < blockedPodCheckAfter {
		return ""
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason == "CreateContainerConfigError" {
			return withSecretHint(pod.Namespace, w.Message)
		}
	}
	events, err := m.kube.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.uid": string(pod.UID), "reason": "FailedMount"}.String()})
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Cannot read the mover pod's events", "pod", klog.KObj(pod), "err", err)
		return ""
	}
	var newest *corev1.Event
	for i := range events.Items {
		e := &events.Items[i]
		// Only a missing Secret: other mount failures (a volume still
		// attaching) may pass by themselves.
		if e.InvolvedObject.UID == pod.UID && e.Reason == "FailedMount" && strings.Contains(e.Message, "secret") &&
			(newest == nil || eventTime(e).After(eventTime(newest))) {
			newest = e
		}
	}
	if newest == nil {
		return ""
	}
	return withSecretHint(pod.Namespace, newest.Message)
}

// withSecretHint adds what to do to a kubelet message about a missing Secret.
func withSecretHint(namespace, msg string) string {
	if strings.Contains(strings.ToLower(msg), "secret") {
		msg += fmt.Sprintf(" (the Secrets that spec.storage names must exist in namespace %s, with the keys its documentation lists)", namespace)
	}
	return msg
}

// setBlocked records on conds that the mover's pod cannot be created, and
// reports whether that has lasted moverPodCreateTimeout (timed from when the
// condition was first set). An event is due when the condition is new.
func (m *Manager) setBlocked(conds *[]metav1.Condition, generation int64, msg string) (tooLong, isNew bool) {
	now := m.opts.Now()
	old := meta.FindStatusCondition(*conds, v1alpha1.ConditionMoverBlocked)
	since := now
	if old != nil && old.Status == metav1.ConditionTrue {
		since = old.LastTransitionTime.Time
	}
	meta.SetStatusCondition(conds, metav1.Condition{Type: v1alpha1.ConditionMoverBlocked, Status: metav1.ConditionTrue, Reason: "FailedCreate",
		Message: msg, ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(since)})
	return now.Sub(since) >= moverPodCreateTimeout, old == nil || old.Status != metav1.ConditionTrue
}

func eventTime(e *corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// deleteJob deletes the owner's Job and its pods (propagation says when the
// Job goes: before them or after), only that very Job.
func (m *Manager) deleteJob(ctx context.Context, job *batchv1.Job, propagation metav1.DeletionPropagation) error {
	err := m.kube.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(propagation), Preconditions: metav1.NewUIDPreconditions(string(job.UID))})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// moverContainer is the name of the mover Job's only container.
const moverContainer = "mover"

// jobOutcome reads a Job: done, failed, the pod whose report counts, and
// the mover's summary from that pod's termination message. The pod is one
// that succeeded when the Job is done, else the newest (its progress is
// read while the Job runs).
//
// The Job and its pods come from two informers, which deliver on their own:
// the Job can be seen Complete before the final status of the pod that made
// it so, and a pod deleted at once (--force) can linger in the cache
// beside the Job's next one, created the same second. A finished Job whose
// report is not in the cache is therefore read again from kube-apiserver
// before an outcome is drawn from the report's absence: a backup whose mover
// stored a snapshot must not be recorded Failed for want of a fresh cache.
func (m *Manager) jobOutcome(ctx context.Context, job *batchv1.Job) (done, failed bool, summary *report.Summary, pod *corev1.Pod, reason string, err error) {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			done = true
		case batchv1.JobFailed:
			failed, reason = true, c.Reason+": "+c.Message
		}
	}
	// By the Job's UID, not its name: never a pod of an earlier Job of the same name.
	sel := labels.SelectorFromSet(labels.Set{batchv1.ControllerUidLabel: string(job.UID)})
	pods, _ := m.pods.Pods(job.Namespace).List(sel)
	pod, summary, message := reportOf(pods, done)
	if done && (summary == nil || pod.Status.Phase != corev1.PodSucceeded) {
		l, err := m.kube.CoreV1().Pods(job.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			// Retried (the key is requeued), not decided from the cache.
			return false, false, nil, nil, "", fmt.Errorf("reading the pods of finished Job %s/%s: %w", job.Namespace, job.Name, err)
		}
		if len(l.Items) > 0 {
			live := make([]*corev1.Pod, len(l.Items))
			for i := range l.Items {
				live[i] = &l.Items[i]
			}
			pod, summary, message = reportOf(live, done)
		}
	}
	// A Job that completed is reported on by a pod that succeeded, never by
	// an earlier attempt's error.
	if done && summary != nil && pod.Status.Phase != corev1.PodSucceeded {
		summary = nil
	}
	if summary == nil && reason == "" {
		reason = message
	}
	return done, failed, summary, pod, reason, nil
}

// reportOf picks the pod whose report counts among a Job's pods (one that
// succeeded, when succeeded is set and there is one; else the newest, the
// pod not being deleted first among those created the same second) and
// returns it with its summary, or the text of a termination message that is
// not one.
func reportOf(pods []*corev1.Pod, succeeded bool) (pod *corev1.Pod, summary *report.Summary, message string) {
	newer := func(a, b *corev1.Pod) bool {
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.After(b.CreationTimestamp.Time)
		}
		if (a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil) {
			return a.DeletionTimestamp == nil
		}
		return a.Name > b.Name // the same pick from the cache and from a list
	}
	counts := func(p *corev1.Pod) bool { return succeeded && p.Status.Phase == corev1.PodSucceeded }
	for _, p := range pods {
		switch {
		case pod == nil:
			pod = p
		case counts(p) != counts(pod):
			if counts(p) {
				pod = p
			}
		case newer(p, pod):
			pod = p
		}
	}
	if pod == nil {
		return nil, nil, ""
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.Message != "" {
			var s report.Summary
			if json.Unmarshal([]byte(t.Message), &s) == nil {
				return pod, &s, ""
			}
			message = strings.TrimSpace(t.Message)
		}
	}
	return pod, nil, message
}

// progressInterval is how often the controller reads a running mover's
// progress; the mover prints a line a second.
const progressInterval = 5 * time.Second

// moverProgress reads the newest progress line of a running mover from its
// pod's log: the mover has no API credentials, so its stdout is the channel.
// Nil when there is no line yet or the log cannot be read (progress is
// informative; the Job's outcome decides the Backup's).
func (m *Manager) moverProgress(ctx context.Context, pod *corev1.Pod) *v1alpha1.Progress {
	if pod == nil || pod.Status.Phase != corev1.PodRunning {
		return nil
	}
	data, err := m.kube.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{
		Container: moverContainer, TailLines: ptr.To[int64](2), LimitBytes: ptr.To[int64](4096)}).DoRaw(ctx)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Cannot read the data mover's progress", "pod", klog.KObj(pod), "err", err)
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var p report.Progress
		if json.Unmarshal([]byte(lines[i]), &p) == nil && p.Type == report.ProgressType {
			return &v1alpha1.Progress{BytesDone: p.BytesDone, BytesTotal: p.BytesTotal}
		}
	}
	return nil
}

// liveJob reads the owner's Job from the cache; when the cache does not have
// it and expected is set, it asks the API server, because a Job created a
// moment ago (by an earlier sync whose status write was lost, say) may not
// have reached the cache yet. Only a Job missing there too is NotFound. A Job
// of that name that is not the owner's is a jobRefused error. The sync and
// finalizer of a Backup or RestoreJob that has not finished pass expected:
// that costs a GET on a cache miss, and never starts a second mover.
func (m *Manager) liveJob(ctx context.Context, owner metav1.Object, namespace, name string, expected bool) (*batchv1.Job, error) {
	job, err := m.jobs.Jobs(namespace).Get(name)
	if apierrors.IsNotFound(err) && expected {
		job, err = m.kube.BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, err
	}
	if !ownedBy(job, owner) {
		return nil, foreignJob(job)
	}
	return job, nil
}

// ensureJob creates the Job unless the owner's exists, and returns the
// current one. A Job of the name that is not the owner's, or a Job the API
// refuses as invalid, is a jobRefused error; other errors are worth a retry.
func (m *Manager) ensureJob(ctx context.Context, owner metav1.Object, job *batchv1.Job) (*batchv1.Job, bool, error) {
	if existing, err := m.jobs.Jobs(job.Namespace).Get(job.Name); err == nil {
		if !ownedBy(existing, owner) {
			return nil, false, foreignJob(existing)
		}
		return existing, false, nil
	}
	created, err := m.kube.BatchV1().Jobs(job.Namespace).Create(ctx, job, metav1.CreateOptions{})
	switch {
	case err == nil:
		return created, true, nil
	case apierrors.IsAlreadyExists(err):
		existing, gerr := m.kube.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
		if gerr != nil {
			return nil, false, gerr
		}
		if !ownedBy(existing, owner) {
			return nil, false, foreignJob(existing)
		}
		return existing, false, nil
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		return nil, false, &jobRefused{reason: "JobRefused", msg: fmt.Sprintf(
			"the API refused the data mover Job %s/%s: %v; this does not change on retry, so nothing was started. Fix the cause, then create a new object", job.Namespace, job.Name, err)}
	}
	m.recorder.Eventf(owner.(runtime.Object), corev1.EventTypeWarning, "JobCreateFailed", "Creating data mover Job %s/%s failed (will retry): %v", job.Namespace, job.Name, err)
	return nil, false, fmt.Errorf("creating Job %s/%s: %w", job.Namespace, job.Name, err)
}

// claimLocks hold, per claim, a mutex that serialises the decision to start
// a mover of the claim with its start: two workers (a backup and a restore
// worker, say) never both find the claim free. One process runs the
// controllers (leader election), so a lock in memory suffices.
var claimLocks sync.Map // "namespace/claim" → *sync.Mutex

// lockClaim locks the claim and returns the unlock.
func lockClaim(namespace, pvc string) func() {
	mu, _ := claimLocks.LoadOrStore(namespace+"/"+pvc, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

// moverRunningOn finds, in the API server's own list (which has a Job
// another worker created a moment ago before any cache does), a mover Job of
// the claim that has not finished and does not work for self. Call it with
// the claim locked, after the checker's cached answer (BusyFor).
func (m *Manager) moverRunningOn(ctx context.Context, self safety.Owner, namespace, pvc string) (safety.Owner, bool, error) {
	jobs, err := m.kube.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{LabelSelector: safety.ClaimJobsSelector(pvc).String()})
	if err != nil {
		return safety.Owner{}, false, err
	}
	list := make([]*batchv1.Job, 0, len(jobs.Items))
	for i := range jobs.Items {
		list = append(list, &jobs.Items[i])
	}
	o, busy := safety.RunningMover(list, self)
	return o, busy, nil
}

// nodeOfRunningUser is the node of a running pod that mounts the claim, so a
// mover can share a ReadWriteOnce volume with it.
func (m *Manager) nodeOfRunningUser(namespace, pvc string) string {
	for _, p := range m.checker.PodsUsing(namespace, pvc) {
		if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" {
			return p.Spec.NodeName
		}
	}
	return ""
}
