package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB", 1 << 40: "1.0 TiB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                               "0s",
		900 * time.Millisecond:          "0s",
		45 * time.Second:                "45s",
		3*time.Minute + 12*time.Second:  "3m12s",
		5 * time.Minute:                 "5m",
		2*time.Hour + 5*time.Minute + 9: "2h5m",
		3 * time.Hour:                   "3h",
		(3*24 + 4) * time.Hour:          "3d4h",
		48*time.Hour + 30*time.Minute:   "2d",
		-(90 * time.Second):             "1m30s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestBar(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		want        string
	}{
		{0, 100, "[          ]"},
		{10, 100, "[=>        ]"},
		{45, 100, "[====>     ]"},
		{99, 100, "[=========>]"},
		{100, 100, "[==========]"},
		{150, 100, "[==========]"},
		{5, 0, "[          ]"},
	} {
		if got := bar(c.done, c.total, 10); got != c.want {
			t.Errorf("bar(%d, %d) = %q, want %q", c.done, c.total, got, c.want)
		}
	}
}

func TestProgressText(t *testing.T) {
	p := &v1alpha1.Progress{BytesDone: 1 << 30, BytesTotal: 4 << 30}
	if got, want := progressText(p, 0), " 25%  1.0 GiB / 4.0 GiB"; got != want {
		t.Errorf("without a rate: %q, want %q", got, want)
	}
	// 3 GiB left at 100 MiB/s: 30.72 s.
	if got, want := progressText(p, 100<<20), " 25%  1.0 GiB / 4.0 GiB  100.0 MiB/s  ETA 30s"; got != want {
		t.Errorf("with a rate: %q, want %q", got, want)
	}
	if got, want := progressText(&v1alpha1.Progress{BytesDone: 2048}, 0), "2.0 KiB"; got != want {
		t.Errorf("without a total: %q, want %q", got, want)
	}
	if got, want := progressBarLine(p, 0, 8), "[==>     ]  25%  1.0 GiB / 4.0 GiB"; got != want {
		t.Errorf("bar line: %q, want %q", got, want)
	}
}

func TestRateMeter(t *testing.T) {
	var m rateMeter
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.observe(t0, 0)
	if r := m.rate(); r != 0 {
		t.Fatalf("one sample: rate %v", r)
	}
	m.observe(t0.Add(5*time.Second), 50<<20)
	m.observe(t0.Add(6*time.Second), 50<<20) // the same report read again
	m.observe(t0.Add(10*time.Second), 100<<20)
	if r, want := m.rate(), float64(10<<20); r != want {
		t.Fatalf("rate %v, want %v", r, want)
	}
	// Outside the 30 s window the early samples go.
	m.observe(t0.Add(60*time.Second), 200<<20)
	m.observe(t0.Add(65*time.Second), 250<<20)
	if r, want := m.rate(), float64(10<<20); r != want {
		t.Fatalf("windowed rate %v, want %v", r, want)
	}
	// A mover that starts again starts the meter over.
	m.observe(t0.Add(70*time.Second), 1<<20)
	if r := m.rate(); r != 0 {
		t.Fatalf("after going back: rate %v", r)
	}
}

