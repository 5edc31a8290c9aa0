//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/backup-operator/hack/cluster"
)

// example reads a file of artifacts/examples with its namespace replaced.
func example(t *testing.T, ns, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cluster.RepoRoot(), "artifacts", "examples", path))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(data), "namespace: production", "namespace: "+ns)
}

// kubectlStdout runs kubectl and returns its standard output alone: `kubectl
// exec` may log stream warnings on stderr that are not the command's output.
func kubectlStdout(t *testing.T, args ...string) string {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig=" + local.AdminKubeconfig}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// psql runs one query in the database app of a PostgreSQL pod and returns
// its unaligned output.
func psql(t *testing.T, ns, pod, query string) string {
	t.Helper()
	return strings.TrimSpace(kubectlStdout(t, "-n", ns, "exec", pod, "-c", "postgres", "--", "psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", "app", "-Atc", query))
}

// accountsDigest is what a restore must reproduce: the accounts' row count
// and a digest of every (aid, abalance), and whether pgbench's invariant
// holds (every transaction adds its delta to one account and one history
// row, so in a consistent snapshot the two sums are equal).
const accountsDigest = `select count(*) || ' ' || md5(string_agg(aid || ':' || abalance, ',' order by aid)) || ' ' ||
  ((select coalesce(sum(abalance), 0) from pgbench_accounts) = (select coalesce(sum(delta), 0) from pgbench_history)) from pgbench_accounts`

// TestPostgresConsistentBackup backs up the PostgreSQL example under
// continuous pgbench write load with the example policy's hooks (pg_dump
// into the dump claim before the copy), restores into a fresh PostgreSQL's
// dump claim with the example RestoreJob's post hook (pg_restore), and
// checks that the fresh database answers and holds exactly what the dump
// saw, consistent (pgbench's invariant). It logs what the hooks cost and the
// write throughput during the dump.
func TestPostgresConsistentBackup(t *testing.T) {
	ns := "e2e-postgres"
	namespace(t, ns)
	apply(t, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: backup-repo, namespace: %s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 2Gi}}}
