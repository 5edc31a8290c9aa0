// Package safety decides whether a restore (or a cross-namespace reference) is
// safe, from live cluster state and the requester's own permissions. The REST
// layer runs the checks synchronously when a RestoreJob, Backup or
// BackupPolicy is created, and refuses with an answer a person can act on; the
// restore controller runs the same checks again right before it touches data.
package safety

import (
	"context"
	"fmt"
	"k8s.io/apimachinery/pkg/api/meta"
	"net/http"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	appslisters "k8s.io/client-go/listers/apps/v1"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	backuplisters "example.com/backup-operator/pkg/generated/listers/backup/v1alpha1"
)

// PodsByPVCIndex indexes pods by the "namespace/claim" of each PVC they mount.
const PodsByPVCIndex = "pvc"

// PodsByPVC is the index function for PodsByPVCIndex.
func PodsByPVC(obj interface{}) ([]string, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	var keys []string
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			keys = append(keys, pod.Namespace+"/"+v.PersistentVolumeClaim.ClaimName)
		}
	}
	return keys, nil
}

// Index names on the Backup and RestoreJob caches the checker reads (see
// BackupIndexers and RestoreIndexers).
const (
	// ClaimIndex indexes Backups and RestoreJobs by the "namespace/claim" of
	// spec.target.
	ClaimIndex = "claim"
	// BackupIndex indexes RestoreJobs by the "namespace/name" of their Backup.
	BackupIndex = "backup"
)

// BackupIndexers are the indexes the checker needs on its Backup cache.
func BackupIndexers() cache.Indexers {
	return cache.Indexers{ClaimIndex: func(obj interface{}) ([]string, error) {
		if b, ok := obj.(*v1alpha1.Backup); ok {
			return []string{b.Spec.Target.Namespace + "/" + b.Spec.Target.PVCName}, nil
		}
		return nil, nil
	}}
}

// RestoreIndexers are the indexes the checker needs on its RestoreJob cache.
func RestoreIndexers() cache.Indexers {
	return cache.Indexers{
		ClaimIndex: func(obj interface{}) ([]string, error) {
			if r, ok := obj.(*v1alpha1.RestoreJob); ok {
				return []string{r.Spec.Target.Namespace + "/" + r.Spec.Target.PVCName}, nil
			}
			return nil, nil
		},
		BackupIndex: func(obj interface{}) ([]string, error) {
			if r, ok := obj.(*v1alpha1.RestoreJob); ok {
				return []string{r.Spec.BackupNamespace + "/" + r.Spec.BackupName}, nil
			}
			return nil, nil
		},
	}
}

// Checker reads informer caches (no request lists all pods, Backups or
// RestoreJobs) and asks the authorizer on behalf of the requester.
type Checker struct {
	PVCs        corelisters.PersistentVolumeClaimLister
	Pods        cache.Indexer // with PodsByPVCIndex
	ReplicaSets appslisters.ReplicaSetLister
	Backups     cache.Indexer // with BackupIndexers
	Restores    cache.Indexer // with RestoreIndexers
	// Jobs, when set, are read for mover Jobs that still use a claim (whose
	// owner may be gone: a deleted RestoreJob's mover runs on).
	Jobs       batchlisters.JobLister
	Authorizer authorizer.Authorizer
	// Synced reports whether all caches are filled; until then every check
	// refuses (fail safe) and asks the requester to retry.
	Synced func() bool
}

// Refusal is a failed check with the HTTP status the API answers with.
type Refusal struct {
	Code int // 403, 409 or 422
	// Wait marks a refusal that goes away by itself: the claim is busy with
	// another Backup or RestoreJob that goes first. The restore controller
	// waits instead of failing.
	Wait    bool
	Field   *field.Path
	Value   string // the refused field's value, for 422 answers
	Message string
}

// Check is one named check and its outcome.
type Check struct {
	Name    string
	Passed  bool
	Message string
}

