package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// HostMinIO is a MinIO server on loopback, for tests and benchmarks of the
// mover's S3 backend outside the cluster. Stop ends it by its PID.
type HostMinIO struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Dir       string
	proc      *Process
	port      int
}

// StartHostMinIO builds MinIO if need be (hack/build-tool.sh minio) and
// serves dir on a free loopback port.
func StartHostMinIO(dir string) (*HostMinIO, error) {
	if _, err := BuildTool("minio"); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	m := &HostMinIO{AccessKey: "backup-test", SecretKey: "backup-test-secret", Dir: dir, port: port,
		Endpoint: "http://127.0.0.1:" + strconv.Itoa(port)}
	return m, m.Start()
}

// Start (re)starts the server on its port and waits until it serves.
func (m *HostMinIO) Start() error {
	data := m.Dir + "/data"
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	bin, err := BuildTool("minio")
	if err != nil {
		return err
	}
	consolePort, err := FreePort()
	if err != nil {
		return err
	}
	p, err := StartProcess(m.Dir, "minio", bin,
		[]string{"server", "--quiet", "--address", "127.0.0.1:" + strconv.Itoa(m.port), "--console-address", "127.0.0.1:" + strconv.Itoa(consolePort), data},
		[]string{"MINIO_ROOT_USER=" + m.AccessKey, "MINIO_ROOT_PASSWORD=" + m.SecretKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off", "HOME=" + m.Dir})
	if err != nil {
		return err
	}
	m.proc = p
	err = waitFor(60*time.Second, "MinIO on "+m.Endpoint, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("MinIO exited: %s", p.Tail(20))
		}
		resp, err := http.Get(m.Endpoint + "/minio/health/ready")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		p.Stop(5 * time.Second)
	}
	return err
}

// Stop ends the server (its data stays for Start).
func (m *HostMinIO) Stop() {
	if m.proc != nil {
		m.proc.Stop(10 * time.Second)
		m.proc = nil
	}
}

// Client is a root client of the server.
func (m *HostMinIO) Client() (*minio.Client, error) {
	return minio.New("127.0.0.1:"+strconv.Itoa(m.port), &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, "")})
}

// MakeBucket creates a bucket, with Object Lock when asked.
func (m *HostMinIO) MakeBucket(ctx context.Context, name string, objectLock bool) error {
	c, err := m.Client()
	if err != nil {
		return err
	}
	return c.MakeBucket(ctx, name, minio.MakeBucketOptions{ObjectLocking: objectLock})
}
