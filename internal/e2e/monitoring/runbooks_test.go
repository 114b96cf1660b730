package monitoring

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The runbook tests read the alert rules the way Prometheus does (YAML groups of rules) in
// trees generated for every database, cache and TLS answer, and check the links between the
// rules and docs/runbooks/: each alert's runbook_url is the answered base URL followed by
// docs/runbooks/<alert-in-kebab-case>.md and that file exists; every runbook belongs to an
// alert of that tree (none left over from another answer set); each runbook starts with its
// alert's name, has the sections an on-call engineer looks for, states the severity of its
// rules and quotes the exact expression of each of them (so a changed threshold cannot leave a
// stale runbook behind), and its relative links resolve; docs/runbooks/README.md indexes
// exactly the runbooks of the tree. The postmortem template is checked for its sections and
// its action items table.

// rbBaseURL is the runbook_base_url answered in every case, so that a hard-coded default
// cannot pass.
const rbBaseURL = "https://git.example.test/ops/rb-app/-/blob/main"

// rbSections are the headings every runbook has, in this order.
var rbSections = []string{"## Meaning", "## Impact", "## Confirm", "## Mitigate", "## Escalate", "## Links"}

// rbPostmortemSections are the headings of docs/postmortem-template.md, in this order.
var rbPostmortemSections = []string{
	"## Summary", "## Impact", "## Root causes", "## Trigger", "## Resolution", "## Detection",
	"## Action items", "## Lessons learned", "### What went well", "### What went wrong",
	"### Where we got lucky", "## Timeline", "## Supporting information",
}

const rbActionItemsHeader = "| action | type | owner | priority | ticket | status |"

// rbRule is one alerting rule as Prometheus reads it.
type rbRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type rbRuleFile struct {
	Groups []struct {
		Name  string   `yaml:"name"`
		Rules []rbRule `yaml:"rules"`
	} `yaml:"groups"`
}

// rbCase is one answer set: every database, with and without Redis, with and without TLS.
// The objectives and the backend (whose histogram buckets the latency objective snaps to)
// vary between cases, down to objectives so loose that the SLO rules drop burn-rate windows.
type rbCase struct {
	db, cache, tls          string
	backend, avail, latency string
}

func (c rbCase) String() string { return c.db + "-" + c.cache + "-" + c.tls }

func (c rbCase) set() map[string]string {
	return map[string]string{
		"name": "rb-app", "domain": "rb-app.example.test", "db": c.db, "cache": c.cache,
		"tls": c.tls, "runbook_base_url": rbBaseURL, "backend": c.backend,
		"slo_availability": c.avail, "slo_latency_ms": c.latency,
	}
}

func rbCases() []rbCase {
	objectives := []struct{ backend, avail, latency string }{
		{"go", "99.9", "300"}, {"python", "99.5", "80"}, {"node", "90", "1000"},
		{"python", "99.95", "2000"}, {"go", "80", "50"}, {"node", "99", "20000"},
	}
	var cs []rbCase
	for _, db := range []string{"postgres", "mariadb"} {
		for _, cache := range []string{"none", "redis"} {
			for _, tls := range []string{"letsencrypt", "none"} {
				o := objectives[len(cs)%len(objectives)]
				cs = append(cs, rbCase{db, cache, tls, o.backend, o.avail, o.latency})
			}
		}
	}
	return cs
}

