package backup

import (
	"bufio"
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

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

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
	analyze := e2eutil.RequireTool(t, "systemd-analyze")
	fakeBin := bopsFakeDocker(t)
	jobs := map[string]string{"backup": "backup.sh", "backup-incr": "backup.sh", "prune": "prune.sh", "restore-test": "restore-test.sh", "verify": "verify.sh"}
	for _, c := range bopsCases() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, c.set())
			want := bopsWant(c)
			var wantUnits []string
			for job := range want {
				wantUnits = append(wantUnits, c.name+"-"+job+".service", c.name+"-"+job+".timer")
			}
			sort.Strings(wantUnits)
			if got := e2eutil.ReadDirNames(t, filepath.Join(dir, "ops", "systemd")); !slices.Equal(got, wantUnits) {
				t.Fatalf("ops/systemd: %v, want %v", got, wantUnits)
			}
			if got := e2eutil.ReadDirNames(t, filepath.Join(dir, "ops", "cron")); !slices.Equal(got, []string{c.name + "-backup"}) {
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
