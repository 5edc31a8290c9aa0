// Command local-cluster is `make run`: a single-node Kubernetes cluster from
// real components on this machine, with the operator deployed through its
// manifests. In the foreground it tears everything down on Ctrl-C; with
// --detach it returns once ready and `make down` (local-cluster --down) stops it.
// --reload (`make reload`) rebuilds the operator's image from the work tree
// and restarts the operator in a running cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"example.com/backup-operator/hack/cluster"
)

func main() {
	home, _ := os.UserHomeDir()
	dir := flag.String("dir", filepath.Join(home, ".cache", "backup-operator", "local-cluster"), "state directory")
	detach := flag.Bool("detach", false, "return once the cluster is ready and leave it running")
	down := flag.Bool("down", false, "tear down a cluster left running by --detach")
	reload := flag.Bool("reload", false, "rebuild the operator's image and restart the operator in the running cluster")
	flag.Parse()
	var err error
	switch {
	case *down:
		err = stop(*dir)
	case *reload:
		err = reloadOperator(*dir)
	case *detach:
		err = startDetached(*dir)
	default:
		err = runForeground(*dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "local-cluster:", err)
		os.Exit(1)
	}
}

func pidFile(dir string) string   { return filepath.Join(dir, "local-cluster.pid") }
func readyFile(dir string) string { return filepath.Join(dir, "ready") }
func usageFile(dir string) string { return filepath.Join(dir, "usage.txt") }

