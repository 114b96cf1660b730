package backup

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The pgBackRest fault matrix: one PostgreSQL 15 with WAL archiving through the generated
// postgres-pgbackrest.sh, and one fault after another injected into its backups, restore test
// and scheduled verification (ops/backup/verify.sh): wrong cipher pass, missing repository, a
// damaged backup file, a deleted WAL segment between two backups (a gap that breaks
// point-in-time recovery while every backup still restores), a failing archive_command, a full
// repository disk, a damaged pack of the off-site copy, SIGKILL in the middle of a backup.
// Each case asserts a non-zero exit, an error naming the cause, the failure recorded (log
// line and result metric), the success metrics byte for byte untouched, and the next run,
// once the fault is removed, healthy.

// bpfRig is the running instance and the generated project the cases share.
type bpfRig struct {
	proj, base, backups, repo, offsite, textfile, logs, sock string
	env                                                      []string
	conn, admin                                              []string
	uid, gid                                                 int
}

// bpfCase is one fault: inject it (returning what undoes it), the run that must fail and
// what its output must name, where the failure is recorded, and the run that must pass
// afterwards.
type bpfCase struct {
	name   string
	inject func(t *testing.T, r *bpfRig) (env []string, heal func())
	script string
	args   []string
	want   []string
	// record is where the failure must show: "backup", "verify:<repository>" or "restore-test".
	record string
	next   []string // script and args of the healthy run after heal
	env    []string // extra environment of both runs
	also   func(t *testing.T, r *bpfRig, env []string)
}

