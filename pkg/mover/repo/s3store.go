package repo

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Options are how to reach an S3 repository. The credentials come from
// the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), never from
// the command line.
type S3Options struct {
	Region string
	// CAFile is a PEM bundle trusted in addition to the system's roots.
	CAFile             string
	InsecureSkipVerify bool
	AccessKey          string
	SecretKey          string
}

// s3Retries is how often minio-go retries a request that failed in a way
// that may pass (with backoff, up to 1 s apart).
const s3Retries = 5

// S3Storage keeps a repository in an S3 bucket under a prefix, through
// minio-go (which retries transient errors with backoff, s3Retries times).
//
// What it relies on from the server: a PUT is atomic (an object appears
// whole or not at all); reads, lists and deletes see every completed PUT
// (S3 has been strongly consistent since December 2020; MinIO always was);
// PUT with If-None-Match: * fails when the object exists (used for the
// config, so two racing inits cannot both create a repository; a server
// that ignores the header loses only that protection). Locks are lease
// objects checked after writing (FORMAT.md, "Locks"), which needs no more
// than the above.
//
// In a bucket with Object Lock (and so with versioning), objects the
// repository writes once (config, keys, packs, indexes, manifests,
// snapshots) are read in their oldest version: an overwrite or a delete
// marker made with the repository's credentials cannot change what a
// snapshot restores. Delete removes every version, which the server
// refuses for a version still locked.
type S3Storage struct {
	client    *minio.Client
	putClient *minio.Client // for single PUTs (putter)
	endpoint  string
	bucket    string
	prefix    string // "" or ending in "/"

	lockMu    sync.Mutex
	lockKnown bool
	locking   bool

	vmu      sync.Mutex
	versions map[string]string // name → oldest version, when versioned

	packs packCache
}

// ParseS3Location splits s3:<scheme>://<host>[:port]/<bucket>[/<prefix>].
func ParseS3Location(loc string) (endpoint *url.URL, bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(loc, "s3:")
	if !ok {
		return nil, "", "", fmt.Errorf("%q is not an S3 location (s3:https://host/bucket/prefix)", loc)
	}
	u, err := url.Parse(rest)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", "", fmt.Errorf("S3 location %q: want s3:http(s)://host[:port]/bucket[/prefix]", loc)
	}
	path := strings.Trim(u.Path, "/")
	bucket, prefix, _ = strings.Cut(path, "/")
	if bucket == "" {
		return nil, "", "", fmt.Errorf("S3 location %q names no bucket: want s3:http(s)://host[:port]/bucket[/prefix]", loc)
	}
	u.Path = ""
	return u, bucket, prefix, nil
}

// NewS3Storage connects to the bucket at location (s3:...). It checks
// nothing on the server: the first call reports what is wrong.
func NewS3Storage(location string, o S3Options) (*S3Storage, error) {
	u, bucket, prefix, err := ParseS3Location(location)
	if err != nil {
		return nil, err
	}
	if o.AccessKey == "" || o.SecretKey == "" {
		return nil, errors.New("S3 credentials are missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the operator takes them from spec.storage.s3.credentialsSecretRef)")
	}
	tr, err := minio.DefaultTransport(u.Scheme == "https")
	if err != nil {
		return nil, err
	}
	// A server that went away must fail a request in bounded time: a
	// connection attempt to an address that drops packets gives up after
	// 10 s (not the kernel's two minutes), and minio-go retries 5 times.
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	minio.MaxRetry = s3Retries
	if u.Scheme == "https" {
		tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // only when the user asked for it
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("reading the S3 CA bundle: %w", err)
			}
			pool, _ := x509.SystemCertPool()
			if pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s holds no PEM certificate", o.CAFile)
			}
			tlsConf.RootCAs = pool
		}
		tr.TLSClientConfig = tlsConf
	}
	mo := minio.Options{
		Creds:     credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure:    u.Scheme == "https",
		Region:    o.Region,
		Transport: http.RoundTripper(tr),
	}
	client, err := minio.New(u.Host, &mo)
	if err != nil {
		return nil, err
	}
	// Single PUTs send their own x-amz-checksum-crc32c header (putOptions),
	// which minio-go allows only on a client with TrailingHeaders; larger
	// objects go through the other client, whose multipart parts keep
	// minio-go's signing and its retries.
	mo.TrailingHeaders = true
	putClient, err := minio.New(u.Host, &mo)
	if err != nil {
		return nil, err
	}
	if prefix != "" {
		prefix += "/"
	}
	s := &S3Storage{client: client, putClient: putClient, endpoint: u.String(), bucket: bucket, prefix: prefix}
	if os.Getenv("BACKUP_MOVER_S3_STATS") != "" {
		s.packs.stats.seen = map[windowKey]bool{}
	}
	return s, nil
}

