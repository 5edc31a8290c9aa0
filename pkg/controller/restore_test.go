package controller

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

const snapshotID = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// completedBackup is a Completed Backup of the claim "data" in ns whose
// snapshot holds bytes of data.
func completedBackup(ns, name string, bytes int64) *v1alpha1.Backup {
	b := newBackup(ns, name, "uid-"+name, ns)
	done := metav1.NewTime(time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC))
	b.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseCompleted, SnapshotID: snapshotID, CompletionTime: &done,
		Stats: &v1alpha1.BackupStats{Files: 3, Bytes: bytes}}
	return b
}

// newRestore is a RestoreJob as the API server stores it (mode defaulted),
// of a Backup and a claim in its own namespace.
func newRestore(ns, name, backupName, targetPVC string) *v1alpha1.RestoreJob {
	return &v1alpha1.RestoreJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Generation: 1,
			CreationTimestamp: metav1.NewTime(time.Date(2026, 11, 30, 2, 0, 10, 0, time.UTC))},
		Spec: v1alpha1.RestoreJobSpec{BackupNamespace: ns, BackupName: backupName, Mode: v1alpha1.RestoreModeMerge,
			Target: v1alpha1.RestoreTarget{Namespace: ns, PVCName: targetPVC}},
	}
}

// claimOf is a Bound claim of the given capacity.
func claimOf(ns, name, capacity string) *corev1.PersistentVolumeClaim {
	pvc := boundPVC(ns, name)
	pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(capacity)}
	return pvc
}

// onlyJob returns the one Job in ns, failing the test otherwise.
func (f *fixture) onlyJob(ns string) batchv1.Job {
	f.t.Helper()
	jobs := f.jobs(ns)
	if len(jobs) != 1 {
		f.t.Fatalf("want one Job in %s, got %d", ns, len(jobs))
	}
	return jobs[0]
}

func restoreCheck(checks []v1alpha1.RestoreCheck, name string) *v1alpha1.RestoreCheck {
	for i := range checks {
		if checks[i].Name == name {
			return &checks[i]
		}
	}
	return nil
}

// hasArgs reports whether the mover's command holds args in this order.
func hasArgs(job *batchv1.Job, args ...string) bool {
	cmd := job.Spec.Template.Spec.Containers[0].Command
	for i := range cmd {
		if i+len(args) <= len(cmd) && slices.Equal(cmd[i:i+len(args)], args) {
			return true
		}
	}
	return false
}