func TestBackupPgBackRestFaults(t *testing.T) {
	requireFaultMatrix(t)
	t.Parallel()
	for _, tool := range []string{"pgbackrest", "psql", "restic", "jq", "flock", "setpriv",
		filepath.Join(bpgPgBin, "initdb"), filepath.Join(bpgPgBin, "pg_ctl")} {
		e2eutil.RequireTool(t, tool)
	}
	r := bpfStart(t)
	start := time.Now()
	out, _ := bpgMustRun(t, r.proj, append(r.env, "BACKUP_KIND=full"), "backup.sh")
	t.Logf("baseline full backup: %s", bpfTail(out, 1))

	cases := []bpfCase{
		{
			// Issue 10, defect 6: full, WAL, a segment deleted from the archive, differential.
			// Every backup restores, but no point in time after the gap can be reached.
			name: "deleted WAL segment (gap)",
			inject: func(t *testing.T, r *bpfRig) ([]string, func()) {
				var segs []string
				for i := 0; i < 3; i++ {
					bpgPsql(t, r.conn, fmt.Sprintf("INSERT INTO items (name) SELECT 'gap %d ' || g FROM generate_series(1, 500) g;", i))
					segs = append(segs, bpgPsql(t, r.conn, "SELECT pg_walfile_name(pg_current_wal_lsn());"))
					bpgSwitchWAL(t, r.conn)
				}
				files, _ := filepath.Glob(filepath.Join(r.repo, "archive", "bpf", "*", "*", segs[1]+"-*"))
				if len(files) != 1 {
					t.Fatalf("WAL segment %s in the archive: %v", segs[1], files)
				}
				undo := bpfSave(t, files[0])
				bpfMust(t, os.Remove(files[0]))
				t.Logf("deleted %s from the archive", strings.TrimPrefix(files[0], r.repo))
				// The differential backup itself succeeds: its own WAL is complete.
				bpgMustRun(t, r.proj, append(r.env, "BACKUP_KIND=diff"), "backup.sh")
				return nil, undo
			},
			// The local repository: the off-site copy (the default) has the same gap since the
			// diff backup copied it, and fetching it costs seconds.
			script: "restore-test.sh", want: []string{"the WAL archive has a gap", "are missing"},
			// Healthy again: the archive checks pass (a passing restore test of this repository is
			// TestBackupPostgresPgBackRest's, and costs a scratch cluster).
			record: "restore-test", next: []string{"verify.sh", "pgbackrest"}, env: []string{"RESTORE_TEST_FROM=primary"},
			also: func(t *testing.T, r *bpfRig, env []string) {
				// The daily verification of the local repository finds it too.
				bpfExpectFailure(t, r, env, "verify.sh", []string{"pgbackrest"}, []string{"the WAL archive has a gap"}, "verify:pgbackrest")
			},
		},
		{
			name: "damaged backup file",
			inject: func(t *testing.T, r *bpfRig) ([]string, func()) {
				f := bpfBiggest(t, filepath.Join(r.repo, "backup", "bpf", "*F", "pg_data", "base", "*", "*"))
				undo := bpfSave(t, f)
				bpgDamage(t, f)
				return nil, undo
			},
			script: "verify.sh", args: []string{"pgbackrest"}, want: []string{"damaged or missing files", "status: invalid"},
			record: "verify:pgbackrest", next: []string{"verify.sh", "pgbackrest"},
		},
		{
			name: "wrong cipher pass (backup)",
			inject: func(t *testing.T, r *bpfRig) ([]string, func()) {
				return []string{"PGBACKREST_CIPHER_PASS_FILE=" + bpfWrongPass(t, r)}, func() {}
			},
			script: "backup.sh", args: nil, want: []string{"stanza-create", "wrong cipher pass"},
			record: "backup", next: []string{"backup.sh"},
		},
		{
			name: "wrong cipher pass (verify)",
			inject: func(t *testing.T, r *bpfRig) ([]string, func()) {
				return []string{"PGBACKREST_CIPHER_PASS_FILE=" + bpfWrongPass(t, r)}, func() {}
			},
			script: "verify.sh", args: []string{"pgbackrest"}, want: []string{"cannot read the repository", "wrong cipher pass"},
			record: "verify:pgbackrest", next: []string{"verify.sh", "pgbackrest"},
		},
		{
			name: "missing repository",
			inject: func(t *testing.T, r *bpfRig) ([]string, func()) {
				bpfMust(t, os.Rename(r.repo, r.repo+".gone"))
				return nil, func() { bpfMust(t, os.Rename(r.repo+".gone", r.repo)) }
			},
			script: "verify.sh", args: []string{"pgbackrest"}, want: []string{"no pgBackRest repository", r.repo},
			record: "verify:pgbackrest", next: []string{"verify.sh", "pgbackrest"},
		},
		{
			name: "archive_command failing",
			inject: func(t *testing.T, r *bpfRig) ([]string, func()) {
				// The server's archive_command (this script, as PostgreSQL's user) cannot read
				// the cipher pass; the backup job, as root, still can.
				cipher := filepath.Join(r.base, "cipher_pass")
				bpfMust(t, os.Chmod(cipher, 0))
				// pgBackRest's check waits 60 s for the WAL by default.
				return []string{"PGBACKREST_ARCHIVE_TIMEOUT=5"}, func() {
					bpfMust(t, os.Chmod(cipher, 0o600))
					// The archiver retries at its own pace: let it catch up.
					bpgSwitchWAL(t, r.conn)
				}
			},
			script: "backup.sh", want: []string{"does not archive its WAL"},
			record: "backup", next: []string{"backup.sh"},
		},
		{
			name:   "full repository disk",
			inject: bpfFullDisk,
			script: "backup.sh", want: []string{"backup --type=full failed"},
			record: "backup", next: []string{"backup.sh"},
		},
		{
			name: "damaged off-site pack (verify)",
			inject: func(t *testing.T, r *bpfRig) ([]string, func()) {
				f := bpfBiggest(t, filepath.Join(r.offsite, "data", "*", "*"))
				undo := bpfSave(t, f)
				bpgDamage(t, f)
				return []string{"BACKUP_VERIFY_READ_DATA_SUBSET=100%"}, undo
			},
			script: "verify.sh", args: []string{"offsite"}, want: []string{"restic check of the offsite repository"},
			record: "verify:offsite", next: []string{"verify.sh", "offsite"},
		},
		{
			name:   "SIGKILL mid-backup",
			inject: func(t *testing.T, r *bpfRig) ([]string, func()) { return nil, func() {} },
			script: "", record: "", next: []string{"backup.sh"},
		},
	}

	tried, caught := 0, 0
	for _, c := range cases {
		ran := false
		ok := t.Run(c.name, func(t *testing.T) {
			ran = true
			cstart := time.Now()
			extra, heal := c.inject(t, r)
			env := append(append(append([]string{}, r.env...), c.env...), extra...)
			if c.name == "SIGKILL mid-backup" {
				bpfKillMidBackup(t, r)
			} else {
				kind := "BACKUP_KIND=diff"
				if c.name == "full repository disk" {
					kind = "BACKUP_KIND=full"
				}
				bpfExpectFailure(t, r, append(env, kind), c.script, c.args, c.want, c.record)
				if c.also != nil {
					c.also(t, r, env)
				}
			}
			heal()
			out, _, err := bpgRun(r.proj, append(append(append([]string{}, r.env...), c.env...), "BACKUP_KIND=diff"), c.next[0], c.next[1:]...)
			if err != nil {
				t.Fatalf("the next run after the fault (%s) failed: %v\n%s", strings.Join(c.next, " "), err, out)
			}
			bpfCheckPassed(t, r, c.next)
			t.Logf("%s: caught and healthy again in %s", c.name, time.Since(cstart).Round(time.Millisecond))
		})
		if ran {
			tried++
			if ok {
				caught++
			}
		}
	}
	t.Logf("pgBackRest fault matrix: %d cases tried, %d caught (non-zero exit, cause named, failure recorded, success untouched, next run healthy), in %s",
		tried, caught, time.Since(start).Round(time.Millisecond))
}