func TestLateness(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	berlin := "Europe/Berlin"
	for _, c := range []struct {
		name, schedule string
		tz             *string
		since, now     string
		late           bool
		lateBy         time.Duration
		next           string
		interval       time.Duration
	}{
		{name: "daily, succeeded last night", schedule: "0 2 * * *", since: "2026-11-26T02:03:00Z", now: "2026-11-26T15:00:00Z",
			next: "2026-11-27T02:00:00Z", interval: 24 * time.Hour},
		{name: "daily, last night's run still within the grace", schedule: "0 2 * * *", since: "2026-11-25T02:03:00Z", now: "2026-11-26T02:30:00Z",
			next: "2026-11-27T02:00:00Z", interval: 24 * time.Hour},
		{name: "daily, last night's run missing", schedule: "0 2 * * *", since: "2026-11-25T02:03:00Z", now: "2026-11-26T15:00:00Z",
			late: true, lateBy: 12 * time.Hour, next: "2026-11-27T02:00:00Z", interval: 24 * time.Hour},
		{name: "every 10m: the grace is one interval", schedule: "@every 10m", since: "2026-11-26T14:00:00Z", now: "2026-11-26T14:25:00Z",
			late: true, lateBy: 5 * time.Minute, next: "2026-11-26T14:35:00Z", interval: 10 * time.Minute},
		{name: "hourly, on time", schedule: "@hourly", since: "2026-11-26T14:00:30Z", now: "2026-11-26T14:59:00Z",
			next: "2026-11-26T15:00:00Z", interval: time.Hour},
		// 02:00 in Berlin is 01:00 UTC in winter.
		{name: "time zone", schedule: "0 2 * * *", tz: &berlin, since: "2026-11-25T01:05:00Z", now: "2026-11-26T03:00:00Z",
			late: true, lateBy: time.Hour, next: "2026-11-27T01:00:00Z", interval: 24 * time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			info, err := lateness(c.schedule, c.tz, utc(c.since), utc(c.now), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if info.Late != c.late || info.LateBy != c.lateBy {
				t.Errorf("late %v by %v, want %v by %v", info.Late, info.LateBy, c.late, c.lateBy)
			}
			if !info.Next.Equal(utc(c.next)) {
				t.Errorf("next %v, want %v", info.Next.UTC(), c.next)
			}
			if info.Interval != c.interval {
				t.Errorf("interval %v, want %v", info.Interval, c.interval)
			}
		})
	}
	if _, err := lateness("61 * * * *", nil, time.Now(), time.Now(), time.Hour); err == nil {
		t.Error("a bad schedule was accepted")
	}
}

