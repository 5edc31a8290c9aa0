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
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/mover/report"
	"example.com/backup-operator/pkg/safety"
)

func (m *Manager) syncRestore(ctx context.Context, ns, name string) (result, error) {
	r, err := m.restores.RestoreJobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return result{}, nil
	}
	if err != nil {
		return result{}, err
	}
	if r.DeletionTimestamp != nil {
		return m.finalizeRestore(ctx, r)
	}
	switch r.Status.Phase {
	case v1alpha1.RestorePhaseCompleted, v1alpha1.RestorePhaseFailed:
		return result{}, nil
	}
	if !hasFinalizer(r, v1alpha1.MoverFinalizer) {
		c := r.DeepCopy()
		c.Finalizers = append(c.Finalizers, v1alpha1.MoverFinalizer)
		if r, err = m.client.BackupV1alpha1().RestoreJobs(ns).Update(ctx, c, metav1.UpdateOptions{}); err != nil {
			return result{}, err
		}
	}
	targetNS := r.Spec.Target.Namespace
	name = moverJobName("restore", r, r.Status.JobName)
	job, err := m.liveJob(ctx, r, targetNS, name, true)
	if err == nil {
		return m.observeRestoreJob(ctx, r, job)
	}
	if refused, ok := errors.AsType[*jobRefused](err); ok {
		return result{}, m.failRestore(ctx, r, nil, refused.reason, refused.msg)
	}
	if !apierrors.IsNotFound(err) {
		return result{}, err
	}
	if r.Status.Phase == v1alpha1.RestorePhaseRunning && r.Status.JobName != "" && hookStarted(r.Status.Hooks, v1alpha1.HookStagePost) && r.Status.Stats != nil && r.Status.Preview != nil {
		// The data was written and post hooks run; the finished Job's TTL
		// ended meanwhile. What it did is in status.
		pv, st := r.Status.Preview, r.Status.Stats
		return m.completeRestore(ctx, r, r.Status.JobName, &report.Summary{Creates: pv.Creates, Overwrites: pv.Overwrites, Deletes: pv.Deletes, Paths: pv.Paths,
			Truncated: pv.Truncated, Files: st.Files, Bytes: st.Bytes, Verified: r.Status.Verified})
	}
	if r.Status.Phase == v1alpha1.RestorePhaseRunning && r.Status.JobName != "" {
		return result{}, m.failRestore(ctx, r, nil, "JobLost", fmt.Sprintf("the data mover Job %s/%s disappeared before it finished; check the claim, then create a new RestoreJob", targetNS, r.Status.JobName))
	}

	// A new claim is created first; the checks below then apply to it like
	// to any claim (it must be ours, Bound and large enough).
	if r.Spec.Target.NewPVC != nil {
		b, err := m.backups.Backups(r.Spec.BackupNamespace).Get(r.Spec.BackupName)
		if err != nil {
			return result{}, m.failRestore(ctx, r, nil, "BackupNotFound", fmt.Sprintf("Backup %s/%s is gone; nothing was written", r.Spec.BackupNamespace, r.Spec.BackupName))
		}
		bound, err := m.ensureNewPVC(ctx, r, b)
		if err != nil {
			return result{}, m.failRestore(ctx, r, nil, "NewClaimRefused", err.Error()+"; nothing was written")
		}
		if !bound {
			return result{after: 3 * time.Second}, m.setRestoreStatus(ctx, r, func(s *v1alpha1.RestoreJobStatus) {
				s.Phase, s.Message = v1alpha1.RestorePhasePending, "waiting for the new claim "+r.Spec.Target.PVCName+" to be Bound"
			})
		}
	}

	// The cluster may have changed since the request was admitted: check again
	// right before touching data. (The requester's permissions were checked at
	// admission; they are not re-evaluated for the controller's own identity.)
	// From the checks to the Job's start and the Running status, no other
	// mover of the claim may start.
	defer lockClaim(targetNS, r.Spec.Target.PVCName)()
	checks, refusal := m.checker.CheckRestore(ctx, nil, safety.Restore{
		Namespace: r.Namespace, Name: r.Name, UID: r.UID, Created: r.CreationTimestamp.Time, BackupNamespace: r.Spec.BackupNamespace, BackupName: r.Spec.BackupName,
		TargetNamespace: targetNS, TargetPVC: r.Spec.Target.PVCName,
		AllowInUse: r.Spec.AllowInUse || r.Spec.DryRun,
	})
	statusChecks := make([]v1alpha1.RestoreCheck, 0, len(checks))
	for _, c := range checks {
		statusChecks = append(statusChecks, v1alpha1.RestoreCheck{Name: c.Name, Passed: c.Passed, Message: c.Message})
	}
	if refusal != nil {
		if refusal.Code == 503 {
			return result{after: 5 * time.Second}, nil
		}
		if refusal.Wait {
			// Another Backup or RestoreJob of the claim goes first; nothing is written meanwhile.
			return result{after: 10 * time.Second}, m.setRestoreStatus(ctx, r, func(s *v1alpha1.RestoreJobStatus) {
				s.Phase, s.Checks, s.Message = v1alpha1.RestorePhasePending, statusChecks, "waiting: "+refusal.Message
				meta.RemoveStatusCondition(&s.Conditions, v1alpha1.ConditionQueued)
			})
		}
		return result{}, m.failRestore(ctx, r, statusChecks, "SafetyCheckFailed", "refused right before restoring: "+refusal.Message+"; nothing was written")
	}
	// CheckRestore asked the caches; the API server's list has a Job another
	// worker created a moment ago.
	if busy, ok, err := m.moverRunningOn(ctx, safety.Owner{Kind: "RestoreJob", Namespace: r.Namespace, Name: r.Name, UID: r.UID, Created: r.CreationTimestamp.Time},
		targetNS, r.Spec.Target.PVCName); err != nil || ok {
		return result{after: 10 * time.Second}, errors.Join(err, m.setRestoreStatus(ctx, r, func(s *v1alpha1.RestoreJobStatus) {
			if ok {
				s.Phase, s.Checks, s.Message = v1alpha1.RestorePhasePending, statusChecks, fmt.Sprintf("waiting: %s uses the claim", busy)
			}
		}))
	}
	b, err := m.backups.Backups(r.Spec.BackupNamespace).Get(r.Spec.BackupName)
	if err != nil {
		return result{}, err
	}
	if b.Spec.Target.Namespace != targetNS {
		what := fmt.Sprintf("the Backup's repository claim %s/%s is", b.Spec.Target.Namespace, b.Spec.Storage.PVCName)
		if b.Spec.Storage.S3 != nil {
			what = fmt.Sprintf("the Secrets of the Backup's S3 repository are in namespace %s,", b.Spec.Target.Namespace)
		}
		return result{}, m.failRestore(ctx, r, statusChecks, "RepositoryElsewhere", fmt.Sprintf(
			"%s in another namespace than the target %s; a restore Job mounts both, so restore into a claim in %s",
			what, targetNS, b.Spec.Target.Namespace))
	}
	op := "restore"
	if r.Spec.DryRun {
		op = "diff"
	}
	identity := r.Spec.MoverSecurityContext
	if identity == nil {
		identity = b.Spec.MoverSecurityContext // who wrote the files backs them up and restores them
	}
	sec, err := m.securityFor(ctx, targetNS, r.Spec.Target.PVCName, identity, restoreCaps)
	if refused, ok := errors.AsType[*jobRefused](err); ok {
		return result{}, m.failRestore(ctx, r, statusChecks, refused.reason, refused.msg+"; nothing was written")
	}
	if err != nil {
		return result{}, err
	}
	// A mover slot; restores go before every queued Backup.
	if !m.holdsSlot(r.UID) {
		if ok, why := m.admit(slotRequest{kind: slotPriority, owner: r.UID, name: r.Namespace + "/" + r.Name, node: m.nodeOfRunningUser(targetNS, r.Spec.Target.PVCName)}, "restore"); !ok {
			isNew := !meta.IsStatusConditionTrue(r.Status.Conditions, v1alpha1.ConditionQueued)
			err := m.setRestoreStatus(ctx, r, func(s *v1alpha1.RestoreJobStatus) {
				s.Phase, s.Checks, s.Message = v1alpha1.RestorePhasePending, statusChecks, "queued: "+why+"; restores start before queued Backups"
				meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: v1alpha1.ConditionQueued, Status: metav1.ConditionTrue, Reason: "MoverLimit", Message: why, ObservedGeneration: r.Generation})
			})
			if err == nil && isNew {
				m.recorder.Event(r, corev1.EventTypeNormal, "Queued", "Waiting for a data mover slot: "+why)
			}
			return result{after: queuedPoll}, err
		}
	}
	spec := jobSpec{kind: "restore", namespace: targetNS, name: name, owner: r, ownerKind: "RestoreJob", repo: b.Spec.Storage,
		targetPVC: r.Spec.Target.PVCName, nodeName: m.nodeOfRunningUser(targetNS, r.Spec.Target.PVCName), security: sec,
		args: restoreArgs(op, b.Status.SnapshotID, r.Spec.Mode, r.Spec.Paths)}
	job, created, err := m.ensureJob(ctx, r, m.moverJob(spec))
	if refused, ok := errors.AsType[*jobRefused](err); ok {
		return result{}, m.failRestore(ctx, r, statusChecks, refused.reason, refused.msg+"; nothing was written")
	}
	if apierrors.IsForbidden(err) {
		// A quota, a policy webhook, a terminating namespace: it may pass
		// later, but a restore waiting for it holds its claim, so not forever.
		if m.opts.Now().Sub(r.CreationTimestamp.Time) >= moverPodCreateTimeout {
			return result{}, m.failRestore(ctx, r, statusChecks, "JobCreateRefused", fmt.Sprintf(
				"the data mover Job could not be created for %s: %v; nothing was written. Fix the cause, then create a new RestoreJob", moverPodCreateTimeout, err))
		}
		return result{after: 30 * time.Second}, m.setRestoreStatus(ctx, r, func(s *v1alpha1.RestoreJobStatus) {
			s.Phase, s.Checks, s.Message = v1alpha1.RestorePhasePending, statusChecks, fmt.Sprintf("waiting: creating the data mover Job was refused (%v); retrying", err)
			meta.RemoveStatusCondition(&s.Conditions, v1alpha1.ConditionQueued)
		})
	}
	if err != nil {
		return result{}, err
	}
	if created {
		m.recorder.Eventf(r, corev1.EventTypeNormal, "Started", "Safety checks passed; started data mover Job %s/%s (%s)", targetNS, job.Name, op)
	}
	return result{}, m.setRestoreStatus(ctx, r, func(s *v1alpha1.RestoreJobStatus) {
		meta.RemoveStatusCondition(&s.Conditions, v1alpha1.ConditionQueued)
		s.Phase, s.Checks, s.JobName = v1alpha1.RestorePhaseRunning, statusChecks, job.Name
		s.ObservedGeneration = r.Generation
		if s.StartTime == nil {
			now := metav1.NewTime(m.opts.Now())
			s.StartTime = &now
		}
		s.Message = restoreRunningMessage(r.Spec.DryRun, r.Spec.Paths)
	})
}

