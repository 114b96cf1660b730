package delivery

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
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
			dir := e2eutil.Generate(t, v.set)
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
