package etcd

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/apiserver"
)

// The pool never holds more than maxInterned values of a kind, nor long ones.
func TestInternPoolIsBounded(t *testing.T) {
	p := newInternPool()
	for i := range maxInterned + 10 {
		p.string(fmt.Sprint("value-", i))
		p.raw([]byte(fmt.Sprint("raw-", i)))
		if len(p.strings) > maxInterned || len(p.bytes) > maxInterned {
			t.Fatalf("after %d values the pool holds %d strings and %d byte slices, want at most %d", i+1, len(p.strings), len(p.bytes), maxInterned)
		}
	}
	if len(p.strings) != 10 || len(p.bytes) != 10 {
		t.Errorf("the pool holds %d strings and %d byte slices after it was emptied and given 10 more, want 10", len(p.strings), len(p.bytes))
	}
	long := strings.Repeat("x", maxInternedLen+1)
	p.string(long)
	if _, ok := p.strings[long]; ok {
		t.Errorf("the pool keeps a string of %d bytes", len(long))
	}
}

// storedBackup is a Backup's JSON as etcd holds it.
func storedBackup(b *testing.B, name string) []byte {
	at := metav1.NewTime(time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC))
	msg := "the repository PersistentVolumeClaim ns/repo does not exist; create it in the target's namespace"
	data, err := json.Marshal(&v1alpha1.Backup{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "Backup"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: "a5b0c3c2-0b4e-4b7e-9d55-2f0f3b0d1e9a", Finalizers: []string{"backup.example.com/data"},
			ManagedFields: []metav1.ManagedFieldsEntry{
				{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "backup.example.com/v1alpha1", Time: &at,
					FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:target":{"f:pvcName":{}}}}`)}},
				{Manager: "backup-apiserver", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "backup.example.com/v1alpha1", Time: &at,
					FieldsType: "FieldsV1", Subresource: "status", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:message":{},"f:phase":{}}}`)}}}},
		Spec: v1alpha1.BackupSpec{Target: v1alpha1.VolumeTarget{PVCName: "data", Namespace: "ns"}, Storage: v1alpha1.RepositoryStorage{PVCName: "repo"}},
		Status: v1alpha1.BackupStatus{Phase: v1alpha1.BackupPhaseFailed, Message: msg, CompletionTime: &at,
			Conditions: []metav1.Condition{{Type: "Failed", Status: metav1.ConditionTrue, Reason: "RepositoryNotFound", Message: msg, LastTransitionTime: at}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkDecode decodes stored Backups as the watch cache does, without
// and with the pool: what interning adds to each decode.
func BenchmarkDecode(b *testing.B) {
	codec := apiserver.Codecs.LegacyCodec(v1alpha1.SchemeGroupVersion)
	for _, c := range []struct {
		name  string
		codec runtime.Codec
	}{{"plain", codec}, {"interned", internCodec{Codec: codec, pool: newInternPool()}}} {
		b.Run(c.name, func(b *testing.B) {
			data := storedBackup(b, "b")
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.codec.Decode(data, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
