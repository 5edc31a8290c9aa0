package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// APIServiceName is the APIService that registers backup.example.com.
const APIServiceName = "v1alpha1.backup.example.com"

// BackupAPIServer is backup-apiserver running as a process on loopback,
// registered with the control plane through the APIService of artifacts/deploy.
type BackupAPIServer struct {
	Process *Process
	Port    int
	Dir     string
	bin     string
	args    []string
}

// StartBackupAPIServer runs bin (backup-apiserver, API only) with its embedded etcd in
// dir, registers it with the project's own APIService manifest and an
// ExternalName Service to localhost, and waits until the APIService is Available.
func (cp *ControlPlane) StartBackupAPIServer(ctx context.Context, bin, dir string) (*BackupAPIServer, error) {
	return cp.StartBackupAPIServerWith(ctx, BackupAPIServerOptions{Bin: bin, Dir: dir})
}

// BackupAPIServerOptions configure StartBackupAPIServerWith.
type BackupAPIServerOptions struct {
	// Bin is backup-apiserver; Dir holds its certificates, logs and embedded etcd.
	Bin, Dir string
	// SharedEtcd stores the objects in the control plane's etcd instead of an
	// embedded one, so that servers started with it serve the same objects.
	SharedEtcd bool
	// Unregistered leaves the APIService (and its caBundle) alone: the server
	// is reached on its port (ClientConfig), not through kube-apiserver.
	Unregistered bool
	// Args are further flags, after the harness's own: a repeated flag's last
	// value wins (--controllers=true turns the controllers on).
	Args []string
}

// StartBackupAPIServerWith runs backup-apiserver as o says and waits until it
// is ready: registered, as StartBackupAPIServer, or on its own /readyz.
func (cp *ControlPlane) StartBackupAPIServerWith(ctx context.Context, o BackupAPIServerOptions) (*BackupAPIServer, error) {
	bin, dir := o.Bin, o.Dir
	ports := make([]int, 3)
	for i := range ports {
		if err := pickPort(&ports[i]); err != nil {
			return nil, err
		}
	}
	s := &BackupAPIServer{Port: ports[0], Dir: dir, bin: bin, args: []string{
		"--secure-port=" + strconv.Itoa(ports[0]),
		"--bind-address=127.0.0.1",
		"--etcd-dir=" + filepath.Join(dir, "etcd"),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		fmt.Sprintf("--embedded-etcd-client-url=http://127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--embedded-etcd-peer-url=http://127.0.0.1:%d", ports[2]),
		"--kubeconfig=" + cp.AdminKubeconfig,
		"--authentication-kubeconfig=" + cp.AdminKubeconfig,
		"--authorization-kubeconfig=" + cp.AdminKubeconfig,
		"--service-namespace=backup-system",
		// No kubelet runs here to execute mover Jobs: serve the API only.
		"--controllers=false",
	}}
	if o.SharedEtcd {
		s.args = append(s.args, "--etcd-servers="+cp.etcd.ClientURL)
	}
	if o.Unregistered {
		s.args = append(s.args, "--apiservice-name=")
	}
	s.args = append(s.args, o.Args...)
	if err := s.start(); err != nil {
		return nil, err
	}
	if o.Unregistered {
		if err := s.waitReady(2 * time.Minute); err != nil {
			s.Stop()
			return nil, fmt.Errorf("%w\nbackup-apiserver log:\n%s", err, s.Process.Tail(30))
		}
		return s, nil
	}
	deploy := filepath.Join(RepoRoot(), "artifacts", "deploy")
	if _, err := cp.Kubectl(ctx, "apply", "-f", filepath.Join(deploy, "namespace.yaml"), "-f", filepath.Join(deploy, "apiservice.yaml")); err != nil {
		return nil, err
	}
	// The aggregator dials localhost:<APIService port> for an ExternalName
	// Service named localhost: point both at the port the server listens on.
	service := fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"backup-apiserver","namespace":"backup-system"},
