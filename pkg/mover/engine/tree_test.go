package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// oddNames exercise what file names may hold on Linux.
var oddNames = []string{
	"plain", "with space", "ünïcödé-名前", "emoji-🙂", "new\nline", "tab\there", "-leading-dash",
	".hidden", "..dots..", "back\\slash", "quote'\"", "%percent%", strings.Repeat("long", 60),
	"UPPER", "a.b", "a", "semi;colon", "star*", "question?", "latin1-\xe9t\xe9", "bad-utf8-\xff\xfe",
}

// genTree writes a random tree under root: nested directories, empty, small,
// large and sparse files, symlinks (relative, absolute, dangling), hard links,
// unusual modes and mtimes.
func genTree(t *testing.T, root string, seed int64, files int) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	dirs := []string{root}
	var regular []string
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(root, 0o755))
	// A deep path.
	deep := root
	for i := 0; i < 40; i++ {
		deep = filepath.Join(deep, fmt.Sprintf("d%02d", i))
	}
	must(os.MkdirAll(deep, 0o755))
	dirs = append(dirs, deep)
	for i := 0; i < files; i++ {
		parent := dirs[rng.Intn(len(dirs))]
		name := oddNames[rng.Intn(len(oddNames))] + fmt.Sprintf("-%d", i)
		p := filepath.Join(parent, name)
		switch k := rng.Intn(20); {
		case k < 3:
			must(os.Mkdir(p, os.FileMode([]int{0o755, 0o700, 0o2775, 0o1777}[rng.Intn(4)])))
			dirs = append(dirs, p)
		case k < 4:
			must(os.WriteFile(p, nil, 0o644))
			regular = append(regular, p)
		case k < 5:
			// Large file with repeated and random regions.
			data := make([]byte, 1<<20+rng.Intn(3<<20))
			rng.Read(data[:len(data)/2])
			copy(data[len(data)/2:], data)
			must(os.WriteFile(p, data, 0o600))
			regular = append(regular, p)
		case k < 6:
			f, err := os.Create(p)
			must(err)
			_, err = f.WriteAt([]byte("end of a sparse file"), 20<<20)
			must(err)
			must(f.Close())
			regular = append(regular, p)
		case k < 8:
			targets := []string{"../x", "/etc/hostname", "does-not-exist", "plain-0"}
			must(os.Symlink(targets[rng.Intn(len(targets))], p))
		case k < 9 && len(regular) > 0:
			must(os.Link(regular[rng.Intn(len(regular))], p))
		default:
			data := make([]byte, rng.Intn(20000))
			rng.Read(data)
			mode := []os.FileMode{0o644, 0o600, 0o755, 0o400, 0o4755, 0o000}[rng.Intn(6)]
			must(os.WriteFile(p, data, 0o600))
			must(os.Chmod(p, mode))
			regular = append(regular, p)
		}
	}
	// Fixed, distinct mtimes, set children first so directories keep theirs.
	var all []string
	must(filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		all = append(all, p)
		return err
	}))
	// Extended attributes on about a third of the files and directories: user
	// attributes of several sizes, POSIX ACLs, default ACLs on directories.
	for _, p := range all {
		fi, err := os.Lstat(p)
		must(err)
		if !fi.Mode().IsRegular() && !fi.IsDir() || rng.Intn(3) != 0 {
			continue
		}
		value := make([]byte, []int{0, 7, 3000}[rng.Intn(3)])
		rng.Read(value)
		must(unix.Lsetxattr(p, "user.note", value, 0))
		if rng.Intn(2) == 0 {
			must(unix.Lsetxattr(p, "system.posix_acl_access", posixACL(uint32(1000+rng.Intn(50))), 0))
		}
		if fi.IsDir() && rng.Intn(2) == 0 {
			must(unix.Lsetxattr(p, "system.posix_acl_default", posixACL(2000), 0))
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(all)))
	for i, p := range all {
		ts := time.Unix(1_600_000_000+int64(i)*7919, int64(i)*1000+123)
		if err := lutimes(p, ts); err != nil {
			t.Fatal(err)
		}
	}
}

// posixACL encodes an access ACL in the kernel's xattr form: the owner rw,
// user uid r, the group r, mask r, others nothing.
func posixACL(uid uint32) []byte {
	out := []byte{2, 0, 0, 0} // version
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{0x01, 6, 0xffffffff}, {0x02, 4, uid}, {0x04, 4, 0xffffffff}, {0x10, 4, 0xffffffff}, {0x20, 0, 0xffffffff}} {
		out = binary.LittleEndian.AppendUint16(out, e.tag)
		out = binary.LittleEndian.AppendUint16(out, e.perm)
		out = binary.LittleEndian.AppendUint32(out, e.id)
	}
	return out
}

func lutimes(p string, ts time.Time) error {
	spec := []syscall.Timespec{syscall.NsecToTimespec(ts.UnixNano()), syscall.NsecToTimespec(ts.UnixNano())}
	return utimesNanoNoFollow(p, spec)
}

// describe returns one line per entry with everything a restore must keep.
func describe(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st := info.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%v uid=%d gid=%d", info.Mode(), st.Uid, st.Gid)
		if !info.IsDir() {
			line += fmt.Sprintf(" mtime=%d", info.ModTime().UnixNano())
		} else if rel != "." {
			line += fmt.Sprintf(" mtime=%d", info.ModTime().UnixNano())
		}
		if info.Mode().IsRegular() || info.IsDir() {
			x, err := readXattrs(p)
			if err != nil {
				return err
			}
			for _, a := range restoredXattrs(x) {
				line += fmt.Sprintf(" %s=%x", a.Name, a.Value)
			}
		}
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" size=%d sha=%s", info.Size(), hex.EncodeToString(h.Sum(nil))[:16])
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					line += " hardlink-of=" + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		}
		out[rel] = line
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func requireSameTree(t *testing.T, want, got map[string]string) {
	t.Helper()
	var problems []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			problems = append(problems, fmt.Sprintf("missing %q", p))
		} else if g != w {
			problems = append(problems, fmt.Sprintf("%q differs:\n  want %s\n  got  %s", p, w, g))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			problems = append(problems, fmt.Sprintf("extra %q", p))
		}
	}
	sort.Strings(problems)
	if len(problems) > 10 {
		problems = append(problems[:10], fmt.Sprintf("... and %d more", len(problems)-10))
	}
	if len(problems) > 0 {
		t.Fatalf("trees differ:\n%s", strings.Join(problems, "\n"))
	}
}
