package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// brfProject is a generated project whose backup scripts run with a temporary BACKUP_DIR,
// off-site repository, textfile and log directory.
type brfProject struct {
	dir string            // the generated project
	tmp string            // per-test scratch space outside the project
	env map[string]string // settings over the filtered environment
}

// brfNewProject generates a project and points its backup settings into temp dirs. An empty
// offsite leaves BACKUP_OFFSITE_REPOSITORY empty (no off-site copy, faster).
func brfNewProject(t *testing.T, set map[string]string, offsite bool) *brfProject {
	t.Helper()
	for _, tool := range []string{"restic", "jq", "flock", "sha256sum"} {
		e2eutil.RequireTool(t, tool)
	}
	p := &brfProject{dir: e2eutil.Generate(t, set), tmp: e2eutil.FastTempDir(t)}
	if err := os.MkdirAll(filepath.Join(p.tmp, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	p.env = map[string]string{
		"BACKUP_DIR":                filepath.Join(p.tmp, "backups"),
		"BACKUP_OFFSITE_REPOSITORY": "",
		"BACKUP_TEXTFILE_DIR":       filepath.Join(p.tmp, "textfile"),
		"BACKUP_LOG_DIR":            filepath.Join(p.tmp, "log"),
		"TMPDIR":                    filepath.Join(p.tmp, "tmp"),
		"TZ":                        "UTC",
	}
	if offsite {
		p.env["BACKUP_OFFSITE_REPOSITORY"] = filepath.Join(p.tmp, "offsite")
	}
	return p
}

// cheapRepos creates the project's primary repository, and its off-site one when it has
// one, with bspRepo (cheap to open), before the scripts first run: they find them initialised.
func (p *brfProject) cheapRepos(t *testing.T) {
	t.Helper()
	pw := filepath.Join(p.dir, "secrets", "restic_password")
	must(t, os.MkdirAll(p.env["BACKUP_DIR"], 0o755))
	bspRepo(t, p.primary(), pw)
	if p.offsite() != "" {
		bspRepo(t, p.offsite(), pw)
	}
}

// environ is the process environment without anything that configures the backups, plus
// the project's settings and extra.
func (p *brfProject) environ(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		skip := k == "TZ" || k == "REDISCLI_AUTH" || k == "TMPDIR"
		for _, prefix := range []string{"BACKUP_", "REDIS_", "RESTIC_", "RESTORE_TEST_", "PG", "MARIADB_"} {
			skip = skip || strings.HasPrefix(k, prefix)
		}
		if !skip {
			env = append(env, kv)
		}
	}
	for k, v := range p.env {
		if _, over := extra[k]; !over {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// run runs a generated script (path relative to the project) and returns its combined
// output and error.
func (p *brfProject) run(t *testing.T, extra map[string]string, script string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(p.dir, script), args...)
	cmd.Dir = p.dir
	cmd.Env = p.environ(extra)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustRun runs a script that has to succeed and logs how long it took.
func (p *brfProject) mustRun(t *testing.T, extra map[string]string, script string, args ...string) string {
	t.Helper()
	start := time.Now()
	out, err := p.run(t, extra, script, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
	t.Logf("%s %s: %s", script, strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out
}

func (p *brfProject) primary() string { return filepath.Join(p.env["BACKUP_DIR"], "restic") }
func (p *brfProject) offsite() string { return p.env["BACKUP_OFFSITE_REPOSITORY"] }
func (p *brfProject) textfile(name string) string {
	return filepath.Join(p.env["BACKUP_TEXTFILE_DIR"], name)
}

// restic runs restic on repo with the project's password.
func (p *brfProject) restic(t *testing.T, repo string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("restic", append([]string{"--cache-dir", filepath.Join(p.tmp, "restic-cache")}, args...)...)
	cmd.Env = append(p.environ(nil), "RESTIC_REPOSITORY="+repo,
		"RESTIC_PASSWORD_FILE="+filepath.Join(p.dir, "secrets", "restic_password"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("restic %v on %s: %v\n%s", args, repo, err, stderr.String())
	}
	return out
}

// brfSnapshot is what restic snapshots --json says about a snapshot.
type brfSnapshot struct {
	ID    string    `json:"id"`
	Time  time.Time `json:"time"`
	Host  string    `json:"hostname"`
	Paths []string  `json:"paths"`
	Tags  []string  `json:"tags"`
}

// snapshots lists the snapshots of repo having tag (all when empty), oldest first.
func (p *brfProject) snapshots(t *testing.T, repo, tag string) []brfSnapshot {
	t.Helper()
	args := []string{"snapshots", "--json"}
	if tag != "" {
		args = append(args, "--tag", tag)
	}
	var list []brfSnapshot
	if err := json.Unmarshal(p.restic(t, repo, args...), &list); err != nil {
		t.Fatalf("restic snapshots: %v", err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Time.Before(list[j].Time) })
	return list
}

// manifest reads manifest.json of the newest snapshot of store in the primary repository.
func (p *brfProject) manifest(t *testing.T, store string) map[string]any {
	t.Helper()
	list := p.snapshots(t, p.primary(), "store="+store)
	if len(list) == 0 {
		t.Fatalf("no %s snapshot in the primary repository", store)
	}
	newest := list[len(list)-1]
	b := p.restic(t, p.primary(), "dump", newest.ID, filepath.Join(newest.Paths[0], "manifest.json"))
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest.json of %s: %v\n%s", store, err, b)
	}
	return m
}

// brfSample is one sample of a Prometheus text file.
type brfSample struct {
	labels map[string]string
	value  float64
}

// brfParseProm parses a textfile-collector file: every sample must have a HELP and a TYPE
// line before it; it returns the samples by metric name.
func brfParseProm(t *testing.T, path string) map[string][]brfSample {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("metrics file: %v", err)
	}
	help, typ := map[string]bool{}, map[string]bool{}
	out := map[string][]brfSample{}
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, _, _ := strings.Cut(rest, " ")
			help[name] = true
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, kind, _ := strings.Cut(rest, " ")
			if kind != "gauge" && kind != "counter" {
				t.Errorf("%s:%d: type %q", path, i+1, kind)
			}
			typ[name] = true
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("%s:%d: not a sample: %q", path, i+1, line)
		}
		name, labels, _ := strings.Cut(series, "{")
		s := brfSample{labels: map[string]string{}}
		if labels != "" {
			if !strings.HasSuffix(labels, "}") {
				t.Fatalf("%s:%d: labels not closed: %q", path, i+1, line)
			}
			for _, kv := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
				k, v, ok := strings.Cut(kv, "=")
				uq, err := strconv.Unquote(v)
				if !ok || err != nil {
					t.Fatalf("%s:%d: bad label %q", path, i+1, kv)
				}
				s.labels[k] = uq
			}
		}
		if s.value, err = strconv.ParseFloat(value, 64); err != nil {
			t.Fatalf("%s:%d: value %q: %v", path, i+1, value, err)
		}
		if !help[name] || !typ[name] {
			t.Errorf("%s:%d: %s has no HELP or TYPE line before it", path, i+1, name)
		}
		out[name] = append(out[name], s)
	}
	return out
}

// brfCheckBackupMetrics checks backup_<store>_<kind>.prom: the three metrics, one sample
// each with store and kind labels, finished within [from, to], and the size.
func brfCheckBackupMetrics(t *testing.T, p *brfProject, store, kind string, from, to time.Time, minSize float64) map[string]float64 {
	t.Helper()
	m := brfParseProm(t, p.textfile(fmt.Sprintf("backup_%s_%s.prom", store, kind)))
	got := map[string]float64{}
	for _, name := range []string{"backup_last_success_timestamp_seconds", "backup_last_duration_seconds", "backup_last_size_bytes"} {
		s := m[name]
		if len(s) != 1 {
			t.Fatalf("%s: %d samples, want 1", name, len(s))
		}
		if s[0].labels["store"] != store || s[0].labels["kind"] != kind || len(s[0].labels) != 2 {
			t.Errorf("%s labels %v, want store=%q kind=%q", name, s[0].labels, store, kind)
		}
		got[name] = s[0].value
	}
	if ts := got["backup_last_success_timestamp_seconds"]; ts < float64(from.Unix()) || ts > float64(to.Unix()+1) {
		t.Errorf("backup_last_success_timestamp_seconds %v outside the run [%d, %d]", ts, from.Unix(), to.Unix())
	}
	if d := got["backup_last_duration_seconds"]; d < 0 || d > to.Sub(from).Seconds()+1 {
		t.Errorf("backup_last_duration_seconds %v, the run took %s", d, to.Sub(from))
	}
	if got["backup_last_size_bytes"] < minSize {
		t.Errorf("backup_last_size_bytes %v, want at least %v", got["backup_last_size_bytes"], minSize)
	}
	return got
}

// brfRestoreResult returns restore_test_last_result of store.
func brfRestoreResult(t *testing.T, p *brfProject, store string) float64 {
	t.Helper()
	s := brfParseProm(t, p.textfile("restore_test_result_"+store+".prom"))["restore_test_last_result"]
	if len(s) != 1 || s[0].labels["store"] != store {
		t.Fatalf("restore_test_last_result of %s: %v", store, s)
	}
	return s[0].value
}

// brfLastLogLine returns the last line of restore-test.log.
func brfLastLogLine(t *testing.T, p *brfProject) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.env["BACKUP_LOG_DIR"], "restore-test.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// brfDataFiles lists the pack files of a restic repository.
func brfDataFiles(t *testing.T, repo string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(repo, "data"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out[path] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// brfCorruptNew damages every pack of repo that is not in before (the packs the newest
// backup added): bytes flipped throughout, the size kept, as bit rot does. (Truncated packs
// fail the same way, but restic 0.14 retries short reads for about 45 s before giving up.)
func brfCorruptNew(t *testing.T, repo string, before map[string]bool) {
	t.Helper()
	n := 0
	for path := range brfDataFiles(t, repo) {
		if before[path] {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(b); i += 97 {
			b[i] ^= 0xff
		}
		// Pack files are read-only in a restic repository.
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("the newest backup added no pack to the off-site repository")
	}
	t.Logf("corrupted %d pack(s) of the newest snapshot in %s", n, repo)
}
