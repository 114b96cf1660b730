package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// mexUse is where a PromQL expression comes from, for messages.
type mexUse struct {
	where string // "monitoring/prometheus/rules/x.yml: alert Foo" or "dashboard x.json: panel Bar"
	expr  string
}

// mexProblem is one metric or label that does not exist.
type mexProblem struct{ where, what string }

// mexChecker checks PromQL expressions against the exposures.
type mexChecker struct {
	jobs     map[string]*mexExposure
	recorded map[string]map[string]bool // recording rule outputs -> their labels
	problems []mexProblem
}

// mexSynthetic are series Prometheus makes itself, with their labels.
var mexSynthetic = map[string][]string{
	"up":                                    {"job", "instance"},
	"scrape_duration_seconds":               {"job", "instance"},
	"scrape_samples_scraped":                {"job", "instance"},
	"scrape_samples_post_metric_relabeling": {"job", "instance"},
	"scrape_series_added":                   {"job", "instance"},
}

// exposers returns the jobs that may answer a selector: the one its job matcher names, or all.
func (c *mexChecker) exposers(ms []*labels.Matcher) []string {
	for _, m := range ms {
		if m.Name == "job" && m.Type == labels.MatchEqual {
			return []string{m.Value}
		}
	}
	var all []string
	for j := range c.jobs {
		all = append(all, j)
	}
	sort.Strings(all)
	return all
}

// labelsOf returns the label names a selector's series can have, or nil when its metric
// exists nowhere (a problem is recorded then).
func (c *mexChecker) labelsOf(where string, vs *parser.VectorSelector) map[string]bool {
	name := vs.Name
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			name = m.Value
		}
	}
	if name == "" {
		c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("selector %s has no metric name", vs)})
		return nil
	}
	have := map[string]bool{}
	found := false
	switch {
	case name == "ALERTS" || name == "ALERTS_FOR_STATE":
		return nil // any label of any rule: not checked
	case mexSynthetic[name] != nil:
		found = true
		for _, l := range mexSynthetic[name] {
			have[l] = true
		}
	case c.recorded[name] != nil:
		found = true
		have = c.recorded[name]
	}
	jobs := c.exposers(vs.LabelMatchers)
	var in []string
	for _, j := range jobs {
		e, ok := c.jobs[j]
		if !ok {
			continue
		}
		in = append(in, fmt.Sprintf("%s (%s)", j, e.exporter))
		if ls, ok := e.metrics[name]; ok {
			found = true
			for l := range ls {
				have[l] = true
			}
		}
	}
	if !found {
		if len(in) == 0 {
			c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("metric %s: no job %v is scraped", name, jobs)})
		} else {
			c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("metric %s does not exist in job %s", name, strings.Join(in, ", "))})
		}
		return nil
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName {
			continue
		}
		if !have[m.Name] {
			c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("metric %s has no label %s (it has %s) in %s", name, m.Name, mexKeys(have), strings.Join(in, ", "))})
		}
	}
	return have
}

