package e2eutil

import (
	"regexp"
	"testing"
)

// AcceptanceItems are the items of docs/production-acceptance.md that ops/acceptance/check.sh
// reports, in order.
var AcceptanceItems = []string{
	"1. Metrics and alert triggers defined and tested",
	"2. Runbooks for every alert",
	"3. Backups configured and a restore test passed",
	"4. Log rotation everywhere",
	"5. Quotas set from a load test",
	"6. Healthchecks on every service",
	"7. Secrets out of the repository",
	"8. CI green",
	"9. On-call contacts",
	"10. Postmortem process",
}

var acceptanceLine = regexp.MustCompile(`(?m)^(MET|NOT MET|UNKNOWN) +(\d+\. .+)$`)

// AcceptanceStatuses parses check.sh's report into item title -> status; every item must
// have exactly one.
func AcceptanceStatuses(t testing.TB, out string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, m := range acceptanceLine.FindAllStringSubmatch(out, -1) {
		got[m[2]] = m[1]
	}
	for _, item := range AcceptanceItems {
		if _, ok := got[item]; !ok {
			t.Errorf("check.sh does not report %q with a status:\n%s", item, out)
		}
	}
	if len(got) != len(AcceptanceItems) {
		t.Errorf("check.sh reported %d items, want %d:\n%s", len(got), len(AcceptanceItems), out)
	}
	return got
}

// PromRule is one rule as Prometheus reads it.
type PromRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// PromRuleFile is a Prometheus rule file.
type PromRuleFile struct {
	Groups []struct {
		Name  string     `yaml:"name"`
		Rules []PromRule `yaml:"rules"`
	} `yaml:"groups"`
}
