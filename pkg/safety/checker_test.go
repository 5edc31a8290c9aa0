package safety

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// The checker reads informer caches; these tests fill the same caches
// directly, case by case. The integration tests check the same rules through
// kubectl against a real kube-apiserver.

type rbac map[string]bool // "verb resource namespace" → allowed

func (r rbac) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	if r[a.GetVerb()+" "+a.GetResource()+" "+a.GetNamespace()] {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionDeny, "", nil
}

func (r rbac) authorizer() authorizer.Authorizer { return authorizer.AuthorizerFunc(r.Authorize) }

func indexer(objs ...interface{}) cache.Indexer {
	claim := func(obj interface{}) ([]string, error) {
		if _, ok := obj.(*v1alpha1.Backup); ok {
			return BackupIndexers()[ClaimIndex](obj)
		}
		return RestoreIndexers()[ClaimIndex](obj)
	}
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc,
		PodsByPVCIndex: PodsByPVC, ClaimIndex: claim, BackupIndex: RestoreIndexers()[BackupIndex]})
	for _, o := range objs {
		_ = idx.Add(o)
	}
	return idx
}

func pvc(ns, name, phase, size string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.PersistentVolumeClaimPhase(phase),
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}}
}

func bk(ns, name string, phase v1alpha1.BackupPhase, bytes int64, targetPVC string) *v1alpha1.Backup {
	return &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:   v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{Namespace: ns, PVCName: targetPVC}},
		Status: v1alpha1.BackupStatus{Phase: phase, Stats: &v1alpha1.BackupStats{Bytes: bytes}}}
}

func checker(objs ...interface{}) *Checker {
	var pvcs, pods, rss, backups, restores []interface{}
	for _, o := range objs {
		switch o.(type) {
		case *corev1.PersistentVolumeClaim:
			pvcs = append(pvcs, o)
		case *corev1.Pod:
			pods = append(pods, o)
		case *appsv1.ReplicaSet:
			rss = append(rss, o)
		case *v1alpha1.Backup:
			backups = append(backups, o)
		case *v1alpha1.RestoreJob:
			restores = append(restores, o)
		}
	}
	return &Checker{
		PVCs: corelisters.NewPersistentVolumeClaimLister(indexer(pvcs...)), Pods: indexer(pods...),
		ReplicaSets: appslisters.NewReplicaSetLister(indexer(rss...)),
		Backups:     indexer(backups...), Restores: indexer(restores...),
		Authorizer: rbac{"get backups ns": true, "update persistentvolumeclaims ns": true}.authorizer(),
	}
}

