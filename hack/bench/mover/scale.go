package main

// The scale cases (make bench-mover-scale): a tree of 1,000,000 small files
// and a single huge incompressible file, backup-mover against restic, and how
// peak memory grows with the number of files, the width of a directory and
// the size of the repository (prune included).

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// scaleOptions say which scale cases run.
type scaleOptions struct {
	files  int // files of the large tree (-million)
	width  int // entries per directory of the nested trees
	hugeGB int // GiB of the huge file; 0: no huge case
	growth bool
	// generateOnly writes the trees of small files and stops.
	generateOnly bool
}

// scaleRow is one step of a scale case, measured for each tool that ran it.
type scaleRow struct {
	name  string
	res   map[string]measurement
	sizes map[string]int64 // repository size after the step, when measured
}

func runScale(work string, o scaleOptions) error {
	if o.generateOnly {
		return millionCase(work, "", "", o)
	}
	for _, cmd := range []string{"restic"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return fmt.Errorf("%s is needed for the scale cases (apt-get install restic)", cmd)
		}
	}
	bin := filepath.Join(work, "bin")
	if err := buildMover(bin); err != nil {
		return err
	}
	mover := filepath.Join(bin, "backup-mover")
	os.Setenv("RESTIC_PASSWORD", "bench")
	runs := filepath.Join(work, "scale-runs")
	os.RemoveAll(runs)
	if err := os.MkdirAll(runs, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(runs)
	fmt.Printf("note: the scale cases read their trees in %s and write repositories to %s (the host filesystem)\n", work, runs)
	if o.hugeGB > 0 {
		if err := hugeCase(work, runs, mover, o.hugeGB); err != nil {
			return err
		}
	}
	if o.files > 0 {
		if err := millionCase(work, runs, mover, o); err != nil {
			return err
		}
	}
	return nil
}

// buildMover builds backup-mover alone (the scale cases need no cluster binaries).
func buildMover(bin string) error {
	out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "backup-mover"), "./cmd/backup-mover").CombinedOutput()
	if err != nil {
		return fmt.Errorf("building backup-mover: %v\n%s", err, out)
	}
	return nil
}

// moverBackup is a backup-mover backup whose summary (with the snapshot id)
// goes to summary.
func moverBackup(mover, repoDir, src, summary string) []string {
	return []string{mover, "backup", "--repo", repoDir, "--source", src, "--summary-file", summary}
}

func resticBackup(repoDir, src string) []string {
	return []string{"restic", "backup", "-q", "--repo", repoDir, src}
}

func snapshotID(summary string) (string, error) {
	data, err := os.ReadFile(summary)
	if err != nil {
		return "", err
	}
	var s struct {
		SnapshotID string `json:"snapshotID"`
	}
	if err := json.Unmarshal(data, &s); err != nil || s.SnapshotID == "" {
		return "", fmt.Errorf("no snapshot id in %s: %v", summary, err)
	}
	return s.SnapshotID, nil
}

// step drops the caches, runs argv and prints the measurement.
func step(label string, argv []string) (measurement, error) {
	dropCaches()
	m, err := measure(argv)
	if err != nil {
		return m, fmt.Errorf("%s: %w", label, err)
	}
	fmt.Printf("   %-52s %8.2f s  %8d KiB peak RSS\n", label, m.wall.Seconds(), m.rss)
	return m, nil
}

// freeBytes is the space available to an unprivileged writer under dir.
func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return int64(st.Bavail) * st.Bsize
}

