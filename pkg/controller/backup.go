package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/apis/backup/validation"
	"example.com/backup-operator/pkg/safety"
)

func hasFinalizer(obj metav1.Object, f string) bool {
	for _, x := range obj.GetFinalizers() {
		if x == f {
			return true
		}
	}
	return false
}

func (m *Manager) syncBackup(ctx context.Context, ns, name string) (result, error) {
	b, err := m.backups.Backups(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return result{}, nil
	}
	if err != nil {
		return result{}, err
	}
	if b.DeletionTimestamp != nil {
		return m.finalizeBackup(ctx, b)
	}
	if !hasFinalizer(b, v1alpha1.DataFinalizer) {
		c := b.DeepCopy()
		c.Finalizers = append(c.Finalizers, v1alpha1.DataFinalizer)
		_, err := m.client.BackupV1alpha1().Backups(ns).Update(ctx, c, metav1.UpdateOptions{})
		return result{}, err
	}
	switch b.Status.Phase {
	case v1alpha1.BackupPhaseCompleted, v1alpha1.BackupPhaseFailed:
		return result{}, nil
	case "":
		if b.Annotations[v1alpha1.ImportedSnapshotAnnotation] != "" {
			return result{}, nil // re-created from a snapshot: the importer sets its status
		}
	}
	if f := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionFinishing); f != nil {
		// Post hooks run; the outcome was decided before them.
		return result{}, m.finishBackup(ctx, b, f.Reason, f.Message, nil)
	}
	targetNS, pvcName := b.Spec.Target.Namespace, b.Spec.Target.PVCName
	name = moverJobName("backup", b, b.Status.JobName)
	if meta.IsStatusConditionTrue(b.Status.Conditions, v1alpha1.ConditionQueued) && b.Status.JobName == "" && !m.holdsSlot(b.UID) {
		// Queued: ask for a slot before anything that reads the API server
		// (a queue of a thousand Backups polls here). A Job an earlier sync
		// made shows in the cache and takes the normal path.
		if _, err := m.jobs.Jobs(targetNS).Get(name); apierrors.IsNotFound(err) {
			if res, queued, err := m.queueBackup(ctx, b, targetNS, pvcName); queued || err != nil {
				return res, err
			}
		}
	}
	// expected: a Job created by an earlier sync whose status write was lost
	// must be found in the API even when the cache lags.
	job, err := m.liveJob(ctx, b, targetNS, name, true)
	if apierrors.IsNotFound(err) {
		if b.Status.Phase == v1alpha1.BackupPhaseRunning && b.Status.JobName != "" {
			// Never leave a Backup Running without its Job.
			return result{}, m.failBackup(ctx, b, "JobLost", fmt.Sprintf(
				"the data mover Job %s/%s disappeared before its outcome was read; this Backup records no snapshot. Create a new Backup to retry", targetNS, b.Status.JobName))
		}
		return m.startBackup(ctx, b, targetNS, pvcName, name)
	}
	if refused, ok := errors.AsType[*jobRefused](err); ok {
		return result{}, m.failBackup(ctx, b, refused.reason, refused.msg)
	}
	if err != nil {
		return result{}, err
	}
	return m.observeBackupJob(ctx, b, job)
}

