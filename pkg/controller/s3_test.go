package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/mover/report"
)

// The values of the repository's Secrets. The controllers never read them:
// none may appear in a Job, a status or an event.
var secretValues = map[string]map[string]string{
	"s3-credentials": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEACCESSKEY", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-example-secret-key"},
	"s3-ca":          {"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIBexampleCAcertificate\n-----END CERTIFICATE-----\n"},
	"repo-password":  {"password": "correct horse battery staple"},
}

const s3Location = "s3:https://s3.example.com/backups/production/postgres-data"

// s3Storage is an encrypted, object-locked S3 repository with every option.
func s3Storage() v1alpha1.RepositoryStorage {
	return v1alpha1.RepositoryStorage{
		S3: &v1alpha1.S3Storage{Endpoint: "https://s3.example.com", Bucket: "backups", Prefix: "production/postgres-data", Region: "us-east-1",
			CredentialsSecretRef: v1alpha1.LocalSecretReference{Name: "s3-credentials"},
			CASecretRef:          &v1alpha1.LocalSecretReference{Name: "s3-ca"}},
		Encryption:   &v1alpha1.RepositoryEncryption{SecretRef: v1alpha1.LocalSecretReference{Name: "repo-password"}},
		Immutability: &v1alpha1.Immutability{Mode: v1alpha1.ImmutabilityGovernance},
	}
}

// repoSecrets are the Secrets of s3Storage in ns.
func repoSecrets(ns string) []runtime.Object {
	var out []runtime.Object
	for name, data := range secretValues {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data, Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		out = append(out, s)
	}
	return out
}

// s3Fixture has the S3 policy db in prod (daily at 02:00, keepLast 3 and
// keepDaily 7), the claim data and the repository's Secrets, and no
// repository claim.
func s3Fixture(t *testing.T, objs ...runtime.Object) *fixture {
	p := newPolicy("prod", "db")
	p.Spec.Storage = s3Storage()
	p.Spec.Retention = v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](3), KeepDaily: ptr.To[int32](7)}
	objs = append(objs, p, boundPVC("prod", "data"))
	return newFixture(t, append(objs, repoSecrets("prod")...)...)
}

// s3Backup is the policy's Backup scheduled at 02:00, as the policy
// controller creates it.
func s3Backup() *v1alpha1.Backup {
	b := newBackup("prod", "db-202611300200", "uid-b", "prod")
	b.Labels = map[string]string{v1alpha1.PolicyLabel: "db"}
	b.Annotations = map[string]string{v1alpha1.ScheduledTimeAnnotation: "2026-11-30T02:00:00Z"}
	b.Spec.PolicyName = "db"
	b.Spec.Storage = s3Storage()
	return b
}

// noSecretValues fails when a Secret's value appears anywhere in what.
func noSecretValues(t *testing.T, name string, what interface{}) {
	t.Helper()
	data, err := json.Marshal(what)
	if err != nil {
		t.Fatal(err)
	}
	for secret, kv := range secretValues {
		for k, v := range kv {
			for _, line := range strings.Split(v, "\n") {
				if line != "" && !strings.HasPrefix(line, "-----") && strings.Contains(string(data), line) {
					t.Errorf("%s holds the value of %s/%s", name, secret, k)
				}
			}
		}
	}
}

// noSecretReads fails when the controllers asked the API about Secrets.
func (f *fixture) noSecretReads() {
	f.t.Helper()
	for _, a := range f.kube.Actions() {
		if a.GetResource().Resource == "secrets" {
			f.t.Errorf("the controllers %s secrets", a.GetVerb())
		}
	}
}