// volumeClaim returns the claim a Job mounts as the volume vol.
func volumeClaim(job *batchv1.Job, vol string) string {
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.Name == vol && v.PersistentVolumeClaim != nil {
			return v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

func failedReason(conds []metav1.Condition) string {
	if c := condition(conds, v1alpha1.ConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
		return c.Reason
	}
	return ""
}

// A restore that passes its checks runs a mover Job that restores the
// Backup's snapshot into the claim; when the mover reports, the RestoreJob is
// Completed with the preview, the stats and verified, and stays so.
func TestRestoreCompletes(t *testing.T) {
	bk := completedBackup("prod", "b", 1000)
	r := newRestore("prod", "r", "b", "data")
	f := newFixture(t, bk, r, claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.syncRestore("prod", "r")

	got := f.restore("prod", "r")
	job := f.onlyJob("prod")
	if got.Status.Phase != v1alpha1.RestorePhaseRunning || got.Status.JobName != job.Name || got.Status.StartTime == nil {
		t.Fatalf("phase %q job %q start %v, want Running with its Job and a start time", got.Status.Phase, got.Status.JobName, got.Status.StartTime)
	}
	for _, name := range []string{"BackupCompleted", "TargetBound", "TargetLargeEnough", "TargetNotInUse", "TargetNotBusy"} {
		if c := restoreCheck(got.Status.Checks, name); c == nil || !c.Passed {
			t.Errorf("check %s = %+v, want recorded as passed", name, c)
		}
	}
	if !hasArgs(&job, "restore", "--repo", "/repo", "--snapshot", snapshotID, "--target", "/target", "--mode", "merge") {
		t.Errorf("mover command %q does not restore the Backup's snapshot in Merge mode", job.Spec.Template.Spec.Containers[0].Command)
	}
	if volumeClaim(&job, "target") != "data" || volumeClaim(&job, "repo") != "backup-repo" || volumeClaim(&job, "source") != "" {
		t.Errorf("the Job mounts %+v, want the target and the Backup's repository", job.Spec.Template.Spec.Volumes)
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Normal Started Safety checks passed") {
		t.Errorf("no Started event: %s", ev)
	}

	f.finishJob(&job, `{"operation":"restore","files":3,"bytes":4096,"creates":1,"overwrites":2,"deletes":1,"paths":["etc/a","etc/b"],"verified":true}`)
	f.syncRestore("prod", "r")
	got = f.restore("prod", "r")
	want := v1alpha1.RestorePreview{Creates: 1, Overwrites: 2, Deletes: 1, Paths: []string{"etc/a", "etc/b"}}
	switch {
	case got.Status.Phase != v1alpha1.RestorePhaseCompleted || got.Status.CompletionTime == nil:
		t.Fatalf("phase %q, want Completed with a completion time", got.Status.Phase)
	case got.Status.Preview == nil || got.Status.Preview.Creates != want.Creates || got.Status.Preview.Overwrites != want.Overwrites ||
		got.Status.Preview.Deletes != want.Deletes || !slices.Equal(got.Status.Preview.Paths, want.Paths):
		t.Errorf("preview %+v, want %+v", got.Status.Preview, want)
	case got.Status.Stats == nil || got.Status.Stats.Files != 3 || got.Status.Stats.Bytes != 4096:
		t.Errorf("stats %+v, want 3 files and 4096 bytes", got.Status.Stats)
	case !got.Status.Verified:
		t.Error("the mover verified the restore; status.verified is false")
	case got.Status.Message != "restored and verified: 1 created, 2 overwritten, 1 deleted, 4096 bytes written":
		t.Errorf("message %q", got.Status.Message)
	}
	if c := condition(got.Status.Conditions, v1alpha1.ConditionCompleted); c == nil || c.Status != metav1.ConditionTrue || c.Reason != "Restored" {
		t.Errorf("Completed condition %+v", c)
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Normal Completed") {
		t.Errorf("no Completed event: %s", ev)
	}

	// Finished: a later sync writes nothing and starts nothing.
	writes(f.client)
	writes(f.kube)
	f.syncRestore("prod", "r")
	if w := append(writes(f.client), writes(f.kube)...); len(w) != 0 {
		t.Errorf("a Completed RestoreJob was acted on again: %q", w)
	}
}

// What the mover could not keep (extended attributes, owners) is said in the
// message of the Completed RestoreJob, with a warning event each.
func TestRestoreReportsWhatItCouldNotKeep(t *testing.T) {
	bk := completedBackup("prod", "b", 1000)
	r := newRestore("prod", "r", "b", "data")
	f := newFixture(t, bk, r, claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.syncRestore("prod", "r")
	f.finishJob(ptr.To(f.onlyJob("prod")), `{"operation":"restore","files":3,"bytes":10,"creates":3,"verified":true,`+
		`"xattrsSkipped":2,"xattrWarning":"user.mime: operation not supported","ownersNotPreserved":5}`)
	f.drainEvents()
	f.syncRestore("prod", "r")
	got := f.restore("prod", "r")
	if got.Status.Phase != v1alpha1.RestorePhaseCompleted || !strings.Contains(got.Status.Message, "2 extended attributes could not be set on the target (user.mime: operation not supported)") ||
		!strings.Contains(got.Status.Message, "5 files and directories now belong to the mover's user") {
		t.Errorf("phase %q message %q, want Completed naming the skipped attributes and owners", got.Status.Phase, got.Status.Message)
	}
	ev := strings.Join(f.drainEvents(), "\n")
	for _, want := range []string{"Warning OwnersNotRestored 5 files", "Warning XattrsNotRestored 2 extended attributes"} {
		if !strings.Contains(ev, want) {
			t.Errorf("no event %q in %s", want, ev)
		}
	}
}

// A dry run runs the mover's diff, is allowed into a claim a running pod
// mounts (it writes nothing), and completes with what a restore would do.
func TestRestoreDryRun(t *testing.T) {
	bk := completedBackup("prod", "b", 1000)
	r := newRestore("prod", "r", "b", "data")
	r.Spec.DryRun = true
	f := newFixture(t, bk, r, workloadPod("prod"), claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.syncRestore("prod", "r")
	got := f.restore("prod", "r")
	job := f.onlyJob("prod")
	if got.Status.Phase != v1alpha1.RestorePhaseRunning || !strings.Contains(got.Status.Message, "dry run") || !hasArgs(&job, "diff", "--repo", "/repo", "--snapshot", snapshotID) {
		t.Fatalf("phase %q message %q command %q, want Running the mover's diff", got.Status.Phase, got.Status.Message, job.Spec.Template.Spec.Containers[0].Command)
	}
	if c := restoreCheck(got.Status.Checks, "TargetNotInUse"); c == nil || !c.Passed {
		t.Errorf("TargetNotInUse %+v: a dry run into a claim in use is allowed", c)
	}
	f.finishJob(&job, `{"operation":"diff","creates":2,"overwrites":1,"paths":["a","b","c"]}`)
	f.syncRestore("prod", "r")
	got = f.restore("prod", "r")
	if got.Status.Phase != v1alpha1.RestorePhaseCompleted || got.Status.Message != "dry run: a restore would create 2, overwrite 1 and delete 0 files; nothing was written" {
		t.Errorf("phase %q message %q, want Completed with the dry run's preview", got.Status.Phase, got.Status.Message)
	}
	if got.Status.Preview == nil || got.Status.Preview.Creates != 2 || len(got.Status.Preview.Paths) != 3 || got.Status.Verified {
		t.Errorf("preview %+v verified %v, want the diff's counts and paths, not verified", got.Status.Preview, got.Status.Verified)
	}
}

// A mover that fails fails the RestoreJob with the mover's error; the checks
// recorded when it started stay.
func TestRestoreMoverFails(t *testing.T) {
	bk := completedBackup("prod", "b", 1000)
	r := newRestore("prod", "r", "b", "data")
	f := newFixture(t, bk, r, claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.syncRestore("prod", "r")
	job := f.onlyJob("prod")
	job.UID = "job-uid"
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "retried"}}
	f.cache(&job)
	f.cache(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "p", Labels: map[string]string{batchv1.ControllerUidLabel: "job-uid"}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: moverContainer, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			Message: `{"operation":"restore","error":"target: no space left on device"}`}}}}}})
	f.drainEvents()
	f.syncRestore("prod", "r")
	got := f.restore("prod", "r")
	if got.Status.Phase != v1alpha1.RestorePhaseFailed || failedReason(got.Status.Conditions) != "MoverFailed" ||
		!strings.Contains(got.Status.Message, "no space left on device") || got.Status.CompletionTime == nil {
		t.Errorf("phase %q reason %q message %q, want Failed: MoverFailed with the mover's error", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Message)
	}
	if len(got.Status.Checks) == 0 {
		t.Error("the checks recorded at the start were dropped")
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Warning MoverFailed") {
		t.Errorf("no MoverFailed event: %s", ev)
	}
}

