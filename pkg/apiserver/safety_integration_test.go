package apiserver_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"example.com/backup-operator/hack/cluster"
)

// The restore-safety tests build the cluster state a check looks at (claims,
// pods and their owners, Backups in every phase) and then try restores through
// kubectl, as a user would. Without a kubelet or controller-manager here,
// binding and phases are written through /status.

func setupSafetyNamespace(t *testing.T, ns string) {
	t.Helper()
	createNamespace(t, ns)
	// No controller-manager here creates the default service account.
	kubectl(t, "create", "serviceaccount", "default", "-n", ns)
	apply := func(doc string) {
		t.Helper()
		if out, err := kubectlIn(t, doc, "apply", "-n", ns, "-f", "-"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	apply(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: tiny}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: unbound}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: live}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`)
	for pvc, size := range map[string]string{"data": "1Gi", "tiny": "1Mi", "live": "1Gi"} {
		kubectl(t, "patch", "pvc", pvc, "-n", ns, "--subresource=status", "--type=merge",
			"-p", fmt.Sprintf(`{"status":{"phase":"Bound","capacity":{"storage":%q}}}`, size))
	}
	// A Deployment's pod that mounts "live".
	apply(`apiVersion: apps/v1
kind: Deployment
metadata: {name: postgres}
spec:
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec: {containers: [{name: pg, image: postgres}]}
`)
	uid := kubectl(t, "get", "deploy", "postgres", "-n", ns, "-o", "jsonpath={.metadata.uid}")
	apply(fmt.Sprintf(`apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: postgres-6d4f
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: postgres, uid: %s, controller: true}]
spec:
  selector: {matchLabels: {app: postgres, rs: x}}
  template:
    metadata: {labels: {app: postgres, rs: x}}
    spec: {containers: [{name: pg, image: postgres}]}
`, uid))
	rsUID := kubectl(t, "get", "rs", "postgres-6d4f", "-n", ns, "-o", "jsonpath={.metadata.uid}")
	apply(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: postgres-6d4f-x1
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: postgres-6d4f, uid: %s, controller: true}]
spec:
  containers: [{name: pg, image: postgres}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: live}}]
`, rsUID))
	// Backups: one Completed with 100 MiB of data, one still Running of "data".
	apply(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: done}
spec: {target: {pvcName: other}}
---
apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: running}
spec: {target: {pvcName: data}}
`)
	kubectl(t, "patch", "backup", "done", "-n", ns, "--subresource=status", "--type=merge",
		"-p", `{"status":{"phase":"Completed","stats":{"files":3,"bytes":104857600}}}`)
	kubectl(t, "patch", "backup", "running", "-n", ns, "--subresource=status", "--type=merge", "-p", `{"status":{"phase":"Running"}}`)
}

// restoreJob renders a RestoreJob; target is the flow-style target object
// (a bare name means {pvcName: name}), extra more spec fields.
func restoreJob(name, backupName, target string, extra string) string {
	if !strings.HasPrefix(target, "{") {
		target = "{pvcName: " + target + "}"
	}
	return fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: RestoreJob
metadata: {name: %s}
spec: {backupName: %s, target: %s%s}
`, name, backupName, target, extra)
}

// refused creates doc and requires the HTTP code and every part of the message.
func refused(t *testing.T, kubeconfig, ns, doc string, code string, parts ...string) {
	t.Helper()
	out, err := cluster.KubectlStdin(context.Background(), kubeconfig, doc, "create", "-n", ns, "-f", "-", "-v=6")
	if err == nil {
		t.Fatalf("accepted:\n%s", doc)
	}
	text := string(out)
	if !strings.Contains(text, " "+code+" ") {
		t.Errorf("want HTTP %s, got:\n%s", code, lastLines(text, 2))
	}
	for _, p := range parts {
		if !strings.Contains(text, p) {
			t.Errorf("message lacks %q:\n%s", p, lastLines(text, 2))
		}
	}
}