// wantS3Access checks a mover Job's access to s3Storage's repository: the
// location flags right after the command, the keys from the credentials
// Secret by reference, the CA and password Secrets as read-only files, a
// writable /tmp, and no repository claim.
func wantS3Access(t *testing.T, job *batchv1.Job, command string) {
	t.Helper()
	if !hasArgs(job, "/backup-mover", command, "--repo", s3Location, "--s3-region", "us-east-1",
		"--s3-ca-file", "/etc/backup-mover/s3-ca/ca.crt", "--password-file", "/etc/backup-mover/password/password") {
		t.Errorf("command %q, want the S3 location, region, CA file and password file after %q", job.Spec.Template.Spec.Containers[0].Command, command)
	}
	if hasArgs(job, "--s3-insecure-skip-tls-verify") {
		t.Error("TLS verification is off")
	}
	c := job.Spec.Template.Spec.Containers[0]
	wantEnv := []corev1.EnvVar{
		{Name: "AWS_ACCESS_KEY_ID", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "s3-credentials"}, Key: "AWS_ACCESS_KEY_ID"}}},
		{Name: "AWS_SECRET_ACCESS_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "s3-credentials"}, Key: "AWS_SECRET_ACCESS_KEY"}}},
	}
	if !apiequality.Semantic.DeepEqual(c.Env, wantEnv) {
		t.Errorf("env %+v, want the two keys from the credentials Secret", c.Env)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range job.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
		if pvc := v.PersistentVolumeClaim; pvc != nil && pvc.ClaimName != "data" {
			t.Errorf("volume %s mounts claim %s; an S3 mover mounts no repository claim", v.Name, pvc.ClaimName)
		}
	}
	if _, ok := volumes["repo"]; ok {
		t.Error("an S3 mover has a repo volume")
	}
	for name, want := range map[string]corev1.SecretVolumeSource{
		"s3-ca":    {SecretName: "s3-ca", Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}},
		"password": {SecretName: "repo-password", Items: []corev1.KeyToPath{{Key: "password", Path: "password"}}},
	} {
		if got := volumes[name].Secret; got == nil || !apiequality.Semantic.DeepEqual(*got, want) {
			t.Errorf("volume %s: %+v, want Secret %+v", name, volumes[name], want)
		}
	}
	if volumes["tmp"].EmptyDir == nil {
		t.Error("no emptyDir for /tmp")
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	for name, dir := range map[string]string{"s3-ca": "/etc/backup-mover/s3-ca", "password": "/etc/backup-mover/password"} {
		if m := mounts[name]; m.MountPath != dir || !m.ReadOnly {
			t.Errorf("mount %s %+v, want read-only at %s", name, m, dir)
		}
	}
	if m := mounts["tmp"]; m.MountPath != "/tmp" {
		t.Errorf("mount tmp %+v, want /tmp", m)
	}
	spec := job.Spec.Template.Spec
	if spec.HostNetwork || (spec.DNSPolicy != "" && spec.DNSPolicy != corev1.DNSClusterFirst) {
		t.Errorf("the mover needs the pod network and cluster DNS: hostNetwork %v dnsPolicy %q", spec.HostNetwork, spec.DNSPolicy)
	}
	l := job.Labels[v1alpha1.RepositoryLabel]
	if l != v1alpha1.RepositoryLabelValue(s3Storage()) || len(validation.IsValidLabelValue(l)) > 0 || l == "backup-repo" {
		t.Errorf("repository label %q, want the S3 location's key", l)
	}
	noSecretValues(t, "the Job", job)
}

// A Backup into S3 runs a mover Job with the repository's location, its
// Secrets by reference and its object lock; the controllers never read a
// Secret, and no value of one appears in the Job, the status or an event.
func TestS3BackupJob(t *testing.T) {
	f := s3Fixture(t, s3Backup())
	f.syncBackup("prod", "db-202611300200")
	job := f.onlyJob("prod")
	wantS3Access(t, &job, "backup")
	// 7 daily Backups outlast 3 daily runs: locked 7 days from the scheduled time.
	const until = "2026-12-07T02:00:00Z"
	if !hasArgs(&job, "--source", "/source", "--summary-file", "/dev/termination-log", "--tag", "backup=prod/db-202611300200") ||
		!hasArgs(&job, "--lock-mode", "governance", "--lock-until", until) {
		t.Errorf("command %q, want the backup's flags and the object lock until %s", job.Spec.Template.Spec.Containers[0].Command, until)
	}
	if volumeClaim(&job, "source") != "data" {
		t.Error("the source claim is not mounted")
	}
	b := f.backup("prod", "db-202611300200")
	if b.Status.Phase != v1alpha1.BackupPhaseRunning || b.Status.LockedUntil == nil || !b.Status.LockedUntil.Equal(ptr.To(metav1.NewTime(utc(until)))) {
		t.Errorf("phase %q lockedUntil %v, want Running, locked until %s", b.Status.Phase, b.Status.LockedUntil, until)
	}
	f.finishJob(&job, summaryA)
	f.syncBackup("prod", "db-202611300200")
	b = f.backup("prod", "db-202611300200")
	if b.Status.Phase != v1alpha1.BackupPhaseCompleted || b.Status.LockedUntil == nil {
		t.Errorf("phase %q lockedUntil %v, want Completed and still locked", b.Status.Phase, b.Status.LockedUntil)
	}
	noSecretValues(t, "the Backup", b)
	noSecretValues(t, "the events", f.drainEvents())
	f.noSecretReads()
}

