package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// NodeName is the name of the local cluster's single node.
const NodeName = "local-node"

// BridgeName is the CNI bridge the local cluster creates (and removes).
const BridgeName = "bkop0"

// Node is the rest of a single-node cluster beside a control plane:
// kube-controller-manager, kube-scheduler, containerd and a kubelet.
type Node struct {
	cp         *ControlPlane
	Dir        string
	KubeletDir string
	Socket     string
	started    time.Time
	procs      []*Process // in start order
	containerd *Process
	kubelet    *Process
	// chainsBefore are the KUBE-* iptables chains that existed before the
	// node started; tear-down removes the others.
	chainsBefore map[string]bool
}

// EnsureNodePackages installs containerd, runc, the CNI plugins, iptables
// (for kube-proxy) and busybox (for test pods) from Debian when they are missing.
func EnsureNodePackages() error {
	missing := []string{}
	for pkg, path := range map[string]string{"containerd": "/usr/bin/containerd", "runc": "/usr/sbin/runc", "containernetworking-plugins": "/usr/lib/cni/bridge", "busybox-static": "/bin/busybox", "iptables": "/usr/sbin/iptables"} {
		if _, err := os.Stat(path); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(os.Stderr, "installing %v from Debian ...\n", missing)
	cmd := exec.Command("bash", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "+strings.Join(missing, " "))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("installing %v: %v\n%s", missing, err, out)
	}
	// The package starts a system containerd; the cluster runs its own.
	_ = exec.Command("systemctl", "disable", "--now", "containerd").Run()
	return nil
}

// StartNode starts the node components and waits until the node is Ready and
// kube-proxy has written the Service rules. The cluster DNS is deployed by Up
// (DeployDNS); the kubelet already gives pods its address.
func (cp *ControlPlane) StartNode(ctx context.Context, images []string) (_ *Node, err error) {
	if err := EnsureNodePackages(); err != nil {
		return nil, err
	}
	n := &Node{cp: cp, Dir: filepath.Join(cp.Dir, "node"), started: time.Now(), chainsBefore: kubeChains()}
	n.KubeletDir = filepath.Join(n.Dir, "kubelet")
	n.Socket = filepath.Join(n.Dir, "containerd", "containerd.sock")
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	pki := filepath.Join(cp.Dir, "pki")
	logs := filepath.Join(cp.Dir, "logs")

	kubeconfig := func(name, cn string, orgs ...string) (string, error) {
		pair, err := cp.CA.Sign(pki, name, CertRequest{CommonName: cn, Organization: orgs, Client: true})
		if err != nil {
			return "", err
		}
		path := filepath.Join(cp.Dir, name+".kubeconfig")
		return path, WriteKubeconfig(path, cp.URL, cp.CA.CertFile, pair)
	}
	kcmConfig, err := kubeconfig("kube-controller-manager", "system:kube-controller-manager")
	if err != nil {
		return nil, err
	}
	schedConfig, err := kubeconfig("kube-scheduler", "system:kube-scheduler")
	if err != nil {
		return nil, err
	}
	kubeletConfig, err := kubeconfig("kubelet", "system:node:"+NodeName, "system:nodes")
	if err != nil {
		return nil, err
	}
	kcmPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	schedPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	kcm, err := StartProcess(logs, "kube-controller-manager", filepath.Join(cp.BinDir, "kube-controller-manager"), []string{
		"--kubeconfig=" + kcmConfig,
		"--authentication-kubeconfig=" + kcmConfig,
		"--authorization-kubeconfig=" + kcmConfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", kcmPort),
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + cp.ServiceAccountKey,
		"--root-ca-file=" + cp.CA.CertFile,
		"--cluster-signing-cert-file=" + cp.CA.CertFile,
		"--cluster-signing-key-file=" + filepath.Join(pki, "ca.key"),
		"--enable-hostpath-provisioner=true",
		"--controllers=*",
	}, nil)
	if err != nil {
		return nil, err
	}
	n.procs = append(n.procs, kcm)
	sched, err := StartProcess(logs, "kube-scheduler", filepath.Join(cp.BinDir, "kube-scheduler"), []string{
		"--kubeconfig=" + schedConfig,
		"--authentication-kubeconfig=" + schedConfig,
		"--authorization-kubeconfig=" + schedConfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", schedPort),
		"--leader-elect=false",
	}, nil)
	if err != nil {
		return nil, err
	}
	n.procs = append(n.procs, sched)

	if err := createBridge(); err != nil {
		return nil, err
	}
	if err := n.startContainerd(logs); err != nil {
		return nil, err
	}
	for _, img := range images {
		if out, err := n.ctr("images", "import", "--no-unpack=false", img); err != nil {
			return nil, fmt.Errorf("importing %s: %v\n%s", img, err, out)
		}
	}

	serving, err := cp.CA.Sign(pki, "kubelet-serving", CertRequest{CommonName: NodeName, Server: true,
		DNSNames: []string{NodeName, "localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		return nil, err
	}
	configPath := filepath.Join(n.Dir, "kubelet-config.yaml")
	if err := os.WriteFile(configPath, []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
tlsCertFile: %q
tlsPrivateKeyFile: %q
resolvConf: /etc/resolv.conf
clusterDNS: [%s]
clusterDomain: %s
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`, cp.CA.CertFile, n.Socket, serving.CertFile, serving.KeyFile, DNSServiceIP, ClusterDomain)), 0o644); err != nil {
		return nil, err
	}
	n.kubelet, err = StartProcess(logs, "kubelet", filepath.Join(cp.BinDir, "kubelet"), []string{
		"--config=" + configPath,
		"--kubeconfig=" + kubeletConfig,
		"--root-dir=" + n.KubeletDir,
		"--node-ip=127.0.0.1",
		"--hostname-override=" + NodeName,
		"--v=1",
	}, nil)
	if err != nil {
		return nil, err
	}
	n.procs = append(n.procs, n.kubelet)

	if err := n.waitReady(ctx, 3*time.Minute); err != nil {
		return nil, fmt.Errorf("%w\nkubelet log:\n%s", err, n.kubelet.Tail(20))
	}
	// The kubelet refuses to report a loopback node IP ("nodeIP can't be
	// loopback address") and so reports none; kube-apiserver then cannot reach
	// it for logs and exec. The node's address is set once here; the kubelet
	// leaves the field it could not compute alone.
	if _, err := cp.Kubectl(ctx, "patch", "node", NodeName, "--subresource=status", "--type=merge",
		"-p", `{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"},{"type":"Hostname","address":"`+NodeName+`"}]}}`); err != nil {
		return nil, err
	}
	if _, err := KubectlStdin(ctx, cp.AdminKubeconfig, defaultStorageClass, "apply", "-f", "-"); err != nil {
		return nil, err
	}
	if err := n.startKubeProxy(ctx, logs); err != nil {
		return nil, err
	}
	return n, nil
}

// defaultStorageClass provisions hostPath volumes dynamically, like kind's
// "standard" class.
const defaultStorageClass = `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
`

func (n *Node) startContainerd(logs string) error {
	root := filepath.Join(n.Dir, "containerd")
	for _, d := range []string{root, filepath.Join(root, "cni-conf")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	cni := fmt.Sprintf(`{"cniVersion":"0.4.0","name":"local","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q,"gateway":%q}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}`, BridgeName, PodSubnet, PodGateway, filepath.Join(root, "ipam"))
	if err := os.WriteFile(filepath.Join(root, "cni-conf", "10-local.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:local"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, filepath.Join(root, "root"), filepath.Join(root, "state"), n.Socket, filepath.Join(root, "cni-conf"))
	configPath := filepath.Join(root, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return err
	}
	p, err := StartProcess(logs, "containerd", "/usr/bin/containerd", []string{"--config", configPath}, nil)
	if err != nil {
		return err
	}
	n.containerd = p
	n.procs = append(n.procs, p)
	return waitFor(30*time.Second, "containerd", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("containerd exited:\n%s", p.Tail(10))
		}
		_, err := n.ctr("version")
		return err == nil, nil
	})
}

func (n *Node) ctr(args ...string) ([]byte, error) {
	return exec.Command("ctr", append([]string{"--address", n.Socket, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
}

func (n *Node) waitReady(ctx context.Context, timeout time.Duration) error {
	return waitFor(timeout, "node "+NodeName+" Ready", func() (bool, error) {
		if n.kubelet.Exited() {
			return false, fmt.Errorf("kubelet exited")
		}
		out, err := n.cp.Kubectl(ctx, "get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return err == nil && string(out) == "True", nil
	})
}

// Stop tears the node down: kubelet first, then every container (killed by
// containerd), kube-proxy, containerd, the controllers; then it unmounts
// everything beneath the node's directory and removes the CNI bridge (with
// the Service route), the network namespaces and the KUBE-* iptables chains
// this cluster created.
func (n *Node) Stop() {
	var pvDirs []string
	if n.cp != nil {
		out, _ := n.cp.Kubectl(context.Background(), "get", "pv", "-o", "jsonpath={.items[*].spec.hostPath.path}")
		pvDirs = strings.Fields(string(out))
	}
	if n.kubelet != nil {
		n.kubelet.Stop(20 * time.Second)
	}
	if n.containerd != nil && !n.containerd.Exited() {
		out, _ := n.ctr("tasks", "ls", "-q")
		for _, id := range strings.Fields(string(out)) {
			n.ctr("tasks", "kill", "-s", "SIGKILL", id)
		}
		deadline := time.Now().Add(20 * time.Second)
		for _, id := range strings.Fields(string(out)) {
			for time.Now().Before(deadline) {
				if _, err := n.ctr("tasks", "delete", id); err == nil {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	for i := len(n.procs) - 1; i >= 0; i-- {
		n.procs[i].Stop(15 * time.Second)
	}
	n.procs = nil
	UnmountBeneath(n.Dir)
	removeNetwork(n.started)
	if n.chainsBefore != nil {
		removeKubeChains(n.chainsBefore)
	}
	for _, d := range pvDirs {
		if strings.HasPrefix(d, "/tmp/hostpath_pv/") {
			os.RemoveAll(d)
		}
	}
}

// UnmountBeneath unmounts every mount point at or below dir, deepest first.
func UnmountBeneath(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], 0); err != nil {
			syscall.Unmount(points[i], syscall.MNT_DETACH)
		}
	}
}

// removeNetwork deletes the cluster's bridge and the pod network namespaces
// containerd created since the node started.
func removeNetwork(since time.Time) {
	exec.Command("ip", "link", "del", BridgeName).Run()
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !strings.HasPrefix(e.Name(), "cni-") || info.ModTime().Before(since) {
			continue
		}
		p := filepath.Join("/run/netns", e.Name())
		syscall.Unmount(p, syscall.MNT_DETACH)
		os.Remove(p)
	}
}

// RestartKubelet kills the kubelet (SIGKILL: pods keep running in
// containerd, as on a real node whose kubelet crashes) and starts it again,
// then waits until the node is Ready.
func (n *Node) RestartKubelet(ctx context.Context) error {
	if err := n.kubelet.Restart(true); err != nil {
		return err
	}
	if err := n.waitReady(ctx, 3*time.Minute); err != nil {
		return fmt.Errorf("%w\nkubelet log:\n%s", err, n.kubelet.Tail(20))
	}
	return nil
}
