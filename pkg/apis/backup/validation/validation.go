// Package validation holds the shape rules of the backup.example.com API: what
// can be decided from the object alone. Rules that need live cluster state
// (restore safety, the requester's permissions) live in pkg/registry.
package validation

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strconv"
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
	to.Hooks = from.Hooks
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
	allErrs = append(allErrs, validateBackupHooks(spec.Hooks, fld.Child("hooks"))...)
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

// validateStorage: exactly one location (a claim or S3; an object without
// either gets the server's default claim before validation), a well-formed S3
// location, Secret names, and immutability only for S3.
func validateStorage(s *backup.RepositoryStorage, fld *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if s.PVCName != "" {
		allErrs = append(allErrs, validateDNSSubdomain(s.PVCName, fld.Child("pvcName"))...)
	}
	if s.S3 != nil {
		if s.PVCName != "" {
			allErrs = append(allErrs, field.Forbidden(fld.Child("pvcName"),
				"set exactly one of pvcName or s3: a repository is either a claim or an S3 location; remove pvcName to use S3, or s3 to use the claim"))
		}
		allErrs = append(allErrs, validateS3(s.S3, fld.Child("s3"))...)
	}
	if e := s.Encryption; e != nil {
		allErrs = append(allErrs, validateSecretRef(e.SecretRef, fld.Child("encryption", "secretRef"),
			`the Secret (in the target's namespace) whose key "password" holds the repository password`)...)
	}
	if im := s.Immutability; im != nil {
		ifld := fld.Child("immutability")
		switch {
		case s.S3 == nil:
			allErrs = append(allErrs, field.Forbidden(ifld,
				"object-lock immutability needs an S3 repository (spec.storage.s3) in a bucket created with object lock; remove immutability for a claim repository"))
		case im.Mode == "":
			allErrs = append(allErrs, field.Required(ifld.Child("mode"),
				"Governance (users with the bypass permission may still delete early) or Compliance (nobody can)"))
		case im.Mode != backup.ImmutabilityGovernance && im.Mode != backup.ImmutabilityCompliance:
			allErrs = append(allErrs, field.NotSupported(ifld.Child("mode"), im.Mode,
				[]string{string(backup.ImmutabilityGovernance), string(backup.ImmutabilityCompliance)}))
		}
	}
	return allErrs
}

// maxPrefixLength leaves room below S3's 1024-byte keys for the repository's
// own object names.
const maxPrefixLength = 512

// regionPattern is a plain region token such as us-east-1.
var regionPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]{0,62})$`)

// prefixSegmentPattern is one segment of a key prefix: S3's safe characters.
var prefixSegmentPattern = regexp.MustCompile(`^[A-Za-z0-9!_.*'()-]+$`)

func validateS3(s *backup.S3Storage, fld *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	allErrs = append(allErrs, validateEndpoint(s.Endpoint, fld.Child("endpoint"))...)
	if s.Bucket == "" {
		allErrs = append(allErrs, field.Required(fld.Child("bucket"), "the name of an existing bucket, for example backups"))
	} else {
		for _, msg := range IsS3BucketName(s.Bucket) {
			allErrs = append(allErrs, field.Invalid(fld.Child("bucket"), s.Bucket, msg))
		}
	}
	if s.Prefix != "" {
		for _, msg := range isKeyPrefix(s.Prefix) {
			allErrs = append(allErrs, field.Invalid(fld.Child("prefix"), s.Prefix, msg))
		}
	}
	if s.Region != "" && !regionPattern.MatchString(s.Region) {
		allErrs = append(allErrs, field.Invalid(fld.Child("region"), s.Region,
			"must be a region name of letters, digits, '-' and '_' (at most 63), for example us-east-1; leave it empty to let the client find it out"))
	}
	allErrs = append(allErrs, validateSecretRef(s.CredentialsSecretRef, fld.Child("credentialsSecretRef"),
		"the Secret (in the target's namespace) with the keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")...)
	https := strings.HasPrefix(s.Endpoint, "https://")
	if s.CASecretRef != nil {
		allErrs = append(allErrs, validateSecretRef(*s.CASecretRef, fld.Child("caSecretRef"),
			`the Secret (in the target's namespace) whose key "ca.crt" holds the CA certificate`)...)
		if !https && s.Endpoint != "" {
			allErrs = append(allErrs, field.Forbidden(fld.Child("caSecretRef"),
				"a CA is used only with an https endpoint; change the endpoint to https://, or remove caSecretRef"))
		}
	}
	if s.InsecureSkipTLSVerify {
		switch {
		case !https && s.Endpoint != "":
			allErrs = append(allErrs, field.Forbidden(fld.Child("insecureSkipTLSVerify"),
				"applies to https endpoints only (an http endpoint uses no TLS at all); remove it"))
		case s.CASecretRef != nil:
			allErrs = append(allErrs, field.Forbidden(fld.Child("insecureSkipTLSVerify"),
				"may not be set together with caSecretRef; keep caSecretRef to verify the endpoint's certificate against your CA, and remove insecureSkipTLSVerify"))
		}
	}
	return allErrs
}

// validateEndpoint: an absolute http or https URL of a host (and port),
// nothing else: the repository's place in the service is bucket and prefix.
func validateEndpoint(endpoint string, fld *field.Path) field.ErrorList {
	const example = `for example "https://s3.us-east-1.amazonaws.com" or "http://minio.backup-storage.svc:9000"`
	if endpoint == "" {
		return field.ErrorList{field.Required(fld, "the URL of the S3 service, "+example)}
	}
	invalid := func(msg string) field.ErrorList {
		return field.ErrorList{field.Invalid(fld, endpoint, msg)}
	}
	u, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return invalid(fmt.Sprintf("is not a URL (%v); use scheme, host and optional port, %s", err, example))
	case !strings.HasPrefix(endpoint, "https://") && !strings.HasPrefix(endpoint, "http://"):
		return invalid("must begin with https:// (TLS) or http:// (no TLS), in lowercase, " + example)
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return invalid("must name a host after the scheme, " + example)
	case u.User != nil:
		return invalid("must not contain user information; put the keys in the Secret of credentialsSecretRef")
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return invalid("must be only scheme, host and optional port; put the bucket in bucket and any path in prefix")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return invalid("has an invalid port; use a number from 1 to 65535, " + example)
		}
	}
	return nil
}

