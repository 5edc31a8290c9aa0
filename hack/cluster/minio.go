package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The local cluster's S3-compatible object store: a MinIO server (AGPL,
// built from source by hack/build-tool.sh and only ever run as a separate
// server; the project's code uses the Apache-2.0 client minio-go) in its own
// namespace, on a claim of the default StorageClass.
const (
	// MinIOImage is the MinIO server image built from source.
	MinIOImage = "localhost/minio:local"
	// ObjectStoreNamespace holds MinIO, its root credentials and its claim.
	ObjectStoreNamespace = "backup-storage"
	// ObjectStoreBucket is a plain bucket, created with the cluster.
	ObjectStoreBucket = "backups"
	// ObjectStoreLockedBucket is created with S3 Object Lock (and so
	// versioning) enabled, for immutable backups.
	ObjectStoreLockedBucket = "backups-locked"
	// ObjectStoreInClusterEndpoint is where pods reach MinIO: its Service by name.
	ObjectStoreInClusterEndpoint = "http://minio." + ObjectStoreNamespace + ".svc:9000"
)

// ObjectStore is the local cluster's MinIO: where pods and this machine reach
// it, its root credentials and its buckets.
type ObjectStore struct {
	// InClusterEndpoint is the URL pods use, through the cluster DNS:
	// http://minio.backup-storage.svc:9000 (an S3Storage's endpoint).
	InClusterEndpoint string
	// HostEndpoint is the URL this machine uses: the Service's ClusterIP,
	// which kube-proxy's rules translate to the pod, e.g. http://10.96.12.34:9000.
	HostEndpoint string
	// AccessKey and SecretKey are MinIO's root user and password (the Secret
	// minio-root): the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of a
	// credentials Secret.
	AccessKey, SecretKey string
	// Bucket is a plain bucket; LockedBucket has Object Lock enabled.
	Bucket, LockedBucket string

	kubeconfig string
}

// minioManifest is MinIO as a single-replica Deployment on a claim, not
// root: an init container (root) hands the fresh hostPath volume, which the
// provisioner creates root-owned 0750, to MinIO's user.
func minioManifest(user, password string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: Secret
metadata: {name: minio-root, namespace: %[1]s}
stringData: {MINIO_ROOT_USER: %[2]q, MINIO_ROOT_PASSWORD: %[3]q}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: minio-data, namespace: %[1]s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 10Gi}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: minio, namespace: %[1]s, labels: {app: minio}}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: minio}}
  template:
    metadata: {labels: {app: minio}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: {type: RuntimeDefault}}
      initContainers:
      - name: own-data
        image: %[4]s
        imagePullPolicy: Never
        command: ["/bin/busybox", "chown", "1000:1000", "/data"]
        securityContext: {runAsNonRoot: false, runAsUser: 0, capabilities: {drop: [ALL], add: [CHOWN]}}
        volumeMounts: [{name: data, mountPath: /data}]
      containers:
      - name: minio
        image: %[5]s
        imagePullPolicy: Never
        args: [server, /data, --address, ":9000"]
        env:
        - {name: MINIO_ROOT_USER, valueFrom: {secretKeyRef: {name: minio-root, key: MINIO_ROOT_USER}}}
        - {name: MINIO_ROOT_PASSWORD, valueFrom: {secretKeyRef: {name: minio-root, key: MINIO_ROOT_PASSWORD}}}
        - {name: MINIO_BROWSER, value: "off"}
        - {name: MINIO_UPDATE, value: "off"}
        - {name: HOME, value: /tmp}
        ports: [{name: s3, containerPort: 9000}]
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: data, mountPath: /data}]
        readinessProbe:
          httpGet: {path: /minio/health/ready, port: 9000}
          periodSeconds: 2
        livenessProbe:
          httpGet: {path: /minio/health/live, port: 9000}
          periodSeconds: 10
          failureThreshold: 6
      volumes:
      - {name: data, persistentVolumeClaim: {claimName: minio-data}}
---
apiVersion: v1
kind: Service
metadata: {name: minio, namespace: %[1]s, labels: {app: minio}}
spec:
  selector: {app: minio}
  ports: [{name: s3, port: 9000, targetPort: 9000}]