// restoreArgs is the restore (or, for a dry run, diff) command of the data
// mover. Each path goes in one --path=VALUE argument: a path that begins
// with "-" stays a value, never a flag.
func restoreArgs(op, snapshotID string, mode v1alpha1.RestoreMode, paths []string) []string {
	args := []string{op, "--snapshot", snapshotID, "--target", "/target",
		"--mode", strings.ToLower(string(mode)), "--summary-file", "/dev/termination-log"}
	for _, p := range paths {
		args = append(args, "--path="+p)
	}
	return args
}

// selectionNote names a restore's spec.paths for its messages: "" for a
// restore of everything.
func selectionNote(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	const max = 5
	quoted := make([]string, 0, max)
	for i, p := range paths {
		if i == max {
			quoted = append(quoted, fmt.Sprintf("and %d more", len(paths)-max))
			break
		}
		quoted = append(quoted, fmt.Sprintf("%q", p))
	}
	return " (only spec.paths: " + strings.Join(quoted, ", ") + ")"
}

// ensureNewPVC creates the restore's target claim and reports whether it is Bound.
func (m *Manager) ensureNewPVC(ctx context.Context, r *v1alpha1.RestoreJob, b *v1alpha1.Backup) (bool, error) {
	ns, name := r.Spec.Target.Namespace, r.Spec.Target.PVCName
	if pvc, err := m.pvcs.PersistentVolumeClaims(ns).Get(name); err == nil {
		if pvc.Annotations[v1alpha1.RestoredFromAnnotation] != b.Namespace+"/"+b.Name || pvc.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedBy {
			return false, fmt.Errorf("a claim %s/%s that this restore did not create appeared after the request was admitted; refusing to write into it", ns, name)
		}
		return pvc.Status.Phase == corev1.ClaimBound, nil
	}
	n := r.Spec.Target.NewPVC
	size := resource.MustParse("1Gi")
	if n.Size != nil {
		size = *n.Size
	} else if b.Status.Stats != nil {
		if want := b.Status.Stats.Bytes + b.Status.Stats.Bytes/10; want > size.Value() {
			size = *resource.NewQuantity(want, resource.BinarySI)
		}
	}
	modes := []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	if len(n.AccessModes) > 0 {
		modes = nil
		for _, am := range n.AccessModes {
			modes = append(modes, corev1.PersistentVolumeAccessMode(am))
		}
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy},
			Annotations: map[string]string{v1alpha1.RestoredFromAnnotation: b.Namespace + "/" + b.Name}},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: modes, StorageClassName: n.StorageClassName,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}}},
	}
	if _, err := m.kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return false, fmt.Errorf("creating claim %s/%s: %w", ns, name, err)
	}
	m.recorder.Eventf(r, corev1.EventTypeNormal, "ClaimCreated", "Created PersistentVolumeClaim %s/%s of %s", ns, name, size.String())
	return false, nil
}