func (m *Manager) startBackup(ctx context.Context, b *v1alpha1.Backup, targetNS, pvcName, name string) (result, error) {
	pvc, err := m.pvcs.PersistentVolumeClaims(targetNS).Get(pvcName)
	switch {
	case apierrors.IsNotFound(err):
		return result{}, m.failBackup(ctx, b, "TargetNotFound", fmt.Sprintf(
			"PersistentVolumeClaim %s/%s does not exist; fix the target (or the policy's) and create a new Backup", targetNS, pvcName))
	case err != nil:
		return result{}, err
	case pvc.Status.Phase != corev1.ClaimBound:
		return result{after: 10 * time.Second}, m.setBackupPending(ctx, b, fmt.Sprintf("waiting for PersistentVolumeClaim %s/%s to be Bound (it is %s)", targetNS, pvcName, pvc.Status.Phase))
	}
	if repo := b.Spec.Storage.PVCName; b.Spec.Storage.S3 == nil {
		if _, err := m.pvcs.PersistentVolumeClaims(targetNS).Get(repo); apierrors.IsNotFound(err) {
			return result{}, m.failBackup(ctx, b, "RepositoryNotFound", fmt.Sprintf(
				"the repository PersistentVolumeClaim %s/%s does not exist; create it in the target's namespace (see artifacts/examples) or set spec.storage.pvcName, then create a new Backup", targetNS, repo))
		}
	}
	// From the check that the claim is free to the Job's start and the
	// Running status, no other mover of the claim may start.
	defer lockClaim(targetNS, pvcName)()
	self := safety.Owner{Kind: "Backup", Namespace: b.Namespace, Name: b.Name, UID: b.UID, Created: b.CreationTimestamp.Time}
	busy, ok := m.checker.BusyFor(self, targetNS, pvcName)
	if !ok {
		var err error
		if busy, ok, err = m.moverRunningOn(ctx, self, targetNS, pvcName); err != nil {
			return result{}, err
		}
	}
	if ok {
		return result{after: 10 * time.Second}, m.setBackupPending(ctx, b, fmt.Sprintf("waiting: %s uses PersistentVolumeClaim %s/%s and goes first", busy, targetNS, pvcName))
	}
	// A mover slot first (it is held through the pre hooks and the copy),
	// then the pre hooks, then the Job.
	if !preRunning(b) && !m.holdsSlot(b.UID) {
		if res, queued, err := m.queueBackup(ctx, b, targetNS, pvcName); queued || err != nil {
			return res, err
		}
	}
	// Pre hooks run while the Backup holds its claim, before the copy; each
	// reconcile moves them one step (a command runs in a goroutine).
	if done, err := m.runPreHooks(ctx, b); err != nil || !done {
		return result{}, err
	}
	sec, err := m.securityFor(ctx, targetNS, pvcName, b.Spec.MoverSecurityContext, backupCaps)
	if refused, ok := errors.AsType[*jobRefused](err); ok {
		return result{}, m.failBackup(ctx, b, refused.reason, refused.msg)
	}
	if err != nil {
		return result{}, err
	}
	spec := jobSpec{kind: "backup", namespace: targetNS, name: name, owner: b, ownerKind: "Backup", repo: b.Spec.Storage, sourcePVC: pvcName,
		nodeName: m.nodeOfRunningUser(targetNS, pvcName), security: sec,
		args: []string{"backup", "--source", "/source", "--summary-file", "/dev/termination-log",
			"--tag", "backup=" + b.Namespace + "/" + b.Name, "--tag", "pvc=" + targetNS + "/" + pvcName, "--tag", "policy=" + b.Spec.PolicyName,
			// One snapshot per Backup: a retried pod whose predecessor
			// published one (killed before it reported) ends with that one.
			"--tag", "backup-uid=" + string(b.UID),
			"--parent-tag", "pvc"}}
	var lockedUntil *metav1.Time
	if im := b.Spec.Storage.Immutability; im != nil && b.Spec.Storage.S3 != nil {
		lockedUntil = ptr.To(metav1.NewTime(m.lockUntil(b)))
		spec.args = append(spec.args, "--lock-mode", strings.ToLower(string(im.Mode)), "--lock-until", lockedUntil.UTC().Format(time.RFC3339))
	}
	job, created, err := m.ensureJob(ctx, b, m.moverJob(spec))
	if refused, ok := errors.AsType[*jobRefused](err); ok {
		return result{}, m.failBackup(ctx, b, refused.reason, refused.msg)
	}
	if apierrors.IsForbidden(err) {
		// A quota, a policy webhook, a terminating namespace: it may pass
		// later, but a Backup waiting for it holds its claim, so not forever.
		if m.opts.Now().Sub(readySince(b)) >= moverPodCreateTimeout {
			return result{}, m.failBackup(ctx, b, "JobCreateRefused", fmt.Sprintf("the data mover Job could not be created for %s: %v. Fix the cause, then create a new Backup", moverPodCreateTimeout, err))
		}
		return result{after: 30 * time.Second}, m.setBackupPending(ctx, b, fmt.Sprintf("waiting: creating the data mover Job was refused (%v); retrying", err))
	}
	if err != nil {
		return result{}, err
	}
	if created {
		m.recorder.Eventf(b, corev1.EventTypeNormal, "Started", "Started data mover Job %s/%s", targetNS, job.Name)
		klog.FromContext(ctx).Info("Backup started", "job", klog.KObj(job))
	}
	c := b.DeepCopy()
	c.Status.Phase = v1alpha1.BackupPhaseRunning
	c.Status.JobName = job.Name
	c.Status.ObservedGeneration = b.Generation
	if !created {
		lockedUntil = jobLockedUntil(job) // the Job's, made by an earlier sync
	}
	c.Status.LockedUntil = lockedUntil
	if c.Status.StartTime == nil {
		now := metav1.NewTime(m.opts.Now())
		c.Status.StartTime = &now
	}
	c.Status.Message = backupRunningMessage
	meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionQueued)
	if sec.level == psaapi.LevelRestricted {
		c.Status.Message += fmt.Sprintf(" as user %d (namespace %s enforces Pod Security restricted: files that user cannot read fail the backup)", *sec.pod.RunAsUser, targetNS)
	}
	_, err = m.client.BackupV1alpha1().Backups(b.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{})
	return result{}, err
}

