package cluster

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// postgresFiles returns the image's files; in -short mode only when
// postgresql-15 is already installed (the full run installs it).
func postgresFiles(t *testing.T) []ImageFile {
	t.Helper()
	if _, err := os.Stat(filepath.Join(PostgresBinDir, "postgres")); err != nil && testing.Short() {
		t.Skip("postgresql-15 is not installed; the test without -short installs it")
	}
	files, entrypoint, err := PostgresImageFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entrypoint) != 1 || entrypoint[0] != PostgresEntrypoint {
		t.Fatalf("entrypoint %v", entrypoint)
	}
	return files
}

// TestPostgresImageFiles checks that every shared library any collected ELF
// file needs (ldd, and the loader it names) is in the image at that path.
func TestPostgresImageFiles(t *testing.T) {
	files := postgresFiles(t)
	have := map[string]bool{}
	for _, f := range files {
		if have[f.Path] {
			t.Errorf("%s is in the image twice", f.Path)
		}
		have[f.Path] = true
	}
	for _, p := range []string{"/bin/sh", "/lib64/ld-linux-x86-64.so.2", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
		"/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/Etc/UTC", PostgresEntrypoint,
		"/usr/share/postgresql/15/postgres.bki", "/usr/lib/postgresql/15/lib/plpgsql.so"} {
		if !have[p] {
			t.Errorf("%s is missing", p)
		}
	}
	for _, b := range postgresBinaries {
		if p := filepath.Join(PostgresBinDir, b); !have[p] && b != "pg_amcheck" {
			t.Errorf("%s is missing", p)
		}
	}
	for _, f := range files {
		if strings.Contains(f.Path, "llvmjit") || strings.Contains(f.Path, "/bitcode/") || strings.Contains(f.Path, "libLLVM") {
			t.Errorf("%s is in the image; it runs with jit=off", f.Path)
		}
		interp, err := elfInterpreter(f.Src)
		if err != nil {
			continue // not an ELF file
		}
		if interp != "" && !have[interp] {
			t.Errorf("%s: its loader %s is missing", f.Path, interp)
		}
		deps, err := lddDependencies(f.Src)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, d := range deps {
			if !have[d] {
				t.Errorf("%s needs %s, which is missing", f.Path, d)
			}
		}
	}
	var size int64
	for _, f := range files {
		fi, err := os.Stat(f.Src)
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	t.Logf("%d files, %.1f MB", len(files), float64(size)/1e6)
}

// TestPostgresImageChroot unpacks the image's files into a directory and
// runs its entrypoint there (chroot, uid 999, no TCP): initdb, the database
// of POSTGRES_DB, the server, then psql, pgbench, pg_dump and pg_restore
// through the socket. Needs root.
func TestPostgresImageChroot(t *testing.T) {
	if testing.Short() {
		t.Skip("runs initdb and a server")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	files := postgresFiles(t)
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f.Src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, os.FileMode(f.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"tmp", "var/lib/postgresql/data", "var/lib/postgresql/dump"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	// The container runtime gives a pod /dev; initdb needs /dev/null.
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mknod", "-m", "0666", filepath.Join(root, "dev", "null"), "c", "1", "3").CombinedOutput(); err != nil {
		t.Skipf("mknod /dev/null: %v\n%s", err, out)
	}
	for _, d := range []string{"var/lib/postgresql/data", "var/lib/postgresql/dump"} {
		if err := os.Chown(filepath.Join(root, d), 999, 999); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	chroot := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "chroot", append([]string{"--userspec=999:999", root}, args...)...)
		cmd.Env = append(append([]string{}, PostgresEnv...), "POSTGRES_DB=app")
		return cmd
	}
	var serverLog bytes.Buffer
	server := chroot(PostgresEntrypoint, "-c", "listen_addresses=")
	server.Stdout, server.Stderr = &serverLog, &serverLog
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()
	defer func() {
		_ = server.Process.Signal(os.Interrupt) // fast shutdown
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = server.Process.Kill()
		}
		t.Logf("server log:\n%s", serverLog.String())
	}()
	run := func(args ...string) string {
		t.Helper()
		out, err := chroot(args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	for start := time.Now(); ; time.Sleep(time.Second) {
		if err := chroot("pg_isready", "-q").Run(); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the entrypoint exited: %v\n%s", err, serverLog.String())
		default:
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("not ready after 2 minutes\n%s", serverLog.String())
		}
	}
	if out := run("psql", "-d", "app", "-tAc", "select current_user, current_setting('jit'), current_setting('data_checksums')"); strings.TrimSpace(out) != "postgres|off|on" {
		t.Errorf("psql: %q", out)
	}
	run("pgbench", "-q", "-i", "-s", "1", "app")
	t.Log(run("pgbench", "-n", "-c", "2", "-T", "3", "app"))
	run("pg_dump", "-Fc", "-f", "/var/lib/postgresql/dump/app.pgc", "app")
	run("sh", "-c", "ls -l /var/lib/postgresql/dump && sha256sum /var/lib/postgresql/dump/app.pgc | head -c 64 && date")
	run("psql", "-c", "alter database app rename to app_old")
	run("pg_restore", "-C", "-d", "postgres", "/var/lib/postgresql/dump/app.pgc")
	if out := run("psql", "-d", "app", "-tAc", "select count(*) from pgbench_accounts"); strings.TrimSpace(out) != "100000" {
		t.Errorf("restored pgbench_accounts: %q", out)
	}
}