func (m *Manager) observeRestoreJob(ctx context.Context, r *v1alpha1.RestoreJob, job *batchv1.Job) (result, error) {
	done, failed, summary, pod, reason, err := m.jobOutcome(ctx, job)
	if err != nil {
		return result{}, err
	}
	switch {
	case done && summary != nil:
		return m.completeRestore(ctx, r, job.Name, summary)
	case done:
		return result{}, m.failRestore(ctx, r, nil, "NoSummary", fmt.Sprintf(
			"the data mover Job %s/%s completed without reporting what it did; treating the restore as failed. Check the claim, then create a new RestoreJob", job.Namespace, job.Name))
	case failed:
		msg := reason
		if summary != nil && summary.Error != "" {
			msg = summary.Error
		}
		return result{}, m.failRestore(ctx, r, nil, "MoverFailed", fmt.Sprintf("the data mover Job %s/%s failed: %s", job.Namespace, job.Name, msg))
	}
	// Running: keep the progress current while the Job runs, and say so when
	// the Job cannot create its pod.
	blocked := m.moverBlocked(ctx, job, pod)
	if blocked != "" {
		blocked = fmt.Sprintf("the data mover Job %s/%s %s", job.Namespace, job.Name, blocked)
		conds := append([]metav1.Condition(nil), r.Status.Conditions...)
		tooLong, isNew := m.setBlocked(&conds, r.Generation, blocked)
		if tooLong {
			if err := m.deleteJob(ctx, job, metav1.DeletePropagationBackground); err != nil {
				return result{}, err
			}
			return result{}, m.failRestore(ctx, r, nil, "MoverBlocked", blocked+fmt.Sprintf("; gave up after %s and nothing was written (the Job never ran a pod). Fix the cause, then create a new RestoreJob", moverPodCreateTimeout))
		}
		if isNew {
			m.recorder.Event(r, corev1.EventTypeWarning, "MoverBlocked", blocked)
		}
		err := m.setRestoreStatus(ctx, r, func(s *v1alpha1.RestoreJobStatus) { s.Message, s.Conditions = blocked, conds })
		return result{after: progressInterval}, err
	}
	p := m.moverProgress(ctx, pod)
	err = m.setRestoreStatus(ctx, r, func(s *v1alpha1.RestoreJobStatus) {
		if s.Phase != v1alpha1.RestorePhaseRunning {
			// The Job of an earlier sync whose status write was lost.
			s.Phase, s.JobName, s.Message = v1alpha1.RestorePhaseRunning, job.Name, restoreRunningMessage(r.Spec.DryRun, r.Spec.Paths)
			meta.RemoveStatusCondition(&s.Conditions, v1alpha1.ConditionQueued)
			if s.StartTime == nil {
				s.StartTime = ptr.To(metav1.NewTime(m.opts.Now()))
			}
		}
		if p != nil {
			s.Progress = p
		}
		if meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionMoverBlocked) != nil && (pod != nil || job.Status.Active > 0) {
			meta.RemoveStatusCondition(&s.Conditions, v1alpha1.ConditionMoverBlocked)
			s.Message = restoreRunningMessage(r.Spec.DryRun, r.Spec.Paths)
		}
	})
	return result{after: progressInterval}, err
}

