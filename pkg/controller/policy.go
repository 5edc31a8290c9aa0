package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/robfig/cron/v3"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/apis/backup/validation"
	"example.com/backup-operator/pkg/safety"
)

// maxCatchUp bounds how many missed runs one sync walks through.
const maxCatchUp = 10000

func (m *Manager) syncPolicy(ctx context.Context, ns, name string) (result, error) {
	p, err := m.policies.BackupPolicies(ns).Get(name)
	if apierrors.IsNotFound(err) || err == nil && p.DeletionTimestamp != nil {
		forgetPolicyMetrics(ns, name)
		return result{}, nil
	}
	if err != nil {
		return result{}, err
	}
	status := p.Status.DeepCopy()
	status.ObservedGeneration = p.Generation
	now := m.opts.Now()

	sched, err := validation.ParseSchedule(p.Spec.Schedule, p.Spec.TimeZone)
	if err != nil {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "InvalidSchedule", Message: err.Error(), ObservedGeneration: p.Generation})
		return result{}, m.writePolicyStatus(ctx, p, status)
	}
	owned, err := m.backups.Backups(ns).List(labels.SelectorFromSet(labels.Set{v1alpha1.PolicyLabel: p.Name}))
	if err != nil {
		return result{}, err
	}
	var active []string
	for _, b := range owned {
		if safety.BackupActive(b) {
			active = append(active, b.Name)
		}
	}
	if active, err = m.runSchedule(ctx, p, status, sched, active, now); err != nil {
		return result{}, err
	}

	if err := m.answerTrigger(ctx, p, status); err != nil {
		return result{}, err
	}

	// Import: once per value of the import annotation.
	importing := false
	if v := p.Annotations[v1alpha1.ImportAnnotation]; v != "" && (status.LastImport == nil || status.LastImport.Value != v) {
		done, err := m.importSnapshots(ctx, p, v, status)
		if err != nil {
			return result{}, err
		}
		importing = !done
	}

	m.applyRetention(ctx, p, owned)

	next := observePolicy(p, status, owned, active, sched, now)
	observePolicyMetrics(p, status, sched, now)
	if err := m.writePolicyStatus(ctx, p, status); err != nil {
		return result{}, err
	}
	after := next.Sub(now) + 500*time.Millisecond
	if importing && after > progressInterval {
		after = progressInterval // the import Job's events requeue too; this is a safety net
	}
	return result{after: after}, nil
}

// observePolicy fills the policy's status from its Backups and schedule:
// active Backups, the newest success, the next run and the Ready condition.
// It returns the time of the next run.
func observePolicy(p *v1alpha1.BackupPolicy, status *v1alpha1.BackupPolicyStatus, owned []*v1alpha1.Backup, active []string, sched cron.Schedule, now time.Time) time.Time {
	sort.Strings(active)
	status.Active = active
	var newest *v1alpha1.Backup
	for _, b := range owned {
		if b.Status.Phase == v1alpha1.BackupPhaseCompleted && b.Status.CompletionTime != nil &&
			(newest == nil || b.Status.CompletionTime.After(newest.Status.CompletionTime.Time)) {
			newest = b
		}
	}
	if newest != nil {
		status.LastSuccessfulBackup = newest.Name
		status.LastSuccessfulTime = newest.Status.CompletionTime
	}
	next := sched.Next(now)
	nt := metav1.NewTime(next)
	status.NextScheduleTime = &nt
	msg := "next run at " + next.UTC().Format(time.RFC3339)
	if p.Spec.Suspend {
		msg = "suspended: no scheduled backups are created"
		status.NextScheduleTime = nil
	}
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Scheduled", Message: msg, ObservedGeneration: p.Generation})
	return next
}

