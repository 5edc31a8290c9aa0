package controller

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/mover/report"
	"example.com/backup-operator/pkg/safety"
)

// The reader pods of the files subresource.
const (
	// ReaderKind is the JobKindLabel value of a reader pod.
	ReaderKind = "reader"
	// ReaderPort is where `backup-mover serve` listens in its pod.
	ReaderPort = 8080
	// readerSpecAnnotation is the hash of everything a reader pod was made
	// from: a pod of the expected name with another hash reads another
	// repository (or with other Secrets) and is replaced.
	readerSpecAnnotation = v1alpha1.GroupName + "/reader-spec"
	// readerReadyTimeout is how long a request waits for a reader pod to be
	// ready before it is answered 503 with Retry-After.
	readerReadyTimeout = 45 * time.Second
	// readerExitDelay is how long an idle reader reports not ready before it
	// exits (backup-mover serve --exit-delay): longer than its readiness
	// probe's period and the kubelet's status update, so a request is not
	// sent to a reader that has just exited.
	readerExitDelay = 3 * time.Second
	// ReaderKeySecret is the Secret in Options.ReaderKeyNamespace whose
	// data.key every replica derives the reader pods' tokens from.
	ReaderKeySecret = "backup-apiserver-reader-key"
	readerKeyBytes  = 32
)

// Readers starts, finds and removes the short-lived reader pods that serve
// the files subresource of Backups: `backup-mover serve` with the Backup's
// repository, one pod per repository (and its Secrets and the mover's
// identity) in the repository's namespace. The pod runs as the mover runs
// for a prune (repoCaps), with the repository claim mounted read-only, no
// service account token and a read-only root filesystem; it exits by itself
// after IdleTimeout without requests, and Readers deletes every reader pod
// that has ended. Any replica of backup-apiserver serves the subresource, so
// Readers does not need the controllers' Lease.
//
// A reader answers only requests that carry its token
// (report.ReaderTokenHeader): other pods reach its port directly, past the
// API's authorization. The token is an HMAC of the pod's namespace and name
// under a key in the Secret ReaderKeySecret, which any replica reads; the
// pod holds only the token's SHA-256, so reading the pod gives no token.
type Readers struct {
	m *Manager
	// IdleTimeout is how long a reader pod waits without requests before it
	// exits.
	IdleTimeout time.Duration
	config      *rest.Config
	transport   http.RoundTripper

	keyMu sync.Mutex
	key   []byte
}

// NewReaders returns Readers that create pods with opts' image, requests,
// Pod Security default and reader idle time through kube (config is its
// connection, also used to reach the pods through kube-apiserver's pod
// proxy). The checker's pods tell a restricted namespace's workload identity.
func NewReaders(opts Options, kube kubernetes.Interface, config *rest.Config, checker *safety.Checker) (*Readers, error) {
	transport, err := rest.TransportFor(config)
	if err != nil {
		return nil, err
	}
	opts = opts.Defaulted()
	return &Readers{m: &Manager{opts: opts, kube: kube, checker: checker}, IdleTimeout: opts.ReaderIdleTimeout, config: config, transport: transport}, nil
}

// ReaderEndpoint is a ready reader pod: requests to URL + "/v1/..." reach
// `backup-mover serve` in it through kube-apiserver, with Transport.
type ReaderEndpoint struct {
	Namespace, Pod string
	URL            string
	Transport      http.RoundTripper
	// Token goes with every request in report.ReaderTokenHeader.
	Token string
}

// tokenKey returns the key of the reader tokens: data.key of the Secret
// ReaderKeySecret, created with a random key when it does not exist. It is
// read once; reload reads it again (a pod made with another key was found).
func (r *Readers) tokenKey(ctx context.Context, reload bool) ([]byte, error) {
	r.keyMu.Lock()
	defer r.keyMu.Unlock()
	if r.key != nil && !reload {
		return r.key, nil
	}
	ns := r.m.opts.ReaderKeyNamespace
	secrets := r.m.kube.CoreV1().Secrets(ns)
	for {
		s, err := secrets.Get(ctx, ReaderKeySecret, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			key := make([]byte, readerKeyBytes)
			if _, err := rand.Read(key); err != nil {
				return nil, err
			}
			s, err = secrets.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: ReaderKeySecret, Namespace: ns,
					Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedBy}},
				Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"key": key}}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue // another replica made it first: use theirs
			}
			if err == nil {
				klog.FromContext(ctx).Info("Created the key of the reader pods' tokens", "secret", klog.KObj(s))
			}
		}
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("reading the key of the reader pods' tokens, Secret %s/%s: %w", ns, ReaderKeySecret, err))
		}
		if len(s.Data["key"]) < readerKeyBytes {
			return nil, apierrors.NewInternalError(fmt.Errorf("the Secret %s/%s holds no key of %d bytes or more in data.key: delete it, and backup-apiserver creates a new one", ns, ReaderKeySecret, readerKeyBytes))
		}
		r.key = s.Data["key"]
		return r.key, nil
	}
}