func TestCheckRestore(t *testing.T) {
	yes := true
	rsOwner := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db-7f",
		OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: "db", Controller: &yes}}}}
	podOf := func(claim string, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db-7f-x",
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "db-7f", Controller: &yes}}},
			Spec:   corev1.PodSpec{Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}},
			Status: corev1.PodStatus{Phase: phase}}
	}
	base := []interface{}{bk("ns", "done", v1alpha1.BackupPhaseCompleted, 50<<20, "src"), pvc("ns", "data", "Bound", "1Gi"), rsOwner}
	restore := Restore{Namespace: "ns", Name: "r", BackupNamespace: "ns", BackupName: "done", TargetNamespace: "ns", TargetPVC: "data"}
	alice := &user.DefaultInfo{Name: "alice"}
	cases := []struct {
		name   string
		extra  []interface{}
		mutate func(r *Restore)
		code   int
		msg    string
	}{
		{"safe", nil, func(r *Restore) {}, 0, ""},
		{"backup missing", nil, func(r *Restore) { r.BackupName = "nope" }, http.StatusUnprocessableEntity, "does not exist"},
		{"backup running", []interface{}{bk("ns", "busy", v1alpha1.BackupPhaseRunning, 0, "x")}, func(r *Restore) { r.BackupName = "busy" }, http.StatusUnprocessableEntity, "is Running, not Completed"},
		{"target missing", nil, func(r *Restore) { r.TargetPVC = "ghost" }, http.StatusUnprocessableEntity, "does not exist; create it first"},
		{"target pending", []interface{}{pvc("ns", "p", "Pending", "1Gi")}, func(r *Restore) { r.TargetPVC = "p" }, http.StatusUnprocessableEntity, "is Pending, not Bound"},
		{"target too small", []interface{}{pvc("ns", "small", "Bound", "10Mi")}, func(r *Restore) { r.TargetPVC = "small" }, http.StatusUnprocessableEntity, "holds 10Mi but the backup has 50Mi"},
		{"in use", []interface{}{podOf("data", corev1.PodRunning)}, func(r *Restore) {}, http.StatusConflict, "Pod ns/db-7f-x (Deployment ns/db)"},
		{"in use but allowed", []interface{}{podOf("data", corev1.PodRunning)}, func(r *Restore) { r.AllowInUse = true }, 0, ""},
		{"finished pod does not count", []interface{}{podOf("data", corev1.PodSucceeded)}, func(r *Restore) {}, 0, ""},
		{"busy with a backup", []interface{}{bk("ns", "b2", v1alpha1.BackupPhaseRunning, 0, "data")}, func(r *Restore) {}, http.StatusConflict, "Backup ns/b2 is in progress"},
		{"busy with a restore", []interface{}{&v1alpha1.RestoreJob{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other"},
			Spec: v1alpha1.RestoreJobSpec{Target: v1alpha1.RestoreTarget{Namespace: "ns", PVCName: "data"}}, Status: v1alpha1.RestoreJobStatus{Phase: v1alpha1.RestorePhaseRunning}}},
			func(r *Restore) {}, http.StatusConflict, "RestoreJob ns/other is in progress"},
		{"new claim that exists", nil, func(r *Restore) { r.NewPVC = true }, http.StatusUnprocessableEntity, "already exists"},
		{"new claim", nil, func(r *Restore) { r.NewPVC = true; r.TargetPVC = "fresh" }, 0, ""},
		{"backup elsewhere, no right", nil, func(r *Restore) { r.Namespace = "team"; r.BackupNamespace = "other" }, http.StatusForbidden, "may not read backups in namespace \"other\""},
		{"target elsewhere, no right", nil, func(r *Restore) { r.Namespace = "team"; r.BackupNamespace = "ns"; r.TargetNamespace = "other" }, http.StatusForbidden, "may not update persistentvolumeclaims in namespace \"other\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := checker(append(append([]interface{}{}, base...), tc.extra...)...)
			r := restore
			tc.mutate(&r)
			checks, refusal := c.CheckRestore(context.Background(), alice, r)
			if tc.code == 0 {
				if refusal != nil {
					t.Fatalf("refused: %d %s", refusal.Code, refusal.Message)
				}
				for _, ch := range checks {
					if !ch.Passed {
						t.Errorf("check %s failed: %s", ch.Name, ch.Message)
					}
				}
				return
			}
			if refusal == nil || refusal.Code != tc.code || !strings.Contains(refusal.Message, tc.msg) {
				t.Fatalf("want %d %q, got %+v", tc.code, tc.msg, refusal)
			}
		})
	}
}

func TestCheckTargetReadable(t *testing.T) {
	c := checker()
	alice := &user.DefaultInfo{Name: "alice"}
	if ref := c.CheckTargetReadable(context.Background(), alice, "ns", "ns", "data", nil); ref != nil {
		t.Errorf("same namespace needs no extra right: %+v", ref)
	}
	c.Authorizer = rbac{"get persistentvolumeclaims prod": true}.authorizer()
	if ref := c.CheckTargetReadable(context.Background(), alice, "default", "prod", "data", nil); ref != nil {
		t.Errorf("allowed reader refused: %+v", ref)
	}
	if ref := c.CheckTargetReadable(context.Background(), alice, "default", "secret", "data", nil); ref == nil || ref.Code != http.StatusForbidden {
		t.Errorf("reader without rights accepted: %+v", ref)
	}
}

func TestNotSyncedRefuses(t *testing.T) {
	c := checker()
	c.Synced = func() bool { return false }
	if _, ref := c.CheckRestore(context.Background(), nil, Restore{}); ref == nil || ref.Code != http.StatusServiceUnavailable {
		t.Errorf("unsynced caches must refuse (fail safe), got %+v", ref)
	}
}