// Restore is what a restore check needs to know of a RestoreJob.
type Restore struct {
	Namespace, Name string
	UID             types.UID
	// Created is when the RestoreJob was stored; zero for a request not yet
	// stored, which goes after every other user of the claim.
	Created         time.Time
	BackupNamespace string
	BackupName      string
	TargetNamespace string
	TargetPVC       string
	NewPVC          bool
	AllowInUse      bool
}

// Error turns a refusal into the API error the REST layer returns.
func (r *Refusal) Error(gr schema.GroupResource, kind schema.GroupKind, name string) error {
	switch r.Code {
	case http.StatusForbidden:
		return apierrors.NewForbidden(gr, name, fmt.Errorf("%s", r.Message))
	case http.StatusConflict:
		return apierrors.NewConflict(gr, name, fmt.Errorf("%s", r.Message))
	case http.StatusServiceUnavailable:
		return apierrors.NewServiceUnavailable(r.Message)
	default:
		return apierrors.NewInvalid(kind, name, field.ErrorList{field.Invalid(r.Field, r.Value, r.Message)})
	}
}

func (c *Checker) notReady() *Refusal {
	if c.Synced != nil && !c.Synced() {
		return &Refusal{Code: http.StatusServiceUnavailable, Message: "the server is still loading cluster state to check this request safely; retry in a few seconds"}
	}
	return nil
}

// allowed asks whether the requester may do verb on resource in namespace.
func (c *Checker) allowed(ctx context.Context, u user.Info, verb, group, resource, namespace, name string) (bool, string, error) {
	return c.allowedSub(ctx, u, verb, group, resource, "", namespace, name)
}

// allowedSub asks whether the requester may do verb on a subresource.
func (c *Checker) allowedSub(ctx context.Context, u user.Info, verb, group, resource, subresource, namespace, name string) (bool, string, error) {
	if c.Authorizer == nil || u == nil {
		return false, "no requester to authorize", nil
	}
	decision, reason, err := c.Authorizer.Authorize(ctx, authorizer.AttributesRecord{
		User: u, Verb: verb, Namespace: namespace, APIGroup: group, APIVersion: "*", Resource: resource, Subresource: subresource, Name: name, ResourceRequest: true,
	})
	return decision == authorizer.DecisionAllow, reason, err
}

// CheckExecAllowed refuses (403) an object whose hooks would run commands in
// pods of namespace when the requester may not create pods/exec there
// (`kubectl exec`): the operator runs hooks with its own right to exec, so
// nobody may have it run a command they could not run themselves. The
// requester's user, groups and extra are what the authorizer is asked about,
// as for every other requester-aware check.
func (c *Checker) CheckExecAllowed(ctx context.Context, u user.Info, namespace string, fld *field.Path) *Refusal {
	ok, _, err := c.allowedSub(ctx, u, "create", "", "pods", "exec", namespace, "")
	if err != nil {
		return &Refusal{Code: http.StatusServiceUnavailable, Message: fmt.Sprintf("could not check your access to pods/exec in namespace %s: %v; retry", namespace, err)}
	}
	if !ok {
		return &Refusal{Code: http.StatusForbidden, Field: fld, Message: fmt.Sprintf(
			"%s: you (%s) may not create pods/exec in namespace %q, so you may not have the operator run hook commands in pods there; "+
				"ask for it (a Role with apiGroups: [\"\"], resources: [pods/exec], verbs: [create]), or leave hooks out",
			fld, requesterName(u), namespace)}
	}
	return nil
}

// CheckTargetReadable refuses (403) a BackupPolicy or Backup whose target PVC
// is in another namespace where the requester may not read PVCs.
func (c *Checker) CheckTargetReadable(ctx context.Context, u user.Info, objectNamespace, targetNamespace, pvc string, fld *field.Path) *Refusal {
	if targetNamespace == "" || targetNamespace == objectNamespace {
		return nil
	}
	ok, _, err := c.allowed(ctx, u, "get", "", "persistentvolumeclaims", targetNamespace, pvc)
	if err != nil {
		return &Refusal{Code: http.StatusServiceUnavailable, Message: "could not check your access to namespace " + targetNamespace + ": " + err.Error()}
	}
	if !ok {
		return &Refusal{Code: http.StatusForbidden, Field: fld, Message: fmt.Sprintf(
			"%s: you (%s) may not read persistentvolumeclaims in namespace %q, so you may not back up a claim there; create the object in %q, or ask for read access to its claims",
			fld, u.GetName(), targetNamespace, targetNamespace)}
	}
	return nil
}