func runForeground(dir string) error {
	if pid, ok := running(dir); ok {
		return fmt.Errorf("a local cluster is already running (pid %d); run `make down` first", pid)
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(pidFile(dir), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	start := time.Now()
	l, err := cluster.Up(ctx, cluster.LocalOptions{Dir: dir, APIServerPort: 6443, Examples: true,
		Log: func(format string, args ...any) {
			fmt.Printf("[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		}})
	if err != nil {
		os.Remove(pidFile(dir))
		return err
	}
	fmt.Printf("\nready in %.0fs. ", time.Since(start).Seconds())
	fmt.Print(usage(l))
	fmt.Printf("Ctrl-C (or make down) tears the cluster down.\nexport KUBECONFIG=%s\n", l.AdminKubeconfig)
	os.WriteFile(usageFile(dir), []byte(usage(l)), 0o644)
	os.WriteFile(readyFile(dir), []byte(l.AdminKubeconfig), 0o644)
	<-ctx.Done()
	fmt.Println("tearing down ...")
	l.Stop()
	os.Remove(readyFile(dir))
	os.Remove(pidFile(dir))
	fmt.Println("done")
	return nil
}

// usage says how to use the cluster: the operator, and the object store
// for S3 repositories.
func usage(l *cluster.Local) string {
	s := l.ObjectStore
	return fmt.Sprintf(`The operator runs as a pod from the image built here; try:
  kubectl get nodes
  kubectl api-resources --api-group=backup.example.com
  kubectl get backuppolicies -A
  kubectl explain backuppolicy.spec

S3: MinIO runs in namespace %[1]s, reached by pods at %[2]s
and from this machine at %[3]s (root user %[4]s, password %[5]s).
Buckets: %[6]s, and %[7]s with object lock. To back up to it from namespace production:

kubectl -n production create secret generic s3-credentials \
  --from-literal=AWS_ACCESS_KEY_ID=%[4]s --from-literal=AWS_SECRET_ACCESS_KEY=%[5]s
kubectl apply -f - <<'YAML'
apiVersion: backup.example.com/v1alpha1
kind: BackupPolicy
metadata: {name: database-backups-s3, namespace: production}
spec:
  schedule: "0 3 * * *"
  target: {pvcName: postgres-data}
  storage:
    s3:
      endpoint: %[2]s
      bucket: %[6]s
      prefix: production/postgres-data
      credentialsSecretRef: {name: s3-credentials}
  retention: {keepLast: 7}
YAML

`, cluster.ObjectStoreNamespace, s.InClusterEndpoint, s.HostEndpoint, s.AccessKey, s.SecretKey, s.Bucket, s.LockedBucket)
}

func startDetached(dir string) error {
	if pid, ok := running(dir); ok {
		return fmt.Errorf("a local cluster is already running (pid %d); run `make down` first", pid)
	}
	os.MkdirAll(filepath.Dir(dir), 0o755)
	logPath := dir + ".log"
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	self, _ := os.Executable()
	cmd := exec.Command(self, "--dir", dir)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	fmt.Printf("starting the local cluster in the background (pid %d, log %s) ...\n", cmd.Process.Pid, logPath)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		select {
		case err := <-exited:
			data, _ := os.ReadFile(logPath)
			return fmt.Errorf("the local cluster failed to start (%v):\n%s", err, data)
		case <-time.After(time.Second):
		}
		if kc, err := os.ReadFile(readyFile(dir)); err == nil {
			text, _ := os.ReadFile(usageFile(dir))
			fmt.Printf("ready. %s", text)
			fmt.Println("`make down` tears it down.")
			fmt.Printf("export KUBECONFIG=%s\n", kc)
			return nil
		}
	}
}

func running(dir string) (int, bool) {
	data, err := os.ReadFile(pidFile(dir))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}

func stop(dir string) error {
	pid, ok := running(dir)
	if !ok {
		fmt.Println("no local cluster is running")
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			fmt.Println("the local cluster is down")
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return errors.New("the local cluster did not stop within 3 minutes")
}

// reloadOperator rebuilds the operator's image (both binaries) from the work
// tree, imports it into the running node's containerd under the same tag,
// and deletes the operator's pod, so its StatefulSet starts it again from the
// new image; mover Jobs created from then on use it too.
func reloadOperator(dir string) error {
	if _, ok := running(dir); !ok {
		return errors.New("no local cluster is running; start one with `make run DETACH=1`")
	}
	kc, err := os.ReadFile(readyFile(dir))
	if err != nil {
		return errors.New("the local cluster is not ready yet")
	}
	tmp, err := os.MkdirTemp("", "backup-operator-reload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bin")
	if err := cluster.BuildOperator(bin); err != nil {
		return err
	}
	archive := filepath.Join(tmp, "operator.tar")
	if err := cluster.WriteImageArchive(archive, cluster.OperatorImage, []cluster.ImageFile{
		{Path: "/backup-apiserver", Src: filepath.Join(bin, "backup-apiserver"), Mode: 0o755},
		{Path: "/backup-mover", Src: filepath.Join(bin, "backup-mover"), Mode: 0o755},
	}, []string{"/backup-apiserver"}); err != nil {
		return err
	}
	socket := filepath.Join(dir, "node", "containerd", "containerd.sock")
	if out, err := exec.Command("ctr", "--address", socket, "--namespace", "k8s.io", "images", "import", "--no-unpack=false", archive).CombinedOutput(); err != nil {
		return fmt.Errorf("importing the image: %v\n%s", err, out)
	}
	kubeconfig := strings.TrimSpace(string(kc))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := cluster.KubectlAs(ctx, kubeconfig, "-n", "backup-system", "delete", "pod", "backup-apiserver-0", "--wait=true"); err != nil {
		return fmt.Errorf("restarting the operator: %v\n%s", err, out)
	}
	if out, err := cluster.KubectlAs(ctx, kubeconfig, "-n", "backup-system", "rollout", "status", "statefulset/backup-apiserver", "--timeout=150s"); err != nil {
		return fmt.Errorf("waiting for the operator: %v\n%s", err, out)
	}
	if out, err := cluster.KubectlAs(ctx, kubeconfig, "wait", "--for=condition=Available", "apiservice/v1alpha1.backup.example.com", "--timeout=120s"); err != nil {
		return fmt.Errorf("waiting for the APIService: %v\n%s", err, out)
	}
	fmt.Println("the operator runs the image built from the work tree")
	return nil
}
