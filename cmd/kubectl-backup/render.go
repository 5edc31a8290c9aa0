package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/robfig/cron/v3"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// humanBytes renders n bytes with binary units: 512 B, 1.5 KiB, 2.0 GiB.
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n) / 1024
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// shortDuration renders d with its two largest units: 45s, 3m12s, 2h5m, 3d4h.
// Durations under a second are 0s; negative ones are rendered as positive.
func shortDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	s := int64(d / time.Second)
	days, s := s/86400, s%86400
	hours, s := s/3600, s%3600
	mins, secs := s/60, s%60
	switch {
	case days > 0 && hours > 0:
		return fmt.Sprintf("%dd%dh", days, hours)
	case days > 0:
		return fmt.Sprintf("%dd", days)
	case hours > 0 && mins > 0:
		return fmt.Sprintf("%dh%dm", hours, mins)
	case hours > 0:
		return fmt.Sprintf("%dh", hours)
	case mins > 0 && secs > 0:
		return fmt.Sprintf("%dm%ds", mins, secs)
	case mins > 0:
		return fmt.Sprintf("%dm", mins)
	default:
		return fmt.Sprintf("%ds", secs)
	}
}

// ago renders how long before now t was: "3h12m ago"; "never" for no time.
func ago(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	if t.After(now) {
		return "in " + shortDuration(t.Sub(now))
	}
	return shortDuration(now.Sub(*t)) + " ago"
}

// percent is done of total in whole percent, 0..100; 0 without a total.
func percent(done, total int64) int {
	if total <= 0 {
		return 0
	}
	if done >= total {
		return 100
	}
	if done < 0 {
		return 0
	}
	return int(done * 100 / total)
}

// bar draws a progress bar of width cells between brackets:
// [==========>         ].
func bar(done, total int64, width int) string {
	if width < 1 {
		width = 1
	}
	filled := 0
	if total > 0 {
		d := min(max(done, 0), total)
		filled = int(d * int64(width) / total)
	}
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; i < width; i++ {
		switch {
		case i < filled:
			b.WriteByte('=')
		case i == filled && filled < width && filled > 0:
			b.WriteByte('>')
		default:
			b.WriteByte(' ')
		}
	}
	b.WriteByte(']')
	return b.String()
}

// rateMeter estimates a transfer rate from the progress reports it has
// seen within its window.
type rateMeter struct {
	window  time.Duration
	samples []sample
}

type sample struct {
	at    time.Time
	bytes int64
}

// observe records that done bytes were reached at t. A report that goes
// backwards (a mover started again) starts over.
func (m *rateMeter) observe(t time.Time, done int64) {
	if n := len(m.samples); n > 0 && done < m.samples[n-1].bytes {
		m.samples = m.samples[:0]
	}
	if n := len(m.samples); n > 0 && m.samples[n-1].bytes == done {
		return // the same report read again
	}
	m.samples = append(m.samples, sample{t, done})
	w := m.window
	if w == 0 {
		w = 30 * time.Second
	}
	for len(m.samples) > 2 && t.Sub(m.samples[0].at) > w {
		m.samples = m.samples[1:]
	}
}

// rate is bytes per second over the window; 0 while unknown.
func (m *rateMeter) rate() float64 {
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 || last.bytes <= first.bytes {
		return 0
	}
	return float64(last.bytes-first.bytes) / dt
}

// progressText is the numbers of a progress report: percent, bytes, rate
// and time left ("45%  1.2 GiB / 2.7 GiB  35.0 MiB/s  ETA 42s"); rate and
// ETA only when rate is known.
func progressText(p *v1alpha1.Progress, rate float64) string {
	if p == nil {
		return ""
	}
	if p.BytesTotal <= 0 {
		return humanBytes(p.BytesDone)
	}
	s := fmt.Sprintf("%3d%%  %s / %s", percent(p.BytesDone, p.BytesTotal), humanBytes(p.BytesDone), humanBytes(p.BytesTotal))
	if rate > 0 {
		s += fmt.Sprintf("  %s/s", humanBytes(int64(rate)))
		if left := p.BytesTotal - p.BytesDone; left > 0 {
			s += "  ETA " + shortDuration(time.Duration(float64(left)/rate*float64(time.Second)))
		}
	}
	return s
}

// progressBarLine is a bar of width cells followed by progressText.
func progressBarLine(p *v1alpha1.Progress, rate float64, width int) string {
	if p == nil || p.BytesTotal <= 0 {
		return progressText(p, rate)
	}
	return bar(p.BytesDone, p.BytesTotal, width) + " " + progressText(p, rate)
}