// A Running RestoreJob whose Job is gone (from the cache and the API) fails
// as JobLost and no new Job is started; one whose Job the API has but the
// cache does not yet is still Running.
func TestRestoreJobLost(t *testing.T) {
	bk := completedBackup("prod", "b", 1000)
	r := newRestore("prod", "r", "b", "data")
	r.Status = v1alpha1.RestoreJobStatus{Phase: v1alpha1.RestorePhaseRunning, JobName: jobName("restore", r, "")}
	t.Run("gone", func(t *testing.T) {
		f := newFixture(t, bk.DeepCopy(), r.DeepCopy(), claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
		f.syncRestore("prod", "r")
		got := f.restore("prod", "r")
		if got.Status.Phase != v1alpha1.RestorePhaseFailed || failedReason(got.Status.Conditions) != "JobLost" || !strings.Contains(got.Status.Message, "disappeared") {
			t.Errorf("phase %q reason %q message %q, want Failed: JobLost", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Message)
		}
		if jobs := f.jobs("prod"); len(jobs) != 0 {
			t.Errorf("a lost restore started %d new Jobs", len(jobs))
		}
	})
	t.Run("not in the cache yet", func(t *testing.T) {
		f := newFixture(t, bk.DeepCopy(), r.DeepCopy(), claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: r.Status.JobName, Labels: map[string]string{
			v1alpha1.ManagedByLabel: v1alpha1.ManagedBy, v1alpha1.OwnerUIDLabel: string(r.UID)}}}
		if _, err := f.kube.BatchV1().Jobs("prod").Create(context.Background(), job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		res, err := f.m.syncRestore(context.Background(), "prod", "r")
		if err != nil {
			t.Fatal(err)
		}
		if got := f.restore("prod", "r"); got.Status.Phase != v1alpha1.RestorePhaseRunning || res.after != progressInterval {
			t.Errorf("phase %q requeue %s, want still Running, followed every %s", got.Status.Phase, res.after, progressInterval)
		}
	})
}

// A restore into a new claim creates the claim (sized from the Backup,
// marked as the restore's) and waits until it is Bound before starting.
func TestRestoreIntoNewClaim(t *testing.T) {
	bk := completedBackup("prod", "b", 10<<30)
	r := newRestore("prod", "r", "b", "restored")
	r.Spec.Target.NewPVC = &v1alpha1.NewPVCSpec{}
	f := newFixture(t, bk, r, boundPVC("prod", "backup-repo"))
	res := f.syncRestore("prod", "r")

	pvc, err := f.kube.CoreV1().PersistentVolumeClaims("prod").Get(context.Background(), "restored", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the new claim was not created: %v", err)
	}
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if size.Value() != (10<<30)+(10<<30)/10 || !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("claim of %s %v, want the Backup's data plus 10%%, ReadWriteOnce", size.String(), pvc.Spec.AccessModes)
	}
	if pvc.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedBy || pvc.Annotations[v1alpha1.RestoredFromAnnotation] != "prod/b" {
		t.Errorf("claim metadata %+v does not mark it as this restore's", pvc.ObjectMeta)
	}
	got := f.restore("prod", "r")
	if got.Status.Phase != v1alpha1.RestorePhasePending || !strings.Contains(got.Status.Message, "waiting for the new claim restored to be Bound") || res.after == 0 {
		t.Errorf("phase %q message %q requeue %s, want Pending until the claim is Bound, requeued", got.Status.Phase, got.Status.Message, res.after)
	}
	if len(f.jobs("prod")) != 0 {
		t.Fatal("a Job was started before the new claim was Bound")
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Normal ClaimCreated Created PersistentVolumeClaim prod/restored of 11Gi") {
		t.Errorf("no ClaimCreated event: %s", ev)
	}

	// The claim binds.
	pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("11Gi")}}
	f.cache(pvc)
	f.syncRestore("prod", "r")
	got = f.restore("prod", "r")
	job := f.onlyJob("prod")
	if got.Status.Phase != v1alpha1.RestorePhaseRunning || volumeClaim(&job, "target") != "restored" {
		t.Errorf("phase %q Job target %q, want Running into the new claim", got.Status.Phase, volumeClaim(&job, "target"))
	}
}