// Backups and restores of one claim take turns in the order they were
// created; a running one blocks everyone; finished or deleted ones nobody.
func TestBusyForTakesTurns(t *testing.T) {
	at := func(min int) metav1.Time { return metav1.NewTime(time.Date(2026, 11, 30, 2, min, 0, 0, time.UTC)) }
	older := bk("ns", "older", "", 0, "data")
	older.CreationTimestamp = at(1)
	younger := bk("ns", "younger", v1alpha1.BackupPhasePending, 0, "data")
	younger.CreationTimestamp = at(2)
	done := bk("ns", "done", v1alpha1.BackupPhaseCompleted, 0, "data")
	deleting := bk("ns", "deleting", v1alpha1.BackupPhaseRunning, 0, "data")
	deleting.DeletionTimestamp = &metav1.Time{Time: at(0).Time}
	running := &v1alpha1.RestoreJob{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "late", CreationTimestamp: at(3)},
		Spec: v1alpha1.RestoreJobSpec{BackupNamespace: "ns", BackupName: "done", Target: v1alpha1.RestoreTarget{Namespace: "ns", PVCName: "data"}}}
	c := checker(older, younger, done, deleting, running)

	if got := fmt.Sprint(c.ActiveOnClaim("ns", "data")); got != "[Backup ns/older Backup ns/younger RestoreJob ns/late]" {
		t.Errorf("active, oldest first: %s", got)
	}
	if o, busy := c.BusyFor(Owner{Kind: "Backup", Namespace: "ns", Name: "older", Created: at(1).Time}, "ns", "data"); busy {
		t.Errorf("the oldest waits for %s", o)
	}
	if o, busy := c.BusyFor(Owner{Kind: "Backup", Namespace: "ns", Name: "younger", Created: at(2).Time}, "ns", "data"); !busy || o.Name != "older" {
		t.Errorf("the younger goes after the older, got %s %v", o, busy)
	}
	if o, busy := c.BusyFor(Owner{Kind: "RestoreJob", Namespace: "ns", Name: "new"}, "ns", "data"); !busy || o.Name != "older" {
		t.Errorf("a request not yet stored waits for all, got %s %v", o, busy)
	}
	running.Status.Phase = v1alpha1.RestorePhaseRunning
	c = checker(older, younger, running)
	if o, busy := c.BusyFor(Owner{Kind: "Backup", Namespace: "ns", Name: "older", Created: at(1).Time}, "ns", "data"); !busy || o.Name != "late" {
		t.Errorf("a running restore blocks even older objects, got %s %v", o, busy)
	}
	if got := c.RestoresUsing("ns", "done"); fmt.Sprint(got) != "[ns/late]" {
		t.Errorf("RestoresUsing = %v", got)
	}
	running.Status.Phase = v1alpha1.RestorePhaseCompleted
	if got := checker(running).RestoresUsing("ns", "done"); len(got) != 0 {
		t.Errorf("a finished restore uses nothing: %v", got)
	}
}

// A Backup re-created from a snapshot has no mover: without a phase (the
// importer has not written its status) it holds no claim.
func TestImportedBackupHoldsNoClaim(t *testing.T) {
	imported := bk("ns", "imported", "", 0, "data")
	imported.Annotations = map[string]string{v1alpha1.ImportedSnapshotAnnotation: "0123456789abcdef"}
	if BackupActive(imported) {
		t.Error("an imported Backup without a phase counts as active")
	}
	if o, busy := checker(imported).BusyFor(Owner{Kind: "Backup", Namespace: "ns", Name: "new"}, "ns", "data"); busy {
		t.Errorf("the claim is busy with %s", o)
	}
	if !BackupActive(bk("ns", "plain", "", 0, "data")) {
		t.Error("a new Backup without a phase is active")
	}
}

// countingAuthorizer answers from rbac and counts the questions.
type countingAuthorizer struct {
	rbac
	asked []string
	err   error
}

