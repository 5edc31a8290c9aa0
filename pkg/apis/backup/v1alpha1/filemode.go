package v1alpha1

// FileModeString renders a BackupFile's type and permission bits as ls -l
// does: drwxr-xr-x, -rw-r--r--, lrwxrwxrwx; setuid and setgid as s (S
// without the execute bit under it), sticky as t (T); an unknown type as ?.
func FileModeString(typ BackupFileType, mode int32) string {
	b := []byte("----------")
	switch typ {
	case BackupFileDirectory:
		b[0] = 'd'
	case BackupFileSymlink:
		b[0] = 'l'
	case BackupFileFile:
	default:
		b[0] = '?'
	}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if mode&(1<<(8-i)) != 0 {
			b[i+1] = rwx[i]
		}
	}
	for _, s := range []struct {
		bit        int32
		at         int
		set, unset byte
	}{{0o4000, 3, 's', 'S'}, {0o2000, 6, 's', 'S'}, {0o1000, 9, 't', 'T'}} {
		if mode&s.bit != 0 {
			if b[s.at] == 'x' {
				b[s.at] = s.set
			} else {
				b[s.at] = s.unset
			}
		}
	}
	return string(b)
}
