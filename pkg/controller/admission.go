package controller

import (
	"fmt"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/safety"
)

// Mover slots: at most Options.MaxMovers data mover Jobs run at once in the
// cluster and Options.MaxMoversPerNode on one node. A Backup takes its slot
// before its pre hooks run and holds it until its mover Job ends; a
// RestoreJob and a prune take one for their Job. A Backup that finds no slot
// waits in phase Pending with the condition Queued, and the queued Backups
// start in the order of their scheduled time (creation time for on-demand
// ones). Restores and prunes wait too, but go before every queued Backup: a
// slot that frees up while one waits is theirs, so a queue of backups never
// starves a restore.

// slotKind is what asks for a mover slot.
type slotKind int

const (
	slotBackup slotKind = iota
	// slotPriority: a restore or a prune, served before queued Backups.
	slotPriority
)

// slotRequest asks for a mover slot for owner.
type slotRequest struct {
	kind  slotKind
	owner types.UID
	// at orders the requests of a kind: a Backup's scheduled time.
	at   time.Time
	name string // namespace/name, to break ties
	node string // where its mover will run, when known
}

// slotReservation is a slot granted to an owner whose Job the Job cache
// does not show yet (or, for a Backup, that runs its pre hooks first).
type slotReservation struct {
	node  string
	until time.Time
}

// reservationTTL bounds how long a granted slot counts without its Job (or
// a Backup's pre hooks) showing in the caches.
const reservationTTL = time.Minute

// slotsInUse counts the mover slots in use, in the cluster and per node,
// other than owner's: unfinished mover Jobs, Backups running pre hooks, and
// slots granted a moment ago whose Job the cache does not show yet.
func (m *Manager) slotsInUse(owner types.UID) (total int, perNode map[string]int) {
	perNode = map[string]int{}
	counted := map[types.UID]bool{owner: true}
	add := func(uid types.UID, node string) {
		if counted[uid] {
			return
		}
		counted[uid] = true
		total++
		if node != "" {
			perNode[node]++
		}
	}
	jobs, _ := m.jobs.List(labels.SelectorFromSet(labels.Set{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy}))
	for _, j := range jobs {
		if safety.JobFinished(j) {
			continue
		}
		uid := types.UID(j.Labels[v1alpha1.OwnerUIDLabel])
		if uid == "" {
			uid = j.UID
		}
		add(uid, m.jobNode(j))
	}
	backups, _ := m.backups.List(labels.Everything())
	for _, b := range backups {
		if b.Status.JobName == "" && preRunning(b) {
			add(b.UID, m.nodeOfRunningUser(b.Spec.Target.Namespace, b.Spec.Target.PVCName))
		}
	}
	now := m.opts.Now()
	for uid, r := range m.slots.reserved {
		if now.After(r.until) {
			delete(m.slots.reserved, uid)
			continue
		}
		add(uid, r.node)
	}
	return total, perNode
}

// preRunning reports whether a Backup that has no Job yet holds a slot for
// its pre hooks: one was started, and the Backup has not finished.
func preRunning(b *v1alpha1.Backup) bool {
	if b.Status.Phase == v1alpha1.BackupPhaseCompleted || b.Status.Phase == v1alpha1.BackupPhaseFailed {
		return false
	}
	for _, st := range b.Status.Hooks {
		if st.Stage == v1alpha1.HookStagePre && st.StartTime != nil {
			return true
		}
	}
	return false
}

// jobNode is the node a mover Job runs on: its template's (a mover placed
// beside the workload), or its pod's once scheduled; "" while unknown.
func (m *Manager) jobNode(j *batchv1.Job) string {
	if n := j.Spec.Template.Spec.NodeName; n != "" {
		return n
	}
	pods, _ := m.pods.Pods(j.Namespace).List(labels.SelectorFromSet(labels.Set{"job-name": j.Name}))
	for _, p := range pods {
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
			return p.Spec.NodeName
		}
	}
	return ""
}

// holdsSlot reports whether owner was granted a slot that still counts.
func (m *Manager) holdsSlot(owner types.UID) bool {
	m.slots.mu.Lock()
	defer m.slots.mu.Unlock()
	r, ok := m.slots.reserved[owner]
	return ok && m.opts.Now().Before(r.until)
}

// releaseSlot drops owner's reservation (its Job now counts, or it ended).
func (m *Manager) releaseSlot(owner types.UID) {
	m.slots.mu.Lock()
	defer m.slots.mu.Unlock()
	delete(m.slots.reserved, owner)
}

// admit grants req a slot, or says why it waits: no slot is free in the
// cluster or on its node, or requests that go first take the free ones.
// Backups go first among themselves by scheduled time: the queued Backups
// (condition Queued) with an earlier time are served before req.
func (m *Manager) admit(req slotRequest) (bool, string) {
	m.slots.mu.Lock()
	defer m.slots.mu.Unlock()
	if m.slots.reserved == nil {
		m.slots.reserved = map[types.UID]slotReservation{}
	}
	total, perNode := m.slotsInUse(req.owner)
	max, maxNode := m.opts.MaxMovers, m.opts.MaxMoversPerNode
	if req.node != "" && perNode[req.node] >= maxNode {
		return false, fmt.Sprintf("%d data movers run on node %s, the most one node runs at once (--max-movers-per-node)", perNode[req.node], req.node)
	}
	ahead := 0
	if req.kind == slotBackup {
		ahead = m.priorityWaiting()
		for _, q := range m.queuedBackups() {
			if q.owner != req.owner && (q.at.Before(req.at) || q.at.Equal(req.at) && q.name < req.name) {
				ahead++
			}
		}
	}
	if total+ahead >= max {
		msg := fmt.Sprintf("%d of %d data movers run in the cluster (--max-movers)", total, max)
		if ahead > 0 {
			msg += fmt.Sprintf(", and %d waiting go first", ahead)
		}
		return false, msg
	}
	m.slots.reserved[req.owner] = slotReservation{node: req.node, until: m.opts.Now().Add(reservationTTL)}
	return true, ""
}

// queuedBackups are the Backups waiting for a slot, in the order they go.
func (m *Manager) queuedBackups() []slotRequest {
	backups, _ := m.backups.List(labels.Everything())
	var out []slotRequest
	for _, b := range backups {
		if b.DeletionTimestamp == nil && b.Status.Phase == v1alpha1.BackupPhasePending && meta.IsStatusConditionTrue(b.Status.Conditions, v1alpha1.ConditionQueued) {
			out = append(out, slotRequest{kind: slotBackup, owner: b.UID, at: backupDueAt(b), name: b.Namespace + "/" + b.Name})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].at.Equal(out[j].at) {
			return out[i].at.Before(out[j].at)
		}
		return out[i].name < out[j].name
	})
	return out
}

// priorityWaiting counts the restores waiting for a slot (condition Queued),
// which go before every Backup.
func (m *Manager) priorityWaiting() int {
	restores, _ := m.restores.List(labels.Everything())
	n := 0
	for _, r := range restores {
		if r.DeletionTimestamp == nil && r.Status.Phase != v1alpha1.RestorePhaseCompleted && r.Status.Phase != v1alpha1.RestorePhaseFailed &&
			meta.IsStatusConditionTrue(r.Status.Conditions, v1alpha1.ConditionQueued) {
			n++
		}
	}
	return n
}

// backupDueAt is when a Backup was due: its scheduled time, or its creation.
func backupDueAt(b *v1alpha1.Backup) time.Time {
	if t, err := time.Parse(time.RFC3339, b.Annotations[v1alpha1.ScheduledTimeAnnotation]); err == nil {
		return t
	}
	return b.CreationTimestamp.Time
}