// IsS3BucketName returns what is wrong with name as the name of an S3 bucket
// (the rules of AWS, which MinIO and the other S3-compatible services keep),
// each with what to use instead; none when it is valid.
func IsS3BucketName(name string) []string {
	var msgs []string
	if len(name) < 3 || len(name) > 63 {
		msgs = append(msgs, "must be 3 to 63 characters long")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			msgs = append(msgs, "must consist of lowercase letters, digits, '.' and '-' only (bucket names have no uppercase letters or underscores)")
			break
		}
	}
	if name != "" && !(isLowerAlnum(name[0]) && isLowerAlnum(name[len(name)-1])) {
		msgs = append(msgs, "must begin and end with a lowercase letter or digit")
	}
	if strings.Contains(name, "..") || strings.Contains(name, ".-") || strings.Contains(name, "-.") {
		msgs = append(msgs, "must not contain two adjacent periods or a period next to a hyphen")
	}
	if ip := net.ParseIP(name); ip != nil {
		msgs = append(msgs, "must not be formatted as an IP address")
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			msgs = append(msgs, fmt.Sprintf("must not begin with the reserved prefix %q", p))
		}
	}
	for _, sfx := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, sfx) {
			msgs = append(msgs, fmt.Sprintf("must not end with the reserved suffix %q", sfx))
		}
	}
	if len(msgs) > 0 {
		msgs[len(msgs)-1] += `; use the name of the existing bucket exactly as the service shows it, for example "backups"`
	}
	return msgs
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// isKeyPrefix: a clean relative path of S3-safe segments.
func isKeyPrefix(prefix string) []string {
	const advice = `; use a relative path such as "production/postgres-data"`
	if len(prefix) > maxPrefixLength {
		return []string{fmt.Sprintf("must be at most %d characters", maxPrefixLength)}
	}
	if strings.HasPrefix(prefix, "/") {
		return []string{"must not begin with '/'" + advice}
	}
	if prefix != path.Clean(prefix) {
		return []string{fmt.Sprintf("must be a clean path without empty segments or a trailing '/' (%q)%s", path.Clean(prefix), advice)}
	}
	for _, seg := range strings.Split(prefix, "/") {
		switch {
		case seg == "." || seg == "..":
			return []string{"must not contain '.' or '..' segments" + advice}
		case !prefixSegmentPattern.MatchString(seg):
			return []string{"may contain only letters, digits, '/', and the characters - _ . ! * ' ( )" + advice}
		}
	}
	return nil
}

func validateSecretRef(ref backup.LocalSecretReference, fld *field.Path, what string) field.ErrorList {
	if ref.Name == "" {
		return field.ErrorList{field.Required(fld.Child("name"), what)}
	}
	var allErrs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(ref.Name) {
		allErrs = append(allErrs, field.Invalid(fld.Child("name"), ref.Name, msg+"; name the Secret as `kubectl get secrets` shows it"))
	}
	return allErrs
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
	allErrs = append(allErrs, validateBackupHooks(b.Spec.Hooks, fld.Child("hooks"))...)
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
		allErrs = append(allErrs, validateNonNegative(s.Vanished, sf.Child("vanished"))...)
		allErrs = append(allErrs, validateNonNegative(s.ChangedDuringRead, sf.Child("changedDuringRead"))...)
	}
	return append(allErrs, validateHookStatuses(b.Status.Hooks, fld.Child("hooks"))...)
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
	allErrs = append(allErrs, validateRestorePaths(r.Spec.Paths, fld.Child("paths"))...)
	allErrs = append(allErrs, validateRestoreHooks(r.Spec.Hooks, fld.Child("hooks"))...)
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
	return append(allErrs, validateHookStatuses(r.Status.Hooks, field.NewPath("status", "hooks"))...)
}
