package backup

import (
	"net/http"
	"strings"
	"testing"
)

func TestCleanFilesPath(t *testing.T) {
	for _, c := range []struct{ in, want, problem string }{
		{"", ".", ""},
		{".", ".", ""},
		{"etc/", "etc", ""},
		{"etc/app.conf", "etc/app.conf", ""},
		{"a b/ünï", "a b/ünï", ""},
		{"etc/../passwd", "", `without ".."`},
		{"..", "", `without ".."`},
		{"etc//app", "", "empty ones"},
		{"./etc", "", `"." elements`},
		{"/etc", "etc", ""},
		{"//etc", "", "empty ones"},
		{"etc/\x00", "", "NUL"},
	} {
		got, problem := cleanFilesPath(c.in)
		if got != c.want || (c.problem == "") != (problem == "") || !strings.Contains(problem, c.problem) {
			t.Errorf("cleanFilesPath(%q) = %q, %q; want %q and a problem containing %q", c.in, got, problem, c.want, c.problem)
		}
	}
}

func TestWantsTable(t *testing.T) {
	for accept, want := range map[string]bool{
		"application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json": true,
		"application/json": false,
		"":                 false,
		"application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io": false,
	} {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Accept", accept)
		if got := wantsTable(req); got != want {
			t.Errorf("wantsTable(%q) = %v", accept, got)
		}
	}
}
