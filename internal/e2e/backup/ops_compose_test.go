package backup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/opsready/opsready/internal/e2e/e2eutil"
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
			dir := e2eutil.Generate(t, c.set())
			env := e2eutil.ProdEnv()

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
			for name, v := range e2eutil.ReadSecrets(t, dir) {
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
		if want := e2eutil.TestRegistry + "/" + c.name + "-backup:" + e2eutil.TestBackupTag; s.Image != want {
			t.Errorf("%s: image %q, want %q (published by CI from ops/backup/Dockerfile)", where, s.Image, want)
		}
		if s.Build != nil || s.PullPolicy == "build" {
			t.Errorf("%s: build %+v pull_policy %q: the image is published by CI, never built on the host", where, s.Build, s.PullPolicy)
		}
		if _, err := os.Stat(filepath.Join(dir, "ops", "backup", "Dockerfile")); err != nil {
			t.Errorf("%s: %v", where, err)
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
			if want := max(e2eutil.MemoryBytes(t, c.memory), 1<<30); int64(lim.MemoryBytes) != want {
				t.Errorf("%s: memory %d, want %d (the answer, at least 1 GiB)", where, lim.MemoryBytes, want)
			}
		}
		if v := s.Environment["BACKUP_KIND"]; v == nil || *v != "incr" {
			t.Errorf("%s: BACKUP_KIND %v, want it passed through from the environment (incr)", where, e2eutil.Deref(v))
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
			if v := s.Environment["REDIS_DATA_DIR"]; e2eutil.Deref(v) != "/data" {
				t.Errorf("%s: REDIS_DATA_DIR %q, want /data (the cache-data volume)", where, e2eutil.Deref(v))
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
	e2eutil.CheckDeps(t, "service backup", backup, wantDeps)
	// The restore job: the project writable, nothing started for it.
	bopsWantMount(t, "service restore", restore, types.VolumeTypeBind, dir, deploy, false)
	e2eutil.CheckDeps(t, "service restore", restore, map[string]string{})

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
	if db.Image != backup.Image || db.Build != nil || db.PullPolicy == "build" {
		t.Errorf("db: image %q build %+v, want the backup image %q (pgBackRest installed)", db.Image, db.Build, backup.Image)
	}
	if e2eutil.Deref(db.Environment["PGBACKREST_CIPHER_PASS_FILE"]) != "/run/secrets/pgbackrest_cipher_pass" ||
		!slices.Contains(e2eutil.SecretNames(db), "pgbackrest_cipher_pass") {
		t.Errorf("db: the cipher pass must come from the secret pgbackrest_cipher_pass: env %v secrets %v", db.Environment, e2eutil.SecretNames(db))
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
	// With a replica (webapp 1.6.0's default) production's db checks with ops/db/healthcheck.sh
	// (healthy as a primary, or as a streaming standby after a failover).
	if hc := e2eutil.HealthTest(db); db.HealthCheck == nil || !strings.Contains(hc, "pg_isready -h 127.0.0.1") && !strings.Contains(hc, "/opt/opsready/db/healthcheck.sh") {
		t.Errorf("db: the healthcheck of compose.yaml is lost: %+v", db.HealthCheck)
	}
}

// bopsCheckDockerfile asserts that the backup image starts from the db service's image of
// compose.yaml and installs what the scripts need, non-interactively.
func bopsCheckDockerfile(t *testing.T, c bopsCase, dir string, env map[string]string) {
	t.Helper()
	base, err := e2eutil.LoadCompose(dir, env, "", "compose.yaml", "compose.prod.yaml")
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