// completeRestore finishes a RestoreJob whose mover wrote the data (its
// summary): after its post hooks, Completed, or Failed when one with onError
// Fail failed.
func (m *Manager) completeRestore(ctx context.Context, r *v1alpha1.RestoreJob, jobName string, summary *report.Summary) (result, error) {
	hooks, postFailed, report, waiting, err := m.restorePostHooks(ctx, r, jobName, summary)
	if err != nil || waiting {
		return result{}, err
	}
	err = m.setRestoreStatus(ctx, r, func(s *v1alpha1.RestoreJobStatus) {
		now := metav1.NewTime(m.opts.Now())
		s.Phase, s.CompletionTime, s.JobName, s.Progress = v1alpha1.RestorePhaseCompleted, &now, jobName, nil
		s.Hooks = hooks
		s.Preview = &v1alpha1.RestorePreview{Creates: summary.Creates, Overwrites: summary.Overwrites, Deletes: summary.Deletes, Paths: summary.Paths, Truncated: summary.Truncated}
		s.Stats = &v1alpha1.RestoreStats{Files: summary.Files, Bytes: summary.Bytes}
		s.Verified = summary.Verified
		if r.Spec.DryRun {
			s.Message = fmt.Sprintf("dry run: a restore would create %d, overwrite %d and delete %d files%s; nothing was written", summary.Creates, summary.Overwrites, summary.Deletes, selectionNote(r.Spec.Paths))
		} else {
			s.Message = fmt.Sprintf("restored and verified: %d created, %d overwritten, %d deleted, %d bytes written%s", summary.Creates, summary.Overwrites, summary.Deletes, summary.Bytes, selectionNote(r.Spec.Paths))
		}
		if summary.XattrsSkipped > 0 {
			s.Message += fmt.Sprintf("; %d extended attributes could not be set on the target (%s): check that its filesystem supports them", summary.XattrsSkipped, summary.XattrWarning)
		}
		if summary.OwnersNotPreserved > 0 {
			s.Message += fmt.Sprintf("; %d files and directories now belong to the mover's user and group instead of their recorded owners (the namespace enforces Pod Security restricted, so the mover may not change owners)", summary.OwnersNotPreserved)
		}
		meta.RemoveStatusCondition(&s.Conditions, v1alpha1.ConditionMoverBlocked)
		setHookFailed(&s.Conditions, hooks, r.Generation)
		if postFailed != nil {
			s.Phase = v1alpha1.RestorePhaseFailed
			s.Message = "the data was restored and verified, but " + hookFailureMessage(postFailed) + "; the RestoreJob is Failed because the hook's onError is Fail"
			meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: v1alpha1.ConditionFailed, Status: metav1.ConditionTrue, Reason: "PostHookFailed", Message: s.Message, ObservedGeneration: r.Generation})
			return
		}
		if f := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionHookFailed); f != nil {
			s.Message += "; " + f.Message
		}
		meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: v1alpha1.ConditionCompleted, Status: metav1.ConditionTrue, Reason: "Restored", Message: s.Message, ObservedGeneration: r.Generation})
	})
	if err == nil {
		report()
	}
	if err == nil && postFailed != nil {
		restoresTotal.WithLabelValues(r.Namespace, "failed").Inc()
		m.recorder.Event(r, corev1.EventTypeWarning, "PostHookFailed", hookFailureMessage(postFailed))
	} else if err == nil {
		restoresTotal.WithLabelValues(r.Namespace, "completed").Inc()
		m.recorder.Event(r, corev1.EventTypeNormal, "Completed", "RestoreJob completed")
		if summary.OwnersNotPreserved > 0 {
			m.recorder.Eventf(r, corev1.EventTypeWarning, "OwnersNotRestored", "%d files and directories did not get their recorded owners: the mover may not run as root in namespace %s", summary.OwnersNotPreserved, r.Spec.Target.Namespace)
		}
		if summary.XattrsSkipped > 0 {
			m.recorder.Eventf(r, corev1.EventTypeWarning, "XattrsNotRestored", "%d extended attributes could not be set on the target: %s", summary.XattrsSkipped, summary.XattrWarning)
		}
	}
	return result{}, err
}

