package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/klog/v2"

	"example.com/backup-operator/pkg/apis/backup"
	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/controller"
	"example.com/backup-operator/pkg/mover/report"
)

// Readers gives the ready reader pod of a Backup's repository
// (controller.Readers).
type Readers interface {
	Ensure(ctx context.Context, b *v1alpha1.Backup) (*controller.ReaderEndpoint, error)
}

// FilesREST serves the files subresource of backups: GET
// .../backups/NAME/files/PATH lists a directory of the Backup's snapshot
// (BackupFileList; a metav1.Table when asked for one) or returns a file's
// content, ranges honoured. It reads through a reader pod
// (`backup-mover serve`) in the repository's namespace, reached through
// kube-apiserver's pod proxy: nothing is restored.
type FilesREST struct {
	backups rest.Getter
	readers Readers
}

var _ rest.Connecter = &FilesREST{}

// NewFilesREST returns the files subresource of backups read from backups.
func NewFilesREST(backups rest.Getter, readers Readers) *FilesREST {
	return &FilesREST{backups: backups, readers: readers}
}

// New implements rest.Storage.
func (*FilesREST) New() runtime.Object { return &backup.BackupFileList{} }

// Destroy implements rest.Storage.
func (*FilesREST) Destroy() {}

// ConnectMethods implements rest.Connecter: reading only.
func (*FilesREST) ConnectMethods() []string { return []string{http.MethodGet, http.MethodHead} }

// NewConnectOptions implements rest.Connecter: the rest of the URL after
// files/ is the path.
func (*FilesREST) NewConnectOptions() (runtime.Object, bool, string) {
	return &backup.BackupFilesOptions{}, true, "path"
}

// Connect implements rest.Connecter. It refuses a path that is not clean
// (400), a Backup that is not Completed or is being deleted (409), and
// otherwise proxies to the reader.
func (r *FilesREST) Connect(ctx context.Context, name string, opts runtime.Object, responder rest.Responder) (http.Handler, error) {
	o, ok := opts.(*backup.BackupFilesOptions)
	if !ok {
		return nil, fmt.Errorf("invalid options object: %#v", opts)
	}
	p, problem := cleanFilesPath(o.Path)
	if problem != "" {
		return nil, apierrors.NewBadRequest(problem)
	}
	obj, err := r.backups.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	b := obj.(*backup.Backup)
	gr := backup.Resource("backups")
	switch {
	case b.DeletionTimestamp != nil:
		return nil, apierrors.NewConflict(gr, name, errors.New("the Backup is being deleted and its snapshot removed from the repository: read the files of another Backup"))
	case b.Status.Phase != backup.BackupPhaseCompleted || b.Status.SnapshotID == "":
		phase := string(b.Status.Phase)
		if phase == "" {
			phase = "new"
		}
		return nil, apierrors.NewConflict(gr, name, fmt.Errorf("the Backup is %s, not Completed: only a Completed Backup has files to read; wait for it (kubectl wait --for=condition=Completed backup/%s) or read another Backup", phase, name))
	}
	vb := &v1alpha1.Backup{}
	if err := v1alpha1.Convert_backup_Backup_To_v1alpha1_Backup(b, vb, nil); err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.serve(w, req, vb, p, responder)
	}), nil
}

// cleanFilesPath returns the snapshot path of the files subresource's path
// ("." for the root; one leading and one trailing "/" are allowed), or
// what is wrong with it.
func cleanFilesPath(p string) (string, string) {
	// The URL's rest after files/ arrives with its leading slash.
	p = strings.TrimSuffix(strings.TrimPrefix(p, "/"), "/")
	if p == "" || p == "." {
		return ".", ""
	}
	if strings.ContainsRune(p, 0) {
		return "", "the path must not contain a NUL byte"
	}
	for _, el := range strings.Split(p, "/") {
		switch el {
		case "..", ".", "":
			return "", fmt.Sprintf(`the path %q must be relative to the backup's root, without ".." or "." elements or empty ones: name a file or directory as the listing shows it, such as "etc/app.conf"`, p)
		}
	}
	return p, ""
}

