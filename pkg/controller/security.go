package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// moverCaps are the capabilities a mover operation needs as root: all of
// them where the namespace allows any, the baseline ones where it enforces
// baseline (DAC_READ_SEARCH is not one; DAC_OVERRIDE reads and searches too).
type moverCaps struct{ privileged, baseline []corev1.Capability }

var (
	// Reading every file regardless of its permissions, nothing more.
	backupCaps = moverCaps{privileged: []corev1.Capability{"DAC_READ_SEARCH"}, baseline: []corev1.Capability{"DAC_OVERRIDE"}}
	// Writing files with their recorded owners, modes and times.
	restoreCaps = moverCaps{privileged: []corev1.Capability{"CHOWN", "FOWNER", "FSETID", "DAC_OVERRIDE", "DAC_READ_SEARCH"},
		baseline: []corev1.Capability{"CHOWN", "FOWNER", "FSETID", "DAC_OVERRIDE"}}
	// Opening the repository (owned by the mover's user).
	repoCaps = moverCaps{}
)

// moverSecurity is how a mover pod runs.
type moverSecurity struct {
	level psaapi.Level
	pod   *corev1.PodSecurityContext
	caps  []corev1.Capability
}

// securityFor chooses the mover's security context from the Pod Security
// level the Job's namespace enforces:
//   - privileged: root with the operation's capabilities;
//   - baseline: root with baseline capabilities only;
//   - restricted: not root and no capabilities, as set in override, or else
//     as the user, group and fsGroup of a running pod that mounts claim.
//
// A namespace without the label follows PodSecurityDefault (the cluster's
// default level). A restricted namespace with neither identity is a
// jobRefused error saying what to set.
func (m *Manager) securityFor(ctx context.Context, namespace, claim string, override *v1alpha1.MoverSecurityContext, caps moverCaps) (moverSecurity, error) {
	level := psaapi.Level(m.opts.PodSecurityDefault)
	ns, err := m.kube.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	switch {
	case err == nil:
		// As Pod Security admission reads the labels: a value it does not
		// know (a typo, an empty value) enforces restricted.
		policy, _ := psaapi.PolicyToEvaluate(ns.Labels, psaapi.Policy{Enforce: psaapi.LevelVersion{Level: level, Version: psaapi.LatestVersion()}})
		level = policy.Enforce.Level
	case !apierrors.IsNotFound(err):
		return moverSecurity{}, err
	}
	seccomp := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	switch level {
	case psaapi.LevelBaseline:
		return moverSecurity{level: level, caps: caps.baseline,
			pod: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](0), RunAsGroup: ptr.To[int64](0), SeccompProfile: seccomp}}, nil
	case psaapi.LevelRestricted:
		// The workload's identity, each field the override sets replacing it.
		id := workloadIdentity(m.checker.PodsUsing(namespace, claim), claim)
		if id == nil {
			id = &v1alpha1.MoverSecurityContext{}
		}
		if override != nil {
			if override.RunAsUser != nil {
				id.RunAsUser = override.RunAsUser
			}
			if override.RunAsGroup != nil {
				id.RunAsGroup = override.RunAsGroup
			}
			if override.FSGroup != nil {
				id.FSGroup = override.FSGroup
			}
		}
		if id.RunAsUser == nil || *id.RunAsUser == 0 {
			return moverSecurity{}, &jobRefused{reason: "NoNonRootIdentity", msg: fmt.Sprintf(
				"namespace %s enforces Pod Security %q, so the data mover may not run as root, and no running pod that mounts claim %s names a non-root runAsUser; set spec.moverSecurityContext.runAsUser (and runAsGroup, fsGroup) to the user that owns the claim's files",
				namespace, level, claim)}
		}
		pod := &corev1.PodSecurityContext{RunAsUser: id.RunAsUser, RunAsGroup: id.RunAsGroup, FSGroup: id.FSGroup,
			RunAsNonRoot: ptr.To(true), SeccompProfile: seccomp}
		if id.FSGroup != nil {
			// Not a recursive chown of the whole repository at every start.
			pod.FSGroupChangePolicy = ptr.To(corev1.FSGroupChangeOnRootMismatch)
		}
		return moverSecurity{level: level, pod: pod}, nil
	}
	return moverSecurity{level: psaapi.LevelPrivileged, caps: caps.privileged,
		pod: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](0), RunAsGroup: ptr.To[int64](0), SeccompProfile: seccomp}}, nil
}

// workloadIdentity is the user, group and fsGroup of the first running pod
// that mounts claim, the container that mounts it overriding the pod.
func workloadIdentity(pods []*corev1.Pod, claim string) *v1alpha1.MoverSecurityContext {
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning {
			continue
		}
		id := &v1alpha1.MoverSecurityContext{}
		if sc := p.Spec.SecurityContext; sc != nil {
			id.RunAsUser, id.RunAsGroup, id.FSGroup = sc.RunAsUser, sc.RunAsGroup, sc.FSGroup
		}
		volumes := map[string]bool{}
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
				volumes[v.Name] = true
			}
		}
		for _, c := range p.Spec.Containers {
			mounts := false
			for _, vm := range c.VolumeMounts {
				mounts = mounts || volumes[vm.Name]
			}
			if mounts && c.SecurityContext != nil {
				if c.SecurityContext.RunAsUser != nil {
					id.RunAsUser = c.SecurityContext.RunAsUser
				}
				if c.SecurityContext.RunAsGroup != nil {
					id.RunAsGroup = c.SecurityContext.RunAsGroup
				}
				break
			}
		}
		if id.RunAsUser != nil {
			return id
		}
	}
	return nil
}