// bpfStart generates a pgBackRest project, starts PostgreSQL 15 archiving through it, and
// loads a small data set.
func bpfStart(t *testing.T) *bpfRig {
	t.Helper()
	r := &bpfRig{}
	r.uid, r.gid = bpgPostgresUser(t)
	r.proj = e2eutil.Generate(t, map[string]string{"db": "postgres", "db_backup_method": "physical"})
	for d := filepath.Dir(r.proj); d != filepath.Dir(filepath.Dir(filepath.Dir(r.proj))); d = filepath.Dir(d) {
		bpfMust(t, os.Chmod(d, 0o755))
	}
	r.base = bpgFastDir(t)
	data := filepath.Join(r.base, "data")
	r.sock, r.backups = filepath.Join(r.base, "s"), filepath.Join(r.base, "backups")
	for _, d := range []string{data, r.sock, r.backups} {
		bpfMust(t, os.Mkdir(d, 0o700))
	}
	bpfMust(t, os.Chmod(r.backups, 0o755))
	r.repo = filepath.Join(r.backups, "pgbackrest")
	cipher, pw := filepath.Join(r.base, "cipher_pass"), filepath.Join(r.base, "db_password")
	bpfMust(t, os.WriteFile(cipher, []byte("bpf-cipher-pass-0123456789abcdefghijklmnopqrstuv\n"), 0o600))
	bpfMust(t, os.WriteFile(pw, []byte("unused\n"), 0o600))
	for _, p := range []string{r.base, data, r.sock, cipher} {
		bpfMust(t, os.Chown(p, r.uid, r.gid))
	}
	port := e2eutil.FreePort(t)
	r.textfile, r.logs, r.offsite = filepath.Join(r.base, "textfile"), filepath.Join(r.base, "logs"), filepath.Join(r.base, "offsite")
	r.env = bpgEnv("BACKUP_DIR="+r.backups, "BACKUP_OFFSITE_REPOSITORY="+r.offsite, "BACKUP_TEXTFILE_DIR="+r.textfile,
		"BACKUP_LOG_DIR="+r.logs, "BACKUP_STORES=postgres:postgres-pgbackrest", "BACKUP_LOCK_TIMEOUT=60",
		"PGBACKREST_STANZA=bpf", "PGBACKREST_PG1_PATH="+data, "PGBACKREST_PG1_PORT="+strconv.Itoa(port),
		"PGBACKREST_PG1_SOCKET_PATH="+r.sock, "PGBACKREST_CIPHER_PASS_FILE="+cipher,
		"PGHOST="+r.sock, "PGPORT="+strconv.Itoa(port), "PGUSER=postgres", "PGDATABASE=app", "PGPASSWORD_FILE="+pw,
		"TMPDIR="+filepath.Join(r.base, "tmp"))
	script := filepath.Join(r.proj, "ops", "backup", "postgres-pgbackrest.sh")
	initdb := bpgAs(exec.Command(filepath.Join(bpgPgBin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"), r.uid, r.gid, r.base)
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-c port=%d -c listen_addresses='' -c unix_socket_directories='%s' -c fsync=off "+
		"-c wal_level=replica -c archive_mode=on -c archive_command='%s archive-push %%p'", port, r.sock, script)
	if err := bpgPgCtl(r.uid, r.gid, r.base, r.env, "-D", data, "-l", filepath.Join(r.base, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bpgPgCtl(r.uid, r.gid, r.base, r.env, "-D", data, "-m", "immediate", "stop"); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(r.base, "server.log"))
			t.Logf("server.log (tail):\n%s", bpfTail(string(b), 30))
		}
	})
	r.admin = []string{"-h", r.sock, "-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres"}
	bpgPsql(t, r.admin, "CREATE DATABASE app;")
	r.conn = []string{"-h", r.sock, "-p", strconv.Itoa(port), "-U", "postgres", "-d", "app"}
	bpgPsql(t, r.conn, bpgLoadSQL("", 5000))
	return r
}

