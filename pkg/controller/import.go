package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/mover/report"
)

// importSnapshots answers the import annotation's value v: it lists the
// policy's repository with a mover Job, then re-creates, as Completed, every
// Backup whose snapshot is tagged with this policy and namespace and that no
// longer exists. It returns when the answer is recorded in status.
func (m *Manager) importSnapshots(ctx context.Context, p *v1alpha1.BackupPolicy, v string, status *v1alpha1.BackupPolicyStatus) (done bool, err error) {
	targetNS := p.Spec.Target.Namespace
	repo := repoDescription(targetNS, p.Spec.Storage)
	name := jobName("import", p, v)
	now := metav1.NewTime(m.opts.Now())
	record := func(imported int64, msg string) {
		status.LastImport = &v1alpha1.ImportStatus{Value: v, Time: &now, Imported: imported, Message: msg}
	}
	refuse := func(refused *jobRefused) (bool, error) {
		msg := fmt.Sprintf("listing %s cannot start: %s", repo, refused.msg)
		record(0, msg)
		m.recorder.Event(p, corev1.EventTypeWarning, "ImportFailed", msg)
		return true, nil
	}
	job, err := m.liveJob(ctx, p, targetNS, name, false)
	if apierrors.IsNotFound(err) {
		sec, err := m.securityFor(ctx, targetNS, p.Spec.Target.PVCName, p.Spec.MoverSecurityContext, repoCaps)
		if refused, ok := errors.AsType[*jobRefused](err); ok {
			return refuse(refused)
		}
		if err != nil {
			return false, err
		}
		spec := jobSpec{kind: "import", namespace: targetNS, name: name, owner: p, ownerKind: "BackupPolicy", repo: p.Spec.Storage, security: sec,
			args: []string{"ls", "--json"}}
		_, created, err := m.ensureJob(ctx, p, m.moverJob(spec))
		if refused, ok := errors.AsType[*jobRefused](err); ok {
			return refuse(refused)
		}
		if err != nil || !created {
			return false, err
		}
		m.recorder.Eventf(p, corev1.EventTypeNormal, "ImportStarted", "Listing %s to import this policy's snapshots", repo)
		return false, nil
	}
	if refused, ok := errors.AsType[*jobRefused](err); ok {
		return refuse(refused)
	}
	if err != nil {
		return false, err
	}
	finished, failed, _, pod, reason, err := m.jobOutcome(ctx, job)
	if err != nil {
		return false, err
	}
	switch {
	case failed:
		msg := fmt.Sprintf("listing %s failed: %s", repo, reason)
		record(0, msg)
		m.recorder.Event(p, corev1.EventTypeWarning, "ImportFailed", msg)
		return true, nil
	case !finished:
		// A pod that cannot start (a Secret of the policy's storage is
		// missing) ends the import after a while instead of hanging it.
		if blocked := m.moverBlocked(ctx, job, pod); blocked != "" && m.opts.Now().Sub(job.CreationTimestamp.Time) >= moverPodCreateTimeout {
			if err := m.deleteJob(ctx, job, metav1.DeletePropagationBackground); err != nil {
				return false, err
			}
			msg := fmt.Sprintf("listing %s failed: the data mover Job %s/%s %s; gave up after %s. Fix the cause, then set a new value of %s",
				repo, job.Namespace, job.Name, blocked, moverPodCreateTimeout, v1alpha1.ImportAnnotation)
			record(0, msg)
			m.recorder.Event(p, corev1.EventTypeWarning, "ImportFailed", msg)
			return true, nil
		}
		return false, nil
	}
	snaps, err := m.listing(ctx, pod)
	if err != nil {
		msg := fmt.Sprintf("reading the listing of %s: %v", repo, err)
		record(0, msg)
		m.recorder.Event(p, corev1.EventTypeWarning, "ImportFailed", msg)
		return true, nil
	}
	var imported, present, refused int64
	var firstRefusal error
	for _, s := range snaps {
		// Only this policy's snapshots of a claim beside the repository: the
		// tags are data in a claim users can write, so they name nothing
		// outside the policy's own namespaces.
		ns, backupName, ok := strings.Cut(s.Tags["backup"], "/")
		pvcNS, pvc, pvcOK := strings.Cut(s.Tags["pvc"], "/")
		if !ok || ns != p.Namespace || s.Tags["policy"] != p.Name || backupName == "" || !pvcOK || pvcNS != targetNS || pvc == "" {
			continue
		}
		// The policy's whole storage (Secrets, encryption and immutability
		// included): the API accepts these Backups from the server because
		// they carry exactly their policy's storage.
		spec := v1alpha1.BackupSpec{PolicyName: p.Name, Target: v1alpha1.VolumeTarget{Namespace: targetNS, PVCName: pvc},
			Storage: *p.Spec.Storage.DeepCopy(), MoverSecurityContext: p.Spec.MoverSecurityContext}
		made, err := m.importBackup(ctx, p, backupName, spec, s)
		if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
			// A damaged or hand-made tag (a name that is not a valid object
			// name, say) must not hold up the rest.
			refused++
			if firstRefusal == nil {
				firstRefusal = err
			}
			continue
		}
		if err != nil {
			return false, err
		}
		if made {
			imported++
		} else {
			present++
		}
	}
	msg := fmt.Sprintf("re-created %d Backups from snapshots in %s; %d were present", imported, repo, present)
	if refused > 0 {
		msg += fmt.Sprintf("; %d were refused, the first: %v", refused, firstRefusal)
		m.recorder.Event(p, corev1.EventTypeWarning, "ImportIncomplete", msg)
	}
	record(imported, msg)
	m.recorder.Event(p, corev1.EventTypeNormal, "Imported", msg)
	klog.FromContext(ctx).Info("Snapshots imported", "imported", imported, "present", present)
	return true, nil
}

