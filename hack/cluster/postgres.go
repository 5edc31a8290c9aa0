package cluster

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// PostgresImage is PostgreSQL 15 built offline from Debian's packages
// (postgresql-15): the server and client binaries at Debian's paths, the
// shared libraries they load, dash as /bin/sh and a few coreutils for hooks.
// Its entrypoint (PostgresEntrypoint) initialises $PGDATA on first start and
// runs postgres in the foreground as uid 999 (user postgres).
const PostgresImage = "localhost/postgres:local"

// PostgresBinDir holds the binaries of the image; it is first on its PATH.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// PostgresEntrypoint is the entrypoint script's path inside the image.
const PostgresEntrypoint = "/usr/local/bin/postgres-entrypoint"

// PostgresEnv is the environment of the image's config: psql, pg_dump and
// friends run through `kubectl exec` find the server's socket (PGHOST=/tmp)
// and data directory without flags.
var PostgresEnv = []string{
	"PATH=" + PostgresBinDir + ":/usr/local/bin:/usr/bin:/bin",
	"PGHOST=/tmp",
	"PGDATA=/var/lib/postgresql/data/pgdata",
}

const (
	postgresLibDir   = "/usr/lib/postgresql/15/lib"
	postgresShareDir = "/usr/share/postgresql/15"
)

// postgresBinaries are taken from PostgresBinDir (pg_amcheck when present).
var postgresBinaries = []string{"postgres", "initdb", "pg_ctl", "psql", "pg_dump", "pg_dumpall", "pg_restore", "pgbench",
	"pg_isready", "createdb", "dropdb", "pg_controldata", "pg_amcheck"}

// postgresTools are the commands besides PostgreSQL's that the entrypoint and
// hook commands use (dash's builtins include test, echo, printf).
var postgresTools = []string{"cat", "ls", "mkdir", "rm", "mv", "cp", "sleep", "date", "sha256sum", "head", "tail",
	"wc", "du", "df", "stat", "touch", "sync", "id", "env", "chmod", "tr", "cut", "grep", "gzip", "locale"}

// postgresEntrypointScript runs as uid 999. On the first start it
// initialises the cluster in $PGDATA.init and renames it to $PGDATA only when
// it is complete (with $POSTGRES_DB created), so a start interrupted halfway
// begins again instead of leaving a cluster without its database.
const postgresEntrypointScript = `#!/bin/sh
set -e
: "${PGDATA:=/var/lib/postgresql/data/pgdata}"
export PGDATA
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	init="$PGDATA.init"
	rm -rf "$init"
	# trust: a test database, reachable only inside the cluster; no passwords.
	initdb -k --locale=C -E UTF8 -U postgres --auth=trust -D "$init"
	cat >>"$init/postgresql.conf" <<EOF

# added by $0
listen_addresses = '*'
unix_socket_directories = '/tmp'
jit = off
EOF
	echo "host all all 0.0.0.0/0 trust" >>"$init/pg_hba.conf"
	if [ -n "$POSTGRES_DB" ]; then
		# A private socket and no TCP: readiness probes (pg_isready on /tmp)
		# fail until the database exists.
		sock=/tmp/postgres-init
		mkdir -p "$sock"
		pg_ctl -D "$init" -w -o "-c listen_addresses='' -c unix_socket_directories=$sock" start
		createdb -h "$sock" -U postgres "$POSTGRES_DB"
		pg_ctl -D "$init" -w -m fast stop
		rm -rf "$sock"
	fi
	# -T: fail rather than move into a non-empty $PGDATA without PG_VERSION.
	mv -T "$init" "$PGDATA"
	echo "$0: initialised $PGDATA"
fi
exec postgres "$@"
`

// EnsurePostgresPackages installs postgresql-15 (and with it
// postgresql-client-15) from Debian when its server binary is missing. The
// package creates and starts the cluster 15/main on port 5432; that cluster
// is stopped again, since only the image uses the binaries.
func EnsurePostgresPackages() error {
	if _, err := os.Stat(filepath.Join(PostgresBinDir, "postgres")); err == nil {
		return nil
	}
	fmt.Fprintf(os.Stderr, "installing postgresql-15 from Debian ...\n")
	cmd := exec.Command("bash", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("installing postgresql-15: %v\n%s", err, out)
	}
	// The package creates and starts the cluster 15/main; the image needs
	// only the files, so stop that one cluster (and nothing else).
	_ = exec.Command("pg_ctlcluster", "15", "main", "stop").Run()
	return nil
}