// The new claim's size, access modes and storage class follow spec.target.newPVC.
func TestNewClaimFollowsItsSpec(t *testing.T) {
	bk := completedBackup("prod", "b", 10<<30)
	r := newRestore("prod", "r", "b", "restored")
	r.Spec.Target.NewPVC = &v1alpha1.NewPVCSpec{Size: ptr.To(resource.MustParse("50Gi")), AccessModes: []string{"ReadWriteMany"}, StorageClassName: ptr.To("fast")}
	f := newFixture(t, bk, r, boundPVC("prod", "backup-repo"))
	f.syncRestore("prod", "r")
	pvc, err := f.kube.CoreV1().PersistentVolumeClaims("prod").Get(context.Background(), "restored", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if size.String() != "50Gi" || !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}) ||
		pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "fast" {
		t.Errorf("claim %s %v class %v, want 50Gi ReadWriteMany fast", size.String(), pvc.Spec.AccessModes, pvc.Spec.StorageClassName)
	}
}

// A claim of the new claim's name that the restore did not create (it
// appeared after the request was admitted, or is another restore's) is never
// written into: the RestoreJob fails and the claim is left alone. A new claim
// whose Backup is gone fails the same way, before a claim is created.
func TestNewClaimNotOursIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		claim  func() *corev1.PersistentVolumeClaim
		backup bool
		reason string
		msg    string
	}{
		{"someone else's claim", func() *corev1.PersistentVolumeClaim { return claimOf("prod", "restored", "100Gi") }, true,
			"NewClaimRefused", "did not create appeared after the request was admitted"},
		{"another restore's claim", func() *corev1.PersistentVolumeClaim {
			pvc := claimOf("prod", "restored", "100Gi")
			pvc.Labels = map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy}
			pvc.Annotations = map[string]string{v1alpha1.RestoredFromAnnotation: "prod/other-backup"}
			return pvc
		}, true, "NewClaimRefused", "did not create"},
		{"backup gone", nil, false, "BackupNotFound", "Backup prod/b is gone; nothing was written"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRestore("prod", "r", "b", "restored")
			r.Spec.Target.NewPVC = &v1alpha1.NewPVCSpec{}
			objs := []runtime.Object{r, boundPVC("prod", "backup-repo")}
			if tc.backup {
				objs = append(objs, completedBackup("prod", "b", 1000))
			}
			var before *corev1.PersistentVolumeClaim
			if tc.claim != nil {
				before = tc.claim()
				objs = append(objs, before)
			}
			f := newFixture(t, objs...)
			writes(f.kube)
			f.syncRestore("prod", "r")
			got := f.restore("prod", "r")
			if got.Status.Phase != v1alpha1.RestorePhaseFailed || failedReason(got.Status.Conditions) != tc.reason || !strings.Contains(got.Status.Message, tc.msg) {
				t.Errorf("phase %q reason %q message %q, want Failed: %s", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Message, tc.reason)
			}
			if w := writes(f.kube); len(w) != 0 {
				t.Errorf("the refused restore wrote %q, want no claim and no Job touched", w)
			}
		})
	}
}