func (m *Manager) observeBackupJob(ctx context.Context, b *v1alpha1.Backup, job *batchv1.Job) (result, error) {
	done, failed, summary, pod, reason, err := m.jobOutcome(ctx, job)
	if err != nil {
		return result{}, err
	}
	node := ""
	if pod != nil {
		node = pod.Spec.NodeName
	}
	switch {
	case done && summary != nil && validSnapshotID(summary.SnapshotID):
		msg := fmt.Sprintf("snapshot %s stored: %d files, %d bytes, %d new", summary.SnapshotID[:12], summary.Files, summary.Bytes, summary.NewBytes)
		if summary.Vanished > 0 {
			msg += fmt.Sprintf("; %d files or directories vanished while the backup ran and are not in it", summary.Vanished)
		}
		if summary.ChangedDuringRead > 0 {
			msg += fmt.Sprintf("; %d files changed while they were read and are stored as read", summary.ChangedDuringRead)
		}
		return result{}, m.finishBackup(ctx, b, reasonSnapshotStored, msg, func(s *v1alpha1.BackupStatus) {
			s.SnapshotID = summary.SnapshotID
			s.Node = node
			s.JobName = job.Name
			s.Stats = &v1alpha1.BackupStats{Files: summary.Files, Bytes: summary.Bytes, NewBytes: summary.NewBytes, StoredBytes: summary.StoredBytes,
				Vanished: summary.Vanished, ChangedDuringRead: summary.ChangedDuringRead}
			if s.StartTime == nil {
				s.StartTime = ptr.To(metav1.NewTime(m.opts.Now()))
			}
		})
	case done:
		return result{}, m.failBackup(ctx, b, "NoSummary", "the data mover Job completed without reporting a valid snapshot ID; treating the backup as failed. Create a new Backup to retry")
	case failed:
		msg := reason
		if summary != nil && summary.Error != "" {
			msg = summary.Error
		}
		return result{}, m.failBackup(ctx, b, "MoverFailed", fmt.Sprintf("the data mover Job %s/%s failed: %s", job.Namespace, job.Name, msg))
	}
	// Running: keep the node and the progress current while the Job runs,
	// and say so when the Job cannot create its pod.
	c := b.DeepCopy()
	if c.Status.Phase != v1alpha1.BackupPhaseRunning {
		// The Job of an earlier sync whose status write was lost.
		c.Status.Phase, c.Status.JobName, c.Status.Message = v1alpha1.BackupPhaseRunning, job.Name, backupRunningMessage
		meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionQueued)
		c.Status.LockedUntil = jobLockedUntil(job)
		if c.Status.StartTime == nil {
			c.Status.StartTime = ptr.To(metav1.NewTime(m.opts.Now()))
		}
	}
	if blocked := m.moverBlocked(ctx, job, pod); blocked != "" {
		msg := fmt.Sprintf("the data mover Job %s/%s %s", job.Namespace, job.Name, blocked)
		tooLong, isNew := m.setBlocked(&c.Status.Conditions, b.Generation, msg)
		if tooLong {
			if err := m.deleteJob(ctx, job, metav1.DeletePropagationBackground); err != nil {
				return result{}, err
			}
			return result{}, m.failBackup(ctx, b, "MoverBlocked", msg+fmt.Sprintf("; gave up after %s. Fix the cause, then create a new Backup", moverPodCreateTimeout))
		}
		if isNew {
			m.recorder.Event(b, corev1.EventTypeWarning, "MoverBlocked", msg)
		}
		c.Status.Message = msg
	} else if meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionMoverBlocked) != nil && (pod != nil || job.Status.Active > 0) {
		meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionMoverBlocked)
		c.Status.Message = backupRunningMessage
	}
	if node != "" {
		c.Status.Node = node
	}
	if p := m.moverProgress(ctx, pod); p != nil {
		c.Status.Progress = p
	}
	if !apiequality.Semantic.DeepEqual(c.Status, b.Status) {
		if _, err := m.client.BackupV1alpha1().Backups(b.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
			return result{}, err
		}
	}
	return result{after: progressInterval}, nil
}

