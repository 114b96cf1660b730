package adopt

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/opsready/opsready/internal/adopt"
	"github.com/opsready/opsready/internal/check"
	"github.com/opsready/opsready/internal/lock"
	"github.com/opsready/opsready/internal/project"
)

// The rules adopt claims to fix: after adopt, check may not report them (the others carry
// adopt's reason for leaving them).
var adoptFixes = []string{
	"svc-restart", "svc-log-rotation", "svc-memory-limit", "svc-cpu-limit", "svc-db-stop-grace",
	"repo-backup", "repo-restore-test", "repo-prometheus", "repo-alert-rules", "repo-alert-tests",
	"repo-alertmanager", "repo-runbooks", "repo-ci", "repo-smoke-test", "repo-host-logrotate",
	"repo-postmortem", "repo-acceptance",
}

// TestAdoptCorpus adopts every corpus project with defaults and checks what adopt promises:
// the team's files are byte for byte (and mode for mode) what they were, the merged model
// loads, every service got what it lacked, and check afterwards reports only what adopt says
// it leaves, each with the reason.
func TestAdoptCorpus(t *testing.T) {
	t.Parallel()
	for _, name := range corpusProjects(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := adoptCorpus(t, name, nil)
			after := treeHashes(t, a.Dir)
			for p, h := range a.Before {
				if after[p] != h {
					t.Errorf("the team's %s changed: %s -> %q", p, h, after[p])
				}
			}
			for p := range after {
				if _, theirs := a.Before[p]; !theirs && !planned(a.Result, p) {
					t.Errorf("%s is on disk but not in adopt's plan", p)
				}
			}
			rec := a.Plan.Record
			files := append(slices.Clone(rec.ComposeFiles), "compose.prod.yaml", "compose.monitoring.yaml", "compose.backup.yaml")
			p := loadMerged(t, a.Dir, files)
			checkInvariants(t, p, rec)

			r, err := check.Run(context.Background(), check.Options{Dir: a.Dir, Env: []string{}})
			if err != nil {
				t.Fatalf("check after adopt: %v", err)
			}
			if !slices.Equal(r.Files, files) {
				t.Errorf("check loaded %v, want the production files %v (from the lock)", r.Files, files)
			}
			for _, f := range r.Findings {
				if f.Waiver != nil {
					continue
				}
				if slices.Contains(adoptFixes, f.ID) {
					t.Errorf("after adopt: %s %s (%s:%d) is a finding adopt claims to fix: %s", f.ID, f.Service, f.File, f.Line, f.Why)
				}
				if f.AdoptLeft == "" || strings.Contains(f.AdoptLeft, "should have fixed") {
					t.Errorf("after adopt: %s %s has no reason why adopt left it (%q)", f.ID, f.Service, f.AdoptLeft)
				}
			}
			if r.Counts.Critical > 0 {
				t.Errorf("after adopt: %d critical findings", r.Counts.Critical)
			}
		})
	}
}

func planned(res *project.Adopted, p string) bool {
	for _, f := range res.Files {
		if f.Path == p {
			return true
		}
	}
	return false
}

// loadMerged loads the team's files with the ops layer as docker compose would, with every
// profile (the backup jobs have one) and the project's own .env.
func loadMerged(t testing.TB, dir string, files []string) *types.Project {
	t.Helper()
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(dir, f))
	}
	o, err := cli.NewProjectOptions(paths, cli.WithWorkingDirectory(dir), cli.WithEnv([]string{}),
		cli.WithDotEnv, cli.WithDefaultProfiles("backup", "restore"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := o.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("the team's files with the ops layer do not load: %v", err)
	}
	return p
}