// Headers passed on between the client and the reader.
var (
	requestHeaders  = []string{"Range", "If-Range", "If-Modified-Since", "If-None-Match", "If-Unmodified-Since"}
	responseHeaders = []string{"Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "Last-Modified", "ETag", entryTypeHeader}
)

const entryTypeHeader = report.ReaderEntryTypeHeader

// serve answers one request from the Backup's reader. A reader that goes
// away between being found ready and being asked (its idle time ran out) is
// replaced once.
func (r *FilesREST) serve(w http.ResponseWriter, req *http.Request, b *v1alpha1.Backup, p string, responder rest.Responder) {
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		ep, err := r.readers.Ensure(ctx, b)
		if err != nil {
			responder.Error(err)
			return
		}
		u := ep.URL + "/v1/snapshots/" + url.PathEscape(b.Status.SnapshotID) + "/files"
		if p != "." {
			u += "/" + escapePath(p)
		}
		out, err := http.NewRequestWithContext(ctx, req.Method, u, nil)
		if err != nil {
			responder.Error(err)
			return
		}
		for _, h := range requestHeaders {
			if v := req.Header.Values(h); len(v) > 0 {
				out.Header[h] = v
			}
		}
		out.Header.Set(report.ReaderTokenHeader, ep.Token)
		// Never follow a redirect: the transport carries backup-apiserver's
		// credentials, and a reader never redirects.
		resp, err := (&http.Client{Transport: ep.Transport, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}).Do(out)
		if err == nil && resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.StatusCode != http.StatusNotModified {
			resp.Body.Close()
			responder.Error(apierrors.NewInternalError(fmt.Errorf("the reader pod %s/%s answered %s, which a reader never does: not followed", ep.Namespace, ep.Pod, resp.Status)))
			return
		}
		var readerErr *report.ReaderError
		if err == nil && resp.StatusCode >= 400 && resp.Header.Get(entryTypeHeader) == "" {
			// The reader's own error, or kube-apiserver's when its proxy could
			// not reach the reader (a Status).
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			var e struct {
				report.ReaderError
				Kind string `json:"kind"`
			}
			if json.Unmarshal(body, &e) == nil && e.Kind == "" && e.Code != 0 {
				readerErr = &e.ReaderError
				readerErr.Code = resp.StatusCode
			} else {
				err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
			}
		}
		if err != nil {
			if attempt == 0 && ctx.Err() == nil {
				klog.FromContext(ctx).V(2).Info("The reader pod did not answer; trying again", "pod", klog.KRef(ep.Namespace, ep.Pod), "err", err)
				continue
			}
			se := apierrors.NewServiceUnavailable(fmt.Sprintf("cannot reach the reader pod %s/%s: %v; retry shortly", ep.Namespace, ep.Pod, err))
			se.ErrStatus.Details = &metav1.StatusDetails{RetryAfterSeconds: 5}
			responder.Error(se)
			return
		}
		if readerErr != nil && (readerErr.Code == http.StatusUnauthorized || readerErr.Code == http.StatusForbidden) {
			// The reader refused our token, not the user: it may have been
			// replaced since it was found (another replica, another key).
			klog.FromContext(ctx).Info("A reader pod refused backup-apiserver's token", "pod", klog.KRef(ep.Namespace, ep.Pod), "message", readerErr.Message)
			if attempt == 0 && ctx.Err() == nil {
				continue
			}
			responder.Error(apierrors.NewInternalError(fmt.Errorf("the reader pod %s/%s refused backup-apiserver's token (%d); see backup-apiserver's log", ep.Namespace, ep.Pod, readerErr.Code)))
			return
		}
		if readerErr != nil {
			responder.Error(&apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: int32(readerErr.Code),
				Reason: metav1.StatusReason(readerErr.Reason), Message: readerErr.Message,
				Details: &metav1.StatusDetails{Group: backup.GroupName, Kind: "backups", Name: b.Name}}})
			return
		}
		defer resp.Body.Close()
		r.relay(w, req, resp, responder)
		return
	}
}

