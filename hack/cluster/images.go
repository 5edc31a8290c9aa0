package cluster

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// ImageFile is one file placed in an image's single layer.
type ImageFile struct {
	Path string // absolute path inside the image
	Src  string // file on this machine
	Mode int64
}

// WriteImageArchive writes a docker-archive tarball (manifest.json, config,
// one layer) holding files, the same format `docker save` writes and
// `ctr images import` reads. No registry and no Docker engine are involved.
// env is the image's environment; without it, PATH=/usr/local/bin:/usr/bin:/bin.
func WriteImageArchive(out, repoTag string, files []ImageFile, entrypoint []string, env ...string) error {
	if len(env) == 0 {
		env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	}
	dir, err := os.MkdirTemp("", "image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	layerPath := filepath.Join(dir, "layer.tar")
	lf, err := os.Create(layerPath)
	if err != nil {
		return err
	}
	h := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(lf, h))
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	for _, f := range files {
		// Parent directories first.
		for d := filepath.Dir(f.Path); d != "/" && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d[1:] + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	// Containers need a writable /tmp.
	if err := tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: epoch}); err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.Path[1:], Typeflag: tar.TypeReg, Mode: f.Mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := lf.Close(); err != nil {
		return err
	}
	diffID := "sha256:" + hex.EncodeToString(h.Sum(nil))
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.UTC().Format(time.RFC3339),
		"config":       map[string]any{"Entrypoint": entrypoint, "Env": env},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	configName := fmt.Sprintf("%x.json", sha256.Sum256(config))
	if err := os.WriteFile(filepath.Join(dir, configName), config, 0o644); err != nil {
		return err
	}
	manifest, _ := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{repoTag}, "Layers": []string{"layer.tar"}}})
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o644); err != nil {
		return err
	}
	cmd := exec.Command("tar", "-C", dir, "-cf", out, "manifest.json", configName, "layer.tar")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("writing %s: %v\n%s", out, err, b)
	}
	return nil
}
