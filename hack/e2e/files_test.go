//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// filesGet sends GET path (under the Backup's files subresource) to
// kube-apiserver as the admin, with extra headers, and returns the status,
// headers and body. path is sent as written (".." included).
func filesGet(t *testing.T, ns, backup, path string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", local.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.Host + "/apis/backup.example.com/v1alpha1/namespaces/" + ns + "/backups/" + backup + "/files"
	if path != "" {
		u += "/" + path
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: rt, Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

type fileList struct {
	Kind, APIVersion, Path string
	Items                  []struct {
		Name, Type, LinkTarget string
		Size                   int64
		Mode                   int32
		UID, GID               int64
		ModTime                time.Time
	}
}

// TestBackupFiles reads a Backup's files through kubectl and the API,
// without a restore: listings (JSON and kubectl's Table), a file's bytes
// (whole, and a range), a symlink; 404 for a path the backup lacks, 400 for
// "..", 409 for a Backup that is not Completed, 403 for a user who may get
// backups but not backups/files; the reader pod is read-only and gone after
// its idle time.
func TestBackupFiles(t *testing.T) {
	ns := "e2e-files"
	namespace(t, ns)
	claims(t, ns, true)
	sums := runPod(t, ns, "fill", `mkdir -p /data/etc/conf.d /data/empty && echo 'listen 8080' > /data/etc/app.conf && chmod 640 /data/etc/app.conf &&
chown 1001:2002 /data/etc/app.conf && ln -s app.conf /data/etc/link && head -c 3000000 /dev/urandom > /data/big && echo x > /data/etc/conf.d/a &&
touch -d '2026-01-02 03:04:05' /data/etc/app.conf && sha256sum /data/big`, "data")
	wantBig := strings.Fields(sums)[0]
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: browse, namespace: %s}
spec: {target: {pvcName: data}}
`, ns))
	waitBackup(t, ns, "browse")
	raw := "/apis/backup.example.com/v1alpha1/namespaces/" + ns + "/backups/browse/files"

	// 1. The root and a directory, through kubectl get --raw.
	var root, etc fileList
	if err := json.Unmarshal([]byte(kubectl(t, "get", "--raw", raw)), &root); err != nil {
		t.Fatal(err)
	}
	if root.Kind != "BackupFileList" || root.APIVersion != "backup.example.com/v1alpha1" || root.Path != "." {
		t.Errorf("root listing: kind %q apiVersion %q path %q", root.Kind, root.APIVersion, root.Path)
	}
	var names []string
	for _, it := range root.Items {
		names = append(names, it.Name+":"+it.Type)
		if it.Name == "big" && it.Size != 3000000 {
			t.Errorf("big: size %d", it.Size)
		}
	}
	if got := strings.Join(names, ","); got != "big:File,empty:Directory,etc:Directory" {
		t.Errorf("root entries %s", got)
	}
	if err := json.Unmarshal([]byte(kubectl(t, "get", "--raw", raw+"/etc")), &etc); err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for i, it := range etc.Items {
		byName[it.Name] = i
	}
	if len(etc.Items) != 3 || etc.Path != "etc" {
		t.Fatalf("etc listing: %+v", etc)
	}
	if a := etc.Items[byName["app.conf"]]; a.Type != "File" || a.Mode != 0o640 || a.UID != 1001 || a.GID != 2002 || a.Size != 12 ||
		!a.ModTime.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("etc/app.conf: %+v", a)
	}
	if l := etc.Items[byName["link"]]; l.Type != "Symlink" || l.LinkTarget != "app.conf" {
		t.Errorf("etc/link: %+v", l)
	}
	if d := etc.Items[byName["conf.d"]]; d.Type != "Directory" {
		t.Errorf("etc/conf.d: %+v", d)
	}

	// 2. Files: kubectl get --raw > file, byte for byte; a range; a symlink
	// lists itself and is not followed.
	if got := kubectl(t, "get", "--raw", raw+"/etc/app.conf"); got != "listen 8080\n" {
		t.Errorf("etc/app.conf: %q", got)
	}
	cmd := exec.Command("kubectl", "--kubeconfig", local.AdminKubeconfig, "get", "--raw", raw+"/big")
	var big bytes.Buffer
	cmd.Stdout = &big
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(big.Bytes()); hex.EncodeToString(sum[:]) != wantBig {
		t.Errorf("big downloaded: %d bytes, SHA-256 %x, want %s", big.Len(), sum, wantBig)
	}
	code, h, part := filesGet(t, ns, "browse", "big", map[string]string{"Range": "bytes=1048570-2097160"})
	if code != http.StatusPartialContent || h.Get("Content-Range") != "bytes 1048570-2097160/3000000" ||
		big.Len() == 3000000 && !bytes.Equal(part, big.Bytes()[1048570:2097161]) {
		t.Errorf("range of big: %d %q, %d bytes", code, h.Get("Content-Range"), len(part))
	}
	var link fileList
	if err := json.Unmarshal([]byte(kubectl(t, "get", "--raw", raw+"/etc/link")), &link); err != nil || len(link.Items) != 1 || link.Items[0].Type != "Symlink" {
		t.Errorf("etc/link: %v %+v", err, link)
	}

	// 3. A Table for kubectl.
	code, _, body := filesGet(t, ns, "browse", "etc", map[string]string{"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
	var table struct {
		Kind              string
		ColumnDefinitions []struct{ Name string }
		Rows              []struct{ Cells []any }
	}
	if err := json.Unmarshal(body, &table); err != nil || code != 200 || table.Kind != "Table" || len(table.Rows) != 3 ||
		len(table.ColumnDefinitions) < 6 || table.ColumnDefinitions[3].Name != "Mode" {
		t.Errorf("table of etc: %d %v %s", code, err, body)
	} else if row := table.Rows[byName["app.conf"]].Cells; row[3] != "-rw-r-----" || row[4] != "1001:2002" {
		t.Errorf("table row of app.conf: %v", row)
	}

	// 4. Errors: 404, 400 for "..", 409 for a Backup that is not Completed.
	if out, err := local.Kubectl(context.Background(), "get", "--raw", raw+"/etc/missing.conf"); err == nil ||
		!strings.Contains(string(out), "NotFound") && !strings.Contains(string(out), "not found") {
		t.Errorf("a missing path: %v\n%s", err, out)
	}
	if code, _, body := filesGet(t, ns, "browse", "etc/../big", nil); code != http.StatusBadRequest || !strings.Contains(string(body), "must be relative") {
		t.Errorf(`a path with "..": %d %s`, code, body)
	}
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: failed, namespace: %s}
spec: {target: {pvcName: data}, storage: {pvcName: no-such-claim}}
`, ns))
	waitFor(t, ns, "backup", "failed", "Failed")
	if code, _, body := filesGet(t, ns, "failed", "", nil); code != http.StatusConflict || !strings.Contains(string(body), "not Completed") {
		t.Errorf("files of a Failed Backup: %d %s", code, body)
	}

	// 5. RBAC: get on backups is not get on backups/files.
	apply(t, fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: viewer, namespace: %[1]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: backups-only, namespace: %[1]s}