func TestWritePreview(t *testing.T) {
	var b bytes.Buffer
	writePreview(&b, &v1alpha1.RestorePreview{Creates: 2, Overwrites: 1, Deletes: 3,
		Paths: []string{"+ a/new", "+ a/new2", "~ conf/app.yaml", "- old/x"}, Truncated: true})
	want := `+ a/new
+ a/new2
~ conf/app.yaml
- old/x
... and 2 more not listed
2 to create, 1 to overwrite, 3 to delete
`
	if b.String() != want {
		t.Errorf("preview:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	writePreview(&b, &v1alpha1.RestorePreview{})
	if got := b.String(); got != "0 to create, 0 to overwrite, 0 to delete\n" {
		t.Errorf("empty preview: %q", got)
	}
}

func TestFollowerPlain(t *testing.T) {
	var b bytes.Buffer
	// A clock that stands still: no rate, so no rate or ETA in the lines.
	t0 := time.Now()
	f := &follower{w: &b, what: "backup/x", now: func() time.Time { return t0 }}
	for _, ob := range []observation{
		{phase: "Pending", message: "queued: 2 movers run"},
		{phase: "Pending", message: "queued: 2 movers run"},
		{phase: "Running", progress: &v1alpha1.Progress{BytesDone: 5, BytesTotal: 100}},
		{phase: "Running", progress: &v1alpha1.Progress{BytesDone: 8, BytesTotal: 100}},
		{phase: "Running", progress: &v1alpha1.Progress{BytesDone: 55, BytesTotal: 100}},
		{phase: "Completed", done: true},
	} {
		f.show(ob)
	}
	got := b.String()
	if strings.Contains(got, "\r") || strings.Contains(got, "\x1b") || strings.Contains(got, "[=") {
		t.Errorf("plain output has terminal controls or a bar: %q", got)
	}
	want := "backup/x Pending: queued: 2 movers run\nbackup/x Running\nbackup/x   5%  5 B / 100 B\nbackup/x  55%  55 B / 100 B\n"
	if got != want {
		t.Errorf("plain output:\n%q\nwant\n%q", got, want)
	}
}

func TestRestoreSpecs(t *testing.T) {
	dry, real, err := restoreSpecs("b1", restoreFlags{to: "data", mode: "mirror", paths: []string{"conf", "a/b"}})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || real.DryRun || real.Mode != v1alpha1.RestoreModeMirror || dry.Mode != v1alpha1.RestoreModeMirror ||
		real.Target.PVCName != "data" || len(real.Paths) != 2 || len(dry.Paths) != 2 || real.BackupName != "b1" {
		t.Errorf("specs: dry %+v, real %+v", dry, real)
	}
	dry, real, err = restoreSpecs("b1", restoreFlags{newPVC: "2Gi", mode: "Merge"})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Target.NewPVC == nil || dry.Target.NewPVC.Size.String() != "2Gi" || dry.Target.PVCName != "b1-restore" {
		t.Errorf("dry run with a new claim: %+v", dry.Target)
	}
	// The restore writes into the claim the dry run created.
	if real.Target.NewPVC != nil || real.Target.PVCName != "b1-restore" {
		t.Errorf("restore after a new claim's dry run: %+v", real.Target)
	}
	for _, rf := range []restoreFlags{{mode: "Merge"}, {to: "x", mode: "Replace"}, {to: "x", newPVC: "lots", mode: "Merge"}} {
		if _, _, err := restoreSpecs("b1", rf); err == nil {
			t.Errorf("%+v accepted", rf)
		}
	}
}

func TestFollowerTerminal(t *testing.T) {
	var b bytes.Buffer
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := t0
	f := &follower{w: &b, what: "backup/x", terminal: true, now: func() time.Time { return clock }}
	f.show(observation{phase: "Pending", message: "waiting for\nthe claim"})
	f.show(observation{phase: "Running", progress: &v1alpha1.Progress{BytesDone: 0, BytesTotal: 100 << 20}})
	clock = t0.Add(10 * time.Second)
	f.show(observation{phase: "Running", progress: &v1alpha1.Progress{BytesDone: 50 << 20, BytesTotal: 100 << 20}})
	f.show(observation{phase: "Completed", done: true})
	want := "\r\x1b[Kbackup/x Pending: waiting for the claim" +
		"\r\x1b[Kbackup/x Running [                              ]   0%  0 B / 100.0 MiB" +
		"\r\x1b[Kbackup/x Running [===============>              ]  50%  50.0 MiB / 100.0 MiB  5.0 MiB/s  ETA 10s" +
		"\r\x1b[K"
	if got := b.String(); got != want {
		t.Errorf("terminal output:\n%q\nwant\n%q", got, want)
	}
}

// listingJSON is a listing as the files subresource answers it.
const listingJSON = `{"kind":"BackupFileList","apiVersion":"backup.example.com/v1alpha1","path":"etc","items":[
{"name":"app.conf","type":"File","size":123,"mode":420,"uid":0,"gid":0,"modTime":"2026-11-30T12:00:00Z"},
{"name":"conf.d","type":"Directory","size":0,"mode":493,"uid":1000,"gid":1000,"modTime":"2026-11-29T08:15:30.123456Z"},
{"name":"big.db","type":"File","size":10737418240,"mode":384,"uid":999,"gid":999,"modTime":"2026-11-30T12:00:01Z"},
{"name":"link","type":"Symlink","size":0,"mode":511,"uid":0,"gid":0,"modTime":"2026-11-30T12:00:00Z","linkTarget":"app.conf"},
{"name":"bad\nname\u001b[2J","type":"File","size":1,"mode":420,"uid":0,"gid":0,"modTime":"2026-11-30T12:00:00Z"}]}`

func TestWriteFileTable(t *testing.T) {
	var l backupFileList
	if err := json.Unmarshal([]byte(listingJSON), &l); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeFileTable(&b, l.Items, time.FixedZone("CET", 3600))
	want := `MODE        OWNER             SIZE  MODIFIED             NAME
-rw-r--r--  0:0                123  2026-11-30 13:00:00  app.conf
drwxr-xr-x  1000:1000            -  2026-11-29 09:15:30  conf.d
-rw-------  999:999    10737418240  2026-11-30 13:00:01  big.db
lrwxrwxrwx  0:0                  -  2026-11-30 13:00:00  link -> app.conf
-rw-r--r--  0:0                  1  2026-11-30 13:00:00  "bad\nname\x1b[2J"
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}

	// Zero times and a listing of small files only: the SIZE head sets the width.
	b.Reset()
	writeFileTable(&b, []backupFile{{Name: "a", Type: typeFile, Size: 7, Mode: 0o640, UID: 5, GID: 6}}, time.UTC)
	if want := "MODE        OWNER  SIZE  MODIFIED  NAME\n-rw-r-----  5:6       7  -         a\n"; b.String() != want {
		t.Errorf("table:\n%q\nwant:\n%q", b.String(), want)
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"plain.txt":      "plain.txt",
		"with space":     "with space",
		"ünïcödé":        "ünïcödé",
		"tab\there":      `"tab\there"`,
		"del\x7f":        `"del\x7f"`,
		"c1\u0085":       `"c1\u0085"`,
		"\x1b]0;title\a": `"\x1b]0;title\a"`,
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %s, want %s", in, got, want)
		}
	}
}