`, ObjectStoreNamespace, user, password, BusyboxImage, MinIOImage)
}

// applyObjectStore creates MinIO's namespace, root credentials (a random
// password), claim, Deployment and Service; WaitObjectStore waits for it.
func (cp *ControlPlane) applyObjectStore(ctx context.Context) error {
	secret := make([]byte, 20)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	_, err := cp.kubectlStdin(ctx, minioManifest("backup-admin", hex.EncodeToString(secret)), "apply", "-f", "-")
	return err
}

// DeployObjectStore deploys MinIO, waits until it serves S3 and creates its
// two buckets (Bucket, and LockedBucket with Object Lock).
func (cp *ControlPlane) DeployObjectStore(ctx context.Context) (*ObjectStore, error) {
	if err := cp.applyObjectStore(ctx); err != nil {
		return nil, err
	}
	return cp.waitObjectStore(ctx)
}

func (cp *ControlPlane) waitObjectStore(ctx context.Context) (*ObjectStore, error) {
	s, err := FindObjectStore(ctx, cp.AdminKubeconfig)
	if err != nil {
		return nil, err
	}
	if err := s.waitServing(ctx); err != nil {
		return nil, err
	}
	if err := s.MakeBucket(ctx, s.Bucket, false); err != nil {
		return nil, err
	}
	if err := s.MakeBucket(ctx, s.LockedBucket, true); err != nil {
		return nil, err
	}
	return s, nil
}

// FindObjectStore describes the MinIO that Up deployed into the cluster of
// kubeconfig (for a cluster started elsewhere, such as `make run`'s): its
// root credentials from the Secret and its Service's ClusterIP.
func FindObjectStore(ctx context.Context, kubeconfig string) (*ObjectStore, error) {
	out, err := KubectlAs(ctx, kubeconfig, "-n", ObjectStoreNamespace, "get", "secret", "minio-root",
		"-o", `go-template={{.data.MINIO_ROOT_USER | base64decode}} {{.data.MINIO_ROOT_PASSWORD | base64decode}}`)
	if err != nil {
		return nil, err
	}
	keys := strings.Fields(string(out))
	if len(keys) != 2 {
		return nil, fmt.Errorf("secret %s/minio-root: want MINIO_ROOT_USER and MINIO_ROOT_PASSWORD", ObjectStoreNamespace)
	}
	ip, err := KubectlAs(ctx, kubeconfig, "-n", ObjectStoreNamespace, "get", "service", "minio", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		return nil, err
	}
	if net.ParseIP(string(ip)) == nil {
		return nil, fmt.Errorf("service %s/minio has no ClusterIP (%q)", ObjectStoreNamespace, ip)
	}
	return &ObjectStore{
		InClusterEndpoint: ObjectStoreInClusterEndpoint,
		HostEndpoint:      "http://" + net.JoinHostPort(string(ip), "9000"),
		AccessKey:         keys[0],
		SecretKey:         keys[1],
		Bucket:            ObjectStoreBucket,
		LockedBucket:      ObjectStoreLockedBucket,
		kubeconfig:        kubeconfig,
	}, nil
}

// Client is a minio-go client of the store from this machine (HostEndpoint),
// as root.
func (s *ObjectStore) Client() (*minio.Client, error) {
	u, err := url.Parse(s.HostEndpoint)
	if err != nil {
		return nil, err
	}
	return minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: u.Scheme == "https",
		// Straight to the ClusterIP, whatever proxy the environment names.
		Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			ResponseHeaderTimeout: time.Minute},
	})
}

// MakeBucket creates a bucket, with S3 Object Lock (which enables
// versioning) when objectLock is set. A bucket that exists already is
// accepted when its Object Lock setting is the one asked for.
func (s *ObjectStore) MakeBucket(ctx context.Context, name string, objectLock bool) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	err = c.MakeBucket(ctx, name, minio.MakeBucketOptions{ObjectLocking: objectLock})
	if err != nil {
		code := minio.ToErrorResponse(err).Code
		if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
			return fmt.Errorf("creating bucket %s: %w", name, err)
		}
	}
	locked, err := s.ObjectLockEnabled(ctx, name)
	if err != nil {
		return err
	}
	if locked != objectLock {
		return fmt.Errorf("bucket %s exists with object lock %v, not %v", name, locked, objectLock)
	}
	return nil
}

// ObjectLockEnabled reports whether bucket has S3 Object Lock enabled.
func (s *ObjectStore) ObjectLockEnabled(ctx context.Context, bucket string) (bool, error) {
	c, err := s.Client()
	if err != nil {
		return false, err
	}
	status, _, _, _, err := c.GetObjectLockConfig(ctx, bucket)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "ObjectLockConfigurationNotFoundError" {
			return false, nil
		}
		return false, fmt.Errorf("reading the object lock configuration of bucket %s: %w", bucket, err)
	}
	return status == "Enabled", nil
}

// Stop scales MinIO to zero and waits until its pod is gone: S3 requests
// then fail (connection refused or timing out), as with an unreachable
// service. Start brings it back with the same data.
func (s *ObjectStore) Stop(ctx context.Context) error {
	if _, err := KubectlAs(ctx, s.kubeconfig, "-n", ObjectStoreNamespace, "scale", "deployment/minio", "--replicas=0"); err != nil {
		return err
	}
	_, err := KubectlAs(ctx, s.kubeconfig, "-n", ObjectStoreNamespace, "wait", "--for=delete", "pod", "-l", "app=minio", "--timeout=120s")
	return err
}

// Start scales MinIO back to one replica and waits until it serves S3
// again (from this machine, through its Service).
func (s *ObjectStore) Start(ctx context.Context) error {
	if _, err := KubectlAs(ctx, s.kubeconfig, "-n", ObjectStoreNamespace, "scale", "deployment/minio", "--replicas=1"); err != nil {
		return err
	}
	return s.waitServing(ctx)
}

// waitServing waits until the Deployment is rolled out and S3 answers from
// this machine through the Service.
func (s *ObjectStore) waitServing(ctx context.Context) error {
	if _, err := KubectlAs(ctx, s.kubeconfig, "-n", ObjectStoreNamespace, "rollout", "status", "deployment/minio", "--timeout=180s"); err != nil {
		out, _ := KubectlAs(ctx, s.kubeconfig, "-n", ObjectStoreNamespace, "describe", "pods", "-l", "app=minio")
		logs, _ := KubectlAs(ctx, s.kubeconfig, "-n", ObjectStoreNamespace, "logs", "deployment/minio", "--all-containers", "--tail=30")
		return fmt.Errorf("%w\n%s\n%s", err, out, logs)
	}
	c, err := s.Client()
	if err != nil {
		return err
	}
	return waitFor(time.Minute, "MinIO at "+s.HostEndpoint, func() (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := c.ListBuckets(ctx)
		return err == nil, err
	})
}