func (s *S3Storage) String() string {
	return "s3:" + s.endpoint + "/" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
}

func (s *S3Storage) key(name string) string { return s.prefix + name }

// pinned reports whether name is written once, so that its oldest version
// is the object.
func pinned(name string) bool {
	dir, _, _ := strings.Cut(name, "/")
	switch dir {
	case configName, keysDir, packsDir, indexDir, manifestsDir, snapshotsDir:
		return true
	}
	return false
}

// wrap turns S3 errors into the errors the repository tells apart, with
// messages that say what to do.
func (s *S3Storage) wrap(name string, err error) error {
	if err == nil {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey", "NoSuchVersion":
		return fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	case "NoSuchBucket":
		return fmt.Errorf("bucket %q does not exist at %s: create it, or correct spec.storage.s3.bucket", s.bucket, s.endpoint)
	case "InvalidAccessKeyId":
		return fmt.Errorf("%s rejected the access key (InvalidAccessKeyId): check AWS_ACCESS_KEY_ID in the credentials Secret", s.endpoint)
	case "SignatureDoesNotMatch":
		return fmt.Errorf("%s rejected the credentials (SignatureDoesNotMatch): check AWS_SECRET_ACCESS_KEY in the credentials Secret", s.endpoint)
	case "AccessDenied":
		return fmt.Errorf("%s denied access to %s/%s (AccessDenied): the credentials need s3:GetObject, PutObject, DeleteObject and ListBucket on the bucket", s.endpoint, s.bucket, s.key(name))
	case "PreconditionFailed":
		return fmt.Errorf("%s: %w", name, fs.ErrExist)
	}
	if resp.StatusCode == http.StatusNotFound && resp.Code == "" {
		return fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return fmt.Errorf("S3 %s %s: %w", s.endpoint, s.key(name), err)
}

func (s *S3Storage) List(ctx context.Context, dir string, fn func(ObjectInfo) error) error {
	prefix := s.prefix
	if dir != "" {
		prefix += dir + "/"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	versioned, err := s.versioned(ctx)
	if err != nil {
		return err
	}
	if !versioned {
		for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if oi.Err != nil {
				return s.wrap(dir, oi.Err)
			}
			if err := fn(ObjectInfo{Name: strings.TrimPrefix(oi.Key, s.prefix), Size: oi.Size, ModTime: oi.LastModified}); err != nil {
				return err
			}
		}
		return nil
	}
	// Versions of a key come newest first. A write-once object is there
	// when any version is not a delete marker, and is its oldest such
	// version; any other object is its latest version, unless that is a
	// delete marker.
	var order []string
	found := map[string]ObjectInfo{}
	gone := map[string]bool{}
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if oi.Err != nil {
			return s.wrap(dir, oi.Err)
		}
		name := strings.TrimPrefix(oi.Key, s.prefix)
		if oi.IsDeleteMarker {
			if !pinned(name) && oi.IsLatest {
				gone[name] = true
			}
			continue
		}
		if gone[name] {
			continue
		}
		if _, seen := found[name]; !seen {
			order = append(order, name)
		} else if !pinned(name) {
			continue // an older version of a lock or tombstone
		}
		found[name] = ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}
		s.rememberVersion(name, oi.VersionID) // the oldest comes last
	}
	for _, name := range order {
		if err := fn(found[name]); err != nil {
			return err
		}
	}
	return nil
}

func (s *S3Storage) rememberVersion(name, version string) {
	if !pinned(name) || version == "" {
		return
	}
	s.vmu.Lock()
	defer s.vmu.Unlock()
	if s.versions == nil {
		s.versions = map[string]string{}
	}
	s.versions[name] = version // versions are listed newest first: the last one wins
}

// version returns the version of name to read: its oldest, for an object
// written once in a versioned bucket; "" for the latest.
func (s *S3Storage) version(ctx context.Context, name string) (string, error) {
	if !pinned(name) {
		return "", nil
	}
	versioned, err := s.versioned(ctx)
	if err != nil || !versioned {
		return "", err
	}
	s.vmu.Lock()
	v, ok := s.versions[name]
	s.vmu.Unlock()
	if ok {
		return v, nil
	}
	oldest := ""
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.key(name), WithVersions: true}) {
		if oi.Err != nil {
			return "", s.wrap(name, oi.Err)
		}
		if oi.Key == s.key(name) && !oi.IsDeleteMarker {
			oldest = oi.VersionID
		}
	}
	if oldest == "" {
		return "", fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	s.rememberVersion(name, oldest)
	return oldest, nil
}