// Each setting of an S3 repository becomes the mover's flags, environment
// and volumes, and nothing else does.
func TestRepoAccess(t *testing.T) {
	creds := v1alpha1.LocalSecretReference{Name: "c"}
	for _, tc := range []struct {
		name    string
		repo    v1alpha1.RepositoryStorage
		args    string
		volumes string
		env     int
	}{
		{"claim", v1alpha1.RepositoryStorage{PVCName: "backup-repo"}, "--repo /repo", "repo", 0},
		{"encrypted claim", v1alpha1.RepositoryStorage{PVCName: "backup-repo", Encryption: &v1alpha1.RepositoryEncryption{SecretRef: v1alpha1.LocalSecretReference{Name: "pw"}}},
			"--repo /repo --password-file /etc/backup-mover/password/password", "repo password", 0},
		{"plain http bucket", v1alpha1.RepositoryStorage{S3: &v1alpha1.S3Storage{Endpoint: "http://minio.backup-storage.svc:9000", Bucket: "backups", CredentialsSecretRef: creds}},
			"--repo s3:http://minio.backup-storage.svc:9000/backups", "tmp", 2},
		{"unverified https", v1alpha1.RepositoryStorage{S3: &v1alpha1.S3Storage{Endpoint: "https://s3.example.com/", Bucket: "backups", Prefix: "a/b", InsecureSkipTLSVerify: true, CredentialsSecretRef: creds}},
			"--repo s3:https://s3.example.com/backups/a/b --s3-insecure-skip-tls-verify", "tmp", 2},
		{"everything", s3Storage(), "--repo " + s3Location + " --s3-region us-east-1 --s3-ca-file /etc/backup-mover/s3-ca/ca.crt --password-file /etc/backup-mover/password/password",
			"s3-ca tmp password", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, env, volumes, mounts := repoAccess(tc.repo)
			var names []string
			for _, v := range volumes {
				names = append(names, v.Name)
			}
			if got := strings.Join(args, " "); got != tc.args {
				t.Errorf("args %q, want %q", got, tc.args)
			}
			if got := strings.Join(names, " "); got != tc.volumes || len(mounts) != len(volumes) {
				t.Errorf("volumes %q (%d mounts), want %q", got, len(mounts), tc.volumes)
			}
			if len(env) != tc.env {
				t.Errorf("env %+v", env)
			}
			for _, e := range env {
				if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					t.Errorf("env %s is not a Secret reference", e.Name)
				}
			}
		})
	}
}

// The policy controller's Backup of an S3 policy carries the policy's whole
// storage (which the API requires of the server's own Backups).
func TestScheduledS3BackupCarriesThePolicysStorage(t *testing.T) {
	f := s3Fixture(t)
	f.syncPolicy("prod", "db")
	b := f.backup("prod", "db-202611300200")
	if want := s3Storage(); !apiequality.Semantic.DeepEqual(b.Spec.Storage, want) {
		t.Errorf("storage %+v, want the policy's %+v", b.Spec.Storage, want)
	}
	f.noSecretReads()
}

