// Package cluster starts real Kubernetes components on this machine for the
// integration and end-to-end tests and for `make run`: an etcd, a
// kube-apiserver with aggregation, and backup-apiserver registered through an
// APIService exactly as a user registers it. Every process is started and
// stopped by PID; nothing is shared with a system-wide installation.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"example.com/backup-operator/pkg/etcd"
)

// ControlPlaneOptions configure StartControlPlane.
type ControlPlaneOptions struct {
	// Dir holds all state: certificates, etcd data, logs, kubeconfigs.
	Dir string
	// APIServerPort is kube-apiserver's secure port; 0 picks a free one.
	APIServerPort int
	// EtcdClientPort and EtcdPeerPort are the cluster etcd's ports; 0 picks free ones.
	EtcdClientPort, EtcdPeerPort int
	// PodNetwork makes kube-apiserver reachable from pods, as in a real
	// cluster: it listens on every address (not only loopback), advertises
	// PodGateway, and its endpoint reconciler keeps the kubernetes Service's
	// endpoints, so in-cluster clients reach it through the Service
	// (KubernetesServiceIP:443, by kube-proxy's rules). For the local cluster.
	PodNetwork bool
}

// ControlPlane is a running etcd + kube-apiserver.
type ControlPlane struct {
	Dir string
	// URL is kube-apiserver's address, https://127.0.0.1:PORT.
	URL string
	// AdminKubeconfig is a kubeconfig for a system:masters user.
	AdminKubeconfig string
	// CA signs client certificates kube-apiserver accepts (users for tests).
	CA *CA
	// FrontProxyCA is the request-header CA the aggregator uses.
	FrontProxyCA *CA
	// KubeletClient is the pair kube-apiserver presents to kubelets.
	KubeletClient KeyPair
	// ServiceAccountKey signs service account tokens (for kube-controller-manager).
	ServiceAccountKey string
	BinDir            string

	etcd      *etcd.Server
	apiserver *Process
}

// FreePort returns a currently free TCP port on loopback.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func pickPort(p *int) error {
	if *p != 0 {
		return nil
	}
	port, err := FreePort()
	*p = port
	return err
}

// StartControlPlane starts etcd and kube-apiserver and waits until kube-apiserver is ready.
func StartControlPlane(ctx context.Context, o ControlPlaneOptions) (_ *ControlPlane, err error) {
	for _, p := range []*int{&o.APIServerPort, &o.EtcdClientPort, &o.EtcdPeerPort} {
		if err := pickPort(p); err != nil {
			return nil, err
		}
	}
	bin, err := KubeBinaries()
	if err != nil {
		return nil, err
	}
	pki := filepath.Join(o.Dir, "pki")
	cp := &ControlPlane{Dir: o.Dir, BinDir: bin, URL: fmt.Sprintf("https://127.0.0.1:%d", o.APIServerPort)}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()

	if cp.CA, err = NewCA(pki, "ca"); err != nil {
		return nil, err
	}
	if cp.FrontProxyCA, err = NewCA(pki, "front-proxy-ca"); err != nil {
		return nil, err
	}
	serving, err := cp.CA.Sign(pki, "apiserver", CertRequest{
		CommonName: "kube-apiserver", Server: true,
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPs:      []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(KubernetesServiceIP), net.ParseIP(PodGateway)},
	})
	if err != nil {
		return nil, err
	}
	proxyClient, err := cp.FrontProxyCA.Sign(pki, "front-proxy-client", CertRequest{CommonName: "front-proxy-client", Client: true})
	if err != nil {
		return nil, err
	}
	if cp.KubeletClient, err = cp.CA.Sign(pki, "apiserver-kubelet-client", CertRequest{
		CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}, Client: true}); err != nil {
		return nil, err
	}
	admin, err := cp.CA.Sign(pki, "admin", CertRequest{CommonName: "kubernetes-admin", Organization: []string{"system:masters"}, Client: true})
	if err != nil {
		return nil, err
	}
	saKey, saPub, err := writeServiceAccountKey(pki)
	if err != nil {
		return nil, err
	}
	cp.ServiceAccountKey = saKey
	cp.AdminKubeconfig = filepath.Join(o.Dir, "admin.kubeconfig")
	if err := WriteKubeconfig(cp.AdminKubeconfig, cp.URL, cp.CA.CertFile, admin); err != nil {
		return nil, err
	}

	cp.etcd, err = etcd.Start(ctx, etcd.Config{
		Dir:       filepath.Join(o.Dir, "etcd"),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", o.EtcdClientPort),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", o.EtcdPeerPort),
		// etcd reports its own orderly shutdown as errors; they would drown test output.
		LogLevel: "panic",
	})
	if err != nil {
		return nil, err
	}

	args := []string{
		"--etcd-servers=" + cp.etcd.ClientURL,
		"--secure-port=" + strconv.Itoa(o.APIServerPort),
		"--tls-cert-file=" + serving.CertFile,
		"--tls-private-key-file=" + serving.KeyFile,
		"--client-ca-file=" + cp.CA.CertFile,
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--requestheader-client-ca-file=" + cp.FrontProxyCA.CertFile,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + proxyClient.CertFile,
		"--proxy-client-key-file=" + proxyClient.KeyFile,
		"--kubelet-client-certificate=" + cp.KubeletClient.CertFile,
		"--kubelet-client-key=" + cp.KubeletClient.KeyFile,
		"--kubelet-certificate-authority=" + cp.CA.CertFile,
		"--kubelet-preferred-address-types=InternalIP",
		"--cert-dir=" + filepath.Join(o.Dir, "apiserver-certs"),
	}
	if o.PodNetwork {
		args = append(args, "--bind-address=0.0.0.0", "--advertise-address="+PodGateway)
	} else {
		args = append(args, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
			// The endpoint reconciler refuses a loopback advertise address.
			"--endpoint-reconciler-type=none")
	}
	cp.apiserver, err = StartProcess(filepath.Join(o.Dir, "logs"), "kube-apiserver", filepath.Join(bin, "kube-apiserver"), args, nil)
	if err != nil {
		return nil, err
	}
	if err := cp.waitReady(2 * time.Minute); err != nil {
		return nil, fmt.Errorf("%w\nkube-apiserver log:\n%s", err, cp.apiserver.Tail(30))
	}
	return cp, nil
}