func (s *S3Storage) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	v, err := s.version(ctx, name)
	if err != nil {
		return ObjectInfo{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.key(name), minio.StatObjectOptions{VersionID: v})
	if err != nil {
		return ObjectInfo{}, s.wrap(name, err)
	}
	return ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Get reads a range; a length below -1 means "up to -length bytes" (a
// window that may run past the object's end).
func (s *S3Storage) Get(ctx context.Context, name string, offset, length int64, dst []byte) ([]byte, error) {
	if strings.HasPrefix(name, packsDir+"/") && length > 0 {
		return s.readPack(ctx, name, offset, length, dst)
	}
	upTo := length < -1
	v, err := s.version(ctx, name)
	if err != nil {
		return nil, err
	}
	opts := minio.GetObjectOptions{VersionID: v}
	if offset > 0 || length >= 0 || upTo {
		end := int64(0)
		switch {
		case length == 0:
			return dst[:0], nil
		case upTo:
			end = offset - length - 1
		case length > 0:
			end = offset + length - 1
		}
		if err := opts.SetRange(offset, end); err != nil {
			return nil, err
		}
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.key(name), opts)
	if err != nil {
		return nil, s.wrap(name, err)
	}
	defer obj.Close()
	// A range of known size is read into a buffer of that size:
	// bytes.Buffer.ReadFrom, given a buffer of exactly the range's size,
	// grows it to twice that (and copies it) to look for the end, which made
	// every pack window twice its size. Only io.EOF ends the body early (the
	// object's end, for a window); any other error, io.ErrUnexpectedEOF of a
	// connection cut short included, is the read's error, so a short window
	// is never taken for the object's end (and cached as such).
	if n := max(length, -length); length > 0 || upTo {
		var data []byte
		if cap(dst) >= int(n) {
			data = dst[:n]
		} else {
			data = make([]byte, n)
		}
		got := 0
		for got < len(data) {
			k, err := obj.Read(data[got:])
			got += k
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, s.wrap(name, err)
			}
		}
		if !upTo && got != len(data) {
			return nil, fmt.Errorf("%s: read %d bytes at %d, want %d: %w", name, got, offset, length, io.ErrUnexpectedEOF)
		}
		s.count(got)
		return data[:got], nil
	}
	buf := bytes.NewBuffer(dst[:0])
	if _, err := buf.ReadFrom(obj); err != nil {
		return nil, s.wrap(name, err)
	}
	if length >= 0 && int64(buf.Len()) != length {
		return nil, fmt.Errorf("%s: read %d bytes at %d, want %d: %w", name, buf.Len(), offset, length, io.ErrUnexpectedEOF)
	}
	s.count(buf.Len())
	return buf.Bytes(), nil
}

// count adds one GET of n bytes to the statistics, when kept.
func (s *S3Storage) count(n int) {
	s.packs.stats.gets.Add(1)
	s.packs.stats.bytes.Add(int64(n))
}

func (s *S3Storage) Download(ctx context.Context, name string, w io.Writer) error {
	v, err := s.version(ctx, name)
	if err != nil {
		return err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.key(name), minio.GetObjectOptions{VersionID: v})
	if err != nil {
		return s.wrap(name, err)
	}
	defer obj.Close()
	_, err = io.Copy(w, obj)
	return s.wrap(name, err)
}

// s3PartSize: an object up to this size is one PUT (a pack is about 16 MiB),
// so it appears whole or not at all.
const s3PartSize = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// putOptions are the options of a PUT of size bytes whose CRC32C is crc.
//
// Over http minio-go would sign the body in 64 KiB chunks, each hashed with
// SHA-256 on both ends: a fifth of the CPU of a backup to a server on the
// same machine. A single PUT's body goes unsigned instead, with its CRC32C
// in the x-amz-checksum-crc32c header (and, with retention, its Content-MD5),
// which the server checks, so a body changed on the way is refused; what a
// pack holds is checked against its hashes by every reader besides. The
// checksum is computed here, not by minio-go as a trailer: minio-go hashes a
// trailer once across its retries, so a retried PUT would always fail.
// A larger object (multipart) keeps minio-go's signing.
func (s *S3Storage) putOptions(o PutOptions, size int64, crc uint32) minio.PutObjectOptions {
	po := minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		PartSize:         s3PartSize,
		DisableMultipart: false,
		SendContentMd5:   o.Retention != nil, // S3 requires Content-MD5 (or a checksum) on PUTs with retention
	}
	if size <= s3PartSize {
		po.DisableContentSha256 = true
		po.UserMetadata = map[string]string{"x-amz-checksum-crc32c": base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc))}
	}
	if o.IfAbsent {
		po.SetMatchETagExcept("*")
	}
	if o.Retention != nil {
		mode := minio.RetentionMode(o.Retention.Mode)
		po.Mode = mode
		po.RetainUntilDate = o.Retention.Until.UTC()
	}
	return po
}

