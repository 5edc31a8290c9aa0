package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestS3WindowCutShortIsAnError: a ranged GET whose body ends before its
// Content-Length (the connection closed mid-body: a server restarted, a
// proxy's timeout) fails the read. A window read ("up to" n bytes) must not
// take the short body for the object's end, or the pack cache would keep a
// window that ends early and blame the pack for every blob after the cut.
func TestS3WindowCutShortIsAnError(t *testing.T) {
	const size = 4096
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Query().Has("object-lock") || r.URL.Query().Has("location") || r.URL.Query().Has("versioning") {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `<Error><Code>ObjectLockConfigurationNotFoundError</Code><Message>none</Message></Error>`)
			return
		}
		var from, to int
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &from, &to); err != nil {
			http.Error(w, "want a range", http.StatusBadRequest)
			return
		}
		n := to - from + 1
		w.Header().Set("Content-Length", fmt.Sprint(n))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to, size))
		w.Header().Set("Last-Modified", "Wed, 02 Dec 2026 08:00:00 GMT")
		w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
		w.WriteHeader(http.StatusPartialContent)
		w.Write([]byte(strings.Repeat("x", n/2))) // then the connection closes
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
	}))
	defer srv.Close()
	st, err := NewS3Storage("s3:"+srv.URL+"/bucket", S3Options{Region: "us-east-1", AccessKey: "k", SecretKey: "secret-key"})
	if err != nil {
		t.Fatal(err)
	}
	for _, length := range []int64{1024, -1024} {
		data, err := st.Get(context.Background(), "index/cut", 0, length, nil)
		if err == nil {
			t.Errorf("Get(length %d) of a body cut short returned %d bytes and no error", length, len(data))
		} else if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Logf("Get(length %d): %v", length, err)
		}
	}
}
