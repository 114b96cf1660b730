package backup

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// bmfReplaceNewest restores the newest snapshot of repo, damages its files and stores them as
// a newer snapshot with the same host and tags, which restore tests then pick.
func (p *bmyProject) bmfReplaceNewest(t *testing.T, repo string, damage func(dir string)) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored")
	p.restic(t, repo, "restore", "latest", "--target", dir)
	var stage string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "manifest.json" {
			stage = filepath.Dir(path)
		}
		return nil
	})
	if stage == "" {
		t.Fatalf("no manifest.json in the newest snapshot of %s", repo)
	}
	// A dump streamed into a snapshot of its own (manifest dump.snapshot_tags) is fetched
	// beside the manifest, damaged there and stored again as a newer snapshot with its tags.
	var m struct {
		Dump struct {
			File string   `json:"file"`
			Tags []string `json:"snapshot_tags"`
		} `json:"dump"`
	}
	raw, err := os.ReadFile(filepath.Join(stage, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Dump.Tags) > 0 {
		cmd := exec.Command("restic", "--no-cache", "-r", p.path(repo), "dump", "latest", "/"+m.Dump.File, "--tag", strings.Join(m.Dump.Tags, ","))
		cmd.Env = append(os.Environ(), "RESTIC_PASSWORD_FILE="+filepath.Join(p.dir, "secrets/restic_password"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("restic dump of the dump snapshot %v: %v", m.Dump.Tags, err)
		}
		if err := os.WriteFile(filepath.Join(stage, m.Dump.File), out, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	damage(stage)
	var snaps []struct {
		Hostname string   `json:"hostname"`
		Tags     []string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(p.restic(t, repo, "snapshots", "--json", "latest")), &snaps); err != nil || len(snaps) != 1 {
		t.Fatalf("the newest snapshot of %s: %v %+v", repo, err, snaps)
	}
	time.Sleep(1100 * time.Millisecond) // a newer snapshot time than the one replaced
	if len(m.Dump.Tags) > 0 {
		args := []string{"--no-cache", "-r", p.path(repo), "backup", "--host", snaps[0].Hostname, "--stdin", "--stdin-filename", m.Dump.File}
		for _, tag := range m.Dump.Tags {
			args = append(args, "--tag", tag)
		}
		cmd := exec.Command("restic", args...)
		cmd.Env = append(os.Environ(), "RESTIC_PASSWORD_FILE="+filepath.Join(p.dir, "secrets/restic_password"))
		f, err := os.Open(filepath.Join(stage, m.Dump.File))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = f
		out, err := cmd.CombinedOutput()
		f.Close()
		if err != nil {
			t.Fatalf("restic backup --stdin of the damaged dump: %v\n%s", err, out)
		}
		if err := os.Remove(filepath.Join(stage, m.Dump.File)); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"backup", "--host", snaps[0].Hostname}
	for _, tag := range snaps[0].Tags {
		args = append(args, "--tag", tag)
	}
	p.restic(t, repo, append(args, stage)...)
}

// bmfBackupWrapper writes a mariadb-backup into dir that, for --backup, runs the real one and
// freezes it (SIGSTOP) once it has created its target directory, touches BMF_MARKER, and
// continues it (SIGCONT) when BMF_GO appears.
func bmfBackupWrapper(t *testing.T, dir string) {
	t.Helper()
	real, err := exec.LookPath("mariadb-backup")
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`#!/usr/bin/env bash
target=
for a in "$@"; do [[ $a == --target-dir=* ]] && target=${a#--target-dir=}; done
[[ -n ${BMF_MARKER:-} && " $* " == *" --backup "* ]] || exec %[1]q "$@"
%[1]q "$@" &
pid=$!
for ((i = 0; i < 3000; i++)); do
	if [[ -d $target ]]; then kill -STOP "$pid"; touch "$BMF_MARKER"; break; fi
	sleep 0.01
done
for ((i = 0; i < 6000; i++)); do [[ -e ${BMF_GO:-/nonexistent} ]] && break; sleep 0.01; done
kill -CONT "$pid"
wait "$pid"
`, real)
	if err := os.WriteFile(filepath.Join(dir, "mariadb-backup"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// bmfServe starts mariadbd on an existing data directory (after a crash: InnoDB recovers);
// stopped at cleanup. It returns the process, for a test that kills it.
func bmfServe(t *testing.T, s bmyServer) *os.Process {
	t.Helper()
	base := filepath.Dir(s.datadir)
	args := []string{"--no-defaults", "--datadir=" + s.datadir, "--socket=" + s.sock,
		fmt.Sprintf("--port=%d", e2eutil.FreePort(t)), "--bind-address=127.0.0.1", "--log-error=" + filepath.Join(base, "mysqld2.log"),
		"--pid-file=" + filepath.Join(base, "mysqld2.pid"), "--innodb-buffer-pool-size=64M", "--skip-log-bin"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	mariadbd, err := exec.LookPath("mariadbd")
	if err != nil {
		mariadbd = "/usr/sbin/mariadbd"
	}
	cmd := exec.Command(mariadbd, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = exec.Command("mariadb-admin", "--no-defaults", "--socket="+s.sock, "-uroot", "shutdown").Run()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for exec.Command("mariadb-admin", "--no-defaults", "--socket="+s.sock, "-uroot", "ping").Run() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(base, "mysqld2.log"))
			t.Fatalf("the restarted mariadbd did not answer within 60s:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cmd.Process
}

// bmfServerPid reads the pid of the private server from its pid file.
func bmfServerPid(t *testing.T, s bmyServer, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(s.datadir), name))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestBackupMariadbFaultsPhysical: the physical method (mariadb-backup.sh) on a private server.
func TestBackupMariadbFaultsPhysical(t *testing.T) {
	requireFaultMatrix(t)
	t.Parallel()
	for _, tool := range []string{"mariadb", "mariadb-admin", "mariadbd", "mariadb-install-db", "mariadb-backup", "restic", "jq"} {
		e2eutil.RequireTool(t, tool)
	}
	srv := bmyStartServer(t)
	srv.conn.exec(t, `CREATE DATABASE app;
		CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'; GRANT ALL ON app.* TO 'app'@'%';
		CREATE USER 'backup'@'localhost' IDENTIFIED BY 'backup-pw';
		GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SELECT ON *.* TO 'backup'@'localhost';
		GRANT INSERT, CREATE, DELETE ON app.* TO 'backup'@'localhost';
		CREATE USER 'app2'@'%' IDENTIFIED BY 'x'; CREATE ROLE r1; CREATE ROLE r2`)
	srv.conn.exec(t, bmfAwkwardSQL("app", "app2", "r1", "r2"), "app")

	p := bmyNewProject(t, "physical",
		"MARIADB_SOCKET="+srv.sock, "MARIADB_USER=backup", "MARIADB_DATABASE=app", "MARIADB_DATADIR="+srv.datadir,
		"BACKUP_STORES=mariadb:mariadb-backup")
	p.env = append(p.env, "MARIADB_PASSWORD_FILE="+bmySecret(t, p.tmp, "backup.pw", "backup-pw"))
	kind := func(k string) []string { return []string{"BACKUP_KIND=" + k} }

	start := time.Now()
	p.must(t, kind("full"), "backup.sh")
	srv.conn.exec(t, "INSERT INTO orders (customer) SELECT CONCAT('i1 ', seq) FROM seq_1_to_50", "app")
	p.must(t, kind("incr"), "backup.sh")
	inc1 := p.manifest(t)
	srv.conn.exec(t, "INSERT INTO orders (customer) SELECT CONCAT('i2 ', seq) FROM seq_1_to_50", "app")
	p.must(t, kind("incr"), "backup.sh")
	t.Logf("full + 2 incremental backups: %s", time.Since(start).Round(time.Millisecond))
	success := "textfile/backup_mariadb_incr.prom"
	before, err := os.ReadFile(p.path(success))
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name  string
		env   []string
		wants []string
	}{
		{"physical: missing password file", []string{"MARIADB_PASSWORD_FILE=" + p.path("nope.pw")}, []string{"MARIADB_PASSWORD_FILE", "missing"}},
		{"physical: wrong password", []string{"MARIADB_PASSWORD_FILE=" + bmySecret(t, p.tmp, "wrong.pw", "wrong")}, []string{"cannot connect", "Access denied"}},
		{"physical: unreachable server", []string{"MARIADB_SOCKET=" + p.path("no.sock")}, []string{"cannot connect to MariaDB at " + p.path("no.sock")}},
		{"physical: unreadable data directory", []string{"MARIADB_DATADIR=" + p.path("nodata")}, []string{"is not a readable directory"}},
	} {
		stderr, _, _, err := p.run(append(kind("incr"), c.env...), "backup.sh")
		bmfRecord(t, c.name, p.bmfFailed(t, c.name, "backup", err, stderr, success, before, c.wants...))
	}

	// SIGKILL of the job while mariadb-backup copies; the next run is healthy.
	bin := filepath.Join(p.tmp, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	bmfBackupWrapper(t, bin)
	marker, goFile := p.path("stopped"), p.path("go")
	wrapped := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "BMF_MARKER=" + marker, "BMF_GO=" + goFile}
	p.bmfKill(t, append(kind("incr"), wrapped...), func() bool { _, err := os.Stat(marker); return err == nil }, "backup.sh")
	ok := true
	if after, _ := os.ReadFile(p.path(success)); string(after) != string(before) {
		ok = false
		t.Error("SIGKILL during mariadb-backup: the success metric changed")
	}
	if stderr, _, _, err := p.run(kind("incr"), "backup.sh"); err != nil {
		ok = false
		t.Errorf("the backup after a SIGKILL failed:\n%s", stderr)
	}
	bmfRecord(t, "physical: SIGKILL during mariadb-backup", ok)
	before, _ = os.ReadFile(p.path(success))

	// A full staging disk.
	if os.Geteuid() == 0 {
		stage := p.path("smallstage")
		if err := os.MkdirAll(stage, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", stage).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("umount", stage).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", stage, err, out)
			}
		})
		stderr, _, _, err := p.run(append(kind("full"), "BACKUP_STAGING_DIR="+stage), "backup.sh")
		bmfRecord(t, "physical: staging disk full", p.bmfFailed(t, "physical staging full", "backup", err, stderr, "textfile/backup_mariadb_full.prom",
			bmfRead(p.path("textfile/backup_mariadb_full.prom")), "No space left on device"))
	}

	// A broken chain: the first incremental backup forgotten in both repositories. The
	// restore test fails and names the missing link; the next backup starts a new chain
	// instead of building on the broken one, and the restore test passes again.
	passed := bmfRead(p.path("textfile/restore_test_mariadb.prom"))
	for _, repo := range []string{"backups/restic", "offsite"} {
		var id string
		for _, line := range strings.Split(p.restic(t, repo, "snapshots", "--tag", "label="+inc1.Label, "--json"), "\n") {
			if m := regexp.MustCompile(`"id":"([0-9a-f]{64})"`).FindStringSubmatch(line); m != nil {
				id = m[1]
			}
		}
		if id == "" {
			t.Fatalf("no snapshot labelled %s in %s", inc1.Label, repo)
		}
		p.restic(t, repo, "forget", id)
	}
	stderr, _, _, err := p.run(nil, "restore-test.sh")
	bmfRecord(t, "physical: broken incremental chain", p.bmfFailed(t, "broken chain", "restore-test", err, stderr,
		"textfile/restore_test_mariadb.prom", passed, "restore test of mariadb FAILED", "its parent "+inc1.Label))
	out, _ := p.must(t, kind("incr"), "backup.sh")
	if m := p.manifest(t); m.Kind != "full" || !strings.Contains(out, "chain "+inc1.Chain+" is broken") {
		t.Errorf("the backup after a broken chain is a %s one:\n%s", m.Kind, out)
	}

	// The server killed (SIGKILL) while mariadb-backup copies: the backup fails; after the
	// server's crash recovery, the next backup and the restore test pass.
	os.Remove(marker)
	os.Remove(goFile)
	pid := bmfServerPid(t, srv, "mysqld.pid")
	before = bmfRead(p.path(success))
	done := make(chan struct{})
	var stderrKill string
	var errKill error
	go func() {
		defer close(done)
		stderrKill, _, _, errKill = p.run(append(kind("incr"), wrapped...), "backup.sh")
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mariadb-backup never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	<-done
	bmfRecord(t, "physical: server killed mid-backup", p.bmfFailed(t, "server killed", "backup", errKill, stderrKill, success, before,
		"mariadb-backup --backup failed"))
	bmfServe(t, srv)
	p.must(t, kind("incr"), "backup.sh")
	p.must(t, nil, "restore-test.sh")
	if line := p.lastRestoreTest(t); !strings.Contains(line, "result=passed") {
		t.Errorf("restore test after the faults: %s", line)
	}
}
