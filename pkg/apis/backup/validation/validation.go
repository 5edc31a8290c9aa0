// Package validation holds the shape rules of the backup.example.com API: what
// can be decided from the object alone. Rules that need live cluster state
// (restore safety, the requester's permissions) live in pkg/registry.
package validation

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"example.com/backup-operator/pkg/apis/backup"
)

// MaxPolicyNameLength keeps "<policy>-<yyyymmddhhmm>", the name of a scheduled
// Backup, within the 63 characters of a label value, so Backups and their Jobs
// can be selected by policy and by name.
const MaxPolicyNameLength = 50

// cronParser accepts the five standard fields and the descriptors (@daily,
// @every 30m, ...), exactly what the controller schedules with.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a policy's schedule in its time zone. It is the one
// parser both validation and the controller use, so what is accepted runs.
func ParseSchedule(schedule string, timeZone *string) (cron.Schedule, error) {
	loc, err := LoadTimeZone(timeZone)
	if err != nil {
		return nil, err
	}
	if strings.Contains(schedule, "TZ=") {
		return nil, fmt.Errorf("a time zone inside the schedule is not supported; set spec.timeZone instead")
	}
	sched, err := cronParser.Parse(schedule)
	if err != nil {
		return nil, err
	}
	if spec, ok := sched.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	return sched, nil
}

// LoadTimeZone loads an IANA time zone; nil or empty means UTC.
func LoadTimeZone(timeZone *string) (*time.Location, error) {
	if timeZone == nil || *timeZone == "" {
		return time.UTC, nil
	}
	if *timeZone == "Local" {
		// "Local" would mean the server's zone, which differs between clusters.
		return nil, fmt.Errorf(`"Local" depends on the server; name an IANA zone such as "Europe/Berlin" or "UTC"`)
	}
	return time.LoadLocation(*timeZone)
}

// ValidateBackupPolicy validates a new BackupPolicy.
func ValidateBackupPolicy(p *backup.BackupPolicy) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&p.ObjectMeta, true, validatePolicyName, field.NewPath("metadata"))
	return append(allErrs, validateBackupPolicySpec(&p.Spec, field.NewPath("spec"))...)
}

// ValidateBackupPolicyUpdate validates an update of a BackupPolicy's spec and
// metadata. Every field of today's spec may change (mutablePolicyFields); one
// added later is immutable until it is listed there.
func ValidateBackupPolicyUpdate(p, old *backup.BackupPolicy) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&p.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	immutable := p.Spec // with the mutable fields as they were, the rest must equal old
	mutablePolicyFields(&immutable, &old.Spec)
	allErrs = append(allErrs, validateImmutable(immutable, old.Spec, field.NewPath("spec"),
		"this field of a BackupPolicy cannot change; create a new BackupPolicy instead")...)
	return append(allErrs, validateBackupPolicySpec(&p.Spec, field.NewPath("spec"))...)
}

// mutablePolicyFields copies into to the fields of from that an update of a
// BackupPolicy may change: the schedule, target, repository, retention and
// mover identity are edited in place, apply to the Backups created after, and
// the controller follows (generation).
func mutablePolicyFields(to, from *backup.BackupPolicySpec) {
	to.Schedule = from.Schedule
	to.TimeZone = from.TimeZone
	to.Suspend = from.Suspend
	to.Target = from.Target
	to.Storage = from.Storage
	to.Retention = from.Retention
	to.ConcurrencyPolicy = from.ConcurrencyPolicy
	to.StartingDeadlineSeconds = from.StartingDeadlineSeconds
	to.MoverSecurityContext = from.MoverSecurityContext
}

// validateImmutable refuses a change of a whole (sub-)struct with the error of
// ValidateImmutableField ("field is immutable"), plus what to do instead. The
// value is left out of the message: it is the internal struct, with Go names.
func validateImmutable(newVal, oldVal interface{}, fld *field.Path, advice string) field.ErrorList {
	errs := apimachineryvalidation.ValidateImmutableField(newVal, oldVal, fld)
	for _, e := range errs {
		e.BadValue = field.OmitValueType{}
		e.Detail += ": " + advice
	}
	return errs
}

