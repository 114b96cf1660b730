package delivery

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

	"github.com/opsready/opsready/internal/e2e/e2eutil"
	"github.com/santhosh-tekuri/jsonschema/v6"
	yaml "go.yaml.in/yaml/v3"
)

// The GitLab pipeline: GitLab's JSON schema (from the gitlab-ci-local package), rules,
// pinned images, shellcheck of the scripts and the manual deploy with an environment.

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
	cache := e2eutil.NpmCache()
	file := filepath.Join(filepath.Dir(cache), strings.ReplaceAll(ciGitLabCILocal, "@", "-"), "schema.json")
	raw, err := os.ReadFile(file)
	if err != nil {
		e2eutil.RequireTool(t, "npm")
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
	shellcheck := e2eutil.RequireTool(t, "shellcheck")
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
			dir := e2eutil.Generate(t, v.set)
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
