package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"example.com/backup-operator/pkg/mover/chunker"
)

// FormatVersion is the repository format this code writes. It reads
// version 2 too: version 3 only adds encryption (FORMAT.md).
const FormatVersion = 3

// Config is the repository's config file.
type Config struct {
	Version int            `json:"version"`
	ID      string         `json:"id"`
	Created time.Time      `json:"created"`
	Chunker chunker.Params `json:"chunker"`
	// PackSize is the target size of a pack file.
	PackSize int `json:"packSize"`
	// Encryption is set when the repository is encrypted (version 3).
	Encryption *EncryptionConfig `json:"encryption,omitempty"`
}

// EncryptionConfig names the algorithms of an encrypted repository.
type EncryptionConfig struct {
	// Cipher encrypts every pack blob, pack table, index, manifest and snapshot.
	Cipher string `json:"cipher"`
	// IDs is how blob IDs are computed (keyed, so they leak no content hashes).
	IDs string `json:"ids"`
	// KDF derives the key that wraps the master keys from a password.
	KDF string `json:"kdf"`
}

type configFile struct {
	Config
	// Sum is the SHA-256 of the JSON encoding of Config, so a damaged config
	// is detected rather than silently changing the chunker.
	Sum ID `json:"sum"`
}

func (c Config) sum() ID {
	data, _ := json.Marshal(c)
	return Hash(data)
}

const configName = "config"

// ErrNotRepository means the directory holds no repository.
var ErrNotRepository = errors.New("not a backup repository (no config file)")

func readConfig(ctx context.Context, st Storage) (Config, error) {
	data, err := st.Get(ctx, configName, 0, -1, nil)
	if notExist(err) {
		return Config{}, fmt.Errorf("%w at %s", ErrNotRepository, st)
	}
	if err != nil {
		return Config{}, err
	}
	var f configFile
	if err := json.Unmarshal(data, &f); err != nil {
		return Config{}, fmt.Errorf("repository config is damaged: %w", err)
	}
	if f.Config.sum() != f.Sum {
		return Config{}, errors.New("repository config is damaged: checksum mismatch")
	}
	if f.Version != FormatVersion && f.Version != 2 {
		return Config{}, fmt.Errorf("repository format version %d is not supported (this mover reads versions 2 and %d)", f.Version, FormatVersion)
	}
	if f.Encryption != nil && (f.Version < 3 || *f.Encryption != (EncryptionConfig{Cipher: cipherAESGCM, IDs: idsHMAC, KDF: kdfScrypt})) {
		return Config{}, fmt.Errorf("repository config names encryption this mover does not know: %+v", *f.Encryption)
	}
	if err := f.Chunker.Validate(); err != nil {
		return Config{}, fmt.Errorf("repository config: %w", err)
	}
	return f.Config, nil
}

// writeConfig creates the config object; it never replaces one.
func writeConfig(ctx context.Context, st Storage, c Config) error {
	data, err := json.MarshalIndent(configFile{Config: c, Sum: c.sum()}, "", "  ")
	if err != nil {
		return err
	}
	return st.Put(ctx, configName, data, PutOptions{IfAbsent: true})
}
