package install

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/apitesting/roundtrip"

	"example.com/backup-operator/pkg/apis/backup/fuzzer"
)

// TestRoundTripTypes converts random objects internal → v1alpha1 → JSON and
// back and requires them unchanged: a field the conversion forgets fails here.
func TestRoundTripTypes(t *testing.T) {
	roundtrip.RoundTripTestForAPIGroup(t, Install, fuzzer.Funcs)
}
