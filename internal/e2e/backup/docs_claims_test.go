package backup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/internal/e2e/e2eutil"
	"github.com/opsready/opsready/prompts"
)

// The backup documents must state only what the generated configuration does. For several
// answer sets this test reads the numbers from the configuration itself (archive_timeout in
// compose.backup.yaml, the hours of the incremental timer, the retention of backup.env and the
// retention pgBackRest is really given, computed by running the script's own pgbr_env) and
// checks every numeric or behavioural claim of docs/backup-policy.md and docs/restore-plan.md
// against them: the loss window while the host survives and when it is lost, the RPO verdict,
// what pgBackRest keeps (no monthly backups) and what the off-site copy keeps; and that the
// default offsite=local is called a directory on this host in the wizard, the policy and the
// restore plan, and flagged by ops/acceptance/check.sh unless another file system is mounted.

type bdcCase struct {
	name, db, method, offsite string
	incr, rpo                 int
	daily, weekly, monthly    int
}

func (c bdcCase) set(offsitePath string) map[string]string {
	m := map[string]string{
		"name": c.name, "db": c.db, "db_backup_method": c.method, "offsite": c.offsite,
		"rpo_hours": strconv.Itoa(c.rpo), "backup_time": "01:20",
		"retention_daily": strconv.Itoa(c.daily), "retention_weekly": strconv.Itoa(c.weekly),
		"retention_monthly": strconv.Itoa(c.monthly),
	}
	if c.method == "physical" {
		m["backup_incr_hours"] = strconv.Itoa(c.incr)
	}
	if c.offsite == "local" {
		m["offsite_path"] = offsitePath
	}
	return m
}

