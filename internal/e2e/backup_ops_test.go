package e2e

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// The backup operations tests check everything around the backup scripts of webapp 1.3.0, in
// trees generated for each database, backup method, cache and off-site answer, with the
// schedule, objectives and limits varied between cases so that a hard-coded value cannot pass:
//   - compose.backup.yaml as compose-go loads it with the other three production files: the
//     one-shot backup and restore jobs (profiles, restart "no", the image built from
//     ops/backup/Dockerfile FROM the db service's image, the mounts at the host's paths, the
//     data volumes read-only for the backup job), WAL archiving of the db service for
//     PostgreSQL with pgBackRest;
//   - the systemd units (`systemd-analyze verify`) and the cron file: the times they fire in a
//     week, from `systemd-analyze calendar` and from the cron fields, against the times the
//     answers call for; the commands they run, executed with a stand-in for docker;
//   - the Makefile's backup targets, and the files store backed up and restore-tested for real
//     through them (plain-host mode): restore-test.log, docs/backup-policy.md left unchanged, and
//     ops/acceptance/check.sh reading the log, rotated copies included;
//   - docs/backup-policy.md (a row per store, no restore-test marker, whether the schedule
//     meets the RPO) and docs/restore-plan.md (a restore command per store, the anchors the
//     policy links to, the off-site repository);
//   - the backup alert rules: BackupMissing covers every store, files included (promtool).

// bopsCase is one answer set of the backup operations tests.
type bopsCase struct {
	name, db, method, cache, offsite string
	backupTime, weekday              string
	incrHours, rpo                   int
	memory, cpus                     string
}

func (c bopsCase) String() string {
	return fmt.Sprintf("%s-%s-%s-%s", c.db, c.method, c.cache, c.offsite)
}

func (c bopsCase) deployDir() string { return "/opt/" + c.name + "_deploy" }

func (c bopsCase) offsitePath() string { return "/mnt/bops-offsite/" + c.name }

func (c bopsCase) set() map[string]string {
	m := map[string]string{
		"name": c.name, "domain": c.name + ".example.test", "db": c.db, "cache": c.cache,
		"db_backup_method": c.method, "offsite": c.offsite, "backup_time": c.backupTime,
		"backup_full_weekday": c.weekday, "rpo_hours": strconv.Itoa(c.rpo), "rto_hours": "3",
		"deploy_dir": c.deployDir(), "memory_limit": c.memory, "cpu_limit": c.cpus,
		"log_max_size": "7m", "log_max_file": "4", "backup_key_custodian": "keys@" + c.name + ".example.test",
		"retention_daily": "9", "retention_weekly": "3", "retention_monthly": "11",
	}
	if c.method == "physical" {
		m["backup_incr_hours"] = strconv.Itoa(c.incrHours)
	}
	switch c.offsite {
	case "local":
		m["offsite_path"] = c.offsitePath()
	case "s3":
		m["offsite_s3_url"] = "s3:https://objects.example.test/" + c.name + "-bak"
	case "sftp":
		m["offsite_sftp"] = "bak@vault.example.test:/srv/bak/" + c.name
	}
	return m
}

// stores are the data stores the case backs up, as BACKUP_STORES names them.
func (c bopsCase) stores() []string {
	s := []string{c.db}
	if c.cache == "redis" {
		s = append(s, "redis")
	}
	return append(s, "files")
}

func (c bopsCase) pitr() bool { return c.db == "postgres" && c.method == "physical" }

// bopsCases cover both databases with both methods, with and without Redis, and every off-site
// answer; times cross midnight (prune, restore test) and weekdays roll over.
func bopsCases() []bopsCase {
	return []bopsCase{
		{"bops-a", "postgres", "logical", "none", "local", "02:30", "Sun", 0, 24, "512m", "1.0"},
		{"bops-b", "postgres", "logical", "redis", "s3", "23:45", "Sat", 0, 24, "2g", "0.5"},
		{"bops-c", "postgres", "physical", "none", "sftp", "00:05", "Mon", 1, 1, "768m", "2"},
		{"bops-d", "postgres", "physical", "redis", "none", "22:10", "Sun", 5, 1, "1536m", "1.5"},
		{"bops-e", "mariadb", "logical", "none", "none", "13:00", "Wed", 0, 12, "256m", "0.25"},
		{"bops-f", "mariadb", "logical", "redis", "local", "04:20", "Tue", 0, 48, "1g", "1.0"},
		{"bops-g", "mariadb", "physical", "none", "s3", "06:59", "Thu", 12, 24, "3g", "2"},
		{"bops-h", "mariadb", "physical", "redis", "local", "21:30", "Fri", 3, 2, "512m", "1.0"},
	}
}

// bopsComposeFiles are the production compose files, in the order every job names them.
var bopsComposeFiles = []string{"compose.yaml", "compose.prod.yaml", "compose.monitoring.yaml", "compose.backup.yaml"}

// bopsLoad loads the four production files hermetically, with the given profiles active.
func bopsLoad(dir string, env map[string]string, profiles ...string) (*types.Project, error) {
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	var files []string
	for _, f := range bopsComposeFiles {
		files = append(files, filepath.Join(dir, f))
	}
	opts, err := cli.NewProjectOptions(files, cli.WithWorkingDirectory(dir), cli.WithEnv(environ),
		cli.WithName("e2e"), cli.WithProfiles(profiles))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// bopsMount finds the mount of s with the given target.
func bopsMount(s types.ServiceConfig, target string) (types.ServiceVolumeConfig, bool) {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v, true
		}
	}
	return types.ServiceVolumeConfig{}, false
}

// bopsWantMount asserts a mount: its type, source (absolute for binds), target and mode.
func bopsWantMount(t *testing.T, where string, s types.ServiceConfig, typ, source, target string, readOnly bool) {
	t.Helper()
	v, ok := bopsMount(s, target)
	if !ok {
		t.Errorf("%s: nothing mounted at %s", where, target)
		return
	}
	if v.Type != typ || v.Source != source || v.ReadOnly != readOnly {
		t.Errorf("%s: mount at %s is %s %s read-only=%v, want %s %s read-only=%v", where, target, v.Type, v.Source, v.ReadOnly, typ, source, readOnly)
	}
}

func bopsReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBackupOpsCompose(t *testing.T) {
	for _, c := range bopsCases() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := generate(t, c.set())
			env := map[string]string{"REGISTRY": testRegistry, "TAG": testTag}

			// Without the profiles (what `up` sees) the jobs are not services to start.
			p, err := bopsLoad(dir, env)
			if err != nil {
				t.Fatalf("load the four production files: %v", err)
			}
			for _, job := range []string{"backup", "restore"} {
				if _, ok := p.Services[job]; ok {
					t.Errorf("%s is active without its profile: `up` would start it", job)
				}
				if _, ok := p.DisabledServices[job]; !ok {
					t.Errorf("no %s service in compose.backup.yaml", job)
				}
			}

			// BACKUP_KIND set in the environment of `docker compose run` reaches the job.
			env["BACKUP_KIND"] = "incr"
			p, err = bopsLoad(dir, env, "backup", "restore")
			if err != nil {
				t.Fatalf("load with the backup and restore profiles: %v", err)
			}
			bopsCheckJobs(t, c, dir, p)
			bopsCheckDB(t, c, dir, p)
			bopsCheckDockerfile(t, c, dir, env)

			// The random secrets never reach the file.
			raw := bopsReadFile(t, filepath.Join(dir, "compose.backup.yaml"))
			for name, v := range readSecrets(t, dir) {
				if strings.Contains(raw, v) {
					t.Errorf("compose.backup.yaml contains the value of secrets/%s", name)
				}
			}
		})
	}
}

