package cluster

import (
	"context"
	"fmt"
)

// DNSImage is CoreDNS (hack/tools/coredns), built from source by
// hack/build-tool.sh and imported like the other images.
const DNSImage = "localhost/coredns:local"

// dnsManifest is the cluster DNS as kubeadm deploys it (ServiceAccount,
// ClusterRole system:coredns, Corefile ConfigMap, Deployment, Service kube-dns
// at DNSServiceIP), smaller: one replica, not root, on an unprivileged port
// that the Service maps to 53. Names outside the cluster's zones get NXDOMAIN
// at once: this machine has no DNS beyond its own, and the cluster DNS
// forwards nothing.
var dnsManifest = fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    %[1]s:1053 in-addr.arpa:1053 ip6.arpa:1053 {
        errors
        health :8080
        ready :8181
        kubernetes %[1]s in-addr.arpa ip6.arpa {
            pods insecure
            ttl 5
        }
        cache 5
        loadbalance
        reload
    }
    .:1053 {
        errors
        template ANY ANY {
            rcode NXDOMAIN
        }
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: coredns
        image: %[2]s
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        resources: {requests: {cpu: 50m, memory: 32Mi}, limits: {memory: 170Mi}}
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          periodSeconds: 10
          failureThreshold: 5
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
      volumes:
      - name: config
        configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: %[3]s
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
`, ClusterDomain, DNSImage, DNSServiceIP)

// DeployDNS deploys the cluster DNS and waits until it answers.
func (cp *ControlPlane) DeployDNS(ctx context.Context) error {
	if err := cp.applyDNS(ctx); err != nil {
		return err
	}
	return cp.waitDNS(ctx)
}

func (cp *ControlPlane) applyDNS(ctx context.Context) error {
	_, err := cp.kubectlStdin(ctx, dnsManifest, "apply", "-f", "-")
	return err
}

// waitDNS waits until CoreDNS's Deployment is rolled out: CoreDNS is ready
// once it has read the Services from kube-apiserver, through the kubernetes
// Service.
func (cp *ControlPlane) waitDNS(ctx context.Context) error {
	if _, err := cp.Kubectl(ctx, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s"); err != nil {
		out, _ := cp.Kubectl(ctx, "-n", "kube-system", "describe", "pods", "-l", "k8s-app=kube-dns")
		logs, _ := cp.Kubectl(ctx, "-n", "kube-system", "logs", "deployment/coredns", "--tail=30")
		return fmt.Errorf("%w\n%s\n%s", err, out, logs)
	}
	return nil
}