func TestUnsafeRestoresAreRefused(t *testing.T) {
	requireCluster(t)
	ns := "safety"
	setupSafetyNamespace(t, ns)
	admin := controlPlane.AdminKubeconfig
	cases := []struct {
		name, doc, code string
		parts           []string
	}{
		{"backup missing", restoreJob("r1", "nope", "data", ""), "422", []string{"spec.backupName", "does not exist"}},
		{"backup not completed", restoreJob("r2", "running", "{pvcName: other, newPVC: {}}", ""), "422", []string{"spec.backupName", "is Running, not Completed"}},
		{"target missing", restoreJob("r3", "done", "ghost", ""), "422", []string{"spec.target.pvcName", "does not exist", "newPVC"}},
		{"target not bound", restoreJob("r4", "done", "unbound", ""), "422", []string{"spec.target.pvcName", "is Pending, not Bound"}},
		{"target too small", restoreJob("r5", "done", "tiny", ""), "422", []string{"holds 1Mi", "has 100Mi of data"}},
		{"target in use", restoreJob("r6", "done", "live", ""), "409", []string{"Pod safety/postgres-6d4f-x1 (Deployment safety/postgres)", "allowInUse"}},
		{"target busy", restoreJob("r7", "done", "data", ""), "409", []string{"Backup safety/running is in progress"}},
		{"new claim exists", restoreJob("r8", "done", "{pvcName: data, newPVC: {}}", ""), "422", []string{"already exists"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refused(t, admin, ns, tc.doc, tc.code, tc.parts...)
		})
	}
	if out := kubectl(t, "get", "restorejobs", "-n", ns, "-o", "name"); strings.TrimSpace(out) != "" {
		t.Fatalf("refused RestoreJobs were stored: %s", out)
	}

	// allowInUse lets the restore into a mounted claim through.
	if out, err := kubectlIn(t, restoreJob("inuse-ok", "done", "live", ", allowInUse: true"), "create", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// A second restore of the same claim is now busy.
	refused(t, admin, ns, restoreJob("second", "done", "live", ", allowInUse: true"), "409", "RestoreJob safety/inuse-ok is in progress")
	// The Backup it restores cannot be deleted meanwhile.
	out, err := controlPlane.Kubectl(context.Background(), "delete", "backup", "done", "-n", ns)
	if err == nil || !strings.Contains(string(out), "Conflict") || !strings.Contains(string(out), "safety/inuse-ok is restoring this Backup") {
		t.Errorf("deleting a Backup in use: %v\n%s", err, out)
	}
	// Being deleted: a finalizer holds the Backup while it is deleted.
	kubectl(t, "patch", "backup", "running", "-n", ns, "--type=merge", "-p", `{"metadata":{"finalizers":["test/hold"]}}`)
	kubectl(t, "delete", "backup", "running", "-n", ns, "--wait=false")
	kubectl(t, "patch", "backup", "running", "-n", ns, "--subresource=status", "--type=merge", "-p", `{"status":{"phase":"Completed"}}`)
	refused(t, admin, ns, restoreJob("r9", "running", "{pvcName: other, newPVC: {}}", ""), "422", "is being deleted")
	kubectl(t, "patch", "backup", "running", "-n", ns, "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
}

func TestRequesterNeedsRightsInTheOtherNamespace(t *testing.T) {
	requireCluster(t)
	setupSafetyNamespace(t, "team-a")
	setupSafetyNamespace(t, "team-b")
	if _, err := controlPlane.Kubectl(context.Background(), "apply", "-f", filepath.Join(cluster.RepoRoot(), "artifacts", "deploy", "rbac.yaml")); err != nil {
		t.Fatal(err)
	}
	alice, err := controlPlane.NewUser("alice")
	if err != nil {
		t.Fatal(err)
	}
	// No controller-manager aggregates roles here: bind the built-in edit role
	// (claims) and the project's role (backup.example.com) directly.
	kubectl(t, "create", "rolebinding", "alice-edit", "-n", "team-a", "--clusterrole=edit", "--user=alice")
	kubectl(t, "create", "rolebinding", "alice-backup", "-n", "team-a", "--clusterrole=backup-operator:edit", "--user=alice")

	policy := func(name, targetNS string) string {
		return fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: %s}
spec: {schedule: "@daily", target: {pvcName: data, namespace: %s}, retention: {keepLast: 3}}
`, name, targetNS)
	}
	refused(t, alice, "team-a", policy("steal", "team-b"), "403", "may not read persistentvolumeclaims in namespace \"team-b\"")
	refused(t, alice, "team-a", restoreJob("from-b", "done", "data", ", backupNamespace: team-b"), "403", "may not read backups in namespace \"team-b\"")
	refused(t, alice, "team-a", restoreJob("into-b", "done", "{pvcName: data, namespace: team-b}", ""), "403", "may not update persistentvolumeclaims in namespace \"team-b\"")
	backupDoc := `{"apiVersion":"backup.example.com/v1alpha1","kind":"Backup","metadata":{"name":"x"},"spec":{"target":{"pvcName":"data","namespace":"team-b"}}}`
	refused(t, alice, "team-a", backupDoc, "403", "may not read persistentvolumeclaims")

	// In her own namespace she can.
	if out, err := cluster.KubectlStdin(context.Background(), alice, policy("mine", "team-a"), "create", "-n", "team-a", "-f", "-"); err != nil {
		t.Fatalf("alice's own policy refused: %v\n%s", err, out)
	}
	if out, err := cluster.KubectlStdin(context.Background(), alice, restoreJob("mine", "done", "{pvcName: tiny2, newPVC: {}}", ""), "create", "-n", "team-a", "-f", "-"); err != nil {
		t.Fatalf("alice's own restore refused: %v\n%s", err, out)
	}
	// The admin may target team-b from team-a (the canonical example's shape).
	if out, err := kubectlIn(t, policy("admin-cross", "team-b"), "create", "-n", "team-a", "-f", "-"); err != nil {
		t.Fatalf("admin's cross-namespace policy refused: %v\n%s", err, out)
	}
}

// A BackupPolicy or Backup that names a Secret needs the requester's
// permission to get it (a SubjectAccessReview through kube-apiserver), on
// create and on a change of the policy's storage; refused requests store
// nothing.
func TestSecretsNeedTheRequestersAccess(t *testing.T) {
	requireCluster(t)
	ns := "secrets"
	createNamespace(t, ns)
	if _, err := controlPlane.Kubectl(context.Background(), "apply", "-f", filepath.Join(cluster.RepoRoot(), "artifacts", "deploy", "rbac.yaml")); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "create", "secret", "generic", "s3-credentials", "-n", ns, "--from-literal=AWS_ACCESS_KEY_ID=k", "--from-literal=AWS_SECRET_ACCESS_KEY=s")
	kubectl(t, "create", "secret", "generic", "repo-password", "-n", ns, "--from-literal=password=p")
	carol, err := controlPlane.NewUser("carol")
	if err != nil {
		t.Fatal(err)
	}
	// carol may use the group and read the S3 credentials, not the password.
	kubectl(t, "create", "rolebinding", "carol-backup", "-n", ns, "--clusterrole=backup-operator:edit", "--user=carol")
	kubectl(t, "create", "role", "s3-credentials-reader", "-n", ns, "--verb=get", "--resource=secrets", "--resource-name=s3-credentials")
	kubectl(t, "create", "rolebinding", "carol-s3-credentials", "-n", ns, "--role=s3-credentials-reader", "--user=carol")

	policy := func(name, storage string) string {
		return fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: %s}
spec:
  schedule: "@daily"
  target: {pvcName: data}
  retention: {keepLast: 3}
  storage: %s
`, name, storage)
	}
	const s3 = `{s3: {endpoint: "http://minio.backup-storage.svc:9000", bucket: backups, prefix: secrets/data, credentialsSecretRef: {name: s3-credentials}}`
	encrypted := s3 + `, encryption: {secretRef: {name: repo-password}}}`
	plain := s3 + `}`

	refused(t, carol, ns, policy("locked-out", encrypted), "403",
		`spec.storage.encryption.secretRef.name: you (carol) may not get Secret "repo-password" in namespace "secrets"`, "resourceNames: [repo-password]")
	if out, err := controlPlane.Kubectl(context.Background(), "get", "bp", "locked-out", "-n", ns); err == nil {
		t.Errorf("a refused policy was stored:\n%s", out)
	}
	out, err := cluster.KubectlStdin(context.Background(), carol, policy("carols", plain), "create", "-n", ns, "-f", "-")
	if err != nil {
		t.Fatalf("carol's policy with the credentials she may read was refused: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Warning: spec.storage.encryption is not set") {
		t.Errorf("no warning about an unencrypted bucket:\n%s", out)
	}
	patch := func(kubeconfig, doc string) ([]byte, error) {
		return cluster.KubectlStdin(context.Background(), kubeconfig, "", "patch", "bp", "carols", "-n", ns, "--type=merge", "-p", doc)
	}
	if out, err := patch(carol, `{"spec":{"storage":{"encryption":{"secretRef":{"name":"repo-password"}}}}}`); err == nil || !strings.Contains(string(out), "Forbidden") {
		t.Errorf("carol added a password she may not read: %v\n%s", err, out)
	}
	if out, err := patch(carol, `{"spec":{"schedule":"@hourly"}}`); err != nil {
		t.Errorf("a schedule change needs no Secret access: %v\n%s", err, out)
	}
	if got := kubectl(t, "get", "bp", "carols", "-n", ns, "-o", "jsonpath={.spec.storage}"); strings.Contains(got, "repo-password") || strings.Contains(got, "pvcName") {
		t.Errorf("storage after the refused patch: %s", got)
	}
	out2 := kubectl(t, "get", "bp", "carols", "-n", ns)
	if !strings.Contains(out2, "s3://backups/secrets/data") {
		t.Errorf("REPOSITORY column:\n%s", out2)
	}

	// Backups: the same rule, also for one that takes its storage from a policy.
	if out, err := kubectlIn(t, policy("admins", encrypted), "create", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("admin's policy: %v\n%s", err, out)
	}
	refused(t, carol, ns, `{"apiVersion":"backup.example.com/v1alpha1","kind":"Backup","metadata":{"name":"on-demand"},"spec":{"policyName":"admins"}}`,
		"403", `may not get Secret "repo-password"`)
	backupDoc := `{"apiVersion":"backup.example.com/v1alpha1","kind":"Backup","metadata":{"name":"own"},"spec":{"target":{"pvcName":"data"},` +
		`"storage":{"s3":{"endpoint":"http://minio.backup-storage.svc:9000","bucket":"backups","credentialsSecretRef":{"name":"s3-credentials"}}}}}`
	if out, err := cluster.KubectlStdin(context.Background(), carol, backupDoc, "create", "-n", ns, "-f", "-"); err != nil {
		t.Errorf("carol's Backup with the credentials she may read: %v\n%s", err, out)
	}
	if got := kubectl(t, "get", "backups", "-n", ns, "-o", "name"); strings.TrimSpace(got) != "backup.backup.example.com/own" {
		t.Errorf("Backups stored: %q, want only carol's allowed one", got)
	}

	// Shape errors are 422 with the field path, before any permission check.
	refused(t, carol, ns, policy("bad-bucket", `{s3: {endpoint: "http://minio:9000", bucket: Bad_Bucket, credentialsSecretRef: {name: s3-credentials}}}`),
		"422", "spec.storage.s3.bucket", "lowercase letters")
	refused(t, carol, ns, policy("both", `{pvcName: backup-repo, s3: {endpoint: "http://minio:9000", bucket: backups, credentialsSecretRef: {name: s3-credentials}}}`),
		"422", "spec.storage.pvcName", "exactly one of pvcName or s3")
	refused(t, carol, ns, policy("claim-locked", `{pvcName: backup-repo, immutability: {mode: Governance}}`),
		"422", "spec.storage.immutability", "needs an S3 repository")
}