// queueBackup asks for b's mover slot. A scheduled Backup whose policy's
// startingDeadlineSeconds has passed is failed as a missed run instead of
// starting late. Without a slot, b waits: phase Pending with the condition
// Queued (one event when it starts waiting); a freed slot wakes the first
// waiters (wakeQueue), and a long poll is the safety net. queued: b waits
// (or was failed); nothing else to do now.
func (m *Manager) queueBackup(ctx context.Context, b *v1alpha1.Backup, targetNS, pvcName string) (result, bool, error) {
	deadline, hasDeadline := m.startingDeadline(b)
	if hasDeadline && m.opts.Now().After(deadline) {
		missedSchedules.WithLabelValues(b.Namespace, b.Spec.PolicyName, "queued").Inc()
		return result{}, true, m.failBackup(ctx, b, "MissedStartingDeadline", fmt.Sprintf(
			"not started by %s, its policy's startingDeadlineSeconds after its scheduled time %s, because all data mover slots were in use; "+
				"it was not run late, and the policy's next run goes ahead. Raise --max-movers, or spread the policies' schedules",
			deadline.UTC().Format(time.RFC3339), backupDueAt(b).UTC().Format(time.RFC3339)))
	}
	ok, why := m.admit(slotRequest{kind: slotBackup, owner: b.UID, at: backupDueAt(b), name: b.Namespace + "/" + b.Name,
		node: m.nodeOfRunningUser(targetNS, pvcName)}, "backup")
	if ok {
		return result{}, false, nil
	}
	c := b.DeepCopy()
	c.Status.Phase = v1alpha1.BackupPhasePending
	c.Status.Message = "queued: " + why + "; queued Backups start in the order of their scheduled time"
	isNew := !meta.IsStatusConditionTrue(b.Status.Conditions, v1alpha1.ConditionQueued)
	meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionQueued, Status: metav1.ConditionTrue, Reason: "MoverLimit",
		Message: why, ObservedGeneration: b.Generation})
	if !apiequality.Semantic.DeepEqual(c.Status, b.Status) {
		if _, err := m.client.BackupV1alpha1().Backups(b.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
			return result{}, true, err
		}
	}
	if isNew {
		m.recorder.Event(b, corev1.EventTypeNormal, "Queued", "Waiting for a data mover slot: "+why)
	}
	after := queuedPoll
	if hasDeadline {
		if d := deadline.Sub(m.opts.Now()) + time.Second; d < after {
			after = d
		}
	}
	return result{after: after}, true, nil
}

// queuedPoll is how often a queued object asks again without being woken.
const queuedPoll = time.Minute

// startingDeadline is when a scheduled Backup must have started: its
// scheduled time plus its policy's startingDeadlineSeconds. On-demand
// Backups (no scheduled time) and policies without a deadline have none.
func (m *Manager) startingDeadline(b *v1alpha1.Backup) (time.Time, bool) {
	at, err := time.Parse(time.RFC3339, b.Annotations[v1alpha1.ScheduledTimeAnnotation])
	if err != nil || b.Spec.PolicyName == "" || b.Annotations[v1alpha1.TriggerAnnotation] != "" {
		return time.Time{}, false
	}
	p, err := m.policies.BackupPolicies(b.Namespace).Get(b.Spec.PolicyName)
	if err != nil || p.Spec.StartingDeadlineSeconds == nil {
		return time.Time{}, false
	}
	return at.Add(time.Duration(*p.Spec.StartingDeadlineSeconds) * time.Second), true
}

