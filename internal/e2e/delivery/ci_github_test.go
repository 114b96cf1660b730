package delivery

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
	yaml "go.yaml.in/yaml/v3"
)

// The GitHub Actions workflows: actionlint with shellcheck, actions pinned to a commit,
// permissions, timeouts and the deploy and load-test workflows.

func TestCIPipelinesGitHub(t *testing.T) {
	actionlint := e2eutil.RequireTool(t, "actionlint")
	shellcheck := e2eutil.RequireTool(t, "shellcheck")
	ciActionlintRunsShellcheck(t, actionlint, shellcheck)
	for _, v := range ciVariants() {
		if v.set["ci"] == "gitlab" {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, v.set)
			var files []string
			for _, f := range ciWorkflowFiles {
				files = append(files, filepath.Join(".github", "workflows", f))
			}
			start := time.Now()
			cmd := exec.Command(actionlint, append([]string{"-color=false", "-shellcheck=" + shellcheck}, files...)...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("actionlint: %v\n%s", err, out)
			}
			t.Logf("actionlint (with shellcheck) on %d workflows: %s", len(files), time.Since(start).Round(time.Millisecond))

			wf := map[string]map[string]any{}
			for _, f := range ciWorkflowFiles {
				raw, err := os.ReadFile(filepath.Join(dir, ".github", "workflows", f))
				if err != nil {
					t.Fatal(err)
				}
				ciCheckUses(t, f, raw)
				ciCheckNoLatest(t, f, raw)
				var doc map[string]any
				if err := yaml.Unmarshal(raw, &doc); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				wf[f] = doc
				ciCheckGitHubCommon(t, f, doc)
			}
			ciCheckGitHubCI(t, wf["ci.yml"], v.set)
			ciCheckGitHubDeploy(t, wf["deploy.yml"])
			ciCheckGitHubLoad(t, wf["load-test.yml"])
		})
	}
}

// ciActionlintRunsShellcheck proves that actionlint reports shellcheck findings in run
// scripts here, so a clean actionlint run means clean scripts.
func ciActionlintRunsShellcheck(t *testing.T, actionlint, shellcheck string) {
	t.Helper()
	dir := t.TempDir()
	bad := "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    timeout-minutes: 5\n    steps:\n      - run: rm -rf $DIR/cache\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(actionlint, "-color=false", "-shellcheck="+shellcheck, "bad.yml")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "SC2086") {
		t.Fatalf("actionlint does not report shellcheck findings (want SC2086): %v\n%s", err, out)
	}
}

var (
	ciUsesLine = regexp.MustCompile(`^\s*(?:-\s+)?uses:\s*(\S+)(.*)$`)
	ciUsesRef  = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_./-]+)?@[0-9a-f]{40}$`)
	ciVersion  = regexp.MustCompile(`^\s+# v\d+\.\d+\.\d+(\s|$)`)
)

