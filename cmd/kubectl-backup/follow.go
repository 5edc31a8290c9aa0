package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// observation is what following reads of a Backup or RestoreJob each time.
type observation struct {
	phase    string
	progress *v1alpha1.Progress
	message  string
	done     bool // Completed or Failed
	failed   bool
}

// follower shows a Backup's or RestoreJob's way to Completed or Failed: on a
// terminal one line redrawn in place (carriage return) with a progress bar,
// bytes, rate and ETA; elsewhere a plain line per phase and per tenth of the
// progress.
type follower struct {
	w        io.Writer
	terminal bool
	what     string // backup/NAME
	now      func() time.Time

	meter       rateMeter
	lastPhase   string
	lastMessage string
	lastTenth   int
	drawn       bool // a line without its newline is on the terminal
}

func (f *follower) show(ob observation) {
	if ob.progress != nil {
		f.meter.observe(f.now(), ob.progress.BytesDone)
	}
	if f.terminal {
		if ob.done {
			f.clear()
			return
		}
		line := f.what + " " + ob.phase
		if ob.progress != nil {
			line += " " + progressBarLine(ob.progress, f.meter.rate(), 30)
		} else if ob.message != "" {
			line += ": " + oneLine(ob.message)
		}
		// \r and erase to the end of the line: the line is drawn again in place.
		fmt.Fprint(f.w, "\r\x1b[K"+line)
		f.drawn = true
		return
	}
	if ob.done {
		return
	}
	if ob.phase != f.lastPhase || (ob.progress == nil && ob.message != f.lastMessage) {
		line := f.what + " " + ob.phase
		if ob.message != "" {
			line += ": " + oneLine(ob.message)
		}
		fmt.Fprintln(f.w, line)
		f.lastPhase, f.lastMessage, f.lastTenth = ob.phase, ob.message, -1
	}
	if p := ob.progress; p != nil && p.BytesTotal > 0 {
		if tenth := percent(p.BytesDone, p.BytesTotal) / 10; tenth != f.lastTenth {
			fmt.Fprintln(f.w, f.what+" "+progressText(p, f.meter.rate()))
			f.lastTenth = tenth
		}
	}
}

// clear ends a line drawn in place, so what follows starts on its own line.
func (f *follower) clear() {
	if f.drawn {
		fmt.Fprint(f.w, "\r\x1b[K")
		f.drawn = false
	}
}

// errStopped is a follow that ended before its object did.
var errStopped = errors.New("stopped following")

// follow reads get every interval until the object is Completed or Failed
// and returns the last observation. A timeout (0: none) or a cancelled ctx
// ends it early with a codeError of exitTimeout.
func (o *options) follow(ctx context.Context, f *follower, timeout time.Duration, get func(context.Context) (observation, error)) (observation, error) {
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for {
		ob, err := get(ctx)
		if err != nil && ctx.Err() == nil {
			f.clear()
			return ob, err
		}
		if err == nil {
			f.show(ob)
			if ob.done {
				return ob, nil
			}
		}
		select {
		case <-ctx.Done():
			f.clear()
			return ob, &codeError{code: exitTimeout, err: fmt.Errorf("interrupted: %s goes on in the cluster: %w", f.what, errStopped)}
		case <-deadline:
			f.clear()
			return ob, &codeError{code: exitTimeout, err: fmt.Errorf("timed out after %s: %s is still %s and goes on in the cluster: %w", timeout, f.what, ob.phase, errStopped)}
		case <-tick.C:
		}
	}
}

func backupObservation(b *v1alpha1.Backup) observation {
	ob := observation{phase: string(b.Status.Phase), progress: b.Status.Progress, message: b.Status.Message}
	if ob.phase == "" {
		ob.phase = string(v1alpha1.BackupPhasePending)
	}
	switch b.Status.Phase {
	case v1alpha1.BackupPhaseCompleted:
		ob.done = true
	case v1alpha1.BackupPhaseFailed:
		ob.done, ob.failed = true, true
	}
	return ob
}

func restoreObservation(r *v1alpha1.RestoreJob) observation {
	ob := observation{phase: string(r.Status.Phase), progress: r.Status.Progress, message: r.Status.Message}
	if ob.phase == "" {
		ob.phase = string(v1alpha1.RestorePhasePending)
	}
	switch r.Status.Phase {
	case v1alpha1.RestorePhaseCompleted:
		ob.done = true
	case v1alpha1.RestorePhaseFailed:
		ob.done, ob.failed = true, true
	}
	return ob
}
