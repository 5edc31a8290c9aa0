package engine

import (
	"bytes"
	"fmt"

	"golang.org/x/sys/unix"

	"example.com/backup-operator/pkg/mover/repo"
)

// restoredXattr says whether restore sets (and compares) an attribute.
// security.selinux is the one it leaves alone: the volume's mount context
// labels a volume's files, and a label from another volume or cluster would
// be wrong here.
func restoredXattr(name string) bool { return name != "security.selinux" }

// xattrsEqual compares two sorted lists of attributes, restored ones only.
func xattrsEqual(a, b []repo.Xattr) bool {
	a, b = restoredXattrs(a), restoredXattrs(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func restoredXattrs(x []repo.Xattr) []repo.Xattr {
	out := x[:0:0]
	for _, a := range x {
		if restoredXattr(a.Name) {
			out = append(out, a)
		}
	}
	return out
}

// setXattrs makes the attributes of the open file or directory fd those of
// the snapshot entry m: it removes the others (have lists what fd has now;
// nil for a file just created) and sets the snapshot's. An attribute the
// filesystem or the mover's privileges refuse is counted in the result and
// named in its warning, not fatal: the data is restored either way.
func (rs *restorer) setXattrs(fd int, m *repo.Entry, have []repo.Xattr) error {
	want := restoredXattrs(m.Xattrs)
	for _, h := range restoredXattrs(have) {
		if !hasXattr(want, h.Name) {
			if err := rs.xattrResult(m.Path, "removing", h.Name, unix.Fremovexattr(fd, h.Name)); err != nil {
				return err
			}
		}
	}
	for _, w := range want {
		if i := xattrIndex(have, w.Name); i >= 0 && bytes.Equal(have[i].Value, w.Value) {
			continue
		}
		if err := rs.xattrResult(m.Path, "setting", w.Name, unix.Fsetxattr(fd, w.Name, w.Value, 0)); err != nil {
			return err
		}
	}
	return nil
}

func (rs *restorer) xattrResult(path, op, name string, err error) error {
	if err == nil || err == unix.ENODATA {
		return nil
	}
	if err == unix.EIO {
		return fmt.Errorf("%s extended attribute %s of %q: %w", op, name, path, err)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.res.XattrsSkipped++
	if rs.res.XattrWarning == "" {
		rs.res.XattrWarning = fmt.Sprintf("%s extended attribute %s of %q: %v", op, name, path, err)
	}
	return nil
}

func xattrIndex(x []repo.Xattr, name string) int {
	for i := range x {
		if x[i].Name == name {
			return i
		}
	}
	return -1
}

func hasXattr(x []repo.Xattr, name string) bool { return xattrIndex(x, name) >= 0 }

// dirXattrs makes a restored directory's attributes the snapshot's.
func (rs *restorer) dirXattrs(dirfd int, base string, m *repo.Entry) error {
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	have, err := fdXattrs(fd)
	if err != nil {
		return err
	}
	return rs.setXattrs(fd, m, have)
}
