package validation

import (
	"reflect"
	"strings"
	"testing"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"example.com/backup-operator/pkg/apis/backup"
)

// specField is one leaf field of a spec: a scalar, or a pointer, slice or map
// taken as a whole.
type specField struct {
	name  string // Go path below spec, e.g. Target.PVCName
	index []int
}

// specFields lists the leaf fields of a spec type, so the update tests cover a
// field added later without being edited.
func specFields(t reflect.Type) []specField {
	var out []specField
	var walk func(t reflect.Type, name string, index []int)
	walk = func(t reflect.Type, name string, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			n := strings.TrimPrefix(name+"."+f.Name, ".")
			idx := append(append([]int(nil), index...), i)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, n, idx)
				continue
			}
			out = append(out, specField{n, idx})
		}
	}
	walk(t, "", nil)
	return out
}

// change sets v to a value that is not semantically equal to it.
func change(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		} else {
			v.Set(reflect.Zero(v.Type()))
		}
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	default:
		t.Fatalf("no way to change a %s; teach change()", v.Type())
	}
}

// immutableSpecError returns the error of an immutable spec, or nil.
func immutableSpecError(errs field.ErrorList) *field.Error {
	for _, e := range errs {
		if e.Field == "spec" && e.Type == field.ErrorTypeInvalid && strings.HasPrefix(e.Detail, apimachineryvalidation.FieldImmutableErrorMsg) {
			return e
		}
	}
	return nil
}

func TestEveryBackupSpecFieldIsImmutable(t *testing.T) {
	uid := int64(1000)
	old := &backup.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns", ResourceVersion: "1"},
		Spec: backup.BackupSpec{PolicyName: "p", Target: backup.VolumeTarget{PVCName: "data", Namespace: "ns"}, Storage: backup.RepositoryStorage{PVCName: "repo"},
			MoverSecurityContext: &backup.MoverSecurityContext{RunAsUser: &uid}},
	}
	for _, f := range specFields(reflect.TypeOf(old.Spec)) {
		t.Run(f.name, func(t *testing.T) {
			b := old.DeepCopy()
			change(t, reflect.ValueOf(&b.Spec).Elem().FieldByIndex(f.index))
			errs := ValidateBackupUpdate(b, old)
			e := immutableSpecError(errs)
			if e == nil {
				t.Fatalf("a change of spec.%s was not refused as immutable: %v", f.name, errs)
			}
			msg := e.Error()
			if !strings.Contains(msg, "create a new Backup instead") || strings.Contains(msg, "PVCName") {
				t.Errorf("message should say what to do and not dump the internal struct: %s", msg)
			}
		})
	}
	// Metadata stays mutable, also when the spec holds pointers (a copy has
	// new ones, as a decoded request has).
	b := old.DeepCopy()
	b.Labels = map[string]string{"team": "db"}
	b.Finalizers = []string{"example.com/hold"}
	if errs := ValidateBackupUpdate(b, old); len(errs) != 0 {
		t.Errorf("metadata change refused: %v", errs)
	}
}

func TestEveryRestoreJobSpecFieldIsImmutable(t *testing.T) {
	class := "fast"
	old := &backup.RestoreJob{
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns", ResourceVersion: "1"},
		Spec: backup.RestoreJobSpec{BackupName: "b", BackupNamespace: "ns", Mode: backup.RestoreModeMerge,
			Target: backup.RestoreTarget{PVCName: "data", Namespace: "ns", NewPVC: &backup.NewPVCSpec{StorageClassName: &class}}},
	}
	for _, f := range specFields(reflect.TypeOf(old.Spec)) {
		t.Run(f.name, func(t *testing.T) {
			r := old.DeepCopy()
			change(t, reflect.ValueOf(&r.Spec).Elem().FieldByIndex(f.index))
			errs := ValidateRestoreJobUpdate(r, old)
			e := immutableSpecError(errs)
			if e == nil {
				t.Fatalf("a change of spec.%s was not refused as immutable: %v", f.name, errs)
			}
			if !strings.Contains(e.Error(), "create a new RestoreJob instead") {
				t.Errorf("message should say what to do: %s", e)
			}
		})
	}
	// Inside newPVC, too (the whole sub-struct is compared).
	r := old.DeepCopy()
	r.Spec.Target.NewPVC.AccessModes = []string{"ReadWriteOnce"}
	if errs := ValidateRestoreJobUpdate(r, old); immutableSpecError(errs) == nil {
		t.Errorf("a change of spec.target.newPVC.accessModes was not refused as immutable: %v", errs)
	}
	// Metadata stays mutable.
	r = old.DeepCopy()
	r.Finalizers = []string{"example.com/hold"}
	if errs := ValidateRestoreJobUpdate(r, old); len(errs) != 0 {
		t.Errorf("metadata change refused: %v", errs)
	}
}

// TestBackupPolicySpecFieldsMutableAsListed pins which fields of a policy may
// change: all of today's. A field added later is immutable until
// mutablePolicyFields lists it (and this test with it).
func TestBackupPolicySpecFieldsMutableAsListed(t *testing.T) {
	mutable := map[string]bool{"Schedule": true, "TimeZone": true, "Suspend": true, "Target": true, "Storage": true,
		"Retention": true, "ConcurrencyPolicy": true, "StartingDeadlineSeconds": true, "MoverSecurityContext": true, "Hooks": true}
	old := validPolicy()
	old.ResourceVersion = "1"
	for _, f := range specFields(reflect.TypeOf(old.Spec)) {
		t.Run(f.name, func(t *testing.T) {
			p := old.DeepCopy()
			change(t, reflect.ValueOf(&p.Spec).Elem().FieldByIndex(f.index))
			refused := immutableSpecError(ValidateBackupPolicyUpdate(p, old)) != nil
			if want := !mutable[strings.Split(f.name, ".")[0]]; refused != want {
				t.Errorf("change of spec.%s: refused as immutable = %v, want %v", f.name, refused, want)
			}
		})
	}
	if errs := ValidateBackupPolicyUpdate(old.DeepCopy(), old); len(errs) != 0 {
		t.Errorf("no-op update: %v", errs)
	}
}
