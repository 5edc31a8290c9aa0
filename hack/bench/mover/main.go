// Command mover benchmarks backup-mover against restic, borg, rsync and tar|zstd on the same
// data in one run (on a directory, and on S3 against restic on the same
// MinIO server; and backup-mover encrypted against unencrypted): full backup, no-change backup, backup after changing 1% of
// the files and appending to the large file, and full restore. It prints wall
// time, peak RSS and repository size as a table with ratios, and the disk's own
// sequential write and read speed beside it. Run it with `make bench-mover`.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"example.com/backup-operator/hack/cluster"
)

type measurement struct {
	wall time.Duration
	rss  int64 // KiB
}

type tool struct {
	name string
	// repoSize, when set, measures the repository of the run in dir (its
	// prefix's directory in MinIO's bucket); else the repo directory is
	// measured.
	repoSize func(dir string) int64
	// location, when set, is the repository's location (an S3 URL)
	// instead of a directory beside the tool's tree.
	location func(dir string) string
	// drop, when set, removes the repository of the run in dir (its
	// objects in MinIO) between rounds.
	drop    func(dir string) error
	backup  func(src, repo string) []string // a bash command line
	restore func(repo, dst string) []string
	init    func(repo string) []string
}

// only limits the run to these tools (comma-separated names).
var only string

// rounds is how many times each tool runs the steps; the table shows medians.
var rounds int

// showStderr passes the tools' standard error through (with
// BACKUP_MOVER_S3_STATS=1, backup-mover's S3 statistics).
var showStderr bool

