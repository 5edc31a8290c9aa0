package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"example.com/backup-operator/pkg/mover/chunker"
)

// FormatVersion is the repository format this code reads and writes.
const FormatVersion = 2

// Config is the repository's config file.
type Config struct {
	Version int            `json:"version"`
	ID      string         `json:"id"`
	Created time.Time      `json:"created"`
	Chunker chunker.Params `json:"chunker"`
	// PackSize is the target size of a pack file.
	PackSize int `json:"packSize"`
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

func readConfig(dir string) (Config, error) {
	data, err := os.ReadFile(filepath.Join(dir, configName))
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, ErrNotRepository
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
	if f.Version != FormatVersion {
		return Config{}, fmt.Errorf("repository format version %d is not supported (this mover reads version %d)", f.Version, FormatVersion)
	}
	if err := f.Chunker.Validate(); err != nil {
		return Config{}, fmt.Errorf("repository config: %w", err)
	}
	return f.Config, nil
}

func writeConfig(dir string, c Config) error {
	data, err := json.MarshalIndent(configFile{Config: c, Sum: c.sum()}, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, configName), data)
}