func mexKeys(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// labels returns the label names the result of expr can carry (nil: unknown or any), and
// records a problem for every metric, matcher, `by`/`without` and `on`/`ignoring` label
// that does not exist.
func (c *mexChecker) labels(where string, e parser.Expr) map[string]bool {
	switch n := e.(type) {
	case *parser.VectorSelector:
		return c.labelsOf(where, n)
	case *parser.MatrixSelector:
		return c.labels(where, n.VectorSelector)
	case *parser.SubqueryExpr:
		return c.labels(where, n.Expr)
	case *parser.ParenExpr:
		return c.labels(where, n.Expr)
	case *parser.StepInvariantExpr:
		return c.labels(where, n.Expr)
	case *parser.UnaryExpr:
		return c.labels(where, n.Expr)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return map[string]bool{}
	case *parser.Call:
		// The labels of the first vector or range argument (histogram_quantile's second).
		var out map[string]bool
		seen := false
		for _, a := range n.Args {
			ls := c.labels(where, a)
			if t := a.Type(); !seen && (t == parser.ValueTypeVector || t == parser.ValueTypeMatrix) {
				out, seen = ls, true
			}
		}
		switch n.Func.Name {
		case "vector", "time", "scalar":
			return map[string]bool{}
		case "absent", "absent_over_time", "label_replace", "label_join":
			return nil
		}
		return out
	case *parser.AggregateExpr:
		inner := c.labels(where, n.Expr)
		if n.Param != nil {
			c.labels(where, n.Param)
		}
		if inner != nil {
			for _, l := range n.Grouping {
				if !inner[l] {
					c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("%s by/without label %s: the aggregated series have no such label (they have %s)", n.Op, l, mexKeys(inner))})
				}
			}
		}
		if n.Without || inner == nil {
			return inner
		}
		out := map[string]bool{}
		for _, l := range n.Grouping {
			out[l] = true
		}
		if n.Op == parser.TOPK || n.Op == parser.BOTTOMK {
			return inner
		}
		return out
	case *parser.BinaryExpr:
		lhs, rhs := c.labels(where, n.LHS), c.labels(where, n.RHS)
		if vm := n.VectorMatching; vm != nil && vm.On {
			for _, side := range []map[string]bool{lhs, rhs} {
				if side == nil {
					continue
				}
				for _, l := range vm.MatchingLabels {
					if !side[l] {
						c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("on (%s): one side has no label %s (it has %s)", strings.Join(vm.MatchingLabels, ", "), l, mexKeys(side))})
					}
				}
			}
		}
		// The result has the labels of its vector side (the left one of two); unknown (nil)
		// when that side's metric does not exist, so no follow-up errors are reported.
		if n.LHS.Type() == parser.ValueTypeVector {
			return lhs
		}
		if n.RHS.Type() == parser.ValueTypeVector {
			return rhs
		}
		return map[string]bool{}
	}
	return nil
}

// check parses expr and checks it; a parse error is a problem too.
func (c *mexChecker) check(u mexUse) map[string]bool {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(u.expr)
	if err != nil {
		c.problems = append(c.problems, mexProblem{u.where, fmt.Sprintf("PromQL does not parse: %v", err)})
		return nil
	}
	return c.labels(u.where, expr)
}

// mexRuleFile is the part of a Prometheus rules file the check reads.
type mexRuleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string `yaml:"alert"`
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// mexCheckRules checks every rule of the given files: recording rules first (their outputs,
// with the labels their expressions keep, become known metrics), then alerts.
func (c *mexChecker) checkRules(t *testing.T, dir string, files []string) {
	t.Helper()
	type rule struct{ where, record, expr string }
	var records, alerts []rule
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		var rf mexRuleFile
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					records = append(records, rule{fmt.Sprintf("%s: group %s: record %s", f, g.Name, r.Record), r.Record, r.Expr})
				} else {
					alerts = append(alerts, rule{fmt.Sprintf("%s: group %s: alert %s", f, g.Name, r.Alert), "", r.Expr})
				}
			}
		}
	}
	for _, r := range records {
		ls := c.check(mexUse{r.where, r.expr})
		if ls == nil {
			ls = map[string]bool{}
		}
		c.recorded[r.record] = ls
	}
	for _, r := range alerts {
		c.check(mexUse{r.where, r.expr})
	}
}

// mexGrafanaVars replaces Grafana's variables by values PromQL accepts.
var mexGrafanaVars = regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?`)

func mexGrafanaExpr(expr string) string {
	return mexGrafanaVars.ReplaceAllStringFunc(expr, func(v string) string {
		switch strings.Trim(v, "${}") {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		}
		return ".*"
	})
}

// checkDashboards checks every panel target and every label_values(...) variable query.
func (c *mexChecker) checkDashboards(t *testing.T, dir string) {
	t.Helper()
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	dashDir := filepath.Join(dir, "monitoring", "grafana", "dashboards")
	for _, name := range e2eutil.ReadDirNames(t, dashDir) {
		var d mcDashboard
		b, err := os.ReadFile(filepath.Join(dashDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("dashboard %s: %v", name, err)
			continue
		}
		for _, p := range mcAllPanels(d.Panels) {
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					c.check(mexUse{fmt.Sprintf("dashboard %s: panel %q", name, p.Title), mexGrafanaExpr(tg.Expr)})
				}
			}
		}
		for _, v := range d.Templating.List {
			m := labelValues.FindStringSubmatch(strings.TrimSpace(v.Definition))
			if m == nil {
				continue
			}
			where := fmt.Sprintf("dashboard %s: variable %s", name, v.Name)
			if ls := c.check(mexUse{where, m[1]}); ls != nil && !ls[m[2]] {
				c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("label_values: %s has no label %s (it has %s)", m[1], m[2], mexKeys(ls))})
			}
		}
	}
}
