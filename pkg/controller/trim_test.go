package controller

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/safety"
)

// fullPod is a pod as kube-apiserver sends it: a database with a sidecar,
// an init container, volumes of several kinds and a full status.
func fullPod() *corev1.Pod {
	created := metav1.NewTime(time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC))
	mounts := []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/postgresql"}, {Name: "config", MountPath: "/etc/pg"},
		{Name: "kube-api-access-x", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "db-0", UID: "pod-uid", ResourceVersion: "42", CreationTimestamp: created,
			Labels:          map[string]string{"app": "db", "statefulset.kubernetes.io/pod-name": "db-0"},
			Annotations:     map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("{}", 500), readerSpecAnnotation: "abc"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "db-7f9c", UID: "rs-uid", Controller: ptr.To(true)}},
			Finalizers:      []string{"example.com/keep"},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{}}`)}}}},
		Spec: corev1.PodSpec{
			NodeName:        "node-1",
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](999), RunAsGroup: ptr.To[int64](999), FSGroup: ptr.To[int64](999), RunAsNonRoot: ptr.To(true)},
			Volumes: []corev1.Volume{
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "pg-data"}}},
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "pg"}}}},
				{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}},
			},
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox", Command: []string{"sh", "-c", "true"}, VolumeMounts: mounts}},
			Containers: []corev1.Container{
				// The first container that mounts the claim with a security
				// context decides the mover's identity, even without run-as
				// fields: here the pod's.
				{Name: "wal-shipper", Image: "shipper:1", VolumeMounts: mounts[:1],
					SecurityContext: &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(true)}},
				{Name: "postgres", Image: "postgres:15", Env: []corev1.EnvVar{{Name: "PGDATA", Value: "/var/lib/postgresql/data"}},
					VolumeMounts:    mounts,
					SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To[int64](70), AllowPrivilegeEscalation: ptr.To(false)},
					Resources:       corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}},
				{Name: "exporter", Image: "exporter:1", VolumeMounts: mounts[1:]},
			},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			PodIP:      "10.0.0.5", HostIP: "192.168.1.1", QOSClass: corev1.PodQOSBurstable,
			ContainerStatuses: []corev1.ContainerStatus{
				{Name: "postgres", Ready: true, Image: "postgres:15", ImageID: "sha256:abc", ContainerID: "containerd://1",
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: `{"error":"disk full"}`}}},
				{Name: "exporter", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: `secret "s3" not found`}}},
			},
		},
	}
}

// fullJob is one of the operator's backup Jobs as kube-apiserver sends it.
func fullJob() *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "backup-x", UID: "job-uid", ResourceVersion: "7",
			CreationTimestamp: metav1.NewTime(time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)),
			Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy, v1alpha1.JobKindLabel: "backup",
				v1alpha1.OwnerUIDLabel: "owner-uid", v1alpha1.ClaimLabel: "pg-data", batchv1.ControllerUidLabel: "job-uid"},
			Annotations: map[string]string{v1alpha1.OwnerAnnotation: "prod/nightly", "other.example/note": "x"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "backup.example.com/v1alpha1", Kind: "BackupPolicy", Name: "nightly",
				UID: "owner-uid", Controller: ptr.To(true)}}},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](2),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
				Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: moverContainer, Image: "backup-operator:1",
					Command: []string{"backup-mover", "backup", "--lock-until", "2026-11-30T03:00:00Z"},
					Env:     []corev1.EnvVar{{Name: "X", Value: "y"}}}}},
			},
		},
		Status: batchv1.JobStatus{Active: 1, Failed: 1, StartTime: ptr.To(metav1.Now()),
			Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "too many", LastProbeTime: metav1.Now()}}},
	}
}

func trim(t *testing.T, obj interface{}) interface{} {
	t.Helper()
	out, err := TrimCached(obj)
	if err != nil {
		t.Fatal(err)
	}
	again, err := TrimCached(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, again) {
		t.Fatalf("trimming twice differs from once:\n%#v\n%#v", out, again)
	}
	return out
}

func jsonSize(t *testing.T, o interface{}) int {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// TestTrimCachedKeepsWhatIsRead runs the readers of cached pods and Jobs on
// full and trimmed objects: every answer is the same, and the trimmed
// objects are a fraction of the full ones.
func TestTrimCachedKeepsWhatIsRead(t *testing.T) {
	full := fullPod()
	pod := trim(t, fullPod()).(*corev1.Pod)
	if fs, ts := jsonSize(t, full), jsonSize(t, pod); ts*2 > fs {
		t.Errorf("a trimmed pod is %d bytes of JSON against %d in full; want at most half", ts, fs)
	}
	if pod.ResourceVersion != "42" || pod.UID != "pod-uid" || !pod.CreationTimestamp.Equal(&full.CreationTimestamp) ||
		!reflect.DeepEqual(pod.Labels, full.Labels) || !reflect.DeepEqual(pod.OwnerReferences, full.OwnerReferences) {
		t.Errorf("the pod's metadata changed: %+v", pod.ObjectMeta)
	}
	if pod.ManagedFields != nil || !reflect.DeepEqual(pod.Annotations, map[string]string{readerSpecAnnotation: "abc"}) {
		t.Errorf("want no managedFields and only the operator's annotations, got %v and %v", pod.ManagedFields, pod.Annotations)
	}
	for _, c := range []struct {
		what        string
		full, trimm interface{}
	}{
		{"the claims index", must(safety.PodsByPVC(full)), must(safety.PodsByPVC(pod))},
		{"the workload's identity", workloadIdentity([]*corev1.Pod{full}, "pg-data"), workloadIdentity([]*corev1.Pod{pod}, "pg-data")},
		{"the hook's container of the claim", hookAnswer(full, "pg-data", ""), hookAnswer(pod, "pg-data", "")},
		{"a named hook container", hookAnswer(full, "pg-data", "exporter"), hookAnswer(pod, "pg-data", "exporter")},
		{"an unknown hook container", hookAnswer(full, "pg-data", "nope"), hookAnswer(pod, "pg-data", "nope")},
		{"a claim no container mounts", hookAnswer(full, "other", ""), hookAnswer(pod, "other", "")},
		{"the report", reportAnswer(full), reportAnswer(pod)},
		{"the reader check", IsReader(full), IsReader(pod)},
		{"the reader's failure", readerFailure(full), readerFailure(pod)},
		{"the pod ended", podEnded(full), podEnded(pod)},
		{"the node and phase", full.Spec.NodeName + string(full.Status.Phase), pod.Spec.NodeName + string(pod.Status.Phase)},
		{"the waiting reason", *full.Status.ContainerStatuses[1].State.Waiting, *pod.Status.ContainerStatuses[1].State.Waiting},
	} {
		if !reflect.DeepEqual(c.full, c.trimm) {
			t.Errorf("%s: %v from the full pod, %v from the trimmed one", c.what, c.full, c.trimm)
		}
	}

	// A reader pod that failed at its start.
	fullReader := fullPod()
	fullReader.Labels = map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy, v1alpha1.JobKindLabel: ReaderKind}
	fullReader.Status.Phase = corev1.PodFailed
	reader := trim(t, fullReader.DeepCopy()).(*corev1.Pod)
	if !IsReader(reader) || readerFailure(reader) != "disk full" || !podEnded(reader) {
		t.Errorf("a trimmed reader pod: IsReader %v, failure %q, ended %v; want true, \"disk full\", true", IsReader(reader), readerFailure(reader), podEnded(reader))
	}
	if IsReader(fullReader) != IsReader(reader) || readerFailure(fullReader) != readerFailure(reader) {
		t.Error("the reader checks differ on the full and the trimmed reader pod")
	}
	if id := workloadIdentity([]*corev1.Pod{pod}, "pg-data"); id == nil || id.RunAsUser == nil || *id.RunAsUser != 999 {
		t.Errorf("the mover's identity from the trimmed pod is %+v; want the pod's user 999 (its first container mounting the claim has a security context without one)", id)
	}

	fullJ := fullJob()
	job := trim(t, fullJob()).(*batchv1.Job)
	if fs, ts := jsonSize(t, fullJ), jsonSize(t, job); ts >= fs {
		t.Errorf("a trimmed Job is %d bytes of JSON against %d in full", ts, fs)
	}
	owner := &metav1.ObjectMeta{Namespace: "prod", Name: "nightly", UID: "owner-uid"}
	for _, c := range []struct {
		what        string
		full, trimm interface{}
	}{
		{"the repository lock held until", jobLockedUntil(fullJ), jobLockedUntil(job)},
		{"finished", safety.JobFinished(fullJ), safety.JobFinished(job)},
		{"owned", ownedBy(fullJ, owner), ownedBy(job, owner)},
		{"the node", fullJ.Spec.Template.Spec.NodeName, job.Spec.Template.Spec.NodeName},
		{"the counts", [3]int32{fullJ.Status.Active, fullJ.Status.Succeeded, fullJ.Status.Failed}, [3]int32{job.Status.Active, job.Status.Succeeded, job.Status.Failed}},
		{"the owner annotation", fullJ.Annotations[v1alpha1.OwnerAnnotation], job.Annotations[v1alpha1.OwnerAnnotation]},
		{"the running mover", runningAnswer(fullJ), runningAnswer(job)},
		{"the labels", fullJ.Labels, job.Labels},
	} {
		if !reflect.DeepEqual(c.full, c.trimm) {
			t.Errorf("%s: %v from the full Job, %v from the trimmed one", c.what, c.full, c.trimm)
		}
	}
	if jobLockedUntil(job) == nil {
		t.Error("the trimmed backup Job lost its --lock-until")
	}
	// Someone else's Job keeps no containers: a script in its command can
	// be long, and nothing reads it.
	fullJ.Labels = map[string]string{"app": "etl"}
	if other := trim(t, fullJ).(*batchv1.Job); len(other.Spec.Template.Spec.Containers) != 0 || !safety.JobFinished(other) {
		t.Errorf("another's Job: want no containers and its conditions, got %+v", other.Spec.Template.Spec)
	}

	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "db-7f9c", ResourceVersion: "3",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "db", UID: "d", Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Template: corev1.PodTemplateSpec{Spec: full.Spec}}}
	trimmedRS := trim(t, rs).(*appsv1.ReplicaSet)
	if !reflect.DeepEqual(metav1.GetControllerOf(trimmedRS), metav1.GetControllerOf(rs)) || trimmedRS.ResourceVersion != "3" || len(trimmedRS.Spec.Template.Spec.Containers) != 0 {
		t.Errorf("a trimmed replica set: want its controller and resourceVersion, no template; got %+v", trimmedRS)
	}

	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "pg-data", Annotations: map[string]string{"pv.kubernetes.io/bind-completed": "yes"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kcm"}}},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}
	if got := trim(t, pvc).(*corev1.PersistentVolumeClaim); got.ManagedFields != nil || got.Status.Phase != corev1.ClaimBound || len(got.Annotations) != 1 {
		t.Errorf("a claim keeps all but managedFields; got %+v", got)
	}

	tombstone := cache.DeletedFinalStateUnknown{Key: "prod/db-0", Obj: fullPod()}
	if got := trim(t, tombstone); !reflect.DeepEqual(got, tombstone) {
		t.Errorf("a tombstone changed: %#v", got)
	}
}

func must(v []string, err error) []string {
	if err != nil {
		panic(err)
	}
	return v
}

func hookAnswer(p *corev1.Pod, claim, name string) string {
	c, err := hookContainer(p, claim, name)
	if err != nil {
		return "error: " + err.Error()
	}
	return c
}

func reportAnswer(p *corev1.Pod) string {
	pod, summary, message := reportOf([]*corev1.Pod{p}, false)
	return pod.Name + "|" + message + "|" + (map[bool]string{true: "summary", false: "none"})[summary != nil]
}

func runningAnswer(j *batchv1.Job) string {
	o, busy := safety.RunningMover([]*batchv1.Job{j}, safety.Owner{UID: "someone"})
	return o.String() + (map[bool]string{true: " busy", false: ""})[busy]
}