// restoreRunningMessage is a running RestoreJob's status message.
func restoreRunningMessage(dryRun bool, paths []string) string {
	if dryRun {
		return "the data mover is comparing the snapshot with the claim (dry run)" + selectionNote(paths)
	}
	return "the data mover is restoring the snapshot into the claim" + selectionNote(paths)
}

// finalizeRestore stops a deleted RestoreJob's mover before letting the
// object go: its Job is deleted with its pods (foreground), and the
// finalizer is removed once the Job is gone or had finished.
func (m *Manager) finalizeRestore(ctx context.Context, r *v1alpha1.RestoreJob) (result, error) {
	if !hasFinalizer(r, v1alpha1.MoverFinalizer) {
		return result{}, nil
	}
	job, err := m.liveJob(ctx, r, r.Spec.Target.Namespace, moverJobName("restore", r, r.Status.JobName), true)
	_, foreign := errors.AsType[*jobRefused](err)
	switch {
	case err == nil && !safety.JobFinished(job):
		if job.DeletionTimestamp == nil {
			// Foreground: the Job goes only after its pods, so "gone" means stopped.
			if err := m.deleteJob(ctx, job, metav1.DeletePropagationForeground); err != nil {
				return result{}, err
			}
			m.recorder.Eventf(r, corev1.EventTypeNormal, "Stopping", "Stopping data mover Job %s/%s before the RestoreJob goes", job.Namespace, job.Name)
		}
		return result{after: 2 * time.Second}, nil // until the Job and its pods are gone
	case err != nil && !apierrors.IsNotFound(err) && !foreign:
		return result{}, err
	}
	if h := r.Spec.Hooks; h != nil && len(h.Post) > 0 {
		// A post command that runs ends (its timeout bounds it) and its
		// outcome is recorded before the RestoreJob goes.
		s := m.restoreHookStage(r)
		s.collectOnly = true
		if p := m.advanceHooks(s); !p.done || !apiequality.Semantic.DeepEqual(p.status, r.Status.Hooks) {
			err := m.setRestoreStatus(ctx, r, func(st *v1alpha1.RestoreJobStatus) { st.Hooks = p.status })
			if err == nil {
				m.reportHooks(s, p)
				if p.start != nil {
					p.start(ctx)
				}
			}
			return result{}, err
		}
	}
	m.hooks.forgetOwner(r.UID)
	c := r.DeepCopy()
	c.Finalizers = nil
	for _, f := range r.Finalizers {
		if f != v1alpha1.MoverFinalizer {
			c.Finalizers = append(c.Finalizers, f)
		}
	}
	_, err = m.client.BackupV1alpha1().RestoreJobs(r.Namespace).Update(ctx, c, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return result{}, nil
	}
	return result{}, err
}

