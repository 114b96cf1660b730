package check

import (
	"bytes"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// repoFile is one text file of the repository, as the repository-level checks see it.
type repoFile struct {
	path string // relative, slash-separated
	text string
}

const (
	maxRepoFiles = 20000
	maxFileSize  = 1 << 20
)

// skipDirs are folders that hold other people's code or build output, never the project's
// operations files.
var skipDirs = map[string]bool{".git": true, "node_modules": true, "vendor": true, ".venv": true, "venv": true,
	"__pycache__": true, "dist": true, "target": true, ".terraform": true, ".cache": true}

// readRepo reads the repository's text files (binary and large files skipped).
func readRepo(dir string) ([]repoFile, error) {
	var out []repoFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable corners do not stop the check
		}
		if d.IsDir() {
			if p != dir && skipDirs[d.Name()] {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || len(out) >= maxRepoFiles {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.Size() > maxFileSize {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || bytes.IndexByte(b, 0) >= 0 {
			return nil
		}
		out = append(out, repoFile{path: relTo(dir, p), text: string(b)})
		return nil
	})
	return out, err
}

func isDoc(p string) bool {
	switch strings.ToLower(path.Ext(p)) {
	case ".md", ".markdown", ".txt", ".rst", ".adoc", ".html":
		return true
	}
	return false
}

func isYAML(p string) bool {
	e := strings.ToLower(path.Ext(p))
	return e == ".yml" || e == ".yaml"
}

var (
	backupCmd = lazyRegexp(`\b(pg_dump|pg_dumpall|pg_basebackup|pgbackrest|mysqldump|mariadb-dump|mariadb-backup|mariabackup|xtrabackup|mongodump|borg\s+create|duplicity|restic\b[^\n]*\bbackup)\b|redis-cli\b[^\n]*(--rdb|\bbgsave\b)`)
	// backupImages are well-known images that run scheduled backups as a compose service.
	backupImages  = lazyRegexp(`(postgres-backup|mysql-backup|db-backup|volume-backup|backup-local|restic|borgmatic|kopia)`)
	restoreCmd    = lazyRegexp(`\b(pg_restore|mongorestore|borg\s+extract|restic\b[^\n]*\brestore|pgbackrest\b[^\n]*\brestore|mariadb-backup\b[^\n]*--(prepare|copy-back)|mariabackup\b[^\n]*--(prepare|copy-back)|xtrabackup\b[^\n]*--(prepare|copy-back))\b|\b(psql|mysql|mariadb)\b[^\n]*<`)
	restoreTest   = lazyRegexp(`(?i)restore[-_ ]?test|verify[-_ ]?restore|test[-_ ]?restore`)
	ruleGroups    = lazyRegexp(`(?m)^groups:\s*$`)
	alertRule     = lazyRegexp(`(?m)^\s*-?\s*alert:\s*\S`)
	ruleTests     = lazyRegexp(`(?m)^rule_files:`)
	testsKey      = lazyRegexp(`(?m)^tests:`)
	scrapeConfigs = lazyRegexp(`(?m)^scrape_configs:`)
	amRoute       = lazyRegexp(`(?m)^route:`)
	amReceivers   = lazyRegexp(`(?m)^receivers:`)
	mdHeading     = lazyRegexp(`(?m)^#{1,3} \S`)
	ciContent     = lazyRegexp(`(?m)^\s*(jobs|stages|steps|script|pipeline|pipelines|workflows)\s*[:{(]|pipeline\s*\{|node\s*[({]`)
	loadTool      = lazyRegexp(`["']k6/http["']|from locust import|\bjmeterTestPlan\b|io\.gatling|\bvegeta\s+attack\b|(?m:^\s*scenarios:)|\bhey\s+-(n|z)\b|\bwrk\s+-[tcd]`)
	httpCall      = lazyRegexp(`\b(curl|wget)\b|k6/http|requests\.get|http\.Get|fetch\(`)
	postmortemHd  = lazyRegexp(`(?i)post-?mortem|incident (review|report)`)
	rootCause     = lazyRegexp(`(?i)root cause`)
	actionItems   = lazyRegexp(`(?i)action items?`)
	rotateN       = lazyRegexp(`(?m)^\s*rotate\s+\d+`)
	rotateWhen    = lazyRegexp(`(?m)^\s*(daily|weekly|monthly|yearly|hourly|size\s+\S+|maxsize\s+\S+)\s*$`)
	// checklistItem is a checkbox, a numbered item or a table row (separator rows aside).
	checklistItem = lazyRegexp(`(?m)^\s*([-*] \[[ xX]\] |\d+\. |\|\s*[^-\s|])`)
	acceptanceHd  = lazyRegexp(`(?i)(production[- ]acceptance|production[- ]readiness|acceptance checklist|go-live|launch checklist|operational readiness)`)
)

// ciPaths are the pipeline definitions of the common CI systems.
func isCIPath(p string) bool {
	switch {
	case strings.HasPrefix(p, ".github/workflows/") && isYAML(p),
		p == ".gitlab-ci.yml", p == ".gitlab-ci.yaml", p == "Jenkinsfile", p == ".circleci/config.yml",
		p == "azure-pipelines.yml", p == "bitbucket-pipelines.yml", p == ".drone.yml", p == ".woodpecker.yml",
		strings.HasPrefix(p, ".woodpecker/") && isYAML(p), p == ".travis.yml", p == ".buildkite/pipeline.yml",
		strings.HasPrefix(p, ".forgejo/workflows/") && isYAML(p), strings.HasPrefix(p, ".gitea/workflows/") && isYAML(p):
		return true
	}
	return false
}

// hasData reports whether the project keeps state that needs backing up: a data store
// (caches such as memcached aside) or a named volume mounted by a service.
func hasData(p *types.Project) bool {
	for _, s := range p.Services {
		if k := storeKind(s.Image); k != "" && k != "memcached" {
			return true
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source != "" {
				return true
			}
		}
	}
	return false
}

// repoSignals is what the repository holds, each as the first file that shows it.
type repoSignals struct {
	backup, restoreTest, prometheus, alertRules, alertTests, alertmanager string
	runbooks, ci, smoke, load, logrotate, postmortem, acceptance          string
}

func scanRepo(files []repoFile, p *types.Project) repoSignals {
	var s repoSignals
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	for _, s2 := range p.Services {
		if backupImages.MatchString(s2.Image) {
			set(&s.backup, "service "+s2.Name)
		}
	}
	for _, f := range files {
		p, t := f.path, f.text
		lower := strings.ToLower(p)
		base := path.Base(lower)
		if !isDoc(p) {
			if backupCmd.MatchString(t) {
				set(&s.backup, p)
			}
			if restoreCmd.MatchString(t) && (restoreTest.MatchString(lower) || restoreTest.MatchString(t)) {
				set(&s.restoreTest, p)
			}
			if loadTool.MatchString(t) && (strings.Contains(lower, "load") || strings.Contains(lower, "perf") ||
				strings.Contains(lower, "stress") || strings.Contains(t, "k6/http") || strings.Contains(t, "locust") ||
				strings.HasSuffix(lower, ".jmx")) {
				set(&s.load, p)
			}
			if strings.Contains(base, "smoke") && httpCall.MatchString(t) {
				set(&s.smoke, p)
			}
			if rotateN.MatchString(t) && rotateWhen.MatchString(t) && strings.Contains(t, "{") {
				set(&s.logrotate, p)
			}
		}
		if isYAML(p) {
			if ruleGroups.MatchString(t) && alertRule.MatchString(t) {
				set(&s.alertRules, p)
			}
			if ruleTests.MatchString(t) && testsKey.MatchString(t) {
				set(&s.alertTests, p)
			}
			if scrapeConfigs.MatchString(t) {
				set(&s.prometheus, p)
			}
			if amRoute.MatchString(t) && amReceivers.MatchString(t) {
				set(&s.alertmanager, p)
			}
		}
		if isCIPath(p) && ciContent.MatchString(t) {
			set(&s.ci, p)
		}
		if strings.HasSuffix(lower, ".md") {
			dir := path.Dir(lower)
			if (path.Base(dir) == "runbooks" || path.Base(dir) == "runbook" || strings.Contains(base, "runbook")) &&
				mdHeading.MatchString(t) && len(t) > 200 {
				set(&s.runbooks, p)
			}
			if postmortemHd.MatchString(t) && rootCause.MatchString(t) && actionItems.MatchString(t) {
				set(&s.postmortem, p)
			}
			if acceptanceHd.MatchString(t) && len(checklistItem.FindAllStringIndex(t, -1)) >= 6 {
				set(&s.acceptance, p)
			}
		}
	}
	return s
}

// checkRepo runs the repository-level rules.
func (c *checker) checkRepo(files []repoFile) {
	s := scanRepo(files, c.l.project)
	at := c.l.yaml.first()
	miss := func(id, have, why string) {
		if have == "" {
			c.add(id, "", at, why, adoptFix)
		}
	}
	if hasData(c.l.project) {
		miss("repo-backup", s.backup, "the project keeps data and no script, job or service backs it up (looked for pg_dump, mariadb-dump, restic, … outside the docs)")
		if s.backup != "" {
			miss("repo-restore-test", s.restoreTest, "backups ("+s.backup+") but no restore test: nothing restores them and checks the result")
		}
	}
	miss("repo-prometheus", s.prometheus, "no Prometheus configuration (a YAML file with scrape_configs)")
	miss("repo-alert-rules", s.alertRules, "no Prometheus alert rules (a YAML file with groups of alert rules)")
	if s.alertRules != "" {
		miss("repo-alert-tests", s.alertTests, "alert rules ("+s.alertRules+") but no promtool rule tests (rule_files + tests)")
	}
	miss("repo-alertmanager", s.alertmanager, "no Alertmanager configuration (a YAML file with route and receivers)")
	miss("repo-runbooks", s.runbooks, "no runbooks (Markdown pages in a runbooks folder)")
	miss("repo-ci", s.ci, "no CI pipeline (GitHub Actions, GitLab CI, Jenkins, …)")
	miss("repo-smoke-test", s.smoke, "no smoke test (a smoke script that calls the health endpoints)")
	miss("repo-load-test", s.load, "no load test (k6, Locust, JMeter, Gatling, …)")
	miss("repo-host-logrotate", s.logrotate, "no logrotate configuration for log files on the host or in bind mounts")
	miss("repo-postmortem", s.postmortem, "no postmortem template (a page with root causes and action items)")
	miss("repo-acceptance", s.acceptance, "no production-acceptance checklist (a page of checklist items)")
}