func TestBackupDocsClaims(t *testing.T) {
	t.Parallel()
	cases := []bdcCase{
		{"bdc-a", "postgres", "physical", "local", 1, 1, 7, 4, 6},
		{"bdc-b", "postgres", "physical", "s3", 3, 2, 5, 0, 2},
		{"bdc-c", "postgres", "physical", "none", 6, 12, 10, 2, 12},
		{"bdc-d", "postgres", "logical", "sftp", 0, 24, 3, 1, 0},
		{"bdc-e", "mariadb", "physical", "local", 4, 2, 9, 3, 11},
	}
	for _, c := range cases {
		t.Run(c.name+"-"+c.db+"-"+c.method+"-"+c.offsite, func(t *testing.T) {
			t.Parallel()
			offsitePath := filepath.Join(t.TempDir(), "offsite") // the project's own file system
			dir := e2eutil.Generate(t, c.set(offsitePath))
			policy := bopsReadFile(t, filepath.Join(dir, "docs", "backup-policy.md"))
			plan := bopsReadFile(t, filepath.Join(dir, "docs", "restore-plan.md"))
			env := bdcEnvFile(t, filepath.Join(dir, "ops", "backup", "backup.env"))
			claim := func(doc, name, want string) {
				t.Helper()
				if !strings.Contains(bdcSpace(doc), bdcSpace(want)) {
					t.Errorf("%s does not state %q", name, want)
				}
			}
			unclaim := func(doc, name, bad string) {
				t.Helper()
				if strings.Contains(bdcSpace(doc), bdcSpace(bad)) {
					t.Errorf("%s states %q, which the configuration does not do", name, bad)
				}
			}
			pgbr := c.db == "postgres" && c.method == "physical"

			// Retention of the restic stores: what backup.env gives prune.sh.
			d, w, m := env["BACKUP_RETENTION_DAILY"], env["BACKUP_RETENTION_WEEKLY"], env["BACKUP_RETENTION_MONTHLY"]
			if d != strconv.Itoa(c.daily) || w != strconv.Itoa(c.weekly) || m != strconv.Itoa(c.monthly) {
				t.Fatalf("backup.env retention %s/%s/%s, answered %d/%d/%d", d, w, m, c.daily, c.weekly, c.monthly)
			}
			claim(policy, "backup-policy.md (files row)", fmt.Sprintf("| %s daily, %s weekly, %s monthly |", d, w, m))

			// The results of restore tests are not kept in the tracked policy.
			unclaim(policy, "backup-policy.md", "<!-- restore-test:")
			claim(policy, "backup-policy.md", "`var/log/ops/restore-test.log`")

			if pgbr {
				// Loss while the host survives: archive_timeout of the db service.
				compose := bopsReadFile(t, filepath.Join(dir, "compose.backup.yaml"))
				mt := regexp.MustCompile(`archive_timeout=(\d+)`).FindStringSubmatch(compose)
				if mt == nil {
					t.Fatal("compose.backup.yaml sets no archive_timeout")
				}
				at, _ := strconv.Atoi(mt[1])
				claim(policy, "backup-policy.md (RPO)", fmt.Sprintf("about %d s (the archived WAL) while this host and its repository survive", at))
				claim(policy, "backup-policy.md (schedule)", fmt.Sprintf("at least every %d s", at))
				claim(plan, "restore-plan.md", fmt.Sprintf("at least every %d s (`archive_timeout`), so up to the last %d s of writes", at, at))
				unclaim(plan, "restore-plan.md", "losing at most the last minute")

				// Loss when the host is lost: the repository leaves the host only with the
				// off-site copy after each backup, so the longest gap between two backups.
				gap := bdcLongestGap(t, dir, c.name)
				if gap != c.incr {
					t.Errorf("the timers leave gaps of up to %d h between backups, the answer was %d h", gap, c.incr)
				}
				if c.offsite == "none" {
					claim(policy, "backup-policy.md (RPO)", "**everything** if the host is lost (no off-site copy)")
					claim(plan, "restore-plan.md", "there is no off-site copy, and a lost host leaves nothing to restore")
				} else {
					claim(policy, "backup-policy.md (RPO)", fmt.Sprintf("; %d h if the host is lost (the off-site copy is as new as the last backup)", gap))
					claim(plan, "restore-plan.md", fmt.Sprintf("every %d h, so up to the last %d h of writes", gap, gap))
					bdcOffsiteAfterEveryBackup(t, dir)
				}
				switch {
				case gap > c.rpo:
					claim(policy, "backup-policy.md (RPO verdict)", fmt.Sprintf("if the host is lost (the off-site copy is as new as the last backup): **misses the %d h objective**", c.rpo))
				case c.offsite == "none":
					claim(policy, "backup-policy.md (RPO verdict)", fmt.Sprintf("(no off-site copy): meets the %d h objective only while this host survives", c.rpo))
				default:
					claim(policy, "backup-policy.md (RPO verdict)", fmt.Sprintf("(the off-site copy is as new as the last backup): meets the %d h objective", c.rpo))
				}

				// What pgBackRest keeps: its real settings, computed by the script itself.
				full, diff := bdcPgbrRetention(t, dir)
				if want := max(c.weekly, 1); full != strconv.Itoa(want) || diff != d {
					t.Errorf("pgBackRest keeps %s full and %s differential backups, want %d and %s", full, diff, want, d)
				}
				claim(policy, "backup-policy.md (retention)", fmt.Sprintf("newest **%s full backups** (one a week: `PGBACKREST_REPO1_RETENTION_FULL=%s`)", full, full))
				claim(policy, "backup-policy.md (retention)", fmt.Sprintf("**%s differential backups** (one a day: `PGBACKREST_REPO1_RETENTION_DIFF=%s`)", diff, diff))
				claim(policy, "backup-policy.md (retention)", "It keeps **no monthly backups**.")
				claim(policy, "backup-policy.md (postgres row)", fmt.Sprintf("this host: the newest %s full backups (one a week) and %s differential ones", full, diff))
				unclaim(policy, "backup-policy.md", "pgBackRest expires its full and differential backups, and the WAL they no longer need,\nby the same policy")
				if c.offsite != "none" {
					claim(policy, "backup-policy.md (postgres row)", fmt.Sprintf("off-site: %s daily, %s weekly, %s monthly copies of the whole repository", d, w, m))
					script := bopsReadFile(t, filepath.Join(dir, "ops", "backup", "postgres-pgbackrest.sh"))
					if !strings.Contains(script, `--keep-monthly "$BACKUP_RETENTION_MONTHLY"`) {
						t.Error("the policy claims monthly off-site copies, but postgres-pgbackrest.sh prune does not keep monthly snapshots")
					}
				}
			}
			if c.db == "mariadb" && c.method == "physical" {
				claim(policy, "backup-policy.md (RPO)", fmt.Sprintf("| %d h: ", c.incr))
			}

			// offsite=local is a directory on this host until a disk or share is mounted.
			switch c.offsite {
			case "local":
				claim(policy, "backup-policy.md", "**Warning: `offsite=local` is a directory on this host.**")
				claim(policy, "backup-policy.md (location)", "on this host (off-site only if another disk or a network share is mounted there)")
				claim(plan, "restore-plan.md", fmt.Sprintf("This works only if `%s` was another disk or a network share", offsitePath))
				if err := os.MkdirAll(offsitePath, 0o755); err != nil {
					t.Fatal(err)
				}
				out := bdcCheck(t, dir)
				if !strings.Contains(out, "NOT MET  3.") || !strings.Contains(out, "the off-site directory "+offsitePath+" is on this host's own file system") {
					t.Errorf("check.sh does not flag the off-site directory on the project's file system:\n%s", out)
				}
				// The same directory with a file system of its own mounted there passes.
				if os.Geteuid() == 0 {
					if err := syscall.Mount("tmpfs", offsitePath, "tmpfs", 0, "size=1m"); err != nil {
						t.Fatalf("mount a tmpfs on %s: %v", offsitePath, err)
					}
					out = bdcCheck(t, dir)
					if err := syscall.Unmount(offsitePath, 0); err != nil {
						t.Errorf("unmount %s: %v", offsitePath, err)
					}
					if !strings.Contains(out, "off-site copy: "+offsitePath+", a file system of its own") {
						t.Errorf("check.sh with a file system mounted at %s:\n%s", offsitePath, out)
					}
				}
			case "none":
				claim(policy, "backup-policy.md", "**Warning: there is no off-site copy.**")
				if out := bdcCheck(t, dir); !strings.Contains(out, "no off-site copy (BACKUP_OFFSITE_REPOSITORY is empty)") {
					t.Errorf("check.sh does not flag the missing off-site copy:\n%s", out)
				}
			}
		})
	}

	// The wizard says it too.
	lib := blueprints.Embedded()
	v, err := lib.Latest("webapp")
	if err != nil {
		t.Fatal(err)
	}
	bp, err := lib.Open("webapp", v)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(bp.Questions, func(q prompts.Question) bool { return q.Key == "offsite" })
	if i < 0 {
		t.Fatal("no offsite question")
	}
	q := bp.Questions[i]
	label := ""
	for _, o := range q.Options {
		if o.Value == "local" {
			label = o.Label
		}
	}
	if !strings.Contains(label, "ON THIS HOST") || !strings.Contains(q.Help, "ON THIS HOST") || q.Default != "local" {
		t.Errorf("webapp %s: the offsite question does not say loudly that local is on this host: label %q, help %q", v, label, q.Help)
	}
}