// hugeCase backs up one incompressible file of gib GiB (less when the disk
// cannot hold the file and one repository of it beside the 4 GiB margin),
// with each tool in turn; each repository is deleted after its tool's steps,
// and the file at the end.
func hugeCase(work, runs, mover string, gib int) error {
	dir := filepath.Join(work, "huge")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	free := freeBytes(dir)
	fit := int((free/(1<<30) - 4) / 2)
	if fit < gib {
		fmt.Printf("note: %d GiB free in %s holds a file and one repository of %d GiB at most; the huge file is %d GiB, not %d\n", free>>30, work, fit, fit, gib)
		gib = fit
	}
	if gib < 1 {
		return fmt.Errorf("not enough free space in %s for the huge-file case", work)
	}
	src := filepath.Join(dir, "tree")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	fmt.Printf("== huge file: generating %d GiB of incompressible data ...\n", gib)
	f, err := os.Create(filepath.Join(src, "huge.bin"))
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewSource(20))
	buf := make([]byte, 4<<20)
	for i := 0; i < gib*256; i++ {
		rng.Read(buf)
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	rows := []*scaleRow{{name: "full backup", res: map[string]measurement{}, sizes: map[string]int64{}},
		{name: "no-change backup", res: map[string]measurement{}, sizes: map[string]int64{}}}
	summary := filepath.Join(runs, "summary.json")
	for _, t := range []string{"backup-mover", "restic"} {
		repoDir := filepath.Join(runs, "huge-"+t)
		cmd := moverBackup(mover, repoDir, src, summary)
		if t == "restic" {
			if _, err := measure([]string{"restic", "init", "-q", "--repo", repoDir}); err != nil {
				return err
			}
			cmd = resticBackup(repoDir, src)
		}
		for _, r := range rows {
			m, err := step(fmt.Sprintf("%s: %s", t, r.name), cmd)
			if err != nil {
				return err
			}
			r.res[t] = m
			r.sizes[t] = duBytes(repoDir)
		}
		os.RemoveAll(repoDir)
	}
	scaleTable(fmt.Sprintf("One incompressible file of %d GiB", gib), rows)
	return nil
}

// tree is a generated tree of small files.
type tree struct {
	files, width int
	seed         int64
}

func (t tree) dir(work string) string {
	return filepath.Join(work, fmt.Sprintf("files-%d-w%d", t.files, t.width))
}

// generateTree writes t once: files of 1–4 KiB (half random, half a repeat:
// mildly compressible, each one different), width entries to a directory,
// in as many levels as that takes. A marker beside the tree says it is
// complete.
func generateTree(work string, t tree) (string, error) {
	dir := t.dir(work)
	marker := dir + ".complete"
	want := fmt.Sprintf("%d %d %d", t.files, t.width, t.seed)
	if data, err := os.ReadFile(marker); err == nil && string(data) == want {
		return dir, nil
	}
	fmt.Printf("generating %d files, %d to a directory, in %s ...\n", t.files, t.width, dir)
	os.Remove(marker)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	// levels: the fewest directory levels that keep each directory at width entries.
	levels := 0
	for n := t.files; n > t.width; n = (n + t.width - 1) / t.width {
		levels++
	}
	rng := rand.New(rand.NewSource(t.seed))
	buf := make([]byte, 4096)
	last := ""
	for i := 0; i < t.files; i++ {
		parts := make([]string, levels)
		q := i / t.width
		for l := levels - 1; l >= 0; l-- {
			parts[l] = fmt.Sprintf("d%03d", q%t.width)
			q /= t.width
		}
		sub := filepath.Join(append([]string{dir}, parts...)...)
		if sub != last {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return "", err
			}
			last = sub
		}
		size := 1024 + rng.Intn(3073)
		data := buf[:size]
		rng.Read(data[:size/2])
		copy(data[size/2:], data[:size/2])
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%07d", i)), data, 0o644); err != nil {
			return "", err
		}
	}
	exec.Command("sync").Run()
	return dir, os.WriteFile(marker, []byte(want), 0o644)
}