// rbKebab turns a CamelCase alert name into the runbook file stem, a number being a word of
// its own: BackupStale -> backup-stale, HostDiskWillFillIn24Hours ->
// host-disk-will-fill-in-24-hours, TLSCertExpiry -> tls-cert-expiry.
func rbKebab(name string) string {
	rs := []rune(name)
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			switch {
			case unicode.IsUpper(r) && (unicode.IsLower(prev) || unicode.IsDigit(prev)),
				unicode.IsUpper(r) && unicode.IsUpper(prev) && nextLower,
				unicode.IsDigit(r) && unicode.IsLetter(prev):
				b.WriteByte('-')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func TestRunbookKebab(t *testing.T) {
	for in, want := range map[string]string{
		"BackupStale": "backup-stale", "Watchdog": "watchdog", "HostOomKillDetected": "host-oom-kill-detected",
		"TLSCertificateExpiry": "tls-certificate-expiry", "HostDiskWillFillIn24Hours": "host-disk-will-fill-in-24-hours",
		"PostgresTooManyDeadTuples": "postgres-too-many-dead-tuples", "TlsCertificateExpiresVerySoon": "tls-certificate-expires-very-soon",
	} {
		if got := rbKebab(in); got != want {
			t.Errorf("rbKebab(%q) = %q, want %q", in, got, want)
		}
	}
}

// rbLoadRules parses every rules file of a generated tree and returns its alerting rules.
func rbLoadRules(t *testing.T, dir string) []rbRule {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.yml", "*.yaml"} {
		m, err := filepath.Glob(filepath.Join(dir, "monitoring", "prometheus", "rules", pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no rules files under monitoring/prometheus/rules/")
	}
	var rules []rbRule
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf rbRuleFile
		if err := yaml.Unmarshal(raw, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					rules = append(rules, r)
				}
			}
		}
	}
	if len(rules) == 0 {
		t.Fatal("no alerting rules under monitoring/prometheus/rules/")
	}
	return rules
}

// rbHeadings returns the Markdown headings of a document, outside fenced code blocks.
func rbHeadings(doc string) []string {
	var hs []string
	fenced := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " "), "```") {
			fenced = !fenced
			continue
		}
		if !fenced && strings.HasPrefix(line, "#") {
			hs = append(hs, strings.TrimRight(line, " "))
		}
	}
	return hs
}

// rbInOrder reports the first of want missing from have, or out of order in it.
func rbInOrder(have, want []string) error {
	at := 0
	for _, w := range want {
		i := slices.Index(have[at:], w)
		if i < 0 {
			if slices.Contains(have, w) {
				return fmt.Errorf("heading %q out of order (want order %q)", w, want)
			}
			return fmt.Errorf("heading %q missing (have %q)", w, have)
		}
		at += i + 1
	}
	return nil
}

var rbLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// rbSpace collapses runs of white space, so an expression can be compared however it is wrapped.
func rbSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

// rbProcedures are runbooks of procedures, not of one alert: several alerts' runbooks send
// people there (webapp 1.6.0's database replica).
var rbProcedures = map[string]bool{"db-failover.md": true, "db-rejoin.md": true}