// putter is the client for a PUT of size bytes (see putOptions).
func (s *S3Storage) putter(size int64) *minio.Client {
	if size <= s3PartSize {
		return s.putClient
	}
	return s.client
}

func (s *S3Storage) Put(ctx context.Context, name string, data []byte, o PutOptions) error {
	var crc uint32
	if len(data) <= s3PartSize {
		crc = crc32.Checksum(data, castagnoli)
	}
	po := s.putOptions(o, int64(len(data)), crc)
	info, err := s.putter(int64(len(data))).PutObject(ctx, s.bucket, s.key(name), bytes.NewReader(data), int64(len(data)), po)
	if err != nil {
		return s.wrap(name, err)
	}
	s.rememberVersion(name, info.VersionID)
	return nil
}

func (s *S3Storage) TempFile(ctx context.Context, dir string) (*os.File, error) {
	return os.CreateTemp("", "backup-mover-")
}

func (s *S3Storage) PutFile(ctx context.Context, name string, f *os.File, o PutOptions) error {
	defer os.Remove(f.Name())
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	crc := crc32.New(castagnoli)
	if st.Size() <= s3PartSize {
		if _, err := io.Copy(crc, io.NewSectionReader(f, 0, st.Size())); err != nil {
			return err
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	info, err := s.putter(st.Size()).PutObject(ctx, s.bucket, s.key(name), f, st.Size(), s.putOptions(o, st.Size(), crc.Sum32()))
	if err != nil {
		return s.wrap(name, err)
	}
	s.rememberVersion(name, info.VersionID)
	return nil
}

// Delete removes an object; in a versioned bucket every version of it.
func (s *S3Storage) Delete(ctx context.Context, name string) error {
	versioned, err := s.versioned(ctx)
	if err != nil {
		return err
	}
	if !versioned {
		s.forget(name)
		return s.wrap(name, s.client.RemoveObject(ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{}))
	}
	var versions []string
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.key(name), WithVersions: true}) {
		if oi.Err != nil {
			return s.wrap(name, oi.Err)
		}
		if oi.Key == s.key(name) {
			versions = append(versions, oi.VersionID)
		}
	}
	for _, v := range versions {
		if err := s.client.RemoveObject(ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{VersionID: v}); err != nil {
			if r, rerr := s.retentionOf(ctx, name, v); rerr == nil && r.Until.After(time.Now()) {
				return &RetainedError{Name: name, Until: r.Until}
			}
			return s.wrap(name, err)
		}
	}
	s.forget(name)
	return nil
}

// forget drops what the storage remembers of a deleted object.
func (s *S3Storage) forget(name string) {
	s.vmu.Lock()
	delete(s.versions, name)
	s.vmu.Unlock()
	c := &s.packs
	c.mu.Lock()
	for k, w := range c.windows {
		if k.name == name {
			c.drop(w)
		}
	}
	c.mu.Unlock()
}

// Close drops the cached packs; fetching ahead ends after the GETs under way.
func (s *S3Storage) Close() error {
	c := &s.packs
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, w := range c.windows {
		w.dropped = true // a read still under way lets go of it as of one dropped
	}
	c.windows, c.queue, c.free, c.held = nil, nil, nil, 0
	if c.cond != nil {
		c.cond.Broadcast()
	}
	if c.stats.seen != nil {
		fmt.Fprintf(os.Stderr, "%s: %s\n", s, &c.stats)
		c.stats.seen = nil // printed once
	}
	return nil
}

// versioned reports whether the bucket keeps versions; this storage only
// relies on versions in buckets with Object Lock, which always have them.
func (s *S3Storage) versioned(ctx context.Context) (bool, error) { return s.LockingEnabled(ctx) }

