package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// OperatorImage is the image the local cluster builds from this checkout and
// the deploy manifests name.
const OperatorImage = "backup-operator:dev"

// BusyboxImage is a small image with a shell for test pods (Debian's static busybox).
const BusyboxImage = "localhost/busybox:local"

// Local is a whole single-node cluster with the operator deployed, the
// cluster DNS, and an S3 object store.
type Local struct {
	*ControlPlane
	Node *Node
	// ObjectStore is the cluster's MinIO, with its buckets already made.
	ObjectStore *ObjectStore
}

// LocalOptions configure Up.
type LocalOptions struct {
	Dir string
	// APIServerPort 0 picks a free port; `make run` uses 6443.
	APIServerPort int
	// Examples also applies artifacts/examples.
	Examples bool
	Log      func(format string, args ...any)
}

// Up builds the operator image and a pause image from this checkout (and
// CoreDNS and MinIO images from hack/tools, cached), starts etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
// kube-proxy and a kubelet, deploys the cluster DNS, MinIO (with its buckets)
// and artifacts/local (artifacts/deploy plus the local overlay), and waits
// until the node is Ready, the DNS and MinIO serve and the APIService is
// Available.
func Up(ctx context.Context, o LocalOptions) (_ *Local, err error) {
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	logf("building images from this checkout")
	images, err := BuildImages(filepath.Join(o.Dir, "images"))
	if err != nil {
		return nil, err
	}
	logf("starting etcd and kube-apiserver")
	cp, err := StartControlPlane(ctx, ControlPlaneOptions{Dir: o.Dir, APIServerPort: o.APIServerPort, PodNetwork: true})
	if err != nil {
		return nil, err
	}
	l := &Local{ControlPlane: cp}
	defer func() {
		if err != nil {
			l.Stop()
		}
	}()
	logf("starting kube-controller-manager, kube-scheduler, containerd, kubelet and kube-proxy")
	if l.Node, err = cp.StartNode(ctx, images); err != nil {
		return nil, err
	}
	logf("deploying the cluster DNS (CoreDNS), MinIO and the operator (kubectl apply -k artifacts/local)")
	if err := cp.applyDNS(ctx); err != nil {
		return nil, err
	}
	if err := cp.applyObjectStore(ctx); err != nil {
		return nil, err
	}
	if _, err := cp.Kubectl(ctx, "apply", "-k", filepath.Join(RepoRoot(), "artifacts", "local")); err != nil {
		return nil, err
	}
	if err := cp.waitDNS(ctx); err != nil {
		return nil, err
	}
	if _, err := cp.Kubectl(ctx, "-n", "backup-system", "rollout", "status", "statefulset/backup-apiserver", "--timeout=180s"); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, l.describeOperator(ctx))
	}
	if err := cp.WaitAPIServiceAvailable(ctx, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, l.describeOperator(ctx))
	}
	logf("waiting for MinIO and making its buckets %s and %s (object lock)", ObjectStoreBucket, ObjectStoreLockedBucket)
	if l.ObjectStore, err = cp.waitObjectStore(ctx); err != nil {
		return nil, err
	}
	if o.Examples {
		logf("applying artifacts/examples")
		if _, err := cp.Kubectl(ctx, "apply", "-f", filepath.Join(RepoRoot(), "artifacts", "examples")); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *Local) describeOperator(ctx context.Context) string {
	out, _ := l.Kubectl(ctx, "-n", "backup-system", "describe", "pods")
	logs, _ := l.Kubectl(ctx, "-n", "backup-system", "logs", "statefulset/backup-apiserver", "--tail=30")
	return string(out) + "\n" + string(logs)
}

// Stop tears down the node, then the control plane.
func (l *Local) Stop() {
	if l.Node != nil {
		l.Node.Stop()
	}
	l.ControlPlane.Stop()
}

// BuildImages writes image archives for the operator (both binaries), the
// pod sandbox (pause), busybox, CoreDNS, MinIO and PostgreSQL into dir and
// returns their paths. CoreDNS and MinIO are built from hack/tools once and
// cached; PostgreSQL comes from Debian's postgresql-15 (PostgresImageFiles).
func BuildImages(dir string) ([]string, error) {
	bin := filepath.Join(dir, "bin")
	if err := BuildOperator(bin); err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "pause"), "./hack/cluster/pause")
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building pause: %v\n%s", err, out)
	}
	if err := EnsureNodePackages(); err != nil {
		return nil, err
	}
	coredns, err := BuildTool("coredns")
	if err != nil {
		return nil, err
	}
	minio, err := BuildTool("minio")
	if err != nil {
		return nil, err
	}
	images := []struct {
		file, tag  string
		files      []ImageFile
		entrypoint []string
	}{
		{"operator.tar", OperatorImage, []ImageFile{
			{Path: "/backup-apiserver", Src: filepath.Join(bin, "backup-apiserver"), Mode: 0o755},
			{Path: "/backup-mover", Src: filepath.Join(bin, "backup-mover"), Mode: 0o755},
		}, []string{"/backup-apiserver"}},
		{"pause.tar", "localhost/pause:local", []ImageFile{{Path: "/pause", Src: filepath.Join(bin, "pause"), Mode: 0o755}}, []string{"/pause"}},
		{"busybox.tar", BusyboxImage, []ImageFile{{Path: "/bin/busybox", Src: "/bin/busybox", Mode: 0o755}}, []string{"/bin/busybox"}},
		{"coredns.tar", DNSImage, []ImageFile{{Path: "/coredns", Src: coredns, Mode: 0o755}}, []string{"/coredns"}},
		{"minio.tar", MinIOImage, []ImageFile{{Path: "/minio", Src: minio, Mode: 0o755}}, []string{"/minio"}},
	}
	var paths []string
	for _, img := range images {
		p := filepath.Join(dir, img.file)
		if err := WriteImageArchive(p, img.tag, img.files, img.entrypoint); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	pgFiles, pgEntrypoint, err := PostgresImageFiles(filepath.Join(dir, "postgres"))
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "postgres.tar")
	if err := WriteImageArchive(p, PostgresImage, pgFiles, pgEntrypoint, PostgresEnv...); err != nil {
		return nil, err
	}
	return append(paths, p), nil
}
