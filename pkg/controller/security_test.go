package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

func podSecurityNamespace(name, level string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if level != "" {
		ns.Labels = map[string]string{psaapi.EnforceLevelLabel: level}
	}
	return ns
}

// workloadPod is a running pod of uid 1000 that mounts the claim "data".
func workloadPod(ns string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-0"},
		Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000), FSGroup: ptr.To[int64](2000)},
			Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
			Containers: []corev1.Container{{Name: "db", VolumeMounts: []corev1.VolumeMount{{Name: "d", MountPath: "/var/lib/db"}},
				SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To[int64](1001)}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
}

// admitted evaluates a Job's pod template the way Pod Security admission
// does for the level.
func admitted(t *testing.T, job *batchv1.Job, level string) string {
	t.Helper()
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lvl, err := psaapi.ParseLevel(level)
	if err != nil {
		t.Fatal(err)
	}
	res := policy.AggregateCheckResults(ev.EvaluatePod(psaapi.LevelVersion{Level: lvl, Version: psaapi.LatestVersion()},
		&job.Spec.Template.ObjectMeta, &job.Spec.Template.Spec))
	if res.Allowed {
		return ""
	}
	return res.ForbiddenDetail()
}

// Backup and restore movers pass Pod Security admission at the level their
// namespace enforces, with what each level allows.
func TestMoverFollowsPodSecurityLevel(t *testing.T) {
	for _, level := range []string{"", "privileged", "baseline", "restricted"} {
		t.Run("level "+level, func(t *testing.T) {
			bk := newBackup("prod", "b", "uid-1", "prod")
			bk.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseCompleted, SnapshotID: "aaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
			r := &v1alpha1.RestoreJob{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "r", UID: "uid-r", CreationTimestamp: bk.CreationTimestamp},
				Spec: v1alpha1.RestoreJobSpec{BackupNamespace: "prod", BackupName: "b", AllowInUse: true, Target: v1alpha1.RestoreTarget{Namespace: "prod", PVCName: "data"}}}
			running := newBackup("prod", "running", "uid-2", "prod")
			running.Spec.Target.PVCName = "other"
			running.Spec.MoverSecurityContext = &v1alpha1.MoverSecurityContext{RunAsUser: ptr.To[int64](1001), RunAsGroup: ptr.To[int64](1000), FSGroup: ptr.To[int64](2000)}
			f := newFixture(t, bk, r, running, podSecurityNamespace("prod", level), workloadPod("prod"),
				boundPVC("prod", "data"), boundPVC("prod", "other"), boundPVC("prod", "backup-repo"))
			f.syncBackup("prod", "running")
			if _, err := f.m.syncRestore(context.Background(), "prod", "r"); err != nil {
				t.Fatal(err)
			}
			jobs := f.jobs("prod")
			if len(jobs) != 2 {
				t.Fatalf("want a backup and a restore Job, got %d", len(jobs))
			}
			for _, job := range jobs {
				enforced := level
				if enforced == "" {
					enforced = "privileged"
				}
				if why := admitted(t, &job, enforced); why != "" {
					t.Errorf("%s Job refused at %s: %s", job.Labels[v1alpha1.JobKindLabel], enforced, why)
				}
				sc, caps := job.Spec.Template.Spec.SecurityContext, job.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Add
				switch enforced {
				case "restricted":
					if *sc.RunAsUser != 1001 || *sc.RunAsGroup != 1000 || *sc.FSGroup != 2000 || len(caps) != 0 {
						t.Errorf("restricted mover runs as %d:%d fsGroup %d with %v; want the workload container's 1001:1000, 2000, no capabilities",
							*sc.RunAsUser, *sc.RunAsGroup, *sc.FSGroup, caps)
					}
				case "baseline":
					if why := admitted(t, &job, "restricted"); why == "" || *sc.RunAsUser != 0 {
						t.Errorf("baseline mover should run as root (not restricted): %v", sc)
					}
				case "privileged":
					if job.Labels[v1alpha1.JobKindLabel] == "backup" && (len(caps) != 1 || caps[0] != "DAC_READ_SEARCH") {
						t.Errorf("privileged backup capabilities %v", caps)
					}
					if why := admitted(t, &job, "baseline"); why == "" {
						t.Errorf("a privileged-level mover is expected to need more than baseline")
					}
				}
			}
		})
	}
}

