package apiserver_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"example.com/backup-operator/hack/cluster"
)

// The integration tests run against a real etcd, a real kube-apiserver and
// backup-apiserver registered through its APIService, and talk to them with
// the machine's kubectl, as a user does.
var (
	controlPlane *cluster.ControlPlane
	server       *cluster.BackupAPIServer
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "backup-apiserver-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := cluster.BuildOperator(filepath.Join(dir, "bin")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	controlPlane, err = cluster.StartControlPlane(ctx, cluster.ControlPlaneOptions{Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer controlPlane.Stop()
	server, err = controlPlane.StartBackupAPIServer(ctx, filepath.Join(dir, "bin", "backup-apiserver"), filepath.Join(dir, "backup-apiserver"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer server.Stop()
	return m.Run()
}

func requireCluster(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs etcd and kube-apiserver (run without -short)")
	}
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := controlPlane.Kubectl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
