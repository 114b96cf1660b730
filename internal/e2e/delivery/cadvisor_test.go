package delivery

// The backup jobs' image is built by CI, never on the production host: compose.backup.yaml
// names the image CI publishes (REGISTRY and TAG, as compose.prod.yaml), no service that runs
// it has a build section, both pipelines build and publish it from ops/backup like the
// application's images, and the deploys check it was published and pull it. (The file name
// groups the review fixes of issue 13 part 6; the cAdvisor half is internal/e2e/monitoring.)

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
	yaml "go.yaml.in/yaml/v3"
)

// cdvFiles are the compose files of production with monitoring and backups.
var cdvFiles = []string{"compose.yaml", "compose.prod.yaml", "compose.monitoring.yaml", "compose.backup.yaml"}

// cdvVariants cover both databases and backup methods (PostgreSQL's physical method runs the
// db service itself on the backup image) with and without the replica, and both CI providers.
func cdvVariants() []map[string]string {
	var out []map[string]string
	for _, db := range []string{"postgres", "mariadb"} {
		for _, method := range []string{"logical", "physical"} {
			for _, replica := range []string{"none", "streaming"} {
				out = append(out, map[string]string{
					"name": "cdv-app", "db": db, "db_backup_method": method, "db_replica": replica, "ci": "both",
				})
			}
		}
	}
	return out
}

func TestCdvBackupImageFromCI(t *testing.T) {
	for _, set := range cdvVariants() {
		t.Run(set["db"]+"-"+set["db_backup_method"]+"-"+set["db_replica"], func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, set)
			want := e2eutil.TestRegistry + "/" + set["name"] + "-backup:" + e2eutil.TestBackupTag
			cdvCheckCompose(t, dir, want)
			cdvCheckNoHostBuildClaims(t, dir)
			cdvCheckGitHub(t, dir)
			cdvCheckGitLab(t, dir)
		})
	}
}

// cdvCheckCompose loads the four production files as docker compose does and checks that the
// backup and restore jobs run the published image and that nothing running it is built here.
func cdvCheckCompose(t *testing.T, dir, want string) {
	t.Helper()
	p, err := e2eutil.LoadCompose(dir, e2eutil.ProdEnv(), "", cdvFiles...)
	if err != nil {
		t.Fatalf("load %s: %v", strings.Join(cdvFiles, " + "), err)
	}
	for name, s := range p.Services {
		cdvCheckService(t, name, s.Image, s.Build != nil, s.PullPolicy, want)
	}
	for name, s := range p.DisabledServices {
		cdvCheckService(t, name, s.Image, s.Build != nil, s.PullPolicy, want)
	}
	for _, job := range []string{"backup", "restore"} {
		s, ok := p.DisabledServices[job]
		if !ok {
			t.Errorf("compose.backup.yaml: no %s service behind a profile (profiled services %v)", job, slices.Sorted(maps.Keys(p.DisabledServices)))
			continue
		}
		if s.Image != want {
			t.Errorf("%s: image %q, want the one CI publishes, %q", job, s.Image, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ops", "backup", "Dockerfile")); err != nil {
		t.Errorf("ops/backup/Dockerfile, what CI builds the image from: %v", err)
	}
}

// cdvCheckService fails for a service that runs the backup image and would build it.
func cdvCheckService(t *testing.T, name, image string, build bool, pull, want string) {
	t.Helper()
	if image != want {
		return
	}
	if build || pull == "build" {
		t.Errorf("service %s runs the backup image %s but builds it on the host (build section %v, pull_policy %q)", name, image, build, pull)
	}
}

// cdvCheckNoHostBuildClaims: no generated file still says the image is built on the host.
func cdvCheckNoHostBuildClaims(t *testing.T, dir string) {
	t.Helper()
	for _, rel := range []string{"compose.backup.yaml", "docs/restore-plan.md", "docs/runbooks/restore-test-stale.md", "docs/runbooks/restore-test-missing.md", "README.md"} {
		doc := e2eutil.ReadFile(t, filepath.Join(dir, rel))
		for _, claim := range []string{"built on the host", "nothing to pull", "pull_policy: build", "does not build"} {
			if strings.Contains(doc, claim) {
				t.Errorf("%s still says %q", rel, claim)
			}
		}
	}
}

// cdvYAML reads a generated YAML file.
func cdvYAML(t *testing.T, dir, rel string) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(e2eutil.ReadFile(t, filepath.Join(dir, rel))), &doc); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return doc
}

