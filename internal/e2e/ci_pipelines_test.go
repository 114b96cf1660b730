package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	yaml "go.yaml.in/yaml/v3"
)

// The CI pipelines of webapp 1.2.0 and newer: GitHub Actions workflows (actionlint with
// shellcheck, pinned actions, permissions, timeouts, deploy concurrency) and GitLab CI
// (GitLab's JSON schema, rules, pinned images, manual deploy with an environment).

// ciGitLabCILocal is the npm package whose tarball carries GitLab's CI JSON schema
// (src/schema/schema.json; later releases bundle it into JavaScript).
const (
	ciGitLabCILocal   = "gitlab-ci-local@4.55.0"
	ciGitLabSchemaTar = "package/src/schema/schema.json"
)

var ciWorkflowFiles = []string{"ci.yml", "deploy.yml", "load-test.yml"}

// ciVariant is one set of answers and a short name for it.
type ciVariant struct {
	name string
	set  map[string]string
}

// ciVariants crosses every backend, frontend and CI provider; the database and cache vary
// along (they change the compose secrets the pipelines create).
func ciVariants() []ciVariant {
	var out []ciVariant
	i := 0
	for _, ci := range []string{"github", "gitlab", "both"} {
		for _, backend := range []string{"go", "python", "node"} {
			for _, frontend := range []string{"react", "static", "none"} {
				set := map[string]string{"ci": ci, "backend": backend, "frontend": frontend}
				if i%2 == 1 {
					set["db"], set["cache"] = "mariadb", "redis"
				}
				i++
				out = append(out, ciVariant{name: fmt.Sprintf("%s-%s-%s", ci, backend, frontend), set: set})
			}
		}
	}
	return out
}

func TestCIPipelinesFiles(t *testing.T) {
	for _, v := range ciVariants() {
		t.Run(v.name, func(t *testing.T) {
			dir := generate(t, v.set)
			ci := v.set["ci"]
			for _, f := range ciWorkflowFiles {
				_, err := os.Stat(filepath.Join(dir, ".github", "workflows", f))
				if want := ci != "gitlab"; want != (err == nil) {
					t.Errorf(".github/workflows/%s generated = %v, want %v", f, err == nil, want)
				}
			}
			_, err := os.Stat(filepath.Join(dir, ".gitlab-ci.yml"))
			if want := ci != "github"; want != (err == nil) {
				t.Errorf(".gitlab-ci.yml generated = %v, want %v", err == nil, want)
			}
			if ci == "gitlab" {
				if _, err := os.Stat(filepath.Join(dir, ".github")); err == nil {
					t.Errorf(".github exists with ci=gitlab")
				}
			}
		})
	}
}

func TestCIPipelinesGitHub(t *testing.T) {
	actionlint := requireTool(t, "actionlint")
	shellcheck := requireTool(t, "shellcheck")
	ciActionlintRunsShellcheck(t, actionlint, shellcheck)
	for _, v := range ciVariants() {
		if v.set["ci"] == "gitlab" {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			dir := generate(t, v.set)
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

// ---- GitLab ----

var ciSchema struct {
	once sync.Once
	sch  *jsonschema.Schema
	err  error
	took time.Duration
}

// ciGitLabSchema compiles GitLab's CI schema from the gitlab-ci-local npm package, fetched
// once with `npm pack` into the shared npm cache's folder.
func ciGitLabSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	ciSchema.once.Do(func() {
		start := time.Now()
		ciSchema.sch, ciSchema.err = ciLoadGitLabSchema(t)
		ciSchema.took = time.Since(start)
	})
	if ciSchema.err != nil {
		t.Fatal(ciSchema.err)
	}
	t.Logf("GitLab CI schema (%s) ready in %s", ciGitLabCILocal, ciSchema.took.Round(time.Millisecond))
	return ciSchema.sch
}

func ciLoadGitLabSchema(t *testing.T) (*jsonschema.Schema, error) {
	cache := os.Getenv("OPSREADY_NPM_CACHE")
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		cache = filepath.Join(base, "opsready-e2e", "npm")
	}
	file := filepath.Join(filepath.Dir(cache), strings.ReplaceAll(ciGitLabCILocal, "@", "-"), "schema.json")
	raw, err := os.ReadFile(file)
	if err != nil {
		requireTool(t, "npm")
		tmp := t.TempDir()
		cmd := exec.Command("npm", "pack", ciGitLabCILocal, "--pack-destination", tmp, "--cache", cache,
			"--prefer-offline", "--silent")
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("npm pack %s: %v", ciGitLabCILocal, err)
		}
		tgz := filepath.Join(tmp, strings.TrimSpace(string(out)))
		if raw, err = ciUntarFile(tgz, ciGitLabSchemaTar); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(file, raw, 0o644); err != nil {
			return nil, err
		}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	c := jsonschema.NewCompiler()
	const id = "https://gitlab.com/.gitlab-ci.yml"
	if err := c.AddResource(id, doc); err != nil {
		return nil, err
	}
	return c.Compile(id)
}

func ciUntarFile(tgz, name string) ([]byte, error) {
	f, err := os.Open(tgz)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s: no %s", tgz, name)
		}
		if err != nil {
			return nil, err
		}
		if h.Name == name {
			return io.ReadAll(tr)
		}
	}
}