// runSchedule creates the Backup of the newest scheduled time that is due,
// unless it exists, is too late (startingDeadlineSeconds) or another is
// active (concurrencyPolicy Forbid); runs missed before it are counted. It
// records the time in status.lastScheduleTime and returns the active Backups.
func (m *Manager) runSchedule(ctx context.Context, p *v1alpha1.BackupPolicy, status *v1alpha1.BackupPolicyStatus, sched cron.Schedule, active []string, now time.Time) ([]string, error) {
	// The newest scheduled time that is due, and how many before it were missed.
	ref := p.CreationTimestamp.Time
	if status.LastScheduleTime != nil && status.LastScheduleTime.After(ref) {
		ref = status.LastScheduleTime.Time
	}
	var due time.Time
	skipped := 0
	for t, i := sched.Next(ref), 0; !t.After(now) && i < maxCatchUp; t, i = sched.Next(t), i+1 {
		if !due.IsZero() {
			skipped++
		}
		due = t
	}
	if !due.IsZero() && !p.Spec.Suspend {
		if skipped > 0 {
			m.missed(p, status, skipped, "superseded", fmt.Sprintf("%d scheduled runs were missed while the operator was not running or the policy was suspended; only the newest is considered", skipped))
		}
		backupName := fmt.Sprintf("%s-%s", p.Name, due.UTC().Format("200601021504"))
		existing, getErr := m.backups.Backups(p.Namespace).Get(backupName)
		switch {
		case getErr == nil && existing.Spec.PolicyName != p.Name:
			m.missed(p, status, 1, "conflict", fmt.Sprintf("the run scheduled for %s was skipped: Backup %s exists and does not belong to this policy; rename or delete it",
				due.UTC().Format(time.RFC3339), backupName))
		case getErr == nil:
			// Created already (by an earlier sync or before a restart).
		case p.Spec.StartingDeadlineSeconds != nil && now.Sub(due) > time.Duration(*p.Spec.StartingDeadlineSeconds)*time.Second:
			m.missed(p, status, 1, "late", fmt.Sprintf("the run scheduled for %s is %s late, past startingDeadlineSeconds=%d; skipped",
				due.UTC().Format(time.RFC3339), now.Sub(due).Round(time.Second), *p.Spec.StartingDeadlineSeconds))
		case p.Spec.ConcurrencyPolicy != v1alpha1.AllowConcurrent && len(active) > 0:
			m.missed(p, status, 1, "concurrency", fmt.Sprintf("the run scheduled for %s was skipped: Backup %s is still active (concurrencyPolicy: Forbid)",
				due.UTC().Format(time.RFC3339), active[0]))
		default:
			err := m.createBackup(ctx, p, backupName, map[string]string{v1alpha1.ScheduledTimeAnnotation: due.UTC().Format(time.RFC3339)})
			switch {
			case errors.Is(err, errNameTaken):
				m.missed(p, status, 1, "conflict", fmt.Sprintf("the run scheduled for %s was skipped: Backup %s exists and does not belong to this policy; rename or delete it",
					due.UTC().Format(time.RFC3339), backupName))
			case errors.Is(err, errBackupRefused):
				m.missed(p, status, 1, "refused", fmt.Sprintf("the run scheduled for %s was skipped: %v", due.UTC().Format(time.RFC3339), err))
			case err != nil:
				return active, err
			default:
				active = append(active, backupName)
				klog.FromContext(ctx).Info("Scheduled backup created", "backup", backupName, "scheduledTime", due)
			}
		}
		t := metav1.NewTime(due)
		status.LastScheduleTime = &t
	}

	return active, nil
}

func (m *Manager) missed(p *v1alpha1.BackupPolicy, status *v1alpha1.BackupPolicyStatus, n int, reason, msg string) {
	status.MissedRuns += int64(n)
	missedSchedules.WithLabelValues(p.Namespace, p.Name, reason).Add(float64(n))
	m.recorder.Event(p, corev1.EventTypeWarning, "MissedSchedule", msg)
}

// answerTrigger creates the on-demand Backup of a new value of the trigger
// annotation and records the value as answered in status.lastTrigger, so the
// value is answered once: a Backup deleted later is not created again.
func (m *Manager) answerTrigger(ctx context.Context, p *v1alpha1.BackupPolicy, status *v1alpha1.BackupPolicyStatus) error {
	v := p.Annotations[v1alpha1.TriggerAnnotation]
	if v == "" || (status.LastTrigger != nil && status.LastTrigger.Value == v) {
		return nil
	}
	backupName := fmt.Sprintf("%s-manual-%s", p.Name, shortHash(v))
	err := m.createBackup(ctx, p, backupName, map[string]string{v1alpha1.TriggerAnnotation: v})
	switch {
	case errors.Is(err, errNameTaken) || errors.Is(err, errBackupRefused):
		backupName = "" // answered, with no Backup: the event says why
	case err != nil:
		return err
	}
	now := metav1.NewTime(m.opts.Now())
	status.LastTrigger = &v1alpha1.TriggerStatus{Value: v, BackupName: backupName, Time: &now}
	return nil
}

// errBackupRefused is createBackup's answer when the API refuses the Backup
// (invalid, forbidden by a webhook or policy): retrying the same request
// would not help, so the run is reported and the policy's sync goes on.
var errBackupRefused = errors.New("the API refused the Backup")

// errNameTaken is createBackup's answer when a Backup of the name exists
// and is not the policy's: it is left alone and reported.
var errNameTaken = errors.New("a Backup of that name exists and does not belong to the policy")