rules:
- {apiGroups: [backup.example.com], resources: [backups], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: viewer, namespace: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: backups-only}
subjects: [{kind: ServiceAccount, name: viewer, namespace: %[1]s}]
`, ns))
	as := "--as=system:serviceaccount:" + ns + ":viewer"
	if _, err := local.Kubectl(context.Background(), as, "-n", ns, "get", "backup", "browse"); err != nil {
		t.Errorf("the viewer cannot get the Backup: %v", err)
	}
	if out, err := local.Kubectl(context.Background(), as, "get", "--raw", raw+"/etc/app.conf"); err == nil || !strings.Contains(string(out), "Forbidden") && !strings.Contains(string(out), "forbidden") {
		t.Errorf("the viewer read a file: %v\n%s", err, out)
	}
	// With backups/files granted, the same user reads it.
	apply(t, fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: backups-only, namespace: %s}
rules:
- {apiGroups: [backup.example.com], resources: [backups, backups/files], verbs: [get, list]}
`, ns))
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := local.Kubectl(context.Background(), as, "get", "--raw", raw+"/etc/app.conf")
		if err == nil && string(out) == "listen 8080\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with backups/files granted, the viewer still cannot read: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
	}

	// 6. One reader pod: repository read-only, no service account token,
	// answering only backup-apiserver; gone after its idle time.
	var pods struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct {
				AutomountServiceAccountToken *bool
				Volumes                      []struct {
					Name                  string
					PersistentVolumeClaim *struct{ ReadOnly bool }
				}
				Containers []struct {
					VolumeMounts []struct {
						Name     string
						ReadOnly bool
					}
					Env []struct{ Name, Value string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(kubectl(t, "-n", ns, "get", "pods", "-l", "backup.example.com/kind=reader", "-o", "json")), &pods); err != nil || len(pods.Items) != 1 {
		t.Fatalf("reader pods: %v %+v", err, pods)
	}
	p := pods.Items[0]
	if p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken {
		t.Errorf("the reader pod mounts a service account token")
	}
	for _, v := range p.Spec.Volumes {
		if v.Name == "repo" && (v.PersistentVolumeClaim == nil || !v.PersistentVolumeClaim.ReadOnly) {
			t.Errorf("the reader's repository volume is not read-only: %+v", v)
		}
	}
	for _, m := range p.Spec.Containers[0].VolumeMounts {
		if m.Name == "repo" && !m.ReadOnly {
			t.Errorf("the reader's repository mount is not read-only")
		}
	}
	// The pod holds the hash of its token, not the token: a request to its
	// port that does not come through backup-apiserver (here an admin's,
	// through the pod proxy) is refused.
	hashes := 0
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == "BACKUP_READER_TOKEN_SHA256" && regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(e.Value) {
			hashes++
		}
	}
	if hashes != 1 {
		t.Errorf("the reader pod's environment has no token hash: %+v", p.Spec.Containers[0].Env)
	}
	snapID := kubectl(t, "-n", ns, "get", "backup", "browse", "-o", "jsonpath={.status.snapshotID}")
	direct := "/api/v1/namespaces/" + ns + "/pods/" + p.Metadata.Name + ":8080/proxy/v1/snapshots/" + snapID + "/files/etc/app.conf"
	// kubectl shows any 401 as "You must be logged in": -v=8 shows the body.
	if out, err := local.Kubectl(context.Background(), "get", "--raw", direct, "-v=8"); err == nil || strings.Contains(string(out), "listen 8080") ||
		!strings.Contains(string(out), "401 Unauthorized") || !strings.Contains(string(out), "answers backup-apiserver only") {
		t.Errorf("the reader's port without the token: %v\n%s", err, out)
	}
	if got := kubectl(t, "-n", "backup-system", "get", "secret", "backup-apiserver-reader-key", "-o", "jsonpath={.data.key}"); len(got) < 40 {
		t.Errorf("the reader key Secret: %q", got)
	}
	deadline = time.Now().Add(4 * time.Minute)
	for {
		out := kubectl(t, "-n", ns, "get", "pods", "-l", "backup.example.com/kind=reader", "-o", "name")
		if strings.TrimSpace(out) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader pods left 4 minutes after the last request (idle time 2m): %s", out)
		}
		time.Sleep(5 * time.Second)
	}
	// The next request starts a new reader.
	if got := kubectl(t, "get", "--raw", raw+"/etc/app.conf"); got != "listen 8080\n" {
		t.Errorf("etc/app.conf after the reader went idle: %q", got)
	}
}
