package apiserver_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/backup-operator/hack/cluster"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/generated/clientset/versioned"
)

// longRunningWatches matches the server's gauge of open watch requests of
// one of our resources.
var longRunningWatches = regexp.MustCompile(`(?m)^apiserver_longrunning_requests\{([^}]*)\} ([0-9.e+]+)$`)

// The controllers read Backups and RestoreJobs from the server's in-process
// informers, the ones the restore checks read: once they have acted on a
// Backup, no watch of either resource is open through the server's HTTP
// path (a loopback informer of their own would hold one, and a second copy
// of every object). Those informers drop managedFields; the controllers'
// writes from them still keep every manager's entry.
func TestControllersReadTheInProcessInformers(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	ns := "in-process-informers"
	createNamespace(t, ns)
	bin := filepath.Join(filepath.Dir(server.Dir), "bin", "backup-apiserver")
	s, err := controlPlane.StartBackupAPIServerWith(ctx, cluster.BackupAPIServerOptions{
		Bin: bin, Dir: filepath.Join(t.TempDir(), "server"), Unregistered: true,
		Args: []string{"--controllers=true", "--leader-elect-resource-namespace=" + ns},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log (end):\n%s", s.Process.Tail(40))
		}
	})
	cfg, err := s.ClientConfig(controlPlane.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client := versioned.NewForConfigOrDie(cfg)

	// No claim "data" exists: the controllers add their finalizer, then fail the Backup.
	if _, err := client.BackupV1alpha1().Backups(ns).Create(ctx, &v1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "nothing-to-back-up"},
		Spec:       v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{PVCName: "data"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *v1alpha1.Backup
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if got, err = client.BackupV1alpha1().Backups(ns).Get(ctx, "nothing-to-back-up", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase == v1alpha1.BackupPhaseFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controllers did not fail the Backup within a minute: status %+v", got.Status)
		}
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionFailed); c == nil || c.Reason != "TargetNotFound" {
		t.Errorf("conditions %+v; want Failed with reason TargetNotFound", got.Status.Conditions)
	}

	// Every writer's managedFields entry is kept: the creator's spec, the
	// controllers' finalizer and their status.
	var spec, finalizers, status bool
	for _, mf := range got.ManagedFields {
		if mf.FieldsV1 == nil {
			continue
		}
		fields := string(mf.FieldsV1.Raw)
		spec = spec || mf.Subresource == "" && strings.Contains(fields, `"f:spec"`)
		finalizers = finalizers || mf.Subresource == "" && strings.Contains(fields, `"f:finalizers"`)
		status = status || mf.Subresource == "status" && strings.Contains(fields, `"f:phase"`)
	}
	if !spec || !finalizers || !status {
		t.Errorf("managedFields lack an entry (spec %t, finalizers %t, status %t): %+v", spec, finalizers, status, got.ManagedFields)
	}

	metrics, err := client.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, m := range longRunningWatches.FindAllStringSubmatch(string(metrics), -1) {
		labels := m[1]
		if !strings.Contains(labels, `verb="WATCH"`) {
			continue
		}
		seen = true
		for _, resource := range []string{"backups", "restorejobs"} {
			if strings.Contains(labels, `resource="`+resource+`"`) {
				if n, _ := strconv.ParseFloat(m[2], 64); n != 0 {
					t.Errorf("%s watches of %s open through the server's HTTP path; want none (the controllers read the in-process informer): %s", m[2], resource, labels)
				}
			}
		}
	}
	if !seen {
		t.Errorf("no apiserver_longrunning_requests of WATCH in the server's /metrics; the check above saw nothing")
	}
}