// bdcSpace collapses white space, so that a claim can be wrapped anywhere.
func bdcSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

// bdcEnvFile reads VAR=value lines (values possibly single-quoted).
func bdcEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, line := range strings.Split(bopsReadFile(t, path), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = strings.Trim(v, "'")
		}
	}
	return env
}

// bdcLongestGap is the longest time, in hours, between two backups of the database that copy
// it off-site: the daily backup and the incremental timer's hours.
func bdcLongestGap(t *testing.T, dir, name string) int {
	t.Helper()
	daily := bopsParseUnit(t, filepath.Join(dir, "ops", "systemd", name+"-backup.timer")).get("Timer", "OnCalendar")
	incr := bopsParseUnit(t, filepath.Join(dir, "ops", "systemd", name+"-backup-incr.timer")).get("Timer", "OnCalendar")
	hour := regexp.MustCompile(`^\*-\*-\* ([0-9,]+):`)
	var hours []int
	for _, spec := range []string{daily, incr} {
		m := hour.FindStringSubmatch(spec)
		if m == nil {
			t.Fatalf("OnCalendar %q: want *-*-* HH[,HH...]:MM:00", spec)
		}
		for _, h := range strings.Split(m[1], ",") {
			n, _ := strconv.Atoi(h)
			hours = append(hours, n)
		}
	}
	slices.Sort(hours)
	gap := 0
	for i, h := range hours {
		next := hours[(i+1)%len(hours)]
		if next <= h {
			next += 24
		}
		gap = max(gap, next-h)
	}
	return gap
}

// bdcOffsiteAfterEveryBackup checks that the backup action copies the repository (with its
// WAL) off-site each time before it records success: the loss claim for a lost host rests on it.
func bdcOffsiteAfterEveryBackup(t *testing.T, dir string) {
	t.Helper()
	script := bopsReadFile(t, filepath.Join(dir, "ops", "backup", "postgres-pgbackrest.sh"))
	body := script[strings.Index(script, "\ndo_backup() {"):]
	body = body[:strings.Index(body, "\n}\n")]
	cp := strings.Index(body, `restic_on offsite backup`)
	ok := strings.Index(body, `metric_backup_success`)
	if cp < 0 || ok < 0 || cp > ok || !strings.Contains(body, `"$PGBACKREST_REPO1_PATH" "$MANIFEST_DIR"`) {
		t.Error("postgres-pgbackrest.sh backup does not copy the whole repository off-site before it records success")
	}
}

// bdcPgbrRetention runs the script's own pgbr_env with the generated backup.env and returns
// the retention it gives pgBackRest (full, differential).
func bdcPgbrRetention(t *testing.T, dir string) (full, diff string) {
	t.Helper()
	script := `set -euo pipefail
. ops/backup/lib.sh
eval "$(sed -n '/^pgbr_env() {/,/^}/p' ops/backup/postgres-pgbackrest.sh)"
PGBACKREST_STANZA=x PGBACKREST_PG1_PATH=/nonexistent PGBACKREST_REPO1_CIPHER_PASS=x
pgbr_env
printf '%s %s\n' "$PGBACKREST_REPO1_RETENTION_FULL" "$PGBACKREST_REPO1_RETENTION_DIFF"
`
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(bpgEnv(), "TMPDIR="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pgbr_env: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("pgbr_env printed %q", out)
	}
	return f[0], f[1]
}

// bdcCheck runs ops/acceptance/check.sh in the project (the tools it would call are stubbed:
// only the backups item matters here).
func bdcCheck(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(dir, "ops", "acceptance", "check.sh"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PROMTOOL=true", "AMTOOL=true", "LOGROTATE=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("check.sh: %v\n%s", err, out)
	}
	return string(out)
}
