package controller

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/mover/report"
)

// importPolicy is a policy asked to import with value v, whose scheduled run
// at the fixture's time is handled and whose retention keeps what it imports.
func importPolicy(v string) *v1alpha1.BackupPolicy {
	p := scheduledAt(newPolicy("prod", "db"), "2026-11-30T02:00:00Z")
	p.Annotations = map[string]string{v1alpha1.ImportAnnotation: v}
	p.Spec.Retention.KeepLast = ptr.To[int32](10)
	return p
}

func (f *fixture) annotatePolicy(ns, name, key, v string) {
	f.t.Helper()
	p := f.policy(ns, name)
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[key] = v
	if _, err := f.client.BackupV1alpha1().BackupPolicies(ns).Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.resync()
}

func (f *fixture) importJobs(ns string) []batchv1.Job {
	var out []batchv1.Job
	for _, j := range f.jobs(ns) {
		if j.Labels[v1alpha1.JobKindLabel] == "import" {
			out = append(out, j)
		}
	}
	return out
}

// snapshotTagged is a snapshot with the mover's tags.
func snapshotTagged(id, backup, pvc, policy string) report.Snapshot {
	return report.Snapshot{ID: id, Time: utc("2026-11-28T02:05:00Z"), Source: "/source",
		Totals: report.Totals{Files: 5, Bytes: 500, NewBytes: 50, StoredBytes: 40},
		Tags:   map[string]string{"backup": backup, "pvc": pvc, "policy": policy}}
}

// The import annotation starts one listing Job per value: a Job that lists
// the repository (and mounts nothing else), not started again while it runs;
// a new value starts a new one.
func TestImportStartsOneListJobPerValue(t *testing.T) {
	f := newFixture(t, importPolicy("1"), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	res := f.syncPolicy("prod", "db")
	jobs := f.importJobs("prod")
	if len(jobs) != 1 {
		t.Fatalf("want one import Job, got %d", len(jobs))
	}
	job := jobs[0]
	if !hasArgs(&job, "/backup-mover", "ls", "--repo", "/repo", "--json") || volumeClaim(&job, "repo") != "backup-repo" ||
		len(job.Spec.Template.Spec.Volumes) != 1 || job.Annotations[v1alpha1.OwnerAnnotation] != "prod/db" {
		t.Errorf("import Job %q volumes %+v owner %q, want a listing of the repository only, owned by prod/db",
			job.Spec.Template.Spec.Containers[0].Command, job.Spec.Template.Spec.Volumes, job.Annotations[v1alpha1.OwnerAnnotation])
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Normal ImportStarted") {
		t.Errorf("no ImportStarted event: %s", ev)
	}
	if res.after > progressInterval || f.policy("prod", "db").Status.LastImport != nil {
		t.Errorf("requeue %s lastImport %+v, want the running import followed and not yet recorded", res.after, f.policy("prod", "db").Status.LastImport)
	}

	f.syncPolicy("prod", "db")
	if n := len(f.importJobs("prod")); n != 1 {
		t.Errorf("%d import Jobs after a second sync, want still one", n)
	}
	f.annotatePolicy("prod", "db", v1alpha1.ImportAnnotation, "2")
	f.syncPolicy("prod", "db")
	if n := len(f.importJobs("prod")); n != 2 {
		t.Errorf("%d import Jobs after a new value, want a second one", n)
	}
}

// A finished listing re-creates, Completed, the Backups of this policy's
// snapshots that no longer exist. Only snapshots tagged with this policy, a
// Backup in its namespace and a claim in its target's namespace count; a
// Backup of the name that exists is left alone; a name the API refuses does
// not hold up the rest. The value is answered once.
func TestImportReadsTheListing(t *testing.T) {
	present := newBackup("prod", "db-present", "uid-present", "prod")
	present.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseCompleted, SnapshotID: "other"}
	f := newFixture(t, importPolicy("1"), present, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncPolicy("prod", "db")
	f.finishJob(ptr.To(f.importJobs("prod")[0]), "")

	snaps := []report.Snapshot{
		snapshotTagged("1111111111111111", "prod/db-202611280200", "prod/data", "db"),
		snapshotTagged("2222222222222222", "prod/db-logs-202611280200", "prod/logs", "db"), // another claim beside the repository
		snapshotTagged("3333333333333333", "prod/other-202611280200", "prod/data", "other"),
		snapshotTagged("4444444444444444", "staging/db-202611280200", "prod/data", "db"),
		snapshotTagged("5555555555555555", "prod/db-elsewhere", "staging/data", "db"),
		snapshotTagged("6666666666666666", "prod/", "prod/data", "db"),
		snapshotTagged("7777777777777777", "db-no-namespace", "prod/data", "db"),
		snapshotTagged("8888888888888888", "prod/db-nopvc", "", "db"),
		snapshotTagged("9999999999999999", "prod/db-present", "prod/data", "db"),
		snapshotTagged("aaaaaaaaaaaaaaaa", "prod/Bad_Name", "prod/data", "db"),
	}
	listing, err := json.Marshal(snaps)
	if err != nil {
		t.Fatal(err)
	}
	f.podLogs("repository opened\n" + string(listing) + "\n")
	f.client.PrependReactor("create", "backups", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if b := a.(k8stesting.CreateAction).GetObject().(*v1alpha1.Backup); b.Name == "Bad_Name" {
			return true, nil, apierrors.NewInvalid(schema.GroupKind{Group: v1alpha1.GroupName, Kind: "Backup"}, b.Name,
				field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), b.Name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters")})
		}
		return false, nil, nil
	})
	f.drainEvents()
	f.syncPolicy("prod", "db")

	l, err := f.client.BackupV1alpha1().Backups("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range l.Items {
		names = append(names, b.Namespace+"/"+b.Name)
	}
	slices.Sort(names)
	if got := strings.Join(names, " "); got != "prod/db-202611280200 prod/db-logs-202611280200 prod/db-present" {
		t.Fatalf("Backups %s, want the two of this policy's snapshots re-created and nothing else", got)
	}
	b := f.backup("prod", "db-202611280200")
	if b.Status.Phase != v1alpha1.BackupPhaseCompleted || b.Status.SnapshotID != "1111111111111111" || b.Spec.Target.PVCName != "data" || b.Spec.PolicyName != "db" {
		t.Errorf("re-created Backup %+v %+v, want Completed with its snapshot, the policy's", b.Spec, b.Status)
	}
	if logs := f.backup("prod", "db-logs-202611280200"); logs.Spec.Target != (v1alpha1.VolumeTarget{Namespace: "prod", PVCName: "logs"}) {
		t.Errorf("the Backup of prod/logs targets %+v", logs.Spec.Target)
	}
	if got := f.backup("prod", "db-present"); got.Status.SnapshotID != "other" || got.Annotations[v1alpha1.ImportedSnapshotAnnotation] != "" {
		t.Errorf("the existing Backup was changed: %+v", got)
	}
	li := f.policy("prod", "db").Status.LastImport
	if li == nil || li.Value != "1" || li.Imported != 2 || !strings.Contains(li.Message, "re-created 2 Backups from snapshots in repository claim prod/backup-repo; 1 were present; 1 were refused") {
		t.Errorf("lastImport %+v, want value 1, 2 imported, 1 present, 1 refused", li)
	}
	ev := strings.Join(f.drainEvents(), "\n")
	if !strings.Contains(ev, "Warning ImportIncomplete") || !strings.Contains(ev, "Normal Imported re-created 2") {
		t.Errorf("events %s, want Imported and ImportIncomplete", ev)
	}

	writes(f.kube)
	f.syncPolicy("prod", "db")
	if w := writes(f.kube); len(w) != 0 || len(f.importJobs("prod")) != 1 {
		t.Errorf("an answered import value started more: %q", w)
	}
}