// scheduleInfo is what a policy's schedule says about its last success.
type scheduleInfo struct {
	// Next is the next scheduled run after now.
	Next time.Time
	// Interval is the gap between the next two runs.
	Interval time.Duration
	// Due is the first scheduled run after the last success (or, without
	// one, after the policy was created).
	Due time.Time
	// Late is true when Due passed more than the grace ago: a run that
	// should have succeeded has not.
	Late bool
	// LateBy is how long ago Due plus the grace passed.
	LateBy time.Duration
}

// parseSchedule parses a policy's schedule as the controller does: five
// fields or a descriptor (@daily, "@every 30m"), read in timeZone.
func parseSchedule(schedule string, timeZone *string) (cron.Schedule, *time.Location, error) {
	loc := time.UTC
	if timeZone != nil && *timeZone != "" {
		l, err := time.LoadLocation(*timeZone)
		if err != nil {
			return nil, nil, fmt.Errorf("time zone %q: %w", *timeZone, err)
		}
		loc = l
	}
	s, err := cron.ParseStandard(schedule)
	if err != nil {
		return nil, nil, fmt.Errorf("schedule %q: %w", schedule, err)
	}
	return s, loc, nil
}

// lateness reads schedule at now: since is the last success, or the
// policy's creation when it never succeeded. A policy is late when a run
// scheduled after since is more than grace overdue, where grace is the
// smaller of maxGrace and the schedule's interval (a backup may take time
// to finish; an hourly schedule is not given a day).
func lateness(schedule string, timeZone *string, since, now time.Time, maxGrace time.Duration) (scheduleInfo, error) {
	s, loc, err := parseSchedule(schedule, timeZone)
	if err != nil {
		return scheduleInfo{}, err
	}
	var info scheduleInfo
	info.Next = s.Next(now.In(loc))
	info.Interval = s.Next(info.Next).Sub(info.Next)
	info.Due = s.Next(since.In(loc))
	grace := min(maxGrace, info.Interval)
	if over := now.Sub(info.Due.Add(grace)); over > 0 && !info.Due.IsZero() {
		info.Late, info.LateBy = true, over
	}
	return info, nil
}

// writePreview renders a dry run's preview: its paths as listed ("+ a",
// "~ b", "- c"), then the counts.
func writePreview(w io.Writer, p *v1alpha1.RestorePreview) {
	if p == nil {
		fmt.Fprintln(w, "no preview")
		return
	}
	for _, path := range p.Paths {
		fmt.Fprintln(w, path)
	}
	if p.Truncated {
		listed := int64(len(p.Paths))
		fmt.Fprintf(w, "... and %d more not listed\n", max(p.Creates+p.Overwrites+p.Deletes-listed, 0))
	}
	fmt.Fprintf(w, "%d to create, %d to overwrite, %d to delete\n", p.Creates, p.Overwrites, p.Deletes)
}

// safeName is a name as a table shows it: quoted (Go syntax) when it holds
// a control character, so a file name cannot break the table or send
// escape sequences to the terminal.
func safeName(s string) string {
	for _, r := range s {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return strconv.Quote(s)
		}
	}
	return s
}

// writeFileTable renders a listing as ls -l does, with a header: MODE,
// OWNER (uid:gid), SIZE (bytes, right-aligned; - for directories and
// symlinks), MODIFIED (in loc) and NAME, "-> target" after a symlink.
func writeFileTable(w io.Writer, items []backupFile, loc *time.Location) {
	sizes := make([]string, len(items))
	width := len("SIZE")
	for i, e := range items {
		sizes[i] = "-"
		if e.Type == typeFile {
			sizes[i] = strconv.FormatInt(e.Size, 10)
		}
		width = max(width, len(sizes[i]))
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "MODE\tOWNER\t%*s\tMODIFIED\tNAME\n", width, "SIZE")
	for i, e := range items {
		modified := "-"
		if !e.ModTime.IsZero() {
			modified = e.ModTime.In(loc).Format(time.DateTime)
		}
		name := safeName(e.Name)
		if e.Type == typeSymlink {
			name += " -> " + safeName(e.LinkTarget)
		}
		fmt.Fprintf(tw, "%s\t%d:%d\t%*s\t%s\t%s\n", v1alpha1.FileModeString(v1alpha1.BackupFileType(e.Type), int32(e.Mode)), e.UID, e.GID, width, sizes[i], modified, name)
	}
	tw.Flush()
}