// readySince is when b became ready for its mover Job: its creation, or
// when its last pre hook action ended.
func readySince(b *v1alpha1.Backup) time.Time {
	since := b.CreationTimestamp.Time
	for _, st := range b.Status.Hooks {
		if st.Stage == v1alpha1.HookStagePre && st.CompletionTime != nil && st.CompletionTime.After(since) {
			since = st.CompletionTime.Time
		}
	}
	return since
}

// backupRunningMessage is a running Backup's status message.
const backupRunningMessage = "the data mover is copying the claim's files into the repository"

// validSnapshotID reports whether a summary's snapshot ID is what the mover
// writes (hexadecimal, at least 12 digits): a summary is a pod's termination
// message, so it is checked before it is used.
func validSnapshotID(id string) bool {
	if len(id) < 12 || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

func (m *Manager) setBackupPending(ctx context.Context, b *v1alpha1.Backup, msg string) error {
	if b.Status.Phase == v1alpha1.BackupPhasePending && b.Status.Message == msg && meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionQueued) == nil {
		return nil
	}
	c := b.DeepCopy()
	c.Status.Phase = v1alpha1.BackupPhasePending
	c.Status.Message = msg
	meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionQueued)
	_, err := m.client.BackupV1alpha1().Backups(b.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{})
	return err
}

// failBackup fails b (after its post hooks, when they are due).
func (m *Manager) failBackup(ctx context.Context, b *v1alpha1.Backup, reason, msg string) error {
	return m.finishBackup(ctx, b, reason, msg, nil)
}

// backupFailed reports a Backup that was failed.
func (m *Manager) backupFailed(ctx context.Context, b *v1alpha1.Backup, reason, msg string) {
	m.recorder.Event(b, corev1.EventTypeWarning, reason, msg)
	backupsTotal.WithLabelValues(b.Namespace, b.Spec.PolicyName, "failed").Inc()
	klog.FromContext(ctx).Info("Backup failed", "reason", reason, "message", msg)
}

// backupCompleted reports a Backup that was completed, from its status.
func (m *Manager) backupCompleted(b *v1alpha1.Backup) {
	m.recorder.Eventf(b, corev1.EventTypeNormal, "Completed", "Backup completed: %s", b.Status.Message)
	backupsTotal.WithLabelValues(b.Namespace, b.Spec.PolicyName, "completed").Inc()
	if st := b.Status.Stats; st != nil {
		backupBytes.WithLabelValues("total").Add(float64(st.Bytes))
		backupBytes.WithLabelValues("new").Add(float64(st.NewBytes))
	}
	if b.Status.StartTime != nil && b.Status.CompletionTime != nil {
		backupDuration.WithLabelValues(b.Namespace, b.Spec.PolicyName).Observe(b.Status.CompletionTime.Sub(b.Status.StartTime.Time).Seconds())
	}
	if b.Spec.PolicyName != "" && b.Status.CompletionTime != nil {
		lastSuccess.WithLabelValues(b.Namespace, b.Spec.PolicyName).Set(float64(b.Status.CompletionTime.Unix()))
	}
}

