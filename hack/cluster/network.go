package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The local cluster's networks, as a real cluster has them: pods on a CNI
// bridge, Services on virtual IPs that kube-proxy's iptables rules translate
// to pod IPs, and names served by the cluster DNS behind the kube-dns Service.
const (
	// PodSubnet is the CNI bridge's subnet: every pod's IP is in it.
	PodSubnet = "10.244.0.0/24"
	// PodGateway is the bridge's own address: the host seen from a pod.
	// kube-apiserver advertises it, so pods reach the API through the
	// kubernetes Service.
	PodGateway = "10.244.0.1"
	// ServiceCIDR is kube-apiserver's --service-cluster-ip-range.
	ServiceCIDR = "10.96.0.0/16"
	// KubernetesServiceIP is the kubernetes Service's ClusterIP (the first of ServiceCIDR).
	KubernetesServiceIP = "10.96.0.1"
	// DNSServiceIP is the kube-dns Service's fixed ClusterIP (the tenth of
	// ServiceCIDR, as kubeadm picks it), the nameserver of every pod.
	DNSServiceIP = "10.96.0.10"
	// ClusterDomain is the DNS domain of Services: NAME.NAMESPACE.svc.cluster.local.
	ClusterDomain = "cluster.local"
)

// createBridge makes the CNI bridge before the first pod does, with the
// gateway address the bridge plugin would give it, and routes ServiceCIDR to
// it. ClusterIPs are virtual: kube-proxy's rules rewrite them to pod IPs, and
// this route keeps a packet to a ClusterIP that no rule (yet) rewrites on the
// bridge, where nobody answers, instead of on the host's default route. The
// host's own connections to a ClusterIP leave from PodGateway, so replies
// come straight back. removeNetwork deletes the bridge and with it the route.
func createBridge() error {
	if _, err := net.InterfaceByName(BridgeName); err != nil {
		if out, err := exec.Command("ip", "link", "add", BridgeName, "type", "bridge").CombinedOutput(); err != nil {
			return fmt.Errorf("creating bridge %s: %v: %s", BridgeName, err, out)
		}
	}
	for _, args := range [][]string{
		{"addr", "replace", PodGateway + "/24", "dev", BridgeName},
		{"link", "set", BridgeName, "up"},
		{"route", "replace", ServiceCIDR, "dev", BridgeName, "src", PodGateway},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// startKubeProxy runs kube-proxy in iptables mode as a host process, as a
// DaemonSet pod on the host network would, with a client certificate of the
// user kube-apiserver's bootstrap policy binds to system:node-proxier. It is
// configured to change nothing on the host beyond its own iptables chains
// (which Node.Stop removes): no conntrack sysctls, no route_localnet (no
// NodePorts on loopback), no OOM score; NodePorts answer on PodGateway only.
// It waits until the rules for the kubernetes Service are in place.
//
// A pod's connection to a ClusterIP is DNATed on the host to the other pod;
// the reply crosses the bridge, where only br_netfilter
// (net.bridge.bridge-nf-call-iptables=1, on here) passes it through iptables
// to be translated back. Where that is off, kube-proxy masquerades all
// Service traffic instead, so replies come back through the host.
func (n *Node) startKubeProxy(ctx context.Context, logs string) error {
	cp := n.cp
	pki := filepath.Join(cp.Dir, "pki")
	pair, err := cp.CA.Sign(pki, "kube-proxy", CertRequest{CommonName: "system:kube-proxy", Client: true})
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(cp.Dir, "kube-proxy.kubeconfig")
	if err := WriteKubeconfig(kubeconfig, cp.URL, cp.CA.CertFile, pair); err != nil {
		return err
	}
	healthz, err := FreePort()
	if err != nil {
		return err
	}
	metrics, err := FreePort()
	if err != nil {
		return err
	}
	bridgeNetfilter, _ := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
	masqueradeAll := strings.TrimSpace(string(bridgeNetfilter)) != "1"
	config := filepath.Join(n.Dir, "kube-proxy.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
detectLocalMode: ClusterCIDR
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
nodePortAddresses: [%s/32]
iptables: {localhostNodePorts: false, masqueradeAll: %t}
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
oomScoreAdj: 0
`, kubeconfig, NodeName, PodSubnet, healthz, metrics, PodGateway, masqueradeAll)), 0o644); err != nil {
		return err
	}
	p, err := StartProcess(logs, "kube-proxy", filepath.Join(cp.BinDir, "kube-proxy"), []string{"--config=" + config, "--v=1"}, nil)
	if err != nil {
		return err
	}
	n.procs = append(n.procs, p)
	client := &http.Client{Timeout: 2 * time.Second}
	err = waitFor(time.Minute, "kube-proxy's rules for the kubernetes Service", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("kube-proxy exited")
		}
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz))
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		out, err := exec.CommandContext(ctx, "iptables", "-t", "nat", "-S", "KUBE-SERVICES").CombinedOutput()
		return resp.StatusCode == http.StatusOK && err == nil && strings.Contains(string(out), KubernetesServiceIP+"/32"), nil
	})
	if err != nil {
		return fmt.Errorf("%w\nkube-proxy log:\n%s", err, p.Tail(20))
	}
	return nil
}

// iptablesFamilies are the commands whose tables kube-proxy and the kubelet write.
var iptablesFamilies = []string{"iptables", "ip6tables"}

// kubeChains returns the KUBE-* chains that exist now, as "family table chain"
// keys, so that tear-down removes only chains this cluster created.
func kubeChains() map[string]bool {
	chains := map[string]bool{}
	for _, family := range iptablesFamilies {
		out, err := exec.Command(family + "-save").Output()
		if err != nil {
			continue
		}
		for table, names := range parseKubeChains(string(out)) {
			for _, name := range names {
				chains[family+" "+table+" "+name] = true
			}
		}
	}
	return chains
}

// removeKubeChains deletes the KUBE-* chains (kube-proxy's and the kubelet's)
// that were not there before the node started, and every rule elsewhere that
// jumps to them, in one iptables-restore transaction per family.
func removeKubeChains(before map[string]bool) {
	for _, family := range iptablesFamilies {
		out, err := exec.Command(family + "-save").Output()
		if err != nil {
			continue
		}
		script := kubeChainsCleanup(string(out), func(table, chain string) bool { return before[family+" "+table+" "+chain] })
		if script == "" {
			continue
		}
		cmd := exec.Command(family+"-restore", "--noflush")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "removing the cluster's %s chains: %v\n%s\n%s", family, err, out, script)
		}
	}
}

// parseKubeChains returns the KUBE-* chains of each table in iptables-save output.
func parseKubeChains(save string) map[string][]string {
	chains := map[string][]string{}
	table := ""
	sc := bufio.NewScanner(strings.NewReader(save))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":KUBE-"):
			chains[table] = append(chains[table], strings.Fields(line[1:])[0])
		}
	}
	return chains
}

// kubeChainsCleanup returns an iptables-restore --noflush script that deletes
// the rules of kept chains jumping to a KUBE-* chain that kept does not keep,
// then flushes and deletes those chains; "" when there are none.
func kubeChainsCleanup(save string, kept func(table, chain string) bool) string {
	type tableWork struct {
		deletes []string
		chains  []string
	}
	var order []string
	work := map[string]*tableWork{}
	remove := map[string]bool{} // "table chain"
	for table, names := range parseKubeChains(save) {
		for _, name := range names {
			if !kept(table, name) {
				remove[table+" "+name] = true
				if work[table] == nil {
					work[table] = &tableWork{}
					order = append(order, table)
				}
				work[table].chains = append(work[table].chains, name)
			}
		}
	}
	if len(order) == 0 {
		return ""
	}
	table := ""
	sc := bufio.NewScanner(strings.NewReader(save))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "*") {
			table = line[1:]
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "-A" || remove[table+" "+f[1]] || work[table] == nil {
			continue
		}
		for i := 2; i+1 < len(f); i++ {
			if (f[i] == "-j" || f[i] == "-g") && remove[table+" "+f[i+1]] {
				work[table].deletes = append(work[table].deletes, "-D"+line[2:])
				break
			}
		}
	}
	sort.Strings(order)
	var b strings.Builder
	for _, t := range order {
		w := work[t]
		fmt.Fprintf(&b, "*%s\n", t)
		for _, d := range w.deletes {
			b.WriteString(d + "\n")
		}
		for _, c := range w.chains {
			fmt.Fprintf(&b, "-F %s\n", c)
		}
		for _, c := range w.chains {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}