// SecretRef is a Secret an object names, with the field that names it.
type SecretRef struct {
	Name  string
	Field *field.Path
}

// CheckSecretsReadable refuses (403) an object that names a Secret in
// namespace (its target's, where the data mover's pod mounts it) that the
// requester may not get: nobody can have the data mover use credentials or
// keys they cannot read themselves. The answer names the first such Secret
// and the permission to ask for; no Secret is read, only the authorizer asked.
func (c *Checker) CheckSecretsReadable(ctx context.Context, u user.Info, namespace string, refs []SecretRef) *Refusal {
	asked := map[string]bool{}
	for _, ref := range refs {
		if asked[ref.Name] {
			continue
		}
		asked[ref.Name] = true
		ok, _, err := c.allowed(ctx, u, "get", "", "secrets", namespace, ref.Name)
		if err != nil {
			return &Refusal{Code: http.StatusServiceUnavailable, Message: fmt.Sprintf("could not check your access to Secret %s/%s: %v; retry", namespace, ref.Name, err)}
		}
		if !ok {
			return &Refusal{Code: http.StatusForbidden, Field: ref.Field, Message: fmt.Sprintf(
				"%s: you (%s) may not get Secret %q in namespace %q, so you may not have the data mover use it; "+
					"ask for get on that Secret (a Role with apiGroups: [\"\"], resources: [secrets], resourceNames: [%s], verbs: [get]), or name a Secret you may read",
				ref.Field, requesterName(u), ref.Name, namespace, ref.Name)}
		}
	}
	return nil
}

// IsServer reports whether u is this server's own identity: its loopback
// client, through which the embedded controllers write (user
// system:apiserver in group system:masters). Membership in system:masters is
// required, so the name alone grants nothing: whoever is in that group may
// do anything anyway.
func IsServer(u user.Info) bool {
	if u == nil || u.GetName() != user.APIServerUser {
		return false
	}
	for _, g := range u.GetGroups() {
		if g == user.SystemPrivilegedGroup {
			return true
		}
	}
	return false
}

func requesterName(u user.Info) string {
	if u == nil || u.GetName() == "" {
		return "an unauthenticated requester"
	}
	return u.GetName()
}

// checkList collects checks in order and remembers the first refusal.
type checkList struct {
	checks []Check
	first  *Refusal
}

func (l *checkList) record(name string, ref *Refusal, okMessage string) {
	if ref == nil {
		l.checks = append(l.checks, Check{Name: name, Passed: true, Message: okMessage})
		return
	}
	l.checks = append(l.checks, Check{Name: name, Passed: false, Message: ref.Message})
	if l.first == nil {
		l.first = ref
	}
}

// CheckRestore runs every restore check in order and returns them all, with
// the first refusal (nil when the restore may go ahead): the requester's
// permissions first (nothing about another namespace is revealed to a
// requester who may not see it), then the Backup, the target claim, the pods
// using it and the other Backups and RestoreJobs of it.
func (c *Checker) CheckRestore(ctx context.Context, u user.Info, r Restore) ([]Check, *Refusal) {
	if ref := c.notReady(); ref != nil {
		return nil, ref
	}
	l := &checkList{}
	c.checkPermissions(ctx, l, u, r)
	if l.first != nil {
		return l.checks, l.first
	}
	dataBytes := c.checkBackup(l, r)
	c.checkTarget(l, r, dataBytes)
	if !r.NewPVC {
		c.checkNotInUse(l, r)
	}
	if busy, ok := c.BusyFor(Owner{Kind: "RestoreJob", Namespace: r.Namespace, Name: r.Name, UID: r.UID, Created: r.Created}, r.TargetNamespace, r.TargetPVC); ok {
		l.record("TargetNotBusy", &Refusal{Code: http.StatusConflict, Wait: true, Message: fmt.Sprintf(
			"PersistentVolumeClaim %s/%s is busy: %s is in progress; wait until it finishes", r.TargetNamespace, r.TargetPVC, busy)}, "")
	} else {
		l.record("TargetNotBusy", nil, "no other backup or restore of the claim is in progress")
	}
	return l.checks, l.first
}