func main() {
	work := flag.String("dir", "/var/tmp/backup-operator-bench", "work directory (the dataset is kept there between runs)")
	small := flag.Int("small-files", 50000, "number of small files")
	bigMiB := flag.Int("big-mib", 1024, "size of the incompressible file")
	textMiB := flag.Int("text-mib", 512, "size of the compressible file")
	flag.StringVar(&only, "only", "", "comma-separated tools to run (default all), e.g. \"backup-mover S3,restic S3\"")
	flag.BoolVar(&showStderr, "stderr", false, "pass the tools' standard error through")
	flag.IntVar(&rounds, "rounds", 1, "run every tool's steps this many times, each round on a fresh copy and repository, the tools' order reversed every other round; the table shows medians and the ratio of each round")
	var scale scaleOptions
	million := flag.Bool("million", false, "instead of the standard cases: a tree of -files small files, backup-mover against restic (make bench-mover-scale)")
	flag.IntVar(&scale.files, "files", 1000000, "files of the -million tree")
	flag.IntVar(&scale.width, "width", 100, "entries to a directory in the -million trees")
	flag.BoolVar(&scale.growth, "growth", true, "with -million: also peak memory against files (a tenth and three tenths of -files), one wide directory, and repository size, prune included")
	flag.IntVar(&scale.hugeGB, "huge-gib", 0, "instead of the standard cases: one incompressible file of this many GiB, backup-mover against restic (less when the disk is short; deleted after)")
	flag.BoolVar(&scale.generateOnly, "generate-only", false, "with -million: write the trees and stop (they are kept for later runs)")
	flag.Parse()
	if *million || scale.hugeGB > 0 {
		if !*million {
			scale.files = 0
		}
		if err := runScale(*work, scale); err != nil {
			fmt.Fprintln(os.Stderr, "bench-mover:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*work, *small, *bigMiB, *textMiB); err != nil {
		fmt.Fprintln(os.Stderr, "bench-mover:", err)
		os.Exit(1)
	}
}

func run(work string, small, bigMiB, textMiB int) error {
	var missing []string
	for pkg, cmd := range map[string]string{"restic": "restic", "zstd": "zstd", "borgbackup": "borg", "rsync": "rsync"} {
		if _, err := exec.LookPath(cmd); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		fmt.Printf("installing %v (Debian packages) ...\n", missing)
		if out, err := exec.Command("bash", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "+strings.Join(missing, " ")).CombinedOutput(); err != nil {
			return fmt.Errorf("installing %v: %v\n%s", missing, err, out)
		}
	}
	bin := filepath.Join(work, "bin")
	if err := cluster.BuildOperator(bin); err != nil {
		return err
	}
	mover := filepath.Join(bin, "backup-mover")
	src := filepath.Join(work, "data")
	if err := generate(src, small, bigMiB, textMiB); err != nil {
		return err
	}
	runs, unmount, err := benchFilesystem(work)
	if err != nil {
		return err
	}
	defer unmount()
	writeMBs, readMBs, err := diskSpeed(runs)
	if err != nil {
		return err
	}
	os.Setenv("RESTIC_PASSWORD", "bench")
	// borg keeps its files cache (what makes an unchanged tree fast) under
	// its base directory: a fresh one on the benchmark's filesystem.
	os.RemoveAll(filepath.Join(runs, "borg-home"))
	os.Setenv("BORG_BASE_DIR", filepath.Join(runs, "borg-home"))
	os.Setenv("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
	os.Setenv("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
	passwordFile := filepath.Join(work, "password")
	if err := os.WriteFile(passwordFile, []byte("bench"), 0o600); err != nil {
		return err
	}
	minioDir := filepath.Join(runs, "minio")
	os.RemoveAll(minioDir)
	s3, err := cluster.StartHostMinIO(minioDir)
	if err != nil {
		return err
	}
	defer s3.Stop()
	os.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	for _, b := range []string{"ours", "restic"} {
		if err := s3.MakeBucket(context.Background(), b, false); err != nil {
			return err
		}
	}
	bucketSize := func(b string) func(string) int64 {
		return func(dir string) int64 { return duBytes(filepath.Join(minioDir, "data", b, filepath.Base(dir))) }
	}
	dropPrefix := func(b string) func(string) error {
		return func(dir string) error {
			c, err := s3.Client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var listErr error
			objects := make(chan minio.ObjectInfo)
			go func() {
				defer close(objects)
				for oi := range c.ListObjects(ctx, b, minio.ListObjectsOptions{Prefix: filepath.Base(dir) + "/", Recursive: true}) {
					if oi.Err != nil {
						listErr = oi.Err
						return
					}
					objects <- oi
				}
			}()
			var removeErr error
			for e := range c.RemoveObjects(ctx, b, objects, minio.RemoveObjectsOptions{}) {
				if removeErr == nil {
					removeErr = e.Err
				}
			}
			if listErr != nil {
				return listErr
			}
			return removeErr
		}
	}
	tools := []tool{
		{
			name:   "backup-mover",
			init:   func(repo string) []string { return nil },
			backup: func(src, repo string) []string { return []string{mover, "backup", "--repo", repo, "--source", src} },
			restore: func(repo, dst string) []string {
				return []string{mover, "restore", "--repo", repo, "--snapshot", "latest", "--target", dst}
			},
		},
		{
			name:   "restic",
			init:   func(repo string) []string { return []string{"restic", "init", "-q", "--repo", repo} },
			backup: func(src, repo string) []string { return []string{"restic", "backup", "-q", "--repo", repo, src} },
			restore: func(repo, dst string) []string {
				return []string{"restic", "restore", "-q", "--repo", repo, "latest", "--target", dst}
			},
		},
		{
			name: "backup-mover encrypted",
			init: func(repo string) []string { return nil },
			backup: func(src, repo string) []string {
				return []string{mover, "backup", "--repo", repo, "--password-file", passwordFile, "--source", src}
			},
			restore: func(repo, dst string) []string {
				return []string{mover, "restore", "--repo", repo, "--password-file", passwordFile, "--snapshot", "latest", "--target", dst}
			},
		},
		{
			name:     "backup-mover S3",
			location: func(dir string) string { return "s3:" + s3.Endpoint + "/ours/" + filepath.Base(dir) },
			repoSize: bucketSize("ours"),
			drop:     dropPrefix("ours"),
			init:     func(repo string) []string { return nil },
			backup:   func(src, repo string) []string { return []string{mover, "backup", "--repo", repo, "--source", src} },
			restore: func(repo, dst string) []string {
				return []string{mover, "restore", "--repo", repo, "--snapshot", "latest", "--target", dst}
			},
		},
		{
			name:     "restic S3",
			location: func(dir string) string { return "s3:" + s3.Endpoint + "/restic/" + filepath.Base(dir) },
			repoSize: bucketSize("restic"),
			drop:     dropPrefix("restic"),
			init:     func(repo string) []string { return []string{"restic", "init", "-q", "--repo", repo} },
			backup:   func(src, repo string) []string { return []string{"restic", "backup", "-q", "--repo", repo, src} },
			restore: func(repo, dst string) []string {
				return []string{"restic", "restore", "-q", "--repo", repo, "latest", "--target", dst}
			},
		},
		{
			// borg with zstd level 3, unencrypted like the other directory rows.
			name: "borg",
			init: func(repo string) []string { return []string{"borg", "init", "--encryption=none", repo} },
			backup: func(src, repo string) []string {
				return []string{"bash", "-c", fmt.Sprintf("cd %s && borg create --compression zstd,3 %s::'{now:%%Y-%%m-%%dT%%H:%%M:%%S.%%f}' .", src, repo)}
			},
			restore: func(repo, dst string) []string {
				return []string{"bash", "-c", fmt.Sprintf("mkdir -p %s && cd %s && borg extract %s::$(borg list --last 1 --short %s)", dst, dst, repo, repo)}
			},
		},
		{
			// A plain copy: the floor for walking an unchanged tree.
			name: "rsync -a",
			init: func(repo string) []string { return []string{"mkdir", "-p", repo} },
			backup: func(src, repo string) []string {
				return []string{"rsync", "-a", "--delete", src + "/", repo + "/"}
			},
			restore: func(repo, dst string) []string {
				return []string{"rsync", "-a", repo + "/", dst + "/"}
			},
		},
		{
			name: "tar | zstd",
			init: func(repo string) []string { return []string{"mkdir", "-p", repo} },
			backup: func(src, repo string) []string {
				return []string{"bash", "-c", fmt.Sprintf("n=$(ls %s | wc -l); tar -C %s -cf - . | zstd -q -T0 -1 -o %s/$n.tar.zst", repo, src, repo)}
			},
			restore: func(repo, dst string) []string {
				return []string{"bash", "-c", fmt.Sprintf("mkdir -p %s && zstd -q -d -c $(ls -d %s/*.tar.zst | sort -V | tail -1) | tar -C %s -xf -", dst, repo, dst)}
			},
		},
	}
	scenarios := []string{"full backup", "no-change backup", "1% changed + append", "full restore"}
	results := map[string]map[string][]measurement{}
	sizes := map[string]int64{}
	if only != "" {
		var keep []tool
		for _, tl := range tools {
			if strings.Contains(","+only+",", ","+tl.name+",") {
				keep = append(keep, tl)
			}
		}
		tools = keep
	}
	for _, tl := range tools {
		results[tl.name] = map[string][]measurement{}
	}
	// Each tool sees the same sequence of data; the change step is replayed
	// from a fixed seed on a fresh copy of the dataset for each tool. With
	// rounds, every round runs every tool again on fresh copies, the order
	// reversed every other round, so a drift of the machine's speed falls
	// on all tools alike.
	for round := 0; round < rounds; round++ {
		order := slices.Clone(tools)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, tl := range order {
			name := strings.ReplaceAll(strings.ReplaceAll(tl.name, " ", ""), "|", "")
			if rounds > 1 {
				name += fmt.Sprintf("-round%d", round+1)
				fmt.Printf("== %s (round %d of %d)\n", tl.name, round+1, rounds)
			} else {
				fmt.Printf("== %s\n", tl.name)
			}
			dir := filepath.Join(runs, name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			repo := filepath.Join(dir, "repo")
			if tl.location != nil {
				repo = tl.location(dir)
			}
			tree := filepath.Join(dir, "tree")
			dst := filepath.Join(dir, "restored")
			if out, err := exec.Command("cp", "-a", src, tree).CombinedOutput(); err != nil {
				return fmt.Errorf("copying dataset: %v %s", err, out)
			}
			if cmd := tl.init(repo); cmd != nil {
				if _, err := measure(cmd); err != nil {
					return err
				}
			}
			steps := []struct {
				name   string
				before func() error
				cmd    []string
			}{
				{scenarios[0], nil, tl.backup(tree, repo)},
				{scenarios[1], nil, tl.backup(tree, repo)},
				{scenarios[2], func() error { return change(tree) }, tl.backup(tree, repo)},
				{scenarios[3], nil, tl.restore(repo, dst)},
			}
			for _, s := range steps {
				if s.before != nil {
					if err := s.before(); err != nil {
						return err
					}
				}
				dropCaches()
				m, err := measure(s.cmd)
				if err != nil {
					return fmt.Errorf("%s %s: %w", tl.name, s.name, err)
				}
				results[tl.name][s.name] = append(results[tl.name][s.name], m)
				fmt.Printf("   %-22s %8.2f s  %8d KiB peak RSS\n", s.name, m.wall.Seconds(), m.rss)
			}
			if tl.repoSize != nil {
				sizes[tl.name] = tl.repoSize(dir)
			} else {
				sizes[tl.name] = duBytes(repo)
			}
			// restic restores the absolute source path beneath the target.
			restored := dst
			if strings.HasPrefix(tl.name, "restic") {
				restored = filepath.Join(dst, tree)
			}
			if out, err := exec.Command("diff", "-r", "-q", tree, restored).CombinedOutput(); err != nil {
				return fmt.Errorf("%s restored a tree that differs from the source: %v\n%s", tl.name, err, out)
			}
			if rounds > 1 {
				// Room for the next rounds.
				os.RemoveAll(tree)
				os.RemoveAll(dst)
				if tl.drop != nil {
					if err := tl.drop(dir); err != nil {
						return fmt.Errorf("removing %s: %w", repo, err)
					}
				} else {
					os.RemoveAll(repo)
				}
				syscall.Sync()
			}
		}
	}
	report(tools, scenarios, results, sizes, writeMBs, readMBs, duBytes(src))
	return nil
}

// benchFilesystem returns the directory the tools work in: a fresh ext4
// filesystem with a journal, in an image file mounted through a loop device,
// when this machine allows it (root, mkfs.ext4). It keeps runs apart from the
// host's filesystem state: on ext4 without a journal (this machine's root
// filesystem) a new inode skips every inode deleted in the last minutes, so
// the 50,000 creates of a restore cost several times more kernel CPU after a
// large delete, and the order of the tools would decide the result. Without
// the loop mount, the tools work in a directory under work, and nothing is
// deleted while they are timed.
func benchFilesystem(work string) (string, func(), error) {
	mnt := filepath.Join(work, "fs")
	img := filepath.Join(work, "fs.img")
	// Left by an interrupted run.
	exec.Command("umount", mnt).Run()
	if out, err := exec.Command("losetup", "-j", img).Output(); err == nil && len(out) > 0 {
		exec.Command("losetup", "-d", strings.SplitN(string(out), ":", 2)[0]).Run()
	}
	os.Remove(img)
	fallback := func(why string) (string, func(), error) {
		fmt.Printf("note: the tools run on the host filesystem (%s)\n", why)
		dir := filepath.Join(work, "runs")
		os.RemoveAll(dir)
		return dir, func() { os.RemoveAll(dir) }, os.MkdirAll(dir, 0o755)
	}
	if os.Geteuid() != 0 {
		return fallback("not root, no loop mount")
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return "", nil, err
	}
	run := func(argv ...string) (string, error) {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s: %v %s", argv[0], err, strings.TrimSpace(string(out)))
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := run("truncate", "-s", "48G", img); err != nil {
		return fallback(err.Error())
	}
	if _, err := run("mkfs.ext4", "-q", "-F", "-N", "1000000", "-E", "lazy_itable_init=0,lazy_journal_init=0", img); err != nil {
		os.Remove(img)
		return fallback(err.Error())
	}
	// Direct I/O from the loop device to its image: no second page cache.
	dev, err := run("losetup", "--find", "--show", "--direct-io=on", img)
	if err != nil {
		os.Remove(img)
		return fallback(err.Error())
	}
	if _, err := run("mount", dev, mnt); err != nil {
		run("losetup", "-d", dev)
		os.Remove(img)
		return fallback(err.Error())
	}
	fmt.Printf("the tools run on a fresh ext4 filesystem at %s (%s, direct I/O to a sparse image)\n", mnt, dev)
	return mnt, func() {
		run("umount", mnt)
		run("losetup", "-d", dev)
		os.Remove(img)
	}, nil
}

// generate writes the dataset once: a large incompressible file, a large
// compressible one, and many small files in nested directories.
func generate(dir string, small, bigMiB, textMiB int) error {
	marker := filepath.Join(dir, ".complete")
	want := fmt.Sprintf("%d %d %d", small, bigMiB, textMiB)
	if data, err := os.ReadFile(marker); err == nil && string(data) == want {
		return nil
	}
	fmt.Printf("generating the dataset in %s ...\n", dir)
	os.RemoveAll(dir)
	rng := rand.New(rand.NewSource(42))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	f, err := os.Create(filepath.Join(dir, "random.bin"))
	if err != nil {
		return err
	}
	for i := 0; i < bigMiB; i++ {
		rng.Read(buf)
		f.Write(buf)
	}
	f.Close()
	f, err = os.Create(filepath.Join(dir, "app.log"))
	if err != nil {
		return err
	}
	words := strings.Fields("GET POST PUT /api/v1/users /api/v1/orders /healthz 200 201 404 500 user=alice user=bob latency_ms= bytes= request_id=")
	var line bytes.Buffer
	for written := 0; written < textMiB<<20; {
		line.Reset()
		fmt.Fprintf(&line, "2026-11-26T%02d:%02d:%02d.%03dZ", rng.Intn(24), rng.Intn(60), rng.Intn(60), rng.Intn(1000))
		for j := 0; j < 8; j++ {
			line.WriteByte(' ')
			line.WriteString(words[rng.Intn(len(words))])
			if j%3 == 0 {
				fmt.Fprintf(&line, "%d", rng.Intn(100000))
			}
		}
		line.WriteByte('\n')
		n, _ := f.Write(line.Bytes())
		written += n
	}
	f.Close()
	for i := 0; i < small; i++ {
		p := filepath.Join(dir, "small", fmt.Sprintf("%02d", i%50), fmt.Sprintf("%03d", (i/50)%40), fmt.Sprintf("file-%06d.dat", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		size := 512 + rng.Intn(15000)
		data := buf[:size]
		rng.Read(data[:size/2]) // half random, half repeated: mildly compressible
		copy(data[size/2:], data[:size/2])
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(marker, []byte(want), 0o644)
}

// change rewrites 1% of the small files and appends 64 MiB to the large file.
func change(tree string) error {
	rng := rand.New(rand.NewSource(7))
	var files []string
	filepath.Walk(filepath.Join(tree, "small"), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	for i := 0; i < len(files)/100; i++ {
		p := files[rng.Intn(len(files))]
		data := make([]byte, 4096)
		rng.Read(data)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(filepath.Join(tree, "random.bin"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		rng.Read(buf)
		f.Write(buf)
	}
	return nil
}

// measure times a command until what it wrote is on disk: the command, then
// sync. backup-mover syncs before it reports success, restic and tar do not;
// timing every tool to the same point keeps the comparison fair.
func measure(argv []string) (measurement, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if showStderr {
		cmd.Stderr = io.MultiWriter(&out, os.Stderr)
	}
	start := time.Now()
	err := cmd.Run()
	syscall.Sync()
	m := measurement{wall: time.Since(start)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.rss = ru.Maxrss
	}
	if err != nil {
		tail := out.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return m, fmt.Errorf("%v: %w\n%s", argv, err, tail)
	}
	return m, nil
}

// lockedBuffer is a bytes.Buffer two copying goroutines may write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dropCaches empties the page cache when allowed, so each step reads from disk.
func dropCaches() {
	exec.Command("sync").Run()
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200)
}

// diskSpeed measures sequential write (with fsync) and read of 1 GiB.
func diskSpeed(work string) (writeMBs, readMBs float64, err error) {
	path := filepath.Join(work, "disk-speed.tmp")
	defer os.Remove(path)
	buf := make([]byte, 4<<20)
	rand.Read(buf)
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	for i := 0; i < 256; i++ {
		f.Write(buf)
	}
	f.Sync()
	f.Close()
	writeMBs = 1024 / time.Since(start).Seconds()
	dropCaches()
	f, _ = os.Open(path)
	start = time.Now()
	for {
		if _, err := f.Read(buf); err != nil {
			break
		}
	}
	f.Close()
	readMBs = 1024 / time.Since(start).Seconds()
	return writeMBs, readMBs, nil
}

func duBytes(dir string) int64 {
	out, err := exec.Command("du", "-sb", dir).Output()
	if err != nil {
		return 0
	}
	var n int64
	fmt.Sscan(string(out), &n)
	return n
}

func report(tools []tool, scenarios []string, res map[string]map[string][]measurement, sizes map[string]int64, writeMBs, readMBs float64, dataBytes int64) {
	fmt.Printf("\ndataset: %.2f GiB; disk: sequential write %.0f MB/s (fsync), read %.0f MB/s\n", float64(dataBytes)/(1<<30), writeMBs, readMBs)
	fmt.Printf("times: wall clock until the data is on disk (the command, then sync); caches dropped before each step\n")
	if rounds > 1 {
		fmt.Printf("%d rounds: medians; below each table, the ratio of each round\n", rounds)
	}
	table("On a directory (a PVC)", []string{"backup-mover", "restic", "tar | zstd"}, scenarios, res, sizes)
	table("S3 (MinIO on loopback, data on the same disk)", []string{"backup-mover S3", "restic S3"}, scenarios, res, sizes)
	table("Encryption (directory)", []string{"backup-mover encrypted", "backup-mover"}, scenarios, res, sizes)
	table("Against borg (zstd,3) and rsync -a (directory)", []string{"backup-mover", "borg", "rsync -a"}, scenarios, res, sizes)
	table("Against rsync -a (directory)", []string{"backup-mover", "rsync -a"}, scenarios, res, sizes)
}

// table prints the named tools side by side; the last column is the first
// tool over the second.
func table(title string, names, scenarios []string, all map[string]map[string][]measurement, sizes map[string]int64) {
	for _, n := range names {
		if all[n] == nil {
			return // not run (-only)
		}
	}
	res := map[string]map[string]measurement{}
	for _, n := range names {
		res[n] = map[string]measurement{}
		for _, s := range scenarios {
			res[n][s] = median(all[n][s])
		}
	}
	a, b := names[0], names[1]
	fmt.Printf("\n%s\n\n| %-20s |", title, "step")
	for _, n := range names {
		fmt.Printf(" %-22s |", n)
	}
	fmt.Printf(" %-14s |\n|%s|", "first / second", strings.Repeat("-", 22))
	for range names {
		fmt.Printf("%s|", strings.Repeat("-", 24))
	}
	fmt.Printf("%s|\n", strings.Repeat("-", 16))
	for _, s := range scenarios {
		fmt.Printf("| %-20s |", s)
		for _, n := range names {
			fmt.Printf(" %8.2f s             |", res[n][s].wall.Seconds())
		}
		fmt.Printf(" %6.2fx time   |\n", res[a][s].wall.Seconds()/res[b][s].wall.Seconds())
	}
	for _, s := range scenarios {
		fmt.Printf("| %-20s |", s)
		for _, n := range names {
			fmt.Printf(" %8d MiB RSS       |", res[n][s].rss/1024)
		}
		fmt.Printf(" %6.2fx RSS    |\n", float64(res[a][s].rss)/float64(res[b][s].rss))
	}
	fmt.Printf("| %-20s |", "repository size")
	for _, n := range names {
		fmt.Printf(" %8.0f MiB           |", float64(sizes[n])/(1<<20))
	}
	fmt.Printf(" %6.2fx size   |\n", float64(sizes[a])/float64(sizes[b]))
	if rounds > 1 {
		fmt.Printf("\neach round, %s / %s:\n", a, b)
		for _, s := range scenarios {
			fmt.Printf("  %-20s", s)
			for i := range all[a][s] {
				fmt.Printf("  %.2fx time, %.2fx RSS", all[a][s][i].wall.Seconds()/all[b][s][i].wall.Seconds(), float64(all[a][s][i].rss)/float64(all[b][s][i].rss))
			}
			fmt.Println()
		}
	}
}

// median is the measurement with the median wall time and, apart, the
// median peak RSS (of an even count, the lower middle one).
func median(ms []measurement) measurement {
	walls := make([]time.Duration, len(ms))
	rss := make([]int64, len(ms))
	for i, m := range ms {
		walls[i], rss[i] = m.wall, m.rss
	}
	slices.Sort(walls)
	slices.Sort(rss)
	return measurement{wall: walls[(len(ms)-1)/2], rss: rss[(len(ms)-1)/2]}
}