// In a restricted namespace without a known non-root identity the Backup
// fails with what to set; with spec.moverSecurityContext it runs as that.
func TestRestrictedMoverNeedsAnIdentity(t *testing.T) {
	bk := newBackup("prod", "b", "uid-1", "prod")
	f := newFixture(t, bk, podSecurityNamespace("prod", "restricted"), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("prod", "b")
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseFailed || !strings.Contains(got.Status.Message, "spec.moverSecurityContext.runAsUser") {
		t.Errorf("phase %q message %q, want Failed saying to set spec.moverSecurityContext", got.Status.Phase, got.Status.Message)
	}

	withID := newBackup("prod", "c", "uid-3", "prod")
	withID.Spec.MoverSecurityContext = &v1alpha1.MoverSecurityContext{RunAsUser: ptr.To[int64](4242)}
	f = newFixture(t, withID, podSecurityNamespace("prod", "restricted"), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("prod", "c")
	jobs := f.jobs("prod")
	if len(jobs) != 1 || *jobs[0].Spec.Template.Spec.SecurityContext.RunAsUser != 4242 {
		t.Fatalf("want one Job running as 4242, got %+v", jobs)
	}
	if why := admitted(t, &jobs[0], "restricted"); why != "" {
		t.Errorf("refused at restricted: %s", why)
	}
}

// A Job whose pod admission refuses is reported within a sync (condition
// MoverBlocked with the refusal, one event), and after the timeout its Job
// is deleted and the Backup fails.
func TestBlockedMoverIsReportedThenFails(t *testing.T) {
	bk := newBackup("prod", "b", "uid-1", "prod")
	f := newFixture(t, bk, boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
	f.syncBackup("prod", "b")
	job := f.jobs("prod")[0]
	job.UID = "job-uid"
	job.CreationTimestamp = metav1.NewTime(f.now)
	if _, err := f.kube.BatchV1().Jobs("prod").Update(context.Background(), &job, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.cache(&job)
	refusal := `pods "x" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities (container "mover" must not include "DAC_READ_SEARCH" in securityContext.capabilities.add)`
	if _, err := f.kube.CoreV1().Events("prod").Create(context.Background(), &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "e1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Job", Namespace: "prod", Name: job.Name, UID: types.UID("job-uid")},
		Reason:         "FailedCreate", Message: "Error creating: " + refusal, LastTimestamp: metav1.NewTime(f.now)}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.drainEvents()

	f.now = f.now.Add(5 * time.Second) // too early to tell
	f.syncBackup("prod", "b")
	if got := f.backup("prod", "b"); condition(got.Status.Conditions, v1alpha1.ConditionMoverBlocked) != nil {
		t.Errorf("reported blocked before the pod had a chance")
	}
	f.now = f.now.Add(30 * time.Second)
	f.syncBackup("prod", "b")
	f.syncBackup("prod", "b")
	got := f.backup("prod", "b")
	c := condition(got.Status.Conditions, v1alpha1.ConditionMoverBlocked)
	if got.Status.Phase != v1alpha1.BackupPhaseRunning || c == nil || !strings.Contains(c.Message, refusal) {
		t.Fatalf("phase %q condition %+v, want Running with MoverBlocked carrying the refusal", got.Status.Phase, c)
	}
	if ev := f.drainEvents(); len(ev) != 1 || !strings.Contains(ev[0], "Warning MoverBlocked") {
		t.Errorf("want one MoverBlocked event, got %q", ev)
	}

	f.now = f.now.Add(moverPodCreateTimeout)
	f.syncBackup("prod", "b")
	if got := f.backup("prod", "b"); got.Status.Phase != v1alpha1.BackupPhaseFailed || !strings.Contains(got.Status.Message, "gave up") {
		t.Errorf("phase %q message %q, want Failed after the timeout", got.Status.Phase, got.Status.Message)
	}
	if _, err := f.kube.BatchV1().Jobs("prod").Get(context.Background(), job.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the blocked Job was not deleted: %v", err)
	}
}

func condition(conds []metav1.Condition, t string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// A namespace without the enforce label follows the cluster's default level
// (--pod-security-default-level); an unknown label value enforces restricted,
// as Pod Security admission reads it.
func TestUnlabelledAndUnknownLevels(t *testing.T) {
	for _, tc := range []struct {
		name, label, def string
		wantRoot         bool
	}{
		{"unlabelled, default privileged", "", "", true},
		{"unlabelled, cluster default restricted", "", "restricted", false},
		{"typo enforces restricted", "Restricted ", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := podSecurityNamespace("prod", "")
			if tc.label != "" {
				ns.Labels = map[string]string{psaapi.EnforceLevelLabel: tc.label}
			}
			bk := newBackup("prod", "b", "uid-1", "prod")
			f := newFixture(t, bk, ns, workloadPod("prod"), boundPVC("prod", "data"), boundPVC("prod", "backup-repo"))
			f.m.opts.PodSecurityDefault = tc.def
			f.syncBackup("prod", "b")
			jobs := f.jobs("prod")
			if len(jobs) != 1 {
				t.Fatalf("%d Jobs", len(jobs))
			}
			if root := *jobs[0].Spec.Template.Spec.SecurityContext.RunAsUser == 0; root != tc.wantRoot {
				t.Errorf("mover runs as root: %v, want %v", root, tc.wantRoot)
			}
		})
	}
}