// relay turns the reader's answer into ours: a listing becomes a
// BackupFileList (or a Table), a file's bytes pass as they are.
func (r *FilesREST) relay(w http.ResponseWriter, req *http.Request, resp *http.Response, responder rest.Responder) {
	switch typ := resp.Header.Get(entryTypeHeader); {
	case resp.StatusCode == http.StatusOK && (typ == string(v1alpha1.BackupFileDirectory) || typ == string(v1alpha1.BackupFileSymlink)):
		if req.Method == http.MethodHead {
			// The reader sends no body; the listing's headers are ours.
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set(entryTypeHeader, typ)
			w.WriteHeader(http.StatusOK)
			return
		}
		var l report.ReaderListing
		if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
			responder.Error(apierrors.NewInternalError(fmt.Errorf("reading the reader's listing: %w", err)))
			return
		}
		list := &v1alpha1.BackupFileList{Path: l.Path, Items: make([]v1alpha1.BackupFile, 0, len(l.Items))}
		list.APIVersion, list.Kind = v1alpha1.SchemeGroupVersion.String(), "BackupFileList"
		for _, it := range l.Items {
			list.Items = append(list.Items, v1alpha1.BackupFile{Name: it.Name, Type: v1alpha1.BackupFileType(it.Type), Size: it.Size,
				Mode: int32(it.Mode), UID: int64(it.UID), GID: int64(it.GID), ModTime: metav1.NewMicroTime(it.ModTime), LinkTarget: it.LinkTarget})
		}
		if wantsTable(req) {
			writeFilesTable(w, req, list)
			return
		}
		responder.Object(http.StatusOK, list)
	default:
		// A file's content, or a status without a body (304, 416).
		for _, h := range responseHeaders {
			if v := resp.Header.Values(h); len(v) > 0 {
				w.Header()[h] = v
			}
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(resp.StatusCode)
		if req.Method == http.MethodHead {
			return
		}
		_, _ = io.Copy(flushWriter{w}, resp.Body)
	}
}

// flushWriter flushes after every write, so a large download streams.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

// escapePath escapes each element of a slash-separated path.
func escapePath(p string) string {
	els := strings.Split(p, "/")
	for i, el := range els {
		els[i] = url.PathEscape(el)
	}
	return strings.Join(els, "/")
}

// wantsTable reports whether the client asked for a metav1.Table, as kubectl
// does (Accept: application/json;as=Table;v=v1;g=meta.k8s.io).
func wantsTable(req *http.Request) bool {
	for _, accept := range strings.Split(req.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(accept))
		if err == nil && mt == "application/json" && params["as"] == "Table" && params["g"] == "meta.k8s.io" &&
			(params["v"] == "v1" || params["v"] == "v1beta1") {
			return true
		}
	}
	return false
}

// fileColumns are the Table columns of a listing.
var fileColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "The entry's name in its directory."},
	{Name: "Type", Type: "string", Description: "Directory, File or Symlink."},
	{Name: "Size", Type: "integer", Description: "A file's size in bytes."},
	{Name: "Mode", Type: "string", Description: "Permission bits, as ls -l shows them."},
	{Name: "Owner", Type: "string", Description: "Numeric owner and group, uid:gid."},
	{Name: "Modified", Type: "string", Format: "date-time", Description: "Modification time when backed up."},
	{Name: "Target", Type: "string", Priority: 1, Description: "A symlink's target."},
}

func writeFilesTable(w http.ResponseWriter, req *http.Request, list *v1alpha1.BackupFileList) {
	t := &metav1.Table{ColumnDefinitions: fileColumns, Rows: make([]metav1.TableRow, 0, len(list.Items))}
	t.APIVersion, t.Kind = metav1.SchemeGroupVersion.String(), "Table"
	for _, it := range list.Items {
		t.Rows = append(t.Rows, metav1.TableRow{Cells: []any{it.Name, string(it.Type), it.Size, v1alpha1.FileModeString(it.Type, it.Mode),
			strconv.FormatInt(it.UID, 10) + ":" + strconv.FormatInt(it.GID, 10), it.ModTime.UTC().Format(time.RFC3339), it.LinkTarget}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_ = json.NewEncoder(w).Encode(t)
	}
}