// bopsCheckJobs asserts the backup and restore services.
func bopsCheckJobs(t *testing.T, c bopsCase, dir string, p *types.Project) {
	t.Helper()
	deploy := c.deployDir()
	datadir := map[string]string{"postgres": "/var/lib/postgresql/data", "mariadb": "/var/lib/mysql"}[c.db]
	tag := map[string]string{"postgres": "17.6-bookworm", "mariadb": "11.4.8"}[c.db]
	for _, job := range []string{"backup", "restore"} {
		s, ok := p.Services[job]
		if !ok {
			t.Fatalf("service %s is missing with its profile active", job)
		}
		where := "service " + job
		if !slices.Equal(s.Profiles, []string{job}) {
			t.Errorf("%s: profiles %v, want [%s]", where, s.Profiles, job)
		}
		if s.Restart != "no" {
			t.Errorf("%s: restart %q, want \"no\" (a one-shot job)", where, s.Restart)
		}
		if s.HealthCheck == nil || !s.HealthCheck.Disable {
			t.Errorf("%s: healthcheck %+v, want none (disabled: a one-shot job)", where, s.HealthCheck)
		}
		if want := c.name + "-backup:" + tag; s.Image != want {
			t.Errorf("%s: image %q, want %q", where, s.Image, want)
		}
		if s.Build == nil || s.Build.Context != filepath.Join(dir, "ops", "backup") || s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s: build %+v, want ops/backup/Dockerfile", where, s.Build)
		} else if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s: %v", where, err)
		}
		if s.PullPolicy != "build" {
			t.Errorf("%s: pull_policy %q, want build (nothing to pull)", where, s.PullPolicy)
		}
		wantCmd := map[string]string{"backup": "ops/backup/backup.sh", "restore": "ops/backup/list.sh"}[job]
		if !slices.Equal(s.Command, []string{wantCmd}) {
			t.Errorf("%s: command %q, want [%s] (never the database image's server)", where, s.Command, wantCmd)
		} else if fi, err := os.Stat(filepath.Join(dir, wantCmd)); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s: %s is not an executable of the project: %v", where, wantCmd, err)
		}
		if s.WorkingDir != deploy {
			t.Errorf("%s: working_dir %q, want the deploy dir %s", where, s.WorkingDir, deploy)
		}
		if s.Logging == nil || s.Logging.Driver != "json-file" || s.Logging.Options["max-size"] != "7m" || s.Logging.Options["max-file"] != "4" {
			t.Errorf("%s: logging %+v, want json-file 7m x 4 from the answers", where, s.Logging)
		}
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil {
			t.Errorf("%s: no resource limits", where)
		} else {
			lim := s.Deploy.Resources.Limits
			wantCPUs, _ := strconv.ParseFloat(c.cpus, 32)
			if float32(lim.NanoCPUs) != float32(wantCPUs) {
				t.Errorf("%s: cpus %v, want %s", where, lim.NanoCPUs, c.cpus)
			}
			if want := max(memoryBytes(t, c.memory), 1<<30); int64(lim.MemoryBytes) != want {
				t.Errorf("%s: memory %d, want %d (the answer, at least 1 GiB)", where, lim.MemoryBytes, want)
			}
		}
		if v := s.Environment["BACKUP_KIND"]; v == nil || *v != "incr" {
			t.Errorf("%s: BACKUP_KIND %v, want it passed through from the environment (incr)", where, deref(v))
		}
		for k := range s.Environment {
			if strings.Contains(k, "PASSWORD") && !strings.HasSuffix(k, "_FILE") {
				t.Errorf("%s: %s set directly", where, k)
			}
		}
		if c.offsite == "local" {
			v, ok := bopsMount(s, c.offsitePath())
			if !ok || v.Type != types.VolumeTypeBind || v.Source != c.offsitePath() || v.ReadOnly || v.Bind == nil || bool(v.Bind.CreateHostPath) {
				t.Errorf("%s: off-site directory mount %+v, want %s read-write, never created by docker", where, v, c.offsitePath())
			}
		} else if _, ok := bopsMount(s, c.offsitePath()); ok {
			t.Errorf("%s: mounts %s with offsite=%s", where, c.offsitePath(), c.offsite)
		}
		bopsWantMount(t, where, s, types.VolumeTypeBind, "/etc/localtime", "/etc/localtime", true)
		if c.cache == "redis" {
			bopsWantMount(t, where, s, types.VolumeTypeVolume, "cache-data", "/data", job == "backup")
			if v := s.Environment["REDIS_DATA_DIR"]; deref(v) != "/data" {
				t.Errorf("%s: REDIS_DATA_DIR %q, want /data (the cache-data volume)", where, deref(v))
			}
		} else if _, ok := bopsMount(s, "/data"); ok {
			t.Errorf("%s: mounts /data without a cache", where)
		}
		if c.method == "physical" {
			bopsWantMount(t, where, s, types.VolumeTypeVolume, "db-data", datadir, job == "backup")
		} else if _, ok := bopsMount(s, datadir); ok {
			t.Errorf("%s: mounts the data directory with logical backups", where)
		}
		if c.pitr() {
			bopsWantMount(t, where, s, types.VolumeTypeVolume, "pg-socket", "/var/run/postgresql", false)
		}
	}

	backup, restore := p.Services["backup"], p.Services["restore"]
	// The backup job: the project read-only at its host path, what it writes read-write.
	bopsWantMount(t, "service backup", backup, types.VolumeTypeBind, dir, deploy, true)
	for _, sub := range []string{"var/backups", "var/lib/node-exporter/textfile", "var/log/ops"} {
		bopsWantMount(t, "service backup", backup, types.VolumeTypeBind, filepath.Join(dir, sub), deploy+"/"+sub, false)
	}
	// Results never go into tracked files (a deploy resets those): docs/ stays read-only.
	if m, ok := bopsMount(backup, deploy+"/docs"); ok {
		t.Errorf("service backup: docs/ mounted writable again (%s): the jobs must not edit tracked files", m.Source)
	}
	wantDeps := map[string]string{"db": types.ServiceConditionHealthy}
	if c.cache == "redis" {
		wantDeps["cache"] = types.ServiceConditionHealthy
	}
	checkDeps(t, "service backup", backup, wantDeps)
	// The restore job: the project writable, nothing started for it.
	bopsWantMount(t, "service restore", restore, types.VolumeTypeBind, dir, deploy, false)
	checkDeps(t, "service restore", restore, map[string]string{})

	// The settings the scripts read in the container name paths that exist there.
	benv := bopsReadFile(t, filepath.Join(dir, "ops", "backup", "backup.env"))
	if c.method == "physical" {
		key := map[string]string{"postgres": "PGBACKREST_PG1_PATH", "mariadb": "MARIADB_DATADIR"}[c.db]
		if !strings.Contains(benv, "\n"+key+"="+datadir+"\n") {
			t.Errorf("ops/backup/backup.env: want %s=%s, the data volume's mount point", key, datadir)
		}
	}
	if c.offsite == "local" && !strings.Contains(benv, "BACKUP_OFFSITE_REPOSITORY='"+c.offsitePath()+"'") {
		t.Errorf("ops/backup/backup.env: the off-site repository is not %s, the mounted path", c.offsitePath())
	}
}