// bpfExpectFailure runs script and asserts the failure: non-zero exit, want in its output,
// the failure recorded where record says, and no success metric changed.
func bpfExpectFailure(t *testing.T, r *bpfRig, env []string, script string, args, want []string, record string) {
	t.Helper()
	before := bpfSuccessFiles(t, r)
	out, took, err := bpgRun(r.proj, env, script, args...)
	if err == nil {
		t.Fatalf("%s %s succeeded despite the fault:\n%s", script, strings.Join(args, " "), out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: the output does not name the cause (%q):\n%s", script, w, out)
		}
	}
	if after := bpfSuccessFiles(t, r); !bpfSameFiles(before, after) {
		t.Errorf("%s failed but changed the success metrics:\nbefore %v\nafter  %v", script, bpfKeys(before), bpfKeys(after))
	}
	bpfCheckRecorded(t, r, record, want[0])
	t.Logf("%s %s: failed in %s: %s", script, strings.Join(args, " "), took.Round(time.Millisecond), bpfTail(out, 1))
}

// bpfCheckRecorded asserts that the failure is in the log and the result metric.
func bpfCheckRecorded(t *testing.T, r *bpfRig, record, cause string) {
	t.Helper()
	switch {
	case strings.HasPrefix(record, "verify:"):
		repo := strings.TrimPrefix(record, "verify:")
		line := bpgLastLine(t, filepath.Join(r.logs, "verify.log"))
		if bpgField(line, "repository") != repo || bpgField(line, "result") != "failed" || !strings.Contains(line, cause) {
			t.Errorf("verify.log: %q, want repository=%s result=failed naming %q", line, repo, cause)
		}
		if v := bpgMetric(t, filepath.Join(r.textfile, "backup_verify_result_"+repo+".prom"), "backup_verify_last_result"); v != 0 {
			t.Errorf("backup_verify_last_result{repository=%q} = %v after a failed check, want 0", repo, v)
		}
	case record == "restore-test":
		line := bpgLastLine(t, filepath.Join(r.logs, "restore-test.log"))
		if bpgField(line, "result") != "failed" || !strings.Contains(line, cause) {
			t.Errorf("restore-test.log: %q, want result=failed naming %q", line, cause)
		}
		if v := bpgMetric(t, filepath.Join(r.textfile, "restore_test_result_postgres.prom"), "restore_test_last_result"); v != 0 {
			t.Errorf("restore_test_last_result = %v after a failed test, want 0", v)
		}
	case record == "backup":
		bpfCheckBackupFailureRecorded(t, r, cause)
	}
}

