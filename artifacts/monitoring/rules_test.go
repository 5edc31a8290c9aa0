// Package monitoring holds the tests of the alerting rules beside it: the
// plain rules file and the PrometheusRule carry the same groups, every
// metric they read is one the operator exports, every alert is tested
// firing and not firing, and promtool accepts the rules and passes the
// tests in tests/.
package monitoring

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"
)

const (
	rulesFile          = "backup-operator-rules.yaml"
	prometheusRuleFile = "prometheusrule.yaml"
)

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type group struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

// readYAML decodes a YAML file into v, by way of JSON (the field names above).
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.ToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := json.Unmarshal(j, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func ruleGroups(t *testing.T) []group {
	t.Helper()
	var f struct {
		Groups []group `json:"groups"`
	}
	readYAML(t, rulesFile, &f)
	if len(f.Groups) == 0 {
		t.Fatalf("%s has no groups", rulesFile)
	}
	return f.Groups
}

// The PrometheusRule is the rules file in another envelope: a change to one
// that is not made to the other fails here.
func TestPrometheusRuleMatchesRulesFile(t *testing.T) {
	var plain, wrapped struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Groups     any    `json:"groups"`
		Spec       struct {
			Groups any `json:"groups"`
		} `json:"spec"`
	}
	readYAML(t, rulesFile, &plain)
	readYAML(t, prometheusRuleFile, &wrapped)
	if wrapped.APIVersion != "monitoring.coreos.com/v1" || wrapped.Kind != "PrometheusRule" {
		t.Errorf("%s is %s %s, want monitoring.coreos.com/v1 PrometheusRule", prometheusRuleFile, wrapped.APIVersion, wrapped.Kind)
	}
	if reflect.DeepEqual(plain.Groups, wrapped.Spec.Groups) {
		return
	}
	// Say which rules differ.
	a, b := flatRules(plain.Groups), flatRules(wrapped.Spec.Groups)
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y any
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if !reflect.DeepEqual(x, y) {
			xj, _ := json.MarshalIndent(x, "", "  ")
			yj, _ := json.MarshalIndent(y, "", "  ")
			t.Errorf("rule %d differs; make the same change to both files.\n%s:\n%s\n%s:\n%s", i+1, rulesFile, xj, prometheusRuleFile, yj)
		}
	}
	if !t.Failed() {
		t.Errorf("the groups of %s and the spec.groups of %s differ (not in their rules); make the same change to both", rulesFile, prometheusRuleFile)
	}
}

// flatRules lists the rules of decoded groups, each with its group's name.
func flatRules(groups any) []any {
	j, _ := json.Marshal(groups)
	var gs []struct {
		Name  string `json:"name"`
		Rules []any  `json:"rules"`
	}
	_ = json.Unmarshal(j, &gs)
	var rules []any
	for _, g := range gs {
		for _, r := range g.Rules {
			rules = append(rules, map[string]any{"group": g.Name, "rule": r})
		}
	}
	return rules
}

// Every alert says how bad it is, names what it is about and what to run;
// every metric it reads is one pkg/controller exports (a rename there
// must not silently leave an alert that never fires).
func TestAlertsAreComplete(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "pkg", "controller", "metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`Namespace: "backup_operator", Name: "([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		exported["backup_operator_"+m[1]] = true
	}
	if len(exported) == 0 {
		t.Fatal("found no metric definitions in pkg/controller/metrics.go")
	}
	metric := regexp.MustCompile(`backup_operator_[a-z_]+`)
	for _, g := range ruleGroups(t) {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, key := range []string{"summary", "description"} {
				if !strings.Contains(r.Annotations[key], "{{ $labels.namespace }}") {
					t.Errorf("%s: the %s does not name the namespace", r.Alert, key)
				}
			}
			if !strings.Contains(r.Annotations["description"], "kubectl ") {
				t.Errorf("%s: the description says no kubectl command to look with", r.Alert)
			}
			for _, name := range metric.FindAllString(r.Expr, -1) {
				if !exported[name] {
					t.Errorf("%s reads %s, which pkg/controller/metrics.go does not define", r.Alert, name)
				}
			}
		}
	}
}

// Every alert has a promtool test where it fires and one where it does not.
func TestEveryAlertIsTested(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("tests", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool tests in tests/ (%v)", err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		var suite struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string `json:"alertname"`
					ExpAlerts []any  `json:"exp_alerts"`
				} `json:"alert_rule_test"`
			} `json:"tests"`
		}
		readYAML(t, f, &suite)
		for _, tc := range suite.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					quiet[a.Alertname] = true
				}
			}
		}
	}
	for _, g := range ruleGroups(t) {
		for _, r := range g.Rules {
			if r.Alert != "" && (!fires[r.Alert] || !quiet[r.Alert]) {
				t.Errorf("%s: tested firing %v, not firing %v; tests/ needs both", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
		}
	}
}

// promtool accepts both files and passes the tests in tests/.
func TestPromtool(t *testing.T) {
	promtool := os.Getenv("PROMTOOL")
	if promtool == "" {
		var err error
		if promtool, err = exec.LookPath("promtool"); errors.Is(err, exec.ErrNotFound) {
			msg := "promtool not found (neither $PROMTOOL nor on PATH): run make test, which unpacks Debian's (hack/promtool.sh), or PROMTOOL=$(hack/promtool.sh) go test ./artifacts/monitoring"
			if testing.Short() {
				t.Skip(msg)
			}
			t.Fatal(msg)
		}
	}
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("check", "rules", rulesFile)

	// The PrometheusRule's spec as a rules file of its own.
	var pr struct {
		Spec json.RawMessage `json:"spec"`
	}
	readYAML(t, prometheusRuleFile, &pr)
	spec := filepath.Join(t.TempDir(), "prometheusrule-spec.json") // JSON is YAML
	if err := os.WriteFile(spec, pr.Spec, 0o644); err != nil {
		t.Fatal(err)
	}
	run("check", "rules", spec)

	tests, _ := filepath.Glob(filepath.Join("tests", "*.yaml"))
	sort.Strings(tests)
	run(append([]string{"test", "rules"}, tests...)...)
}
