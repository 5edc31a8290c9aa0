//go:build e2e

// Package e2e runs end-to-end tests on a fresh local cluster (real etcd,
// kube-apiserver, controller-manager, scheduler, containerd, kubelet) with the
// operator deployed from its manifests, exactly as `make run` brings it up.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/backup-operator/hack/cluster"
)

var local *cluster.Local

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if kc := os.Getenv("E2E_KUBECONFIG"); kc != "" {
		// Reuse a cluster from `make run DETACH=1` while developing tests.
		local = &cluster.Local{ControlPlane: &cluster.ControlPlane{AdminKubeconfig: kc, Dir: filepath.Dir(kc)}}
		var err error
		if local.ObjectStore, err = cluster.FindObjectStore(context.Background(), kc); err != nil {
			fmt.Fprintln(os.Stderr, "finding the cluster's object store:", err)
			return 1
		}
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "backup-operator-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	start := time.Now()
	// The local overlay points the operator at 127.0.0.1:6443, so the suite
	// uses that port too; it fails fast when `make run` already holds it.
	local, err = cluster.Up(ctx, cluster.LocalOptions{Dir: dir, APIServerPort: 6443, Examples: true,
		Log: func(format string, args ...any) {
			fmt.Printf("[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bringing up the local cluster:", err)
		return 1
	}
	defer local.Stop()
	return m.Run()
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := local.Kubectl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func apply(t *testing.T, manifest string) {
	t.Helper()
	if out, err := cluster.KubectlStdin(context.Background(), local.AdminKubeconfig, manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func namespace(t *testing.T, name string) {
	t.Helper()
	kubectl(t, "create", "namespace", name)
	t.Cleanup(func() { local.Kubectl(context.Background(), "delete", "namespace", name, "--wait=false") })
}

func TestPodWritesAndReadsADynamicallyProvisionedVolume(t *testing.T) {
	ns := "e2e-volume"
	namespace(t, ns)
	apply(t, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: %s}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 100Mi}}
`, ns))
	runPod(t, ns, "writer", "echo written-by-e2e > /data/hello && sync", "data")
	if phase := kubectl(t, "-n", ns, "get", "pvc", "data", "-o", "jsonpath={.status.phase}"); phase != "Bound" {
		t.Fatalf("PVC phase %q", phase)
	}
	if out := runPod(t, ns, "reader", "cat /data/hello", "data"); strings.TrimSpace(out) != "written-by-e2e" {
		t.Fatalf("reader saw %q", out)
	}
}

func TestOperatorRunsFromItsImageAndServesTheGroup(t *testing.T) {
	if img := kubectl(t, "-n", "backup-system", "get", "pod", "backup-apiserver-0", "-o", "jsonpath={.spec.containers[0].image}"); img != cluster.OperatorImage {
		t.Errorf("operator image %q, want %q", img, cluster.OperatorImage)
	}
	if out := kubectl(t, "get", "nodes", "--no-headers"); !strings.Contains(out, " Ready ") {
		t.Errorf("node not Ready: %s", out)
	}
	out := kubectl(t, "get", "backuppolicies", "-A")
	if !strings.Contains(out, "database-backups") || !strings.Contains(out, "production/postgres-data") {
		t.Errorf("kubectl get backuppolicies -A:\n%s", out)
	}
	if out := kubectl(t, "api-resources", "--api-group=backup.example.com", "-o", "name"); strings.Count(out, "\n") != 3 {
		t.Errorf("api-resources: %s", out)
	}
	// The APIService is verified with the CA the operator published, not skipped.
	ca := kubectl(t, "get", "apiservice", cluster.APIServiceName, "-o", "jsonpath={.spec.caBundle}{.spec.insecureSkipTLSVerify}")
	if len(ca) < 100 || strings.HasSuffix(ca, "true") {
		t.Errorf("APIService caBundle not published (or TLS verification skipped): %q", ca)
	}
}