// ValidateBackupPolicyStatusUpdate validates a write to /status.
func ValidateBackupPolicyStatusUpdate(p, old *backup.BackupPolicy) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&p.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	fld := field.NewPath("status")
	allErrs = append(allErrs, validateNonNegative(p.Status.MissedRuns, fld.Child("missedRuns"))...)
	for i, name := range p.Status.Active {
		allErrs = append(allErrs, validateDNSSubdomain(name, fld.Child("active").Index(i))...)
	}
	return allErrs
}

func validatePolicyName(name string, prefix bool) []string {
	msgs := apimachineryvalidation.NameIsDNSLabel(name, prefix)
	if !prefix && len(name) > MaxPolicyNameLength {
		msgs = append(msgs, fmt.Sprintf("must be no more than %d characters, so the names of its scheduled Backups (<policy>-<yyyymmddhhmm>) fit in 63", MaxPolicyNameLength))
	}
	return msgs
}

func validateBackupPolicySpec(spec *backup.BackupPolicySpec, fld *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if spec.TimeZone != nil {
		if _, err := LoadTimeZone(spec.TimeZone); err != nil {
			allErrs = append(allErrs, field.Invalid(fld.Child("timeZone"), *spec.TimeZone,
				fmt.Sprintf("unknown time zone (%v); use an IANA name such as \"Europe/Berlin\", or leave it unset for UTC", err)))
		}
	}
	switch {
	case strings.TrimSpace(spec.Schedule) == "":
		allErrs = append(allErrs, field.Required(fld.Child("schedule"), `a cron schedule such as "0 2 * * *" (daily at 02:00) or "@every 1h"`))
	default:
		zone := spec.TimeZone
		if len(allErrs) > 0 { // the zone is already reported; judge the schedule alone
			zone = nil
		}
		if _, err := ParseSchedule(spec.Schedule, zone); err != nil {
			allErrs = append(allErrs, field.Invalid(fld.Child("schedule"), spec.Schedule,
				fmt.Sprintf("%v; use five fields (minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\") or a descriptor (@daily, @hourly, @every 30m)", err)))
		}
	}
	allErrs = append(allErrs, validateVolumeTarget(&spec.Target, fld.Child("target"))...)
	allErrs = append(allErrs, validateStorage(&spec.Storage, fld.Child("storage"))...)
	allErrs = append(allErrs, validateRetention(&spec.Retention, fld.Child("retention"))...)
	switch spec.ConcurrencyPolicy {
	case backup.ForbidConcurrent, backup.AllowConcurrent:
	default:
		allErrs = append(allErrs, field.NotSupported(fld.Child("concurrencyPolicy"), spec.ConcurrencyPolicy,
			[]string{string(backup.ForbidConcurrent), string(backup.AllowConcurrent)}))
	}
	if spec.StartingDeadlineSeconds != nil && *spec.StartingDeadlineSeconds <= 0 {
		allErrs = append(allErrs, field.Invalid(fld.Child("startingDeadlineSeconds"), *spec.StartingDeadlineSeconds,
			"must be greater than 0; leave it unset to always start a missed run once"))
	}
	return append(allErrs, validateMoverSecurityContext(spec.MoverSecurityContext, fld.Child("moverSecurityContext"))...)
}

// validateMoverSecurityContext: IDs are not negative, and the user is not
// root (the field exists for namespaces where root is forbidden).
func validateMoverSecurityContext(sc *backup.MoverSecurityContext, fld *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var allErrs field.ErrorList
	if sc.RunAsUser != nil && *sc.RunAsUser <= 0 {
		allErrs = append(allErrs, field.Invalid(fld.Child("runAsUser"), *sc.RunAsUser,
			"must be greater than 0: the mover runs as root unless the namespace forbids it, and there it may not; use the user that owns the claim's files"))
	}
	for name, v := range map[string]*int64{"runAsGroup": sc.RunAsGroup, "fsGroup": sc.FSGroup} {
		if v != nil && *v < 0 {
			allErrs = append(allErrs, field.Invalid(fld.Child(name), *v, "must not be negative"))
		}
	}
	return allErrs
}

