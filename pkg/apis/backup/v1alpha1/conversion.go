package v1alpha1

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
)

// SelectableFields lists, per kind, the fields `kubectl get --field-selector`
// accepts besides metadata.name and metadata.namespace. The REST storage
// indexes exactly these (pkg/registry/backup/*/strategy.go).
var SelectableFields = map[string][]string{
	"BackupPolicy": {"spec.target.pvcName", "spec.target.namespace", "spec.storage.pvcName", "spec.suspend"},
	"Backup":       {"spec.policyName", "spec.target.pvcName", "spec.target.namespace", "status.phase"},
	"RestoreJob":   {"spec.backupName", "spec.target.pvcName", "spec.target.namespace", "status.phase"},
}

func init() {
	localSchemeBuilder.Register(addFieldLabelConversions)
}

func addFieldLabelConversions(scheme *runtime.Scheme) error {
	for kind, fields := range SelectableFields {
		allowed := map[string]bool{"metadata.name": true, "metadata.namespace": true}
		for _, f := range fields {
			allowed[f] = true
		}
		supported := append([]string{"metadata.name", "metadata.namespace"}, fields...)
		err := scheme.AddFieldLabelConversionFunc(SchemeGroupVersion.WithKind(kind), func(label, value string) (string, string, error) {
			if !allowed[label] {
				return "", "", fmt.Errorf("field label not supported: %s (supported: %v)", label, supported)
			}
			return label, value, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