// checkInvariants asserts that every service of the team's got what the record says adopt
// adds, from the merged model (not from the record alone), and that the ops services reach
// the stores they watch.
func checkInvariants(t testing.TB, p *types.Project, rec *lock.Adopt) {
	t.Helper()
	for _, s := range rec.Services {
		svc, ok := p.Services[s.Name]
		if !ok {
			t.Errorf("service %s is gone from the merged model", s.Name)
			continue
		}
		if s.Role == "job" {
			continue
		}
		if svc.Restart == "" || svc.Restart == types.RestartPolicyNo {
			t.Errorf("%s: no restart policy after adopt", s.Name)
		}
		if svc.Logging == nil || (svc.Logging.Driver == "json-file" || svc.Logging.Driver == "") && svc.Logging.Options["max-size"] == "" {
			t.Errorf("%s: logs not rotated after adopt (%+v)", s.Name, svc.Logging)
		}
		if svc.MemLimit == 0 && (svc.Deploy == nil || svc.Deploy.Resources.Limits == nil || svc.Deploy.Resources.Limits.MemoryBytes == 0) {
			t.Errorf("%s: no memory limit after adopt", s.Name)
		}
		if (s.Role == "db" || s.Role == "cache") && (svc.StopGracePeriod == nil || time.Duration(*svc.StopGracePeriod) < 30*time.Second) {
			t.Errorf("%s: a data store without a stop grace period of 30 s or more", s.Name)
		}
		if len(s.Healthcheck) > 0 && (svc.HealthCheck == nil || !slices.Equal(svc.HealthCheck.Test, s.Healthcheck)) {
			t.Errorf("%s: healthcheck %v was to be added, the model has %+v", s.Name, s.Healthcheck, svc.HealthCheck)
		}
		for _, dep := range s.DependsHealthy {
			if c := svc.DependsOn[dep].Condition; c != types.ServiceConditionHealthy {
				t.Errorf("%s: depends on %s with condition %q, want service_healthy", s.Name, dep, c)
			}
		}
	}
	ops := map[string]bool{}
	for _, n := range []string{"prometheus", "alertmanager", "grafana", "node-exporter", "cadvisor", "blackbox", "backup", "restore"} {
		if _, ok := p.Services[n]; !ok {
			t.Errorf("ops service %s missing", n)
		}
		ops[n] = true
	}
	reach := func(svc, target string, nets []string) {
		s, ok := p.Services[svc]
		if !ok {
			t.Errorf("%s missing (it watches %s)", svc, target)
			return
		}
		for _, n := range nets {
			if _, ok := s.Networks[n]; !ok {
				t.Errorf("%s is not on %s's network %s", svc, target, n)
			}
		}
		if _, ok := s.DependsOn[target]; !ok {
			t.Errorf("%s does not wait for %s", svc, target)
		}
	}
	if db := rec.DB; db != nil {
		reach("db-exporter", db.Service, db.Networks)
		reach("backup", db.Service, db.Networks)
		if p.Services["backup"].Image == "" {
			t.Errorf("backup has no image")
		}
	} else if _, ok := p.Services["db-exporter"]; ok {
		t.Errorf("a db-exporter for a project without a database")
	}
	if c := rec.Cache; c != nil {
		reach("redis-exporter", c.Service, c.Networks)
	}
	for _, v := range rec.DataVolumes {
		want := "/var/volumes/" + v.Name
		found := false
		for _, m := range p.Services["backup"].Volumes {
			found = found || m.Source == v.Name && strings.HasSuffix(m.Target, want) && m.ReadOnly
		}
		if !found {
			t.Errorf("backup does not mount the data volume %s read-only at …%s", v.Name, want)
		}
	}
}