// finalizeBackup removes a deleted Backup's data from the repository (a prune
// Job, one per repository at a time) before letting the object go.
func (m *Manager) finalizeBackup(ctx context.Context, b *v1alpha1.Backup) (result, error) {
	if !hasFinalizer(b, v1alpha1.DataFinalizer) {
		return result{}, nil
	}
	if res, handled, err := m.hooksBeforeDelete(ctx, b); handled {
		return res, err
	}
	targetNS := b.Spec.Target.Namespace
	if b.Status.SnapshotID == "" {
		// Nothing recorded. A mover that finished meanwhile may have stored a
		// snapshot: record it, so the prune below removes it; a mover that
		// still runs is stopped.
		job, err := m.liveJob(ctx, b, targetNS, moverJobName("backup", b, b.Status.JobName), true)
		_, foreign := errors.AsType[*jobRefused](err)
		switch {
		case err == nil:
			done, _, summary, _, _, err := m.jobOutcome(ctx, job)
			if err != nil {
				return result{}, err
			}
			if done && summary != nil && validSnapshotID(summary.SnapshotID) {
				c := b.DeepCopy()
				c.Status.SnapshotID = summary.SnapshotID
				_, err := m.client.BackupV1alpha1().Backups(b.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{})
				return result{}, err
			}
			if err := m.deleteJob(ctx, job, metav1.DeletePropagationBackground); err != nil {
				return result{}, err
			}
		case !apierrors.IsNotFound(err) && !foreign:
			return result{}, err
		}
		return result{}, m.removeFinalizer(ctx, b)
	}
	name := jobName("prune", b, "")
	repo := repoDescription(targetNS, b.Spec.Storage)
	job, err := m.liveJob(ctx, b, targetNS, name, false)
	if apierrors.IsNotFound(err) {
		// No Job can be created in a namespace being deleted: waiting for
		// one would hold the Backup, and with it that namespace, forever.
		if ending, err := m.namespaceTerminating(ctx, targetNS); err != nil {
			return result{}, err
		} else if ending {
			return result{}, m.dataLeft(ctx, b, "is being deleted")
		}
		// Prune is exclusive per repository: wait for another one to finish.
		// A claim is its namespace's; an S3 location may be shared by Backups
		// of any namespace, so its prune Jobs are looked for everywhere.
		others, _ := m.pruneJobs(targetNS, b.Spec.Storage)
		for _, o := range others {
			if !safety.JobFinished(o) && o.Labels[v1alpha1.OwnerUIDLabel] != string(b.UID) {
				return result{after: 5 * time.Second}, nil
			}
		}
		if b.Spec.Storage.S3 == nil {
			if _, err := m.pvcs.PersistentVolumeClaims(targetNS).Get(b.Spec.Storage.PVCName); apierrors.IsNotFound(err) {
				m.recorder.Eventf(b, corev1.EventTypeWarning, "RepositoryNotFound", "repository claim %s/%s is gone; nothing left to remove", targetNS, b.Spec.Storage.PVCName)
				return result{}, m.removeFinalizer(ctx, b)
			}
		}
		sec, err := m.securityFor(ctx, targetNS, b.Spec.Target.PVCName, b.Spec.MoverSecurityContext, repoCaps)
		if refused, ok := errors.AsType[*jobRefused](err); ok {
			m.pruneRefused(b, refused)
			return result{after: time.Minute}, nil
		}
		if err != nil {
			return result{}, err
		}
		// A mover slot, if one is free now (a prune has no place in the
		// queue: it can wait). Its Job is not pinned to a node.
		if !m.holdsSlot(b.UID) {
			if ok, _ := m.admit(slotRequest{kind: slotPriority, owner: b.UID, name: b.Namespace + "/" + b.Name}, "prune"); !ok {
				return result{after: 10 * time.Second}, nil
			}
		}
		_, created, err := m.ensureJob(ctx, b, m.moverJob(jobSpec{kind: "prune", namespace: targetNS, name: name, owner: b, ownerKind: "Backup", security: sec,
			repo: b.Spec.Storage, args: []string{"prune", "--forget", b.Status.SnapshotID, "--forget-tag", "backup-uid=" + string(b.UID), "--lock-wait", m.opts.LockWait.String(), "--summary-file", "/dev/termination-log"}}))
		if refused, ok := errors.AsType[*jobRefused](err); ok {
			m.pruneRefused(b, refused)
			return result{after: time.Minute}, nil
		}
		if gone := namespaceEndedError(err, targetNS); gone != "" {
			return result{}, m.dataLeft(ctx, b, gone)
		}
		if err == nil && created {
			m.recorder.Eventf(b, corev1.EventTypeNormal, "Pruning", "Removing snapshot %s from %s", shortID(b.Status.SnapshotID), repo)
		}
		return result{}, err
	}
	if refused, ok := errors.AsType[*jobRefused](err); ok {
		m.pruneRefused(b, refused)
		return result{after: 5 * time.Minute}, nil
	}
	if err != nil {
		return result{}, err
	}
	done, failed, summary, pod, reason, err := m.jobOutcome(ctx, job)
	if err != nil {
		return result{}, err
	}
	switch {
	case done:
		// Objects still locked (S3 Object Lock) are kept by the prune, which
		// counts them, and removed by a later one after their lock expires.
		msg := fmt.Sprintf("Snapshot %s removed from %s", shortID(b.Status.SnapshotID), repo)
		if summary != nil && summary.Retained > 0 {
			msg += fmt.Sprintf("; %d objects only it used are locked (S3 Object Lock) and stay in the bucket", summary.Retained)
			if summary.RetainedUntil != nil {
				msg += " until " + summary.RetainedUntil.UTC().Format(time.RFC3339) + " at the latest"
			}
			msg += "; a later prune removes them"
		}
		m.recorder.Event(b, corev1.EventTypeNormal, "DataRemoved", msg)
		return result{}, m.removeFinalizer(ctx, b)
	case failed:
		if summary != nil && summary.Error != "" {
			reason = summary.Error // the mover's own words
		}
		m.recorder.Eventf(b, corev1.EventTypeWarning, "PruneFailed",
			"Removing the snapshot failed (%s); the Backup is kept so no data is lost. Fix the repository, then delete Job %s/%s to retry, or remove the finalizer %s to give up",
			reason, targetNS, name, v1alpha1.DataFinalizer)
		return result{after: 5 * time.Minute}, nil
	}
	if blocked := m.moverBlocked(ctx, job, pod); blocked != "" {
		m.recorder.Eventf(b, corev1.EventTypeWarning, "PruneBlocked", "The prune Job %s/%s %s; the Backup is kept until it can run", targetNS, name, blocked)
		return result{after: time.Minute}, nil
	}
	return result{}, nil
}

