package repo

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestVersion2RepositoriesKeepWorking: a repository whose config says
// version 2 (made before encryption existed) opens, takes blobs and reads
// them back.
func TestVersion2RepositoriesKeepWorking(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := r.Config
	c.Version = 2
	data, _ := json.Marshal(configFile{Config: c, Sum: c.sum()})
	if err := os.WriteFile(filepath.Join(dir, configName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r2, err := Open(dir)
	if err != nil {
		t.Fatalf("a version 2 repository does not open: %v", err)
	}
	defer r2.Close()
	w := r2.NewWriter()
	blob := []byte("version two")
	if _, err := w.Add(r2.BlobID(blob), blob, true); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if r2.BlobID(blob) != Hash(blob) {
		t.Error("blob IDs of an unencrypted repository are not plain SHA-256")
	}
	r3, _ := Open(dir)
	defer r3.Close()
	if err := r3.LoadIndex(); err != nil {
		t.Fatal(err)
	}
	got, err := r3.ReadBlob(Hash(blob), nil)
	if err != nil || string(got) != string(blob) {
		t.Fatalf("read back %q, %v", got, err)
	}
}

// TestConditionalPutNeverReplaces: IfAbsent fails with fs.ErrExist on an
// existing object and leaves it as it was; two racing inits cannot both
// create a repository.
func TestConditionalPutNeverReplaces(t *testing.T) {
	ctx := context.Background()
	st := NewFileStorage(t.TempDir())
	if err := st.Put(ctx, "config", []byte("first"), PutOptions{IfAbsent: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "config", []byte("second"), PutOptions{IfAbsent: true}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second conditional put: %v, want fs.ErrExist", err)
	}
	if got, _ := st.Get(ctx, "config", 0, -1, nil); string(got) != "first" {
		t.Errorf("config is %q after a refused put", got)
	}
	if _, err := InitStorage(ctx, NewFileStorage(filepath.Join(t.TempDir(), "r")), Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestDirectoryStorageRefusesRetention: object lock needs S3.
func TestDirectoryStorageRefusesRetention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := Init(dir); err != nil {
		t.Fatal(err)
	}
	_, err := OpenStorage(context.Background(), NewFileStorage(dir), Options{Retention: &Retention{Mode: Governance}})
	if err == nil {
		t.Fatal("a directory repository opened with a retention")
	}
}