// readerToken is the token of the reader pod ns/name under key, and its
// SHA-256 as the pod holds it.
func readerToken(key []byte, ns, name string) (token, hash string) {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("backup-reader\x00" + ns + "\x00" + name))
	token = hex.EncodeToString(m.Sum(nil))
	sum := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(sum[:])
}

// podTokenHash is the token hash a reader pod was made with.
func podTokenHash(pod *corev1.Pod) string {
	for _, c := range pod.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == report.ReaderTokenHashEnv {
				return e.Value
			}
		}
	}
	return ""
}

// readerPod builds the reader pod of b's repository, with the hash of its
// token under key.
func (r *Readers) readerPod(ctx context.Context, b *v1alpha1.Backup, key []byte) (*corev1.Pod, error) {
	ns := b.Spec.Target.Namespace
	sec, err := r.m.securityFor(ctx, ns, b.Spec.Target.PVCName, b.Spec.MoverSecurityContext, repoCaps)
	if refused, ok := errors.AsType[*jobRefused](err); ok {
		return nil, apierrors.NewConflict(v1alpha1.Resource("backups/files"), b.Name, errors.New("cannot start a reader of the repository: "+refused.msg))
	}
	if err != nil {
		return nil, err
	}
	s := jobSpec{kind: ReaderKind, namespace: ns, owner: b, repo: b.Spec.Storage, security: sec,
		args: []string{"serve", "--listen", fmt.Sprintf(":%d", ReaderPort), "--idle-timeout", r.IdleTimeout.String(),
			"--exit-delay", readerExitDelay.String(), "--summary-file", "/dev/termination-log"}}
	lbls, spec := r.m.moverPod(s)
	// A reader serves every Backup of its repository: no owner labels.
	delete(lbls, v1alpha1.OwnerNamespaceLabel)
	delete(lbls, v1alpha1.OwnerNameLabel)
	delete(lbls, v1alpha1.OwnerUIDLabel)
	if s.repo.S3 == nil {
		// Read-only: the reader never writes to the repository.
		for i := range spec.Volumes {
			if v := spec.Volumes[i].PersistentVolumeClaim; v != nil && spec.Volumes[i].Name == "repo" {
				v.ReadOnly = true
			}
		}
		for i := range spec.Containers[0].VolumeMounts {
			if spec.Containers[0].VolumeMounts[i].Name == "repo" {
				spec.Containers[0].VolumeMounts[i].ReadOnly = true
			}
		}
	}
	c := &spec.Containers[0]
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: ReaderPort, Protocol: corev1.ProtocolTCP}}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(ReaderPort)}},
		PeriodSeconds: 1, TimeoutSeconds: 3, FailureThreshold: 1}
	// A backstop: a reader that never goes idle (a client that never stops)
	// ends with a mover Job's deadline.
	spec.ActiveDeadlineSeconds = ptr.To(int64(r.m.opts.JobDeadline.Seconds()))
	// The pod's name carries the hash of its spec: the repository with its
	// Secrets, the identity the reader runs as, the image and the idle time.
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	hash := shortHash(string(specJSON))
	name := "backup-reader-" + hash
	// The token's hash is not part of the spec's: a pod made under another
	// key is found by its name and replaced (Ensure).
	_, tokenHash := readerToken(key, ns, name)
	c.Env = append(c.Env, corev1.EnvVar{Name: report.ReaderTokenHashEnv, Value: tokenHash})
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbls,
			Annotations: map[string]string{readerSpecAnnotation: hash}},
		Spec: spec,
	}, nil
}

// IsReader reports whether pod is a reader pod of ours.
func IsReader(pod *corev1.Pod) bool {
	return pod.Labels[v1alpha1.ManagedByLabel] == v1alpha1.ManagedBy && pod.Labels[v1alpha1.JobKindLabel] == ReaderKind &&
		pod.Annotations[readerSpecAnnotation] != ""
}