// pruneRefused reports a prune Job that cannot be started: the Backup is kept
// (its data is still in the repository), with a warning saying what to do.
func (m *Manager) pruneRefused(b *v1alpha1.Backup, refused *jobRefused) {
	m.recorder.Eventf(b, corev1.EventTypeWarning, "PruneFailed",
		"Removing the snapshot cannot start (%s); the Backup is kept so no data is lost. Fix the cause, or remove the finalizer %s to give up", refused.msg, v1alpha1.DataFinalizer)
}

// namespaceTerminating tells whether namespace is being deleted. A namespace
// the API does not know is not reported here: the refusal to create a Job
// in it says so (namespaceEndedError).
func (m *Manager) namespaceTerminating(ctx context.Context, namespace string) (bool, error) {
	ns, err := m.kube.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	}
	return ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating, nil
}

// namespaceEndedError reads the API server's refusal to create an object in
// namespace: "is being deleted" (Forbidden, cause NamespaceTerminating) or
// "does not exist" (the namespace NotFound), and otherwise "".
func namespaceEndedError(err error, namespace string) string {
	if err == nil {
		return ""
	}
	if apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		return "is being deleted"
	}
	var status apierrors.APIStatus
	if apierrors.IsNotFound(err) && errors.As(err, &status) {
		if d := status.Status().Details; d != nil && d.Kind == "namespaces" && d.Name == namespace {
			return "does not exist"
		}
	}
	return ""
}

// dataLeft lets a deleted Backup go without removing its snapshot, because
// the namespace its prune Job would run in is being deleted or gone: no Job
// can be created there, and waiting would keep the Backup (and a namespace
// being deleted) forever. The event says where the data stays and how to
// remove it: later prunes keep a snapshot they are not asked to forget.
func (m *Manager) dataLeft(ctx context.Context, b *v1alpha1.Backup, why string) error {
	targetNS, id := b.Spec.Target.Namespace, b.Status.SnapshotID
	msg := fmt.Sprintf("Namespace %s %s, so no prune Job can run there; the Backup goes without removing its snapshot %s from %s",
		targetNS, why, id, repoDescription(targetNS, b.Spec.Storage))
	switch {
	case b.Spec.Storage.S3 == nil:
		msg += ", whose claim goes with the namespace (its data stays only where its volume is retained)"
	case b.Spec.PolicyName != "":
		msg += fmt.Sprintf(": its data stays in the bucket, and later prunes of the repository keep it. To remove it, import the repository with a BackupPolicy %s in namespace %s of the same target and storage (annotation %s) and delete the Backup the import re-creates, or run backup-mover prune --forget %s on the repository",
			b.Spec.PolicyName, b.Namespace, v1alpha1.ImportAnnotation, id)
	default:
		msg += fmt.Sprintf(": its data stays in the bucket, and later prunes of the repository keep it. To remove it, run backup-mover prune --forget %s on the repository", id)
	}
	m.recorder.Event(b, corev1.EventTypeWarning, "DataLeftInRepository", msg)
	klog.FromContext(ctx).Info("Backup deleted with its data left in the repository", "backup", klog.KObj(b), "namespace", targetNS, "reason", why)
	return m.removeFinalizer(ctx, b)
}