func (a *countingAuthorizer) Authorize(ctx context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	a.asked = append(a.asked, attrs.GetVerb()+" "+attrs.GetResource()+" "+attrs.GetNamespace()+"/"+attrs.GetName())
	if a.err != nil {
		return authorizer.DecisionNoOpinion, "", a.err
	}
	return a.rbac.Authorize(ctx, attrs)
}

func TestCheckSecretsReadable(t *testing.T) {
	alice := &user.DefaultInfo{Name: "alice"}
	refs := []SecretRef{
		{Name: "s3-credentials", Field: field.NewPath("spec", "storage", "s3", "credentialsSecretRef", "name")},
		{Name: "repo-password", Field: field.NewPath("spec", "storage", "encryption", "secretRef", "name")},
		{Name: "s3-credentials", Field: field.NewPath("spec", "storage", "s3", "caSecretRef", "name")},
	}
	ctx := context.Background()

	az := &countingAuthorizer{rbac: rbac{"get secrets prod": true}}
	c := checker()
	c.Authorizer = authorizer.AuthorizerFunc(az.Authorize)
	if ref := c.CheckSecretsReadable(ctx, alice, "prod", refs); ref != nil {
		t.Errorf("a requester who may get the Secrets was refused: %+v", ref)
	}
	if got := fmt.Sprint(az.asked); got != "[get secrets prod/s3-credentials get secrets prod/repo-password]" {
		t.Errorf("asked %s, want each Secret once, by name, in the target's namespace", got)
	}

	c.Authorizer = rbac{}.authorizer()
	ref := c.CheckSecretsReadable(ctx, alice, "prod", refs)
	if ref == nil || ref.Code != http.StatusForbidden || ref.Field.String() != "spec.storage.s3.credentialsSecretRef.name" {
		t.Fatalf("want 403 on the credentials, got %+v", ref)
	}
	for _, want := range []string{`you (alice) may not get Secret "s3-credentials" in namespace "prod"`, "resourceNames: [s3-credentials], verbs: [get]", "name a Secret you may read"} {
		if !strings.Contains(ref.Message, want) {
			t.Errorf("message lacks %q: %s", want, ref.Message)
		}
	}
	if err := ref.Error(v1alpha1.Resource("backuppolicies"), v1alpha1.SchemeGroupVersion.WithKind("BackupPolicy").GroupKind(), "p"); !apierrors.IsForbidden(err) {
		t.Errorf("refusal is not a 403: %v", err)
	}

	c.Authorizer = authorizer.AuthorizerFunc((&countingAuthorizer{err: fmt.Errorf("webhook down")}).Authorize)
	if ref := c.CheckSecretsReadable(ctx, alice, "prod", refs); ref == nil || ref.Code != http.StatusServiceUnavailable {
		t.Errorf("an authorizer error must refuse with 503, got %+v", ref)
	}
	if ref := checker().CheckSecretsReadable(ctx, nil, "prod", refs); ref == nil || ref.Code != http.StatusForbidden || !strings.Contains(ref.Message, "unauthenticated") {
		t.Errorf("no requester: %+v", ref)
	}
	if ref := checker().CheckSecretsReadable(ctx, alice, "prod", nil); ref != nil {
		t.Errorf("no Secrets named, no check: %+v", ref)
	}
}

func TestIsServer(t *testing.T) {
	for _, tc := range []struct {
		u    user.Info
		want bool
	}{
		{&user.DefaultInfo{Name: user.APIServerUser, Groups: []string{user.AllAuthenticated, user.SystemPrivilegedGroup}}, true},
		{&user.DefaultInfo{Name: user.APIServerUser, Groups: []string{user.AllAuthenticated}}, false},
		{&user.DefaultInfo{Name: "alice", Groups: []string{user.SystemPrivilegedGroup}}, false},
		{nil, false},
	} {
		if got := IsServer(tc.u); got != tc.want {
			t.Errorf("IsServer(%v) = %v, want %v", tc.u, got, tc.want)
		}
	}
}

