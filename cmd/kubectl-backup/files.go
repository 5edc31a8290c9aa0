package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The files subresource of a Backup,
// GET /apis/backup.example.com/v1alpha1/namespaces/NS/backups/NAME/files[/PATH]
// (RBAC: resource backups/files, verb get), answers a directory with a
// BackupFileList (application/json), a regular file with its bytes
// (application/octet-stream) and a symlink with a BackupFileList whose only
// item is the link.

// Types of a backupFile.
const (
	typeDirectory = "Directory"
	typeFile      = "File"
	typeSymlink   = "Symlink"
)

// backupFile is one entry of a Backup's snapshot as the files subresource
// lists it.
type backupFile struct {
	Name string `json:"name"`
	// Type is Directory, File or Symlink.
	Type string `json:"type"`
	// Size is a file's size in bytes.
	Size int64 `json:"size"`
	// Mode is the permission bits, setuid, setgid and sticky included.
	Mode    uint32    `json:"mode"`
	UID     int64     `json:"uid"`
	GID     int64     `json:"gid"`
	ModTime time.Time `json:"modTime"`
	// LinkTarget is a symlink's target.
	LinkTarget string `json:"linkTarget,omitempty"`
}

// backupFileList is a directory of a Backup's snapshot (or a symlink: the
// link itself) as the files subresource returns it.
type backupFileList struct {
	Kind       string       `json:"kind"`
	APIVersion string       `json:"apiVersion"`
	Path       string       `json:"path"`
	Items      []backupFile `json:"items"`
}

const fileListKind = "BackupFileList"

// snapshotPath is a path given on the command line as the files subresource
// takes it: relative to the snapshot's root, slash-separated, without empty
// or "." components; "" is the root, and so is "/" ("/etc/app.conf" is
// "etc/app.conf"). ".." is refused: in the URL it would climb out of the
// subresource.
func snapshotPath(p string) (string, error) {
	var parts []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "", ".":
		case "..":
			return "", withCode(exitError, `path %q: ".." is not allowed; give the path from the backup's root (for example etc/app.conf)`, p)
		default:
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "/"), nil
}

// displayPath is p as messages show it: "/" for the root.
func displayPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// validName reports whether name can be an entry of a directory: not empty,
// not "." or "..", without a slash or NUL (a listing that says otherwise is
// never written to disk).
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// getFiles GETs p (a snapshotPath) of the files subresource of backup and
// returns the response when it is 2xx; the caller closes its body. A 503 or
// 429 (the server is starting the reader of the repository) is tried again
// after the server's Retry-After, for at most o.retryFor in all; any other
// error is the server's metav1.Status as an error.
func (o *options) getFiles(ctx context.Context, backup, p string, header http.Header) (*http.Response, error) {
	if backup == "" {
		return nil, withCode(exitError, "the Backup's name is empty")
	}
	req := o.client.BackupV1alpha1().RESTClient().Get().Namespace(o.ns).Resource("backups").Name(backup).SubResource("files")
	if p != "" {
		req = req.Suffix(strings.Split(p, "/")...)
	}
	if err := req.Error(); err != nil {
		return nil, withCode(exitError, "%v", err)
	}
	url := req.URL().String()
	deadline := time.Now().Add(o.retryFor)
	for {
		hr, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, withCode(exitError, "%v", err)
		}
		for k, v := range header {
			hr.Header[k] = v
		}
		hr.Header.Set("Accept", "application/json, */*")
		resp, err := o.http.Do(hr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, interrupted(ctx)
			}
			return nil, withCode(exitError, "%v", err)
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		refusal := responseError(resp)
		if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
			return nil, apiError(refusal)
		}
		// The header, or the Status's details when a proxy dropped it.
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		} else if s, ok := apierrors.SuggestsClientDelay(refusal); ok && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, withCode(exitError, "%s (tried again for %s; --retry-for waits longer)", apiError(refusal).Error(), shortDuration(o.retryFor))
		}
		wait = min(wait, left)
		fmt.Fprintf(o.errOut, "%s; trying again in %s\n", apiError(refusal).Error(), shortDuration(max(wait, time.Second)))
		select {
		case <-ctx.Done():
			return nil, interrupted(ctx)
		case <-time.After(wait):
		}
	}
}

// interrupted is the error of a request the plugin stopped (exit code 3).
func interrupted(ctx context.Context) error {
	return &codeError{code: exitTimeout, err: fmt.Errorf("interrupted: %w", context.Cause(ctx))}
}

// responseError is the error of a response that is not 2xx: the server's
// metav1.Status, or its status line and text. It closes the body.
func responseError(resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
		if st.Code == 0 {
			st.Code = int32(resp.StatusCode)
		}
		return &apierrors.StatusError{ErrStatus: st}
	}
	if text := strings.TrimSpace(string(body)); text != "" {
		return fmt.Errorf("%s: %s", resp.Status, text)
	}
	return errors.New(resp.Status)
}

// isJSON reports whether resp is a listing rather than a file's bytes.
func isJSON(resp *http.Response) bool {
	media, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return err == nil && media == "application/json"
}

// readList decodes a listing response and closes its body.
func readList(resp *http.Response, backup, p string) (*backupFileList, []byte, error) {
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, withCode(exitError, "reading the listing of %s of backup/%s: %v", displayPath(p), backup, err)
	}
	var l backupFileList
	if err := json.Unmarshal(raw, &l); err != nil || l.Kind != fileListKind {
		return nil, nil, withCode(exitError, "the server answered %s of backup/%s with a %s that is no %s (%v)", displayPath(p), backup, resp.Header.Get("Content-Type"), fileListKind, err)
	}
	return &l, raw, nil
}

// list reads the listing of p: a directory's entries (a symlink's listing
// is the link). file is true, and the listing nil, when p is a regular file.
func (o *options) list(ctx context.Context, backup, p string) (l *backupFileList, raw []byte, file bool, err error) {
	resp, err := o.getFiles(ctx, backup, p, nil)
	if err != nil {
		return nil, nil, false, err
	}
	if !isJSON(resp) {
		resp.Body.Close()
		return nil, nil, true, nil
	}
	l, raw, err = readList(resp, backup, p)
	return l, raw, false, err
}

// stat is p's entry in its parent's listing (a listing does not tell a
// directory from a symlink of the same name apart; the parent's does), or
// nil for the root. A path the parent lacks is requested itself, so the
// error is the server's.
func (o *options) stat(ctx context.Context, backup, p string) (*backupFile, error) {
	if p == "" {
		return nil, nil
	}
	dir, name := path.Split(p)
	l, _, file, err := o.list(ctx, backup, strings.TrimSuffix(dir, "/"))
	if err != nil {
		return nil, err
	}
	if !file {
		for i := range l.Items {
			if l.Items[i].Name == name {
				return &l.Items[i], nil
			}
		}
	}
	resp, err := o.getFiles(ctx, backup, p, nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return nil, withCode(exitError, "backup/%s: %s is not in the listing of %s", backup, p, displayPath(strings.TrimSuffix(dir, "/")))
}