// The checks run again right before the mover starts: a refusal then fails
// the RestoreJob with every check recorded, and no Job is started.
func TestRestoreRefusedAtSyncTime(t *testing.T) {
	for _, tc := range []struct {
		name, check, msg string
		objs             func() []runtime.Object
	}{
		{"claim in use", "TargetNotInUse", "in use by Pod prod/db-0", func() []runtime.Object {
			return []runtime.Object{completedBackup("prod", "b", 1000), workloadPod("prod"), claimOf("prod", "data", "1Gi")}
		}},
		{"claim too small", "TargetLargeEnough", "holds 1Mi but the backup has 10Mi", func() []runtime.Object {
			return []runtime.Object{completedBackup("prod", "b", 10<<20), claimOf("prod", "data", "1Mi")}
		}},
		{"backup no longer completed", "BackupCompleted", "is being deleted", func() []runtime.Object {
			bk := completedBackup("prod", "b", 1000)
			bk.DeletionTimestamp = ptr.To(metav1.NewTime(time.Date(2026, 11, 30, 2, 0, 20, 0, time.UTC)))
			return []runtime.Object{bk, claimOf("prod", "data", "1Gi")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, append(tc.objs(), newRestore("prod", "r", "b", "data"), boundPVC("prod", "backup-repo"))...)
			f.syncRestore("prod", "r")
			got := f.restore("prod", "r")
			if got.Status.Phase != v1alpha1.RestorePhaseFailed || failedReason(got.Status.Conditions) != "SafetyCheckFailed" ||
				!strings.Contains(got.Status.Message, "refused right before restoring") || !strings.Contains(got.Status.Message, tc.msg) {
				t.Errorf("phase %q reason %q message %q, want Failed: SafetyCheckFailed saying %q", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Message, tc.msg)
			}
			if c := restoreCheck(got.Status.Checks, tc.check); c == nil || c.Passed || !strings.Contains(c.Message, tc.msg) {
				t.Errorf("check %s = %+v, want recorded as failed", tc.check, c)
			}
			if c := restoreCheck(got.Status.Checks, "TargetNotBusy"); c == nil {
				t.Errorf("checks %+v: every check is recorded, not only the failed one", got.Status.Checks)
			}
			if jobs := f.jobs("prod"); len(jobs) != 0 {
				t.Errorf("a refused restore started %d Jobs", len(jobs))
			}
		})
	}
}

