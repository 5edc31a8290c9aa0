package controller

import (
	"slices"
	"strings"
	"testing"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
)

// A RestoreJob with spec.paths gives its mover one --path=VALUE argument per
// path (a path beginning with "-" stays a value), for a restore and for a
// dry run, and its messages name the paths.
func TestRestorePathsReachTheMover(t *testing.T) {
	for _, dry := range []bool{false, true} {
		bk := completedBackup("prod", "b", 1000)
		r := newRestore("prod", "r", "b", "data")
		r.Spec.DryRun = dry
		r.Spec.Mode = v1alpha1.RestoreModeMirror
		r.Spec.Paths = []string{"app/config", "-rf", "data file"}
		f := newFixture(t, bk, r, claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
		f.syncRestore("prod", "r")
		job := f.onlyJob("prod")
		cmd := job.Spec.Template.Spec.Containers[0].Command
		op := "restore"
		if dry {
			op = "diff"
		}
		if !hasArgs(&job, op, "--repo", "/repo", "--snapshot", snapshotID, "--target", "/target", "--mode", "mirror") ||
			!hasArgs(&job, "--path=app/config", "--path=-rf", "--path=data file") || slices.Contains(cmd, "-rf") {
			t.Errorf("dry run %v: mover command %q, want %s of the three paths as --path=VALUE", dry, cmd, op)
		}
		got := f.restore("prod", "r")
		if !strings.Contains(got.Status.Message, `(only spec.paths: "app/config", "-rf", "data file")`) {
			t.Errorf("running message %q does not name the paths", got.Status.Message)
		}
		f.finishJob(&job, `{"operation":"`+op+`","creates":1,"deletes":1,"paths":["+ app/config/new","- app/config/old"],"verified":`+map[bool]string{true: "false", false: "true"}[dry]+`}`)
		f.syncRestore("prod", "r")
		got = f.restore("prod", "r")
		want := "restored and verified: 1 created, 0 overwritten, 1 deleted, 0 bytes written (only spec.paths: \"app/config\", \"-rf\", \"data file\")"
		if dry {
			want = "dry run: a restore would create 1, overwrite 0 and delete 1 files (only spec.paths: \"app/config\", \"-rf\", \"data file\"); nothing was written"
		}
		if got.Status.Phase != v1alpha1.RestorePhaseCompleted || got.Status.Message != want {
			t.Errorf("phase %q message %q, want Completed: %q", got.Status.Phase, got.Status.Message, want)
		}
	}
	// Without paths, no --path and no note.
	bk := completedBackup("prod", "b", 1000)
	f := newFixture(t, bk, newRestore("prod", "r", "b", "data"), claimOf("prod", "data", "1Gi"), boundPVC("prod", "backup-repo"))
	f.syncRestore("prod", "r")
	job := f.onlyJob("prod")
	for _, a := range job.Spec.Template.Spec.Containers[0].Command {
		if strings.HasPrefix(a, "--path") {
			t.Errorf("a restore of everything passes %q", a)
		}
	}
	if msg := f.restore("prod", "r").Status.Message; strings.Contains(msg, "spec.paths") {
		t.Errorf("message %q", msg)
	}
}

func TestSelectionNoteIsBounded(t *testing.T) {
	paths := []string{"a", "b", "c", "d", "e", "f", "g"}
	if got, want := selectionNote(paths), ` (only spec.paths: "a", "b", "c", "d", "e", and 2 more)`; got != want {
		t.Errorf("selectionNote = %q, want %q", got, want)
	}
}