// checkPermissions: may the requester read the Backup and write the claim
// where they are in another namespace than the RestoreJob?
func (c *Checker) checkPermissions(ctx context.Context, l *checkList, u user.Info, r Restore) {
	spec := field.NewPath("spec")
	if u != nil && r.BackupNamespace != r.Namespace {
		ok, _, err := c.allowed(ctx, u, "get", v1alpha1.GroupName, "backups", r.BackupNamespace, r.BackupName)
		switch {
		case err != nil:
			l.record("BackupReadable", &Refusal{Code: http.StatusServiceUnavailable, Message: err.Error()}, "")
		case !ok:
			l.record("BackupReadable", &Refusal{Code: http.StatusForbidden, Field: spec.Child("backupNamespace"), Message: fmt.Sprintf(
				"you (%s) may not read backups in namespace %q; restore from a Backup in %q, or ask for read access to backups there", u.GetName(), r.BackupNamespace, r.Namespace)}, "")
		}
	}
	if u != nil && r.TargetNamespace != r.Namespace {
		verb := "update"
		if r.NewPVC {
			verb = "create"
		}
		ok, _, err := c.allowed(ctx, u, verb, "", "persistentvolumeclaims", r.TargetNamespace, r.TargetPVC)
		switch {
		case err != nil:
			l.record("TargetWritable", &Refusal{Code: http.StatusServiceUnavailable, Message: err.Error()}, "")
		case !ok:
			l.record("TargetWritable", &Refusal{Code: http.StatusForbidden, Field: spec.Child("target", "namespace"), Message: fmt.Sprintf(
				"you (%s) may not %s persistentvolumeclaims in namespace %q; restore into a claim in %q, or ask for that access", u.GetName(), verb, r.TargetNamespace, r.Namespace)}, "")
		}
	}
}

// checkBackup: does the Backup exist, and is it Completed and not being
// deleted? It returns the size of its data (0 when unknown).
func (c *Checker) checkBackup(l *checkList, r Restore) int64 {
	fld := field.NewPath("spec", "backupName")
	b, err := backuplisters.NewBackupLister(c.Backups).Backups(r.BackupNamespace).Get(r.BackupName)
	switch {
	case apierrors.IsNotFound(err):
		l.record("BackupCompleted", &Refusal{Code: http.StatusUnprocessableEntity, Field: fld, Value: r.BackupName, Message: fmt.Sprintf(
			"Backup %s/%s does not exist; `kubectl get backups -n %s` lists the ones you can restore", r.BackupNamespace, r.BackupName, r.BackupNamespace)}, "")
	case err != nil:
		l.record("BackupCompleted", &Refusal{Code: http.StatusServiceUnavailable, Message: err.Error()}, "")
	case b.DeletionTimestamp != nil:
		l.record("BackupCompleted", &Refusal{Code: http.StatusUnprocessableEntity, Field: fld, Value: r.BackupName, Message: fmt.Sprintf(
			"Backup %s/%s is being deleted; restore from another Backup", r.BackupNamespace, r.BackupName)}, "")
	case b.Status.Phase != v1alpha1.BackupPhaseCompleted:
		phase := string(b.Status.Phase)
		if phase == "" {
			phase = "Pending"
		}
		l.record("BackupCompleted", &Refusal{Code: http.StatusUnprocessableEntity, Field: fld, Value: r.BackupName, Message: fmt.Sprintf(
			"Backup %s/%s is %s, not Completed; wait for it (kubectl wait --for=condition=Completed backup/%s -n %s) or pick a Completed one",
			r.BackupNamespace, r.BackupName, phase, r.BackupName, r.BackupNamespace)}, "")
	default:
		l.record("BackupCompleted", nil, fmt.Sprintf("Backup %s/%s is Completed", r.BackupNamespace, r.BackupName))
		if b.Status.Stats != nil {
			return b.Status.Stats.Bytes
		}
	}
	return 0
}