// LockingEnabled reports whether the bucket was created with Object Lock.
// An answer is remembered; an error is not.
func (s *S3Storage) LockingEnabled(ctx context.Context) (bool, error) {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.lockKnown {
		return s.locking, nil
	}
	status, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.bucket)
	if err != nil {
		code := minio.ToErrorResponse(err).Code
		if code != "ObjectLockConfigurationNotFoundError" && code != "NoSuchObjectLockConfiguration" {
			return false, s.wrap("", err)
		}
	}
	s.lockKnown, s.locking = true, err == nil && status == "Enabled"
	return s.locking, nil
}

func (s *S3Storage) retentionOf(ctx context.Context, name, version string) (Retention, error) {
	mode, until, err := s.client.GetObjectRetention(ctx, s.bucket, s.key(name), version)
	if err != nil {
		code := minio.ToErrorResponse(err).Code
		if code == "NoSuchObjectLockConfiguration" || code == "ObjectLockConfigurationNotFoundError" {
			return Retention{}, nil
		}
		return Retention{}, s.wrap(name, err)
	}
	var r Retention
	if mode != nil {
		r.Mode = RetentionMode(*mode)
	}
	if until != nil {
		r.Until = *until
	}
	return r, nil
}

// Retention returns the lock of the version of name the repository reads.
func (s *S3Storage) Retention(ctx context.Context, name string) (Retention, error) {
	v, err := s.version(ctx, name)
	if err != nil {
		return Retention{}, err
	}
	return s.retentionOf(ctx, name, v)
}

// ExtendRetention lengthens the lock of the version of name the repository
// reads; a lock already long enough is left as it is (S3 refuses to
// shorten one).
func (s *S3Storage) ExtendRetention(ctx context.Context, name string, minimum time.Time, r Retention) error {
	v, err := s.version(ctx, name)
	if err != nil {
		return err
	}
	cur, err := s.retentionOf(ctx, name, v)
	if err != nil {
		return err
	}
	if !cur.Until.Before(minimum) {
		return nil
	}
	mode := minio.RetentionMode(r.Mode)
	if cur.Mode == Compliance {
		mode = minio.Compliance // a compliance lock cannot become a governance one
	}
	until := r.Until.UTC()
	return s.wrap(name, s.client.PutObjectRetention(ctx, s.bucket, s.key(name), minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &until, VersionID: v}))
}

// OpenStorageLocation returns the storage a --repo value names: a
// directory, or s3:<endpoint>/<bucket>[/<prefix>].
func OpenStorageLocation(location string, o S3Options) (Storage, error) {
	if strings.HasPrefix(location, "s3:") {
		return NewS3Storage(location, o)
	}
	if location == "" {
		return nil, errors.New("no repository given (--repo)")
	}
	return NewFileStorage(location), nil
}

// Packs are read in windows of packWindow bytes: a restore or a verify
// reads most blobs of the packs it touches, and one GET of 4 MiB costs far
// less than dozens of ranged GETs of single blobs. A window being fetched
// is fetched once; its other readers wait.
//
// A reader that says ahead what it will read (PlanRead, a restore) has its
// windows fetched in the order planned, s3Fetchers GETs at once, while
// planned windows hold less than planBudget (a reader that needs a window
// not fetched yet fetches it itself, past the budget). A planned window's
// plan ends once as many reads of it were made (any reads) or withdrawn
// (UnplanRead) as were planned; it then stays cached, retired, for reads
// planned later (the small files of one pack are dispatched to the writers
// a few at a time): at most maxRetiredWindows of them, least recently used
// evicted. Windows nobody planned (a verify's, a browse's) are at most
// maxCachedWindows, retired ones included; a read nobody planned reads one
// window ahead. The buffers of evicted windows serve the next ones.
const packWindow = 4 << 20

// maxCachedWindows bounds the windows kept for reads nobody planned.
var maxCachedWindows = max(8, 4*CPUs)

// maxRetiredWindows bounds the windows kept after their planned reads: a
// backup keeps small files and each reader's large files in packs of their
// own (Writer.AddTo), so a restore comes back to few windows.
const maxRetiredWindows = 8

const (
	// s3Fetchers is how many planned windows are fetched at once (restic
	// restores with 5 connections).
	s3Fetchers = 4
	// planBudget: fetching ahead waits while planned windows fetched (or
	// being fetched) and not dropped hold this much.
	planBudget = 32 << 20
)

