package apiserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"example.com/backup-operator/hack/cluster"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/generated/clientset/versioned"
)

const canonicalPolicy = `apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata:
  name: database-backups
spec:
  schedule: "0 2 * * *" # Daily at 2 AM
  target:
    pvcName: postgres-data
    namespace: production
  retention:
    keepLast: 7
`

func clientset(t *testing.T) *versioned.Clientset {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", controlPlane.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return versioned.NewForConfigOrDie(cfg)
}

func kubectlIn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	out, err := cluster.KubectlStdin(context.Background(), controlPlane.AdminKubeconfig, stdin, args...)
	return string(out), err
}

func createNamespace(t *testing.T, name string) {
	t.Helper()
	kubectl(t, "create", "namespace", name)
	t.Cleanup(func() { _, _ = controlPlane.Kubectl(context.Background(), "delete", "namespace", name, "--wait=false") })
}

func TestAPIResourcesDiscovery(t *testing.T) {
	requireCluster(t)
	out := kubectl(t, "api-resources", "--api-group=backup.example.com", "--no-headers", "-o", "wide")
	want := map[string]string{"backuppolicies": "bp,bpol", "backups": "bk", "restorejobs": "rj,restore"}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("want %d resources, got:\n%s", len(want), out)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		// NAME SHORTNAMES APIVERSION NAMESPACED KIND VERBS CATEGORIES
		if len(f) < 6 || want[f[0]] != f[1] || f[2] != "backup.example.com/v1alpha1" || f[3] != "true" {
			t.Errorf("unexpected discovery line %q", line)
			continue
		}
		for _, verb := range []string{"create", "delete", "get", "list", "patch", "update", "watch"} {
			if !strings.Contains(","+f[5]+",", ","+verb+",") {
				t.Errorf("%s lacks verb %s: %s", f[0], verb, f[5])
			}
		}
	}
}