// hookBackup is a Backup of claim ns/data with one post action, created at
// minute min.
func hookBackup(name string, min int) *v1alpha1.Backup {
	b := bk("ns", name, v1alpha1.BackupPhasePending, 0, "data")
	b.CreationTimestamp = metav1.NewTime(time.Date(2026, 11, 30, 2, min, 0, 0, time.UTC))
	b.Spec.Hooks = &v1alpha1.BackupHooks{
		Pre:  []v1alpha1.HookAction{{Name: "quiesce", Exec: &v1alpha1.ExecHook{Command: []string{"quiesce"}}, OnError: v1alpha1.HookFail}},
		Post: []v1alpha1.HookAction{{Name: "resume", Exec: &v1alpha1.ExecHook{Command: []string{"resume"}}, OnError: v1alpha1.HookContinue}},
	}
	return b
}

// A deleted Backup whose post actions are due and not finished still holds
// its claim: what its pre actions did (a database held in backup mode) is
// not undone yet, so a newer Backup or RestoreJob waits. Once its post
// actions have their outcome, or when none is due, it holds nothing.
func TestDeletedBackupHoldsItsClaimUntilItsPostHooks(t *testing.T) {
	started := metav1.NewTime(time.Date(2026, 11, 30, 2, 1, 5, 0, time.UTC))
	deleting := hookBackup("deleting", 1)
	deleting.DeletionTimestamp = &started
	deleting.Status.Hooks = []v1alpha1.HookStatus{{Stage: v1alpha1.HookStagePre, Name: "quiesce", Pod: "db-0", Phase: v1alpha1.HookPhaseSucceeded, StartTime: &started, CompletionTime: &started}}
	newer := bk("ns", "newer", "", 0, "data")
	newer.CreationTimestamp = metav1.NewTime(time.Date(2026, 11, 30, 2, 2, 0, 0, time.UTC))
	self := Owner{Kind: "Backup", Namespace: "ns", Name: "newer", Created: newer.CreationTimestamp.Time}

	for _, tc := range []struct {
		name   string
		mutate func(b *v1alpha1.Backup)
		held   bool
	}{
		{"post not started", func(b *v1alpha1.Backup) {}, true},
		{"post running", func(b *v1alpha1.Backup) {
			b.Status.Hooks = append(b.Status.Hooks, v1alpha1.HookStatus{Stage: v1alpha1.HookStagePost, Name: "resume", Pod: "db-0", Phase: v1alpha1.HookPhaseRunning, StartTime: &started})
		}, true},
		{"post due from its Job alone", func(b *v1alpha1.Backup) { b.Status.Hooks, b.Status.JobName = nil, "backup-deleting-x" }, true},
		{"post finished", func(b *v1alpha1.Backup) {
			b.Status.Hooks = append(b.Status.Hooks, v1alpha1.HookStatus{Stage: v1alpha1.HookStagePost, Name: "resume", Pod: "db-0", Phase: v1alpha1.HookPhaseFailed, StartTime: &started, CompletionTime: &started})
		}, false},
		{"no pre command ran and no Job", func(b *v1alpha1.Backup) {
			b.Status.Hooks = []v1alpha1.HookStatus{{Stage: v1alpha1.HookStagePre, Name: "quiesce", Phase: v1alpha1.HookPhaseSkipped, CompletionTime: &started}}
		}, false},
		{"no post actions", func(b *v1alpha1.Backup) { b.Spec.Hooks.Post = nil }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := deleting.DeepCopy()
			tc.mutate(b)
			c := checker(b, newer)
			want := "[Backup ns/newer]"
			if tc.held {
				want = "[Backup ns/deleting Backup ns/newer]"
			}
			if got := fmt.Sprint(c.ActiveOnClaim("ns", "data")); got != want {
				t.Errorf("active on the claim: %s, want %s", got, want)
			}
			o, busy := c.BusyFor(self, "ns", "data")
			if tc.held && (!busy || o.Name != "deleting") {
				t.Errorf("a newer Backup goes first (busy %v with %s), want it to wait for the deleted one", busy, o)
			}
			if !tc.held && busy {
				t.Errorf("a newer Backup waits for %s", o)
			}
		})
	}
}