type windowKey struct {
	name string
	n    int64
}

type packCache struct {
	mu      sync.Mutex
	cond    *sync.Cond // signalled when held falls, the queue grows or the cache closes
	windows map[windowKey]*cachedWindow
	tick    uint64
	// queue holds planned windows in the order planned; fetchers take them
	// from the front (those a reader started meanwhile are skipped).
	queue    []*cachedWindow
	held     int64 // packWindow for each planned window started and neither dropped nor retired
	fetchers int
	closed   bool
	free     [][]byte // buffers of dropped windows, for the next ones
	stats    packStats
}

type cachedWindow struct {
	key     windowKey
	ready   chan struct{} // closed once data and err are set
	data    []byte
	err     error
	started bool
	used    uint64
	// plan: the window is part of a plan: counted in held once started,
	// retired when planned (reads planned and not yet made) reaches zero.
	plan    bool
	planned int
	retired bool // planned once, kept for reads planned later
	refs    int  // readers between acquire and release
	dropped bool // no longer in the map
	// ctx is the context of the plan or read that made the window.
	ctx context.Context
}

// packStats counts what the storage fetched and how long readers waited.
// For performance work, BACKUP_MOVER_S3_STATS=1 also counts windows fetched
// more than once and prints it all to stderr when the storage closes.
type packStats struct {
	gets, bytes                      atomic.Int64
	windows, planned, ahead, refetch atomic.Int64
	waits, waitNanos                 atomic.Int64
	seen                             map[windowKey]bool // nil unless printed; guarded by packCache.mu
}

func (p *packStats) String() string {
	return fmt.Sprintf("%d GETs, %.1f MiB fetched; %d pack windows fetched (%d ahead of planned reads), %d of them again; readers waited %d times, %.2f s in all",
		p.gets.Load(), float64(p.bytes.Load())/(1<<20), p.windows.Load(), p.ahead.Load(), p.refetch.Load(), p.waits.Load(), time.Duration(p.waitNanos.Load()).Seconds())
}

// PackCacheStats describe an S3Storage's pack windows (see packWindow).
type PackCacheStats struct {
	// Windows are cached or being fetched; Planned of them wait for
	// planned reads not made yet, Queued of those are not fetched yet.
	Windows, Planned, Queued int
	// Held is what planned windows hold against planBudget.
	Held int64
	// Fetched counts windows fetched, FetchedPlanned those planned when
	// their fetch started, Ahead those a fetcher started before a reader asked.
	Fetched, FetchedPlanned, Ahead int64
	// Fetchers are running.
	Fetchers int
	// GETs and Bytes count every GET of the storage and what it returned.
	GETs, Bytes int64
}

// CacheStats describes the pack cache now.
func (s *S3Storage) CacheStats() PackCacheStats {
	c := &s.packs
	c.mu.Lock()
	defer c.mu.Unlock()
	st := PackCacheStats{Windows: len(c.windows), Held: c.held, Fetched: c.stats.windows.Load(), FetchedPlanned: c.stats.planned.Load(),
		Ahead: c.stats.ahead.Load(), Fetchers: c.fetchers, GETs: c.stats.gets.Load(), Bytes: c.stats.bytes.Load()}
	for _, w := range c.windows {
		if w.planned > 0 {
			st.Planned++
			if !w.started {
				st.Queued++
			}
		}
	}
	return st
}

// PlanRead says that length bytes of name at offset will be read, once,
// after the reads planned before it; the windows they fall in are fetched
// ahead. Only packs are planned.
func (s *S3Storage) PlanRead(ctx context.Context, name string, offset, length int64) {
	if length <= 0 || !strings.HasPrefix(name, packsDir+"/") {
		return
	}
	c := &s.packs
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	queued := len(c.queue)
	for n := offset / packWindow; n <= (offset+length-1)/packWindow; n++ {
		w := c.windows[windowKey{name, n}]
		if w == nil {
			w = c.add(windowKey{name, n})
			w.ctx = ctx
			c.queue = append(c.queue, w)
		}
		if !w.plan {
			w.plan, w.retired = true, false
			if w.started {
				c.held += packWindow
			}
		}
		w.planned++
	}
	if len(c.queue) == queued {
		return
	}
	for c.fetchers < s3Fetchers {
		c.fetchers++
		go s.fetcher()
	}
	c.cond.Broadcast()
}