// Deleting a Backup in S3 prunes it with the same access, without a
// repository claim, one prune per S3 location across namespaces; the Backup
// goes when the prune succeeds, also when locked objects were kept.
func TestS3Prune(t *testing.T) {
	b := s3Backup()
	b.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseCompleted, SnapshotID: snapshotID, LockedUntil: ptr.To(metav1.NewTime(utc("2026-12-07T02:00:00Z")))}
	b.DeletionTimestamp = ptr.To(metav1.NewTime(utc("2026-11-30T02:00:20Z")))
	// Another namespace's prune of the same location runs.
	other := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "staging", Name: "prune-other", Labels: map[string]string{
		v1alpha1.ManagedByLabel: v1alpha1.ManagedBy, v1alpha1.JobKindLabel: "prune", v1alpha1.RepositoryLabel: v1alpha1.RepositoryLabelValue(s3Storage()),
		v1alpha1.OwnerUIDLabel: "uid-other"}}}
	f := s3Fixture(t, b, other)
	f.syncBackup("prod", b.Name)
	if jobs := f.jobs("prod"); len(jobs) != 0 {
		t.Fatalf("a prune started while another one of the same S3 location runs: %d Jobs", len(jobs))
	}
	other.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	f.cache(other)
	f.syncBackup("prod", b.Name)
	job := f.onlyJob("prod")
	wantS3Access(t, &job, "prune")
	if !hasArgs(&job, "--forget", snapshotID, "--forget-tag", "backup-uid="+string(b.UID), "--lock-wait", "30m0s", "--summary-file", "/dev/termination-log") || hasArgs(&job, "--lock-mode") {
		t.Errorf("prune command %q", job.Spec.Template.Spec.Containers[0].Command)
	}
	f.drainEvents()
	f.finishJob(&job, `{"operation":"prune","retained":3,"retainedUntil":"2026-12-07T02:00:00Z"}`)
	f.syncBackup("prod", b.Name)
	if got := f.backup("prod", b.Name); hasFinalizer(got, v1alpha1.DataFinalizer) {
		t.Error("the finalizer stayed after a successful prune")
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Normal DataRemoved") || !strings.Contains(ev, "3 objects only it used are locked (S3 Object Lock) and stay in the bucket until 2026-12-07T02:00:00Z at the latest") ||
		!strings.Contains(ev, s3Location) {
		t.Errorf("events %s, want DataRemoved naming the location and the lock", ev)
	}
	f.noSecretReads()
}

// A restore of a Backup in S3 reads it with the same access, and never
// locks anything.
func TestS3Restore(t *testing.T) {
	b := s3Backup()
	b.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseCompleted, SnapshotID: snapshotID, Stats: &v1alpha1.BackupStats{Bytes: 100}}
	for _, dryRun := range []bool{false, true} {
		t.Run(fmt.Sprint("dryRun=", dryRun), func(t *testing.T) {
			r := newRestore("prod", "r", b.Name, "data")
			r.Spec.DryRun = dryRun
			f := s3Fixture(t, b.DeepCopy(), r)
			f.cache(claimOf("prod", "data", "1Gi"))
			f.syncRestore("prod", "r")
			job := f.onlyJob("prod")
			op := map[bool]string{false: "restore", true: "diff"}[dryRun]
			wantS3Access(t, &job, op)
			if !hasArgs(&job, "--snapshot", snapshotID, "--target", "/target") || hasArgs(&job, "--lock-mode") || volumeClaim(&job, "target") != "data" {
				t.Errorf("%s command %q", op, job.Spec.Template.Spec.Containers[0].Command)
			}
			f.noSecretReads()
		})
	}
}