// bpfCheckBackupFailureRecorded asserts the failure of a backup in backup-results.log and
// the failure metric backup_last_result (lib.sh records both when a backup job ends).
func bpfCheckBackupFailureRecorded(t *testing.T, r *bpfRig, cause string) {
	t.Helper()
	line := bpgLastLine(t, filepath.Join(r.logs, "backup-results.log"))
	if bpgField(line, "store") != "postgres" || bpgField(line, "result") != "failed" || !strings.Contains(line, cause) {
		t.Errorf("backup-results.log: %q, want store=postgres result=failed naming %q", line, cause)
	}
	if v := bpgMetric(t, filepath.Join(r.textfile, "backup_result_postgres.prom"), "backup_last_result"); v != 0 {
		t.Errorf("backup_last_result{store=\"postgres\"} = %v after a failed backup, want 0", v)
	}
}

// bpfCheckPassed asserts that the healthy run after a fault recorded a pass.
func bpfCheckPassed(t *testing.T, r *bpfRig, next []string) {
	t.Helper()
	switch next[0] {
	case "verify.sh":
		repo := next[1]
		if v := bpgMetric(t, filepath.Join(r.textfile, "backup_verify_result_"+repo+".prom"), "backup_verify_last_result"); v != 1 {
			t.Errorf("backup_verify_last_result{repository=%q} = %v after a passed check, want 1", repo, v)
		}
		line := bpgLastLine(t, filepath.Join(r.logs, "verify.log"))
		if bpgField(line, "result") != "passed" {
			t.Errorf("verify.log: %q, want result=passed", line)
		}
	case "restore-test.sh":
		if v := bpgMetric(t, filepath.Join(r.textfile, "restore_test_result_postgres.prom"), "restore_test_last_result"); v != 1 {
			t.Errorf("restore_test_last_result = %v after a passed test, want 1", v)
		}
	}
}

// bpfSuccessFiles are the success metrics files (backups, restore tests, verifications).
func bpfSuccessFiles(t *testing.T, r *bpfRig) map[string]string {
	t.Helper()
	got := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(r.textfile, "*.prom"))
	for _, f := range files {
		n := filepath.Base(f)
		if strings.HasPrefix(n, "backup_postgres_") || n == "restore_test_postgres.prom" ||
			(strings.HasPrefix(n, "backup_verify_") && !strings.HasPrefix(n, "backup_verify_result_")) {
			b, err := os.ReadFile(f)
			bpfMust(t, err)
			got[n] = string(b)
		}
	}
	return got
}

func bpfSameFiles(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func bpfKeys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// bpfWrongPass writes a cipher pass that is not the repository's, readable by PostgreSQL's user.
func bpfWrongPass(t *testing.T, r *bpfRig) string {
	t.Helper()
	p := filepath.Join(r.base, "wrong_cipher_pass")
	bpfMust(t, os.WriteFile(p, []byte("not-the-pass-of-this-repository-0123456789abcdef\n"), 0o600))
	bpfMust(t, os.Chown(p, r.uid, r.gid))
	return p
}

// bpfBiggest is the largest regular file matching pattern.
func bpfBiggest(t *testing.T, pattern string) string {
	t.Helper()
	files, _ := filepath.Glob(pattern)
	var best string
	var most int64 = -1
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && fi.Size() > most {
			best, most = f, fi.Size()
		}
	}
	if best == "" {
		t.Fatalf("no file matches %s", pattern)
	}
	return best
}

