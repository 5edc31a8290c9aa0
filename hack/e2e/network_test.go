//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"example.com/backup-operator/hack/cluster"
)

// TestNetworkPodReachesServiceByName: a pod resolves a Service's name through
// the cluster DNS (CoreDNS behind kube-dns) to its ClusterIP and reaches it
// there through kube-proxy's rules: the path a mover takes to S3. wget
// resolves the short name with the pod's search domains (busybox's nslookup
// uses none, so it is given full names).
func TestNetworkPodReachesServiceByName(t *testing.T) {
	ns := "e2e-network"
	namespace(t, ns)
	ip := kubectl(t, "-n", cluster.ObjectStoreNamespace, "get", "service", "minio", "-o", "jsonpath={.spec.clusterIP}")
	out := runPod(t, ns, "reach-minio", `nslookup minio.`+cluster.ObjectStoreNamespace+`.svc.cluster.local &&
wget -S -O /dev/null `+cluster.ObjectStoreInClusterEndpoint+`/minio/health/live 2>&1 &&
nslookup kubernetes.default.svc.cluster.local && cat /etc/resolv.conf &&
if nslookup no-such-host.example.com; then echo resolved-an-outside-name; fi`)
	for _, want := range []string{
		"Address: " + ip, // the Service's name resolves to its ClusterIP
		"200 OK",         // and MinIO answers there
		"Address: " + cluster.KubernetesServiceIP, // kubernetes.default.svc
		"nameserver " + cluster.DNSServiceIP,
		"search " + ns + ".svc." + cluster.ClusterDomain,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("pod output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "resolved-an-outside-name") || !strings.Contains(out, "NXDOMAIN") {
		t.Errorf("a name outside the cluster should get NXDOMAIN:\n%s", out)
	}
}

// TestNetworkObjectStore: the buckets exist as the harness promises (one of
// them with object lock, hence versioning), more can be made, and MinIO can
// be stopped and started again with its data.
func TestNetworkObjectStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := local.ObjectStore
	if s == nil {
		t.Fatal("the harness deployed no object store")
	}
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	for bucket, locked := range map[string]bool{s.Bucket: false, s.LockedBucket: true} {
		if ok, err := c.BucketExists(ctx, bucket); err != nil || !ok {
			t.Fatalf("bucket %s: exists %v, %v", bucket, ok, err)
		}
		if got, err := s.ObjectLockEnabled(ctx, bucket); err != nil || got != locked {
			t.Errorf("bucket %s: object lock %v (%v), want %v", bucket, got, err, locked)
		}
		v, err := c.GetBucketVersioning(ctx, bucket)
		if err != nil || v.Enabled() != locked {
			t.Errorf("bucket %s: versioning %+v (%v), want enabled %v", bucket, v, err, locked)
		}
	}
	for name, lock := range map[string]bool{"e2e-network-plain": false, "e2e-network-locked": true} {
		if err := s.MakeBucket(ctx, name, lock); err != nil {
			t.Fatal(err)
		}
		if err := s.MakeBucket(ctx, name, lock); err != nil {
			t.Errorf("making bucket %s again: %v", name, err)
		}
		if err := s.MakeBucket(ctx, name, !lock); err == nil {
			t.Errorf("bucket %s exists with object lock %v: asking for %v should fail", name, lock, !lock)
		}
		t.Cleanup(func() { c.RemoveBucket(context.Background(), name) })
	}

	data := []byte("kept across a restart")
	if _, err := c.PutObject(ctx, s.Bucket, "e2e-network/object", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.RemoveObject(context.Background(), s.Bucket, "e2e-network/object", minio.RemoveObjectOptions{})
	})
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 10*time.Second)
	_, err = c.ListBuckets(short)
	cancelShort()
	if err == nil {
		t.Error("MinIO answered while stopped")
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	obj, err := c.GetObject(ctx, s.Bucket, "e2e-network/object", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := got.ReadFrom(obj); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Errorf("object after restart: %q, %v", got.Bytes(), err)
	}
}
