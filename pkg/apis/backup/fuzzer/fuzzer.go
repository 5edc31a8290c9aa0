// Package fuzzer fills random internal objects for the round-trip test, with
// the fields that decoding defaults already set (a defaulted field cannot
// round-trip from empty).
package fuzzer

import (
	runtimeserializer "k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"

	"example.com/backup-operator/pkg/apis/backup"
)

// Funcs returns the fuzzer functions of the backup group.
var Funcs = func(codecs runtimeserializer.CodecFactory) []interface{} {
	return []interface{}{
		func(s *backup.BackupPolicySpec, c randfill.Continue) {
			c.FillNoCustom(s)
			if s.ConcurrencyPolicy == "" {
				s.ConcurrencyPolicy = backup.ForbidConcurrent
			}
		},
		func(r *backup.RetentionPolicy, c randfill.Continue) {
			c.FillNoCustom(r)
			if r.KeepFailed == nil {
				r.KeepFailed = new(int32)
			}
		},
		func(a *backup.HookAction, c randfill.Continue) {
			c.FillNoCustom(a)
			if a.Timeout == nil {
				t := intstr.FromString("60s")
				a.Timeout = &t
			}
			if a.OnError == "" {
				a.OnError = backup.HookFail // a post action of a Backup would default to Continue; the fuzzer fills both lists alike
			}
			if a.WhenNoPods == "" {
				a.WhenNoPods = backup.HookNoPodsSkip
			}
		},
		func(s *backup.RestoreJobSpec, c randfill.Continue) {
			c.FillNoCustom(s)
			if s.Mode == "" {
				s.Mode = backup.RestoreModeMerge
			}
		},
	}
}