// millionCase backs up the large tree with each tool (full, then no
// change), and with -growth also measures smaller and wider trees, a backup
// into a repository that already holds the large tree, and a prune of it.
func millionCase(work, runs, mover string, o scaleOptions) error {
	large := tree{files: o.files, width: o.width, seed: 1}
	trees := []tree{large}
	var small, medium, wide tree
	if o.growth {
		small = tree{files: o.files / 10, width: o.width, seed: 2}
		medium = tree{files: o.files * 3 / 10, width: o.width, seed: 3}
		wide = tree{files: o.files / 10, width: o.files / 10, seed: 2} // the small tree's files, all in one directory
		trees = append(trees, small, medium, wide)
	}
	dirs := map[tree]string{}
	for _, t := range trees {
		d, err := generateTree(work, t)
		if err != nil {
			return err
		}
		dirs[t] = d
	}
	if o.generateOnly {
		return nil
	}
	summary := filepath.Join(runs, "summary.json")
	newRow := func(name string) *scaleRow {
		return &scaleRow{name: name, res: map[string]measurement{}, sizes: map[string]int64{}}
	}
	// Each tool's repository of the large tree, kept for the growth steps.
	repos := map[string]string{}
	full, noChange := newRow("full backup"), newRow("no-change backup")
	for _, t := range []string{"backup-mover", "restic"} {
		fmt.Printf("== %d files: %s\n", large.files, t)
		repoDir := filepath.Join(runs, "large-"+t)
		repos[t] = repoDir
		cmd := moverBackup(mover, repoDir, dirs[large], summary)
		if t == "restic" {
			if _, err := measure([]string{"restic", "init", "-q", "--repo", repoDir}); err != nil {
				return err
			}
			cmd = resticBackup(repoDir, dirs[large])
		}
		for _, r := range []*scaleRow{full, noChange} {
			m, err := step(fmt.Sprintf("%s: %s", t, r.name), cmd)
			if err != nil {
				return err
			}
			r.res[t] = m
			r.sizes[t] = duBytes(repoDir)
		}
	}
	scaleTable(fmt.Sprintf("%d files of 1–4 KiB, %d entries to a directory", large.files, large.width), []*scaleRow{full, noChange})
	if !o.growth {
		return nil
	}

	// Growth: full backups of smaller and wider trees into empty repositories.
	label := func(t tree) string {
		if t.width >= t.files {
			return fmt.Sprintf("full, %d files in one directory", t.files)
		}
		return fmt.Sprintf("full, %d files, %d to a directory", t.files, t.width)
	}
	var rows []*scaleRow
	for _, t := range []tree{small, medium} {
		rows = append(rows, newRow(label(t)))
	}
	rows = append(rows, &scaleRow{name: label(large), res: full.res, sizes: full.sizes})
	rows = append(rows, newRow(label(wide)))
	fmt.Println("== growth with files and directory width")
	for i, t := range []tree{small, medium, large, wide} {
		if t == large {
			continue // measured above
		}
		for _, tl := range []string{"backup-mover", "restic"} {
			repoDir := filepath.Join(runs, "growth-"+tl)
			os.RemoveAll(repoDir)
			cmd := moverBackup(mover, repoDir, dirs[t], summary)
			if tl == "restic" {
				if _, err := measure([]string{"restic", "init", "-q", "--repo", repoDir}); err != nil {
					return err
				}
				cmd = resticBackup(repoDir, dirs[t])
			}
			m, err := step(fmt.Sprintf("%s: %s", tl, rows[i].name), cmd)
			if err != nil {
				return err
			}
			rows[i].res[tl] = m
			rows[i].sizes[tl] = duBytes(repoDir)
			os.RemoveAll(repoDir)
		}
	}

	// Growth with the repository: the repositories of the large tree hold
	// its two snapshots; back up the medium and then the small tree into
	// them, then forget the two snapshots of the large tree and prune.
	fmt.Println("== growth with the repository")
	intoMedium := newRow(fmt.Sprintf("full, %d files, into the %d-file repo", medium.files, large.files))
	intoSmall := newRow(fmt.Sprintf("full, %d files, into that repo", small.files))
	prune := newRow(fmt.Sprintf("forget the %d-file snapshots, prune", large.files))
	for _, tl := range []string{"backup-mover", "restic"} {
		repoDir := repos[tl]
		var ids []string
		if tl == "backup-mover" {
			out, err := exec.Command(mover, "ls", "--repo", repoDir).Output()
			if err != nil {
				return fmt.Errorf("listing snapshots: %v", err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if f := strings.Fields(line); len(f) == 6 && f[5] == dirs[large] {
					ids = append(ids, f[0])
				}
			}
		}
		for _, x := range []struct {
			row *scaleRow
			t   tree
		}{{intoMedium, medium}, {intoSmall, small}} {
			cmd := moverBackup(mover, repoDir, dirs[x.t], summary)
			if tl == "restic" {
				cmd = resticBackup(repoDir, dirs[x.t])
			}
			m, err := step(fmt.Sprintf("%s: %s", tl, x.row.name), cmd)
			if err != nil {
				return err
			}
			x.row.res[tl] = m
			x.row.sizes[tl] = duBytes(repoDir)
		}
		var cmd []string
		if tl == "backup-mover" {
			if len(ids) != 2 {
				return fmt.Errorf("want the 2 snapshots of the large tree in %s, found %v", repoDir, ids)
			}
			cmd = []string{mover, "prune", "--repo", repoDir, "--forget", ids[0], "--forget", ids[1]}
		} else {
			// The ids of the large tree's snapshots.
			out, err := exec.Command("restic", "snapshots", "-q", "--repo", repoDir, "--path", dirs[large], "--json").Output()
			if err != nil {
				return fmt.Errorf("listing restic snapshots: %v", err)
			}
			var snaps []struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(out, &snaps); err != nil || len(snaps) != 2 {
				return fmt.Errorf("want the 2 restic snapshots of the large tree, got %s", out)
			}
			cmd = []string{"restic", "forget", "-q", "--repo", repoDir, "--prune", snaps[0].ID, snaps[1].ID}
		}
		m, err := step(fmt.Sprintf("%s: %s", tl, prune.name), cmd)
		if err != nil {
			return err
		}
		prune.res[tl] = m
		prune.sizes[tl] = duBytes(repoDir)
	}
	rows = append(rows, intoMedium, intoSmall, prune)
	scaleTable("Peak memory growth (each full backup of a tree into an empty repository, unless said)", rows)
	return nil
}

// scaleTable prints backup-mover against restic, step by step.
func scaleTable(title string, rows []*scaleRow) {
	a, b := "backup-mover", "restic"
	// "mover" is backup-mover; ratios are backup-mover over restic.
	fmt.Printf("\n%s (backup-mover against restic)\n\n| %-48s | %-12s | %-12s | %-7s | %-14s | %-14s | %-7s | %-11s | %-11s |\n", title,
		"step", "mover time", "restic time", "ratio", "mover RSS", "restic RSS", "ratio", "mover repo", "restic repo")
	fmt.Printf("|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 50), strings.Repeat("-", 14), strings.Repeat("-", 14),
		strings.Repeat("-", 9), strings.Repeat("-", 16), strings.Repeat("-", 16), strings.Repeat("-", 9), strings.Repeat("-", 13), strings.Repeat("-", 13))
	for _, r := range rows {
		ma, mb := r.res[a], r.res[b]
		fmt.Printf("| %-48s | %10.2f s | %10.2f s | %6.2fx | %10d MiB | %10d MiB | %6.2fx | %7.0f MiB | %7.0f MiB |\n", r.name,
			ma.wall.Seconds(), mb.wall.Seconds(), ma.wall.Seconds()/mb.wall.Seconds(),
			ma.rss/1024, mb.rss/1024, float64(ma.rss)/float64(mb.rss),
			float64(r.sizes[a])/(1<<20), float64(r.sizes[b])/(1<<20))
	}
}