// Import after the operator's storage is lost lists an S3 repository with
// the same access, and re-creates the Backups with the policy's storage.
func TestS3Import(t *testing.T) {
	p := importPolicy("1")
	p.Spec.Storage = s3Storage()
	f := newFixture(t, append(repoSecrets("prod"), p, boundPVC("prod", "data"))...)
	f.syncPolicy("prod", "db")
	jobs := f.importJobs("prod")
	if len(jobs) != 1 {
		t.Fatalf("want one import Job, got %d", len(jobs))
	}
	wantS3Access(t, &jobs[0], "ls")
	if !hasArgs(&jobs[0], "--json") {
		t.Errorf("import command %q", jobs[0].Spec.Template.Spec.Containers[0].Command)
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Listing S3 repository "+s3Location) {
		t.Errorf("events %s", ev)
	}
	f.finishJob(ptr.To(jobs[0]), "")
	listing, _ := json.Marshal([]report.Snapshot{snapshotTagged("1111111111111111", "prod/db-202611280200", "prod/data", "db")})
	f.podLogs(string(listing) + "\n")
	f.syncPolicy("prod", "db")
	b := f.backup("prod", "db-202611280200")
	if b.Status.Phase != v1alpha1.BackupPhaseCompleted || !apiequality.Semantic.DeepEqual(b.Spec.Storage, s3Storage()) {
		t.Errorf("imported Backup %+v %+v, want Completed with the policy's storage", b.Spec.Storage, b.Status)
	}
	if li := f.policy("prod", "db").Status.LastImport; li == nil || li.Imported != 1 || !strings.Contains(li.Message, "in S3 repository "+s3Location) {
		t.Errorf("lastImport %+v", li)
	}
	f.noSecretReads()
}

// A mover that fails on the repository (wrong keys, no such bucket, wrong
// password) fails the Backup with its message, unchanged, and an event.
func TestS3FailurePassesTheMoversMessage(t *testing.T) {
	for _, msg := range []string{
		"s3.example.com rejected the access key (InvalidAccessKeyId): check AWS_ACCESS_KEY_ID in the credentials Secret",
		`bucket "backups" does not exist at https://s3.example.com; create it (with object lock for immutability) or fix spec.storage.s3.bucket`,
		"wrong password: the repository's keys cannot be opened with the password in --password-file",
	} {
		f := s3Fixture(t, s3Backup())
		f.syncBackup("prod", "db-202611300200")
		job := f.onlyJob("prod")
		job.UID = "job-uid"
		job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "retried"}}
		f.cache(&job)
		summary, _ := json.Marshal(report.Summary{Operation: "backup", Error: msg})
		f.cache(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "p", Labels: map[string]string{batchv1.ControllerUidLabel: "job-uid"}},
			Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: moverContainer,
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: string(summary)}}}}}})
		f.drainEvents()
		f.syncBackup("prod", "db-202611300200")
		got := f.backup("prod", "db-202611300200")
		want := fmt.Sprintf("the data mover Job prod/%s failed: %s", job.Name, msg)
		if got.Status.Phase != v1alpha1.BackupPhaseFailed || got.Status.Message != want || failedReason(got.Status.Conditions) != "MoverFailed" {
			t.Errorf("phase %q message %q, want Failed with %q", got.Status.Phase, got.Status.Message, want)
		}
		if ev := f.drainEvents(); !slices.Contains(ev, "Warning MoverFailed "+want) {
			t.Errorf("events %q, want MoverFailed with the message", ev)
		}
	}
}