// UnplanRead withdraws a read planned by PlanRead that will not be made.
func (s *S3Storage) UnplanRead(name string, offset, length int64) {
	if length <= 0 || !strings.HasPrefix(name, packsDir+"/") {
		return
	}
	c := &s.packs
	c.mu.Lock()
	defer c.mu.Unlock()
	for n := offset / packWindow; n <= (offset+length-1)/packWindow; n++ {
		if w := c.windows[windowKey{name, n}]; w != nil && w.plan && w.planned > 0 {
			if w.planned--; w.planned == 0 {
				c.retire(w)
			}
		}
	}
}

// add puts a new window in the map; the caller holds mu.
func (c *packCache) add(k windowKey) *cachedWindow {
	if c.windows == nil {
		c.windows = map[windowKey]*cachedWindow{}
	}
	if c.cond == nil {
		c.cond = sync.NewCond(&c.mu)
	}
	w := &cachedWindow{key: k, ready: make(chan struct{})}
	c.windows[k] = w
	return w
}

// start marks w as being fetched and returns a buffer and the context for
// its fetch; the caller holds mu and fetches it. The fetch of a window
// nobody planned outlives a reader's cancelled context: other readers
// share the window.
func (c *packCache) start(w *cachedWindow) ([]byte, context.Context) {
	w.started = true
	ctx := w.ctx
	if !w.plan {
		ctx = context.WithoutCancel(ctx)
	}
	if w.plan {
		c.held += packWindow
	}
	c.stats.windows.Add(1)
	if w.plan {
		c.stats.planned.Add(1)
	}
	if c.stats.seen != nil {
		if c.stats.seen[w.key] {
			c.stats.refetch.Add(1)
		}
		c.stats.seen[w.key] = true
	}
	if n := len(c.free); n > 0 {
		buf := c.free[n-1]
		c.free = c.free[:n-1]
		return buf, ctx
	}
	return nil, ctx
}

// drop takes w out of the map; the caller holds mu.
func (c *packCache) drop(w *cachedWindow) {
	if w.dropped {
		return
	}
	w.dropped = true
	if c.windows[w.key] == w {
		delete(c.windows, w.key)
	}
	if w.plan && w.started {
		c.held -= packWindow
		c.cond.Broadcast()
	}
	c.recycle(w)
}

// recycle keeps the buffer of a dropped window no reader holds.
func (c *packCache) recycle(w *cachedWindow) {
	if !w.dropped || w.refs > 0 || w.err != nil || cap(w.data) < packWindow || c.closed {
		return
	}
	select {
	case <-w.ready:
	default:
		return // still being fetched: the fetch recycles it
	}
	if len(c.free) < s3Fetchers+planBudget/packWindow+maxRetiredWindows {
		c.free = append(c.free, w.data[:0])
	}
	w.data = nil
}

// fetcher fetches planned windows from the front of the queue, waiting
// while the budget is spent, and ends when the queue is empty or the
// storage closed (a GET under way is finished first).
func (s *S3Storage) fetcher() {
	c := &s.packs
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.queue) > 0 && (c.queue[0].started || c.queue[0].dropped) {
			c.queue[0] = nil
			c.queue = c.queue[1:]
		}
		if len(c.queue) == 0 || c.closed {
			c.fetchers--
			return
		}
		if c.held+packWindow > planBudget {
			c.cond.Wait()
			continue
		}
		w := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		buf, ctx := c.start(w)
		c.stats.ahead.Add(1)
		c.mu.Unlock()
		s.fetch(ctx, w, buf)
		c.mu.Lock()
	}
}

// fetch reads window w into buf (or a new buffer) and wakes its readers.
func (s *S3Storage) fetch(ctx context.Context, w *cachedWindow, buf []byte) {
	data, err := s.Get(ctx, w.key.name, w.key.n*packWindow, -packWindow, buf)
	c := &s.packs
	c.mu.Lock()
	defer c.mu.Unlock()
	w.data, w.err = data, err
	close(w.ready)
	if err != nil {
		c.drop(w)
	}
	c.recycle(w)
}

// acquire returns window k fetched, for one read, starting its fetch if
// nobody has, and whether it was planned; release ends the read.
func (s *S3Storage) acquire(ctx context.Context, k windowKey) (*cachedWindow, bool, error) {
	c := &s.packs
	c.mu.Lock()
	c.tick++
	w := c.windows[k]
	if w == nil {
		c.evictUnplanned(1)
		w = c.add(k)
		w.ctx = ctx
	}
	w.used = c.tick
	w.refs++
	plan := w.plan
	if !w.started {
		buf, fctx := c.start(w)
		go s.fetch(fctx, w, buf)
	}
	c.mu.Unlock()
	select {
	case <-w.ready:
	default:
		start := time.Now()
		select {
		case <-w.ready:
		case <-ctx.Done():
			s.release(w, false)
			return nil, false, ctx.Err()
		}
		c.stats.waits.Add(1)
		c.stats.waitNanos.Add(int64(time.Since(start)))
	}
	if w.err != nil {
		err := w.err
		s.release(w, false)
		return nil, false, err
	}
	return w, plan, nil
}