// createBackup creates one of the policy's Backups. A Backup of that name
// that exists already is fine when it is the policy's (an earlier sync made
// it); one that is not is reported with an event and errNameTaken.
func (m *Manager) createBackup(ctx context.Context, p *v1alpha1.BackupPolicy, name string, annotations map[string]string) error {
	b := &v1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.Namespace, Labels: map[string]string{v1alpha1.PolicyLabel: p.Name}, Annotations: annotations,
			Finalizers: []string{v1alpha1.DataFinalizer}},
		// The policy's whole storage and hooks: the API accepts the server's
		// own Backups only when they carry exactly their policy's storage and
		// hooks, whose Secrets and pods/exec the policy's author was checked for.
		Spec: v1alpha1.BackupSpec{PolicyName: p.Name, Target: p.Spec.Target, Storage: *p.Spec.Storage.DeepCopy(), MoverSecurityContext: p.Spec.MoverSecurityContext,
			Hooks: p.Spec.Hooks.DeepCopy()},
	}
	_, err := m.client.BackupV1alpha1().Backups(p.Namespace).Create(ctx, b, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		existing, gerr := m.client.BackupV1alpha1().Backups(p.Namespace).Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		if existing.Spec.PolicyName != p.Name {
			m.recorder.Eventf(p, corev1.EventTypeWarning, "BackupNameTaken", "Backup %s exists and does not belong to this policy; no Backup was created for it", name)
			return errNameTaken
		}
		return nil
	}
	if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) {
		m.recorder.Eventf(p, corev1.EventTypeWarning, "BackupRefused", "Creating Backup %s was refused: %v", name, err)
		return fmt.Errorf("%w: creating Backup %s: %v", errBackupRefused, name, err)
	}
	if err != nil {
		return fmt.Errorf("creating Backup %s/%s: %w", p.Namespace, name, err)
	}
	m.recorder.Eventf(p, corev1.EventTypeNormal, "BackupCreated", "Created Backup %s", name)
	return nil
}

func (m *Manager) writePolicyStatus(ctx context.Context, p *v1alpha1.BackupPolicy, status *v1alpha1.BackupPolicyStatus) error {
	if apiequality.Semantic.DeepEqual(&p.Status, status) {
		return nil
	}
	c := p.DeepCopy()
	c.Status = *status
	_, err := m.client.BackupV1alpha1().BackupPolicies(p.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{})
	return err
}

// applyRetention deletes the policy's finished Backups that no rule keeps.
// The newest successful Backup is always kept; deletion removes the data
// through the Backup's finalizer.
func (m *Manager) applyRetention(ctx context.Context, p *v1alpha1.BackupPolicy, owned []*v1alpha1.Backup) {
	var done, failed []*v1alpha1.Backup
	for _, b := range owned {
		if b.DeletionTimestamp != nil {
			continue
		}
		switch b.Status.Phase {
		case v1alpha1.BackupPhaseCompleted:
			done = append(done, b)
		case v1alpha1.BackupPhaseFailed:
			failed = append(failed, b)
		}
	}
	newestFirst := func(list []*v1alpha1.Backup) {
		sort.Slice(list, func(i, j int) bool { return backupTime(list[i]).After(backupTime(list[j])) })
	}
	newestFirst(done)
	newestFirst(failed)
	keep := KeepSet(done, p.Spec.Retention, p.Spec.TimeZone)
	n := int(ptrOr(p.Spec.Retention.KeepFailed, 1))
	for i, b := range failed {
		if i < n {
			keep[b.Name] = true
		}
	}
	for _, b := range append(done, failed...) {
		if keep[b.Name] {
			continue
		}
		err := m.client.BackupV1alpha1().Backups(b.Namespace).Delete(ctx, b.Name, metav1.DeleteOptions{})
		if err == nil {
			m.recorder.Eventf(p, corev1.EventTypeNormal, "RetentionDeleted", "Deleted Backup %s (outside the retention window)", b.Name)
		} else if !apierrors.IsNotFound(err) {
			klog.FromContext(ctx).Info("Retention could not delete a Backup; will retry", "backup", b.Name, "err", err)
		}
	}
}

func backupTime(b *v1alpha1.Backup) time.Time {
	if b.Status.CompletionTime != nil {
		return b.Status.CompletionTime.Time
	}
	return b.CreationTimestamp.Time
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// KeepSet returns the names of the successful Backups (newest first) that the
// retention rules keep: the newest keepLast, the newest of each of the last
// keepDaily days, keepWeekly ISO weeks and keepMonthly months (in the
// policy's time zone), and always the newest one.
func KeepSet(newestFirst []*v1alpha1.Backup, r v1alpha1.RetentionPolicy, timeZone *string) map[string]bool {
	keep := map[string]bool{}
	if len(newestFirst) == 0 {
		return keep
	}
	keep[newestFirst[0].Name] = true
	loc, err := validation.LoadTimeZone(timeZone)
	if err != nil {
		loc = time.UTC
	}
	for i, b := range newestFirst {
		if i < int(ptrOr(r.KeepLast, 0)) {
			keep[b.Name] = true
		}
	}
	bucket := func(n int32, key func(time.Time) string) {
		seen := map[string]bool{}
		for _, b := range newestFirst {
			if len(seen) >= int(n) {
				return
			}
			k := key(backupTime(b).In(loc))
			if !seen[k] {
				seen[k] = true
				keep[b.Name] = true
			}
		}
	}
	bucket(ptrOr(r.KeepDaily, 0), func(t time.Time) string { return t.Format("2006-01-02") })
	bucket(ptrOr(r.KeepWeekly, 0), func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-%d", y, w) })
	bucket(ptrOr(r.KeepMonthly, 0), func(t time.Time) string { return t.Format("2006-01") })
	return keep
}
