package e2eutil

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/opsready/opsready/blueprints"
)

// The registry and tag the compose tests deploy: REGISTRY and TAG are required in production.
const (
	TestRegistry = "registry.example.test/team"
	TestTag      = "1.2.3"
	// TestBackupTag is the backup image's tag (derived from ops/backup's content by CI).
	TestBackupTag = "b-0123456789ab"
)

// ProdEnv is the environment production needs: REGISTRY, TAG and the backup image's tag.
func ProdEnv() map[string]string {
	return map[string]string{"REGISTRY": TestRegistry, "TAG": TestTag, "BACKUP_TAG": TestBackupTag}
}

// MonitoringFiles are the compose files of production with monitoring.
var MonitoringFiles = []string{"compose.yaml", "compose.prod.yaml", "compose.monitoring.yaml"}

// LoadCompose loads the compose files (relative to dir) as compose-go, the loader of docker
// compose, does, hermetically: the environment is env alone and no .env is read unless
// envFile names one.
func LoadCompose(dir string, env map[string]string, envFile string, files ...string) (*types.Project, error) {
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(dir, f))
	}
	fns := []cli.ProjectOptionsFn{cli.WithWorkingDirectory(dir), cli.WithEnv(environ), cli.WithName("e2e")}
	if envFile != "" {
		fns = append(fns, cli.WithEnvFiles(envFile), cli.WithDotEnv)
	}
	opts, err := cli.NewProjectOptions(paths, fns...)
	if err != nil {
		return nil, err // the callers name the files
	}
	return opts.LoadProject(context.Background())
}

// ExternalSecrets are the secrets of the newest webapp that `opsready new` creates empty
// for the team to fill in.
func ExternalSecrets(t testing.TB) map[string]bool {
	t.Helper()
	bp, err := blueprints.Embedded().Open("webapp", "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range bp.Secrets {
		if s.External {
			out[s.Name] = true
		}
	}
	return out
}

// CheckDeps asserts that service s depends on exactly want (service -> condition).
func CheckDeps(t testing.TB, where string, s types.ServiceConfig, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for dep, d := range s.DependsOn {
		got[dep] = d.Condition
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: depends_on %v, want %v", where, got, want)
	}
}

// ImageTag returns the tag of an image reference (a digest counts as pinned).
func ImageTag(image string) (string, bool) {
	if image == "" || strings.Contains(image, "$") {
		return "", false
	}
	if _, digest, ok := strings.Cut(image, "@"); ok {
		return digest, strings.HasPrefix(digest, "sha256:")
	}
	last := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	return tag, ok && tag != ""
}

// HealthTest returns the healthcheck command of s, or "" without one.
func HealthTest(s types.ServiceConfig) string {
	if s.HealthCheck == nil {
		return ""
	}
	return strings.Join(s.HealthCheck.Test, " ")
}

// SecretNames returns the sources of the secrets s uses, sorted.
func SecretNames(s types.ServiceConfig) []string {
	var names []string
	for _, ref := range s.Secrets {
		names = append(names, ref.Source)
	}
	slices.Sort(names)
	return names
}

// HasVolumeMount reports whether s mounts the named volume.
func HasVolumeMount(s types.ServiceConfig, volume string) bool {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source == volume {
			return true
		}
	}
	return false
}

// BindMount returns the bind mount of s with the given target.
func BindMount(s types.ServiceConfig, target string) (types.ServiceVolumeConfig, bool) {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v, true
		}
	}
	return types.ServiceVolumeConfig{}, false
}

// MemoryBytes converts a memory_limit answer (512m, 1g) to bytes as docker does (binary units).
func MemoryBytes(t testing.TB, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil {
		t.Fatalf("memory limit %q: %v", s, err)
	}
	switch s[len(s)-1] {
	case 'm':
		return n << 20
	case 'g':
		return n << 30
	}
	t.Fatalf("memory limit %q: unknown unit", s)
	return 0
}

// Deref returns *p, or "" for nil.
func Deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
