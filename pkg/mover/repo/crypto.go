package repo

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/scrypt"
)

// Encryption (FORMAT.md, "Encryption"): a repository's data is encrypted
// with random master keys; each key file wraps them with a key derived
// from one password, so passwords can be added and removed without
// rewriting data.
const (
	cipherAESGCM = "AES-256-GCM"
	idsHMAC      = "HMAC-SHA-256"
	kdfScrypt    = "scrypt"
	keysDir      = "keys"

	nonceLen = 12
	tagLen   = 16
	// sealOverhead is what sealing adds to a plaintext.
	sealOverhead = nonceLen + tagLen
)

// Additional data bound to each kind of metadata, so that an object of one
// kind cannot be passed off as another.
var (
	aadIndex    = []byte("index")
	aadSnapshot = []byte("snapshot")
	aadTable    = []byte("pack table")
)

// ErrWrongPassword means no key file opens with the password given.
var ErrWrongPassword = errors.New("wrong password: no key of the repository opens with it")

// masterKeys encrypt data (AES-256-GCM) and key blob IDs (HMAC-SHA-256).
type masterKeys struct {
	enc, mac []byte
	aead     cipher.AEAD
	macs     sync.Pool
}

type masterKeysJSON struct {
	Encrypt []byte `json:"encrypt"`
	MAC     []byte `json:"mac"`
}

func newMasterKeys() *masterKeys {
	enc, mac := make([]byte, 32), make([]byte, 32)
	_, _ = rand.Read(enc)
	_, _ = rand.Read(mac)
	k, _ := makeMasterKeys(enc, mac)
	return k
}

func makeMasterKeys(enc, mac []byte) (*masterKeys, error) {
	if len(enc) != 32 || len(mac) != 32 {
		return nil, errors.New("master keys of the wrong length")
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &masterKeys{enc: enc, mac: mac, aead: aead}
	k.macs.New = func() any { return hmac.New(sha256.New, k.mac) }
	return k, nil
}

// seal appends nonce || ciphertext || tag of plain to dst.
func (k *masterKeys) seal(dst, plain, aad []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, nonceLen)...)
	_, _ = rand.Read(dst[n:])
	return k.aead.Seal(dst, dst[n:n+nonceLen], plain, aad)
}

// open checks and decrypts what seal made, appending the plaintext to dst.
func (k *masterKeys) open(dst, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < sealOverhead {
		return nil, errors.New("encrypted data is too short")
	}
	out, err := k.aead.Open(dst, sealed[:nonceLen], sealed[nonceLen:], aad)
	if err != nil {
		return nil, errors.New("authentication failed: the data was changed or damaged")
	}
	return out, nil
}

func (k *masterKeys) blobID(data []byte) ID {
	h := k.macs.Get().(hash.Hash)
	h.Reset()
	h.Write(data)
	var id ID
	h.Sum(id[:0])
	k.macs.Put(h)
	return id
}

// BlobID is the ID of a blob with this plaintext: its SHA-256, or in an
// encrypted repository its HMAC-SHA-256 under the repository's MAC key.
func (r *Repo) BlobID(data []byte) ID {
	if r.keys != nil {
		return r.keys.blobID(data)
	}
	return Hash(data)
}

// seal encrypts metadata in an encrypted repository; else it returns data.
func (r *Repo) seal(data, aad []byte) []byte {
	if r.keys == nil {
		return data
	}
	return r.keys.seal(make([]byte, 0, len(data)+sealOverhead), data, aad)
}

// open undoes seal.
func (r *Repo) open(data, aad []byte) ([]byte, error) {
	if r.keys == nil {
		return data, nil
	}
	return r.keys.open(nil, data, aad)
}

// keyFile is one password's wrapping of the master keys.
type keyFile struct {
	Created  time.Time `json:"created"`
	Hostname string    `json:"hostname,omitempty"`
	KDF      string    `json:"kdf"`
	N        int       `json:"N"`
	R        int       `json:"r"`
	P        int       `json:"p"`
	Salt     []byte    `json:"salt"`
	// Data is the master keys (JSON) sealed with the derived key.
	Data []byte `json:"data"`
}

// scrypt cost: about 100 ms and 32 MiB on one core (the parameters are in
// each key file, so they can grow later without breaking old keys).
var scryptN, scryptR, scryptP = 1 << 15, 8, 1

