package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/safety"
)

// reasonSnapshotStored is the reason of a Backup that stored its snapshot.
const reasonSnapshotStored = "SnapshotStored"

// backupHookStage is a stage of b's hooks, run in the pods of its target's namespace.
func (m *Manager) backupHookStage(b *v1alpha1.Backup, stage v1alpha1.HookStage) hookStage {
	var actions []v1alpha1.HookAction
	if h := b.Spec.Hooks; h != nil {
		actions = h.Pre
		if stage == v1alpha1.HookStagePost {
			actions = h.Post
		}
	}
	return hookStage{owner: b, uid: b.UID, kind: "Backup", namespace: b.Spec.Target.Namespace, claim: b.Spec.Target.PVCName,
		stage: stage, actions: actions, status: b.Status.Hooks, wake: m.waker(m.backupQueue, b.Namespace+"/"+b.Name)}
}

// waker requeues key on q, at once or after a delay.
func (m *Manager) waker(q workqueue.TypedRateLimitingInterface[string], key string) func(time.Duration) {
	return func(after time.Duration) {
		if after <= 0 {
			q.Add(key)
		} else {
			q.AddAfter(key, after)
		}
	}
}

// postDue reports whether b's post actions must run before it takes a final
// phase or goes (safety.PostHooksDue).
func postDue(b *v1alpha1.Backup) bool { return safety.PostHooksDue(b) }

// runPreHooks advances b's pre stage. It returns done when every pre action
// has its outcome and nothing is left to record; otherwise it has written
// what changed (which wakes b again), failed b, or waits for a command.
func (m *Manager) runPreHooks(ctx context.Context, b *v1alpha1.Backup) (done bool, err error) {
	if b.Spec.Hooks == nil || len(b.Spec.Hooks.Pre) == 0 {
		return true, nil
	}
	s := m.backupHookStage(b, v1alpha1.HookStagePre)
	p := m.advanceHooks(s)
	if p.failed != nil {
		c := b.DeepCopy()
		c.Status.Hooks = p.status
		if err := m.finishBackup(ctx, c, "PreHookFailed", hookFailureMessage(p.failed)+"; nothing was copied", nil); err != nil {
			return false, err
		}
		m.reportHooks(s, p)
		return false, nil
	}
	if p.done && apiequality.Semantic.DeepEqual(p.status, b.Status.Hooks) {
		return true, nil
	}
	c := b.DeepCopy()
	c.Status.Hooks = p.status
	c.Status.Phase = v1alpha1.BackupPhasePending
	c.Status.ObservedGeneration = b.Generation
	meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionQueued)
	switch {
	case p.waiting != "":
		c.Status.Message = fmt.Sprintf("waiting to run pre hook %s: %s", p.running, p.waiting)
	case p.running != "":
		c.Status.Message = fmt.Sprintf("running pre hook %s before the copy", p.running)
	}
	setHookFailed(&c.Status.Conditions, p.status, b.Generation)
	if !apiequality.Semantic.DeepEqual(c.Status, b.Status) {
		if _, err := m.client.BackupV1alpha1().Backups(b.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
			return false, err
		}
	}
	m.reportHooks(s, p)
	if p.start != nil {
		p.start(ctx)
	}
	return false, nil
}

// setHookFailed sets the HookFailed condition when an entry failed.
func setHookFailed(conds *[]metav1.Condition, status []v1alpha1.HookStatus, generation int64) {
	if c := hookFailedCondition(status, generation); c != nil {
		meta.SetStatusCondition(conds, *c)
	}
}