// ciJSONish converts YAML-decoded values to the types JSON decoding gives.
func ciJSONish(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = ciJSONish(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = ciJSONish(e)
		}
		return s
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	default:
		return v
	}
}

var ciGitLabGlobalKeys = map[string]bool{"default": true, "include": true, "stages": true,
	"variables": true, "workflow": true, "image": true, "services": true, "cache": true,
	"before_script": true, "after_script": true, "spec": true}

func TestCIPipelinesGitLab(t *testing.T) {
	sch := ciGitLabSchema(t)
	shellcheck := requireTool(t, "shellcheck")
	// The schema must reject what GitLab rejects, or a pass proves nothing.
	for _, bad := range []string{
		"job:\n  script: [make]\n  when: sometimes\n",
		"job:\n  script: [make]\n  rules:\n    - if: $X\n      when: later\n",
		"job:\n  script: [make]\n  environment: {name: production, action: deploy}\n",
		"job:\n  script: [make]\n  artifact: {paths: [x]}\n",
	} {
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(bad), &doc); err != nil {
			t.Fatal(err)
		}
		if sch.Validate(ciJSONish(doc)) == nil {
			t.Fatalf("GitLab's CI schema accepts an invalid configuration:\n%s", bad)
		}
	}
	for _, v := range ciVariants() {
		if v.set["ci"] == "github" {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			dir := generate(t, v.set)
			raw, err := os.ReadFile(filepath.Join(dir, ".gitlab-ci.yml"))
			if err != nil {
				t.Fatal(err)
			}
			ciCheckNoLatest(t, ".gitlab-ci.yml", raw)
			var doc map[string]any
			if err := yaml.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(ciJSONish(doc)); err != nil {
				t.Errorf(".gitlab-ci.yml does not match GitLab's CI schema: %v", err)
			}
			ciCheckGitLab(t, doc, v.set)
			ciShellcheckGitLab(t, shellcheck, doc)
		})
	}
}

// ciGitLabJob returns a job with its extends merged in (the job's own keys win).
func ciGitLabJob(doc map[string]any, name string) map[string]any {
	job := ciMap(doc[name])
	out := map[string]any{}
	var parents []string
	switch e := job["extends"].(type) {
	case string:
		parents = []string{e}
	case []any:
		for _, p := range e {
			parents = append(parents, fmt.Sprint(p))
		}
	}
	for _, p := range parents {
		for k, v := range ciGitLabJob(doc, p) {
			if k == "variables" {
				vars := ciMap(out["variables"])
				if vars == nil {
					vars = map[string]any{}
				}
				for vk, vv := range ciMap(v) {
					vars[vk] = vv
				}
				out[k] = vars
				continue
			}
			out[k] = v
		}
	}
	for k, v := range job {
		if k == "variables" && out["variables"] != nil {
			vars := ciMap(out["variables"])
			for vk, vv := range ciMap(v) {
				vars[vk] = vv
			}
			continue
		}
		out[k] = v
	}
	delete(out, "extends")
	return out
}