"spec":{"type":"ExternalName","externalName":"localhost","ports":[{"name":"https","port":%d}]}}`, s.Port)
	if _, err := cp.kubectlStdin(ctx, service, "apply", "-f", "-"); err != nil {
		return nil, err
	}
	if _, err := cp.Kubectl(ctx, "patch", "apiservice", APIServiceName, "--type=merge",
		"-p", fmt.Sprintf(`{"spec":{"service":{"port":%d}}}`, s.Port)); err != nil {
		return nil, err
	}
	if err := cp.WaitAPIServiceAvailable(ctx, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("%w\nbackup-apiserver log:\n%s", err, s.Process.Tail(30))
	}
	return s, nil
}

func (s *BackupAPIServer) start() error {
	p, err := StartProcess(filepath.Join(s.Dir, "logs"), "backup-apiserver", s.bin, s.args, nil)
	if err != nil {
		return err
	}
	s.Process = p
	return nil
}

// Restart stops the server and starts it again on the same data and port.
func (s *BackupAPIServer) Restart() error {
	s.Process.Stop(30 * time.Second)
	return s.start()
}

// Stop stops the server.
func (s *BackupAPIServer) Stop() {
	if s.Process != nil {
		s.Process.Stop(30 * time.Second)
	}
}

// Kill ends the server with SIGKILL, as a crash or a lost node would: it
// cleans nothing up (its Lease, for one, is left to expire).
func (s *BackupAPIServer) Kill() {
	if s.Process == nil || s.Process.Exited() {
		return
	}
	_ = syscall.Kill(-s.Process.PID(), syscall.SIGKILL)
	<-s.Process.done
}

// servingCertFile is the server's self-signed serving certificate, whose
// chain ends with its CA.
func (s *BackupAPIServer) servingCertFile() string {
	return filepath.Join(s.Dir, "certs", "apiserver.crt")
}

// ClientConfig reaches this server directly on its port, with the
// credentials of kubeconfig (which the server authenticates by delegation)
// and trusting its serving CA.
func (s *BackupAPIServer) ClientConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Host = fmt.Sprintf("https://127.0.0.1:%d", s.Port)
	cfg.TLSClientConfig.CAData, cfg.TLSClientConfig.CAFile = nil, s.servingCertFile()
	return cfg, nil
}

// waitReady waits until the server's /readyz answers ok.
func (s *BackupAPIServer) waitReady(timeout time.Duration) error {
	url := fmt.Sprintf("https://127.0.0.1:%d/readyz", s.Port)
	return waitFor(timeout, "backup-apiserver "+url, func() (bool, error) {
		if s.Process.Exited() {
			return false, fmt.Errorf("backup-apiserver exited")
		}
		pem, err := os.ReadFile(s.servingCertFile())
		if err != nil {
			return false, nil // not written yet
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		defer client.CloseIdleConnections()
		resp, err := client.Get(url)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// WaitAPIServiceAvailable waits until the aggregator reports the group Available.
func (cp *ControlPlane) WaitAPIServiceAvailable(ctx context.Context, timeout time.Duration) error {
	var last string
	err := waitFor(timeout, "APIService "+APIServiceName+" Available", func() (bool, error) {
		out, err := cp.Kubectl(ctx, "get", "apiservice", APIServiceName,
			"-o", `jsonpath={.status.conditions[?(@.type=="Available")].status} {.status.conditions[?(@.type=="Available")].message}`)
		last = strings.TrimSpace(string(out))
		return err == nil && strings.HasPrefix(last, "True"), nil
	})
	if err != nil {
		return fmt.Errorf("%w (last status: %s)", err, last)
	}
	// Available comes before the aggregated discovery and OpenAPI documents
	// include the group; kubectl needs both (get by short name, explain).
	return waitFor(timeout, "backup.example.com in discovery and OpenAPI v3", func() (bool, error) {
		out, err := cp.Kubectl(ctx, "api-resources", "--api-group=backup.example.com", "-o", "name")
		if err != nil || !strings.Contains(string(out), "backuppolicies") {
			return false, err
		}
		out, err = cp.Kubectl(ctx, "get", "--raw", "/openapi/v3")
		return err == nil && strings.Contains(string(out), `"apis/backup.example.com/v1alpha1"`), err
	})
}

func (cp *ControlPlane) kubectlStdin(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	return KubectlStdin(ctx, cp.AdminKubeconfig, stdin, args...)
}
