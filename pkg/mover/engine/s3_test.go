package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"example.com/backup-operator/hack/cluster"
	"example.com/backup-operator/pkg/mover/repo"
)

// The tests below run against a real MinIO server on loopback (built once
// by hack/build-tool.sh minio, cached outside the work tree).

var (
	minioOnce sync.Once
	minioSrv  *cluster.HostMinIO
	minioErr  error
)

func hostMinIO(t *testing.T) *cluster.HostMinIO {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a MinIO server (not in -short)")
	}
	minioOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mover-minio-")
		if err != nil {
			minioErr = err
			return
		}
		minioSrv, minioErr = cluster.StartHostMinIO(dir)
	})
	if minioErr != nil {
		t.Fatal(minioErr)
	}
	return minioSrv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if minioSrv != nil {
		minioSrv.Stop()
		os.RemoveAll(minioSrv.Dir)
	}
	os.Exit(code)
}

var bucketSeq atomic.Int32

// s3Repo makes a fresh bucket and returns its storage.
func s3Storage(t *testing.T, lock bool) (*repo.S3Storage, string) {
	t.Helper()
	m := hostMinIO(t)
	bucket := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(bucket) > 50 {
		bucket = bucket[:50]
	}
	bucket = strings.Trim(bucket, "-") + "-" + string(rune('a'+bucketSeq.Add(1)%26))
	if err := m.MakeBucket(context.Background(), bucket, lock); err != nil {
		t.Fatal(err)
	}
	st, err := repo.NewS3Storage("s3:"+m.Endpoint+"/"+bucket+"/some/prefix", repo.S3Options{AccessKey: m.AccessKey, SecretKey: m.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return st, bucket
}

func bucketKeys(t *testing.T, bucket string) []string {
	t.Helper()
	c, err := hostMinIO(t).Client()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for oi := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		keys = append(keys, oi.Key)
	}
	return keys
}

// TestS3BackupIncrementalRestorePrune: an encrypted repository under a
// prefix of a bucket; a second backup stores only what changed; restore
// gives back the tree; prune removes the forgotten snapshot's objects from
// the bucket.
func TestS3BackupIncrementalRestorePrune(t *testing.T) {
	ctx := context.Background()
	st, bucket := s3Storage(t, false)
	r, err := repo.OpenOrInitStorage(ctx, st, repo.Options{Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 41, 60)
	first := backup(t, r, src)
	keysAfterFirst := bucketKeys(t, bucket)
	for _, k := range keysAfterFirst {
		if !strings.HasPrefix(k, "some/prefix/") {
			t.Errorf("object %s outside the repository's prefix", k)
		}
	}
	os.WriteFile(filepath.Join(src, "added.txt"), bytes.Repeat([]byte("new data "), 1000), 0o644)
	want := describe(t, src)
	second := backup(t, r, src)
	if second.Totals.NewBytes > 64<<10 || second.Parent == nil || *second.Parent != first.ID {
		t.Errorf("incremental backup stored %d new bytes, parent %v", second.Totals.NewBytes, second.Parent)
	}
	r2, err := repo.OpenStorage(ctx, st, repo.Options{Password: testPassword}) // another process in real life
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r2, second.ID, dst, Merge, false)
	requireSameTree(t, want, describe(t, dst))
	if v, err := Verify(ctx, r2, nil, true); err != nil || !v.OK() {
		t.Fatalf("verify: %v %+v", err, v)
	}
	before := len(bucketKeys(t, bucket))
	res, err := r2.Prune(ctx, []repo.ID{first.ID}, 0)
	if err != nil {
		t.Fatal(err)
	}
	after := bucketKeys(t, bucket)
	if len(res.Forgotten) != 1 || len(after) >= before {
		t.Errorf("prune forgot %v; %d objects before, %d after", res.Forgotten, before, len(after))
	}
	for _, k := range after {
		if strings.HasSuffix(k, first.ID.String()) {
			t.Errorf("the forgotten snapshot %s is still in the bucket", k)
		}
	}
}

func TestS3ErrorsSayWhatToDo(t *testing.T) {
	ctx := context.Background()
	m := hostMinIO(t)
	_, bucket := s3Storage(t, false)
	for name, c := range map[string]struct {
		loc, ak, sk, want string
	}{
		"wrong secret key":   {"s3:" + m.Endpoint + "/" + bucket, m.AccessKey, "wrong", "AWS_SECRET_ACCESS_KEY"},
		"unknown access key": {"s3:" + m.Endpoint + "/" + bucket, "nobody", m.SecretKey, "AWS_ACCESS_KEY_ID"},
		"unknown bucket":     {"s3:" + m.Endpoint + "/no-such-bucket", m.AccessKey, m.SecretKey, "does not exist"},
	} {
		t.Run(name, func(t *testing.T) {
			st, err := repo.NewS3Storage(c.loc, repo.S3Options{AccessKey: c.ak, SecretKey: c.sk})
			if err != nil {
				t.Fatal(err)
			}
			_, err = repo.OpenOrInitStorage(ctx, st, repo.Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

// TestS3ObjectLock: with the repository's own credentials, a locked pack
// cannot be deleted, and neither a delete marker nor an overwrite changes
// what the snapshot restores; prune keeps locked objects and says so, and
// deletes them once their locks have ended.
func TestS3ObjectLock(t *testing.T) {
	ctx := context.Background()
	st, bucket := s3Storage(t, true)
	until := time.Now().Add(8 * time.Second)
	r, err := repo.OpenOrInitStorage(ctx, st, repo.Options{Password: testPassword, Retention: &repo.Retention{Mode: repo.Governance, Until: until}})
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 42, 30)
	want := describe(t, src)
	snap := backup(t, r, src)
	r.Close()

	c, _ := hostMinIO(t).Client()
	var pack minio.ObjectInfo
	for oi := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "some/prefix/packs/", Recursive: true, WithVersions: true}) {
		pack = oi
	}
	if pack.Key == "" {
		t.Fatal("no pack in the bucket")
	}
	if err := c.RemoveObject(ctx, bucket, pack.Key, minio.RemoveObjectOptions{VersionID: pack.VersionID}); err == nil {
		t.Fatal("deleting a locked pack version succeeded")
	}
	// A delete marker on one pack and garbage over another version's name.
	if err := c.RemoveObject(ctx, bucket, pack.Key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	for oi := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "some/prefix/index/", Recursive: true}) {
		if _, err := c.PutObject(ctx, bucket, oi.Key, strings.NewReader("garbage"), 7, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r2, err := repo.OpenStorage(ctx, mustS3(t, st), repo.Options{Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r2, snap.ID, dst, Merge, false)
	requireSameTree(t, want, describe(t, dst))

	res, err := r2.Prune(ctx, []repo.ID{snap.ID}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Retained == 0 || len(res.RetainedSnapshots) != 1 || res.RetainedUntil == nil {
		t.Fatalf("prune of a locked snapshot: %+v", res)
	}
	if ids, _ := r2.SnapshotIDs(); len(ids) != 0 {
		t.Errorf("a forgotten locked snapshot is still listed: %v", ids)
	}
	r2.Close()
	time.Sleep(time.Until(until) + time.Second)
	r3, err := repo.OpenStorage(ctx, mustS3(t, st), repo.Options{Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	res, err = r3.Prune(ctx, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Retained != 0 {
		t.Errorf("prune after the locks ended kept %d objects", res.Retained)
	}
	for _, k := range bucketKeys(t, bucket) {
		if strings.Contains(k, "/packs/") || strings.Contains(k, "/snapshots/") || strings.Contains(k, "/forgotten/") {
			t.Errorf("%s is left after its lock ended and prune ran", k)
		}
	}
}

// mustS3 is a fresh storage for the same bucket (a new process).
func mustS3(t *testing.T, st *repo.S3Storage) *repo.S3Storage {
	t.Helper()
	m := hostMinIO(t)
	n, err := repo.NewS3Storage(st.String(), repo.S3Options{AccessKey: m.AccessKey, SecretKey: m.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// stopAfter stops the server at the nth pack upload.
type stopAfter struct {
	*repo.S3Storage
	n    atomic.Int32
	stop func()
}

func (s *stopAfter) PutFile(ctx context.Context, name string, f *os.File, o repo.PutOptions) error {
	if strings.HasPrefix(name, "packs/") && s.n.Add(-1) == 0 {
		s.stop()
	}
	return s.S3Storage.PutFile(ctx, name, f, o)
}

// TestS3ServerGoneMidBackup: the backup fails, no snapshot is visible, and
// once the server is back the next backup succeeds.
func TestS3ServerGoneMidBackup(t *testing.T) {
	ctx := context.Background()
	m := hostMinIO(t)
	st, _ := s3Storage(t, false)
	r, err := repo.OpenOrInitStorage(ctx, st, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 43, 80)
	want := describe(t, src)
	flaky := &stopAfter{S3Storage: mustS3(t, st), stop: m.Stop}
	flaky.n.Store(2)
	r1, err := repo.OpenStorage(ctx, flaky, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r1.Config.PackSize = 1 << 20 // several packs
	_, err = Backup(ctx, r1, BackupOptions{Source: src})
	r1.Close()
	if err == nil {
		t.Fatal("a backup whose server went away succeeded")
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	r2, err := repo.OpenStorage(ctx, mustS3(t, st), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if ids, err := r2.SnapshotIDs(); err != nil || len(ids) != 0 {
		t.Fatalf("snapshots after a failed backup: %v %v", ids, err)
	}
	snap := backup(t, r2, src)
	if snap.Totals.NewBytes >= snap.Totals.Bytes {
		t.Errorf("the backup after the interrupted one stored all %d bytes again: the packs stored before the server went away were not reused", snap.Totals.NewBytes)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r2, snap.ID, dst, Merge, false)
	requireSameTree(t, want, describe(t, dst))
	if v, err := Verify(ctx, r2, nil, true); err != nil || !v.OK() {
		t.Fatalf("verify: %v %+v", err, v)
	}
}

// TestS3LocksEndingAtDifferentTimes: a snapshot locked briefly and a later
// one locked longer share packs. Once the first's lock ends and prune has
// run, the second still restores and verifies, and a backup without locks
// into the same repository works.
func TestS3LocksEndingAtDifferentTimes(t *testing.T) {
	ctx := context.Background()
	st, _ := s3Storage(t, true)
	open := func(until time.Time) *repo.Repo {
		t.Helper()
		o := repo.Options{Password: testPassword}
		if !until.IsZero() {
			o.Retention = &repo.Retention{Mode: repo.Governance, Until: until}
		}
		r, err := repo.OpenOrInitStorage(ctx, mustS3(t, st), o)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 44, 30)
	shortUntil := time.Now().Add(5 * time.Second)
	r1 := open(shortUntil)
	first := backup(t, r1, src)
	r1.Close()
	os.WriteFile(filepath.Join(src, "second.txt"), bytes.Repeat([]byte("second "), 5000), 0o644)
	want := describe(t, src)
	r2 := open(time.Now().Add(time.Hour))
	second := backup(t, r2, src)
	if res, err := r2.Prune(ctx, []repo.ID{first.ID}, 0); err != nil || len(res.RetainedSnapshots) != 1 {
		t.Fatalf("prune while the first snapshot is locked: %+v %v", res, err)
	}
	r2.Close()
	time.Sleep(time.Until(shortUntil) + time.Second)
	r3 := open(time.Time{})
	defer r3.Close()
	if _, err := r3.Prune(ctx, nil, 0); err != nil {
		t.Fatal(err)
	}
	if ids, _ := r3.SnapshotIDs(); len(ids) != 1 || ids[0] != second.ID {
		t.Fatalf("snapshots after the first's lock ended: %v, want only %s", ids, second.ID.Short())
	}
	dst := filepath.Join(t.TempDir(), "dst")
	restore(t, r3, second.ID, dst, Merge, false)
	requireSameTree(t, want, describe(t, dst))
	if v, err := Verify(ctx, r3, nil, true); err != nil || !v.OK() {
		t.Fatalf("verify: %v %+v", err, v)
	}
	os.WriteFile(filepath.Join(src, "third.txt"), []byte("third"), 0o644)
	third := backup(t, r3, src)
	r4 := open(time.Time{})
	defer r4.Close()
	restore(t, r4, third.ID, filepath.Join(t.TempDir(), "dst3"), Merge, false)
}

// TestS3PlannedRestore: a restore plans its reads; packs are fetched ahead
// in windows, several at once, and every planned window is let go of once
// read. Two large files (one incompressible, one that compresses) and many
// small ones, as a backup mixes them in its packs; restored twice, the
// second time over a target where half the files differ.
func TestS3PlannedRestore(t *testing.T) {
	ctx := context.Background()
	st, _ := s3Storage(t, false)
	r, err := repo.OpenOrInitStorage(ctx, st, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 7, 200)
	rng := rand.New(rand.NewSource(7))
	big := make([]byte, 40<<20)
	rng.Read(big)
	if err := os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	text := bytes.Repeat([]byte("GET /api/v1/orders 200 latency_ms=12\n"), 600_000)
	for i := 0; i < len(text); i += 4096 {
		text[i] = byte('a' + rng.Intn(26))
	}
	if err := os.WriteFile(filepath.Join(src, "app.log"), text, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		data := make([]byte, 512+rng.Intn(20000))
		rng.Read(data)
		os.MkdirAll(filepath.Join(src, "small", fmt.Sprint(i%7)), 0o755)
		if err := os.WriteFile(filepath.Join(src, "small", fmt.Sprint(i%7), fmt.Sprintf("f%03d", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := describe(t, src)
	snap := backup(t, r, src)

	r2, err := repo.OpenStorage(ctx, st, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	before := st.CacheStats()
	dst := filepath.Join(t.TempDir(), "dst")
	res := restore(t, r2, snap.ID, dst, Mirror, false)
	requireSameTree(t, want, describe(t, dst))
	after := st.CacheStats()
	if after.Planned != 0 || after.Queued != 0 || after.Held != 0 {
		t.Errorf("after the restore %d windows still wait for planned reads (%d not fetched), holding %d bytes", after.Planned, after.Queued, after.Held)
	}
	fetched := after.Fetched - before.Fetched
	if fetched == 0 || after.FetchedPlanned-before.FetchedPlanned != fetched || after.Ahead == before.Ahead {
		t.Errorf("of %d windows fetched, %d were planned before and %d fetched ahead of their reads: the restore's plan was not used",
			fetched, after.FetchedPlanned-before.FetchedPlanned, after.Ahead-before.Ahead)
	}
	// A window whose planned reads are made stays cached (least recently
	// used evicted) for reads planned later: the packs are fetched about
	// once, not once per file whose chunks they hold.
	var packBytes int64
	if err := st.List(ctx, "packs", func(oi repo.ObjectInfo) error { packBytes += oi.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := after.Bytes - before.Bytes; got > 2*packBytes {
		t.Errorf("the restore fetched %d bytes for packs of %d", got, packBytes)
	}
	t.Logf("restored %d bytes; fetched %d windows (%d ahead), %d bytes for %d bytes of packs", res.BytesWritten,
		after.Fetched-before.Fetched, after.Ahead-before.Ahead, after.Bytes-before.Bytes, packBytes)

	// Half the files changed in the target: only they are read again.
	n := 0
	filepath.Walk(dst, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && info.Size() > 0 {
			if n++; n%2 == 0 {
				f, err := os.OpenFile(p, os.O_WRONLY, 0)
				if err == nil {
					f.WriteAt([]byte{'!'}, info.Size()/2)
					f.Close()
				}
			}
		}
		return nil
	})
	res = restore(t, r2, snap.ID, dst, Mirror, false)
	requireSameTree(t, want, describe(t, dst))
	if res.Overwrites == 0 {
		t.Errorf("the second restore overwrote nothing: %+v", res)
	}
	if s := st.CacheStats(); s.Planned != 0 || s.Held != 0 {
		t.Errorf("after the second restore %d windows still wait for planned reads, holding %d bytes", s.Planned, s.Held)
	}

	// A restore that fails half-way (a pack gone) withdraws what it had
	// planned and not read: nothing stays held, no fetcher is left.
	var packs []string
	st.List(ctx, "packs", func(oi repo.ObjectInfo) error { packs = append(packs, oi.Name); return nil })
	if len(packs) < 3 {
		t.Fatalf("%d packs; want several", len(packs))
	}
	if err := st.Delete(ctx, packs[len(packs)/2]); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, r2, RestoreOptions{Snapshot: snap.ID, Target: filepath.Join(t.TempDir(), "dst")}); err == nil {
		t.Fatal("a restore from a repository missing a pack succeeded")
	}
	s := st.CacheStats()
	for deadline := time.Now().Add(10 * time.Second); s.Fetchers > 0 && time.Now().Before(deadline); s = st.CacheStats() {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Planned != 0 || s.Held != 0 || s.Fetchers != 0 {
		t.Errorf("after a failed restore %d windows still wait for planned reads, holding %d bytes; %d fetchers run", s.Planned, s.Held, s.Fetchers)
	}
}

// flipReader changes one byte of a request body as it passes.
type flipReader struct {
	io.ReadCloser
	at, seen int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if f.at >= f.seen && f.at < f.seen+int64(n) {
		p[f.at-f.seen] ^= 0x20
	}
	f.seen += int64(n)
	return n, err
}

// TestS3BodyChangedInTransitIsRefused: a PUT's body is sent unsigned (no
// per-chunk SHA-256 over http), so the server must still be able to tell
// a body changed on the way: a proxy that flips one byte of every PUT's
// body makes the PUT fail, whether the data came from memory (Put) or a
// pack's temporary file (PutFile), with retention (Content-MD5) or
// without (a CRC32C trailer), and no object appears. The same PUTs
// through the proxy unchanged succeed.
func TestS3BodyChangedInTransitIsRefused(t *testing.T) {
	ctx := context.Background()
	m := hostMinIO(t)
	target, err := url.Parse(m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var flip atomic.Bool
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // the host the client signed
		if r.In.Method == http.MethodPut && flip.Load() && r.In.ContentLength > 1000 {
			r.Out.Body = &flipReader{ReadCloser: r.Out.Body, at: 700}
		}
	}})
	defer proxy.Close()
	data := bytes.Repeat([]byte("pack data "), 100000)
	eachPutKind(t, proxy.URL, data, func(t *testing.T, st *repo.S3Storage, o repo.PutOptions, bucket string, putFile func(string) error) {
		flip.Store(true)
		if err := st.Put(ctx, "index/changed", data, o); err == nil {
			t.Error("Put of a body changed on the way succeeded")
		} else {
			t.Logf("Put: %v", err)
		}
		if err := putFile("packs/ab/changed"); err == nil {
			t.Error("PutFile of a body changed on the way succeeded")
		} else {
			t.Logf("PutFile: %v", err)
		}
		if keys := bucketKeys(t, bucket); len(keys) != 0 {
			t.Errorf("objects after refused PUTs: %v", keys)
		}
		flip.Store(false)
		if err := st.Put(ctx, "index/unchanged", data, o); err != nil {
			t.Errorf("Put through the proxy: %v", err)
		}
		if err := putFile("packs/ab/unchanged"); err != nil {
			t.Errorf("PutFile through the proxy: %v", err)
		}
		got, err := st.Get(ctx, "packs/ab/unchanged", 0, int64(len(data)), nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("Get of what PutFile stored: %d bytes, %v", len(got), err)
		}
	})
}

// TestS3PutRetriedAfterAServerError: a PUT the server refuses once with a
// transient error (503 Slow Down) is sent again and stored, its checksum
// still matching: from memory (Put), from a pack's temporary file (PutFile),
// with retention (Content-MD5) and without (x-amz-checksum-crc32c).
func TestS3PutRetriedAfterAServerError(t *testing.T) {
	ctx := context.Background()
	m := hostMinIO(t)
	target, err := url.Parse(m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	refused := map[string]bool{}
	pass := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // the host the client signed
	}}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		first := r.Method == http.MethodPut && !refused[r.URL.Path]
		refused[r.URL.Path] = true
		mu.Unlock()
		if first {
			io.Copy(io.Discard, io.LimitReader(r.Body, 1000)) // part of the body, as a server that gives up
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return
		}
		pass.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	data := bytes.Repeat([]byte("pack data "), 100000)
	eachPutKind(t, proxy.URL, data, func(t *testing.T, st *repo.S3Storage, o repo.PutOptions, _ string, putFile func(string) error) {
		if err := st.Put(ctx, "index/retried", data, o); err != nil {
			t.Errorf("Put refused once: %v", err)
		}
		if err := putFile("packs/ab/retried"); err != nil {
			t.Errorf("PutFile refused once: %v", err)
		}
		for _, key := range []string{"index/retried", "packs/ab/retried"} {
			got, err := st.Get(ctx, key, 0, int64(len(data)), nil)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("Get %s: %d bytes, %v", key, len(got), err)
			}
		}
	})
}

// eachPutKind runs fn in a subtest for a bucket without and one with Object
// Lock, reached through proxyURL: fn gets the storage, the put options
// (with a retention for the locked bucket), the bucket, and a putFile that
// stores data from a temporary file, as a pack is.
func eachPutKind(t *testing.T, proxyURL string, data []byte, fn func(t *testing.T, st *repo.S3Storage, o repo.PutOptions, bucket string, putFile func(name string) error)) {
	m := hostMinIO(t)
	for _, locked := range []bool{false, true} {
		name := "plain"
		if locked {
			name = "retention"
		}
		t.Run(name, func(t *testing.T) {
			_, bucket := s3Storage(t, locked)
			st, err := repo.NewS3Storage("s3:"+proxyURL+"/"+bucket, repo.S3Options{AccessKey: m.AccessKey, SecretKey: m.SecretKey})
			if err != nil {
				t.Fatal(err)
			}
			var o repo.PutOptions
			if locked {
				o.Retention = &repo.Retention{Mode: repo.Governance, Until: time.Now().Add(time.Hour)}
			}
			putFile := func(name string) error {
				f, err := os.CreateTemp(t.TempDir(), "pack-")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write(data); err != nil {
					t.Fatal(err)
				}
				return st.PutFile(context.Background(), name, f, o)
			}
			fn(t, st, o, bucket, putFile)
		})
	}
}