func ciImageName(v any) string {
	if m, ok := v.(map[string]any); ok {
		return fmt.Sprint(m["name"])
	}
	return fmt.Sprint(v)
}

var ciPinnedImage = regexp.MustCompile(`^[a-z0-9./_-]+:[A-Za-z0-9._-]*\d+\.\d+[A-Za-z0-9._-]*$`)

func ciCheckGitLab(t *testing.T, doc map[string]any, set map[string]string) {
	t.Helper()
	stages := fmt.Sprint(doc["stages"])
	if stages != "[lint test build smoke publish deploy load]" {
		t.Errorf("stages %s, want [lint test build smoke publish deploy load]", stages)
	}
	jobs := map[string]map[string]any{}
	for name := range doc {
		if ciGitLabGlobalKeys[name] || strings.HasPrefix(name, ".") {
			continue
		}
		jobs[name] = ciGitLabJob(doc, name)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if k == "only" || k == "except" {
					t.Errorf("%s: %s: use rules, not only/except", path, k)
				}
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk("", doc)
	if ciMap(doc["workflow"])["rules"] == nil {
		t.Errorf("workflow: rules missing")
	}
	stageJobs := map[string][]string{}
	for name, job := range jobs {
		stageJobs[fmt.Sprint(job["stage"])] = append(stageJobs[fmt.Sprint(job["stage"])], name)
		if job["rules"] == nil {
			t.Errorf("job %s: no rules", name)
		}
		if job["timeout"] == nil {
			t.Errorf("job %s: no timeout", name)
		}
		img := ciImageName(job["image"])
		if job["image"] == nil || !ciPinnedImage.MatchString(img) {
			t.Errorf("job %s: image %q is not pinned to a version", name, img)
		}
		svcs, _ := job["services"].([]any)
		for _, s := range svcs {
			if n := ciImageName(s); !ciPinnedImage.MatchString(n) {
				t.Errorf("job %s: service %q is not pinned to a version", name, n)
			}
		}
	}
	for _, st := range strings.Fields(strings.Trim(stages, "[]")) {
		if len(stageJobs[st]) == 0 {
			t.Errorf("stage %s has no job", st)
		}
	}
	script := func(job map[string]any) string {
		var b strings.Builder
		for _, k := range []string{"before_script", "script", "after_script"} {
			b.WriteString(strings.Join(ciFlatten(job[k]), "\n"))
			b.WriteString("\n")
		}
		return b.String()
	}
	all := ""
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range jobs {
			if !yield(n) {
				return
			}
		}
	}) {
		all += script(jobs[name])
	}
	for _, s := range []string{"shellcheck", "docker compose config -q", "promtool test rules", "amtool check-config",
		"amtool config routes test", "logrotate -d", "docker compose up -d", "--wait", "ops/smoke/smoke.sh",
		"docker compose down -v", "docker push", "make load PROFILE="} {
		if !strings.Contains(all, s) {
			t.Errorf(".gitlab-ci.yml does not run %q", s)
		}
	}
	backend := map[string]string{"go": "go test", "python": "python -m pytest", "node": "npm test"}[set["backend"]]
	if !strings.Contains(script(jobs["test-backend"]), backend) {
		t.Errorf("test-backend does not run %q", backend)
	}
	if fe, ok := jobs["test-frontend"]; ok != (set["frontend"] == "react") {
		t.Errorf("test-frontend exists %v with frontend %s", ok, set["frontend"])
	} else if ok && !strings.Contains(script(fe), "npm run build") {
		t.Errorf("test-frontend does not build")
	}
	// Build and publish: docker-in-docker, images $CI_REGISTRY_IMAGE/...:$CI_COMMIT_SHA.
	prefix := fmt.Sprint(ciMap(doc["variables"])["IMAGE_PREFIX"])
	if !strings.HasPrefix(prefix, "$CI_REGISTRY_IMAGE/") {
		t.Errorf("IMAGE_PREFIX %q, want $CI_REGISTRY_IMAGE/...", prefix)
	}
	for _, name := range []string{"build", "publish"} {
		job := jobs[name]
		if !strings.Contains(script(job), `$IMAGE_PREFIX-$COMPONENT:$CI_COMMIT_SHA`) {
			t.Errorf("job %s does not tag $IMAGE_PREFIX-$COMPONENT:$CI_COMMIT_SHA", name)
		}
		if !strings.Contains(fmt.Sprint(job["services"]), "-dind") {
			t.Errorf("job %s: no docker:dind service", name)
		}
	}
	if r := fmt.Sprint(jobs["publish"]["rules"]); !strings.Contains(r, "$CI_DEFAULT_BRANCH") {
		t.Errorf("publish rules %s, want the default branch only", r)
	}
	// Deploy: manual, environment production, one at a time, protected variables.
	dep := jobs["deploy"]
	if dep == nil {
		t.Fatal("no deploy job")
	}
	if env := ciMap(dep["environment"]); env["name"] != "production" {
		t.Errorf("deploy environment %v, want production", dep["environment"])
	}
	if dep["resource_group"] == nil {
		t.Errorf("deploy has no resource_group")
	}
	for _, r := range dep["rules"].([]any) {
		if w := ciMap(r)["when"]; w != "manual" && w != "never" {
			t.Errorf("deploy rule %v: want when: manual", r)
		}
	}
	ds := script(dep)
	for _, s := range []string{"$DEPLOY_HOST", "$DEPLOY_USER", "$DEPLOY_SSH_KEY", "StrictHostKeyChecking=yes",
		"docker compose -f compose.yaml -f compose.prod.yaml -f compose.monitoring.yaml -f compose.backup.yaml pull",
		"docker compose -f compose.yaml -f compose.prod.yaml -f compose.monitoring.yaml -f compose.backup.yaml up -d --wait",
		`"$CI_COMMIT_SHA"`, `TAG="$sha"`} {
		if !strings.Contains(ds, s) {
			t.Errorf("deploy does not run %q", s)
		}
	}
	// Load test: schedules (and by hand), keeps the k6 summary.
	load := jobs["load-test"]
	if r := fmt.Sprint(load["rules"]); !strings.Contains(r, `$CI_PIPELINE_SOURCE == "schedule"`) {
		t.Errorf("load-test rules %s, want schedules", r)
	}
	art := ciMap(load["artifacts"])
	if !strings.Contains(fmt.Sprint(art["paths"]), "ops/load/results/") || art["when"] != "always" {
		t.Errorf("load-test artifacts %v, want ops/load/results/ kept always", art)
	}
}

