package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"example.com/backup-operator/hack/cluster"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/generated/clientset/versioned"
)

// The integration tests run the plugin against a real etcd, kube-apiserver
// and backup-apiserver (registered through its APIService, controllers
// off). The tests write status through the /status subresource as the
// operator's controllers would: the trigger answered with a Backup, phases,
// progress, previews.
var (
	controlPlane *cluster.ControlPlane
	binDir       string
	backupClient versioned.Interface
	kubeClient   kubernetes.Interface
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "kubectl-backup-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	binDir = filepath.Join(dir, "bin")
	if err := cluster.BuildOperator(binDir); err != nil { // kubectl-backup included
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	controlPlane, err = cluster.StartControlPlane(ctx, cluster.ControlPlaneOptions{Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer controlPlane.Stop()
	server, err := controlPlane.StartBackupAPIServer(ctx, filepath.Join(binDir, "backup-apiserver"), filepath.Join(dir, "backup-apiserver"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer server.Stop()
	cfg, err := clientcmd.BuildConfigFromFlags("", controlPlane.AdminKubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	backupClient = versioned.NewForConfigOrDie(cfg)
	kubeClient = kubernetes.NewForConfigOrDie(cfg)
	return m.Run()
}

func requireCluster(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs etcd and kube-apiserver (run without -short)")
	}
}

// testContext ends with the test and at most after a minute.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func createNamespace(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if _, err := kubeClient.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kubeClient.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// syncBuffer is a buffer the plugin writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// shows reports whether s was written.
func (b *syncBuffer) shows(s string) bool { return strings.Contains(b.String(), s) }

// pluginTo runs the plugin with args against the test cluster, as
// `kubectl backup ARGS...` would, with stdout to out; it returns stderr
// and the exit code.
func pluginTo(ctx context.Context, in io.Reader, out *syncBuffer, args ...string) (string, int) {
	var errOut bytes.Buffer
	code := run(ctx, append(args, "--kubeconfig", controlPlane.AdminKubeconfig, "--poll-interval", "50ms"), in, out, &errOut)
	return errOut.String(), code
}

// plugin is pluginTo, returning stdout too.
func plugin(ctx context.Context, in io.Reader, args ...string) (string, string, int) {
	var out syncBuffer
	errOut, code := pluginTo(ctx, in, &out, args...)
	return out.String(), errOut, code
}

func createPolicy(t *testing.T, ctx context.Context, ns, name, schedule string) *v1alpha1.BackupPolicy {
	t.Helper()
	keep := int32(3)
	p, err := backupClient.BackupV1alpha1().BackupPolicies(ns).Create(ctx, &v1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.BackupPolicySpec{Schedule: schedule, Target: v1alpha1.VolumeTarget{PVCName: "data"},
			Retention: v1alpha1.RetentionPolicy{KeepLast: &keep}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// setBackupStatus writes a Backup's status as the backup controller does.
func setBackupStatus(t *testing.T, ctx context.Context, ns, name string, set func(*v1alpha1.BackupStatus)) {
	t.Helper()
	c := backupClient.BackupV1alpha1().Backups(ns)
	b, err := c.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Error(err)
		return
	}
	set(&b.Status)
	if _, err := c.UpdateStatus(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Error(err)
	}
}

func setRestoreStatus(t *testing.T, ctx context.Context, ns, name string, set func(*v1alpha1.RestoreJobStatus)) {
	t.Helper()
	c := backupClient.BackupV1alpha1().RestoreJobs(ns)
	r, err := c.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Error(err)
		return
	}
	set(&r.Status)
	if _, err := c.UpdateStatus(ctx, r, metav1.UpdateOptions{}); err != nil {
		t.Error(err)
	}
}

// poll calls check every 20 ms until it is true or ctx ends.
func poll(ctx context.Context, check func() bool) bool {
	for {
		if check() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// answerTrigger acts as the policy controller once: it waits for a new
// value of the policy's trigger annotation, creates the Backup of that
// value and records the answer in status.lastTrigger, then hands the
// Backup's name to then (in the background; wait waits for it).
func answerTrigger(t *testing.T, ctx context.Context, ns, policy string, then func(name string)) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := backupClient.BackupV1alpha1()
		var p *v1alpha1.BackupPolicy
		if !poll(ctx, func() bool {
			var err error
			p, err = c.BackupPolicies(ns).Get(ctx, policy, metav1.GetOptions{})
			if err != nil {
				return false
			}
			v := p.Annotations[v1alpha1.TriggerAnnotation]
			return v != "" && (p.Status.LastTrigger == nil || p.Status.LastTrigger.Value != v)
		}) {
			t.Error("the policy was not triggered")
			return
		}
		v := p.Annotations[v1alpha1.TriggerAnnotation]
		name := policy + "-manual-" + v[len(v)-6:]
		if _, err := c.Backups(ns).Create(ctx, &v1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.PolicyLabel: policy},
				Annotations: map[string]string{v1alpha1.TriggerAnnotation: v}},
			Spec: v1alpha1.BackupSpec{PolicyName: policy},
		}, metav1.CreateOptions{}); err != nil {
			t.Error(err)
			return
		}
		now := metav1.Now()
		p.Status.LastTrigger = &v1alpha1.TriggerStatus{Value: v, BackupName: name, Time: &now}
		if _, err := c.BackupPolicies(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Error(err)
			return
		}
		then(name)
	}()
	return wg.Wait
}

func TestStatus(t *testing.T) {
	requireCluster(t)
	ctx := testContext(t)
	createNamespace(t, ctx, "status-a")
	createNamespace(t, ctx, "status-b")
	createPolicy(t, ctx, "status-a", "fresh", "@every 10m")  // never succeeded, created now: not late
	createPolicy(t, ctx, "status-a", "nightly", "0 2 * * *") // succeeded a minute ago
	createPolicy(t, ctx, "status-a", "stale", "@every 10m")  // succeeded 3 hours ago
	createPolicy(t, ctx, "status-b", "other", "@hourly")
	for name, at := range map[string]time.Time{"nightly": time.Now().Add(-time.Minute), "stale": time.Now().Add(-3 * time.Hour)} {
		c := backupClient.BackupV1alpha1().BackupPolicies("status-a")
		p, err := c.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.LastSuccessfulBackup, p.Status.LastSuccessfulTime = name+"-202611260200", &metav1.Time{Time: at}
		if _, err := c.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"moving", "broken"} {
		if _, err := backupClient.BackupV1alpha1().Backups("status-a").Create(ctx, &v1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{PVCName: "data"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setBackupStatus(t, ctx, "status-a", "moving", func(s *v1alpha1.BackupStatus) {
		s.Phase, s.Progress = v1alpha1.BackupPhaseRunning, &v1alpha1.Progress{BytesDone: 42 << 20, BytesTotal: 100 << 20}
	})
	setBackupStatus(t, ctx, "status-a", "broken", func(s *v1alpha1.BackupStatus) {
		now := metav1.Now()
		s.Phase, s.CompletionTime, s.Message = v1alpha1.BackupPhaseFailed, &now, "the repository is full:\nno space left on device"
	})

	out, errOut, code := plugin(ctx, nil, "status", "-n", "status-a")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Logf("status:\n%s", out)
	for _, re := range []string{
		`(?m)^fresh +@every 10m +never +- \(every 10m\) +OK +in \d+m`,
		`(?m)^nightly +0 2 \* \* \* +nightly-202611260200 +1m\d*s? ago \(every 1d\) +OK +in \d+[hm]`,
		`(?m)^stale +@every 10m +stale-202611260200 +3h ago \(every 10m\) +LATE by 2h(39|40)m +in `,
		`(?m)^backup/moving +Running +42%  42\.0 MiB / 100\.0 MiB$`, // no bar: stdout is no terminal
		`(?m)^backup/broken +\d+s ago +the repository is full: no space left on device$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status output does not match %s", re)
		}
	}
	if strings.Contains(out, "other") || strings.Contains(out, "NAMESPACE") {
		t.Errorf("status -n status-a shows another namespace:\n%s", out)
	}

	out, errOut, code = plugin(ctx, nil, "status", "-A")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, re := range []string{`(?m)^NAMESPACE +POLICY`, `(?m)^status-b +other +@hourly +never`, `(?m)^status-a +stale +.*LATE`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status -A output does not match %s:\n%s", re, out)
		}
	}

	out, errOut, code = plugin(ctx, nil, "status", "-n", "status-a", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r statusReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	late := map[string]bool{}
	for _, p := range r.Policies {
		late[p.Name] = p.Late
	}
	if len(r.Policies) != 3 || late["fresh"] || late["nightly"] || !late["stale"] {
		t.Errorf("-o json policies: %+v", r.Policies)
	}
	if len(r.Active) != 1 || r.Active[0].Name != "moving" || r.Active[0].Progress.BytesDone != 42<<20 {
		t.Errorf("-o json active: %+v", r.Active)
	}
	if len(r.Failures) != 1 || r.Failures[0].Name != "broken" || !strings.Contains(r.Failures[0].Message, "no space left") {
		t.Errorf("-o json failures: %+v", r.Failures)
	}
}

// runBackup plays a Backup from Pending through Running (25%, until shown
// says it was seen) to phase.
func runBackup(t *testing.T, ctx context.Context, ns string, phase v1alpha1.BackupPhase, shown func(string) bool) func(string) {
	return func(name string) {
		start := metav1.Now()
		setBackupStatus(t, ctx, ns, name, func(s *v1alpha1.BackupStatus) {
			s.Phase, s.StartTime, s.Progress = v1alpha1.BackupPhaseRunning, &start, &v1alpha1.Progress{BytesDone: 1 << 20, BytesTotal: 4 << 20}
		})
		if !poll(ctx, func() bool { return shown("25%") }) {
			t.Error("the progress was not shown")
		}
		setBackupStatus(t, ctx, ns, name, func(s *v1alpha1.BackupStatus) {
			now := metav1.Now()
			s.Phase, s.CompletionTime, s.Progress = phase, &now, nil
			if phase == v1alpha1.BackupPhaseCompleted {
				s.Stats = &v1alpha1.BackupStats{Files: 12, Bytes: 4 << 20, NewBytes: 1 << 20}
			} else {
				s.Message = "the data mover failed: repository locked"
			}
		})
	}
}

func TestNow(t *testing.T) {
	requireCluster(t)
	ctx := testContext(t)
	createNamespace(t, ctx, "now")
	createPolicy(t, ctx, "now", "db", "0 2 * * *")

	// --wait until Completed: exit 0.
	var stdout syncBuffer
	wait := answerTrigger(t, ctx, "now", "db", runBackup(t, ctx, "now", v1alpha1.BackupPhaseCompleted, stdout.shows))
	errOut, code := pluginTo(ctx, nil, &stdout, "now", "db", "-n", "now", "--wait")
	wait()
	out := stdout.String()
	t.Logf("now --wait:\n%s%s", out, errOut)
	if code != exitOK {
		t.Fatalf("exit %d, want 0: %s", code, errOut)
	}
	for _, re := range []string{`(?m)^backuppolicy/db triggered`, `(?m)^backup/db-manual-\w+ created$`, `(?m)^backup/db-manual-\w+ Running$`, `(?m)^backup/db-manual-\w+  25%  1\.0 MiB / 4\.0 MiB$`,
		`(?m)^backup/db-manual-\w+ Completed: 12 files, 4\.0 MiB \(1\.0 MiB new\) in \d+s$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s", re)
		}
	}
	if strings.Contains(out, "\r") {
		t.Errorf("progress redrawn on a pipe: %q", out)
	}
	backups, err := backupClient.BackupV1alpha1().Backups("now").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(backups.Items) != 1 || backups.Items[0].Spec.PolicyName != "db" {
		t.Fatalf("backups after a trigger: %+v", backups.Items)
	}

	// --wait until Failed, through the built binary: its exit code is 1.
	var binOut syncBuffer
	wait = answerTrigger(t, ctx, "now", "db", runBackup(t, ctx, "now", v1alpha1.BackupPhaseFailed, binOut.shows))
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kubectl-backup"), "now", "db", "-n", "now", "--wait",
		"--kubeconfig", controlPlane.AdminKubeconfig, "--poll-interval", "50ms")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &binOut, &stderr
	err = cmd.Run()
	wait()
	t.Logf("kubectl-backup now --wait:\n%s%s", binOut.String(), stderr.String())
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitFailed {
		t.Fatalf("the binary ended with %v, want exit code %d", err, exitFailed)
	}
	if !regexp.MustCompile(`(?m)^backup/db-manual-\w+ Failed( in \d+s)?: the data mover failed: repository locked$`).MatchString(binOut.String()) ||
		!strings.Contains(stderr.String(), "failed") {
		t.Errorf("a failed Backup's output:\n%s%s", binOut.String(), stderr.String())
	}

	// Without --wait, -o json: the Backup, once created; progress on stderr.
	wait = answerTrigger(t, ctx, "now", "db", func(string) {})
	out, errOut, code = plugin(ctx, nil, "now", "db", "-n", "now", "-o", "json")
	wait()
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var b v1alpha1.Backup
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if b.Kind != "Backup" || b.APIVersion != "backup.example.com/v1alpha1" || b.Spec.PolicyName != "db" || !strings.HasPrefix(b.Name, "db-manual-") {
		t.Errorf("-o json printed %+v", b)
	}
	if !strings.Contains(errOut, "backup/"+b.Name+" created") {
		t.Errorf("stderr: %q", errOut)
	}

	// A timeout: nobody answers the trigger; exit code 3.
	_, errOut, code = plugin(ctx, nil, "now", "db", "-n", "now", "--wait", "--timeout", "300ms")
	if code != exitTimeout || !strings.Contains(errOut, "timed out") {
		t.Errorf("unanswered trigger: exit %d, stderr %q", code, errOut)
	}
	// A policy that does not exist: the API's message.
	_, errOut, code = plugin(ctx, nil, "now", "nope", "-n", "now")
	if code != exitError || !strings.Contains(errOut, `backuppolicies.backup.example.com "nope" not found`) {
		t.Errorf("missing policy: exit %d, stderr %q", code, errOut)
	}
}

// setupRestore makes a namespace with a Bound claim "data" and a Completed
// Backup "done" of 1 MiB.
func setupRestore(t *testing.T, ctx context.Context, ns string) {
	t.Helper()
	createNamespace(t, ctx, ns)
	pvc, err := kubeClient.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No controller-manager binds it here.
	pvc.Status.Phase = corev1.ClaimBound
	pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
	if _, err := kubeClient.CoreV1().PersistentVolumeClaims(ns).UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := backupClient.BackupV1alpha1().Backups(ns).Create(ctx, &v1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "done"}, Spec: v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{PVCName: "other"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setBackupStatus(t, ctx, ns, "done", func(s *v1alpha1.BackupStatus) {
		s.Phase, s.Stats = v1alpha1.BackupPhaseCompleted, &v1alpha1.BackupStats{Files: 3, Bytes: 1 << 20}
	})
}

var testPreview = &v1alpha1.RestorePreview{Creates: 1, Overwrites: 1, Deletes: 1, Paths: []string{"+ conf/new.yaml", "~ conf/app.yaml", "- conf/old.yaml"}}

// answerRestores acts as the restore controller: it completes the dry run
// with testPreview, then (unless dryOnly) runs the restore that must come
// after it. It returns the RestoreJobs it saw.
func answerRestores(t *testing.T, ctx context.Context, ns string, dryOnly bool, shown func(string) bool) (wait func() []v1alpha1.RestoreJob) {
	var seen []v1alpha1.RestoreJob
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := backupClient.BackupV1alpha1().RestoreJobs(ns)
		find := func(dry bool) *v1alpha1.RestoreJob {
			var found *v1alpha1.RestoreJob
			if !poll(ctx, func() bool {
				l, err := c.List(ctx, metav1.ListOptions{})
				if err != nil {
					return false
				}
				for i := range l.Items {
					if l.Items[i].Spec.DryRun == dry {
						found = &l.Items[i]
						return true
					}
					if !dry {
						continue
					}
					t.Errorf("restorejob/%s (not a dry run) was created before the dry run", l.Items[i].Name)
				}
				return false
			}) {
				return nil
			}
			seen = append(seen, *found)
			return found
		}
		d := find(true)
		if d == nil {
			t.Error("no dry run was created")
			return
		}
		setRestoreStatus(t, ctx, ns, d.Name, func(s *v1alpha1.RestoreJobStatus) { s.Phase = v1alpha1.RestorePhaseRunning })
		time.Sleep(100 * time.Millisecond)
		setRestoreStatus(t, ctx, ns, d.Name, func(s *v1alpha1.RestoreJobStatus) {
			now := metav1.Now()
			s.Phase, s.CompletionTime, s.Preview = v1alpha1.RestorePhaseCompleted, &now, testPreview
		})
		if dryOnly {
			return
		}
		r := find(false)
		if r == nil {
			t.Error("no restore was created")
			return
		}
		start := metav1.Now()
		setRestoreStatus(t, ctx, ns, r.Name, func(s *v1alpha1.RestoreJobStatus) {
			s.Phase, s.StartTime, s.Progress = v1alpha1.RestorePhaseRunning, &start, &v1alpha1.Progress{BytesDone: 1 << 19, BytesTotal: 1 << 20}
		})
		if !poll(ctx, func() bool { return shown("50%") }) {
			t.Error("the restore's progress was not shown")
		}
		setRestoreStatus(t, ctx, ns, r.Name, func(s *v1alpha1.RestoreJobStatus) {
			now := metav1.Now()
			s.Phase, s.CompletionTime, s.Progress, s.Preview = v1alpha1.RestorePhaseCompleted, &now, nil, testPreview
			s.Stats, s.Verified = &v1alpha1.RestoreStats{Files: 2, Bytes: 1 << 20}, true
		})
	}()
	return func() []v1alpha1.RestoreJob { wg.Wait(); return seen }
}

func TestRestore(t *testing.T) {
	requireCluster(t)
	ctx := testContext(t)
	setupRestore(t, ctx, "restore")

	// --yes: the dry run, its preview, then the restore.
	var stdout syncBuffer
	wait := answerRestores(t, ctx, "restore", false, stdout.shows)
	errOut, code := pluginTo(ctx, nil, &stdout, "restore", "done", "--to", "data", "--mode", "Mirror", "--path", "conf", "--yes", "-n", "restore")
	seen := wait()
	out := stdout.String()
	t.Logf("restore --yes:\n%s%s", out, errOut)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if len(seen) != 2 {
		t.Fatalf("saw %d RestoreJobs", len(seen))
	}
	for i, r := range seen {
		if r.Spec.BackupName != "done" || r.Spec.Target.PVCName != "data" || r.Spec.Mode != v1alpha1.RestoreModeMirror ||
			len(r.Spec.Paths) != 1 || r.Spec.Paths[0] != "conf" || r.Spec.DryRun != (i == 0) {
			t.Errorf("RestoreJob %d: %+v", i, r.Spec)
		}
	}
	wantOut := regexp.MustCompile(`(?s)restorejob/done-preview-\w+ created \(dry run of backup/done into claim data\)
.*\+ conf/new\.yaml
~ conf/app\.yaml
- conf/old\.yaml
1 to create, 1 to overwrite, 1 to delete
restorejob/done-restore-\w+ created
.*restorejob/done-restore-\w+  50%  512\.0 KiB / 1\.0 MiB
restorejob/done-restore-\w+ Completed: 2 files, 1\.0 MiB written, verified in \d+s
$`)
	if !wantOut.MatchString(out) {
		t.Errorf("output does not match %s", wantOut)
	}
	// The API's warning for a Mirror restore, as kubectl shows it.
	if !strings.Contains(errOut, "Warning: mode Mirror deletes files") {
		t.Errorf("no warning on stderr: %q", errOut)
	}

	// No terminal and no --yes: the preview, then a refusal; no restore.
	setupRestore(t, ctx, "restore-ask")
	wait = answerRestores(t, ctx, "restore-ask", true, nil)
	out, errOut, code = plugin(ctx, strings.NewReader("y\n"), "restore", "done", "--to", "data", "-n", "restore-ask")
	wait()
	if code != exitError || !strings.Contains(errOut, "not restoring: confirmation needs a terminal on stdin") || !strings.Contains(out, "1 to create, 1 to overwrite, 1 to delete") {
		t.Errorf("without a terminal: exit %d\n%s%s", code, out, errOut)
	}
	l, err := backupClient.BackupV1alpha1().RestoreJobs("restore-ask").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 1 || !l.Items[0].Spec.DryRun {
		t.Errorf("RestoreJobs after a refused confirmation: %d, want the dry run only", len(l.Items))
	}

	// -o json: the two RestoreJobs as a List; the text on stderr.
	setupRestore(t, ctx, "restore-json")
	var jsonErr syncBuffer
	wait = answerRestores(t, ctx, "restore-json", false, jsonErr.shows)
	var jsonOut bytes.Buffer
	code = run(ctx, []string{"restore", "done", "--to", "data", "--yes", "-n", "restore-json", "-o", "json",
		"--kubeconfig", controlPlane.AdminKubeconfig, "--poll-interval", "50ms"}, nil, &jsonOut, &jsonErr)
	wait()
	out, errOut = jsonOut.String(), jsonErr.String()
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var list struct {
		Kind  string                `json:"kind"`
		Items []v1alpha1.RestoreJob `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if list.Kind != "List" || len(list.Items) != 2 || !list.Items[0].Spec.DryRun || list.Items[1].Spec.DryRun ||
		list.Items[0].Status.Preview == nil || list.Items[1].Status.Phase != v1alpha1.RestorePhaseCompleted || list.Items[1].Kind != "RestoreJob" {
		t.Errorf("-o json: %s", out)
	}

	// The API's refusals, as they are: a Backup that does not exist (422)
	// and a path the API does not accept (422 on spec.paths[0]).
	_, errOut, code = plugin(ctx, nil, "restore", "nope", "--to", "data", "--yes", "-n", "restore")
	if code != exitError || !regexp.MustCompile(`error: .*nope`).MatchString(errOut) {
		t.Errorf("a missing Backup: exit %d, stderr %q", code, errOut)
	}
	t.Logf("missing backup: %s", errOut)
	_, errOut, code = plugin(ctx, nil, "restore", "done", "--to", "data", "--path", "/etc", "--yes", "-n", "restore")
	if code != exitError || !strings.Contains(errOut, "spec.paths[0]") {
		t.Errorf("an absolute path: exit %d, stderr %q", code, errOut)
	}
	t.Logf("absolute path: %s", errOut)
}

// TestProgressBarOnTerminal runs `now --wait` with stdout on a
// pseudo-terminal: the bar is drawn again in place (carriage return, erase
// line) as status.progress moves.
func TestProgressBarOnTerminal(t *testing.T) {
	requireCluster(t)
	ctx := testContext(t)
	createNamespace(t, ctx, "tty")
	createPolicy(t, ctx, "tty", "db", "0 2 * * *")

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var mu sync.Mutex
	var screen bytes.Buffer
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	shown := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(screen.String(), s)
	}

	// Each step waits until the terminal shows the previous one.
	wait := answerTrigger(t, ctx, "tty", "db", func(name string) {
		start := metav1.Now()
		for _, pct := range []int64{10, 40, 70} {
			setBackupStatus(t, ctx, "tty", name, func(s *v1alpha1.BackupStatus) {
				s.Phase, s.StartTime, s.Progress = v1alpha1.BackupPhaseRunning, &start, &v1alpha1.Progress{BytesDone: pct << 20, BytesTotal: 100 << 20}
			})
			if !poll(ctx, func() bool { return shown(fmt.Sprintf("%d%%", pct)) }) {
				t.Errorf("%d%% not shown", pct)
				return
			}
		}
		setBackupStatus(t, ctx, "tty", name, func(s *v1alpha1.BackupStatus) {
			now := metav1.Now()
			s.Phase, s.CompletionTime, s.Progress, s.Stats = v1alpha1.BackupPhaseCompleted, &now, nil, &v1alpha1.BackupStats{Files: 1, Bytes: 100 << 20}
		})
	})
	var errOut bytes.Buffer
	code := run(ctx, []string{"now", "db", "-n", "tty", "--wait", "--kubeconfig", controlPlane.AdminKubeconfig, "--poll-interval", "50ms"}, tty, tty, &errOut)
	wait()
	tty.Close()
	<-readDone
	out := screen.String()
	t.Logf("terminal: %q", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	// The redraws: each starts with \r and erase-line; their percentages rise.
	var pcts []int
	for _, seg := range strings.Split(out, "\r\x1b[K")[1:] {
		if m := regexp.MustCompile(`^backup/db-manual-\w+ Running \[[=> ]{30}\] +(\d+)%  \d+\.\d MiB / 100\.0 MiB`).FindStringSubmatch(seg); m != nil {
			p, _ := strconv.Atoi(m[1])
			pcts = append(pcts, p)
			if strings.Contains(seg, "\n") {
				t.Errorf("a bar line ends with a newline: %q", seg)
			}
		}
	}
	var distinct []int
	for i, p := range pcts {
		if i > 0 && p < pcts[i-1] {
			t.Errorf("percentages go back: %v", pcts)
		}
		if len(distinct) == 0 || distinct[len(distinct)-1] != p {
			distinct = append(distinct, p)
		}
	}
	if fmt.Sprint(distinct) != "[10 40 70]" {
		t.Errorf("bars drawn at %v, want 10, 40 and 70 in place", pcts)
	}
	if !regexp.MustCompile(`\r\x1b\[Kbackup/db-manual-\w+ Completed: 1 files, 100\.0 MiB`).MatchString(out) {
		t.Errorf("no final line after the bar")
	}
}

// filesRefusal is the message the files subresource answers a GET of path
// of backup in ns with, through client.
func filesRefusal(t *testing.T, ctx context.Context, client versioned.Interface, ns, backup, path string) string {
	t.Helper()
	req := client.BackupV1alpha1().RESTClient().Get().Namespace(ns).Resource("backups").Name(backup).SubResource("files")
	if path != "" {
		req = req.Suffix(strings.Split(path, "/")...)
	}
	err := req.Do(ctx).Error()
	status, ok := err.(apierrors.APIStatus)
	if !ok {
		t.Fatalf("GET files/%s of backup/%s: %v, want the server's refusal", path, backup, err)
	}
	return status.Status().Message
}

// TestFilesRefusals: ls and cp show the files subresource's refusals as the
// server words them, with exit code 2, and write nothing: a Backup that is
// not Completed (409), one that does not exist (404), a user who may read
// Backups but not backups/files (403). A path with ".." is refused before
// any request.
func TestFilesRefusals(t *testing.T) {
	requireCluster(t)
	ctx := testContext(t)
	createNamespace(t, ctx, "files")
	if _, err := backupClient.BackupV1alpha1().Backups("files").Create(ctx, &v1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "pending"}, Spec: v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{PVCName: "data"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	notCompleted := filesRefusal(t, ctx, backupClient, "files", "pending", "etc")
	if !strings.Contains(notCompleted, "not Completed") {
		t.Errorf("the server's 409 does not say the Backup is not Completed: %q", notCompleted)
	}
	notFound := filesRefusal(t, ctx, backupClient, "files", "nope", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ls", "pending", "etc"}, notCompleted},
		{[]string{"ls", "pending", "etc", "-o", "json"}, notCompleted},
		{[]string{"cp", "pending:etc", filepath.Join(dir, "etc")}, notCompleted},
		{[]string{"cp", "pending:etc/app.conf", "-"}, notCompleted},
		{[]string{"ls", "nope"}, notFound},
		{[]string{"cp", "nope:", filepath.Join(dir, "all")}, notFound},
		{[]string{"ls", "pending", "etc/../../x"}, `path "etc/../../x": ".." is not allowed`},
		{[]string{"cp", "pending", dir}, `the source "pending" is not BACKUP:PATH`},
	} {
		out, errOut, code := plugin(ctx, nil, append(c.args, "-n", "files")...)
		if code != exitError || !strings.HasPrefix(errOut, "error: "+c.want) || strings.Count(errOut, "\n") != 1 || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and error: %s", c.args, code, out, errOut, c.want)
		}
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Errorf("refused copies wrote %d entries into %s", len(names), dir)
	}

	bob, err := controlPlane.NewUser("bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubeClient.RbacV1().Roles("files").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "backups-only"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{v1alpha1.SchemeGroupVersion.Group}, Resources: []string{"backups"}, Verbs: []string{"get", "list"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kubeClient.RbacV1().RoleBindings("files").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bob"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "backups-only"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "bob"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", bob)
	if err != nil {
		t.Fatal(err)
	}
	forbidden := filesRefusal(t, ctx, versioned.NewForConfigOrDie(cfg), "files", "pending", "etc")
	if !strings.Contains(forbidden, "backups/files") {
		t.Errorf("the server's 403 does not name backups/files: %q", forbidden)
	}
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"ls", "pending", "etc", "-n", "files", "--kubeconfig", bob}, nil, &out, &errOut)
	if code != exitError || errOut.String() != "error: "+forbidden+"\n" {
		t.Errorf("ls as bob: exit %d, stderr %q; want exit 2 and error: %s", code, errOut.String(), forbidden)
	}
}

// TestFilesRetryUnavailable: a Completed Backup whose reader pod never gets
// ready (this cluster has no node) is answered 503 with a Retry-After once
// the server gave up waiting for the pod; ls tries again after the
// Retry-After, says so, and gives up with the server's message once
// --retry-for has passed.
func TestFilesRetryUnavailable(t *testing.T) {
	requireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	createNamespace(t, ctx, "files-503")
	// No controller-manager makes the namespace's ServiceAccount here; the
	// reader pod needs it to be admitted.
	if _, err := kubeClient.CoreV1().ServiceAccounts("files-503").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := backupClient.BackupV1alpha1().Backups("files-503").Create(ctx, &v1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "done"}, Spec: v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{PVCName: "data"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setBackupStatus(t, ctx, "files-503", "done", func(s *v1alpha1.BackupStatus) {
		s.Phase, s.SnapshotID, s.Stats = v1alpha1.BackupPhaseCompleted, strings.Repeat("ab", 32), &v1alpha1.BackupStats{Files: 1, Bytes: 1}
	})

	// The first answer comes when the server stops waiting for the pod (45s);
	// the retry budget is counted from the start, so it allows one more try,
	// after the Retry-After.
	start := time.Now()
	var first time.Duration
	errOut := &syncBuffer{}
	done := make(chan int)
	go func() {
		var out bytes.Buffer
		done <- run(ctx, []string{"ls", "done", "-n", "files-503", "--kubeconfig", controlPlane.AdminKubeconfig, "--retry-for", "1m"}, nil, &out, errOut)
	}()
	code := -1
	if !poll(ctx, func() bool {
		select {
		case code = <-done:
			return true
		default:
			return errOut.shows("trying again")
		}
	}) || code != -1 {
		t.Fatalf("no 503 within %s (exit %d): %q", time.Since(start), code, errOut.String())
	}
	first = time.Since(start)
	code = <-done
	took := time.Since(start)
	t.Logf("first answer after %s, gave up after %s:\n%s", first, took, errOut.String())
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if code != exitError || len(lines) != 2 {
		t.Fatalf("exit %d with %d lines on stderr, want 2 and two lines (one retry, then the error)", code, len(lines))
	}
	m := regexp.MustCompile(`^(.*the reader pod .* is not ready yet.*); trying again in 5s$`).FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("the retry line %q does not give the server's 503 and its Retry-After of 5s", lines[0])
	}
	if want := "error: " + m[1] + " (tried again for 1m; --retry-for waits longer)"; lines[1] != want {
		t.Errorf("the last line %q, want %q", lines[1], want)
	}
	// The second try starts at most 5s after the first answer, and is the last.
	if took < first+5*time.Second || took > 2*first+15*time.Second {
		t.Errorf("gave up after %s with the first answer after %s: want one more try, 5s later", took, first)
	}
}