func podEnded(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Ensure returns the ready reader pod of b's repository, creating it (or
// replacing one that has ended) when needed, and waiting up to
// readerReadyTimeout for it. Its errors are API errors: 409 when a pod of
// the reader's name is not ours or the namespace refuses the reader, 503
// with Retry-After while the pod is not ready, 500 with the reader's own
// message when it failed to start (a wrong password, a damaged repository).
func (r *Readers) Ensure(ctx context.Context, b *v1alpha1.Backup) (*ReaderEndpoint, error) {
	key, err := r.tokenKey(ctx, false)
	if err != nil {
		return nil, err
	}
	want, err := r.readerPod(ctx, b, key)
	if err != nil {
		return nil, err
	}
	token, tokenHash := readerToken(key, want.Namespace, want.Name)
	reloaded := false
	pods := r.m.kube.CoreV1().Pods(want.Namespace)
	deadline := time.Now().Add(readerReadyTimeout)
	var pod *corev1.Pod
	for {
		if pod == nil {
			pod, err = pods.Get(ctx, want.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				pod, err = pods.Create(ctx, want, metav1.CreateOptions{})
				if err == nil {
					klog.FromContext(ctx).V(2).Info("Started a reader pod", "pod", klog.KObj(pod))
				}
				if apierrors.IsAlreadyExists(err) {
					pod, err = nil, nil
					continue
				}
			}
			if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
				return nil, apierrors.NewConflict(v1alpha1.Resource("backups/files"), b.Name,
					fmt.Errorf("cannot start the reader pod %s/%s: %v", want.Namespace, want.Name, err))
			}
			if err != nil {
				return nil, err
			}
		}
		if !IsReader(pod) || pod.Annotations[readerSpecAnnotation] != want.Annotations[readerSpecAnnotation] {
			if IsReader(pod) {
				// Same name, other spec: a hash collision cannot be told from a
				// pod made by another version; neither is used.
				return nil, apierrors.NewConflict(v1alpha1.Resource("backups/files"), b.Name,
					fmt.Errorf("the pod %s/%s reads another repository; delete it and retry", pod.Namespace, pod.Name))
			}
			return nil, apierrors.NewConflict(v1alpha1.Resource("backups/files"), b.Name,
				fmt.Errorf("a pod named %s/%s exists and is not a reader of backup-apiserver: delete or rename it, then retry", pod.Namespace, pod.Name))
		}
		if !sameReader(pod, want) {
			// Named and labelled as ours, but not what we start: not used,
			// and not deleted either.
			return nil, apierrors.NewConflict(v1alpha1.Resource("backups/files"), b.Name,
				fmt.Errorf("the pod %s/%s is named and labelled as a reader of backup-apiserver but does not run what its reader runs: delete it, then retry", pod.Namespace, pod.Name))
		}
		if got := podTokenHash(pod); got != tokenHash && !podEnded(pod) {
			if !reloaded {
				// Another replica may have made the key afresh: read it again.
				reloaded = true
				if key, err = r.tokenKey(ctx, true); err != nil {
					return nil, err
				}
				if want, err = r.readerPod(ctx, b, key); err != nil {
					return nil, err
				}
				if token, tokenHash = readerToken(key, want.Namespace, want.Name); got == tokenHash {
					continue
				}
			}
			// Made under a key that is no more: it is replaced once the
			// deletion is through (the wait below).
			klog.FromContext(ctx).V(2).Info("Replacing a reader pod made under another key", "pod", klog.KObj(pod))
			if err := r.remove(ctx, pod); err != nil {
				return nil, apierrors.NewInternalError(fmt.Errorf("cannot replace the reader pod %s/%s made under another key: %w", pod.Namespace, pod.Name, err))
			}
		} else if pod.Status.Phase == corev1.PodFailed && podStartFailed(pod) {
			// The reader could not open the repository: say why, and let the
			// next request try again with a fresh pod.
			msg := readerFailure(pod)
			_ = r.remove(ctx, pod) // logged; the next request tries it again
			return nil, apierrors.NewInternalError(fmt.Errorf("the reader of %s could not open it: %s", repoDescription(pod.Namespace, b.Spec.Storage), msg))
		} else if podEnded(pod) {
			_ = r.remove(ctx, pod) // logged; the wait below sees it go or ends in 503
			pod = nil
		} else if podReady(pod) {
			return &ReaderEndpoint{Namespace: pod.Namespace, Pod: pod.Name, Transport: r.transport, Token: token,
				URL: strings.TrimSuffix(r.config.Host, "/") + "/api/v1/namespaces/" + url.PathEscape(pod.Namespace) + "/pods/" +
					url.PathEscape(fmt.Sprintf("%s:%d", pod.Name, ReaderPort)) + "/proxy"}, nil
		}
		if time.Now().After(deadline) {
			why := "it is " + strings.ToLower(string(podPhase(pod)))
			if pod != nil {
				if msg := r.m.podBlocked(ctx, pod); msg != "" {
					why = msg
				}
			}
			err := apierrors.NewServiceUnavailable(fmt.Sprintf("the reader pod %s/%s of the Backup's repository is not ready yet (%s); retry shortly", want.Namespace, want.Name, why))
			err.ErrStatus.Details = &metav1.StatusDetails{RetryAfterSeconds: 5}
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if pod != nil {
			if pod, err = pods.Get(ctx, pod.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				pod, err = nil, nil
			} else if err != nil {
				return nil, err
			}
		}
	}
}

func podPhase(pod *corev1.Pod) corev1.PodPhase {
	if pod == nil {
		return "starting"
	}
	return pod.Status.Phase
}

// podStartFailed reports whether a failed reader pod failed at its start
// (its termination message is the mover's error), not by being idle or
// stopped.
func podStartFailed(pod *corev1.Pod) bool {
	return readerFailure(pod) != ""
}

// readerFailure is a failed reader's error from its termination message.
func readerFailure(pod *corev1.Pod) string {
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && t.Message != "" {
			var s struct {
				Error string `json:"error"`
			}
			if json.Unmarshal([]byte(t.Message), &s) == nil && s.Error != "" {
				return s.Error
			}
			return strings.TrimSpace(t.Message)
		}
	}
	return ""
}