// bopsCheckDB asserts the db service: WAL archiving through the pgBackRest script for
// PostgreSQL with physical backups, the upstream image untouched otherwise.
func bopsCheckDB(t *testing.T, c bopsCase, dir string, p *types.Project) {
	t.Helper()
	db := p.Services["db"]
	cmd := strings.Join(db.Command, " ")
	if !c.pitr() {
		if strings.Contains(cmd, "archive") || db.Build != nil {
			t.Errorf("db: command %q build %+v, want the upstream image untouched", cmd, db.Build)
		}
		return
	}
	script := "ops/backup/postgres-pgbackrest.sh"
	for _, want := range []string{"wal_level=replica", "archive_mode=on", "archive_timeout=60",
		"archive_command=" + c.deployDir() + "/" + script + " archive-push %p"} {
		if !slices.Contains(db.Command, want) {
			t.Errorf("db: command %q lacks the argument %q", db.Command, want)
		}
	}
	if db.Command[0] != "postgres" {
		t.Errorf("db: command %q, want postgres with -c settings", db.Command)
	}
	if fi, err := os.Stat(filepath.Join(dir, script)); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("db: the archive_command's script %s is not an executable of the project: %v", script, err)
	}
	backup := p.Services["backup"]
	if db.Image != backup.Image || db.Build == nil || db.Build.Context != backup.Build.Context || db.PullPolicy != "build" {
		t.Errorf("db: image %q build %+v, want the backup image %q (pgBackRest installed)", db.Image, db.Build, backup.Image)
	}
	if deref(db.Environment["PGBACKREST_CIPHER_PASS_FILE"]) != "/run/secrets/pgbackrest_cipher_pass" ||
		!slices.Contains(secretNames(db), "pgbackrest_cipher_pass") {
		t.Errorf("db: the cipher pass must come from the secret pgbackrest_cipher_pass: env %v secrets %v", db.Environment, secretNames(db))
	}
	if sec, ok := p.Secrets["pgbackrest_cipher_pass"]; !ok || sec.File != filepath.Join(dir, "secrets", "pgbackrest_cipher_pass") {
		t.Errorf("secret pgbackrest_cipher_pass: %+v, want secrets/pgbackrest_cipher_pass", sec)
	} else if b, err := os.ReadFile(sec.File); err != nil || len(strings.TrimSpace(string(b))) < 16 {
		t.Errorf("secrets/pgbackrest_cipher_pass: %v (%d bytes), want a generated pass", err, len(b))
	}
	bopsWantMount(t, "db", db, types.VolumeTypeVolume, "db-data", "/var/lib/postgresql/data", false)
	bopsWantMount(t, "db", db, types.VolumeTypeVolume, "pg-socket", "/var/run/postgresql", false)
	bopsWantMount(t, "db", db, types.VolumeTypeBind, filepath.Join(dir, "ops", "backup"), c.deployDir()+"/ops/backup", true)
	bopsWantMount(t, "db", db, types.VolumeTypeBind, filepath.Join(dir, "var", "backups"), c.deployDir()+"/var/backups", false)
	if db.HealthCheck == nil || !strings.Contains(healthTest(db), "pg_isready -h 127.0.0.1") {
		t.Errorf("db: the healthcheck of compose.yaml is lost: %+v", db.HealthCheck)
	}
}

// bopsCheckDockerfile asserts that the backup image starts from the db service's image of
// compose.yaml and installs what the scripts need, non-interactively.
func bopsCheckDockerfile(t *testing.T, c bopsCase, dir string, env map[string]string) {
	t.Helper()
	base, err := loadCompose(dir, true, env)
	if err != nil {
		t.Fatalf("load compose.yaml + compose.prod.yaml: %v", err)
	}
	df := bopsReadFile(t, filepath.Join(dir, "ops", "backup", "Dockerfile"))
	var from []string
	for _, line := range strings.Split(df, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "FROM" {
			from = append(from, f[1])
		}
	}
	// The final stage is the db image; with Redis, a first stage is the cache's image (with a
	// glibc -bookworm variant of the same tag) that the Redis tools are copied from.
	wantFrom := []string{base.Services["db"].Image}
	if c.cache == "redis" {
		cache := base.Services["cache"].Image
		wantFrom = append([]string{strings.TrimSuffix(cache, "-alpine") + "-bookworm"}, wantFrom...)
		for _, s := range []string{"COPY --from=redis /usr/local/bin/redis-server /usr/local/bin/redis-cli /usr/local/bin/", "ln -s redis-server /usr/local/bin/redis-check-rdb"} {
			if !strings.Contains(df, s) {
				t.Errorf("ops/backup/Dockerfile lacks %q", s)
			}
		}
	}
	if !slices.Equal(from, wantFrom) {
		t.Errorf("ops/backup/Dockerfile: FROM %v, want %v (the cache's and the db's images of compose.yaml)", from, wantFrom)
	}
	flat := strings.Join(strings.Fields(strings.ReplaceAll(df, "\\\n", " ")), " ")
	want := map[string]bool{"restic": true, "jq": true, "util-linux": true, "ca-certificates": true,
		"redis-tools": false, "pgbackrest": c.pitr(), "openssh-client": c.offsite == "sftp"}
	m := regexp.MustCompile(`apt-get install -y --no-install-recommends ([^;]+);`).FindStringSubmatch(flat)
	if m == nil {
		t.Fatalf("ops/backup/Dockerfile: no `apt-get install -y --no-install-recommends ...;`:\n%s", df)
	}
	got := strings.Fields(m[1])
	for pkg, w := range want {
		if slices.Contains(got, pkg) != w {
			t.Errorf("ops/backup/Dockerfile installs %v: %s present=%v, want %v", got, pkg, !w, w)
		}
	}
	for _, s := range []string{"DEBIAN_FRONTEND=noninteractive", "apt-get update", "rm -rf /var/lib/apt/lists/*"} {
		if !strings.Contains(flat, s) {
			t.Errorf("ops/backup/Dockerfile lacks %q", s)
		}
	}
}

// ---------------------------------------------------------------------------------------
// Schedule: systemd units and the cron file.

// bopsUnit is a unit file: section -> key -> values in order.
type bopsUnit map[string]map[string][]string

