package backup

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// bmyServer is a private mariadbd on a free port with its own data directory and socket.
type bmyServer struct {
	datadir, sock string
	conn          bmyConn
}

// bmyStartServer installs and starts a mariadbd in a temporary directory; stopped at cleanup.
func bmyStartServer(t *testing.T) bmyServer {
	t.Helper()
	base := t.TempDir()
	s := bmyServer{datadir: filepath.Join(base, "data"), sock: filepath.Join(base, "mysqld.sock")}
	s.conn = bmyConn{args: []string{"--no-defaults", "--socket=" + s.sock, "-u", "root"}}
	install := []string{"--no-defaults", "--datadir=" + s.datadir, "--auth-root-authentication-method=normal", "--skip-test-db",
		"--tmpdir=" + e2eutil.MariadbTmpDir(t, base)}
	server := []string{"--no-defaults", "--datadir=" + s.datadir, "--socket=" + s.sock,
		"--port=" + strconv.Itoa(e2eutil.FreePort(t)), "--bind-address=127.0.0.1", "--log-error=" + filepath.Join(base, "mysqld.log"),
		"--pid-file=" + filepath.Join(base, "mysqld.pid"), "--innodb-buffer-pool-size=64M", "--skip-log-bin"}
	if os.Geteuid() == 0 {
		install = append(install, "--user=root")
		server = append(server, "--user=root")
	}
	if out, err := exec.Command("mariadb-install-db", install...).CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	mariadbd, err := exec.LookPath("mariadbd")
	if err != nil {
		mariadbd = "/usr/sbin/mariadbd"
	}
	cmd := exec.Command(mariadbd, server...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mariadbd: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = exec.Command("mariadb-admin", "--no-defaults", "--socket="+s.sock, "-uroot", "shutdown").Run()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("mariadb-admin", "--no-defaults", "--socket="+s.sock, "-uroot", "ping").Run() != nil {
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(base, "mysqld.log"))
			t.Fatalf("mariadbd exited: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("mariadbd did not answer within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// TestBackupMariadbPhysical: mariadb-backup chains on a private server: full, writes, incr,
// writes, incr; the restore test prepares the whole chain and finds the last writes; restore
// prepares an older point; a differential backup builds on the full; a new full and pruning
// drop the old chain; a damaged newest backup fails the restore test.
func TestBackupMariadbPhysical(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mariadb", "mariadb-admin", "mariadbd", "mariadb-install-db", "mariadb-backup", "restic", "jq"} {
		e2eutil.RequireTool(t, tool)
	}
	srv := bmyStartServer(t)
	srv.conn.exec(t, `CREATE DATABASE app;
		CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'; GRANT ALL ON app.* TO 'app'@'%';
		CREATE USER 'backup'@'localhost' IDENTIFIED BY 'backup-pw';
		GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SELECT ON *.* TO 'backup'@'localhost';
		GRANT INSERT, CREATE, DELETE ON app.* TO 'backup'@'localhost'`)
	srv.conn.exec(t, bmyLoadSQL(4000), "app")

	p := bmyNewProject(t, "physical",
		"MARIADB_SOCKET="+srv.sock, "MARIADB_USER=backup", "MARIADB_DATABASE=app", "MARIADB_DATADIR="+srv.datadir,
		"BACKUP_STORES=mariadb:mariadb-backup")
	p.cheapRepos(t)
	p.env = append(p.env, "MARIADB_PASSWORD_FILE="+bmySecret(t, p.tmp, "backup.pw", "backup-pw"))
	kind := func(k string) []string { return []string{"BACKUP_KIND=" + k} }

	_, took := p.must(t, kind("full"), "backup.sh")
	full := p.manifest(t)
	t.Logf("full backup: %s, %d bytes, LSN %d", took.Round(time.Millisecond), full.SizeBytes, full.Lsn.To)
	if full.Kind != "full" || full.Method != "mariadb-backup" || full.Chain != full.Label || full.Parent != nil ||
		full.RowCountsExact || !slices.Contains(full.Users, "app@%") {
		t.Errorf("full manifest: %+v", full)
	}

	srv.conn.exec(t, `INSERT INTO items (name, qty, created_at) SELECT CONCAT('inc1 ', seq), 1, NOW() FROM seq_1_to_300;
		DELETE FROM orders WHERE id % 3 = 0`, "app")
	_, took = p.must(t, kind("incr"), "backup.sh")
	inc1 := p.manifest(t)
	srv.conn.exec(t, `INSERT INTO items (name, qty, created_at) SELECT CONCAT('inc2 ', seq), 2, NOW() FROM seq_1_to_200;
		UPDATE items SET qty = 0 WHERE id % 5 = 0; INSERT INTO schema_migrations (version) VALUES ('0003_inc2')`, "app")
	_, took2 := p.must(t, kind("incr"), "backup.sh")
	inc2 := p.manifest(t)
	t.Logf("incremental backups: %s (%d bytes), %s (%d bytes)", took.Round(time.Millisecond), inc1.SizeBytes, took2.Round(time.Millisecond), inc2.SizeBytes)
	if inc1.Kind != "incr" || inc1.Chain != full.Label || inc1.Parent == nil || *inc1.Parent != full.Label || inc1.Lsn.From != full.Lsn.To ||
		inc2.Kind != "incr" || inc2.Chain != full.Label || inc2.Parent == nil || *inc2.Parent != inc1.Label || inc2.Lsn.From != inc1.Lsn.To {
		t.Errorf("chain: full %s (lsn %+v), incr %s parent %v (lsn %+v), incr %s parent %v (lsn %+v)",
			full.Label, full.Lsn, inc1.Label, inc1.Parent, inc1.Lsn, inc2.Label, inc2.Parent, inc2.Lsn)
	}
	live := bmyTables(t, srv.conn, "app")
	var liveTotal int64
	for _, n := range live {
		liveTotal += n
	}
	if inc2.RowsTotal != liveTotal || inc2.RowsTotal == inc1.RowsTotal {
		t.Errorf("rows: incr 1 %d, incr 2 %d, live %d", inc1.RowsTotal, inc2.RowsTotal, liveTotal)
	}
	for _, k := range []string{"full", "incr"} {
		if v := bmyMetric(t, p.path("textfile/backup_mariadb_"+k+".prom"), `backup_last_size_bytes{store="mariadb",kind="`+k+`"}`); v <= 0 {
			t.Errorf("backup_mariadb_%s.prom: size %v", k, v)
		}
	}

	// The restore test prepares full + incr + incr from the off-site copy.
	out, took := p.must(t, nil, "restore-test.sh")
	line := p.lastRestoreTest(t)
	t.Logf("restore-test.sh of the chain: %s: %s", took.Round(time.Millisecond), line)
	want := fmt.Sprintf("chain=%s backups=3 tables=%d rows=%d users=%d canary=ok migrations=0003_inc2", full.Label, len(live), liveTotal, len(inc2.Users))
	if !strings.Contains(line, "result=passed") || !strings.Contains(line, want) {
		t.Errorf("restore-test.log: %s\nwant %s\n%s", line, want, out)
	}

	// restore prepares an older point of the chain (full + the first incremental), picked by
	// its id in list.sh, into a new directory.
	out, _ = p.must(t, nil, "list.sh", "mariadb")
	var inc1ID string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Split(l, "\t"); len(f) >= 5 && f[4] == inc1.Label {
			inc1ID = f[3]
		}
	}
	if inc1ID == "" || strings.Count(out, "\tincr\t") != 2 || strings.Count(out, "\tfull\t") != 1 {
		t.Fatalf("list.sh mariadb has no line for %s:\n%s", inc1.Label, out)
	}
	restored := p.path("restored")
	// The scripts' TMPDIR on another file system than the target (the target on /dev/shm,
	// TMPDIR on the disk, or the reverse): --prepare --incremental-dir renames across them
	// unless the script keeps its work folder beside the target.
	otherFS := t.TempDir()
	if !strings.HasPrefix(p.tmp, "/dev/shm/") {
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			d, err := os.MkdirTemp("/dev/shm", "opsready-e2e-other-")
			must(t, err)
			t.Cleanup(func() { _ = os.RemoveAll(d) })
			otherFS = d
		}
	}
	out, took = p.must(t, []string{"TMPDIR=" + otherFS}, "restore.sh", "mariadb", "--snapshot", inc1ID, "--target-dir", restored)
	t.Logf("restore.sh mariadb --snapshot (full + 1 incremental): %s", took.Round(time.Millisecond))
	if cp, err := os.ReadFile(filepath.Join(restored, "xtrabackup_checkpoints")); err != nil || !strings.Contains(string(cp), "backup_type = log-applied") ||
		!strings.Contains(out, restored) {
		t.Errorf("restore --target-dir: %v\n%s\n%s", err, cp, out)
	}
	if _, err := os.Stat(filepath.Join(restored, "app", "items.ibd")); err != nil {
		t.Errorf("restored data directory: %v", err)
	}

	// restore refuses a non-empty target directory before fetching anything.
	busy := p.path("busy")
	if err := os.MkdirAll(filepath.Join(busy, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if stderr, _, _, err := p.run(nil, "restore.sh", "mariadb", "--target-dir", busy); err == nil || !strings.Contains(stderr, "is not empty") {
		t.Errorf("restore into a non-empty directory: err=%v\n%s", err, stderr)
	}

	// A differential backup builds on the full, not on the incrementals.
	srv.conn.exec(t, "INSERT INTO items (name, qty, created_at) SELECT CONCAT('diff ', seq), 3, NOW() FROM seq_1_to_100", "app")
	_, took = p.must(t, kind("diff"), "backup.sh")
	diff := p.manifest(t)
	t.Logf("differential backup: %s (%d bytes)", took.Round(time.Millisecond), diff.SizeBytes)
	if diff.Kind != "diff" || diff.Parent == nil || *diff.Parent != full.Label || diff.Lsn.From != full.Lsn.To || diff.Chain != full.Label {
		t.Errorf("diff backup: kind %s parent %v lsn %+v, want parent %s from %d", diff.Kind, diff.Parent, diff.Lsn, full.Label, full.Lsn.To)
	}
	if v := bmyMetric(t, p.path("textfile/backup_mariadb_diff.prom"), `backup_last_size_bytes{store="mariadb",kind="diff"}`); v <= 0 {
		t.Errorf("backup_mariadb_diff.prom: size %v", v)
	}

	// A second full starts a new chain; pruning with one daily backup kept forgets the first
	// full and, with it, the incremental and differential backups of its chain, in both
	// repositories.
	packs := p.packs(t, "offsite")
	srv.conn.exec(t, "INSERT INTO items (name, qty, created_at) SELECT CONCAT('full2 ', seq), 4, NOW() FROM seq_1_to_100", "app")
	p.must(t, kind("full"), "backup.sh")
	full2 := p.manifest(t)
	_, took = p.must(t, []string{"BACKUP_RETENTION_DAILY=1", "BACKUP_RETENTION_WEEKLY=0", "BACKUP_RETENTION_MONTHLY=0"}, "prune.sh")
	t.Logf("prune.sh: %s", took.Round(time.Millisecond))
	for _, repo := range []string{"backups/restic", "offsite"} {
		var snaps []struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal([]byte(p.restic(t, repo, "snapshots", "--json")), &snaps); err != nil {
			t.Fatal(err)
		}
		if len(snaps) != 1 || !slices.Contains(snaps[0].Tags, "label="+full2.Label) {
			t.Errorf("%s after pruning: %+v, want only the full backup %s", repo, snaps, full2.Label)
		}
	}

	// Damage the newest backup off-site (the packs it and the pruning wrote): the restore
	// test fails and says why.
	n := p.damageNewPacks(t, "offsite", packs)
	stderr, _, took, err := p.run(nil, "restore-test.sh")
	t.Logf("restore-test.sh of a damaged chain (%d packs damaged): %s: %s", n, took.Round(time.Millisecond), p.lastRestoreTest(t))
	if err == nil || !strings.Contains(stderr, "restore test of mariadb FAILED") || !strings.Contains(stderr, "damaged") {
		t.Errorf("restore test of a damaged chain: err=%v\n%s", err, stderr)
	}
	if r := bmyMetric(t, p.path("textfile/restore_test_result_mariadb.prom"), `restore_test_last_result{store="mariadb"}`); r != 0 {
		t.Errorf("restore_test_last_result = %v after a failed test, want 0", r)
	}
}
