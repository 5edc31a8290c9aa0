package apiserver_test

import (
	"context"
	"strings"
	"testing"

	"example.com/backup-operator/hack/cluster"
)

// The files subresource refuses, before any reader pod is started: a user
// who may get backups but not backups/files (403), a path with ".." (400),
// and a Backup that is not Completed (409). Reading itself needs a node and
// is tested end to end (hack/e2e TestBackupFiles).
func TestFilesSubresourceRefusals(t *testing.T) {
	requireCluster(t)
	ns := "files-refusals"
	createNamespace(t, ns)
	if out, err := kubectlIn(t, `apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: pending}
spec: {target: {pvcName: data}}
`, "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	raw := "/apis/backup.example.com/v1alpha1/namespaces/" + ns + "/backups/pending/files"
	get := func(kubeconfig, path string) string {
		t.Helper()
		out, err := cluster.KubectlAs(context.Background(), kubeconfig, "get", "--raw", raw+path, "-v=6")
		if err == nil {
			t.Fatalf("GET %s succeeded:\n%s", path, out)
		}
		return string(out)
	}
	if out := get(controlPlane.AdminKubeconfig, "/etc"); !strings.Contains(out, " 409 ") || !strings.Contains(out, "not Completed") {
		t.Errorf("files of a Backup that is not Completed:\n%s", lastLines(out, 2))
	}
	if out := get(controlPlane.AdminKubeconfig, "/etc/%2e%2e/passwd"); !strings.Contains(out, " 400 ") || !strings.Contains(out, `without ".."`) {
		t.Errorf(`a path with "..":`+"\n%s", lastLines(out, 2))
	}

	bob, err := controlPlane.NewUser("bob")
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, "create", "role", "backups-only", "-n", ns, "--verb=get,list", "--resource=backups.backup.example.com")
	kubectl(t, "create", "rolebinding", "bob", "-n", ns, "--role=backups-only", "--user=bob")
	if out, err := cluster.KubectlAs(context.Background(), bob, "get", "backups", "-n", ns, "pending"); err != nil {
		t.Fatalf("bob cannot get the Backup: %v\n%s", err, out)
	}
	if out := get(bob, "/etc"); !strings.Contains(out, " 403 ") || !strings.Contains(out, `"backups/files"`) && !strings.Contains(out, "backups/files") {
		t.Errorf("bob, without backups/files:\n%s", lastLines(out, 2))
	}
}