// A claim busy with a Backup that runs makes the restore wait, Pending with
// the reason, instead of failing; it starts once the Backup is done.
func TestRestoreWaitsForABusyClaim(t *testing.T) {
	bk := completedBackup("prod", "b", 1000)
	running := newBackup("prod", "nightly", "uid-nightly", "prod")
	running.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseRunning}
	r := newRestore("prod", "r", "b", "data")
	f := newFixture(t, bk, running, r, claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	res := f.syncRestore("prod", "r")
	got := f.restore("prod", "r")
	if got.Status.Phase != v1alpha1.RestorePhasePending || !strings.Contains(got.Status.Message, "waiting: ") || !strings.Contains(got.Status.Message, "Backup prod/nightly") {
		t.Fatalf("phase %q message %q, want Pending behind Backup prod/nightly", got.Status.Phase, got.Status.Message)
	}
	if c := restoreCheck(got.Status.Checks, "TargetNotBusy"); c == nil || c.Passed {
		t.Errorf("TargetNotBusy %+v, want recorded as not passed", c)
	}
	if res.after == 0 || len(f.jobs("prod")) != 0 {
		t.Errorf("requeue %s with %d Jobs, want a retry and no Job", res.after, len(f.jobs("prod")))
	}

	running = f.backup("prod", "nightly")
	running.Status.Phase = v1alpha1.BackupPhaseCompleted
	if _, err := f.client.BackupV1alpha1().Backups("prod").UpdateStatus(context.Background(), running, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.resync()
	f.syncRestore("prod", "r")
	if got := f.restore("prod", "r"); got.Status.Phase != v1alpha1.RestorePhaseRunning || len(f.jobs("prod")) != 1 {
		t.Errorf("phase %q with %d Jobs, want Running once the claim is free", got.Status.Phase, len(f.jobs("prod")))
	}
}

// While the safety checker's caches are loading, a restore neither starts
// nor fails: it is retried shortly and its status is not written (only its
// mover finalizer is added).
func TestRestoreWaitsForTheCaches(t *testing.T) {
	f := newFixture(t, completedBackup("prod", "b", 1000), newRestore("prod", "r", "b", "data"), claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.m.checker.Synced = func() bool { return false }
	writes(f.client)
	res := f.syncRestore("prod", "r")
	if w := append(writes(f.client), writes(f.kube)...); len(w) != 1 || w[0] != "update restorejobs" || res.after == 0 {
		t.Errorf("wrote %q, requeue %s; want only the finalizer added and a retry", w, res.after)
	}
	if got := f.restore("prod", "r"); got.Status.Phase != "" || !hasFinalizer(got, v1alpha1.MoverFinalizer) {
		t.Errorf("phase %q finalizers %v, want no status and the mover finalizer", got.Status.Phase, got.Finalizers)
	}
}

// Deleting a RestoreJob stops its mover first: the Job is deleted with its
// pods (foreground, by UID), and the finalizer goes only once the Job is
// gone; a finished Job is kept (for its logs) and the finalizer goes at once.
func TestDeletedRestoreStopsItsMover(t *testing.T) {
	f := newFixture(t, completedBackup("prod", "b", 1000), newRestore("prod", "r", "b", "data"), claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.syncRestore("prod", "r")
	job := f.onlyJob("prod")
	r := f.restore("prod", "r")
	if !hasFinalizer(r, v1alpha1.MoverFinalizer) {
		t.Fatalf("finalizers %v, want the mover finalizer on a running restore", r.Finalizers)
	}
	now := metav1.NewTime(f.now)
	r.DeletionTimestamp = &now
	if _, err := f.client.BackupV1alpha1().RestoreJobs("prod").Update(context.Background(), r, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.resync()
	if res := f.syncRestore("prod", "r"); res.after == 0 {
		t.Error("no requeue while the mover stops")
	}
	if _, err := f.kube.BatchV1().Jobs("prod").Get(context.Background(), job.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the running mover Job was not deleted: %v", err)
	}
	if got := f.restore("prod", "r"); !hasFinalizer(got, v1alpha1.MoverFinalizer) {
		t.Fatal("the finalizer went before the Job was seen gone")
	}
	f.jobInformerDelete(&job)
	f.syncRestore("prod", "r")
	if got := f.restore("prod", "r"); hasFinalizer(got, v1alpha1.MoverFinalizer) {
		t.Errorf("finalizers %v after the Job is gone, want the mover finalizer removed", got.Finalizers)
	}
}

// A restore of a Backup whose repository is in another namespace than the
// target is refused (a Job mounts both claims, so both must be in one
// namespace) and nothing is started anywhere.
func TestRestoreRepositoryElsewhere(t *testing.T) {
	bk := completedBackup("prod", "b", 1000)
	r := newRestore("staging", "r", "b", "data")
	r.Spec.BackupNamespace = "prod"
	f := newFixture(t, bk, r, claimOf("staging", "data", "1Gi"), claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.syncRestore("staging", "r")
	got := f.restore("staging", "r")
	if got.Status.Phase != v1alpha1.RestorePhaseFailed || failedReason(got.Status.Conditions) != "RepositoryElsewhere" || !strings.Contains(got.Status.Message, "prod/backup-repo") {
		t.Errorf("phase %q reason %q message %q, want Failed: RepositoryElsewhere naming prod/backup-repo", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Message)
	}
	if n := len(f.jobs("staging")) + len(f.jobs("prod")); n != 0 {
		t.Errorf("%d Jobs started", n)
	}
}

// A Job of the restore's Job name that the restore did not create is not
// adopted: the RestoreJob fails with JobConflict and the Job is left alone.
func TestRestoreDoesNotAdoptAForeignJob(t *testing.T) {
	r := newRestore("prod", "r", "b", "data")
	foreign := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: jobName("restore", r, ""), Labels: map[string]string{
		v1alpha1.ManagedByLabel: v1alpha1.ManagedBy, v1alpha1.OwnerUIDLabel: "uid-of-an-older-restore"}}}
	f := newFixture(t, completedBackup("prod", "b", 1000), r, foreign, claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	writes(f.kube)
	f.syncRestore("prod", "r")
	got := f.restore("prod", "r")
	if got.Status.Phase != v1alpha1.RestorePhaseFailed || failedReason(got.Status.Conditions) != "JobConflict" || !strings.Contains(got.Status.Message, "not created for this object") {
		t.Errorf("phase %q reason %q message %q, want Failed: JobConflict", got.Status.Phase, failedReason(got.Status.Conditions), got.Status.Message)
	}
	if w := writes(f.kube); len(w) != 0 {
		t.Errorf("the foreign Job was touched or another created: %q", w)
	}
}

// A restore Job whose pod admission refuses is reported as MoverBlocked; after
// the timeout its Job is deleted and the RestoreJob fails, nothing written.
func TestRestoreMoverBlocked(t *testing.T) {
	f := newFixture(t, completedBackup("prod", "b", 1000), newRestore("prod", "r", "b", "data"), claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.syncRestore("prod", "r")
	job := f.onlyJob("prod")
	job.UID = "job-uid"
	job.CreationTimestamp = metav1.NewTime(f.now)
	if _, err := f.kube.BatchV1().Jobs("prod").Update(context.Background(), &job, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.cache(&job)
	if _, err := f.kube.CoreV1().Events("prod").Create(context.Background(), &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "e1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Job", Namespace: "prod", Name: job.Name, UID: "job-uid"},
		Reason:         "FailedCreate", Message: "Error creating: exceeded quota: pods", LastTimestamp: metav1.NewTime(f.now)}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.drainEvents()
	f.now = f.now.Add(time.Minute)
	f.syncRestore("prod", "r")
	got := f.restore("prod", "r")
	if c := condition(got.Status.Conditions, v1alpha1.ConditionMoverBlocked); got.Status.Phase != v1alpha1.RestorePhaseRunning || c == nil || !strings.Contains(c.Message, "exceeded quota") {
		t.Fatalf("phase %q condition %+v, want Running with MoverBlocked carrying the refusal", got.Status.Phase, c)
	}
	if ev := f.drainEvents(); len(ev) != 1 || !strings.Contains(ev[0], "Warning MoverBlocked") {
		t.Errorf("want one MoverBlocked event, got %q", ev)
	}
	f.now = f.now.Add(moverPodCreateTimeout)
	f.syncRestore("prod", "r")
	got = f.restore("prod", "r")
	if got.Status.Phase != v1alpha1.RestorePhaseFailed || failedReason(got.Status.Conditions) != "MoverBlocked" || !strings.Contains(got.Status.Message, "nothing was written") {
		t.Errorf("phase %q message %q, want Failed: MoverBlocked after the timeout", got.Status.Phase, got.Status.Message)
	}
	if _, err := f.kube.BatchV1().Jobs("prod").Get(context.Background(), job.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the blocked Job was not deleted: %v", err)
	}
}

// While the mover runs, the RestoreJob shows the newest progress line of its
// pod's log; the progress goes when the restore completes.
func TestRestoreShowsProgress(t *testing.T) {
	f := newFixture(t, completedBackup("prod", "b", 1000), newRestore("prod", "r", "b", "data"), claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.syncRestore("prod", "r")
	job := f.onlyJob("prod")
	job.UID = "job-uid"
	f.cache(&job)
	// The pod finishJob later reports Succeeded, while it runs.
	f.cache(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: job.Name + "-abcde", Labels: map[string]string{batchv1.ControllerUidLabel: "job-uid"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}})
	f.podLogs(`{"type":"progress","bytesDone":10,"bytesTotal":100}` + "\n" + `{"type":"progress","bytesDone":40,"bytesTotal":100}` + "\nnot json\n")
	res := f.syncRestore("prod", "r")
	got := f.restore("prod", "r")
	if p := got.Status.Progress; p == nil || p.BytesDone != 40 || p.BytesTotal != 100 || res.after != progressInterval {
		t.Fatalf("progress %+v requeue %s, want the newest line (40 of 100), followed every %s", p, res.after, progressInterval)
	}
	f.finishJob(&job, `{"operation":"restore","files":1,"bytes":100,"verified":true}`)
	f.syncRestore("prod", "r")
	if got := f.restore("prod", "r"); got.Status.Phase != v1alpha1.RestorePhaseCompleted || got.Status.Progress != nil {
		t.Errorf("phase %q progress %+v, want Completed without progress", got.Status.Phase, got.Status.Progress)
	}
}

// A restore Job that completed without reporting a summary does not
// complete the RestoreJob: nothing says what was written or verified.
func TestRestoreWithoutSummaryFails(t *testing.T) {
	f := newFixture(t, completedBackup("prod", "b", 1000), newRestore("prod", "r", "b", "data"), claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.syncRestore("prod", "r")
	f.finishJob(ptr.To(f.onlyJob("prod")), "")
	f.syncRestore("prod", "r")
	if got := f.restore("prod", "r"); got.Status.Phase != v1alpha1.RestorePhaseFailed || got.Status.Verified || got.Status.Preview != nil {
		t.Errorf("phase %q verified %v preview %+v, want Failed with no outcome claimed", got.Status.Phase, got.Status.Verified, got.Status.Preview)
	}
}

// The failure of a restore Job that completed without a summary says why,
// as a Backup's does (NoSummary), instead of ending in "failed: ".
func TestRestoreWithoutSummarySaysWhy(t *testing.T) {
	f := newFixture(t, completedBackup("prod", "b", 1000), newRestore("prod", "r", "b", "data"), claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.syncRestore("prod", "r")
	f.finishJob(ptr.To(f.onlyJob("prod")), "")
	f.syncRestore("prod", "r")
	if got := f.restore("prod", "r"); strings.HasSuffix(strings.TrimSpace(got.Status.Message), "failed:") {
		t.Errorf("message %q does not say why the restore failed", got.Status.Message)
	}
}

// A RestoreJob deleted between its Job's start and its Running status write
// (the write then conflicts) still has its mover stopped: the finalizer looks
// for the Job by the name the sync gives it, not only the one status records.
func TestDeletedRestoreStopsAMoverItsStatusDoesNotName(t *testing.T) {
	f := newFixture(t, completedBackup("prod", "b", 1000), newRestore("prod", "r", "b", "data"), claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.syncRestore("prod", "r")
	job := f.onlyJob("prod")
	r := f.restore("prod", "r")
	r.Status = v1alpha1.RestoreJobStatus{} // the Running write that was lost
	now := metav1.NewTime(f.now)
	r.DeletionTimestamp = &now
	f.cache(r)
	f.syncRestore("prod", "r")
	if _, err := f.kube.BatchV1().Jobs("prod").Get(context.Background(), job.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the running mover Job was not deleted: %v", err)
	}
	if got := f.restore("prod", "r"); !hasFinalizer(got, v1alpha1.MoverFinalizer) {
		t.Error("the finalizer went before the Job was seen gone")
	}
}