// bpfSave keeps a copy of the file at path (content, mode, owner) and returns what puts it back.
func bpfSave(t *testing.T, path string) func() {
	t.Helper()
	b, err := os.ReadFile(path)
	bpfMust(t, err)
	fi, err := os.Stat(path)
	bpfMust(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	return func() {
		bpfMust(t, os.WriteFile(path, b, 0o600))
		bpfMust(t, os.Chmod(path, fi.Mode().Perm()))
		bpfMust(t, os.Chown(path, int(st.Uid), int(st.Gid)))
	}
}

// bpfFullDisk puts the repository on a tmpfs with little room left: a full backup cannot fit.
// What is archived meanwhile goes back to the real repository when the fault is removed.
func bpfFullDisk(t *testing.T, r *bpfRig) ([]string, func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		if e2eutil.InCI() {
			t.Fatal("the full-disk case mounts a tmpfs and needs root")
		}
		t.Skip("the full-disk case mounts a tmpfs and needs root")
	}
	var used int64
	bpfMust(t, filepath.Walk(r.repo, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			used += (fi.Size() + 4095) / 4096 * 4096
		}
		return err
	}))
	fi, err := os.Stat(r.repo)
	bpfMust(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	// The copy of the repository plus 1 MiB: a WAL segment still fits, a full backup not.
	size := used + 1024*1024
	if err := syscall.Mount("tmpfs", r.repo, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0750,uid=%d,gid=%d", size, st.Uid, st.Gid)); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", r.repo, err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if err := syscall.Unmount(r.repo, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", r.repo, err)
			}
			mounted = false
		}
	}
	t.Cleanup(unmount)
	// The repository's content onto the tmpfs (read from below the mount through /proc is
	// not possible: copy it from a bind of the parent instead).
	under := filepath.Join(r.base, "repo-under")
	bpfMust(t, os.Mkdir(under, 0o700))
	bpfMust(t, syscall.Mount(r.backups, under, "", syscall.MS_BIND, ""))
	if out, err := exec.Command("cp", "-a", filepath.Join(under, "pgbackrest")+"/.", r.repo+"/").CombinedOutput(); err != nil {
		t.Fatalf("copy the repository onto the tmpfs: %v\n%s", err, out)
	}
	bpfMust(t, syscall.Unmount(under, 0))
	bpfMust(t, os.Remove(under))
	return []string{"PGBACKREST_ARCHIVE_TIMEOUT=5"}, func() {
		// WAL archived onto the tmpfs while it was mounted goes back below it.
		keep := filepath.Join(r.base, "repo-archive-keep")
		if out, err := exec.Command("cp", "-a", filepath.Join(r.repo, "archive"), keep).CombinedOutput(); err != nil {
			t.Fatalf("save the archive: %v\n%s", err, out)
		}
		unmount()
		if out, err := exec.Command("cp", "-a", "-n", keep+"/.", filepath.Join(r.repo, "archive")+"/").CombinedOutput(); err != nil {
			t.Fatalf("put the archive back: %v\n%s", err, out)
		}
		bpfMust(t, os.RemoveAll(keep))
		bpgSwitchWAL(t, r.conn)
	}
}

// bpfKillMidBackup starts a differential backup and SIGKILLs its whole process group while
// pgBackRest copies the data directory, then checks that no success was recorded.
func bpfKillMidBackup(t *testing.T, r *bpfRig) {
	t.Helper()
	before := bpfSuccessFiles(t, r)
	cmd := exec.Command(filepath.Join(r.proj, "ops", "backup", "backup.sh"))
	cmd.Dir = r.proj
	cmd.Env = append(append([]string{}, r.env...), "BACKUP_KIND=diff")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	bpfMust(t, err)
	cmd.Stdout = io.Discard
	bpfMust(t, cmd.Start())
	pgid := cmd.Process.Pid
	killed := false
	sc := bufio.NewScanner(stderr)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.Contains(sc.Text(), "taking a diff backup") {
			// Stop the group at once, then find pgBackRest's backup among it: the kill lands
			// in the middle of the backup, long before the success metric (after the
			// off-site copy).
			bpfMust(t, syscall.Kill(-pgid, syscall.SIGSTOP))
			bpfMust(t, syscall.Kill(-pgid, syscall.SIGKILL))
			killed = true
			break
		}
	}
	go io.Copy(io.Discard, stderr) //nolint:errcheck // drain what is left
	err = cmd.Wait()
	if !killed {
		t.Fatalf("the backup ended before it could be killed (%v):\n%s", err, strings.Join(seen, "\n"))
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Errorf("backup.sh: %v, want killed by SIGKILL", err)
	}
	// Nothing of the group may survive (pgBackRest's children included).
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(-pgid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if after := bpfSuccessFiles(t, r); !bpfSameFiles(before, after) {
		t.Errorf("a killed backup changed the success metrics: %v -> %v", bpfKeys(before), bpfKeys(after))
	}
}

func bpfTail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func bpfMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