func validateRetention(r *backup.RetentionPolicy, fld *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	anyKeep := false
	for _, rule := range []struct {
		name  string
		value *int32
		keeps bool
	}{
		{"keepLast", r.KeepLast, true},
		{"keepDaily", r.KeepDaily, true},
		{"keepWeekly", r.KeepWeekly, true},
		{"keepMonthly", r.KeepMonthly, true},
		{"keepFailed", r.KeepFailed, false},
	} {
		if rule.value == nil {
			continue
		}
		if *rule.value < 0 {
			allErrs = append(allErrs, field.Invalid(fld.Child(rule.name), *rule.value, "must be greater than or equal to 0"))
			continue
		}
		if rule.keeps && *rule.value > 0 {
			anyKeep = true
		}
	}
	if !anyKeep && len(allErrs) == 0 {
		allErrs = append(allErrs, field.Required(fld,
			"at least one of keepLast, keepDaily, keepWeekly or keepMonthly must be greater than 0, for example keepLast: 7"))
	}
	return allErrs
}

func validateVolumeTarget(t *backup.VolumeTarget, fld *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if t.PVCName == "" {
		allErrs = append(allErrs, field.Required(fld.Child("pvcName"), "the name of the PersistentVolumeClaim to back up"))
	} else {
		allErrs = append(allErrs, validateDNSSubdomain(t.PVCName, fld.Child("pvcName"))...)
	}
	if t.Namespace != "" {
		for _, msg := range validation.IsDNS1123Label(t.Namespace) {
			allErrs = append(allErrs, field.Invalid(fld.Child("namespace"), t.Namespace, msg))
		}
	}
	return allErrs
}

func validateStorage(s *backup.RepositoryStorage, fld *field.Path) field.ErrorList {
	if s.PVCName == "" {
		return nil // defaulted by the server
	}
	return validateDNSSubdomain(s.PVCName, fld.Child("pvcName"))
}

func validateDNSSubdomain(name string, fld *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		allErrs = append(allErrs, field.Invalid(fld, name, msg))
	}
	return allErrs
}

func validateNonNegative(v int64, fld *field.Path) field.ErrorList {
	if v < 0 {
		return field.ErrorList{field.Invalid(fld, v, "must be greater than or equal to 0")}
	}
	return nil
}

// ValidateBackup validates a new Backup.
func ValidateBackup(b *backup.Backup) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&b.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	fld := field.NewPath("spec")
	if b.Spec.PolicyName != "" {
		for _, msg := range validatePolicyName(b.Spec.PolicyName, false) {
			allErrs = append(allErrs, field.Invalid(fld.Child("policyName"), b.Spec.PolicyName, msg))
		}
	}
	if b.Spec.Target.PVCName == "" && b.Spec.PolicyName == "" {
		allErrs = append(allErrs, field.Required(fld.Child("target", "pvcName"),
			"name the PersistentVolumeClaim to back up, or set spec.policyName to take target and storage from a BackupPolicy"))
	} else {
		allErrs = append(allErrs, validateVolumeTarget(&b.Spec.Target, fld.Child("target"))...)
	}
	allErrs = append(allErrs, validateMoverSecurityContext(b.Spec.MoverSecurityContext, fld.Child("moverSecurityContext"))...)
	return append(allErrs, validateStorage(&b.Spec.Storage, fld.Child("storage"))...)
}

// ValidateBackupUpdate refuses any change of a Backup's spec, a field added
// later included: a Backup records what was backed up, and changing that
// afterwards would make it lie.
func ValidateBackupUpdate(b, old *backup.Backup) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&b.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateImmutable(b.Spec, old.Spec, field.NewPath("spec"),
		"a Backup records what was backed up; create a new Backup instead")...)
}

