package server

import (
	"bytes"
	"fmt"
	"net/http"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"
)

const (
	authenticationConfigMapNamespace = metav1.NamespaceSystem
	authenticationConfigMapName      = "extension-apiserver-authentication"
)

// clientCALoaded is a readyz check that passes once the server verifies
// client certificates with every CA it takes from
// kube-system/extension-apiserver-authentication (client-ca-file and
// requestheader-client-ca-file, unless given as files). The generic server loads them from an
// informer that syncs after /readyz first answers ok, and until then
// authenticates a user's certificate, or the aggregator's, as
// system:anonymous: a replica taken into a Service in that second answers
// 403 to requests it would allow a moment later. Once passed it stays passed
// (a CA rotated later is picked up by the same informer).
type clientCALoaded struct {
	served dynamiccertificates.CAContentProvider
	kube   kubernetes.Interface
	// keys are the ConfigMap's keys the server loads (not given as files).
	keys  []string
	ready atomic.Bool
}

func (c *clientCALoaded) Name() string { return "client-ca-loaded" }

func (c *clientCALoaded) Check(r *http.Request) error {
	if c.ready.Load() {
		return nil
	}
	cm, err := c.kube.CoreV1().ConfigMaps(authenticationConfigMapNamespace).Get(r.Context(), authenticationConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// Nothing published to wait for: the server authenticates by
		// delegation (tokens) only, as the generic server's warning says.
		c.ready.Store(true)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s/%s: %w", authenticationConfigMapNamespace, authenticationConfigMapName, err)
	}
	served := c.served.CurrentCABundleContent()
	for _, key := range c.keys {
		if ca := bytes.TrimSpace([]byte(cm.Data[key])); len(ca) > 0 && !bytes.Contains(served, ca) {
			return fmt.Errorf("%s of %s/%s not loaded yet", key, authenticationConfigMapNamespace, authenticationConfigMapName)
		}
	}
	c.ready.Store(true)
	return nil
}