// cdvCheckGitHub: ci.yml builds and publishes the backup image from ops/backup, deploy.yml
// checks it was published and pulls it.
func cdvCheckGitHub(t *testing.T, dir string) {
	t.Helper()
	jobs := ciMap(cdvYAML(t, dir, ".github/workflows/ci.yml")["jobs"])
	for _, id := range []string{"build", "publish"} {
		job := ciMap(jobs[id])
		m := ciMap(ciMap(job["strategy"])["matrix"])
		var found bool
		for _, inc := range cdvList(m["include"]) {
			e := ciMap(inc)
			if e["component"] == "backup" {
				found = true
				if e["context"] != "ops/backup" {
					t.Errorf("ci.yml: %s: backup built from %v, want ops/backup", id, e["context"])
				}
			}
		}
		if !found {
			t.Errorf("ci.yml: %s matrix %v has no backup image", id, m)
		}
		_, _, steps := ciSteps(job)
		var context string
		for _, s := range steps {
			if u, _ := s["uses"].(string); strings.HasPrefix(u, "docker/build-push-action@") {
				context = fmt.Sprint(ciMap(s["with"])["context"])
			}
		}
		if context != "${{ matrix.context || matrix.component }}" {
			t.Errorf("ci.yml: %s builds from %q, want the matrix's context (ops/backup for the backup image)", id, context)
		}
	}
	runs, _, _ := ciSteps(ciMap(ciMap(cdvYAML(t, dir, ".github/workflows/deploy.yml")["jobs"])["deploy"]))
	all := strings.Join(runs, "\n")
	if !strings.Contains(all, "for component in backend") || !strings.Contains(all, " backup; do") {
		t.Errorf("deploy.yml does not check that the backup image of the commit was published:\n%s", all)
	}
	if !strings.Contains(all, "COMPOSE_PROFILES=backup docker compose -f "+strings.Join(cdvFiles, " -f ")+" pull") {
		t.Errorf("deploy.yml does not pull the backup image (COMPOSE_PROFILES=backup ... pull)")
	}
}

// cdvCheckGitLab: the build and publish jobs' matrices build the backup image from ops/backup,
// and the deploy pulls it.
func cdvCheckGitLab(t *testing.T, dir string) {
	t.Helper()
	doc := cdvYAML(t, dir, ".gitlab-ci.yml")
	for _, id := range []string{"build", "publish"} {
		job := ciMap(doc[id])
		var found bool
		for _, e := range cdvList(ciMap(job["parallel"])["matrix"]) {
			if v := ciMap(e); v["COMPONENT"] == "backup" {
				found = true
				if v["CONTEXT"] != "ops/backup" {
					t.Errorf(".gitlab-ci.yml: %s: backup built from %v, want ops/backup", id, v["CONTEXT"])
				}
			}
		}
		if !found {
			t.Errorf(".gitlab-ci.yml: %s matrix %v has no backup image", id, ciMap(job["parallel"])["matrix"])
		}
		script := strings.Join(ciFlatten(job["script"]), "\n")
		if !strings.Contains(script, `"${CONTEXT:-$COMPONENT}"`) {
			t.Errorf(".gitlab-ci.yml: %s does not build from ${CONTEXT:-$COMPONENT}:\n%s", id, script)
		}
	}
	deploy := strings.Join(ciFlatten(ciMap(doc["deploy"])["script"]), "\n")
	if !strings.Contains(deploy, "COMPOSE_PROFILES=backup docker compose -f "+strings.Join(cdvFiles, " -f ")+" pull") {
		t.Errorf(".gitlab-ci.yml: deploy does not pull the backup image (COMPOSE_PROFILES=backup ... pull)")
	}
}

// cdvList is v as a list, or nil.
func cdvList(v any) []any {
	l, _ := v.([]any)
	return l
}
