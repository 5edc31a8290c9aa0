package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.com/backup-operator/pkg/mover/chunker"
	"example.com/backup-operator/pkg/mover/repo"
)

var testPassword = []byte("correct horse battery staple")

func newEncryptedRepo(t *testing.T, dir string) *repo.Repo {
	t.Helper()
	r, err := repo.InitStorage(context.Background(), repo.NewFileStorage(dir), repo.Options{Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func openEncrypted(dir string, password []byte) (*repo.Repo, error) {
	return repo.OpenStorage(context.Background(), repo.NewFileStorage(dir), repo.Options{Password: password})
}

// repoFiles returns every file of a directory repository with its bytes.
func repoFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(dir, p)
			out[rel] = data
		}
		return nil
	})
	return out
}

// TestEncryptedRepositoryHoldsNoPlaintextAndNoPlainHashes: neither a known
// file's bytes nor the SHA-256 of the file or of any of its chunks (raw or
// in hex) appears in any object's name or content.
func TestEncryptedRepositoryHoldsNoPlaintextAndNoPlainHashes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	big := make([]byte, 6<<20)
	rand.New(rand.NewSource(7)).Read(big)
	small := []byte(strings.Repeat("the quick brown fox knows the launch code 0000-1111\n", 3))
	os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(src, "secret-name-of-a-file.txt"), small, 0o644)
	dir := filepath.Join(t.TempDir(), "repo")
	r := newEncryptedRepo(t, dir)
	snap := backup(t, r, src)

	var needles [][]byte
	addHash := func(data []byte) {
		sum := sha256.Sum256(data)
		needles = append(needles, sum[:], []byte(hex.EncodeToString(sum[:])))
	}
	addHash(big)
	addHash(small)
	ch := chunker.New(bytes.NewReader(big), r.Config.Chunker, nil)
	for {
		c, err := ch.Next()
		if err != nil {
			break
		}
		addHash(c)
	}
	needles = append(needles, big[1<<20:1<<20+64], small[:40], []byte("secret-name-of-a-file"))
	files := repoFiles(t, dir)
	for name, data := range files {
		for i, n := range needles {
			if bytes.Contains(data, n) || strings.Contains(name, string(n)) {
				t.Errorf("%s holds needle %d (%x…)", name, i, n[:8])
			}
		}
	}
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r, snap.ID, dst, Merge, false)
	if got, _ := os.ReadFile(filepath.Join(dst, "big.bin")); !bytes.Equal(got, big) {
		t.Error("the encrypted round trip changed big.bin")
	}
}

func TestEncryptedEveryFlippedByteIsDetected(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 32, 30)
	want := describe(t, src)
	baseDir := filepath.Join(t.TempDir(), "repo")
	base := newEncryptedRepo(t, baseDir)
	snap := backup(t, base, src)
	base.Close()
	i := 0
	for rel, data := range repoFiles(t, baseDir) {
		if strings.HasPrefix(rel, "locks/") {
			continue
		}
		i++
		// Three places per object: the start, the middle, the end.
		for _, at := range []int{0, len(data) / 2, len(data) - 1} {
			dir := filepath.Join(t.TempDir(), "repo")
			copyTree(t, baseDir, dir)
			bad := append([]byte(nil), data...)
			bad[at] ^= 0x01
			os.WriteFile(filepath.Join(dir, rel), bad, 0o644)
			r, err := openEncrypted(dir, testPassword)
			if err != nil {
				continue // refused to open: detected
			}
			v, err := Verify(context.Background(), r, nil, true)
			if err == nil && v.OK() {
				t.Errorf("verify found no damage after flipping byte %d of %s", at, rel)
			}
			// Restore fails, or (when the byte was in data the snapshot
			// does not use) gives back exactly the source: never wrong data.
			dst := filepath.Join(t.TempDir(), "dst")
			if _, err := Restore(context.Background(), r, RestoreOptions{Snapshot: snap.ID, Target: dst}); err == nil {
				requireSameTree(t, want, describe(t, dst))
			}
			r.Close()
		}
	}
	if i < 5 {
		t.Fatalf("only %d objects in the repository", i)
	}
}

func TestPasswordErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	newEncryptedRepo(t, dir).Close()
	if _, err := openEncrypted(dir, []byte("wrong")); !errors.Is(err, repo.ErrWrongPassword) {
		t.Errorf("wrong password: %v, want ErrWrongPassword", err)
	}
	if _, err := openEncrypted(dir, nil); !errors.Is(err, repo.ErrPasswordNeeded) {
		t.Errorf("no password: %v, want ErrPasswordNeeded", err)
	}
	plain := filepath.Join(t.TempDir(), "plain")
	if _, err := repo.Init(plain); err != nil {
		t.Fatal(err)
	}
	if _, err := openEncrypted(plain, testPassword); !errors.Is(err, repo.ErrNotEncrypted) {
		t.Errorf("password for an unencrypted repository: %v, want ErrNotEncrypted", err)
	}
}

// TestKeyRotationKeepsOldSnapshotsRestorable: add a second password,
// remove the first with it; the snapshot made before still restores with
// the new password, and the old one no longer opens the repository.
func TestKeyRotationKeepsOldSnapshotsRestorable(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 33, 20)
	want := describe(t, src)
	dir := filepath.Join(t.TempDir(), "repo")
	r := newEncryptedRepo(t, dir)
	snap := backup(t, r, src)
	newPW := []byte("a new password")
	if _, err := r.AddKey(newPW); err != nil {
		t.Fatal(err)
	}
	keys, err := r.Keys(testPassword)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v, %v; want 2", keys, err)
	}
	var oldKey string
	for _, k := range keys {
		if k.Current {
			oldKey = k.ID
		}
	}
	if err := r.RemoveKey(oldKey[:12], testPassword); err == nil {
		t.Error("removing the key the repository was opened with succeeded")
	}
	r.Close()
	r2, err := openEncrypted(dir, newPW)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := r2.RemoveKey(oldKey[:12], newPW); err != nil {
		t.Fatal(err)
	}
	if _, err := openEncrypted(dir, testPassword); !errors.Is(err, repo.ErrWrongPassword) {
		t.Errorf("the removed password still opens the repository: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r2, snap.ID, dst, Merge, false)
	requireSameTree(t, want, describe(t, dst))
}
