package apiserver_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// TestBackupInUseSurvivesEveryDelete deletes Backups that RestoreJobs are
// restoring by every way a client can (one by one, the collection, with a
// selector, with a propagation policy) and requires each to be refused with
// advice, leaving the Backups without a deletionTimestamp.
func TestBackupInUseSurvivesEveryDelete(t *testing.T) {
	requireCluster(t)
	ns := "delete-paths"
	setupSafetyNamespace(t, ns) // Backup "done" is Completed; "running" is not
	ctx := context.Background()
	backups := clientset(t).BackupV1alpha1().Backups(ns)

	// "held" has a finalizer, so a delete marks it (deletionTimestamp) rather
	// than removing it: the other way through the store.
	if out, err := kubectlIn(t, `apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: held, finalizers: [test/hold]}
spec: {target: {pvcName: data}}
`, "create", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() {
		_, _ = controlPlane.Kubectl(ctx, "patch", "backup", "held", "-n", ns, "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
	})
	kubectl(t, "patch", "backup", "held", "-n", ns, "--subresource=status", "--type=merge",
		"-p", `{"status":{"phase":"Completed","stats":{"files":1,"bytes":1024}}}`)
	kubectl(t, "label", "backup", "done", "held", "-n", ns, "restore=source")
	kubectl(t, "label", "backup", "held", "-n", ns, "hold=yes")
	for _, doc := range []string{
		restoreJob("from-done", "done", "{pvcName: restored-1, newPVC: {}}", ""),
		restoreJob("from-held", "held", "{pvcName: restored-2, newPVC: {}}", ""),
	} {
		if out, err := kubectlIn(t, doc, "create", "-n", ns, "-f", "-"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	// The check reads the server's informer: wait until it sees both restores.
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range []string{"done", "held"} {
		for {
			out, err := controlPlane.Kubectl(ctx, "delete", "backup", name, "-n", ns, "--dry-run=server")
			if err != nil && strings.Contains(string(out), "is restoring this Backup") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the server does not see the restore of %s: %v\n%s", name, err, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	collection := "/apis/backup.example.com/v1alpha1/namespaces/" + ns + "/backups"
	background, foreground := metav1.DeletePropagationBackground, metav1.DeletePropagationForeground
	cases := []struct {
		name   string
		delete func() (string, error)
	}{
		// One by one: kubectl deletes each object it lists.
		{"client-go Delete, orphan", func() (string, error) {
			orphan := metav1.DeletePropagationOrphan
			err := backups.Delete(ctx, "done", metav1.DeleteOptions{PropagationPolicy: &orphan})
			return fmt.Sprint(err), err
		}},
		{"kubectl delete backups --all", func() (string, error) {
			out, err := controlPlane.Kubectl(ctx, "delete", "backups", "--all", "-n", ns, "--wait=false")
			return string(out), err
		}},
		{"kubectl delete backups -l", func() (string, error) {
			out, err := controlPlane.Kubectl(ctx, "delete", "backups", "-l", "restore=source", "-n", ns, "--wait=false")
			return string(out), err
		}},
		// The collection: genericregistry.Store.DeleteCollection.
		{"kubectl delete --raw of the collection with a selector", func() (string, error) {
			out, err := controlPlane.Kubectl(ctx, "delete", "--raw", collection+"?labelSelector=hold%3Dyes")
			return string(out), err
		}},
		{"kubectl delete --raw of the collection", func() (string, error) {
			out, err := controlPlane.Kubectl(ctx, "delete", "--raw", collection)
			return string(out), err
		}},
		{"client-go DeleteCollection", func() (string, error) {
			err := backups.DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &background}, metav1.ListOptions{})
			return fmt.Sprint(err), err
		}},
		{"client-go DeleteCollection, foreground, of the Backup with a finalizer", func() (string, error) {
			err := backups.DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &foreground}, metav1.ListOptions{LabelSelector: "hold=yes"})
			if err != nil && !apierrors.IsConflict(err) {
				t.Errorf("want 409 Conflict, got %v", err)
			}
			return fmt.Sprint(err), err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.delete()
			t.Log(lastLines(out, 2))
			if err == nil {
				t.Errorf("accepted:\n%s", out)
			}
			for _, want := range []string{"is restoring this Backup", "delete the Backup after it finishes (or delete the RestoreJob first)"} {
				if !strings.Contains(out, want) {
					t.Errorf("message lacks %q:\n%s", want, lastLines(out, 3))
				}
			}
			for _, name := range []string{"done", "held"} {
				b, err := backups.Get(ctx, name, metav1.GetOptions{})
				switch {
				case err != nil:
					t.Errorf("Backup %s: %v", name, err)
				case b.DeletionTimestamp != nil:
					t.Errorf("Backup %s is being deleted (deletionTimestamp %s)", name, b.DeletionTimestamp)
				}
			}
		})
	}
}

// TestStatusWriteKeepsMetadata sends a /status PUT that also drops a finalizer,
// changes labels and annotations and replaces the owner: only status changes.
func TestStatusWriteKeepsMetadata(t *testing.T) {
	requireCluster(t)
	ns := "status-meta"
	createNamespace(t, ns)
	ctx := context.Background()
	c := clientset(t).BackupV1alpha1().Backups(ns)
	owner := []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "6b5a2f0e-0000-4000-8000-000000000001"}}
	b, err := c.Create(ctx, &v1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "b1", Labels: map[string]string{"team": "db"}, Annotations: map[string]string{"note": "keep"},
			Finalizers: []string{"test/keep"}, OwnerReferences: owner},
		Spec: v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{PVCName: "data"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = controlPlane.Kubectl(ctx, "patch", "backup", "b1", "-n", ns, "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
	})
	want := b.ObjectMeta

	b.Status.Phase = v1alpha1.BackupPhaseRunning
	b.Finalizers = nil
	b.Labels = map[string]string{"team": "web"}
	b.Annotations = map[string]string{"note": "changed"}
	b.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "thief", UID: "6b5a2f0e-0000-4000-8000-000000000002"}}
	if _, err := c.UpdateStatus(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "b1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != v1alpha1.BackupPhaseRunning {
		t.Errorf("status not written: phase %q", got.Status.Phase)
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"finalizers", got.Finalizers, want.Finalizers},
		{"labels", got.Labels, want.Labels},
		{"annotations", got.Annotations, want.Annotations},
		{"ownerReferences", got.OwnerReferences, want.OwnerReferences},
		{"generation", got.Generation, want.Generation},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("/status changed %s: %v, want %v", f.name, f.got, f.want)
		}
	}
}