// checkTarget: is the target claim there (or, for a new claim, not there),
// Bound, and large enough for dataBytes?
func (c *Checker) checkTarget(l *checkList, r Restore, dataBytes int64) {
	target := field.NewPath("spec", "target", "pvcName")
	pvc, err := c.PVCs.PersistentVolumeClaims(r.TargetNamespace).Get(r.TargetPVC)
	switch {
	case r.NewPVC && err == nil:
		l.record("TargetBound", &Refusal{Code: http.StatusUnprocessableEntity, Field: target, Value: r.TargetPVC, Message: fmt.Sprintf(
			"PersistentVolumeClaim %s/%s already exists; remove spec.target.newPVC to restore into it, or name a new claim", r.TargetNamespace, r.TargetPVC)}, "")
	case r.NewPVC:
		l.record("TargetBound", nil, "a new claim will be created")
	case apierrors.IsNotFound(err):
		l.record("TargetBound", &Refusal{Code: http.StatusUnprocessableEntity, Field: target, Value: r.TargetPVC, Message: fmt.Sprintf(
			"PersistentVolumeClaim %s/%s does not exist; create it first, or set spec.target.newPVC to have the restore create it", r.TargetNamespace, r.TargetPVC)}, "")
	case err != nil:
		l.record("TargetBound", &Refusal{Code: http.StatusServiceUnavailable, Message: err.Error()}, "")
	case pvc.Status.Phase != corev1.ClaimBound:
		l.record("TargetBound", &Refusal{Code: http.StatusUnprocessableEntity, Field: target, Value: r.TargetPVC, Message: fmt.Sprintf(
			"PersistentVolumeClaim %s/%s is %s, not Bound; wait until it is bound to a volume", r.TargetNamespace, r.TargetPVC, pvc.Status.Phase)}, "")
	default:
		l.record("TargetBound", nil, fmt.Sprintf("PersistentVolumeClaim %s/%s is Bound", r.TargetNamespace, r.TargetPVC))
		capacity := pvc.Status.Capacity[corev1.ResourceStorage]
		if dataBytes > 0 && capacity.Value() < dataBytes {
			l.record("TargetLargeEnough", &Refusal{Code: http.StatusUnprocessableEntity, Field: target, Value: r.TargetPVC, Message: fmt.Sprintf(
				"PersistentVolumeClaim %s/%s holds %s but the backup has %s of data; restore into a larger claim (or spec.target.newPVC)",
				r.TargetNamespace, r.TargetPVC, capacity.String(), resource.NewQuantity(dataBytes, resource.BinarySI).String())}, "")
		} else {
			l.record("TargetLargeEnough", nil, fmt.Sprintf("capacity %s for %d bytes of data", capacity.String(), dataBytes))
		}
	}
}

// checkNotInUse: does a pod of the workload mount the target claim?
func (c *Checker) checkNotInUse(l *checkList, r Restore) {
	users := c.podsUsing(r.TargetNamespace, r.TargetPVC)
	switch {
	case len(users) > 0 && !r.AllowInUse:
		l.record("TargetNotInUse", &Refusal{Code: http.StatusConflict, Message: fmt.Sprintf(
			"PersistentVolumeClaim %s/%s is in use by %s; scale the workload down first, or set spec.allowInUse: true to restore underneath it",
			r.TargetNamespace, r.TargetPVC, strings.Join(users, ", "))}, "")
	case len(users) > 0:
		l.record("TargetNotInUse", nil, "in use by "+strings.Join(users, ", ")+", allowed by spec.allowInUse")
	default:
		l.record("TargetNotInUse", nil, "no running pod mounts the claim")
	}
}

