package controller

import (
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
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
// ones). A RestoreJob that finds no slot waits with the condition Queued too,
// and goes before every queued Backup: a slot that frees up while one waits
// is its, so a queue of backups never starves a restore. A prune takes a
// slot that is free when it asks, without a place in the queue (it is
// deferrable). Import Jobs (a listing) are counted, not limited.

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
	kind  string // the kind label of the Job it is for: backup, restore, prune
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
		uid := types.UID(j.Labels[v1alpha1.OwnerUIDLabel])
		if r, ok := m.slots.reserved[uid]; ok && r.kind == j.Labels[v1alpha1.JobKindLabel] {
			delete(m.slots.reserved, uid) // the Job counts from now on (or has ended)
		}
		if safety.JobFinished(j) {
			continue
		}
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
	pods, _ := m.pods.Pods(j.Namespace).List(labels.SelectorFromSet(labels.Set{batchv1.ControllerUidLabel: string(j.UID)}))
	for _, p := range pods {
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
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
// The reason admit gives is stable (no counts), so a waiting object's
// status is written once, not at every turn of the queue.
func (m *Manager) admit(req slotRequest, kind string) (bool, string) {
	m.slots.mu.Lock()
	defer m.slots.mu.Unlock()
	if m.slots.reserved == nil {
		m.slots.reserved = map[types.UID]slotReservation{}
	}
	total, perNode := m.slotsInUse(req.owner)
	max, maxNode := m.opts.MaxMovers, m.opts.MaxMoversPerNode
	full := func(node string) bool { return node != "" && perNode[node] >= maxNode }
	if full(req.node) {
		return false, fmt.Sprintf("node %s runs its most data movers at once (--max-movers-per-node %d)", req.node, maxNode)
	}
	ahead := 0
	if req.kind == slotBackup {
		ahead = m.priorityWaiting()
		// Earlier queued Backups go first, unless their node is full: a
		// slot they cannot use is not kept from this one.
		for _, q := range m.queuedBackups() {
			if q.owner != req.owner && q.goesBefore(req) && !full(q.node) {
				ahead++
			}
		}
	}
	if total+ahead >= max {
		if ahead > 0 && total < max {
			return false, fmt.Sprintf("the free data mover slots (--max-movers %d) go to requests ahead of this one", max)
		}
		return false, fmt.Sprintf("the cluster runs its most data movers at once (--max-movers %d)", max)
	}
	m.slots.reserved[req.owner] = slotReservation{node: req.node, kind: kind, until: m.opts.Now().Add(reservationTTL)}
	return true, ""
}

// goesBefore orders queued Backups: by scheduled time, then by a hash of
// name and time, so that with a thousand policies due at 02:00 the same
// ones are not last every night.
func (q slotRequest) goesBefore(r slotRequest) bool {
	if !q.at.Equal(r.at) {
		return q.at.Before(r.at)
	}
	hq, hr := tieBreak(q), tieBreak(r)
	if hq != hr {
		return hq < hr
	}
	return q.name < r.name
}

func tieBreak(q slotRequest) uint64 {
	h := fnv.New64a()
	h.Write([]byte(q.name))
	h.Write([]byte(q.at.UTC().Format(time.RFC3339)))
	return h.Sum64()
}

// wakeQueue requeues the objects that wait for a slot when one frees: every
// waiting RestoreJob, and the first queued Backups (as many as there are
// slots), in order.
func (m *Manager) wakeQueue() {
	restores, _ := m.restores.List(labels.Everything())
	for _, r := range restores {
		if r.DeletionTimestamp == nil && r.Status.Phase == v1alpha1.RestorePhasePending && meta.IsStatusConditionTrue(r.Status.Conditions, v1alpha1.ConditionQueued) {
			m.restoreQueue.Add(r.Namespace + "/" + r.Name)
		}
	}
	queued := m.queuedBackups()
	sort.Slice(queued, func(i, j int) bool { return queued[i].goesBefore(queued[j]) })
	for i, q := range queued {
		if i >= m.opts.MaxMovers {
			break
		}
		m.backupQueue.Add(q.name)
	}
}

// queuedBackups are the Backups waiting for a slot (in no order).
func (m *Manager) queuedBackups() []slotRequest {
	backups, _ := m.backups.List(labels.Everything())
	var out []slotRequest
	for _, b := range backups {
		if b.DeletionTimestamp == nil && b.Status.Phase == v1alpha1.BackupPhasePending && meta.IsStatusConditionTrue(b.Status.Conditions, v1alpha1.ConditionQueued) {
			out = append(out, slotRequest{kind: slotBackup, owner: b.UID, at: backupDueAt(b), name: b.Namespace + "/" + b.Name,
				node: m.nodeOfRunningUser(b.Spec.Target.Namespace, b.Spec.Target.PVCName)})
		}
	}
	return out
}

// priorityWaiting counts the restores waiting for a slot (condition Queued),
// which go before every Backup.
func (m *Manager) priorityWaiting() int {
	restores, _ := m.restores.List(labels.Everything())
	n := 0
	for _, r := range restores {
		if r.DeletionTimestamp == nil && r.Status.Phase == v1alpha1.RestorePhasePending && meta.IsStatusConditionTrue(r.Status.Conditions, v1alpha1.ConditionQueued) {
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