func bopsParseUnit(t *testing.T, path string) bopsUnit {
	t.Helper()
	u := bopsUnit{}
	section := ""
	for i, line := range strings.Split(bopsReadFile(t, path), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", filepath.Base(path), i+1, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u bopsUnit) get(section, key string) string {
	if v := u[section][key]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// bopsWeek is the week the schedules are compared over: Monday 2026-01-05, UTC.
var bopsWeek = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// bopsWant is when each job must run in bopsWeek, from the answers.
func bopsWant(c bopsCase) map[string][]time.Time {
	h, _ := strconv.Atoi(c.backupTime[:2])
	m, _ := strconv.Atoi(c.backupTime[3:])
	at := func(day, minute int) time.Time {
		return bopsWeek.AddDate(0, 0, day).Add(time.Duration(minute) * time.Minute)
	}
	want := map[string][]time.Time{}
	for d := 0; d < 7; d++ {
		want["backup"] = append(want["backup"], at(d, h*60+m))
		want["prune"] = append(want["prune"], at(d, ((h+1)%24)*60+m))
		if c.method == "physical" {
			for k := 1; k*c.incrHours < 24; k++ {
				want["backup-incr"] = append(want["backup-incr"], at(d, ((h+k*c.incrHours)%24)*60+m))
			}
		}
	}
	wd := slices.Index([]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}, c.weekday)
	rt := h*60 + m + 120
	want["restore-test"] = []time.Time{at((wd+rt/1440)%7, rt%1440)}
	// The repositories are verified daily, three and a half hours after the backup: after
	// pruning and the restore test, half an hour away from the incremental backups.
	for d := 0; d < 7; d++ {
		want["verify"] = append(want["verify"], at(d, (h*60+m+210)%1440))
	}
	for _, v := range want {
		slices.SortFunc(v, func(a, b time.Time) int { return a.Compare(b) })
	}
	return want
}

var bopsElapse = regexp.MustCompile(`(?m)^\s*(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$`)

// bopsCalendar asks systemd when an OnCalendar spec fires in bopsWeek.
func bopsCalendar(t *testing.T, analyze, spec string) []time.Time {
	t.Helper()
	cmd := exec.Command(analyze, "calendar", "--iterations=200", "--base-time="+bopsWeek.Add(-time.Second).Format("2006-01-02 15:04:05")+" UTC", spec)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze calendar %q: %v\n%s", spec, err, out)
	}
	var got []time.Time
	for _, m := range bopsElapse.FindAllStringSubmatch(string(out), -1) {
		ts, err := time.Parse("2006-01-02 15:04:05", m[1])
		if err != nil {
			t.Fatal(err)
		}
		if !ts.Before(bopsWeek) && ts.Before(bopsWeek.AddDate(0, 0, 7)) {
			got = append(got, ts)
		}
	}
	return got
}

// bopsCronTimes is when a cron schedule (5 fields of numbers, lists and *) fires in bopsWeek.
func bopsCronTimes(t *testing.T, fields []string) []time.Time {
	t.Helper()
	match := func(field string, v int) bool {
		if field == "*" {
			return true
		}
		for _, p := range strings.Split(field, ",") {
			n, err := strconv.Atoi(p)
			if err != nil {
				t.Fatalf("cron field %q: only numbers, lists and * are expected", field)
			}
			if n == v {
				return true
			}
		}
		return false
	}
	var got []time.Time
	for ts := bopsWeek; ts.Before(bopsWeek.AddDate(0, 0, 7)); ts = ts.Add(time.Minute) {
		if match(fields[0], ts.Minute()) && match(fields[1], ts.Hour()) && match(fields[2], ts.Day()) &&
			match(fields[3], int(ts.Month())) && match(fields[4], int(ts.Weekday())) {
			got = append(got, ts)
		}
	}
	return got
}

func bopsTimes(ts []time.Time) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.Format("Mon 15:04"))
	}
	return strings.Join(s, ", ")
}

// bopsFakeDocker writes a `docker` that records its arguments (one a line, after the value of
// BACKUP_KIND) in the file named by BOPS_RECORD, and returns the directory holding it.
func bopsFakeDocker(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	script := "#!/bin/sh\n{ printf 'BACKUP_KIND=%s\\n' \"${BACKUP_KIND-unset}\"; printf '%s\\n' \"$@\"; } >\"$BOPS_RECORD\"\n"
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// bopsJobArgs is what a job runs through docker: compose with the four files, the backup
// container, the script and its arguments.
func bopsJobArgs(script string, args ...string) []string {
	out := []string{"compose"}
	for _, f := range bopsComposeFiles {
		out = append(out, "-f", f)
	}
	out = append(out, "run", "--rm", "-T", "backup", "ops/backup/"+script)
	return append(out, args...)
}

func TestBackupOpsSchedule(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze")
	fakeBin := bopsFakeDocker(t)
	jobs := map[string]string{"backup": "backup.sh", "backup-incr": "backup.sh", "prune": "prune.sh", "restore-test": "restore-test.sh", "verify": "verify.sh"}
	for _, c := range bopsCases() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := generate(t, c.set())
			want := bopsWant(c)
			var wantUnits []string
			for job := range want {
				wantUnits = append(wantUnits, c.name+"-"+job+".service", c.name+"-"+job+".timer")
			}
			sort.Strings(wantUnits)
			if got := mustReadDir(t, filepath.Join(dir, "ops", "systemd")); !slices.Equal(got, wantUnits) {
				t.Fatalf("ops/systemd: %v, want %v", got, wantUnits)
			}
			if got := mustReadDir(t, filepath.Join(dir, "ops", "cron")); !slices.Equal(got, []string{c.name + "-backup"}) {
				t.Errorf("ops/cron: %v, want [%s-backup]", got, c.name)
			}

			// systemd's own check; it only warns about many bad settings, so any output fails.
			var paths []string
			for _, u := range wantUnits {
				paths = append(paths, filepath.Join(dir, "ops", "systemd", u))
			}
			if out, err := exec.Command(analyze, append([]string{"verify"}, paths...)...).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}

			record := filepath.Join(t.TempDir(), "argv")
			for job, script := range jobs {
				if _, ok := want[job]; !ok {
					continue
				}
				unit := c.name + "-" + job
				timer := bopsParseUnit(t, filepath.Join(dir, "ops", "systemd", unit+".timer"))
				if got := bopsCalendar(t, analyze, timer.get("Timer", "OnCalendar")); !slices.Equal(got, want[job]) {
					t.Errorf("%s.timer fires at %s; want %s", unit, bopsTimes(got), bopsTimes(want[job]))
				}
				if timer.get("Timer", "Persistent") != "true" || timer.get("Timer", "RandomizedDelaySec") == "" ||
					timer.get("Install", "WantedBy") != "timers.target" || len(timer["Timer"]["OnCalendar"]) != 1 {
					t.Errorf("%s.timer: want one OnCalendar, Persistent=true, RandomizedDelaySec and WantedBy=timers.target: %v", unit, timer)
				}

				svc := bopsParseUnit(t, filepath.Join(dir, "ops", "systemd", unit+".service"))
				if svc.get("Service", "Type") != "oneshot" || svc.get("Service", "WorkingDirectory") != c.deployDir() ||
					svc.get("Service", "TimeoutStartSec") == "" || svc.get("Service", "EnvironmentFile") != "-/etc/default/"+c.name+"-backup" {
					t.Errorf("%s.service: want Type=oneshot, WorkingDirectory=%s, TimeoutStartSec and an optional EnvironmentFile: %v", unit, c.deployDir(), svc["Service"])
				}
				// Run ExecStart the way systemd expands it ($VAR as a word splits at
				// white space), in the project, with a stand-in for docker.
				unitEnv := map[string]string{}
				for _, e := range svc["Service"]["Environment"] {
					k, v, _ := strings.Cut(strings.Trim(e, `"`), "=")
					unitEnv[k] = v
				}
				var argv []string
				for _, w := range strings.Fields(svc.get("Service", "ExecStart")) {
					if strings.HasPrefix(w, "$") {
						argv = append(argv, strings.Fields(unitEnv[strings.Trim(w, "${}")])...)
					} else {
						argv = append(argv, w)
					}
				}
				wantArgs := bopsJobArgs(script)
				if job == "backup-incr" {
					wantArgs = append(wantArgs, c.db)
				}
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.Dir = dir
				cmd.Env = []string{"PATH=" + fakeBin + ":/usr/bin:/bin", "BOPS_RECORD=" + record}
				for k, v := range unitEnv {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s.service: ExecStart %q: %v\n%s", unit, argv, err, out)
					continue
				}
				wantKind := "unset"
				if job == "backup-incr" {
					wantKind = "incr"
				}
				if got := strings.Split(strings.TrimSpace(bopsReadFile(t, record)), "\n"); !slices.Equal(got, append([]string{"BACKUP_KIND=" + wantKind}, wantArgs...)) {
					t.Errorf("%s.service runs %q, want BACKUP_KIND=%s docker %q", unit, got, wantKind, wantArgs)
				}
				// A plain-host install empties BACKUP_RUN: the script runs directly.
				if argv[0] != "/usr/bin/env" || unitEnv["BACKUP_RUN"] == "" {
					t.Errorf("%s.service: ExecStart %q, want /usr/bin/env $BACKUP_RUN ... so that BACKUP_RUN= runs the script on the host", unit, argv)
				}
				if fi, err := os.Stat(filepath.Join(dir, "ops", "backup", script)); err != nil || fi.Mode()&0o111 == 0 {
					t.Errorf("%s.service: ops/backup/%s is not executable: %v", unit, script, err)
				}
			}

			bopsCheckCron(t, c, dir, fakeBin, want)
		})
	}
}