func (cp *ControlPlane) waitReady(timeout time.Duration) error {
	client, err := cp.httpClient()
	if err != nil {
		return err
	}
	return waitFor(timeout, "kube-apiserver /readyz", func() (bool, error) {
		if cp.apiserver.Exited() {
			return false, fmt.Errorf("kube-apiserver exited")
		}
		resp, err := client.Get(cp.URL + "/readyz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

func (cp *ControlPlane) httpClient() (*http.Client, error) {
	admin, err := tls.LoadX509KeyPair(filepath.Join(cp.Dir, "pki", "admin.crt"), filepath.Join(cp.Dir, "pki", "admin.key"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cp.CA.Cert)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{admin},
	}}}, nil
}

// Kubectl runs the machine's kubectl against the cluster as admin.
func (cp *ControlPlane) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	return KubectlAs(ctx, cp.AdminKubeconfig, args...)
}

// KubectlAs runs kubectl with the given kubeconfig and returns combined output.
func KubectlAs(ctx context.Context, kubeconfig string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("kubectl %v: %w\n%s", args, err, out)
	}
	return out, nil
}

// NewUser writes a kubeconfig for a user with a client certificate from the
// cluster CA; RBAC then decides what the user may do.
func (cp *ControlPlane) NewUser(name string, groups ...string) (string, error) {
	pair, err := cp.CA.Sign(filepath.Join(cp.Dir, "pki"), "user-"+name, CertRequest{CommonName: name, Organization: groups, Client: true})
	if err != nil {
		return "", err
	}
	path := filepath.Join(cp.Dir, "user-"+name+".kubeconfig")
	return path, WriteKubeconfig(path, cp.URL, cp.CA.CertFile, pair)
}

// Stop stops kube-apiserver, then etcd (in that order: kube-apiserver hangs in
// shutdown when its etcd is gone first).
func (cp *ControlPlane) Stop() {
	if cp.apiserver != nil {
		cp.apiserver.Stop(15 * time.Second)
	}
	if cp.etcd != nil {
		cp.etcd.Stop()
	}
}

// KubectlStdin runs kubectl with stdin as its standard input.
func KubectlStdin(ctx context.Context, kubeconfig, stdin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("kubectl %v: %w\n%s", args, err, out)
	}
	return out, nil
}

// RestartAPIServer stops kube-apiserver (SIGTERM, as a rolling restart
// does) and starts it again, then waits until it is ready.
func (cp *ControlPlane) RestartAPIServer() error {
	if cp.apiserver == nil {
		return fmt.Errorf("kube-apiserver was not started by this process")
	}
	if err := cp.apiserver.Restart(false); err != nil {
		return err
	}
	if err := cp.waitReady(2 * time.Minute); err != nil {
		return fmt.Errorf("%w\nkube-apiserver log:\n%s", err, cp.apiserver.Tail(30))
	}
	return nil
}