// PodsUsing returns the pods that mount the claim and have not finished,
// other than the operator's own mover pods: the workload's pods. The restore
// checks refuse a claim they use; the controllers place a mover beside them.
func (c *Checker) PodsUsing(namespace, pvc string) []*corev1.Pod {
	objs, err := c.Pods.ByIndex(PodsByPVCIndex, namespace+"/"+pvc)
	if err != nil {
		return nil
	}
	var out []*corev1.Pod
	for _, o := range objs {
		pod := o.(*corev1.Pod)
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		if pod.Labels[v1alpha1.ManagedByLabel] == v1alpha1.ManagedBy {
			continue // our own mover pods are reported as "busy" instead
		}
		out = append(out, pod)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// podsUsing names the pods of PodsUsing, with their owners.
func (c *Checker) podsUsing(namespace, pvc string) []string {
	var out []string
	for _, pod := range c.PodsUsing(namespace, pvc) {
		desc := "Pod " + namespace + "/" + pod.Name
		if owner := c.OwnerOf(pod); owner != "" {
			desc += " (" + owner + ")"
		}
		out = append(out, desc)
	}
	return out
}

// OwnerOf names the workload a pod belongs to ("Deployment ns/name", across
// its ReplicaSets; "StatefulSet ns/name"), or "" for a pod without a controller.
func (c *Checker) OwnerOf(pod *corev1.Pod) string {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return ""
	}
	if ref.Kind == "ReplicaSet" && c.ReplicaSets != nil {
		if rs, err := c.ReplicaSets.ReplicaSets(pod.Namespace).Get(ref.Name); err == nil {
			if d := metav1.GetControllerOf(rs); d != nil {
				return d.Kind + " " + pod.Namespace + "/" + d.Name
			}
		}
	}
	return ref.Kind + " " + pod.Namespace + "/" + ref.Name
}

// Owner is a Backup or RestoreJob that uses a claim.
type Owner struct {
	Kind            string // Backup, RestoreJob, or Job for a mover Job
	Namespace, Name string
	UID             types.UID
	Created         time.Time
	Running         bool // its mover Job has been started
	// Note replaces the description: what keeps a claim busy when it is not
	// an object.
	Note string
}

func (o Owner) String() string {
	if o.Note != "" {
		return o.Note
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// before reports whether o goes before p on a claim: older, or as old with
// a smaller kind, namespace and name. A zero time (not stored yet) goes last.
func (o Owner) before(p Owner) bool {
	switch {
	case p.Created.IsZero() != o.Created.IsZero():
		return p.Created.IsZero()
	case !o.Created.Equal(p.Created):
		return o.Created.Before(p.Created)
	}
	return o.Kind+"/"+o.Namespace+"/"+o.Name < p.Kind+"/"+p.Namespace+"/"+p.Name
}

// Active is the one definition of a Backup or RestoreJob in progress: not
// finished (no phase yet, Pending or Running) and not being deleted.
func Active(phase string, deleting bool) bool {
	return !deleting && (phase == "" || phase == "Pending" || phase == "Running")
}

// BackupActive is Active for a Backup. A Backup re-created from a snapshot
// (annotation imported-snapshot) never runs a mover: without a phase it waits
// for the importer, and holds nothing.
func BackupActive(b *v1alpha1.Backup) bool {
	if b.Annotations[v1alpha1.ImportedSnapshotAnnotation] != "" && b.Status.Phase == "" {
		return false
	}
	return Active(string(b.Status.Phase), b.DeletionTimestamp != nil)
}

// ActiveOnClaim returns the Backups and RestoreJobs in progress on the claim,
// in the order they go: oldest first.
func (c *Checker) ActiveOnClaim(namespace, pvc string) []Owner {
	key := namespace + "/" + pvc
	var out []Owner
	if objs, err := c.Backups.ByIndex(ClaimIndex, key); err == nil {
		for _, o := range objs {
			b := o.(*v1alpha1.Backup)
			// A Backup queued for a mover slot does not hold its claim yet:
			// a restore of the claim goes ahead of it (the Backup then waits
			// for the restore on the claim).
			queued := b.Status.Phase == v1alpha1.BackupPhasePending && meta.IsStatusConditionTrue(b.Status.Conditions, v1alpha1.ConditionQueued)
			if BackupActive(b) && !queued || PostHooksPending(b) {
				out = append(out, Owner{Kind: "Backup", Namespace: b.Namespace, Name: b.Name, Created: b.CreationTimestamp.Time,
					Running: b.Status.Phase == v1alpha1.BackupPhaseRunning})
			}
		}
	}
	if objs, err := c.Restores.ByIndex(ClaimIndex, key); err == nil {
		for _, o := range objs {
			r := o.(*v1alpha1.RestoreJob)
			if Active(string(r.Status.Phase), r.DeletionTimestamp != nil) {
				out = append(out, Owner{Kind: "RestoreJob", Namespace: r.Namespace, Name: r.Name, Created: r.CreationTimestamp.Time,
					Running: r.Status.Phase == v1alpha1.RestorePhaseRunning})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].before(out[j]) })
	return out
}

// BusyFor returns the Backup or RestoreJob that keeps self from using the
// claim now: one whose mover runs, or one in progress that goes before self.
// Backups and restores of one claim so take turns in the order they were
// created, and a request not yet stored waits for all of them.
func (c *Checker) BusyFor(self Owner, namespace, pvc string) (Owner, bool) {
	if c.Synced != nil && !c.Synced() {
		return Owner{Note: "(the server is still loading cluster state)"}, true
	}
	if job, ok := c.moverOnClaim(self, namespace, pvc); ok {
		return job, true
	}
	for _, o := range c.ActiveOnClaim(namespace, pvc) {
		if o.Kind == self.Kind && o.Namespace == self.Namespace && o.Name == self.Name {
			continue
		}
		if o.Running || o.before(self) {
			return o, true
		}
	}
	return Owner{}, false
}

// moverOnClaim finds, in the Job cache, a mover Job of the claim that has
// not finished and does not work for self.
func (c *Checker) moverOnClaim(self Owner, namespace, pvc string) (Owner, bool) {
	if c.Jobs == nil {
		return Owner{}, false
	}
	jobs, err := c.Jobs.Jobs(namespace).List(ClaimJobsSelector(pvc))
	if err != nil {
		return Owner{}, false
	}
	return RunningMover(jobs, self)
}

// ClaimJobsSelector selects the mover Jobs of a claim (in its namespace).
func ClaimJobsSelector(pvc string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy, v1alpha1.ClaimLabel: v1alpha1.LabelValue(pvc)})
}

// RunningMover returns the first of a claim's mover Jobs that has not
// finished and does not work for self (by owner UID; a self without UID, a
// request not yet stored, owns none).
func RunningMover(jobs []*batchv1.Job, self Owner) (Owner, bool) {
	for _, j := range jobs {
		if !JobFinished(j) && (self.UID == "" || j.Labels[v1alpha1.OwnerUIDLabel] != string(self.UID)) {
			return Owner{Kind: "Job", Namespace: j.Namespace, Name: j.Name, Running: true,
				Note: fmt.Sprintf("data mover Job %s/%s (of %s)", j.Namespace, j.Name, j.Annotations[v1alpha1.OwnerAnnotation])}, true
		}
	}
	return Owner{}, false
}

// JobFinished reports whether a Job has completed or failed.
func JobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// RestoresUsing names the RestoreJobs in progress that restore the Backup.
func (c *Checker) RestoresUsing(namespace, backupName string) []string {
	objs, _ := c.Restores.ByIndex(BackupIndex, namespace+"/"+backupName)
	var out []string
	for _, o := range objs {
		r := o.(*v1alpha1.RestoreJob)
		if Active(string(r.Status.Phase), r.DeletionTimestamp != nil) {
			out = append(out, r.Namespace+"/"+r.Name)
		}
	}
	sort.Strings(out)
	return out
}