// bopsCheckCron parses ops/cron/<name>-backup as cron(8) reads /etc/cron.d and runs each
// command with a stand-in for docker.
func bopsCheckCron(t *testing.T, c bopsCase, dir, fakeBin string, want map[string][]time.Time) {
	t.Helper()
	path := filepath.Join(dir, "ops", "cron", c.name+"-backup")
	raw := bopsReadFile(t, path)
	if !strings.HasSuffix(raw, "\n") {
		t.Errorf("%s: cron ignores a last line without a newline", filepath.Base(path))
	}
	env := map[string]string{}
	got := map[string][]time.Time{}
	assign := regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := assign.FindStringSubmatch(line); m != nil {
			env[m[1]] = m[2]
			continue
		}
		f := strings.Fields(line)
		if len(f) < 7 || f[5] != "root" {
			t.Errorf("cron line %q: want 5 time fields, the user root and a command", line)
			continue
		}
		command := strings.Join(f[6:], " ")
		job := ""
		switch {
		case strings.Contains(command, "BACKUP_KIND=incr"):
			job = "backup-incr"
		case strings.Contains(command, "ops/backup/backup.sh"):
			job = "backup"
		case strings.Contains(command, "ops/backup/prune.sh"):
			job = "prune"
		case strings.Contains(command, "ops/backup/restore-test.sh"):
			job = "restore-test"
		case strings.Contains(command, "ops/backup/verify.sh"):
			job = "verify"
		default:
			t.Errorf("cron line %q runs no backup job", line)
			continue
		}
		if _, dup := got[job]; dup {
			t.Errorf("cron: job %s twice", job)
		}
		got[job] = bopsCronTimes(t, f[:5])
		if !slices.Equal(got[job], want[job]) {
			t.Errorf("cron: %s fires at %s; want %s", job, bopsTimes(got[job]), bopsTimes(want[job]))
		}

		// Run it in the project instead of the deploy dir, with a stand-in for docker.
		prefix := "cd " + c.deployDir() + " && "
		if !strings.HasPrefix(command, prefix) {
			t.Errorf("cron %s: command %q does not start with %q", job, command, prefix)
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, "var", "log", "ops"), 0o755); err != nil { // as `make prod-up` does
			t.Fatal(err)
		}
		record := filepath.Join(t.TempDir(), "argv")
		cmd := exec.Command("/bin/sh", "-c", "cd "+dir+" && "+strings.TrimPrefix(command, prefix))
		cmd.Env = []string{"PATH=" + fakeBin + ":" + env["PATH"], "BACKUP_RUN=" + env["BACKUP_RUN"], "BOPS_RECORD=" + record}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("cron %s: %q: %v\n%s", job, command, err, out)
			continue
		}
		wantArgs := bopsJobArgs(jobsScript(job))
		wantKind := "unset"
		if job == "backup-incr" {
			wantArgs, wantKind = append(wantArgs, c.db), "incr"
		}
		if g := strings.Split(strings.TrimSpace(bopsReadFile(t, record)), "\n"); !slices.Equal(g, append([]string{"BACKUP_KIND=" + wantKind}, wantArgs...)) {
			t.Errorf("cron %s runs %q, want BACKUP_KIND=%s docker %q", job, g, wantKind, wantArgs)
		}
		if m := regexp.MustCompile(`>>(var/log/ops/[a-z-]+\.log) 2>&1$`).FindStringSubmatch(command); m == nil {
			t.Errorf("cron %s: output does not go to a log in var/log/ops: %q", job, command)
		} else if _, err := os.Stat(filepath.Join(dir, m[1])); err != nil {
			t.Errorf("cron %s: %v", job, err)
		}
	}
	for job := range want {
		if _, ok := got[job]; !ok {
			t.Errorf("cron: no line for %s", job)
		}
	}
	if env["SHELL"] != "/bin/sh" || !strings.Contains(env["PATH"], "/usr/bin") || env["BACKUP_RUN"] == "" {
		t.Errorf("cron: want SHELL=/bin/sh, a PATH and BACKUP_RUN: %v", env)
	}
}

func jobsScript(job string) string {
	if job == "backup-incr" {
		return "backup.sh"
	}
	return job + ".sh"
}

// ---------------------------------------------------------------------------------------
// The Makefile's targets, and the files store through them for real.