// finishBackup gives b its final phase: Completed when reason is
// reasonSnapshotStored (set applies the mover's results to the status),
// Failed otherwise. When b's post actions are due they run first: b is
// marked Finishing with the outcome (so a restart finishes with the same
// one), and finished by a later reconcile once they are done. A post action
// with onError Fail that failed turns Completed into Failed; the snapshot
// stays recorded, so deleting the Backup removes it.
func (m *Manager) finishBackup(ctx context.Context, b *v1alpha1.Backup, reason, msg string, set func(*v1alpha1.BackupStatus)) error {
	c := b.DeepCopy()
	if set != nil {
		set(&c.Status)
	}
	finishing := metav1.Condition{Type: v1alpha1.ConditionFinishing, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: b.Generation}
	// Pre commands still running end first (their outcome recorded): post
	// never runs beside the pre it undoes.
	pre := m.backupHookStage(c, v1alpha1.HookStagePre)
	pre.collectOnly = true
	pp := m.advanceHooks(pre)
	c.Status.Hooks = pp.status
	if !pp.done {
		meta.SetStatusCondition(&c.Status.Conditions, finishing)
		setHookFailed(&c.Status.Conditions, pp.status, b.Generation)
		c.Status.Message = fmt.Sprintf("%s; waiting for pre hook %s to end before finishing", msg, pp.running)
		if !apiequality.Semantic.DeepEqual(c.Status, b.Status) {
			if _, err := m.client.BackupV1alpha1().Backups(b.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
		m.reportHooks(pre, pp)
		if pp.start != nil {
			pp.start(ctx)
		}
		return nil
	}
	report := func() { m.reportHooks(pre, pp) }
	if postDue(c) {
		s := m.backupHookStage(c, v1alpha1.HookStagePost)
		p := m.advanceHooks(s)
		c.Status.Hooks = p.status
		setHookFailed(&c.Status.Conditions, p.status, b.Generation)
		if !p.done {
			meta.SetStatusCondition(&c.Status.Conditions, finishing)
			c.Status.Progress = nil
			c.Status.Message = fmt.Sprintf("%s; running post hook %s before finishing", msg, p.running)
			if p.waiting != "" {
				c.Status.Message = fmt.Sprintf("%s; waiting to run post hook %s: %s", msg, p.running, p.waiting)
			}
			if !apiequality.Semantic.DeepEqual(c.Status, b.Status) {
				if _, err := m.client.BackupV1alpha1().Backups(b.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
					return err
				}
			}
			report()
			m.reportHooks(s, p)
			if p.start != nil {
				p.start(ctx)
			}
			return nil
		}
		preReport := report
		report = func() { preReport(); m.reportHooks(s, p) }
		if p.failed != nil && reason == reasonSnapshotStored {
			reason = "PostHookFailed"
			msg = fmt.Sprintf("snapshot %s is stored, but %s; the Backup is Failed because the hook's onError is Fail (deleting the Backup removes the snapshot)",
				shortID(c.Status.SnapshotID), hookFailureMessage(p.failed))
		}
	}
	// A failed pre action is recorded also when no post action ran.
	setHookFailed(&c.Status.Conditions, c.Status.Hooks, b.Generation)
	meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionFinishing)
	meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionMoverBlocked)
	meta.RemoveStatusCondition(&c.Status.Conditions, v1alpha1.ConditionQueued)
	m.releaseSlot(b.UID)
	now := metav1.NewTime(m.opts.Now())
	c.Status.CompletionTime = &now
	c.Status.Progress = nil
	if reason != reasonSnapshotStored {
		c.Status.Phase = v1alpha1.BackupPhaseFailed
		c.Status.Message = msg
		meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionFailed, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: b.Generation})
		if _, err := m.client.BackupV1alpha1().Backups(b.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
			return err
		}
		report()
		m.backupFailed(ctx, b, reason, msg)
		if c.Status.SnapshotID != "" {
			m.filesChanged(c)
		}
		return nil
	}
	c.Status.Phase = v1alpha1.BackupPhaseCompleted
	c.Status.Message = msg
	if f := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionHookFailed); f != nil {
		c.Status.Message += "; " + f.Message
	}
	meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionCompleted, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: b.Generation})
	if _, err := m.client.BackupV1alpha1().Backups(b.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
		return err
	}
	report()
	m.backupCompleted(c)
	m.filesChanged(c)
	return nil
}

// filesChanged warns about a stored snapshot whose files changed during the
// copy (Completed, or Failed by a post hook).
func (m *Manager) filesChanged(b *v1alpha1.Backup) {
	if st := b.Status.Stats; st != nil && (st.Vanished > 0 || st.ChangedDuringRead > 0) {
		m.recorder.Eventf(b, corev1.EventTypeWarning, "FilesChangedDuringBackup",
			"%d files or directories vanished while the backup ran (not in the snapshot) and %d files changed while they were read (stored as read): the claim was written during the copy; use hooks to make the snapshot consistent",
			st.Vanished, st.ChangedDuringRead)
	}
}

// hooksBeforeDelete runs a deleted Backup's post actions, when due, once
// its pre commands have ended and its data mover is stopped, so that what a
// pre action did (a database held in backup mode) is undone. handled: this
// reconcile did some of that work, or waits for it.
func (m *Manager) hooksBeforeDelete(ctx context.Context, b *v1alpha1.Backup) (res result, handled bool, err error) {
	if !postDue(b) || safety.HookStageFinished(b.Status.Hooks, v1alpha1.HookStagePost, b.Spec.Hooks.Post) {
		return result{}, false, nil
	}
	write := func(s hookStage, p stageProgress) error {
		c := b.DeepCopy()
		c.Status.Hooks = p.status
		setHookFailed(&c.Status.Conditions, p.status, b.Generation)
		if !apiequality.Semantic.DeepEqual(c.Status, b.Status) {
			if _, err := m.client.BackupV1alpha1().Backups(b.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
		m.reportHooks(s, p)
		if p.start != nil {
			p.start(ctx)
		}
		return nil
	}
	// Pre commands still running: collect them, start no new one.
	pre := m.backupHookStage(b, v1alpha1.HookStagePre)
	pre.collectOnly = true
	if p := m.advanceHooks(pre); !p.done || !apiequality.Semantic.DeepEqual(p.status, b.Status.Hooks) {
		return result{}, true, write(pre, p)
	}
	// The copy stops first (its pods gone: foreground).
	job, err := m.liveJob(ctx, b, b.Spec.Target.Namespace, moverJobName("backup", b, b.Status.JobName), true)
	if _, foreign := errors.AsType[*jobRefused](err); err != nil && !apierrors.IsNotFound(err) && !foreign {
		return result{}, true, err
	}
	if err == nil && !safety.JobFinished(job) {
		if job.DeletionTimestamp == nil {
			if err := m.deleteJob(ctx, job, metav1.DeletePropagationForeground); err != nil {
				return result{}, true, err
			}
		}
		return result{after: 2 * time.Second}, true, nil
	}
	post := m.backupHookStage(b, v1alpha1.HookStagePost)
	return result{}, true, write(post, m.advanceHooks(post))
}