// remove deletes a reader pod that has ended or is replaced (only that one:
// the UID is a precondition).
func (r *Readers) remove(ctx context.Context, pod *corev1.Pod) error {
	if pod.DeletionTimestamp != nil {
		return nil
	}
	err := r.m.kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		klog.FromContext(ctx).Error(err, "Cannot delete a reader pod", "pod", klog.KObj(pod))
		return err
	}
	klog.FromContext(ctx).V(2).Info("Deleted a reader pod", "pod", klog.KObj(pod), "phase", pod.Status.Phase)
	return nil
}

// sameReader reports whether pod runs what want runs: the image, command
// and arguments, the repository volume, the security context and the
// service account token. A pod that only copied a reader's name, labels and
// annotation is not sent requests.
func sameReader(pod, want *corev1.Pod) bool {
	w := want.Spec.Containers[0]
	i := slices.IndexFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == w.Name })
	if i < 0 {
		return false
	}
	// Other containers and volumes a mutating webhook adds (a mesh's
	// sidecar) are not the reader's business; its own are compared.
	c := pod.Spec.Containers[i]
	vols := slices.DeleteFunc(slices.Clone(pod.Spec.Volumes), func(v corev1.Volume) bool {
		return !slices.ContainsFunc(want.Spec.Volumes, func(wv corev1.Volume) bool { return wv.Name == v.Name })
	})
	return c.Image == w.Image && slices.Equal(c.Command, w.Command) && slices.Equal(c.Args, w.Args) &&
		equality.Semantic.DeepEqual(c.SecurityContext, w.SecurityContext) &&
		slices.EqualFunc(ownMounts(c.VolumeMounts, w.VolumeMounts), w.VolumeMounts, func(a, b corev1.VolumeMount) bool { return equality.Semantic.DeepEqual(a, b) }) &&
		slices.EqualFunc(vols, want.Spec.Volumes, sameVolume) &&
		equality.Semantic.DeepEqual(pod.Spec.AutomountServiceAccountToken, want.Spec.AutomountServiceAccountToken)
}

// ownMounts are the mounts of got whose volumes want mounts.
func ownMounts(got, want []corev1.VolumeMount) []corev1.VolumeMount {
	return slices.DeleteFunc(slices.Clone(got), func(m corev1.VolumeMount) bool {
		return !slices.ContainsFunc(want, func(w corev1.VolumeMount) bool { return w.Name == m.Name })
	})
}

// sameVolume compares what a reader's volumes are made of (the API server
// defaults other fields, a Secret volume's mode for one).
func sameVolume(a, b corev1.Volume) bool {
	if a.Name != b.Name || (a.EmptyDir == nil) != (b.EmptyDir == nil) ||
		(a.PersistentVolumeClaim == nil) != (b.PersistentVolumeClaim == nil) || (a.Secret == nil) != (b.Secret == nil) {
		return false
	}
	if a.PersistentVolumeClaim != nil && *a.PersistentVolumeClaim != *b.PersistentVolumeClaim {
		return false
	}
	return a.Secret == nil || (a.Secret.SecretName == b.Secret.SecretName && equality.Semantic.DeepEqual(a.Secret.Items, b.Secret.Items))
}

// RemoveEnded watches pods (an informer of all pods) and deletes every
// reader pod that has ended — exited after its idle time, or stopped —
// until ctx is done, so an idle reader leaves nothing behind. A reader that
// could not open its repository stays until a request reports its error.
func (r *Readers) RemoveEnded(ctx context.Context, pods cache.SharedIndexInformer) error {
	check := func(obj any) {
		// A reader that failed to start is left to the request waiting for
		// it, which reports why and then deletes it (Ensure).
		if pod, ok := obj.(*corev1.Pod); ok && IsReader(pod) && podEnded(pod) && !podStartFailed(pod) {
			_ = r.remove(ctx, pod) // logged; the pod's next update tries again
		}
	}
	reg, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: check, UpdateFunc: func(_, obj any) { check(obj) }})
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		_ = pods.RemoveEventHandler(reg)
	}()
	return nil
}
