// Package install registers the backup.example.com API group in a scheme.
package install

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// Install adds the internal and all versioned types of the group to scheme.
func Install(scheme *runtime.Scheme) {
	utilruntime.Must(backup.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	utilruntime.Must(scheme.SetVersionPriority(v1alpha1.SchemeGroupVersion))
}