func (m *Manager) removeFinalizer(ctx context.Context, b *v1alpha1.Backup) error {
	m.hooks.forgetOwner(b.UID)
	c := b.DeepCopy()
	var keep []string
	for _, f := range c.Finalizers {
		if f != v1alpha1.DataFinalizer {
			keep = append(keep, f)
		}
	}
	c.Finalizers = keep
	_, err := m.client.BackupV1alpha1().Backups(b.Namespace).Update(ctx, c, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// shortID is the first 12 characters of a snapshot ID, for messages.
func shortID(id string) string { return id[:min(12, len(id))] }

// pruneJobs lists the prune Jobs of a repository: a claim's in its
// namespace, an S3 location's in every namespace.
func (m *Manager) pruneJobs(namespace string, repo v1alpha1.RepositoryStorage) ([]*batchv1.Job, error) {
	sel := labels.SelectorFromSet(labels.Set{v1alpha1.JobKindLabel: "prune", v1alpha1.RepositoryLabel: v1alpha1.RepositoryLabelValue(repo)})
	if repo.S3 != nil {
		return m.jobs.List(sel)
	}
	return m.jobs.Jobs(namespace).List(sel)
}

// minLockHorizon is the shortest object lock: of a Backup without a policy,
// and of a policy whose retention horizon is shorter.
const minLockHorizon = 24 * time.Hour

// lockUntil is when the objects of b's snapshot stop being locked: its
// scheduled time (or, for an on-demand Backup, its creation time) plus its
// policy's retention horizon (RetentionHorizon; 24 hours for a Backup
// without a policy, or whose policy is gone), and at least 24 hours after
// the mover starts, so a Backup that waited long is not locked for less.
// Rounded up to the second, as --lock-until takes it.
func (m *Manager) lockUntil(b *v1alpha1.Backup) time.Time {
	base := b.CreationTimestamp.Time
	if t, err := time.Parse(time.RFC3339, b.Annotations[v1alpha1.ScheduledTimeAnnotation]); err == nil {
		base = t
	}
	horizon := minLockHorizon
	if b.Spec.PolicyName != "" {
		if p, err := m.policies.BackupPolicies(b.Namespace).Get(b.Spec.PolicyName); err == nil {
			horizon = RetentionHorizon(p.Spec, base)
		}
	}
	until := base.Add(horizon)
	if floor := m.opts.Now().Add(minLockHorizon); until.Before(floor) {
		until = floor
	}
	if t := until.Truncate(time.Second); !t.Equal(until) {
		until = t.Add(time.Second)
	}
	return until.UTC()
}

// RetentionHorizon is how long a policy's retention may keep a Backup
// scheduled at base: the longest of keepDaily days, keepWeekly weeks,
// keepMonthly times 31 days and keepLast times the schedule's interval (the
// time between the two runs after base), at least 24 hours.
func RetentionHorizon(spec v1alpha1.BackupPolicySpec, base time.Time) time.Duration {
	const day = 24 * time.Hour
	r := spec.Retention
	horizon := minLockHorizon
	longer := func(d time.Duration) {
		if d > horizon {
			horizon = d
		}
	}
	longer(time.Duration(ptrOr(r.KeepDaily, 0)) * day)
	longer(time.Duration(ptrOr(r.KeepWeekly, 0)) * 7 * day)
	longer(time.Duration(ptrOr(r.KeepMonthly, 0)) * 31 * day)
	if n := ptrOr(r.KeepLast, 0); n > 0 {
		if sched, err := validation.ParseSchedule(spec.Schedule, spec.TimeZone); err == nil {
			if next := sched.Next(base); !next.IsZero() {
				if after := sched.Next(next); after.After(next) {
					longer(time.Duration(n) * after.Sub(next))
				}
			}
		}
	}
	return horizon
}

// jobLockedUntil reads the --lock-until a backup Job was started with (nil
// without one): what status.lockedUntil reports is what the mover was told.
func jobLockedUntil(job *batchv1.Job) *metav1.Time {
	for _, c := range job.Spec.Template.Spec.Containers {
		for i, a := range c.Command {
			if a == "--lock-until" && i+1 < len(c.Command) {
				if t, err := time.Parse(time.RFC3339, c.Command[i+1]); err == nil {
					return ptr.To(metav1.NewTime(t))
				}
			}
		}
	}
	return nil
}