// ciCheckUses asserts that every `uses:` is owner/repo@<full commit SHA> # vX.Y.Z, and that
// the line scan saw every uses the YAML holds.
func ciCheckUses(t *testing.T, name string, raw []byte) {
	t.Helper()
	lines := 0
	for i, l := range strings.Split(string(raw), "\n") {
		m := ciUsesLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		lines++
		if !ciUsesRef.MatchString(m[1]) {
			t.Errorf("%s:%d: uses %s: want owner/repo@<40 hex commit SHA>", name, i+1, m[1])
		}
		if !ciVersion.MatchString(m[2]) {
			t.Errorf("%s:%d: uses %s: want a `# vX.Y.Z` comment after the SHA, got %q", name, i+1, m[1], m[2])
		}
	}
	var doc struct {
		Jobs map[string]struct {
			Uses  string           `yaml:"uses"`
			Steps []map[string]any `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	n := 0
	for _, j := range doc.Jobs {
		if j.Uses != "" {
			n++
		}
		for _, s := range j.Steps {
			if _, ok := s["uses"]; ok {
				n++
			}
		}
	}
	if n != lines {
		t.Errorf("%s: %d uses in the YAML, %d found on `uses:` lines", name, n, lines)
	}
}

var (
	ciLatest   = regexp.MustCompile(`(?i)[\w./-]+(:|@)latest\b`)
	ciImageRef = regexp.MustCompile(`\b((?:[a-z0-9.-]+/)*(?:prometheus|alertmanager|actionlint|k6|shellcheck-alpine|alpine|golang|python|node|traefik)):([A-Za-z0-9._-]+)`)
)

// ciCheckNoLatest asserts no image or tool reference uses `latest` and every tool image
// named in the file has a tag with a version number.
func ciCheckNoLatest(t *testing.T, name string, raw []byte) {
	t.Helper()
	for i, l := range strings.Split(string(raw), "\n") {
		if m := ciLatest.FindString(l); m != "" {
			t.Errorf("%s:%d: %q: never latest", name, i+1, m)
		}
		for _, m := range ciImageRef.FindAllStringSubmatch(l, -1) {
			if !regexp.MustCompile(`\d+\.\d+`).MatchString(m[2]) {
				t.Errorf("%s:%d: image %s:%s: want a version tag", name, i+1, m[1], m[2])
			}
		}
	}
}

func ciMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// ciOn returns the trigger names of a workflow (yaml.v3 decodes the key `on` as a string).
func ciOn(doc map[string]any) []string {
	var out []string
	switch on := doc["on"].(type) {
	case string:
		out = append(out, on)
	case []any:
		for _, e := range on {
			out = append(out, fmt.Sprint(e))
		}
	case map[string]any:
		for k := range on {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// ciCheckGitHubCommon: read-only top-level permissions, write only for packages in publish
// jobs, a timeout on every job.
func ciCheckGitHubCommon(t *testing.T, name string, doc map[string]any) {
	t.Helper()
	perms, ok := doc["permissions"].(map[string]any)
	if !ok {
		t.Errorf("%s: top-level permissions missing or not a map: %v", name, doc["permissions"])
	}
	for k, v := range perms {
		if v != "read" && v != "none" {
			t.Errorf("%s: top-level permissions %s: %v, want read or none", name, k, v)
		}
	}
	jobs := ciMap(doc["jobs"])
	if len(jobs) == 0 {
		t.Fatalf("%s: no jobs", name)
	}
	for id, j := range jobs {
		job := ciMap(j)
		switch tm := job["timeout-minutes"].(type) {
		case int:
			if tm < 1 || tm > 120 {
				t.Errorf("%s: job %s: timeout-minutes %d, want 1..120", name, id, tm)
			}
		default:
			t.Errorf("%s: job %s: timeout-minutes missing or not a number: %v", name, id, job["timeout-minutes"])
		}
		for k, v := range ciMap(job["permissions"]) {
			if v == "write" && !(k == "packages" && id == "publish") {
				t.Errorf("%s: job %s: permissions %s: write (only publish may write packages)", name, id, k)
			}
		}
		if p, ok := job["permissions"].(string); ok {
			t.Errorf("%s: job %s: permissions %q: list them one by one", name, id, p)
		}
	}
}

// ciSteps returns the run scripts and uses of a job's steps, joined for searching.
func ciSteps(job map[string]any) (runs []string, uses []string, steps []map[string]any) {
	for _, s := range job["steps"].([]any) {
		step := ciMap(s)
		steps = append(steps, step)
		if r, ok := step["run"].(string); ok {
			runs = append(runs, r)
		}
		if u, ok := step["uses"].(string); ok {
			uses = append(uses, u)
		}
	}
	return runs, uses, steps
}

func ciCheckGitHubCI(t *testing.T, doc map[string]any, set map[string]string) {
	t.Helper()
	if got := ciOn(doc); !slices.Equal(got, []string{"pull_request", "push"}) {
		t.Errorf("ci.yml: on %v, want push and pull_request", got)
	}
	jobs := ciMap(doc["jobs"])
	want := []string{"build", "lint", "publish", "smoke", "test-backend"}
	if set["frontend"] == "react" {
		want = append(want, "test-frontend")
	}
	sort.Strings(want)
	var got []string
	for id := range jobs {
		got = append(got, id)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("ci.yml: jobs %v, want %v", got, want)
	}
	script := func(id string) string {
		j := ciMap(jobs[id])
		if j == nil {
			return ""
		}
		runs, uses, _ := ciSteps(j)
		return strings.Join(runs, "\n") + "\n" + strings.Join(uses, "\n")
	}
	lint := script("lint")
	for _, s := range []string{"shellcheck", "rhysd/actionlint:", "docker compose config -q",
		"docker compose -f compose.yaml -f compose.prod.yaml -f compose.monitoring.yaml -f compose.backup.yaml config -q",
		"promtool", "check rules", "test rules", "check config", "prom/alertmanager:", "ops/monitoring/test-routes.sh",
		"logrotate -d"} {
		if !strings.Contains(lint, s) {
			t.Errorf("ci.yml: lint does not run %q", s)
		}
	}
	backend := script("test-backend")
	wantTest := map[string]string{"go": "go test", "python": "python -m pytest", "node": "npm test"}[set["backend"]]
	if !strings.Contains(backend, wantTest) {
		t.Errorf("ci.yml: test-backend does not run %q:\n%s", wantTest, backend)
	}
	if set["frontend"] == "react" {
		fe := script("test-frontend")
		for _, s := range []string{"npm ci", "npm test", "npm run build"} {
			if !strings.Contains(fe, s) {
				t.Errorf("ci.yml: test-frontend does not run %q", s)
			}
		}
	}
	for _, id := range []string{"build", "publish"} {
		if !strings.Contains(script(id), "docker/build-push-action@") {
			t.Errorf("ci.yml: %s does not use docker/build-push-action", id)
		}
		m := ciMap(ciMap(ciMap(jobs[id])["strategy"])["matrix"])
		comps := fmt.Sprint(m["component"])
		if wantFE := set["frontend"] != "none"; strings.Contains(comps, "frontend") != wantFE || !strings.Contains(comps, "backend") {
			t.Errorf("ci.yml: %s matrix components %s (frontend %s)", id, comps, set["frontend"])
		}
	}
	_, _, smokeSteps := ciSteps(ciMap(jobs["smoke"]))
	var up, smoke, down bool
	for _, s := range smokeSteps {
		r, _ := s["run"].(string)
		switch {
		case strings.Contains(r, "docker compose up -d") && strings.Contains(r, "--wait"):
			up = true
		case strings.Contains(r, "make smoke"):
			smoke = up
		case strings.Contains(r, "docker compose down -v"):
			down = smoke && s["if"] == "always()"
		}
	}
	if !up || !smoke || !down {
		t.Errorf("ci.yml: smoke wants `docker compose up -d --wait`, then `make smoke`, then always `docker compose down -v`: up %v smoke %v down %v", up, smoke, down)
	}
	pub := ciMap(jobs["publish"])
	if cond, _ := pub["if"].(string); !strings.Contains(cond, "default_branch") || !strings.Contains(cond, "push") {
		t.Errorf("ci.yml: publish runs on %q, want pushes to the default branch only", cond)
	}
	if p := ciMap(pub["permissions"]); p["packages"] != "write" {
		t.Errorf("ci.yml: publish permissions %v, want packages: write", p)
	}
	pubScript := script("publish")
	for _, s := range []string{"ghcr.io/", "${GITHUB_SHA}", "push: true"} {
		if !strings.Contains(pubScript+fmt.Sprint(pub["steps"]), strings.TrimPrefix(s, "push: ")) {
			t.Errorf("ci.yml: publish lacks %q", s)
		}
	}
}

func ciCheckGitHubDeploy(t *testing.T, doc map[string]any) {
	t.Helper()
	if got := ciOn(doc); !slices.Equal(got, []string{"workflow_dispatch"}) {
		t.Errorf("deploy.yml: on %v, want workflow_dispatch only", got)
	}
	c := ciMap(doc["concurrency"])
	if c["group"] == nil || c["cancel-in-progress"] != false {
		t.Errorf("deploy.yml: concurrency %v, want a group and cancel-in-progress: false", doc["concurrency"])
	}
	for id, j := range ciMap(doc["jobs"]) {
		job := ciMap(j)
		env := job["environment"]
		if m, ok := env.(map[string]any); ok {
			env = m["name"]
		}
		if env != "production" {
			t.Errorf("deploy.yml: job %s: environment %v, want production", id, job["environment"])
		}
		runs, _, _ := ciSteps(job)
		all := strings.Join(runs, "\n")
		for _, s := range []string{"DEPLOY_HOST", "DEPLOY_USER", "ssh ", "StrictHostKeyChecking=yes",
			"docker compose -f compose.yaml -f compose.prod.yaml -f compose.monitoring.yaml -f compose.backup.yaml pull",
			"docker compose -f compose.yaml -f compose.prod.yaml -f compose.monitoring.yaml -f compose.backup.yaml up -d --wait",
			`TAG="$sha"`} {
			if !strings.Contains(all, s) {
				t.Errorf("deploy.yml: job %s does not run %q", id, s)
			}
		}
		if !strings.Contains(fmt.Sprint(job), "secrets.DEPLOY_SSH_KEY") {
			t.Errorf("deploy.yml: job %s does not use the secret DEPLOY_SSH_KEY", id)
		}
	}
}

func ciCheckGitHubLoad(t *testing.T, doc map[string]any) {
	t.Helper()
	if got := ciOn(doc); !slices.Equal(got, []string{"schedule", "workflow_dispatch"}) {
		t.Errorf("load-test.yml: on %v, want schedule and workflow_dispatch", got)
	}
	var load, upload bool
	for _, j := range ciMap(doc["jobs"]) {
		_, _, steps := ciSteps(ciMap(j))
		for _, s := range steps {
			if r, _ := s["run"].(string); strings.Contains(r, "make load PROFILE=") {
				load = true
			}
			if u, _ := s["uses"].(string); strings.HasPrefix(u, "actions/upload-artifact@") {
				p := fmt.Sprint(ciMap(s["with"])["path"])
				upload = strings.Contains(p, "ops/load/results/") && s["if"] == "always()"
			}
		}
	}
	if !load || !upload {
		t.Errorf("load-test.yml: `make load PROFILE=...` %v, always uploads ops/load/results %v", load, upload)
	}
}