func (m *Manager) setRestoreStatus(ctx context.Context, r *v1alpha1.RestoreJob, mutate func(*v1alpha1.RestoreJobStatus)) error {
	c := r.DeepCopy()
	mutate(&c.Status)
	if apiequality.Semantic.DeepEqual(c.Status, r.Status) {
		return nil
	}
	_, err := m.client.BackupV1alpha1().RestoreJobs(r.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{})
	return err
}

func (m *Manager) failRestore(ctx context.Context, r *v1alpha1.RestoreJob, checks []v1alpha1.RestoreCheck, reason, msg string) error {
	err := m.setRestoreStatus(ctx, r, func(s *v1alpha1.RestoreJobStatus) {
		now := metav1.NewTime(m.opts.Now())
		if h := r.Spec.Hooks; h != nil && len(h.Post) > 0 {
			s.Hooks = skipHooks(s.Hooks, v1alpha1.HookStagePost, h.Post, "not run: the restore failed, and post hooks run only after the data is written", now)
		}
		s.Phase, s.CompletionTime, s.Message, s.Progress = v1alpha1.RestorePhaseFailed, &now, msg, nil
		meta.RemoveStatusCondition(&s.Conditions, v1alpha1.ConditionMoverBlocked)
		meta.RemoveStatusCondition(&s.Conditions, v1alpha1.ConditionQueued)
		if checks != nil {
			s.Checks = checks
		}
		meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: v1alpha1.ConditionFailed, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: r.Generation})
	})
	if err == nil {
		restoresTotal.WithLabelValues(r.Namespace, "failed").Inc()
		m.recorder.Event(r, corev1.EventTypeWarning, reason, msg)
	}
	return err
}