func TestBackupOpsMake(t *testing.T) {
	t.Parallel()
	makeBin := requireTool(t, "make")
	requireTool(t, "restic")
	requireTool(t, "jq")
	c := bopsCases()[1] // postgres + redis: three stores, only files has a test yet
	dir := generate(t, c.set())

	// Production always uses the four files; the jobs run in the backup container.
	fakeBin := bopsFakeDocker(t)
	record := filepath.Join(t.TempDir(), "argv")
	for target, script := range map[string]string{"backup": "backup.sh", "restore-test": "restore-test.sh", "backups": "list.sh", "prune": "prune.sh"} {
		cmd := exec.Command(makeBin, "-s", target, "STORE=files", "COMPOSE="+filepath.Join(fakeBin, "docker")+" compose")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "BOPS_RECORD="+record)
		out, _ := cmd.CombinedOutput() // restore-test's tail fails: no log yet
		// Interactive: make keeps the terminal, so no -T.
		want := slices.DeleteFunc(bopsJobArgs(script, "files"), func(a string) bool { return a == "-T" })
		if got := strings.Split(strings.TrimSpace(bopsReadFile(t, record)), "\n")[1:]; !slices.Equal(got, want) {
			t.Errorf("make %s runs docker %q, want %q\n%s", target, got, want, out)
		}
	}
	mk := bopsReadFile(t, filepath.Join(dir, "Makefile"))
	// make verify takes repositories, not stores.
	cmd := exec.Command(makeBin, "-s", "verify", "REPOSITORY=primary", "SUBSET=100%", "COMPOSE="+filepath.Join(fakeBin, "docker")+" compose")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BOPS_RECORD="+record)
	vout, _ := cmd.CombinedOutput() // its tail fails: no log yet
	want := slices.DeleteFunc(bopsJobArgs("verify.sh", "--read-data-subset=100%", "primary"), func(a string) bool { return a == "-T" })
	if got := strings.Split(strings.TrimSpace(bopsReadFile(t, record)), "\n")[1:]; !slices.Equal(got, want) {
		t.Errorf("make verify runs docker %q, want %q\n%s", got, want, vout)
	}
	for _, target := range []string{"backup", "restore-test", "backups", "prune", "verify", "install-schedule", "install-cron"} {
		if !regexp.MustCompile(`(?m)^` + target + `: ## `).MatchString(mk) {
			t.Errorf("Makefile: no documented target %s", target)
		}
	}
	if !strings.Contains(mk, "ops/systemd/*.service ops/systemd/*.timer") || !strings.Contains(mk, "verify") {
		t.Errorf("Makefile: `check` does not run systemd-analyze verify on ops/systemd")
	}

	// Plain-host mode (BACKUP_RUN empty) with the real scripts: back up the files store,
	// restore-test it from the off-site copy, list and prune it.
	offsite := filepath.Join(t.TempDir(), "offsite")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(makeBin, append([]string{"-s"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "BACKUP_OFFSITE_REPOSITORY="+offsite, "TMPDIR="+t.TempDir())
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %v: %v\n%s", args, err, out)
		}
		t.Logf("make %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
		return string(out)
	}
	policyBefore := bopsReadFile(t, filepath.Join(dir, "docs", "backup-policy.md"))
	run("backup", "BACKUP_RUN=", "STORE=files")
	if _, err := os.Stat(filepath.Join(dir, "var", "lib", "node-exporter", "textfile", "backup_files_full.prom")); err != nil {
		t.Errorf("no backup metric after make backup: %v", err)
	}
	out := run("restore-test", "BACKUP_RUN=", "STORE=files")
	if !regexp.MustCompile(`store=files result=passed duration_s=\d+ snapshot=`).MatchString(out) {
		t.Errorf("make restore-test does not show the passed line of restore-test.log:\n%s", out)
	}
	if out := run("backups", "BACKUP_RUN=", "STORE=files"); !regexp.MustCompile(`(?m)\bfull\b.*\b[0-9a-f]{8}`).MatchString(out) {
		t.Errorf("make backups does not list the files backup (kind full, its id):\n%s", out)
	}
	run("prune", "BACKUP_RUN=", "STORE=files")
	// The daily verification, for real: this host's restic repository and the off-site one
	// (the database is backed up with pg_dump here: no pgBackRest repository).
	out = run("verify", "BACKUP_RUN=")
	for _, repo := range []string{"primary", "offsite"} {
		if !regexp.MustCompile(`repository=` + repo + ` tool=restic result=passed duration_s=\d+`).MatchString(bopsReadFile(t, filepath.Join(dir, "var", "log", "ops", "verify.log"))) {
			t.Errorf("make verify: no passed line for the %s repository in verify.log:\n%s", repo, out)
		}
		prom := bopsReadFile(t, filepath.Join(dir, "var", "lib", "node-exporter", "textfile", "backup_verify_"+repo+".prom"))
		if !strings.Contains(prom, `backup_verify_last_success_timestamp_seconds{repository="`+repo+`",tool="restic"} `) {
			t.Errorf("make verify: backup_verify_%s.prom:\n%s", repo, prom)
		}
	}

	// The jobs never edit tracked files: the restore test's result is in its log and metrics.
	if policy := bopsReadFile(t, filepath.Join(dir, "docs", "backup-policy.md")); policy != policyBefore {
		t.Errorf("docs/backup-policy.md changed during the jobs:\n%s", policy)
	}

	// The acceptance check reads restore-test.log: files passed, the others never ran.
	item := func() (string, string) {
		t.Helper()
		out, _, code := capRun(t, dir, "ops/acceptance/check.sh")
		if code != 0 {
			t.Fatalf("check.sh: exit %d\n%s", code, out)
		}
		return capStatuses(t, out)[capItems[2]], out
	}
	status, out := item()
	if status != "NOT MET" || !strings.Contains(out, "files: the last restore test passed") ||
		!strings.Contains(out, "postgres: no restore test recorded") || !strings.Contains(out, "redis: no restore test recorded") ||
		!strings.Contains(out, "off-site credentials still empty: secrets/offsite_s3_access_key_id secrets/offsite_s3_secret_access_key") {
		t.Errorf("check.sh after the files test: %s\n%s", status, out)
	}
	for _, f := range []string{"offsite_s3_access_key_id", "offsite_s3_secret_access_key"} {
		if err := os.WriteFile(filepath.Join(dir, "secrets", f), []byte("filled-in-"+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Every store passed, the older lines rotated away and compressed: met.
	logPath := filepath.Join(dir, "var", "log", "ops", "restore-test.log")
	rotated := bopsReadFile(t, logPath)
	f, err := os.Create(logPath + ".2.gz")
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write([]byte(rotated))
	zw.Close()
	f.Close()
	lines := "2026-01-04T03:00:00Z store=postgres result=passed duration_s=12 snapshot=abcdef12 tables=2 rows=10\n" +
		"2026-01-04T03:01:00Z store=redis result=passed duration_s=2 snapshot=abcdef13 keys=5\n"
	if err := os.WriteFile(logPath, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if status, out := item(); status != "MET" {
		t.Errorf("check.sh with every store passed (files in a rotated copy): %s\n%s", status, out)
	}
	// A newer failed test of a store makes it not met again.
	fail := "2099-01-01T00:00:00Z store=redis result=failed duration_s=1 error=\"the RDB does not load\"\n"
	if err := os.WriteFile(logPath, []byte(lines+fail), 0o644); err != nil {
		t.Fatal(err)
	}
	if status, out := item(); status != "NOT MET" || !strings.Contains(out, "redis: the last restore test failed") {
		t.Errorf("check.sh after a failed test: %s\n%s", status, out)
	}
}

// ---------------------------------------------------------------------------------------
// Docs.

// bopsSlug is the anchor GitHub gives a heading.
func bopsSlug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

func TestBackupOpsDocs(t *testing.T) {
	for _, c := range bopsCases() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := generate(t, c.set())
			policy := bopsReadFile(t, filepath.Join(dir, "docs", "backup-policy.md"))
			plan := bopsReadFile(t, filepath.Join(dir, "docs", "restore-plan.md"))
			for name, doc := range map[string]string{"backup-policy.md": policy, "restore-plan.md": plan} {
				if strings.Contains(doc, "{{") || strings.Contains(doc, "<no value>") {
					t.Errorf("docs/%s: unrendered template text", name)
				}
				rbCheckLinks(t, dir, "docs/"+name, doc)
			}
			anchors := map[string]bool{}
			for _, h := range rbHeadings(plan) {
				anchors[bopsSlug(strings.TrimLeft(h, "# "))] = true
			}

			// One row per store, in the table whose header names the columns of the policy.
			header := "| store | what | method and tool | type and schedule | RPO (worst case) | RTO | retention | location | encryption and key | verification | restore procedure |"
			_, table, ok := strings.Cut(policy, "\n"+header+"\n")
			if !ok {
				t.Fatalf("docs/backup-policy.md has no table with the header %s", header)
			}
			rows := map[string]string{}
			for _, line := range strings.Split(table, "\n")[1:] {
				if !strings.HasPrefix(line, "|") {
					break
				}
				cells := strings.Split(strings.Trim(line, "|"), " | ")
				if len(cells) != 11 {
					t.Errorf("row with %d cells, want 11: %s", len(cells), line)
					continue
				}
				rows[strings.Trim(strings.TrimSpace(cells[0]), "`")] = line
			}
			var got []string
			for s := range rows {
				got = append(got, s)
			}
			sort.Strings(got)
			wantStores := slices.Sorted(slices.Values(c.stores()))
			if !slices.Equal(got, wantStores) {
				t.Errorf("docs/backup-policy.md rows %v, want %v", got, wantStores)
			}
			for _, s := range c.stores() {
				row := rows[s]
				cells := strings.Split(strings.Trim(row, "|"), " | ")
				if len(cells) != 11 {
					continue
				}
				for _, m := range regexp.MustCompile(`restore-plan\.md#([a-z0-9_-]+)`).FindAllStringSubmatch(cells[10], -1) {
					if !anchors[m[1]] {
						t.Errorf("%s row links restore-plan.md#%s, which has no such heading", s, m[1])
					}
				}
				if !strings.Contains(cells[10], "restore-plan.md#restore-"+s) {
					t.Errorf("%s row: restore procedure %q, want a link to restore-plan.md#restore-%s", s, cells[10], s)
				}
				// The worst case when the host is lost: pgBackRest's WAL leaves it only with the
				// off-site copy after each backup.
				loss := 24
				if s == c.db && c.method == "physical" {
					loss = c.incrHours
				}
				meets := loss <= c.rpo
				if strings.Contains(cells[4], "meets the") != meets || strings.Contains(cells[4], "misses the") == meets {
					t.Errorf("%s row: RPO cell %q, want it to say the schedule (%d h) %s the %d h objective", s, cells[4], loss, map[bool]string{true: "meets", false: "misses"}[meets], c.rpo)
				}
				retention := "9 daily, 3 weekly, 11 monthly"
				if s == "postgres" && c.method == "physical" && c.offsite == "none" {
					retention = "the newest 3 full backups (one a week) and 9 differential ones"
				}
				if !strings.Contains(cells[5], "3 h") || !strings.Contains(cells[6], retention) ||
					!strings.Contains(cells[8], "keys@"+c.name+".example.test") || !strings.Contains(cells[3], c.backupTime) {
					t.Errorf("%s row does not carry the answers (RTO 3 h, retention 9/3/11, custodian, %s): %s", s, c.backupTime, row)
				}
				if (c.offsite == "none") != strings.Contains(cells[7], "no off-site copy") {
					t.Errorf("%s row: location %q with offsite=%s", s, cells[7], c.offsite)
				}
			}
			if (c.offsite == "local") != strings.Contains(policy, "**Warning: `offsite=local` is a directory on this host.**") {
				t.Errorf("docs/backup-policy.md: the same-host warning is there=%v with offsite=%s", c.offsite != "local", c.offsite)
			}
			if strings.Contains(policy, "<!-- restore-test:") || !strings.Contains(policy, "| verification of the repositories | daily at ") ||
				!strings.Contains(policy, "`ops/backup/verify.sh` (`make verify`) | `"+c.name+"-verify.timer` |") {
				t.Errorf("docs/backup-policy.md: a restore-test marker left, or no verification row in the schedule")
			}
			if (c.offsite == "none") != strings.Contains(policy, "**Warning: there is no off-site copy.**") {
				t.Errorf("docs/backup-policy.md: the no-off-site warning is there=%v with offsite=%s", !(c.offsite == "none"), c.offsite)
			}
			if !strings.Contains(policy, "## Encryption and key escrow") || !strings.Contains(policy, "**keys@"+c.name+".example.test**") {
				t.Errorf("docs/backup-policy.md: no key escrow section naming the custodian")
			}

			// The plan: a restore command per store, and only for the stores there are.
			for _, s := range []string{"postgres", "mariadb", "redis", "files"} {
				cmd := "dc run --rm restore ops/backup/restore.sh " + s + " "
				if has := strings.Contains(plan, cmd); has != slices.Contains(c.stores(), s) {
					t.Errorf("docs/restore-plan.md: %q present=%v, want %v", cmd, has, !has)
				}
				if slices.Contains(c.stores(), s) && !anchors["restore-"+s] {
					t.Errorf("docs/restore-plan.md: no heading \"Restore %s\"", s)
				}
			}
			if has := strings.Contains(plan, "--time '"); has != c.pitr() {
				t.Errorf("docs/restore-plan.md: point-in-time restore (--time) present=%v, want %v", has, c.pitr())
			}
			if has := anchors["restore-a-mariadb-backup-chain"]; has != (c.db == "mariadb" && c.method == "physical") {
				t.Errorf("docs/restore-plan.md: mariadb-backup chain section present=%v", has)
			}
			if !strings.Contains(plan, "dc() { docker compose -f "+strings.Join(bopsComposeFiles, " -f ")+` "$@"; }`) {
				t.Errorf("docs/restore-plan.md: no dc() with the four production files")
			}
			repo := map[string]string{"local": c.offsitePath(), "s3": "s3:https://objects.example.test/" + c.name + "-bak",
				"sftp": "sftp:bak@vault.example.test:/srv/bak/" + c.name}[c.offsite]
			if c.offsite != "none" {
				for _, s := range []string{"export RESTIC_REPOSITORY='" + repo + "'", "restic_password", "keys@" + c.name + ".example.test",
					"restore latest --host " + c.name + " --tag store=files"} {
					if !strings.Contains(plan, s) {
						t.Errorf("docs/restore-plan.md: the off-site section lacks %q", s)
					}
				}
			} else if !strings.Contains(plan, "**This project has no off-site copy**") {
				t.Errorf("docs/restore-plan.md: no warning that there is no off-site copy")
			}
			if !strings.Contains(plan, "make restore-test") || !strings.Contains(plan, "var/log/ops/restore-test.log") {
				t.Errorf("docs/restore-plan.md: no verification with the restore test")
			}

			// README, acceptance checklist, runbooks, .gitignore.
			readme := bopsReadFile(t, filepath.Join(dir, "README.md"))
			if !strings.Contains(readme, "\n## Backups\n") || !strings.Contains(readme, "make restore-test") {
				t.Errorf("README.md: no Backups section with make restore-test")
			}
			acc := bopsReadFile(t, filepath.Join(dir, "docs", "production-acceptance.md"))
			_, item3, _ := strings.Cut(acc, "\n## "+capItems[2]+"\n")
			item3, _, _ = strings.Cut(item3, "\n## ")
			if !strings.Contains(item3, "make restore-test") || !strings.Contains(item3, "var/log/ops/restore-test.log") {
				t.Errorf("docs/production-acceptance.md item 3 does not point at make restore-test and restore-test.log:\n%s", item3)
			}
			if !strings.Contains(item3, "make check` looks for those lines, and for an off-site copy") {
				t.Errorf("docs/production-acceptance.md item 3 does not say that the off-site copy is checked:\n%s", item3)
			}
			for _, rb := range []string{"backup-stale", "backup-missing", "restore-test-failed", "restore-test-stale",
				"backup-failed", "backup-verify-failed", "backup-verify-stale"} {
				doc := bopsReadFile(t, filepath.Join(dir, "docs", "runbooks", rb+".md"))
				for _, s := range []string{"journalctl -u " + c.name + "-", "make "} {
					if !strings.Contains(doc, s) {
						t.Errorf("docs/runbooks/%s.md lacks %q", rb, s)
					}
				}
			}
		})
	}
}

func TestBackupOpsGitignore(t *testing.T) {
	gitPath := requireTool(t, "git")
	dir := generate(t, bopsCases()[3].set())
	if out, err := exec.Command(gitPath, "-C", dir, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	paths := []string{"var/backups/restic/config", "var/backups/pgbackrest/backup/x", "var/backups/staging/files/manifest.json",
		"var/log/ops/restore-test.log", "var/lib/node-exporter/textfile/backup_files_full.prom"}
	cmd := exec.Command(gitPath, "-C", dir, "check-ignore", "--no-index", "--stdin")
	cmd.Stdin = strings.NewReader(strings.Join(paths, "\n") + "\n")
	out, _ := cmd.Output()
	if got := strings.Fields(string(out)); !slices.Equal(got, paths) {
		t.Errorf("git ignores %v, want %v", got, paths)
	}
	cmd = exec.Command(gitPath, "-C", dir, "check-ignore", "--no-index", "--stdin")
	cmd.Stdin = strings.NewReader("ops/systemd/bops-d-backup.timer\nops/cron/bops-d-backup\nops/backup/Dockerfile\ncompose.backup.yaml\ndocs/backup-policy.md\n")
	if out, _ := cmd.Output(); len(out) > 0 {
		t.Errorf("generated files are git-ignored: %s", out)
	}
}

// ---------------------------------------------------------------------------------------
// The backup alert rules.

func TestBackupOpsRules(t *testing.T) {
	promtool := requireTool(t, "promtool")
	for _, c := range []bopsCase{bopsCases()[0], bopsCases()[3], bopsCases()[5], bopsCases()[6]} {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := generate(t, c.set())
			prom := filepath.Join(dir, "monitoring", "prometheus")
			var rf monRuleFile
			monReadYAML(t, filepath.Join(prom, "rules", "backups.yml"), &rf)
			var missing []monRule
			for _, g := range rf.Groups {
				for _, r := range g.Rules {
					if r.Alert == "BackupMissing" {
						missing = append(missing, r)
					}
				}
			}
			var stores []string
			for _, r := range missing {
				stores = append(stores, r.Labels["store"])
				if want := `absent(backup_last_success_timestamp_seconds{store="` + r.Labels["store"] + `"})`; strings.TrimSpace(r.Expr) != want {
					t.Errorf("BackupMissing for %s: expr %q, want %q", r.Labels["store"], r.Expr, want)
				}
			}
			if want := c.stores(); !slices.Equal(stores, want) {
				t.Fatalf("BackupMissing covers %v, want every store %v", stores, want)
			}
			monPromtool(t, promtool, prom, "test", "rules", filepath.Join("tests", "backups.test.yml"))

			// The failure and verification alerts read the metrics the scripts write.
			exprs := map[string]string{}
			for _, g := range rf.Groups {
				for _, r := range g.Rules {
					exprs[r.Alert] += r.Expr
				}
			}
			verify := bopsReadFile(t, filepath.Join(dir, "ops", "backup", "verify.sh"))
			lib := bopsReadFile(t, filepath.Join(dir, "ops", "backup", "lib.sh"))
			for alert, metric := range map[string]string{"BackupFailed": "backup_last_result", "BackupVerifyFailed": "backup_verify_last_result",
				"BackupVerifyStale": "backup_verify_last_success_timestamp_seconds"} {
				if !strings.Contains(exprs[alert], metric) {
					t.Errorf("%s: expr %q does not read %s", alert, exprs[alert], metric)
				}
				if src := map[bool]string{true: verify, false: lib}[strings.HasPrefix(metric, "backup_verify_")]; !strings.Contains(src, metric+"{") {
					t.Errorf("%s reads %s, which no script writes", alert, metric)
				}
			}

			// An independent test: with a fresh backup metric of every store but files, only
			// files is missing after an hour; with it, nothing is.
			render := func(s, store string) string { return strings.ReplaceAll(s, "{{ $labels.store }}", store) }
			r := missing[len(missing)-1]
			var series []map[string]string
			for _, s := range c.stores() {
				if s != "files" {
					series = append(series, map[string]string{
						"series": fmt.Sprintf(`backup_last_success_timestamp_seconds{job="node",instance="node-exporter:9100",store=%q,kind="full"}`, s),
						"values": "0+600x12"})
				}
			}
			withFiles := append(slices.Clone(series), map[string]string{
				"series": `backup_last_success_timestamp_seconds{job="node",instance="node-exporter:9100",store="files",kind="full"}`,
				"values": "0+600x12"})
			doc := map[string]any{
				"rule_files":          []string{"../rules/backups.yml"},
				"evaluation_interval": "10m",
				"tests": []any{
					map[string]any{"interval": "10m", "input_series": series, "alert_rule_test": []any{
						map[string]any{"eval_time": "50m", "alertname": "BackupMissing", "exp_alerts": []any{}},
						map[string]any{"eval_time": "70m", "alertname": "BackupMissing", "exp_alerts": []any{map[string]any{
							"exp_labels": map[string]string{"severity": r.Labels["severity"], "store": "files"},
							"exp_annotations": map[string]string{"summary": render(r.Annotations["summary"], "files"),
								"description": render(r.Annotations["description"], "files"), "runbook_url": r.Annotations["runbook_url"]},
						}}},
					}},
					map[string]any{"interval": "10m", "input_series": withFiles, "alert_rule_test": []any{
						map[string]any{"eval_time": "110m", "alertname": "BackupMissing", "exp_alerts": []any{}},
					}},
				},
			}
			raw, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(prom, "tests", "bops-files.test.yml"), raw, 0o644); err != nil {
				t.Fatal(err)
			}
			monPromtool(t, promtool, prom, "test", "rules", filepath.Join("tests", "bops-files.test.yml"))
		})
	}
}