// release ends a read of w; read says it was made (counted against the
// reads planned, whoever planned them).
func (s *S3Storage) release(w *cachedWindow, read bool) {
	c := &s.packs
	c.mu.Lock()
	defer c.mu.Unlock()
	w.refs--
	if read && w.planned > 0 {
		w.planned--
		if w.planned == 0 && w.plan {
			c.retire(w)
		}
	}
	c.recycle(w)
}

// retire ends the plan of a window whose planned reads were all made or
// withdrawn. Fetched, it stays as a window nobody planned, the most
// recently used, for reads planned later: a backup packs chunks of files
// far apart in walk order together. Not fetched (or failed), it goes.
func (c *packCache) retire(w *cachedWindow) {
	if !w.started || w.dropped {
		c.drop(w)
		return
	}
	select {
	case <-w.ready:
		if w.err != nil {
			c.drop(w)
			return
		}
	default:
	}
	w.plan, w.retired = false, true
	c.held -= packWindow
	c.cond.Broadcast()
	c.tick++
	w.used = c.tick
	var retired []*cachedWindow
	for _, q := range c.windows {
		if q.retired && !q.plan {
			retired = append(retired, q)
		}
	}
	c.evictOldest(retired, len(retired)-maxRetiredWindows)
	c.evictUnplanned(0)
}

// evictUnplanned makes room for more windows nobody planned, dropping the
// least recently used, so that they are at most maxCachedWindows; the
// caller holds mu.
func (c *packCache) evictUnplanned(more int) {
	var unplanned []*cachedWindow
	for _, q := range c.windows {
		if !q.plan {
			unplanned = append(unplanned, q)
		}
	}
	c.evictOldest(unplanned, len(unplanned)+more-maxCachedWindows)
}

// evictOldest drops the n least recently used of ws.
func (c *packCache) evictOldest(ws []*cachedWindow, n int) {
	if n <= 0 {
		return
	}
	slices.SortFunc(ws, func(a, b *cachedWindow) int { return cmp.Compare(a.used, b.used) })
	for _, q := range ws[:min(n, len(ws))] {
		c.drop(q)
	}
}

// readAhead starts fetching window k, the one after a window just read:
// for a reader that planned nothing, unless it is cached; for a planned
// reader, if k is planned and waits in the queue (a writer's plan ahead in
// a large file goes to the queue's end, behind the first windows of files
// no writer has taken yet), past the budget as a reader's own fetch is.
func (s *S3Storage) readAhead(ctx context.Context, k windowKey, planned bool) {
	c := &s.packs
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if w := c.windows[k]; w != nil || planned {
		if w != nil && planned && w.plan && !w.started {
			buf, fctx := c.start(w)
			go s.fetch(fctx, w, buf)
		}
		return
	}
	c.evictUnplanned(1)
	w := c.add(k)
	w.ctx = ctx
	w.used = c.tick
	buf, fctx := c.start(w)
	go s.fetch(fctx, w, buf)
}

// readPack reads length bytes of a pack at offset through the window cache.
func (s *S3Storage) readPack(ctx context.Context, name string, offset, length int64, dst []byte) ([]byte, error) {
	dst = dst[:0]
	for pos := offset; pos < offset+length; {
		k := windowKey{name, pos / packWindow}
		w, planned, err := s.acquire(ctx, k)
		if err != nil {
			return nil, err
		}
		data := w.data
		if len(data) == packWindow {
			s.readAhead(ctx, windowKey{name, k.n + 1}, planned)
		}
		from := pos - k.n*packWindow
		if from >= int64(len(data)) {
			s.release(w, false)
			return nil, fmt.Errorf("%s: read %d bytes at %d beyond its end: %w", name, length, offset, io.ErrUnexpectedEOF)
		}
		to := min(int64(len(data)), offset+length-k.n*packWindow)
		dst = append(dst, data[from:to]...)
		s.release(w, true)
		pos = k.n*packWindow + to
	}
	return dst, nil
}