// TestAdoptRefusesAndWritesNothing: a second adopt, a directory without compose files, a
// compose file with a syntax error: each an input error, and the tree is as it was.
func TestAdoptRefusesAndWritesNothing(t *testing.T) {
	t.Parallel()
	a := adoptCorpus(t, "nginx-golang-postgres", nil)
	before := treeHashes(t, a.Dir)
	_, err := project.Adopt(project.AdoptOptions{Dir: a.Dir, Detected: a.Plan.Record, Fixed: a.Plan.Fixed, Defaults: true, Version: "test"})
	var ie project.InputError
	if !errors.As(err, &ie) || !errors.Is(err, project.ErrAlreadyOpsready) {
		t.Errorf("second adopt: %v, want an input error saying it is an opsready project", err)
	}
	if after := treeHashes(t, a.Dir); !sameTree(before, after) {
		t.Errorf("a refused adopt changed the tree")
	}

	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "README.md"), []byte("no compose here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = check.LoadProject(context.Background(), empty, nil, nil, nil)
	var ce check.InputError
	if !errors.As(err, &ce) || !errors.Is(err, check.ErrNoComposeFile) {
		t.Errorf("no compose file: %v", err)
	}

	bad := copyCorpus(t, "flask-redis")
	if err := os.WriteFile(filepath.Join(bad, "compose.yaml"), []byte("services:\n  web:\n    image: [unclosed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = check.LoadProject(context.Background(), bad, nil, nil, nil)
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "compose.yaml") {
		t.Errorf("syntax error: %v, want an input error naming compose.yaml", err)
	}
}

func sameTree(a, b map[string]string) bool { return maps.Equal(a, b) }

// TestAdoptNameClash: the team has files where adopt writes (compose.prod.yaml, opsready.mk,
// a runbook): theirs stay, adopt's go beside them under free names, the lock records the
// names, check loads the renamed compose file, and the dry run shows the same plan.
func TestAdoptNameClash(t *testing.T) {
	t.Parallel()
	dir := copyCorpus(t, "nginx-golang-postgres")
	theirs := map[string]string{
		"compose.prod.yaml":              "services:\n  backend:\n    environment:\n      MODE: prod\n",
		"opsready.mk":                    "# the team's own\n",
		"docs/runbooks/postgres-down.md": "# our own runbook\n",
	}
	for p, c := range theirs {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// The team's compose.prod.yaml is not loaded by default (no -f): adopt sees compose.yaml.
	p, files, err := check.LoadProject(context.Background(), dir, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	det, err := detectFor(p, dir, files)
	if err != nil {
		t.Fatal(err)
	}
	before := treeHashes(t, dir)
	opts := project.AdoptOptions{Dir: dir, Detected: det.Record, Fixed: det.Fixed, Defaults: true, Version: "test", Local: det.Local, DryRun: true}
	dry, err := project.Adopt(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !sameTree(before, treeHashes(t, dir)) {
		t.Fatal("--dry-run wrote")
	}
	opts.DryRun = false
	res, err := project.Adopt(opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"compose.prod.yaml":              "compose.prod.opsready.yaml",
		"opsready.mk":                    "opsready.opsready.mk",
		"docs/runbooks/postgres-down.md": "docs/runbooks/postgres-down.opsready.md",
	}
	for from, to := range want {
		if res.Renamed[from] != to || dry.Renamed[from] != to {
			t.Errorf("rename of %s: %q (dry run %q), want %q", from, res.Renamed[from], dry.Renamed[from], to)
		}
		if _, err := os.Stat(filepath.Join(dir, to)); err != nil {
			t.Errorf("%s not written: %v", to, err)
		}
	}
	after := treeHashes(t, dir)
	for p, h := range before {
		if after[p] != h {
			t.Errorf("the team's %s changed", p)
		}
	}
	lk, err := lock.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	for from, to := range want {
		if lk.Adopt.Renames[from] != to {
			t.Errorf("lock: rename %s -> %q, want %q", from, lk.Adopt.Renames[from], to)
		}
		if _, ok := lk.Files[to]; !ok {
			t.Errorf("lock does not record %s", to)
		}
	}
	r, err := check.Run(context.Background(), check.Options{Dir: dir, Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.Files, "compose.prod.opsready.yaml") || slices.Contains(r.Files, "compose.prod.yaml") {
		t.Errorf("check loaded %v, want adopt's renamed compose.prod.opsready.yaml and not the team's compose.prod.yaml", r.Files)
	}
	st, err := project.ReadStatus(dir)
	if err != nil {
		t.Fatalf("status of an adopted project: %v", err)
	}
	if st.Version == "" {
		t.Errorf("status: %+v", st)
	}
}

// TestAdoptOpsTargets: adopt.OpsTargets, which decides the ops- prefix, lists exactly the
// targets opsready.mk defines.
func TestAdoptOpsTargets(t *testing.T) {
	t.Parallel()
	a := adoptCorpus(t, "django", nil)
	b, err := os.ReadFile(filepath.Join(a.Dir, "opsready.mk"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(string(b), "\n") {
		if name, _, ok := strings.Cut(l, ": ## "); ok && !strings.ContainsAny(name, " \t$") {
			got = append(got, name)
		}
	}
	want := slices.Clone(adopt.OpsTargets)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("opsready.mk defines %v, adopt.OpsTargets lists %v", got, want)
	}
}