// listing reads the JSON snapshot list a finished import pod printed.
func (m *Manager) listing(ctx context.Context, pod *corev1.Pod) ([]report.Snapshot, error) {
	if pod == nil {
		return nil, fmt.Errorf("the import Job has no pod")
	}
	data, err := m.kube.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{
		Container: moverContainer, LimitBytes: ptr.To[int64](64 << 20)}).DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "[") {
			var snaps []report.Snapshot
			err := json.Unmarshal([]byte(line), &snaps)
			return snaps, err
		}
	}
	return nil, fmt.Errorf("the import pod printed no snapshot list")
}

// importBackup re-creates one Backup with spec, Completed, from its
// snapshot; false when a Backup of that name exists (it is left as it is).
func (m *Manager) importBackup(ctx context.Context, p *v1alpha1.BackupPolicy, name string, spec v1alpha1.BackupSpec, s report.Snapshot) (bool, error) {
	b, err := m.client.BackupV1alpha1().Backups(p.Namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		b, err = m.client.BackupV1alpha1().Backups(p.Namespace).Create(ctx, &v1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.Namespace, Labels: map[string]string{v1alpha1.PolicyLabel: p.Name},
				Annotations: map[string]string{v1alpha1.ImportedSnapshotAnnotation: s.ID}, Finalizers: []string{v1alpha1.DataFinalizer}},
			Spec: spec,
		}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
	case err != nil:
		return false, err
	case b.Annotations[v1alpha1.ImportedSnapshotAnnotation] != s.ID || b.Status.Phase != "" || !apiequality.Semantic.DeepEqual(b.Spec, spec):
		return false, nil
	}
	// New, or created by an import that stopped before its status was set.
	c := b.DeepCopy()
	t := metav1.NewTime(s.Time)
	c.Status.Phase, c.Status.SnapshotID, c.Status.StartTime, c.Status.CompletionTime = v1alpha1.BackupPhaseCompleted, s.ID, &t, &t
	c.Status.Stats = &v1alpha1.BackupStats{Files: s.Totals.Files, Bytes: s.Totals.Bytes, NewBytes: s.Totals.NewBytes, StoredBytes: s.Totals.StoredBytes}
	c.Status.Message = fmt.Sprintf("imported from snapshot %s in %s", s.ID[:min(12, len(s.ID))], repoDescription(spec.Target.Namespace, spec.Storage))
	meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionCompleted, Status: metav1.ConditionTrue,
		Reason: "Imported", Message: c.Status.Message, ObservedGeneration: c.Generation})
	if _, err := m.client.BackupV1alpha1().Backups(p.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
		return false, err
	}
	m.recorder.Eventf(c, corev1.EventTypeNormal, "Imported", "Re-created from snapshot %s", s.ID)
	return true, nil
}
