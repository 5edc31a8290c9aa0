package v1alpha1

import "testing"

func TestFileModeString(t *testing.T) {
	for _, c := range []struct {
		typ  BackupFileType
		mode int32
		want string
	}{
		{BackupFileDirectory, 0o755, "drwxr-xr-x"},
		{BackupFileFile, 0o644, "-rw-r--r--"},
		{BackupFileFile, 0o640, "-rw-r-----"},
		{BackupFileSymlink, 0o777, "lrwxrwxrwx"},
		{BackupFileFile, 0o600, "-rw-------"},
		{BackupFileFile, 0, "----------"},
		{BackupFileFile, 0o4755, "-rwsr-xr-x"},
		{BackupFileFile, 0o4644, "-rwSr--r--"},
		{BackupFileFile, 0o2755, "-rwxr-sr-x"},
		{BackupFileFile, 0o2745, "-rwxr-Sr-x"},
		{BackupFileDirectory, 0o1777, "drwxrwxrwt"},
		{BackupFileDirectory, 0o1776, "drwxrwxrwT"},
		{"Socket", 0o755, "?rwxr-xr-x"},
	} {
		if got := FileModeString(c.typ, c.mode); got != c.want {
			t.Errorf("FileModeString(%s, %#o) = %q, want %q", c.typ, c.mode, got, c.want)
		}
	}
}