// restoreHookStage is r's post stage, run in the pods of its target's namespace.
func (m *Manager) restoreHookStage(r *v1alpha1.RestoreJob) hookStage {
	var actions []v1alpha1.HookAction
	if r.Spec.Hooks != nil {
		actions = r.Spec.Hooks.Post
	}
	return hookStage{owner: r, uid: r.UID, kind: "RestoreJob", namespace: r.Spec.Target.Namespace, claim: r.Spec.Target.PVCName,
		stage: v1alpha1.HookStagePost, actions: actions, status: r.Status.Hooks, wake: m.waker(m.restoreQueue, r.Namespace+"/"+r.Name)}
}

// restorePostHooks runs r's post actions after its mover wrote the data
// (none for a dry run: they are recorded Skipped). waiting: they are not all
// done, and r's status says which one runs; otherwise hooks is the final
// status.hooks, postFailed the failed action with onError Fail, if any, and
// report emits their events once the status is stored.
func (m *Manager) restorePostHooks(ctx context.Context, r *v1alpha1.RestoreJob, jobName string, summary *report.Summary) (hooks []v1alpha1.HookStatus, postFailed *v1alpha1.HookStatus, report func(), waiting bool, err error) {
	h := r.Spec.Hooks
	if h == nil || len(h.Post) == 0 {
		return r.Status.Hooks, nil, func() {}, false, nil
	}
	if r.Spec.DryRun {
		return skipHooks(r.Status.Hooks, v1alpha1.HookStagePost, h.Post, "not run: a dry run writes nothing", metav1.NewTime(m.opts.Now())), nil, func() {}, false, nil
	}
	s := m.restoreHookStage(r)
	p := m.advanceHooks(s)
	if p.done {
		return p.status, p.failed, func() { m.reportHooks(s, p) }, false, nil
	}
	err = m.setRestoreStatus(ctx, r, func(st *v1alpha1.RestoreJobStatus) {
		st.Phase, st.JobName, st.Progress, st.Hooks = v1alpha1.RestorePhaseRunning, jobName, nil, p.status
		// What the mover did, so the hooks can finish from status alone
		// when its Job is gone meanwhile (its TTL may be shorter than them).
		st.Preview = &v1alpha1.RestorePreview{Creates: summary.Creates, Overwrites: summary.Overwrites, Deletes: summary.Deletes, Paths: summary.Paths, Truncated: summary.Truncated}
		st.Stats = &v1alpha1.RestoreStats{Files: summary.Files, Bytes: summary.Bytes}
		st.Verified = summary.Verified
		st.Message = fmt.Sprintf("the data was restored (%d created, %d overwritten, %d deleted) and verified; running post hook %s", summary.Creates, summary.Overwrites, summary.Deletes, p.running)
		if p.waiting != "" {
			st.Message = fmt.Sprintf("the data was restored (%d created, %d overwritten, %d deleted) and verified; waiting to run post hook %s: %s", summary.Creates, summary.Overwrites, summary.Deletes, p.running, p.waiting)
		}
		setHookFailed(&st.Conditions, p.status, r.Generation)
	})
	if err != nil {
		return nil, nil, nil, true, err
	}
	m.reportHooks(s, p)
	if p.start != nil {
		p.start(ctx)
	}
	return nil, nil, nil, true, nil
}