// PostgresImageFiles returns the files and entrypoint of PostgresImage
// (PostgresEnv is its environment), installing postgresql-15 first when
// needed. It writes the entrypoint script, /etc/passwd, /etc/group and
// /etc/nsswitch.conf into dir. The layer holds regular files only: each
// symbolic link on this machine (Debian's /lib -> usr/lib, /bin/sh -> dash,
// /lib64/ld-linux-x86-64.so.2) becomes a copy of its target at the link's
// path, and every shared library sits at the path ldd prints for it.
func PostgresImageFiles(dir string) ([]ImageFile, []string, error) {
	if err := EnsurePostgresPackages(); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	var files []ImageFile
	seen := map[string]bool{}
	add := func(path, src string) error {
		if seen[path] {
			return nil
		}
		fi, err := os.Stat(src) // follows symbolic links
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", src)
		}
		seen[path] = true
		files = append(files, ImageFile{Path: path, Src: src, Mode: int64(fi.Mode().Perm())})
		return nil
	}
	// ELF files whose shared libraries the image needs.
	var elfs []string

	for _, b := range postgresBinaries {
		p := filepath.Join(PostgresBinDir, b)
		if _, err := os.Stat(p); err != nil && b == "pg_amcheck" {
			continue
		}
		if err := add(p, p); err != nil {
			return nil, nil, err
		}
		elfs = append(elfs, p)
	}
	// Server modules (procedural languages, encodings, contrib), without
	// llvmjit (the image runs with jit=off; it would pull in LLVM), its
	// bitcode and pgxs (build files).
	mods, err := filepath.Glob(filepath.Join(postgresLibDir, "*.so"))
	if err != nil {
		return nil, nil, err
	}
	for _, m := range mods {
		if strings.HasPrefix(filepath.Base(m), "llvmjit") {
			continue
		}
		if err := add(m, m); err != nil {
			return nil, nil, err
		}
		elfs = append(elfs, m)
	}
	addTree := func(root, skip string) error {
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p == skip {
					return filepath.SkipDir
				}
				return nil
			}
			return add(p, p)
		})
	}
	// Everything initdb and the server read (postgres.bki, the catalogs'
	// SQL, timezone sets, text search data, extensions), but the manual pages.
	if err := addTree(postgresShareDir, filepath.Join(postgresShareDir, "man")); err != nil {
		return nil, nil, err
	}
	// glibc's C.UTF-8 locale: initdb imports the locales `locale -a` lists
	// as collations (and warns when there are none).
	if err := addTree("/usr/lib/locale/C.utf8", ""); err != nil {
		return nil, nil, err
	}
	// Debian's build uses the system's time zone data.
	for _, z := range []string{"UTC", "Etc/UTC", "GMT", "Etc/GMT"} {
		p := filepath.Join("/usr/share/zoneinfo", z)
		if err := add(p, p); err != nil {
			return nil, nil, err
		}
	}
	// dash as /bin/sh, and the tools.
	sh, err := exec.LookPath("dash")
	if err != nil {
		return nil, nil, err
	}
	if err := add("/bin/sh", sh); err != nil {
		return nil, nil, err
	}
	elfs = append(elfs, sh)
	for _, t := range postgresTools {
		p := filepath.Join("/usr/bin", t)
		if err := add(p, p); err != nil {
			return nil, nil, err
		}
		elfs = append(elfs, p)
	}
	libs, err := sharedLibraries(elfs)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range libs {
		if err := add(l, l); err != nil {
			return nil, nil, err
		}
	}
	// The dynamic loader at the path the binaries name (PT_INTERP), which is
	// a symbolic link on this machine.
	for _, e := range elfs {
		interp, err := elfInterpreter(e)
		if err != nil {
			return nil, nil, err
		}
		if interp != "" {
			if err := add(interp, interp); err != nil {
				return nil, nil, err
			}
		}
	}

	generated := []struct {
		path, content string
		mode          int64
	}{
		{PostgresEntrypoint, postgresEntrypointScript, 0o755},
		{"/etc/passwd", "root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL administrator:/var/lib/postgresql:/bin/sh\n", 0o644},
		{"/etc/group", "root:x:0:\npostgres:x:999:\n", 0o644},
		{"/etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n", 0o644},
	}
	for _, g := range generated {
		src := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(g.path, "/"), "/", "_"))
		if err := os.WriteFile(src, []byte(g.content), 0o644); err != nil {
			return nil, nil, err
		}
		seen[g.path] = true
		files = append(files, ImageFile{Path: g.path, Src: src, Mode: g.mode})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, []string{PostgresEntrypoint}, nil
}

// sharedLibraries returns the shared libraries (and the dynamic loader) that
// the ELF files need, at the paths ldd prints, following each library's own
// dependencies too.
func sharedLibraries(elfs []string) ([]string, error) {
	seen := map[string]bool{}
	var libs []string
	queue := append([]string(nil), elfs...)
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		deps, err := lddDependencies(f)
		if err != nil {
			return nil, err
		}
		for _, d := range deps {
			if !seen[d] {
				seen[d] = true
				libs = append(libs, d)
				queue = append(queue, d)
			}
		}
	}
	sort.Strings(libs)
	return libs, nil
}

// lddDependencies parses `ldd file`: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)"
// and "/lib64/ld-linux-x86-64.so.2 (0x...)" give a path; linux-vdso.so.1 is
// the kernel's. A statically linked file has none.
func lddDependencies(file string) ([]string, error) {
	out, err := exec.Command("ldd", file).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v\n%s", file, err, out)
	}
	var deps []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.Contains(line, "statically linked") {
			continue
		}
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: %s", file, line)
		}
		fields := strings.Fields(line)
		if i := indexOf(fields, "=>"); i >= 0 {
			if i+1 < len(fields) && strings.HasPrefix(fields[i+1], "/") {
				deps = append(deps, fields[i+1])
			}
		} else if strings.HasPrefix(fields[0], "/") {
			deps = append(deps, fields[0])
		}
	}
	return deps, nil
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// elfInterpreter returns the dynamic loader an ELF file names, or "" for a
// static binary or a shared library without one.
func elfInterpreter(file string) (string, error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return "", err
			}
			return strings.TrimRight(string(b), "\x00"), nil
		}
	}
	return "", nil
}