// ValidateBackupStatusUpdate validates a write to a Backup's /status.
func ValidateBackupStatusUpdate(b, old *backup.Backup) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&b.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	fld := field.NewPath("status")
	switch b.Status.Phase {
	case "", backup.BackupPhasePending, backup.BackupPhaseRunning, backup.BackupPhaseCompleted, backup.BackupPhaseFailed:
	default:
		allErrs = append(allErrs, field.NotSupported(fld.Child("phase"), b.Status.Phase, []string{
			string(backup.BackupPhasePending), string(backup.BackupPhaseRunning), string(backup.BackupPhaseCompleted), string(backup.BackupPhaseFailed)}))
	}
	if s := b.Status.Stats; s != nil {
		sf := fld.Child("stats")
		allErrs = append(allErrs, validateNonNegative(s.Files, sf.Child("files"))...)
		allErrs = append(allErrs, validateNonNegative(s.Bytes, sf.Child("bytes"))...)
		allErrs = append(allErrs, validateNonNegative(s.NewBytes, sf.Child("newBytes"))...)
		allErrs = append(allErrs, validateNonNegative(s.StoredBytes, sf.Child("storedBytes"))...)
	}
	return allErrs
}

// ValidateRestoreJob validates a new RestoreJob.
func ValidateRestoreJob(r *backup.RestoreJob) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&r.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	fld := field.NewPath("spec")
	if r.Spec.BackupName == "" {
		allErrs = append(allErrs, field.Required(fld.Child("backupName"), "the name of a Completed Backup (kubectl get backups)"))
	} else {
		allErrs = append(allErrs, validateDNSSubdomain(r.Spec.BackupName, fld.Child("backupName"))...)
	}
	if r.Spec.BackupNamespace != "" {
		for _, msg := range validation.IsDNS1123Label(r.Spec.BackupNamespace) {
			allErrs = append(allErrs, field.Invalid(fld.Child("backupNamespace"), r.Spec.BackupNamespace, msg))
		}
	}
	tf := fld.Child("target")
	allErrs = append(allErrs, validateVolumeTarget(&backup.VolumeTarget{PVCName: r.Spec.Target.PVCName, Namespace: r.Spec.Target.Namespace}, tf)...)
	if n := r.Spec.Target.NewPVC; n != nil {
		nf := tf.Child("newPVC")
		if n.Size != nil && n.Size.Sign() <= 0 {
			allErrs = append(allErrs, field.Invalid(nf.Child("size"), n.Size.String(), "must be greater than 0, or unset to size the claim from the backup"))
		}
		if n.StorageClassName != nil && *n.StorageClassName != "" {
			allErrs = append(allErrs, validateDNSSubdomain(*n.StorageClassName, nf.Child("storageClassName"))...)
		}
		valid := []string{"ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"}
		for i, m := range n.AccessModes {
			switch m {
			case "ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany":
			default:
				allErrs = append(allErrs, field.NotSupported(nf.Child("accessModes").Index(i), m, valid))
			}
		}
	}
	switch r.Spec.Mode {
	case backup.RestoreModeMerge, backup.RestoreModeMirror:
	default:
		allErrs = append(allErrs, field.NotSupported(fld.Child("mode"), r.Spec.Mode,
			[]string{string(backup.RestoreModeMerge), string(backup.RestoreModeMirror)}))
	}
	return append(allErrs, validateMoverSecurityContext(r.Spec.MoverSecurityContext, fld.Child("moverSecurityContext"))...)
}

// ValidateRestoreJobUpdate refuses any change of a RestoreJob's spec, a field
// added later included: the safety checks were made for the spec as created.
func ValidateRestoreJobUpdate(r, old *backup.RestoreJob) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&r.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateImmutable(r.Spec, old.Spec, field.NewPath("spec"),
		"the safety checks were made for the spec as created; create a new RestoreJob instead")...)
}

// ValidateRestoreJobStatusUpdate validates a write to a RestoreJob's /status.
func ValidateRestoreJobStatusUpdate(r, old *backup.RestoreJob) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&r.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	switch r.Status.Phase {
	case "", backup.RestorePhasePending, backup.RestorePhaseRunning, backup.RestorePhaseCompleted, backup.RestorePhaseFailed:
	default:
		allErrs = append(allErrs, field.NotSupported(field.NewPath("status", "phase"), r.Status.Phase, []string{
			string(backup.RestorePhasePending), string(backup.RestorePhaseRunning), string(backup.RestorePhaseCompleted), string(backup.RestorePhaseFailed)}))
	}
	return allErrs
}