// ciFlatten flattens a GitLab script (a string, or nested lists of strings).
func ciFlatten(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, ciFlatten(e)...)
		}
		return out
	}
	return nil
}

// ciShellcheckGitLab runs shellcheck (POSIX sh: the job images' shells) on each job's
// before_script, script and after_script.
func ciShellcheckGitLab(t *testing.T, shellcheck string, doc map[string]any) {
	t.Helper()
	dir := t.TempDir()
	var files []string
	for name := range doc {
		if ciGitLabGlobalKeys[name] || strings.HasPrefix(name, ".") {
			continue
		}
		job := ciGitLabJob(doc, name)
		for _, k := range []string{"before_script", "script", "after_script"} {
			lines := ciFlatten(job[k])
			if len(lines) == 0 {
				continue
			}
			f := filepath.Join(dir, name+"."+k+".sh")
			if err := os.WriteFile(f, []byte("#!/bin/sh\n"+strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	sort.Strings(files)
	// GitLab runs job scripts with errexit: a failed cd stops the job (SC2164 is moot).
	cmd := exec.Command(shellcheck, append([]string{"--shell=sh", "--format=gcc", "--exclude=SC2164"}, files...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shellcheck of the GitLab job scripts: %v\n%s", err, bytes.ReplaceAll(out, []byte(dir+"/"), nil))
	}
}