func (kf *keyFile) derive(password []byte) (cipher.AEAD, error) {
	// scrypt needs 128·N·r bytes: at most 256 MiB, so a planted key file
	// cannot make a mover allocate more.
	if kf.KDF != kdfScrypt || kf.N < 2 || kf.N&(kf.N-1) != 0 || kf.R < 1 || kf.P < 1 || kf.P > 16 || kf.N > 1<<21/kf.R {
		return nil, fmt.Errorf("key file names an unsupported key derivation (%s N=%d r=%d p=%d)", kf.KDF, kf.N, kf.R, kf.P)
	}
	kek, err := scrypt.Key(password, kf.Salt, kf.N, kf.R, kf.P, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// keyAAD binds a key file to its repository: a key file copied from
// another repository (with the same password) does not open this one.
func keyAAD(repoID string) []byte { return []byte("key " + repoID) }

// addKeyFile wraps keys with password in a new key file and returns its ID.
func addKeyFile(ctx context.Context, st Storage, repoID string, keys *masterKeys, password []byte) (ID, error) {
	if len(password) == 0 {
		return ID{}, errors.New("the password is empty")
	}
	host, _ := os.Hostname()
	kf := keyFile{Created: time.Now().UTC(), Hostname: host, KDF: kdfScrypt, N: scryptN, R: scryptR, P: scryptP, Salt: make([]byte, 16)}
	_, _ = rand.Read(kf.Salt)
	aead, err := kf.derive(password)
	if err != nil {
		return ID{}, err
	}
	plain, _ := json.Marshal(masterKeysJSON{Encrypt: keys.enc, MAC: keys.mac})
	nonce := make([]byte, nonceLen)
	_, _ = rand.Read(nonce)
	kf.Data = aead.Seal(nonce, nonce, plain, keyAAD(repoID))
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return ID{}, err
	}
	id := Hash(data)
	return id, st.Put(ctx, objectName(keysDir, id), data, PutOptions{})
}

// KeyInfo describes one key file.
type KeyInfo struct {
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	Hostname string    `json:"hostname,omitempty"`
	// Current is set on the key the repository was opened with.
	Current bool `json:"current"`
}

// openKeys finds the key file password opens and returns the master keys
// and that key file's ID.
func openKeys(ctx context.Context, st Storage, repoID string, password []byte) (*masterKeys, ID, error) {
	files, skipped, err := listKeyFiles(ctx, st)
	if err != nil {
		return nil, ID{}, err
	}
	if len(files) == 0 {
		return nil, ID{}, fmt.Errorf("%s is encrypted but has no usable key files (%s): it cannot be opened", st, strings.Join(skipped, "; "))
	}
	for _, f := range files {
		aead, err := f.kf.derive(password)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %s: %v", f.id.Short(), err))
			continue
		}
		if len(f.kf.Data) < sealOverhead {
			continue
		}
		plain, err := aead.Open(nil, f.kf.Data[:nonceLen], f.kf.Data[nonceLen:], keyAAD(repoID))
		if err != nil {
			continue
		}
		var mk masterKeysJSON
		if err := json.Unmarshal(plain, &mk); err != nil {
			return nil, ID{}, fmt.Errorf("key %s is damaged: %w", f.id.Short(), err)
		}
		k, err := makeMasterKeys(mk.Encrypt, mk.MAC)
		return k, f.id, err
	}
	note := ""
	if len(skipped) > 0 {
		note = "; skipped: " + strings.Join(skipped, "; ")
	}
	return nil, ID{}, fmt.Errorf("%w (%s has %d keys; a damaged key file looks the same%s)", ErrWrongPassword, st, len(files), note)
}

type loadedKey struct {
	id ID
	kf keyFile
}

// listKeyFiles reads every key file, oldest first. One that is damaged is
// skipped and described in skipped, so that it cannot lock out the others.
func listKeyFiles(ctx context.Context, st Storage) (out []loadedKey, skipped []string, err error) {
	var names []string
	if err := st.List(ctx, keysDir, func(oi ObjectInfo) error { names = append(names, oi.Name); return nil }); err != nil {
		return nil, nil, err
	}
	for _, name := range names {
		id, err := ParseID(name[len(keysDir)+1:])
		if err != nil {
			continue
		}
		data, err := st.Get(ctx, name, 0, -1, nil)
		if notExist(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, nil, err
		}
		var kf keyFile
		if Hash(data) != id {
			skipped = append(skipped, fmt.Sprintf("key %s is damaged: its content does not match its name", id.Short()))
			continue
		}
		if err := json.Unmarshal(data, &kf); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %s is damaged: %v", id.Short(), err))
			continue
		}
		out = append(out, loadedKey{id: id, kf: kf})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].kf.Created.Before(out[j].kf.Created) })
	return out, skipped, nil
}

// Keys lists the repository's key files.
func (r *Repo) Keys(current []byte) ([]KeyInfo, error) {
	if r.keys == nil {
		return nil, errors.New("the repository is not encrypted: it has no keys")
	}
	files, _, err := listKeyFiles(r.ctx, r.Store)
	if err != nil {
		return nil, err
	}
	_, cur, _ := openKeys(r.ctx, r.Store, r.Config.ID, current)
	out := make([]KeyInfo, 0, len(files))
	for _, f := range files {
		out = append(out, KeyInfo{ID: f.id.String(), Created: f.kf.Created, Hostname: f.kf.Hostname, Current: f.id == cur})
	}
	return out, nil
}

// AddKey lets password open the repository too and returns the new key's ID.
func (r *Repo) AddKey(password []byte) (string, error) {
	if r.keys == nil {
		return "", errors.New("the repository is not encrypted; it was created without a password and stays so")
	}
	id, err := addKeyFile(r.ctx, r.Store, r.Config.ID, r.keys, password)
	return id.String(), err
}

// RemoveKey deletes a key file given by its ID or a unique prefix of 8+
// digits. The key the repository was opened with (current) cannot be
// removed: open it with another key to remove this one, so that at least
// one working password always remains.
func (r *Repo) RemoveKey(ref string, current []byte) error {
	if r.keys == nil {
		return errors.New("the repository is not encrypted: it has no keys")
	}
	keys, err := r.Keys(current)
	if err != nil {
		return err
	}
	if len(ref) < 8 {
		return fmt.Errorf("key id %q is too short: give at least 8 hex digits (backup-mover key list)", ref)
	}
	var match []KeyInfo
	for _, k := range keys {
		if len(k.ID) >= len(ref) && k.ID[:len(ref)] == ref {
			match = append(match, k)
		}
	}
	switch {
	case len(match) == 0:
		return fmt.Errorf("no key %s (backup-mover key list shows them)", ref)
	case len(match) > 1:
		return fmt.Errorf("key id %s is ambiguous: give more digits", ref)
	case match[0].Current:
		return fmt.Errorf("key %s is the one this command was opened with; open the repository with another password (--password-file) to remove it", ref)
	}
	return r.Store.Delete(r.ctx, objectName(keysDir, ID(mustParse(match[0].ID))))
}

func mustParse(s string) ID {
	id, _ := ParseID(s)
	return id
}