// An import that cannot finish (its Job failed, its listing cannot be read,
// or its Job cannot start) is answered with the reason in
// status.lastImport and a warning, and is not retried for the same value.
func TestImportFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []runtime.Object
		after func(f *fixture, job *batchv1.Job)
		msg   string
	}{
		{"list Job failed", nil, func(f *fixture, job *batchv1.Job) {
			job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "DeadlineExceeded", Message: "too slow"}}
			f.cache(job)
		}, "listing repository claim prod/backup-repo failed: DeadlineExceeded: too slow"},
		{"no listing in the log", nil, func(f *fixture, job *batchv1.Job) {
			f.finishJob(job, "")
			f.podLogs("repository opened\nno snapshots here\n")
		}, "the import pod printed no snapshot list"},
		{"listing is not JSON", nil, func(f *fixture, job *batchv1.Job) {
			f.finishJob(job, "")
			f.podLogs("[not json\n")
		}, "reading the listing of repository claim prod/backup-repo"},
		{"no pod", nil, func(f *fixture, job *batchv1.Job) {
			job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
			f.cache(job)
		}, "the import Job has no pod"},
		{"restricted namespace without identity", []runtime.Object{podSecurityNamespace("prod", "restricted")}, nil,
			"listing repository claim prod/backup-repo cannot start: namespace prod enforces Pod Security"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, append(tc.extra, importPolicy("1"), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))...)
			f.syncPolicy("prod", "db")
			if tc.after != nil {
				f.after(tc.after)
				f.syncPolicy("prod", "db")
			}
			li := f.policy("prod", "db").Status.LastImport
			if li == nil || li.Value != "1" || li.Imported != 0 || !strings.Contains(li.Message, tc.msg) {
				t.Errorf("lastImport %+v, want value 1 answered with %q", li, tc.msg)
			}
			if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Warning ImportFailed") {
				t.Errorf("no ImportFailed event: %s", ev)
			}
			jobs := len(f.importJobs("prod"))
			f.syncPolicy("prod", "db")
			if n := len(f.importJobs("prod")); n != jobs || n > 1 {
				t.Errorf("%d import Jobs, want the value not retried", n)
			}
		})
	}
}