func TestRunbooks(t *testing.T) {
	for _, c := range rbCases() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, c.set())
			rules := rbLoadRules(t, dir)

			// Alert -> runbook: the URL follows the contract and names a file of the tree.
			byFile := map[string][]rbRule{} // docs/runbooks/x.md -> the rules linking to it
			for _, r := range rules {
				url := r.Annotations["runbook_url"]
				want := rbBaseURL + "/docs/runbooks/" + rbKebab(r.Alert) + ".md"
				if url != want {
					t.Errorf("%s: runbook_url = %q, want %q", r.Alert, url, want)
					continue
				}
				rel := strings.TrimPrefix(url, rbBaseURL+"/")
				if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
					t.Errorf("%s: runbook %s is not generated", r.Alert, rel)
					continue
				}
				byFile[rel] = append(byFile[rel], r)
			}

			// Runbook -> alert: no orphans, the sections, the exact expressions, links resolve.
			paths, err := filepath.Glob(filepath.Join(dir, "docs", "runbooks", "*.md"))
			if err != nil {
				t.Fatal(err)
			}
			var runbooks, procedures []string
			linkedFrom := map[string]bool{} // runbook files some other runbook links to
			for _, p := range paths {
				raw, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if filepath.Base(p) == "README.md" {
					continue
				}
				for _, m := range rbLink.FindAllStringSubmatch(string(raw), -1) {
					if m[1] != filepath.Base(p) {
						linkedFrom[path.Base(m[1])] = true
					}
				}
			}
			for _, p := range paths {
				rel := "docs/runbooks/" + filepath.Base(p)
				raw, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				doc := string(raw)
				if strings.Contains(doc, "{{") || strings.Contains(doc, "<no value>") {
					t.Errorf("%s: unrendered template text", rel)
				}
				e2eutil.CheckMarkdownLinks(t, dir, rel, doc)
				if filepath.Base(p) == "README.md" {
					continue
				}
				runbooks = append(runbooks, rel)
				rs, ok := byFile[rel]
				if !ok && rbProcedures[filepath.Base(p)] {
					// A procedure the alert runbooks send people to (ops/db/failover.sh, say):
					// indexed like them (below) and linked from at least one of them.
					procedures = append(procedures, rel)
					continue
				}
				if !ok {
					t.Errorf("%s: orphan runbook, no alert of this tree links to it", rel)
					continue
				}
				if first, _, _ := strings.Cut(doc, "\n"); first != "# "+rs[0].Alert {
					t.Errorf("%s: first line %q, want %q", rel, first, "# "+rs[0].Alert)
				}
				if err := rbInOrder(rbHeadings(doc), rbSections); err != nil {
					t.Errorf("%s: %v", rel, err)
				}
				_, sev, _ := strings.Cut(doc, "\n**Severity** ")
				sev, _, _ = strings.Cut(sev, " · ")
				flat := rbSpace(doc)
				for _, r := range rs {
					if s := r.Labels["severity"]; s == "" || !strings.Contains(sev, s) {
						t.Errorf("%s: the **Severity** line says %q, the rule of %s has severity %q", rel, sev, r.Alert, s)
					}
					if !strings.Contains(flat, rbSpace(r.Expr)) {
						t.Errorf("%s: does not quote the expression of %s (severity %s):\n%s",
							rel, r.Alert, r.Labels["severity"], strings.TrimSpace(r.Expr))
					}
				}
			}
			if len(runbooks) == 0 {
				t.Fatal("no runbooks under docs/runbooks/")
			}
			for _, rel := range procedures {
				if !linkedFrom[path.Base(rel)] {
					t.Errorf("%s: a procedure no runbook links to", rel)
				}
			}

			// The index lists exactly the runbooks of this tree.
			idx, err := os.ReadFile(filepath.Join(dir, "docs", "runbooks", "README.md"))
			if err != nil {
				t.Fatal(err)
			}
			var listed []string
			for _, m := range rbLink.FindAllStringSubmatch(string(idx), -1) {
				if target := m[1]; !strings.Contains(target, "/") && strings.HasSuffix(target, ".md") && target != "README.md" {
					listed = append(listed, "docs/runbooks/"+target)
				}
			}
			sort.Strings(listed)
			listed = slices.Compact(listed)
			for _, rb := range runbooks {
				if !slices.Contains(listed, rb) {
					t.Errorf("docs/runbooks/README.md does not link %s", path.Base(rb))
				}
			}
			for _, l := range listed {
				if !slices.Contains(runbooks, l) {
					t.Errorf("docs/runbooks/README.md links %s, which this tree does not have", path.Base(l))
				}
			}
		})
	}
}

func TestRunbooksPostmortemTemplate(t *testing.T) {
	for _, c := range []rbCase{
		{"postgres", "none", "letsencrypt", "go", "99.9", "300"},
		{"mariadb", "redis", "none", "python", "99.5", "500"},
	} {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, c.set())
			raw, err := os.ReadFile(filepath.Join(dir, "docs", "postmortem-template.md"))
			if err != nil {
				t.Fatal(err)
			}
			doc := string(raw)
			if first, _, _ := strings.Cut(doc, "\n"); !strings.HasPrefix(first, "# Postmortem") {
				t.Errorf("first line %q, want the # Postmortem title", first)
			}
			if err := rbInOrder(rbHeadings(doc), rbPostmortemSections); err != nil {
				t.Error(err)
			}
			_, items, _ := strings.Cut(doc, "\n## Action items\n")
			items, _, _ = strings.Cut(items, "\n## ")
			if !strings.Contains(items, "\n"+rbActionItemsHeader+"\n") {
				t.Errorf("## Action items has no table with the header %s", rbActionItemsHeader)
			}
			for _, typ := range []string{"prevent", "mitigate", "detect", "process"} {
				if !strings.Contains(items, typ) {
					t.Errorf("## Action items does not explain the type %q", typ)
				}
			}
			for _, s := range []string{"blameless", "When to write one", "UTC", "error budget"} {
				if !strings.Contains(strings.ToLower(doc), strings.ToLower(s)) {
					t.Errorf("postmortem template does not mention %q", s)
				}
			}
			if strings.Contains(doc, "{{") || strings.Contains(doc, "<no value>") {
				t.Error("unrendered template text")
			}
			e2eutil.CheckMarkdownLinks(t, dir, "docs/postmortem-template.md", doc)
		})
	}
}
