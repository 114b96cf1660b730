package backup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestBackupMariadbFaultsDump: the logical method (mariadb-dump.sh) on the local MariaDB.
func TestBackupMariadbFaultsDump(t *testing.T) {
	requireFaultMatrix(t)
	t.Parallel()
	for _, tool := range []string{"mariadb", "mariadb-dump", "mariadb-admin", "mariadbd", "mariadb-install-db", "restic", "jq", "perl"} {
		e2eutil.RequireTool(t, tool)
	}
	db := e2eutil.NewScratchDB(t, "mariadb")
	root := bmySharedRoot
	suffix := strings.TrimPrefix(db.Name, "opsready_t_")
	bk, nx, app, role, role2, adm := "bmf_bk_"+suffix, "bmf_nx_"+suffix, "bmf_app_"+suffix, "bmf_r_"+suffix, "bmf_r2_"+suffix, "bmf_adm_"+suffix
	t.Cleanup(func() {
		for _, s := range []string{"DROP USER IF EXISTS '" + bk + "'@'%'", "DROP USER IF EXISTS '" + nx + "'@'%'", "DROP USER IF EXISTS '" + adm + "'@'%'",
			"DROP USER IF EXISTS '" + app + "'@'%'", "DROP ROLE IF EXISTS " + role, "DROP ROLE IF EXISTS " + role2} {
			if out, err := exec.Command("mariadb", append(append([]string{}, root.args...), "-e", s)...).CombinedOutput(); err != nil {
				t.Errorf("%s: %v: %s", s, err, out)
			}
		}
	})
	// bk has exactly the documented privileges; nx the same without EXECUTE.
	root.exec(t, fmt.Sprintf(bmfQ(`CREATE USER '%[1]s'@'%%' IDENTIFIED BY 'bk-%[5]s';
		GRANT %[6]s ON *.* TO '%[1]s'@'%%'; GRANT INSERT, CREATE, DELETE ON ~%[4]s~.* TO '%[1]s'@'%%';
		CREATE USER '%[2]s'@'%%' IDENTIFIED BY 'bk-%[5]s';
		GRANT %[7]s ON *.* TO '%[2]s'@'%%'; GRANT INSERT, CREATE, DELETE ON ~%[4]s~.* TO '%[2]s'@'%%';
		CREATE USER '%[3]s'@'%%' IDENTIFIED BY 'app-%[5]s';
		CREATE USER '%[10]s'@'%%' IDENTIFIED BY 'adm-%[5]s'; GRANT ALL PRIVILEGES ON *.* TO '%[10]s'@'%%' WITH GRANT OPTION;
		CREATE ROLE %[8]s; CREATE ROLE %[9]s`),
		bk, nx, app, db.Name, suffix, bmfDocPrivs, strings.Replace(bmfDocPrivs, " EXECUTE,", "", 1), role, role2, adm))
	root.exec(t, bmfAwkwardSQL(db.Name, app, role, role2), db.Name)
	accounts := []string{"'" + app + "'@'%'", role, role2}
	want := bmfSnapshot(t, root, db.Name, accounts)

	p := bmyNewProject(t, "logical", "MARIADB_HOST=127.0.0.1", "MARIADB_PORT=3306", "MARIADB_DATABASE="+db.Name,
		"MARIADB_USER="+bk, "BACKUP_STORES=mariadb:mariadb-dump")
	pw := bmySecret(t, p.tmp, "bk.pw", "bk-"+suffix)
	p.env = append(p.env, "MARIADB_PASSWORD_FILE="+pw)
	admEnv := []string{"MARIADB_USER=" + adm, "MARIADB_PASSWORD_FILE=" + bmySecret(t, p.tmp, "adm.pw", "adm-"+suffix)}
	success := "textfile/backup_mariadb_logical.prom"

	// The documented privileges suffice (defect 7), and the backup restores with its grants
	// on a table, columns and routines (defect 1: the grants were loaded before the tables).
	start := time.Now()
	p.must(t, nil, "backup.sh")
	m := p.manifest(t)
	t.Logf("backup with the documented privileges: %s, %d rows", time.Since(start).Round(time.Millisecond), m.RowsTotal)
	if m.RowsTotal != 2990+500+40+1 {
		t.Errorf("manifest rows_total %d, want %d (orders, ünï_表, blobs, canary)", m.RowsTotal, 2990+500+40+1)
	}
	out, took := p.must(t, []string{"RESTORE_TEST_FROM=primary"}, "restore-test.sh")
	t.Logf("restore-test.sh: %s: %s", took.Round(time.Millisecond), p.lastRestoreTest(t))
	if !strings.Contains(p.lastRestoreTest(t), "result=passed") {
		t.Errorf("restore test: %s\n%s", p.lastRestoreTest(t), out)
	}
	before, err := os.ReadFile(p.path(success))
	if err != nil {
		t.Fatal(err)
	}
	passed, err := os.ReadFile(p.path("textfile/restore_test_mariadb.prom"))
	if err != nil {
		t.Fatal(err)
	}

	// The disaster path with --users into a new database after the accounts are gone: the
	// data, definitions and grants come back identical.
	root.exec(t, fmt.Sprintf("DROP USER '%s'@'%%'; DROP ROLE %s; DROP ROLE %s", app, role, role2))
	target := e2eutil.NewScratchDB(t, "mariadb")
	// The backup holds every account of the shared server, also those of tests running beside
	// this one, whose roles exist already and may not be handed out by this administrator: a
	// refused grant of those is reported (non-zero exit) but must not be one of this test's.
	// Accounts of other tests that the backup holds and that went away meanwhile come back
	// with --users: they are dropped again afterwards (ours are dropped at cleanup).
	existed := map[string]bool{}
	for _, a := range strings.Split(root.exec(t, "SELECT CONCAT(user, '@', host) FROM mysql.user"), "\n") {
		existed[a] = true
	}
	defer func() {
		for _, a := range strings.Split(root.exec(t, "SELECT CONCAT(user, '@', host) FROM mysql.user"), "\n") {
			if user, host, _ := strings.Cut(a, "@"); !existed[a] && !strings.HasSuffix(user, suffix) {
				if host == "" {
					root.exec(t, fmt.Sprintf("DROP ROLE IF EXISTS `%s`", user))
				} else {
					root.exec(t, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", user, host))
				}
			}
		}
	}()
	if stderr, _, _, err := p.run(admEnv, "restore.sh", "mariadb", "--target-db", target.Name, "--users"); err != nil {
		if !strings.Contains(stderr, "the data is restored, but") || strings.Contains(stderr, suffix+"`") {
			t.Fatalf("restore --users: %v\n%s", err, stderr)
		}
		t.Logf("restore --users reported grants of other tests' accounts: %s", stderr)
	}
	got := bmfSnapshot(t, root, target.Name, accounts)
	delete(got, "checksum opsready_backup_canary")
	// The restored grants name the database of the backup (db), not the target.
	for _, a := range accounts {
		got["grants "+a] = strings.ReplaceAll(got["grants "+a], db.Name, "DB")
	}
	bmfDiff(t, "restore --users", want, got)

	// Without EXECUTE, a view calling a function cannot be dumped: the backup fails and says so.
	nxEnv := []string{"MARIADB_USER=" + nx}
	stderr, _, _, err := p.run(nxEnv, "backup.sh")
	bmfRecord(t, "dump: backup account without EXECUTE", p.bmfFailed(t, "without EXECUTE", "backup", err, stderr, success, before,
		"execute command denied", "needs EXECUTE"))

	// Configuration faults.
	port := e2eutil.FreePort(t)
	for _, c := range []struct {
		name  string
		env   []string
		wants []string
	}{
		{"dump: missing password file", []string{"MARIADB_PASSWORD_FILE=" + p.path("nope.pw")}, []string{"MARIADB_PASSWORD_FILE", "missing"}},
		{"dump: wrong password", []string{"MARIADB_PASSWORD_FILE=" + bmySecret(t, p.tmp, "wrong.pw", "wrong")}, []string{"cannot connect", "Access denied"}},
		{"dump: unreachable server", []string{fmt.Sprintf("MARIADB_PORT=%d", port)}, []string{fmt.Sprintf("cannot connect to MariaDB at 127.0.0.1:%d", port)}},
		{"dump: missing database", []string{"MARIADB_DATABASE=" + db.Name + "_gone"}, []string{"database " + db.Name + "_gone does not exist"}},
	} {
		stderr, _, _, err := p.run(c.env, "backup.sh")
		bmfRecord(t, c.name, p.bmfFailed(t, c.name, "backup", err, stderr, success, before, c.wants...))
	}

	// The dump's connection killed by the server mid-dump (the dump waits on a locked table).
	lock := bmfLock(t, db.Name, "orders")
	killed := make(chan string, 1)
	go func() {
		defer close(killed)
		sql := fmt.Sprintf("SELECT id FROM information_schema.processlist WHERE user = '%s' AND state LIKE 'Waiting for table%%' LIMIT 1", bk)
		for i := 0; i < 3000; i++ {
			id, _ := exec.Command("mariadb", append(append([]string{}, root.args...), "-N", "-e", sql)...).Output()
			if s := strings.TrimSpace(string(id)); s != "" {
				_ = exec.Command("mariadb", append(append([]string{}, root.args...), "-e", "KILL "+s)...).Run()
				killed <- s
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	stderr, _, _, err = p.run(nil, "backup.sh")
	lock.release()
	if <-killed == "" {
		t.Error("the dump's connection was never seen waiting, so never killed")
	}
	bmfRecord(t, "dump: connection killed mid-dump", p.bmfFailed(t, "connection killed", "backup", err, stderr, success, before,
		"mariadb-dump of "+db.Name+" failed"))

	// SIGKILL of the whole job at three points: waiting in the dump, in restic backup holding
	// its repository lock, in the off-site copy holding its locks. Each leaves no success
	// behind, and the next run is healthy despite the stale restic locks.
	bin := filepath.Join(p.tmp, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	bmfResticWrapper(t, bin)
	marker := p.path("stopped")
	wrapped := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "BMF_MARKER=" + marker}
	for _, point := range []string{"dump", "backup", "copy"} {
		name := "dump: SIGKILL during " + point
		os.Remove(marker)
		var ready func() bool
		if point == "dump" {
			lock = bmfLock(t, db.Name, "orders")
			ready = func() bool { return bmfWaiting(t, bk) != "" }
		} else {
			ready = func() bool { _, err := os.Stat(marker); return err == nil }
		}
		p.bmfKill(t, append(wrapped, "BMF_STOP_AT="+point), ready, "backup.sh")
		if point == "dump" {
			lock.release()
		}
		after, _ := os.ReadFile(p.path(success))
		ok := string(after) == string(before)
		if !ok {
			t.Errorf("%s: the success metric changed", name)
		}
		// The next run is healthy and takes a new success.
		if _, _, _, err := p.run(wrapped, "backup.sh"); err != nil {
			ok = false
			stderr, _, _, _ := p.run(nil, "backup.sh")
			t.Errorf("%s: the next backup failed:\n%s", name, stderr)
		}
		bmfRecord(t, name, ok)
		before, _ = os.ReadFile(p.path(success))
	}

	// A full staging disk: a 128 KiB tmpfs, filled up. The dump streams into restic and never
	// touches the staging directory; its small files (manifest, accounts, grants) must fail
	// clearly there.
	if os.Geteuid() == 0 {
		stage := p.path("smallstage")
		if err := os.MkdirAll(stage, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", stage).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("umount", stage).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", stage, err, out)
			}
		})
		// The staging directory of the store exists (the script empties it, the filler stays
		// beside it): every byte of the tmpfs taken.
		if err := os.WriteFile(filepath.Join(stage, "filler"), make([]byte, 256<<10), 0o600); err == nil {
			t.Fatal("the 128 KiB tmpfs took 256 KiB of filler: not full")
		}
		stderr, _, _, err = p.run([]string{"BACKUP_STAGING_DIR=" + stage}, "backup.sh")
		bmfRecord(t, "dump: staging disk full", p.bmfFailed(t, "staging full", "backup", err, stderr, success, before,
			"No space left on device"))
	} else if e2eutil.InCI() {
		t.Error("the full-disk case needs root (mount -t tmpfs)")
	}
	p.must(t, nil, "backup.sh")
	before, _ = os.ReadFile(p.path(success))

	// Damaged backups in the repository the restore test reads: the newest snapshot replaced
	// by one whose dump is corrupted, truncated, or whose manifest is gone.
	for _, c := range []struct {
		name, want string
		damage     func(dir string)
	}{
		{"dump: corrupted dump in the repository", "damaged", func(dir string) {
			f, err := os.OpenFile(filepath.Join(dir, "dump.sql"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("XX"), 5000); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}},
		{"dump: truncated dump in the repository", "truncated", func(dir string) {
			fi, _ := os.Stat(filepath.Join(dir, "dump.sql"))
			if err := os.Truncate(filepath.Join(dir, "dump.sql"), fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"dump: deleted manifest", "no manifest", func(dir string) {
			if err := os.Remove(filepath.Join(dir, "manifest.json")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		p.bmfReplaceNewest(t, "backups/restic", c.damage)
		stderr, _, _, err := p.run([]string{"RESTORE_TEST_FROM=primary"}, "restore-test.sh")
		bmfRecord(t, c.name, p.bmfFailed(t, c.name, "restore-test", err, stderr, "textfile/restore_test_mariadb.prom", passed,
			"restore test of mariadb FAILED", c.want))
	}
	// The next backup and restore test are healthy.
	p.must(t, nil, "backup.sh")
	p.must(t, []string{"RESTORE_TEST_FROM=primary"}, "restore-test.sh")
	if line := p.lastRestoreTest(t); !strings.Contains(line, "result=passed") {
		t.Errorf("restore test after the damaged backups: %s", line)
	}
}