// after runs do with the fixture's one import Job.
func (f *fixture) after(do func(f *fixture, job *batchv1.Job)) {
	f.t.Helper()
	jobs := f.importJobs("prod")
	if len(jobs) != 1 {
		f.t.Fatalf("want one import Job, got %d", len(jobs))
	}
	job := jobs[0]
	job.UID = types.UID("import-job-uid")
	do(f, &job)
}

// importBackup re-creates a Backup from its snapshot, Completed with the
// snapshot's time and totals; it leaves alone a Backup of the name that is
// not exactly what an interrupted import of this snapshot left behind, and
// completes one that is.
func TestImportBackup(t *testing.T) {
	p := newPolicy("prod", "db")
	spec := v1alpha1.BackupSpec{PolicyName: "db", Target: v1alpha1.VolumeTarget{Namespace: "prod", PVCName: "data"}, Storage: v1alpha1.RepositoryStorage{PVCName: "backup-repo"}}
	s := snapshotTagged(snapshotID, "prod/db-202611280200", "prod/data", "db")
	interrupted := func() *v1alpha1.Backup {
		b := newBackup("prod", "db-202611280200", "uid-x", "prod")
		b.Labels = map[string]string{v1alpha1.PolicyLabel: "db"}
		b.Annotations = map[string]string{v1alpha1.ImportedSnapshotAnnotation: snapshotID}
		b.Spec = *spec.DeepCopy()
		return b
	}
	for _, tc := range []struct {
		name     string
		existing func() *v1alpha1.Backup
		want     bool
	}{
		{"no Backup of the name", nil, true},
		{"an interrupted import of this snapshot", interrupted, true},
		{"a Backup that is not an import", func() *v1alpha1.Backup {
			b := interrupted()
			b.Annotations = nil
			return b
		}, false},
		{"an import of another snapshot", func() *v1alpha1.Backup {
			b := interrupted()
			b.Annotations[v1alpha1.ImportedSnapshotAnnotation] = "another"
			return b
		}, false},
		{"an import with a status", func() *v1alpha1.Backup {
			b := interrupted()
			b.Status.Phase = v1alpha1.BackupPhaseFailed
			return b
		}, false},
		{"an import of another claim", func() *v1alpha1.Backup {
			b := interrupted()
			b.Spec.Target.PVCName = "logs"
			return b
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := []runtime.Object{p.DeepCopy()}
			var before *v1alpha1.Backup
			if tc.existing != nil {
				before = tc.existing()
				objs = append(objs, before.DeepCopy())
			}
			f := newFixture(t, objs...)
			f.client.ClearActions()
			made, err := f.m.importBackup(context.Background(), p, "db-202611280200", spec, s)
			if err != nil {
				t.Fatal(err)
			}
			if made != tc.want {
				t.Fatalf("importBackup = %v, want %v", made, tc.want)
			}
			got := f.backup("prod", "db-202611280200")
			if !tc.want {
				if w := writes(f.client); len(w) != 0 || got.Status.Phase != before.Status.Phase {
					t.Errorf("the existing Backup was written: %q", w)
				}
				return
			}
			at := metav1.NewTime(s.Time)
			switch {
			case got.Status.Phase != v1alpha1.BackupPhaseCompleted || got.Status.SnapshotID != snapshotID:
				t.Errorf("phase %q snapshot %q, want Completed with the snapshot", got.Status.Phase, got.Status.SnapshotID)
			case got.Status.StartTime == nil || !got.Status.StartTime.Equal(&at) || got.Status.CompletionTime == nil || !got.Status.CompletionTime.Equal(&at):
				t.Errorf("times %v %v, want the snapshot's time", got.Status.StartTime, got.Status.CompletionTime)
			case got.Status.Stats == nil || *got.Status.Stats != (v1alpha1.BackupStats{Files: 5, Bytes: 500, NewBytes: 50, StoredBytes: 40}):
				t.Errorf("stats %+v, want the snapshot's totals", got.Status.Stats)
			case got.Status.Message != "imported from snapshot "+snapshotID[:12]+" in repository claim prod/backup-repo":
				t.Errorf("message %q", got.Status.Message)
			}
			if c := condition(got.Status.Conditions, v1alpha1.ConditionCompleted); c == nil || c.Reason != "Imported" {
				t.Errorf("Completed condition %+v, want reason Imported", c)
			}
			if got.Labels[v1alpha1.PolicyLabel] != "db" || got.Annotations[v1alpha1.ImportedSnapshotAnnotation] != snapshotID || !hasFinalizer(got, v1alpha1.DataFinalizer) {
				t.Errorf("metadata %+v, want the policy label, the imported-snapshot annotation and the data finalizer", got.ObjectMeta)
			}
		})
	}
}