// A mover pod that cannot start because a Secret of the storage is missing
// is reported (MoverBlocked, with the kubelet's message and what to do) and
// fails the Backup after a while, instead of holding it Running for hours.
func TestMissingSecretBlocksTheMover(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fixture, pod *corev1.Pod)
		want  string
	}{
		{"credentials (environment)", func(f *fixture, pod *corev1.Pod) {
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: moverContainer, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason: "CreateContainerConfigError", Message: `secret "s3-credentials" not found`}}}}
		}, `cannot start its pod: secret "s3-credentials" not found (the Secrets that spec.storage names must exist in namespace prod`},
		{"password (volume)", func(f *fixture, pod *corev1.Pod) {
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: moverContainer, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}
			if _, err := f.kube.CoreV1().Events("prod").Create(context.Background(), &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Namespace: "prod", Name: "mount"},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "prod", Name: pod.Name, UID: pod.UID},
				Reason:         "FailedMount", Message: `MountVolume.SetUp failed for volume "password" : secret "repo-password" not found`,
				LastTimestamp: metav1.NewTime(f.now)}, metav1.CreateOptions{}); err != nil {
				f.t.Fatal(err)
			}
		}, `cannot start its pod: MountVolume.SetUp failed for volume "password" : secret "repo-password" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := s3Fixture(t, s3Backup())
			f.syncBackup("prod", "db-202611300200")
			job := f.onlyJob("prod")
			job.UID = "job-uid"
			job.Status.Active = 1
			if _, err := f.kube.BatchV1().Jobs("prod").Update(context.Background(), &job, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			f.cache(&job)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: job.Name + "-x", UID: "pod-uid",
				CreationTimestamp: metav1.NewTime(f.now), Labels: map[string]string{batchv1.ControllerUidLabel: "job-uid"}},
				Status: corev1.PodStatus{Phase: corev1.PodPending}}
			tc.setup(f, pod)
			f.cache(pod)
			f.now = f.now.Add(time.Minute)
			f.drainEvents()
			f.syncBackup("prod", "db-202611300200")
			got := f.backup("prod", "db-202611300200")
			c := condition(got.Status.Conditions, v1alpha1.ConditionMoverBlocked)
			if c == nil || !strings.Contains(c.Message, tc.want) || got.Status.Phase != v1alpha1.BackupPhaseRunning {
				t.Fatalf("phase %q condition %+v, want Running and MoverBlocked with %q", got.Status.Phase, c, tc.want)
			}
			if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Warning MoverBlocked") {
				t.Errorf("events %s, want MoverBlocked", ev)
			}
			f.now = f.now.Add(moverPodCreateTimeout)
			f.syncBackup("prod", "db-202611300200")
			if got := f.backup("prod", "db-202611300200"); got.Status.Phase != v1alpha1.BackupPhaseFailed || !strings.Contains(got.Status.Message, tc.want) {
				t.Errorf("phase %q message %q, want Failed with the cause", got.Status.Phase, got.Status.Message)
			}
			f.noSecretReads()
		})
	}
}

// lockUntil: the Backup's scheduled (or creation) time plus its policy's
// retention horizon, at least 24 hours, and never less than 24 hours after
// the mover starts.
func TestLockUntil(t *testing.T) {
	now := utc("2026-11-30T02:00:00Z")
	created := now
	for _, tc := range []struct {
		name      string
		schedule  string
		retention v1alpha1.RetentionPolicy
		policy    bool // the Backup names the policy
		scheduled string
		created   time.Time
		want      string
	}{
		{"keepLast of a daily schedule", "0 2 * * *", v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](7)}, true, "2026-11-30T02:00:00Z", created, "2026-12-07T02:00:00Z"},
		{"keepLast of an hourly schedule", "@hourly", v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](48)}, true, "2026-11-30T02:00:00Z", created, "2026-12-02T02:00:00Z"},
		{"keepLast shorter than a day", "@every 30m", v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](4)}, true, "2026-11-30T02:00:00Z", created, "2026-12-01T02:00:00Z"},
		{"keepDaily", "@hourly", v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](2), KeepDaily: ptr.To[int32](10)}, true, "2026-11-30T02:00:00Z", created, "2026-12-10T02:00:00Z"},
		{"keepWeekly", "0 2 * * *", v1alpha1.RetentionPolicy{KeepDaily: ptr.To[int32](7), KeepWeekly: ptr.To[int32](4)}, true, "2026-11-30T02:00:00Z", created, "2026-12-28T02:00:00Z"},
		{"keepMonthly", "0 2 * * *", v1alpha1.RetentionPolicy{KeepWeekly: ptr.To[int32](4), KeepMonthly: ptr.To[int32](12)}, true, "2026-11-30T02:00:00Z", created, "2027-12-07T02:00:00Z"},
		{"weekly schedule, keepLast", "0 2 * * 0", v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](3)}, true, "2026-11-29T02:00:00Z", created, "2026-12-20T02:00:00Z"},
		{"on demand: from creation, the policy's horizon", "0 2 * * *", v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](7)}, true, "", utc("2026-11-30T01:15:07.5Z"), "2026-12-07T01:15:08Z"},
		{"no policy", "0 2 * * *", v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](7)}, false, "", created, "2026-12-01T02:00:00Z"},
		{"waited long: 24 hours after the start", "0 2 * * *", v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](1)}, true, "2026-11-28T02:00:00Z", created, "2026-12-01T02:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPolicy("prod", "db")
			p.Spec.Schedule, p.Spec.Retention = tc.schedule, tc.retention
			b := newBackup("prod", "b", "uid-b", "prod")
			b.CreationTimestamp = metav1.NewTime(tc.created)
			if tc.policy {
				b.Spec.PolicyName = "db"
			}
			if tc.scheduled != "" {
				b.Annotations = map[string]string{v1alpha1.ScheduledTimeAnnotation: tc.scheduled}
			}
			f := newFixture(t, p, b)
			f.now = now
			if got := f.m.lockUntil(b).Format(time.RFC3339Nano); got != tc.want {
				t.Errorf("lock until %s, want %s", got, tc.want)
			}
		})
	}
	// A policy that is gone: 24 hours.
	b := newBackup("prod", "b", "uid-b", "prod")
	b.Spec.PolicyName = "gone"
	f := newFixture(t, b)
	f.now = now
	if got := f.m.lockUntil(b); !got.Equal(utc("2026-12-01T02:00:00Z")) {
		t.Errorf("a Backup whose policy is gone: lock until %s", got)
	}
	// A Job's --lock-until is what status reports.
	job := &batchv1.Job{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Command: []string{"/backup-mover", "backup", "--lock-mode", "compliance", "--lock-until", "2026-12-07T02:00:00Z"}}}}}}}
	if got := jobLockedUntil(job); got == nil || !got.Equal(ptr.To(metav1.NewTime(utc("2026-12-07T02:00:00Z")))) {
		t.Errorf("jobLockedUntil = %v", got)
	}
}

// An S3 mover (Secret volumes, an emptyDir, environment from a Secret)
// passes Pod Security restricted as a claim mover does.
func TestS3MoverPassesRestricted(t *testing.T) {
	b := s3Backup()
	b.Spec.MoverSecurityContext = &v1alpha1.MoverSecurityContext{RunAsUser: ptr.To[int64](1001)}
	f := s3Fixture(t, b, podSecurityNamespace("prod", "restricted"))
	f.syncBackup("prod", b.Name)
	job := f.onlyJob("prod")
	if msg := admitted(t, &job, "restricted"); msg != "" {
		t.Errorf("refused by restricted: %s", msg)
	}
}

// A prune that fails keeps the Backup and says why in the mover's words.
func TestS3PruneFailureKeepsTheBackup(t *testing.T) {
	b := s3Backup()
	b.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseCompleted, SnapshotID: snapshotID}
	b.DeletionTimestamp = ptr.To(metav1.NewTime(utc("2026-11-30T02:00:20Z")))
	f := s3Fixture(t, b)
	f.syncBackup("prod", b.Name)
	job := f.onlyJob("prod")
	job.UID = "job-uid"
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "retried"}}
	f.cache(&job)
	const msg = "s3.example.com rejected the access key (InvalidAccessKeyId): check AWS_ACCESS_KEY_ID in the credentials Secret"
	summary, _ := json.Marshal(report.Summary{Operation: "error", Error: msg})
	f.cache(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "p", Labels: map[string]string{batchv1.ControllerUidLabel: "job-uid"}},
		Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: moverContainer,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: string(summary)}}}}}})
	f.drainEvents()
	f.syncBackup("prod", b.Name)
	if got := f.backup("prod", b.Name); !hasFinalizer(got, v1alpha1.DataFinalizer) {
		t.Error("the Backup was let go although its data was not removed")
	}
	if ev := strings.Join(f.drainEvents(), "\n"); !strings.Contains(ev, "Warning PruneFailed Removing the snapshot failed ("+msg+")") {
		t.Errorf("events %s, want PruneFailed with the mover's message", ev)
	}
}

// refuseJobsIn makes the fake API server refuse Jobs in namespace as the
// NamespaceLifecycle admission plugin does: Forbidden with the cause
// NamespaceTerminating while it is being deleted, NotFound once it is gone.
func (f *fixture) refuseJobsIn(namespace string, gone bool) {
	f.kube.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() != namespace {
			return false, nil, nil
		}
		if gone {
			return true, nil, apierrors.NewNotFound(corev1.Resource("namespaces"), namespace)
		}
		err := apierrors.NewForbidden(batchv1.Resource("jobs"), "", fmt.Errorf("unable to create new content in namespace %s because it is being terminated", namespace))
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: corev1.NamespaceTerminatingCause, Message: "namespace " + namespace + " is being terminated", Field: "metadata.namespace"})
		return true, nil, err
	})
}

// A Backup in S3 deleted while the namespace its prune Job would run in is
// being deleted (or is gone) goes without its prune, with a warning saying
// the data stays in the bucket and how to remove it: no Job can be created
// there, and waiting would hold the namespace in Terminating forever. Other
// refusals keep the Backup.
func TestS3PruneInEndingNamespace(t *testing.T) {
	deleted := func(targetNS string) *v1alpha1.Backup {
		b := s3Backup()
		b.Spec.Target.Namespace = targetNS
		b.Status = v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseCompleted, SnapshotID: snapshotID}
		b.DeletionTimestamp = ptr.To(metav1.NewTime(utc("2026-11-30T02:00:20Z")))
		return b
	}
	terminating := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod", DeletionTimestamp: ptr.To(metav1.NewTime(utc("2026-11-30T02:00:10Z")))},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	// Another namespace's prune of the same location runs: not waited for.
	other := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "staging", Name: "prune-other", Labels: map[string]string{
		v1alpha1.ManagedByLabel: v1alpha1.ManagedBy, v1alpha1.JobKindLabel: "prune", v1alpha1.RepositoryLabel: v1alpha1.RepositoryLabelValue(s3Storage()),
		v1alpha1.OwnerUIDLabel: "uid-other"}}}
	for _, tc := range []struct {
		name     string
		targetNS string
		objs     []runtime.Object
		refuse   func(f *fixture)
		why      string
	}{
		{"namespace terminating", "prod", []runtime.Object{terminating, other}, func(f *fixture) { f.refuseJobsIn("prod", false) }, "Namespace prod is being deleted"},
		{"deletion begun after the namespace was read", "prod", nil, func(f *fixture) { f.refuseJobsIn("prod", false) }, "Namespace prod is being deleted"},
		{"namespace gone", "old", nil, func(f *fixture) { f.refuseJobsIn("old", true) }, "Namespace old does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := deleted(tc.targetNS)
			f := s3Fixture(t, append(tc.objs, b)...)
			tc.refuse(f)
			for i := 0; i < 3 && hasFinalizer(f.backup("prod", b.Name), v1alpha1.DataFinalizer); i++ {
				if _, err := f.m.syncBackup(context.Background(), "prod", b.Name); err != nil {
					t.Logf("sync %d: %v", i, err)
				}
				f.resync()
			}
			if hasFinalizer(f.backup("prod", b.Name), v1alpha1.DataFinalizer) {
				t.Fatal("the finalizer stayed: no prune Job can ever be created there, so the Backup (and its namespace) would never go")
			}
			if jobs := f.jobs(tc.targetNS); len(jobs) != 0 {
				t.Errorf("%d Jobs created", len(jobs))
			}
			ev := strings.Join(f.drainEvents(), "\n")
			for _, want := range []string{"Warning DataLeftInRepository " + tc.why, snapshotID, s3Location, "stays in the bucket",
				"later prunes of the repository keep it", "BackupPolicy db in namespace prod", v1alpha1.ImportAnnotation} {
				if !strings.Contains(ev, want) {
					t.Errorf("events %s, want DataLeftInRepository with %q", ev, want)
				}
			}
			f.noSecretReads()
		})
	}
	t.Run("other refusals keep the Backup", func(t *testing.T) {
		b := deleted("prod")
		f := s3Fixture(t, b)
		f.kube.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(batchv1.Resource("jobs"), "", fmt.Errorf("exceeded quota: jobs"))
		})
		if _, err := f.m.syncBackup(context.Background(), "prod", b.Name); err == nil {
			t.Error("no error, want the refusal retried")
		}
		if !hasFinalizer(f.backup("prod", b.Name), v1alpha1.DataFinalizer) {
			t.Error("the Backup was let go although its namespace stays and its data was not removed")
		}
		if ev := strings.Join(f.drainEvents(), "\n"); strings.Contains(ev, "DataLeftInRepository") {
			t.Errorf("events %s", ev)
		}
	})
}
