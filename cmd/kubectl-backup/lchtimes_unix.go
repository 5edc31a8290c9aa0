//go:build unix

package main

import (
	"time"

	"golang.org/x/sys/unix"
)

// lchtimes sets the access and modification times of path to t without
// following a symlink.
func lchtimes(path string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
