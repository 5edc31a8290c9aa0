package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

var apiServicesResource = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// caBundlePublisher keeps the APIService's spec.caBundle equal to the server's
// self-signed serving CA, so the aggregator verifies this server without
// insecureSkipTLSVerify and without a manual step.
type caBundlePublisher struct {
	apiServiceName string
	caBundle       []byte
}

func (p *caBundlePublisher) start(ctx context.Context, config *rest.Config) error {
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		return err
	}
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := p.publish(ctx, client); err != nil {
			klog.FromContext(ctx).Error(err, "Publishing the serving CA into the APIService failed; will retry", "apiService", p.apiServiceName)
		}
	}, time.Minute)
	return nil
}

func (p *caBundlePublisher) publish(ctx context.Context, client dynamic.Interface) error {
	apiServices := client.Resource(apiServicesResource)
	current, err := apiServices.Get(ctx, p.apiServiceName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// Not registered yet (or deliberately not registered): nothing to keep up to date.
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading APIService %s: %w", p.apiServiceName, err)
	}
	if encoded, _, _ := unstructuredString(current.Object, "spec", "caBundle"); encoded != "" {
		var existing []byte
		if err := json.Unmarshal([]byte(`"`+encoded+`"`), &existing); err == nil && bytes.Equal(existing, p.caBundle) {
			return nil
		}
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"caBundle": p.caBundle}})
	if err != nil {
		return err
	}
	if _, err := apiServices.Patch(ctx, p.apiServiceName, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "backup-apiserver"}); err != nil {
		return fmt.Errorf("updating caBundle of APIService %s: %w", p.apiServiceName, err)
	}
	klog.FromContext(ctx).Info("Published serving CA into APIService", "apiService", p.apiServiceName)
	return nil
}

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	var cur any = obj
	for _, key := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[key]
	}
	s, ok := cur.(string)
	return s, ok, nil
}