func TestCanonicalExampleAndColumns(t *testing.T) {
	requireCluster(t)
	ns := "canonical"
	createNamespace(t, ns)
	if out, err := kubectlIn(t, canonicalPolicy, "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("canonical example refused: %v\n%s", err, out)
	}
	out := kubectl(t, "get", "backuppolicies", "-n", ns)
	header := strings.Fields(strings.Split(out, "\n")[0])
	if strings.Join(header, " ") != "NAME SCHEDULE SUSPEND TARGET REPOSITORY LAST SCHEDULE LAST SUCCESS AGE" {
		t.Errorf("unexpected columns: %q", out)
	}
	if !strings.Contains(out, "database-backups") || !strings.Contains(out, "0 2 * * *") || !strings.Contains(out, "production/postgres-data") || !strings.Contains(out, "backup-repo") {
		t.Errorf("row lacks schedule or target:\n%s", out)
	}
	// Defaults filled by the server.
	got, err := clientset(t).BackupV1alpha1().BackupPolicies(ns).Get(context.Background(), "database-backups", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.ConcurrencyPolicy != v1alpha1.ForbidConcurrent || got.Spec.Storage.PVCName != "backup-repo" ||
		got.Spec.Retention.KeepFailed == nil || *got.Spec.Retention.KeepFailed != 1 || got.Spec.Target.Namespace != "production" {
		t.Errorf("defaults not applied: %+v", got.Spec)
	}

}

func TestTablesOfBackupsAndRestores(t *testing.T) {
	requireCluster(t)
	ns := "tables"
	createNamespace(t, ns)
	if out, err := kubectlIn(t, `apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: manual-1}
spec: {target: {pvcName: data}}
`, "create", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	kubectl(t, "patch", "backup", "manual-1", "-n", ns, "--subresource=status", "--type=merge",
		"-p", `{"status":{"phase":"Completed","stats":{"bytes":1572864}}}`)
	if out, err := kubectlIn(t, `apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: restore-1}
spec: {backupName: manual-1, target: {pvcName: copy, newPVC: {}}, dryRun: true}
`, "create", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out := kubectl(t, "get", "backups", "-n", ns)
	if h := strings.Join(strings.Fields(strings.Split(out, "\n")[0]), " "); h != "NAME POLICY PVC PHASE SIZE DURATION AGE" {
		t.Errorf("backup columns: %q", h)
	}
	if !strings.Contains(out, "tables/data") || !strings.Contains(out, "1.5Mi") || !strings.Contains(out, "Completed") {
		t.Errorf("backup row lacks its PVC:\n%s", out)
	}
	out = kubectl(t, "get", "rj", "-n", ns)
	if h := strings.Join(strings.Fields(strings.Split(out, "\n")[0]), " "); h != "NAME BACKUP TARGET MODE PHASE WRITTEN AGE" {
		t.Errorf("restore columns: %q", h)
	}
	if !strings.Contains(out, "Merge (dry run)") {
		t.Errorf("restore row lacks the defaulted mode:\n%s", out)
	}
}

func TestExplain(t *testing.T) {
	requireCluster(t)
	// kubectl wraps the text; compare with whitespace collapsed.
	out := strings.Join(strings.Fields(kubectl(t, "explain", "backuppolicy.spec.retention")), " ")
	for _, want := range []string{"keepLast", "keepDaily", "keepFailed", "newest N successful Backups", "At least one of"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain lacks %q:\n%s", want, out)
		}
	}
	out = kubectl(t, "explain", "restorejob.spec.dryRun")
	if !strings.Contains(out, "preview") {
		t.Errorf("kubectl explain restorejob.spec.dryRun:\n%s", out)
	}
}

func TestServerSideApply(t *testing.T) {
	requireCluster(t)
	ns := "ssa"
	createNamespace(t, ns)
	apply := func(doc string) {
		t.Helper()
		if out, err := kubectlIn(t, doc, "apply", "--server-side", "--field-manager=team", "-n", ns, "-f", "-"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	rv := func() string {
		return kubectl(t, "get", "bp", "database-backups", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")
	}
	apply(canonicalPolicy)
	first := rv()
	apply(canonicalPolicy)
	if second := rv(); second != first {
		t.Errorf("identical server-side apply changed the object: resourceVersion %s -> %s", first, second)
	}
	apply(strings.Replace(canonicalPolicy, "keepLast: 7", "keepLast: 9", 1))
	got, err := clientset(t).BackupV1alpha1().BackupPolicies(ns).Get(context.Background(), "database-backups", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Spec.Retention.KeepLast != 9 {
		t.Errorf("update by apply lost: keepLast=%d", *got.Spec.Retention.KeepLast)
	}
	if got.Generation != 2 {
		t.Errorf("generation = %d after one spec change, want 2", got.Generation)
	}
	managers := map[string]bool{}
	for _, mf := range got.ManagedFields {
		managers[mf.Manager] = true
	}
	if !managers["team"] {
		t.Errorf("managedFields lack the apply manager: %+v", got.ManagedFields)
	}
}

func TestInvalidObjectsAreRefusedWithTheField(t *testing.T) {
	requireCluster(t)
	ns := "invalid"
	createNamespace(t, ns)
	cases := []struct {
		name, from, to, field string
	}{
		{"invalid cron", `"0 2 * * *"`, `"61 2 * * *"`, "spec.schedule"},
		{"negative keepLast", "keepLast: 7", "keepLast: -1", "spec.retention.keepLast"},
		{"unknown time zone", "retention:", "timeZone: Mars/Olympus\n  retention:", "spec.timeZone"},
		{"no keep rule", "keepLast: 7", "keepLast: 0", "spec.retention"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(canonicalPolicy, tc.from, tc.to, 1)
			out, err := kubectlIn(t, doc, "apply", "-n", ns, "-f", "-", "-v=6")
			if err == nil {
				t.Fatalf("accepted:\n%s", doc)
			}
			if !strings.Contains(out, "422") || !strings.Contains(out, tc.field+":") {
				t.Errorf("want HTTP 422 naming %s, got:\n%s", tc.field, lastLines(out, 3))
			}
		})
	}
	if out := kubectl(t, "get", "bp", "-n", ns, "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("refused objects were stored: %s", out)
	}

	t.Run("Backup spec is immutable", func(t *testing.T) {
		c := clientset(t).BackupV1alpha1().Backups(ns)
		b, err := c.Create(context.Background(), &v1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{Name: "b1"},
			Spec:       v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{PVCName: "data"}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b.Spec.Target.PVCName = "other"
		_, err = c.Update(context.Background(), b, metav1.UpdateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec: Invalid value: field is immutable") {
			t.Fatalf("want 422 on spec, got %v", err)
		}
		out, err := controlPlane.Kubectl(context.Background(), "patch", "backup", "b1", "-n", ns, "--type=merge", "-p", `{"spec":{"target":{"pvcName":"x"}}}`)
		if err == nil || !strings.Contains(string(out), "spec: Invalid value: field is immutable: a Backup records what was backed up; create a new Backup instead") {
			t.Errorf("kubectl patch of spec: %v\n%s", err, out)
		}
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestStatusAndSpecAreWrittenApart(t *testing.T) {
	requireCluster(t)
	ns := "split"
	createNamespace(t, ns)
	ctx := context.Background()
	c := clientset(t).BackupV1alpha1().Backups(ns)
	b, err := c.Create(ctx, &v1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "b1"},
		Spec:       v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{PVCName: "data"}},
		Status:     v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseCompleted},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Status.Phase != "" {
		t.Errorf("create kept a client-written status: %+v", b.Status)
	}
	// A status write that also changes spec keeps the spec.
	b.Status.Phase = v1alpha1.BackupPhaseRunning
	b.Spec.Target.PVCName = "sneaky"
	b, err = c.UpdateStatus(ctx, b, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Spec.Target.PVCName != "data" || b.Status.Phase != v1alpha1.BackupPhaseRunning {
		t.Errorf("status update: spec=%q phase=%q", b.Spec.Target.PVCName, b.Status.Phase)
	}
	// A main-resource write that changes status keeps the stored status.
	p, err := clientset(t).BackupV1alpha1().BackupPolicies(ns).Create(ctx, &v1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: v1alpha1.BackupPolicySpec{Schedule: "@daily", Target: v1alpha1.VolumeTarget{PVCName: "data"},
			Retention: v1alpha1.RetentionPolicy{KeepLast: ptr(int32(3))}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.MissedRuns = 5
	p.Spec.Suspend = true
	p, err = clientset(t).BackupV1alpha1().BackupPolicies(ns).Update(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.MissedRuns != 0 || !p.Spec.Suspend {
		t.Errorf("spec update: suspend=%v missedRuns=%d", p.Spec.Suspend, p.Status.MissedRuns)
	}
	// Invalid status values are refused on /status too.
	b.Status.Phase = "Exploded"
	if _, err := c.UpdateStatus(ctx, b, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "status.phase") {
		t.Errorf("want 422 on status.phase, got %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestWatchAndFieldSelectors(t *testing.T) {
	requireCluster(t)
	ns := "watching"
	createNamespace(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := clientset(t).BackupV1alpha1().Backups(ns)
	create := func(name string) {
		t.Helper()
		if _, err := c.Create(ctx, &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{PVCName: "data"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	next := func(seen <-chan string) string {
		t.Helper()
		select {
		case line := <-seen:
			return line
		case <-ctx.Done():
			t.Fatal("kubectl get --watch printed nothing")
			return ""
		}
	}
	// One object exists before the watch starts: kubectl prints it first, which
	// shows the watch is established; the next line must be the create.
	create("done")
	watch := exec.CommandContext(ctx, "kubectl", "--kubeconfig="+controlPlane.AdminKubeconfig, "get", "backups", "-n", ns, "--watch", "-o", "name")
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = watch.Wait() }()
	seen := make(chan string, 10)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			seen <- s.Text()
		}
	}()
	if line := next(seen); line != "backup.backup.example.com/done" {
		t.Fatalf("watch listed %q first", line)
	}
	create("running")
	if line := next(seen); line != "backup.backup.example.com/running" {
		t.Errorf("watch saw %q, want the create of running", line)
	}
	for name, phase := range map[string]v1alpha1.BackupPhase{"done": v1alpha1.BackupPhaseCompleted, "running": v1alpha1.BackupPhaseRunning} {
		b, err := c.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b.Status.Phase = phase
		if _, err := c.UpdateStatus(ctx, b, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	out := kubectl(t, "get", "backups", "-n", ns, "--field-selector=status.phase=Completed", "-o", "name")
	if strings.TrimSpace(out) != "backup.backup.example.com/done" {
		t.Errorf("field selector status.phase=Completed returned %q", out)
	}
	out = kubectl(t, "get", "backups", "-n", ns, "--field-selector=spec.target.pvcName=data,status.phase!=Completed", "-o", "name")
	if strings.TrimSpace(out) != "backup.backup.example.com/running" {
		t.Errorf("field selector on spec.target.pvcName returned %q", out)
	}
	if out, err := controlPlane.Kubectl(ctx, "get", "backups", "-n", ns, "--field-selector=spec.bogus=x"); err == nil || !strings.Contains(string(out), "field label not supported") {
		t.Errorf("unknown field selector: %v %s", err, out)
	}

	// The watch cache indexes these fields and keys watch events by
	// spec.policyName: a selector on them still sees exactly its namespace's
	// matching objects.
	createNamespace(t, ns+"-other")
	if _, err := clientset(t).BackupV1alpha1().Backups(ns+"-other").Create(ctx, &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"},
		Spec: v1alpha1.BackupSpec{PolicyName: "nightly", Target: v1alpha1.VolumeTarget{PVCName: "data"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, metav1.ListOptions{FieldSelector: "spec.policyName=nightly"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for _, b := range []struct{ name, policy string }{{"weekly-1", "weekly"}, {"nightly-1", "nightly"}} {
		if _, err := c.Create(ctx, &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: b.name},
			Spec: v1alpha1.BackupSpec{PolicyName: b.policy, Target: v1alpha1.VolumeTarget{PVCName: "data"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case ev := <-w.ResultChan():
		if b, ok := ev.Object.(*v1alpha1.Backup); !ok || b.Name != "nightly-1" {
			t.Errorf("watch on spec.policyName=nightly saw %s %v first, want nightly-1", ev.Type, ev.Object)
		}
	case <-ctx.Done():
		t.Fatal("watch on spec.policyName=nightly saw nothing")
	}
	out = kubectl(t, "get", "backups", "-n", ns, "--field-selector=spec.policyName=nightly", "-o", "name")
	if strings.TrimSpace(out) != "backup.backup.example.com/nightly-1" {
		t.Errorf("field selector spec.policyName=nightly returned %q", out)
	}
	out = kubectl(t, "get", "backups", "-n", ns, "--field-selector=spec.target.pvcName=data", "-o", "name")
	if want := "backup.backup.example.com/done\nbackup.backup.example.com/nightly-1\nbackup.backup.example.com/running\nbackup.backup.example.com/weekly-1"; strings.TrimSpace(out) != want {
		t.Errorf("field selector spec.target.pvcName=data returned %q, want %q", out, want)
	}
}

func TestOnDemandBackupFromPolicy(t *testing.T) {
	requireCluster(t)
	ns := "ondemand"
	createNamespace(t, ns)
	if out, err := kubectlIn(t, canonicalPolicy, "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := kubectlIn(t, `{"apiVersion":"backup.example.com/v1alpha1","kind":"Backup","metadata":{"name":"now"},"spec":{"policyName":"database-backups"}}`,
		"create", "-n", ns, "-f", "-", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var b v1alpha1.Backup
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatal(err)
	}
	if b.Spec.Target.PVCName != "postgres-data" || b.Spec.Target.Namespace != "production" || b.Labels["backup.example.com/policy"] != "database-backups" {
		t.Errorf("on-demand Backup not filled from its policy: %+v labels=%v", b.Spec, b.Labels)
	}
	out, err = kubectlIn(t, `{"apiVersion":"backup.example.com/v1alpha1","kind":"Backup","metadata":{"name":"orphan"},"spec":{"policyName":"missing"}}`,
		"create", "-n", ns, "-f", "-")
	if err == nil || !strings.Contains(out, "spec.policyName: Not found") {
		t.Errorf("Backup of a missing policy: %v\n%s", err, out)
	}
}

// Runs last among the API tests (alphabetical order is not guaranteed, so it
// re-checks everything it needs itself).
func TestObjectsSurviveRestart(t *testing.T) {
	requireCluster(t)
	ns := "durable"
	createNamespace(t, ns)
	if out, err := kubectlIn(t, canonicalPolicy, "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	before := kubectl(t, "get", "bp", "database-backups", "-n", ns, "-o", "jsonpath={.metadata.uid}")
	if err := server.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := controlPlane.WaitAPIServiceAvailable(context.Background(), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	var after string
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		out, err := controlPlane.Kubectl(context.Background(), "get", "bp", "database-backups", "-n", ns, "-o", "jsonpath={.metadata.uid}")
		if err == nil {
			after = string(out)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if after != before {
		t.Fatalf("BackupPolicy lost across a restart: uid before %q, after %q", before, after)
	}
}