`, ns))
	apply(t, example(t, ns, "30-postgres.yaml"))
	kubectl(t, "-n", ns, "rollout", "status", "statefulset/postgres", "--timeout=180s")
	kubectl(t, "-n", ns, "exec", "postgres-0", "-c", "postgres", "--", "pgbench", "-i", "-q", "-s", "10", "app")

	// Continuous write load, as fast as it goes, over the pod network.
	apply(t, fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata: {name: load, namespace: %s}
spec:
  backoffLimit: 3 # the pod network and DNS name may lag the database's readiness by a moment
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: pgbench
        image: %s
        imagePullPolicy: Never
        command: [pgbench, -h, postgres-0.postgres, -U, postgres, -n, -c, "2", -j, "2", -T, "900", -P, "1", --progress-timestamp, app]
`, ns, cluster.PostgresImage))
	waitWrites := func(what string) int64 {
		t.Helper()
		before, _ := strconv.ParseInt(psql(t, ns, "postgres-0", "select count(*) from pgbench_history"), 10, 64)
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(2 * time.Second)
			if n, _ := strconv.ParseInt(psql(t, ns, "postgres-0", "select count(*) from pgbench_history"), 10, 64); n > before+100 {
				return n
			}
		}
		t.Fatalf("pgbench is not writing %s", what)
		return 0
	}
	waitWrites("before the backup")
	loadStarted := time.Now()
	time.Sleep(5 * time.Second) // a few seconds of throughput without hooks

	// The example policy's hooks, on a Backup that names only the policy.
	// Suspended: only the Backup below runs its hooks during the test,
	// whatever the time of day.
	apply(t, strings.Replace(example(t, ns, "40-postgres-backuppolicy.yaml"), "spec:\n", "spec:\n  suspend: true\n", 1))
	apply(t, fmt.Sprintf(`apiVersion: backup.example.com/v1alpha1
kind: Backup
metadata: {name: postgres-manual, namespace: %s}
spec: {policyName: postgres}
`, ns))
	st := waitBackup(t, ns, "postgres-manual")
	hooks := hookStatuses(t, ns, "backup", "postgres-manual")
	if len(hooks) != 2 || hooks[0]["name"] != "dump" || hooks[0]["phase"] != "Succeeded" || hooks[0]["pod"] != "postgres-0" || hooks[1]["name"] != "clean-up" || hooks[1]["phase"] != "Succeeded" {
		t.Fatalf("status.hooks: %v", hooks)
	}
	waitWrites("after the backup") // the load went on throughout
	dumpStart, _ := time.Parse(time.RFC3339, hooks[0]["startTime"].(string))
	dumpEnd, _ := time.Parse(time.RFC3339, hooks[0]["completionTime"].(string))
	created, _ := time.Parse(time.RFC3339, kubectl(t, "-n", ns, "get", "backup", "postgres-manual", "-o", "jsonpath={.metadata.creationTimestamp}"))
	completed, _ := time.Parse(time.RFC3339, st["completionTime"].(string))
	jobStart, _ := time.Parse(time.RFC3339, st["startTime"].(string))

	// What the dump saw: loaded into a scratch database of the source.
	kubectl(t, "-n", ns, "exec", "postgres-0", "-c", "postgres", "--", "sh", "-c",
		"dropdb --if-exists verify && createdb verify && pg_restore --no-owner --exit-on-error -d verify /var/lib/postgresql/dump/app.pgc")
	want := strings.TrimSpace(kubectlStdout(t, "-n", ns, "exec", "postgres-0", "-c", "postgres", "--", "psql", "-X", "-d", "verify", "-Atc", accountsDigest))
	if !strings.HasPrefix(want, "1000000 ") || !strings.HasSuffix(want, " true") {
		t.Fatalf("the dump is not a consistent copy of 1,000,000 accounts: %q", want)
	}
	logs := kubectlStdout(t, "-n", ns, "logs", "job/load")
	kubectl(t, "-n", ns, "delete", "job", "load", "--wait=false")

	// A fresh PostgreSQL; the example RestoreJob writes the dump into its
	// dump claim and its post hook loads it.
	apply(t, example(t, ns, "postgres-restore/10-postgres-restored.yaml"))
	kubectl(t, "-n", ns, "rollout", "status", "statefulset/postgres-restored", "--timeout=180s")
	apply(t, example(t, ns, "postgres-restore/20-restorejob.yaml"))
	waitRestore(t, ns, "restore-postgres")
	rh := hookStatuses(t, ns, "restorejob", "restore-postgres")
	if len(rh) != 1 || rh[0]["name"] != "load" || rh[0]["phase"] != "Succeeded" || rh[0]["pod"] != "postgres-restored-0" {
		t.Fatalf("RestoreJob status.hooks: %v", rh)
	}
	if got := psql(t, ns, "postgres-restored-0", accountsDigest); got != want {
		t.Errorf("the restored database holds %q, the dump %q", got, want)
	}
	if got := psql(t, ns, "postgres-restored-0", "select count(*) from pgbench_branches"); got != "10" {
		t.Errorf("restored pgbench_branches has %s rows, want 10", got)
	}

	// What the hooks cost, and what the writers saw.
	before, during := tpsAround(logs, loadStarted, dumpStart, dumpEnd)
	t.Logf("backup with hooks: %.1fs from creation to Completed; pre hook (pg_dump of %s accounts) %.1fs; data mover %.1fs; pgbench before the backup %.0f tps, during the dump %s",
		completed.Sub(created).Seconds(), strings.Fields(want)[0], dumpEnd.Sub(dumpStart).Seconds(), completed.Sub(jobStart).Seconds(), before, during)
}

// tpsAround reads pgbench's --progress-timestamp lines ("progress:
// 1764553590.123 s, 2345.6 tps, lat ...") and returns the mean tps before the
// dump began (after from) and the mean and minimum during it.
func tpsAround(logs string, from, start, end time.Time) (float64, string) {
	var before, during []float64
	for _, line := range strings.Split(logs, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "progress:" || f[4] != "tps," {
			continue
		}
		ts, err1 := strconv.ParseFloat(f[1], 64)
		tps, err2 := strconv.ParseFloat(f[3], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		at := time.Unix(0, int64(ts*1e9))
		switch {
		case !at.Before(start.Add(-time.Second)) && !at.After(end.Add(time.Second)):
			during = append(during, tps)
		case at.After(from) && at.Before(start):
			before = append(before, tps)
		}
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(max(1, len(v)))
	}
	if len(during) == 0 {
		return mean(before), "not sampled (the dump took under a second)"
	}
	sort.Float64s(during)
	return mean(before), fmt.Sprintf("%.0f tps mean, %.0f tps in its slowest second", mean(during), during[0])
}
