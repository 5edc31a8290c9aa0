package etcd

import (
	"reflect"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// maxInterned bounds each of the pool's tables; a full table is emptied
// (what was shared stays shared) and fills again with the values that come.
const maxInterned = 16384

// maxInternedLen is the longest string or byte slice the pool keeps.
const maxInternedLen = 4096

// internPool makes equal strings and managedFields of decoded objects share
// one copy. The watch cache keeps every stored object decoded, and the same
// values recur in nearly all of them: the namespace, the managers, API
// versions and field sets of managedFields, conditions' types, reasons and
// messages, claim names. Objects decoded from storage are read-only by the
// API server's convention (the watch cache hands them out to every reader),
// so sharing their values is safe.
type internPool struct {
	mu      sync.Mutex
	strings map[string]string
	bytes   map[string][]byte
}

func newInternPool() *internPool {
	return &internPool{strings: map[string]string{}, bytes: map[string][]byte{}}
}

func (p *internPool) string(s string) string {
	if s == "" || len(s) > maxInternedLen {
		return s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.strings[s]; ok {
		return c
	}
	if len(p.strings) >= maxInterned {
		clear(p.strings)
	}
	p.strings[s] = s
	return s
}

func (p *internPool) raw(b []byte) []byte {
	if len(b) == 0 || len(b) > maxInternedLen {
		return b
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.bytes[string(b)]; ok {
		return c
	}
	if len(p.bytes) >= maxInterned {
		clear(p.bytes)
	}
	b = b[:len(b):len(b)] // an append to a shared value copies it
	p.bytes[string(b)] = b
	return b
}

var objectMetaType = reflect.TypeFor[metav1.ObjectMeta]()

// object interns the values of a decoded object in place.
func (p *internPool) object(obj runtime.Object) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return
	}
	p.value(v.Elem())
}

func (p *internPool) value(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			v.SetString(p.string(v.String()))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			p.value(v.Elem())
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := range v.Len() {
			p.value(v.Index(i))
		}
	case reflect.Map:
		if v.Type().Elem().Kind() != reflect.String {
			return
		}
		iter := v.MapRange()
		for iter.Next() {
			if s := iter.Value().String(); s != "" {
				v.SetMapIndex(iter.Key(), reflect.ValueOf(p.string(s)).Convert(v.Type().Elem()))
			}
		}
	case reflect.Struct:
		if v.Type() == objectMetaType {
			if v.CanAddr() {
				p.objectMeta(v.Addr().Interface().(*metav1.ObjectMeta))
			}
			return
		}
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				p.value(f)
			}
		}
	}
}

// objectMeta interns what objects share; names, UIDs and resource versions
// are each object's own and would only churn the pool.
func (p *internPool) objectMeta(m *metav1.ObjectMeta) {
	m.Namespace = p.string(m.Namespace)
	for i := range m.Finalizers {
		m.Finalizers[i] = p.string(m.Finalizers[i])
	}
	for k, v := range m.Labels {
		m.Labels[k] = p.string(v)
	}
	for k, v := range m.Annotations {
		m.Annotations[k] = p.string(v)
	}
	for i := range m.OwnerReferences {
		r := &m.OwnerReferences[i]
		r.APIVersion, r.Kind = p.string(r.APIVersion), p.string(r.Kind)
	}
	for i := range m.ManagedFields {
		f := &m.ManagedFields[i]
		f.Manager, f.APIVersion, f.Subresource = p.string(f.Manager), p.string(f.APIVersion), p.string(f.Subresource)
		f.Operation = metav1.ManagedFieldsOperationType(p.string(string(f.Operation)))
		f.FieldsType = p.string(f.FieldsType)
		if f.FieldsV1 != nil {
			f.FieldsV1.Raw = p.raw(f.FieldsV1.Raw)
		}
	}
}

// internCodec is a storage codec whose decoded objects share recurring
// values through pool.
type internCodec struct {
	runtime.Codec
	pool *internPool
}

// Decode decodes as the wrapped codec, then interns the object's values.
func (c internCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	obj, gvk, err := c.Codec.Decode(data, defaults, into)
	if err == nil {
		c.pool.object(obj)
	}
	return obj, gvk, err
}
