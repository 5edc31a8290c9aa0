package controller

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// TrimCached is the transform of the informers that cache kube-apiserver's
// pods, Jobs, replica sets and claims: every one of the cluster's, for the
// restore checks and the controllers. It keeps of each object the fields
// that they read and drops the rest (a pod's or Job's full spec and status
// are most of its size; a replica set's pod template all but its name):
//
//   - pods, Jobs and replica sets: metadata without managedFields, and of
//     the annotations only backup.example.com's;
//   - pods: spec.nodeName; the run-as user, group and fsGroup of the pod's
//     and its containers' security contexts; the volumes that are claims;
//     each container's name, its mounts of those volumes and, when it has a
//     security context, its run-as user and group (the first container
//     with one that mounts the claim decides the mover's identity);
//     status.phase;
//     each container status's name and state (a mover's report is its
//     termination message);
//   - Jobs: the pod template's nodeName and, on the operator's own Jobs, its
//     containers' names and commands (a backup records the --lock-until of
//     its Job's command in its status);
//     status.conditions (type, status, reason, message) and the active,
//     succeeded and failed counts;
//   - replica sets: metadata only (a pod's owner is looked up through its
//     replica set's controller);
//   - claims and anything else: all but managedFields.
//
// Nothing is ever written back from these caches: they are read, and
// objects are deleted by UID. Code that reads another field of a cached
// pod, Job or replica set keeps it here (TestTrimCachedKeepsWhatIsRead runs
// the readers on trimmed objects, and the controller tests' fixture caches
// trimmed objects). The informers are the generic server's shared ones, so
// an admission policy of this server whose paramKind is a pod, Job or
// replica set would read trimmed objects too; none is installed, and such a
// policy belongs on kube-apiserver. Applying it twice gives the same result,
// and it passes through what it does not know (the informer's tombstones).
func TrimCached(obj interface{}) (interface{}, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return trimPod(o), nil
	case *batchv1.Job:
		return trimJob(o), nil
	case *appsv1.ReplicaSet:
		return &appsv1.ReplicaSet{TypeMeta: o.TypeMeta, ObjectMeta: trimMeta(o.ObjectMeta)}, nil
	}
	return StripManagedFields(obj)
}

// StripManagedFields is an informer transform that drops an object's
// managedFields, which nothing in this server reads from a cache; updates
// sent without them keep the stored ones.
func StripManagedFields(obj interface{}) (interface{}, error) {
	if o, err := meta.Accessor(obj); err == nil {
		o.SetManagedFields(nil)
	}
	return obj, nil
}

// trimMeta is m without managedFields and annotations other than the
// operator's own.
func trimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	m.ManagedFields = nil
	var kept map[string]string
	for k, v := range m.Annotations {
		if strings.HasPrefix(k, v1alpha1.GroupName+"/") {
			if kept == nil {
				kept = map[string]string{}
			}
			kept[k] = v
		}
	}
	m.Annotations = kept
	return m
}

func trimPod(p *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{TypeMeta: p.TypeMeta, ObjectMeta: trimMeta(p.ObjectMeta)}
	out.Spec.NodeName = p.Spec.NodeName
	if sc := p.Spec.SecurityContext; sc != nil {
		out.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: sc.RunAsUser, RunAsGroup: sc.RunAsGroup, FSGroup: sc.FSGroup}
	}
	claims := map[string]bool{}
	for _, v := range p.Spec.Volumes {
		if c := v.PersistentVolumeClaim; c != nil {
			claims[v.Name] = true
			out.Spec.Volumes = append(out.Spec.Volumes, corev1.Volume{Name: v.Name,
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.ClaimName, ReadOnly: c.ReadOnly}}})
		}
	}
	// Every container, for its name: a hook without a container name runs
	// in the pod's only one.
	for _, c := range p.Spec.Containers {
		k := corev1.Container{Name: c.Name}
		for _, m := range c.VolumeMounts {
			if claims[m.Name] {
				k.VolumeMounts = append(k.VolumeMounts, corev1.VolumeMount{Name: m.Name, MountPath: m.MountPath, ReadOnly: m.ReadOnly, SubPath: m.SubPath})
			}
		}
		if sc := c.SecurityContext; sc != nil {
			k.SecurityContext = &corev1.SecurityContext{RunAsUser: sc.RunAsUser, RunAsGroup: sc.RunAsGroup}
		}
		out.Spec.Containers = append(out.Spec.Containers, k)
	}
	out.Status.Phase = p.Status.Phase
	for _, cs := range p.Status.ContainerStatuses {
		out.Status.ContainerStatuses = append(out.Status.ContainerStatuses, corev1.ContainerStatus{Name: cs.Name, State: cs.State})
	}
	return out
}

func trimJob(j *batchv1.Job) *batchv1.Job {
	out := &batchv1.Job{TypeMeta: j.TypeMeta, ObjectMeta: trimMeta(j.ObjectMeta)}
	out.Spec.Template.Spec.NodeName = j.Spec.Template.Spec.NodeName
	if j.Labels[v1alpha1.ManagedByLabel] == v1alpha1.ManagedBy {
		for _, c := range j.Spec.Template.Spec.Containers {
			out.Spec.Template.Spec.Containers = append(out.Spec.Template.Spec.Containers, corev1.Container{Name: c.Name, Command: c.Command})
		}
	}
	for _, c := range j.Status.Conditions {
		out.Status.Conditions = append(out.Status.Conditions, batchv1.JobCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message})
	}
	out.Status.Active, out.Status.Succeeded, out.Status.Failed = j.Status.Active, j.Status.Succeeded, j.Status.Failed
	return out
}
