package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The backup fault matrix: for the stores postgres (pg_dump), redis and files, each fault is
// injected into a backup, restore test or prune of a generated project, and the run must fail
// (non-zero exit) with an error naming the cause, record the failure (a log line and a failure
// metric), leave the success metric byte for byte as it was, and the next run must be healthy.

// bftStore is one store's isolated backup environment over the shared generated project.
type bftStore struct {
	name, script, kind string
	p                  *brfProject
	// block makes the store's next backup hang at a point the test controls (a lock wait
	// in the server, a slow save) and returns a function ending the block.
	block func(t *testing.T) (release func())
	// killMidDump makes the server end the backup's session while it dumps (after block).
	killMidDump func(t *testing.T)
	// dumping reports whether a blocked backup is in the middle of its dump.
	dumping func(t *testing.T) bool
}

// bftCase is one injected fault.
type bftCase struct {
	name   string
	action string   // backup, restore-test, prune
	stores []string // empty: every store
	// generic faults hit lib.sh's code paths alike for every store (restic, repositories,
	// locks): by default they run on the files store only (the cheapest), on every store
	// with OPSREADY_BACKUP_FAULTS=full.
	generic bool
	want    string                                                      // regexp the output and the recorded error must match
	inject  func(t *testing.T, s *bftStore) (map[string]string, func()) // the fault: extra env and an undo
	// run replaces the plain run of the action (SIGKILL, concurrent runs); it returns the
	// output and error of the faulty run, or recorded=false when nothing can be recorded.
	run func(t *testing.T, s *bftStore, env map[string]string) (out string, err error, recorded bool)
}

// bftResult counts what the matrix tried and caught.
type bftResult struct {
	mu            sync.Mutex
	tried, caught int
	rows          []string
}

func (r *bftResult) add(store, name string, ok bool, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tried++
	mark := "MISSED"
	if ok {
		r.caught++
		mark = "caught"
	}
	r.rows = append(r.rows, fmt.Sprintf("%-8s %-40s %s %s", store, name, mark, took.Round(100*time.Millisecond)))
}

// bftTmpfs mounts a tmpfs of size bytes (a full disk on demand) and unmounts it at the end.
func bftTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if inCI() {
			t.Fatal("the full-disk faults mount a tmpfs: run as root")
		}
		t.Skip("the full-disk faults mount a tmpfs: run as root")
	}
	dir, err := os.MkdirTemp("", "bft-full")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
		os.Remove(dir)
	})
	return dir
}

// bftStart starts a store script in its own process group (so that SIGKILL reaches the
// whole job, as systemd's or the OOM killer's would).
func bftStart(t *testing.T, s *bftStore, env map[string]string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(filepath.Join(s.p.dir, "ops", "backup", s.script), args...)
	cmd.Dir = s.p.dir
	cmd.Env = s.p.environ(env)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// bftWaitFor polls cond every few milliseconds for at most 60 s; false when done first
// reports the job ended.
func bftWaitFor(t *testing.T, what string, cond func() bool, done <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		select {
		case <-done:
			t.Fatalf("the job ended before %s", what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened", what)
		}
		time.Sleep(3 * time.Millisecond)
	}
}

// bftLocks reports whether the restic repository at repo has a lock file.
func bftLocks(repo string) bool {
	entries, _ := os.ReadDir(filepath.Join(repo, "locks"))
	return len(entries) > 0
}

// bftKillWhen runs a backup, SIGKILLs its process group once cond holds, and returns.
func bftKillWhen(t *testing.T, s *bftStore, env map[string]string, what string, cond func() bool) string {
	t.Helper()
	cmd, out := bftStart(t, s, env, "backup")
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	bftWaitFor(t, what, cond, done)
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	return out.String()
}

// bftLastLine returns the last line of log that names store, or "".
func bftLastLine(path, store string) string {
	b, _ := os.ReadFile(path)
	last := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, " store="+store+" ") {
			last = l
		}
	}
	return last
}

// bftDamage changes the packs the newest backup added to repo with how (corrupt, truncate,
// delete) and returns an undo that puts the original bytes back.
func bftDamage(t *testing.T, repo string, before map[string]bool, how string) func() {
	t.Helper()
	saved := map[string][]byte{}
	for path := range brfDataFiles(t, repo) {
		if before[path] {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		saved[path] = b
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		switch how {
		case "corrupt":
			c := bytes.Clone(b)
			for i := 0; i < len(c); i += 97 {
				c[i] ^= 0xff
			}
			err = os.WriteFile(path, c, 0o644)
		case "truncate":
			err = os.Truncate(path, int64(len(b)/2))
		case "delete":
			err = os.Remove(path)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(saved) == 0 {
		t.Fatalf("no pack of the newest backup in %s", repo)
	}
	return func() {
		for path, b := range saved {
			if err := os.WriteFile(path, b, 0o444); err != nil {
				t.Error(err)
			}
		}
	}
}

// bftCases is the matrix.
func bftCases() []bftCase {
	file := func(t *testing.T, s *bftStore, name, content string) string {
		p := filepath.Join(s.p.tmp, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	none := func() {}
	env := func(kv ...string) func(*testing.T, *bftStore) (map[string]string, func()) {
		return func(*testing.T, *bftStore) (map[string]string, func()) {
			m := map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			return m, none
		}
	}
	closed := func(t *testing.T, s *bftStore) (map[string]string, func()) {
		port := strconv.Itoa(freePort(t))
		if s.name == "postgres" {
			return map[string]string{"PGPORT": port}, none
		}
		return map[string]string{"REDIS_PORT": port}, none
	}
	rename := func(rel func(*bftStore) string) func(*testing.T, *bftStore) (map[string]string, func()) {
		return func(t *testing.T, s *bftStore) (map[string]string, func()) {
			p := rel(s)
			if err := os.Rename(p, p+".away"); err != nil {
				t.Fatal(err)
			}
			return nil, func() {
				if err := os.Rename(p+".away", p); err != nil {
					t.Error(err)
				}
			}
		}
	}
	damage := func(how string) func(*testing.T, *bftStore) (map[string]string, func()) {
		return func(t *testing.T, s *bftStore) (map[string]string, func()) {
			// A fresh backup whose packs are the newest: only they are damaged.
			before := brfDataFiles(t, s.p.offsite())
			bftTouch(t, s)
			s.p.mustRun(t, nil, "ops/backup/"+s.script, "backup")
			return nil, bftDamage(t, s.p.offsite(), before, how)
		}
	}
	full := func(size int, key string) func(*testing.T, *bftStore) (map[string]string, func()) {
		return func(t *testing.T, s *bftStore) (map[string]string, func()) {
			dir := bftTmpfs(t, size)
			if key == "TMPDIR" {
				os.Chmod(dir, 0o1777)
				return map[string]string{key: dir}, none
			}
			return map[string]string{key: filepath.Join(dir, "repo")}, none
		}
	}
	return []bftCase{
		// Backups.
		{name: "restic password file missing", generic: true, action: "backup", want: `RESTIC_PASSWORD_FILE`,
			inject: env("RESTIC_PASSWORD_FILE", "/nonexistent/restic_password")},
		{name: "wrong restic password", generic: true, action: "backup", want: `wrong password`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				return map[string]string{"RESTIC_PASSWORD_FILE": file(t, s, "wrong-restic", "not the password\n")}, none
			}},
		{name: "db password file missing", action: "backup", stores: []string{"postgres"}, want: `PGPASSWORD_FILE`,
			inject: env("PGPASSWORD_FILE", "/nonexistent/db_password")},
		{name: "redis password file missing", action: "backup", stores: []string{"redis"}, want: `REDIS_PASSWORD_FILE`,
			inject: env("REDIS_PASSWORD_FILE", "/nonexistent/redis_password")},
		{name: "wrong redis password", action: "backup", stores: []string{"redis"}, want: `cannot reach Redis.*(WRONGPASS|NOAUTH|invalid)`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				return map[string]string{"REDIS_PASSWORD_FILE": file(t, s, "wrong-redis", "wrong\n")}, none
			}},
		{name: "unreachable server", action: "backup", stores: []string{"postgres", "redis"},
			want: `cannot connect to PostgreSQL|cannot reach Redis`, inject: closed},
		{name: "server ends the session mid-dump", action: "backup", stores: []string{"postgres", "redis"},
			want:   `pg_dump of .* failed: .*terminat|redis-cli --rdb .* failed`,
			inject: env(),
			run: func(t *testing.T, s *bftStore, env map[string]string) (string, error, bool) {
				release := s.block(t)
				defer release()
				cmd, out := bftStart(t, s, env, "backup")
				s.killMidDump(t)
				err := cmd.Wait()
				return out.String(), err, true
			}},
		{name: "SIGKILL while dumping", action: "backup", stores: []string{"postgres", "redis"}, inject: env(),
			run: func(t *testing.T, s *bftStore, env map[string]string) (string, error, bool) {
				release := s.block(t)
				defer release()
				out := bftKillWhen(t, s, env, "the dump started", func() bool { return s.dumping(t) })
				return out, fmt.Errorf("killed"), false
			}},
		{name: "SIGKILL while restic stores the backup", generic: true, action: "backup", inject: env(),
			run: func(t *testing.T, s *bftStore, env map[string]string) (string, error, bool) {
				out := bftKillWhen(t, s, env, "a lock in the primary repository", func() bool { return bftLocks(s.p.primary()) })
				return out, fmt.Errorf("killed"), false
			}},
		{name: "SIGKILL while copying off-site", action: "backup", stores: []string{"files"}, inject: env(),
			run: func(t *testing.T, s *bftStore, env map[string]string) (string, error, bool) {
				out := bftKillWhen(t, s, env, "a lock in the off-site repository", func() bool { return bftLocks(s.p.offsite()) })
				return out, fmt.Errorf("killed"), false
			}},
		{name: "prune after a killed backup (stale lock)", generic: true, action: "prune", want: `removed the stale lock`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				// A restic lock of a process that is gone, as a SIGKILL leaves it.
				bftKillWhen(t, s, nil, "a lock in the primary repository", func() bool { return bftLocks(s.p.primary()) })
				return nil, none
			}},
		{name: "full disk: staging", action: "backup", want: `not enough free space .*staging`,
			inject: full(1<<20, "BACKUP_STAGING_DIR")},
		// Repository file systems smaller than a backup: without the free-space check the
		// copy itself fails with ENOSPC (which 1.3.0 lost: exit 0, "stored").
		{name: "full disk: local repository", generic: true, action: "backup", want: `not enough free space .*primary restic repository`,
			inject: full(48<<10, "BACKUP_RESTIC_REPOSITORY")},
		{name: "full disk: off-site repository", generic: true, action: "backup", want: `not enough free space .*offsite restic repository`,
			inject: full(48<<10, "BACKUP_OFFSITE_REPOSITORY")},
		{name: "off-site repository key deleted", generic: true, action: "backup", want: `restic copy on the offsite repository .*(no key found|wrong password)`,
			inject: rename(func(s *bftStore) string { return filepath.Join(s.p.offsite(), "keys") })},
		{name: "off-site repository gone", generic: true, action: "backup", want: `offsite restic repository .* is missing`,
			inject: rename(func(s *bftStore) string { return s.p.offsite() })},
		{name: "two runs at once", generic: true, action: "backup", want: `another job holds`, inject: env("BACKUP_LOCK_TIMEOUT", "1"),
			run: func(t *testing.T, s *bftStore, env map[string]string) (string, error, bool) {
				lock := filepath.Join(s.p.env["BACKUP_DIR"], "locks", s.name+".lock")
				f, err := os.OpenFile(lock, os.O_CREATE|os.O_WRONLY, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
					t.Fatal(err)
				}
				out, err := s.p.run(t, env, "ops/backup/"+s.script, "backup")
				return out, err, true
			}},
		// Restore tests.
		{name: "wrong restic password", generic: true, action: "restore-test", want: `wrong password`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				return map[string]string{"RESTIC_PASSWORD_FILE": file(t, s, "wrong-restic", "not the password\n")}, none
			}},
		{name: "off-site key deleted", generic: true, action: "restore-test", want: `no key found|wrong password`,
			inject: rename(func(s *bftStore) string { return filepath.Join(s.p.offsite(), "keys") })},
		{name: "off-site directory missing", generic: true, action: "restore-test", want: `offsite repository .*(no such file|does not exist|unable to open)`,
			inject: rename(func(s *bftStore) string { return s.p.offsite() })},
		{name: "corrupted pack", generic: true, action: "restore-test", want: `damaged`, inject: damage("corrupt")},
		{name: "truncated pack", generic: true, action: "restore-test", want: `damaged.*unexpected file size`, inject: damage("truncate")},
		{name: "deleted pack", generic: true, action: "restore-test", want: `damaged.*does not exist`, inject: damage("delete")},
		{name: "deleted snapshot off-site", generic: true, action: "restore-test", want: `off-site copy is stale`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				list := s.p.snapshots(t, s.p.offsite(), "store="+s.name)
				newest := list[len(list)-1]
				p := filepath.Join(s.p.offsite(), "snapshots", newest.ID)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				return nil, func() {
					if err := os.WriteFile(p, b, 0o444); err != nil {
						t.Error(err)
					}
				}
			}},
		{name: "stale off-site copy", action: "restore-test", want: `off-site copy is stale`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				// A newer backup that never reached the off-site repository.
				bftTouch(t, s)
				s.p.mustRun(t, map[string]string{"BACKUP_OFFSITE_REPOSITORY": ""}, "ops/backup/"+s.script, "backup")
				return nil, func() { s.p.mustRun(t, nil, "ops/backup/"+s.script, "backup") }
			}},
		{name: "deleted manifest", action: "restore-test", want: `has no manifest`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				// The newest local backup without its manifest.json, restore-tested there.
				list := s.p.snapshots(t, s.p.primary(), "store="+s.name)
				newest := list[len(list)-1]
				dir := filepath.Join(s.p.tmp, "nomanifest")
				os.RemoveAll(dir)
				s.p.restic(t, s.p.primary(), "restore", newest.ID, "--target", dir)
				src := filepath.Join(dir, newest.Paths[0])
				if err := os.Remove(filepath.Join(src, "manifest.json")); err != nil {
					t.Fatal(err)
				}
				args := []string{"backup", "--host", s.p.env["BACKUP_PROJECT"]}
				for _, tag := range newest.Tags {
					args = append(args, "--tag", tag)
				}
				s.p.restic(t, s.p.primary(), append(args, "--json", src)...)
				added := s.p.snapshots(t, s.p.primary(), "store="+s.name)
				id := added[len(added)-1].ID
				return map[string]string{"RESTORE_TEST_FROM": "primary"}, func() {
					s.p.restic(t, s.p.primary(), "forget", id)
				}
			}},
		{name: "full disk: scratch restore", action: "restore-test", want: `not enough free space`,
			inject: full(2<<20, "TMPDIR")},
	}
}

// bftTouch changes the store's data a little, so that a new backup adds new packs.
func bftTouch(t *testing.T, s *bftStore) {
	t.Helper()
	stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
	switch s.name {
	case "postgres":
		bpgPsql(t, strings.Fields(s.p.env["bft_conn"]), "INSERT INTO \"Schéma\".\"Données\" (\"naïve\", doc) SELECT 'touch "+stamp+"', decode(md5(g::text || '"+stamp+"'), 'hex') FROM generate_series(1, 50) g;")
	case "redis":
		r, err := brfDial(mustAtoi(t, s.p.env["REDIS_PORT"]), s.p.env["bft_redis_pw"])
		if err != nil {
			t.Fatal(err)
		}
		defer r.c.Close()
		r.must(t, "SET", "touch:"+stamp, strings.Repeat(stamp, 200))
	case "files":
		if err := os.WriteFile(filepath.Join(s.p.dir, "var", "uploads", "touch-"+stamp), []byte(strings.Repeat(stamp, 500)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// bftPgSetup loads the awkward PostgreSQL data set into a scratch database.
const bftPgSQL = `
CREATE SCHEMA "Schéma";
CREATE TABLE "Schéma"."Données" (id serial PRIMARY KEY, "naïve" text, doc bytea, at timestamptz DEFAULT '2026-01-01');
CREATE TABLE "Schéma".audit (id serial PRIMARY KEY, note text);
CREATE FUNCTION "Schéma".trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO "Schéma".audit (note) VALUES ('ins ' || NEW."naïve"); RETURN NEW; END$$;
CREATE TRIGGER "après insert" AFTER INSERT ON "Schéma"."Données" FOR EACH ROW EXECUTE FUNCTION "Schéma".trg();
INSERT INTO "Schéma"."Données" ("naïve", doc) SELECT 'Zoë ✓ 日本語 ' || g || E'\ttab\nnl', decode(md5(g::text), 'hex') FROM generate_series(1, 3000) g;
CREATE SEQUENCE "Schéma"."séquence" START 1000;
SELECT nextval('"Schéma"."séquence"') FROM generate_series(1, 7);
CREATE FUNCTION "Schéma".total() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM "Schéma"."Données"';
CREATE VIEW "Schéma"."vue" AS SELECT "Schéma".total() AS n;
CREATE TABLE "Schéma".parted (k int, v text) PARTITION BY RANGE (k);
CREATE TABLE "Schéma".parted_1 PARTITION OF "Schéma".parted FOR VALUES FROM (0) TO (1000);
INSERT INTO "Schéma".parted SELECT g, 'p' || g FROM generate_series(0, 999) g;
SELECT lo_from_bytea(0, convert_to('large object ✓ ' || g, 'UTF8')) FROM generate_series(1, 3) g;
`

// bftPgGrants grants role the table, column and routine privileges the restore must keep.
func bftPgGrants(role string) string {
	return fmt.Sprintf(`GRANT USAGE ON SCHEMA "Schéma" TO %[1]s;
GRANT SELECT ("naïve") ON "Schéma"."Données" TO %[1]s;
GRANT SELECT ON "Schéma"."vue" TO %[1]s;
GRANT EXECUTE ON FUNCTION "Schéma".total() TO %[1]s;
`, role)
}

// bftPgSums returns content checksums of the awkward data set: every table's rows, the
// large objects, the sequence, the view and the grants.
func bftPgSums(t *testing.T, conn []string, role string) string {
	t.Helper()
	var parts []string
	for _, q := range []string{
		`SELECT count(*) || ' ' || md5(string_agg(t::text, E'\n' ORDER BY t::text)) FROM "Schéma"."Données" t`,
		`SELECT count(*) || ' ' || md5(string_agg(t::text, E'\n' ORDER BY t::text)) FROM "Schéma".audit t`,
		`SELECT count(*) || ' ' || md5(string_agg(t::text, E'\n' ORDER BY t::text)) FROM "Schéma".parted t`,
		`SELECT count(*) || ' ' || md5(string_agg(encode(lo_get(oid), 'hex'), ',' ORDER BY encode(lo_get(oid), 'hex'))) FROM pg_largeobject_metadata`,
		`SELECT last_value FROM "Schéma"."séquence"`,
		`SELECT n FROM "Schéma"."vue"`,
		fmt.Sprintf(`SELECT has_column_privilege('%[1]s', '"Schéma"."Données"', 'naïve', 'SELECT') || ' ' || has_column_privilege('%[1]s', '"Schéma"."Données"', 'doc', 'SELECT') || ' ' || has_function_privilege('%[1]s', '"Schéma".total()', 'EXECUTE') || ' ' || has_table_privilege('%[1]s', '"Schéma"."vue"', 'SELECT')`, role),
	} {
		parts = append(parts, bpgPsql(t, conn, q+";"))
	}
	return strings.Join(parts, " | ")
}

// TestBackupFaults runs the fault matrix (see the top of the file).
func TestBackupFaults(t *testing.T) {
	requireFaultMatrix(t)
	t.Parallel()
	for _, tool := range []string{"restic", "jq", "flock", "sha256sum", "psql", "pg_dump", "pg_dumpall", "pg_restore",
		"setpriv", "redis-server", "redis-cli", "redis-check-rdb", "mount"} {
		requireTool(t, tool)
	}
	requireServer(t, "PostgreSQL", 5432)
	admin := []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres"}
	major := bpgPsql(t, admin, "SELECT current_setting('server_version_num')::int / 10000;")
	requireTool(t, fmt.Sprintf("/usr/lib/postgresql/%s/bin/initdb", major))
	dir := generate(t, map[string]string{"db": "postgres", "db_backup_method": "logical", "cache": "redis", "offsite": "local"})
	if old := os.Getenv("BFT_SCRIPTS_FROM"); old != "" {
		// Runs the matrix against other scripts, e.g. a released version's
		// (blueprints/webapp/1.3.0/files/ops/backup), to see which faults they miss.
		shs, _ := filepath.Glob(filepath.Join(old, "*.sh"))
		for _, sh := range shs {
			b, err := os.ReadFile(sh)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "ops", "backup", filepath.Base(sh)), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("scripts from %s", old)
	}
	if err := os.MkdirAll(filepath.Join(dir, "var", "uploads"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "var", "uploads", "photo ✓.bin"), bytes.Repeat([]byte("upload\x00"), 4096), 0o640); err != nil {
		t.Fatal(err)
	}

	// PostgreSQL: a role with table, column and routine grants, over a scratch database.
	role := bpgRole(t)
	db := newScratchDB(t, "postgres")
	conn := []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", db.Name}
	bpgPsql(t, conn, bftPgSQL+bftPgGrants(role))
	pw := filepath.Join(t.TempDir(), "db_password")
	if err := os.WriteFile(pw, []byte("unused with trust auth\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Redis with a password and a few hundred keys.
	const redisPW = "bft redis pass"
	r, redisPort := brfStartRedis(t, filepath.Join(t.TempDir(), "redis"), redisPW)
	for i := 0; i < 300; i++ {
		r.must(t, "SET", fmt.Sprintf("key:%d:✓", i), strings.Repeat("v", i))
	}
	r.must(t, "HSET", "hash", "f1", "v1", "f2", "ü")
	redisPWFile := filepath.Join(t.TempDir(), "redis_password")
	if err := os.WriteFile(redisPWFile, []byte(redisPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	newStore := func(name, script, kind string, extra map[string]string) *bftStore {
		// On tmpfs when there is room, and traversable by PostgreSQL's user (scratch cluster).
		p := &brfProject{dir: dir, tmp: bpgFastDir(t)}
		if err := os.MkdirAll(filepath.Join(p.tmp, "tmp"), 0o755); err != nil {
			t.Fatal(err)
		}
		p.env = map[string]string{
			"BACKUP_DIR":                filepath.Join(p.tmp, "backups"),
			"BACKUP_OFFSITE_REPOSITORY": filepath.Join(p.tmp, "offsite"),
			"BACKUP_TEXTFILE_DIR":       filepath.Join(p.tmp, "textfile"),
			"BACKUP_LOG_DIR":            filepath.Join(p.tmp, "log"),
			"BACKUP_PROJECT":            "bft",
			"TMPDIR":                    filepath.Join(p.tmp, "tmp"),
			"TZ":                        "UTC",
		}
		for k, v := range extra {
			p.env[k] = v
		}
		return &bftStore{name: name, script: script, kind: kind, p: p}
	}
	pg := newStore("postgres", "postgres-dump.sh", "logical", map[string]string{
		"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres", "PGDATABASE": db.Name, "PGPASSWORD_FILE": pw,
		"bft_conn": strings.Join(conn, " ")})
	// The dump waits for a lock another session holds on the partitioned table (pg_dump
	// locks it; the row counts only read its partition).
	pg.block = func(t *testing.T) func() {
		locker := exec.Command("psql", append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1"}, conn...)...)
		locker.Env = append(bpgEnv(), "PGAPPNAME=bft-locker")
		locker.Stdin = strings.NewReader(`BEGIN; LOCK TABLE ONLY "Schéma".parted IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300);`)
		if err := locker.Start(); err != nil {
			t.Fatal(err)
		}
		bpgWaitSQL(t, conn, "SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'bft-locker' AND l.mode = 'AccessExclusiveLock' AND l.granted;", "t")
		return func() {
			bpgPsql(t, admin, "SELECT count(pg_terminate_backend(pid)) >= 0 FROM pg_stat_activity WHERE application_name = 'bft-locker';")
			locker.Wait()
		}
	}
	pg.dumping = func(t *testing.T) bool {
		return bpgPsql(t, admin, fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE%%';", db.Name)) == "1"
	}
	pg.killMidDump = func(t *testing.T) {
		q := fmt.Sprintf("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s' AND wait_event_type = 'Lock' AND application_name <> 'bft-locker';", db.Name)
		bpgWaitSQL(t, admin, fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE%%';", db.Name), "1")
		bpgPsql(t, admin, q)
	}
	rd := newStore("redis", "redis.sh", "full", map[string]string{
		"REDIS_HOST": "127.0.0.1", "REDIS_PORT": strconv.Itoa(redisPort), "REDIS_PASSWORD_FILE": redisPWFile,
		"bft_redis_pw": redisPW})
	// A slow save (1 ms per key) keeps the RDB transfer open long enough to end it.
	rd.block = func(t *testing.T) func() {
		r.must(t, "CONFIG", "SET", "rdb-key-save-delay", "10000")
		return func() {
			r.must(t, "CONFIG", "SET", "rdb-key-save-delay", "0")
			// A save still running from the slow one is waited for by the next backup.
		}
	}
	rd.dumping = func(t *testing.T) bool {
		v, _ := r.must(t, "INFO", "persistence").(string)
		return strings.Contains(v, "rdb_bgsave_in_progress:1")
	}
	rd.killMidDump = func(t *testing.T) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			v := r.must(t, "CLIENT", "KILL", "TYPE", "replica")
			if n, ok := v.(int64); ok && n > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the backup never connected as a replica (redis-cli --rdb)")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	fl := newStore("files", "files.sh", "full", map[string]string{
		"BACKUP_FILES_PATHS": ".env secrets ops/backup/backup.env var/uploads"})
	stores := []*bftStore{pg, rd, fl}

	res := &bftResult{}
	t.Cleanup(func() {
		sort.Strings(res.rows)
		t.Logf("backup fault matrix: %d cases tried, %d caught\n%s", res.tried, res.caught, strings.Join(res.rows, "\n"))
	})
	for _, s := range stores {
		s := s
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			bftStoreMatrix(t, s, res)
			if s.name == "postgres" {
				// The healthy path compares content: restore into a new database.
				want := bftPgSums(t, conn, role)
				target := db.Name + "_restored"
				t.Cleanup(func() { bpgPsqlErr(admin, "DROP DATABASE IF EXISTS "+target+" WITH (FORCE);") })
				s.p.mustRun(t, nil, "ops/backup/"+s.script, "backup")
				s.p.mustRun(t, nil, "ops/backup/restore.sh", "postgres", "--target-db", target, "--no-globals")
				got := bftPgSums(t, []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", target}, role)
				if got != want {
					t.Errorf("restored database differs:\n got %s\nwant %s", got, want)
				}
			}
		})
	}
}

// bftStoreMatrix runs every case of the matrix that applies to the store, one after the other.
func bftStoreMatrix(t *testing.T, s *bftStore, res *bftResult) {
	logDir := s.p.env["BACKUP_LOG_DIR"]
	successProm := map[string]string{
		"backup":       s.p.textfile(fmt.Sprintf("backup_%s_%s.prom", s.name, s.kind)),
		"restore-test": s.p.textfile("restore_test_" + s.name + ".prom"),
		"prune":        s.p.textfile(fmt.Sprintf("backup_%s_%s.prom", s.name, s.kind)),
	}
	// A healthy start: a backup and a passed restore test, so that success metrics exist.
	s.p.mustRun(t, nil, "ops/backup/"+s.script, "backup")
	s.p.mustRun(t, nil, "ops/backup/"+s.script, "restore-test")

	for _, c := range bftCases() {
		if len(c.stores) > 0 && !contains(c.stores, s.name) {
			continue
		}
		if c.generic && s.name != "files" && os.Getenv("OPSREADY_BACKUP_FAULTS") != "full" {
			continue
		}
		start := time.Now()
		ran := false // false when -run filtered the case out
		ok := t.Run(strings.ReplaceAll(c.action+" "+c.name, " ", "_"), func(t *testing.T) {
			ran = true
			before, err := os.ReadFile(successProm[c.action])
			if err != nil {
				t.Fatalf("no success metric before the fault: %v", err)
			}
			env, undo := c.inject(t, s)
			var out string
			recorded := true
			if c.run != nil {
				out, err, recorded = c.run(t, s, env)
			} else {
				out, err = s.p.run(t, env, "ops/backup/"+s.script, c.action)
			}
			undo()
			want := regexp.MustCompile(c.want)
			if c.action == "prune" {
				// The fault is the stale lock: prune must succeed and say what it removed.
				if err != nil || !want.MatchString(out) {
					t.Errorf("prune after a killed backup: err=%v, want success and %q:\n%s", err, c.want, out)
				}
			} else {
				if err == nil {
					t.Errorf("the run succeeded:\n%s", out)
				}
				if c.want != "" && !want.MatchString(out) {
					t.Errorf("the output does not name the cause (%s):\n%s", c.want, out)
				}
				if after, _ := os.ReadFile(successProm[c.action]); !bytes.Equal(after, before) {
					t.Errorf("the failed run changed %s:\n%s", successProm[c.action], after)
				}
				if recorded {
					bftCheckRecorded(t, s, c, logDir, want)
				}
			}
			// The next run is healthy.
			if out, err := s.p.run(t, nil, "ops/backup/"+s.script, c.action); err != nil {
				t.Errorf("the next %s after the fault failed: %v\n%s", c.action, err, out)
			} else if c.action == "backup" {
				if v := brfParseProm(t, s.p.textfile("backup_result_"+s.name+".prom"))["backup_last_result"]; len(v) != 1 || v[0].value != 1 {
					t.Errorf("backup_last_result after a healthy backup: %v, want 1", v)
				}
			} else if c.action == "restore-test" && brfRestoreResult(t, s.p, s.name) != 1 {
				t.Errorf("restore_test_last_result after a healthy restore test is not 1")
			}
		})
		if ran {
			res.add(s.name, c.action+": "+c.name, ok, time.Since(start))
		}
	}
}

// bftCheckRecorded checks the failure record of a faulty run: the log line with the cause and
// the failure metric.
func bftCheckRecorded(t *testing.T, s *bftStore, c bftCase, logDir string, want *regexp.Regexp) {
	t.Helper()
	switch c.action {
	case "backup":
		line := bftLastLine(filepath.Join(logDir, "backup-results.log"), s.name)
		if !strings.Contains(line, "result=failed") || (c.want != "" && !want.MatchString(line)) {
			t.Errorf("backup-results.log: %q, want result=failed naming %s", line, c.want)
		}
		v := brfParseProm(t, s.p.textfile("backup_result_"+s.name+".prom"))
		if r := v["backup_last_result"]; len(r) != 1 || r[0].value != 0 {
			t.Errorf("backup_last_result %v, want 0", r)
		}
		if f := v["backup_last_failure_timestamp_seconds"]; len(f) != 1 || time.Since(time.Unix(int64(f[0].value), 0)) > 5*time.Minute {
			t.Errorf("backup_last_failure_timestamp_seconds %v, want now", f)
		}
	case "restore-test":
		line := bftLastLine(filepath.Join(logDir, "restore-test.log"), s.name)
		if !strings.Contains(line, "result=failed") || (c.want != "" && !want.MatchString(line)) {
			t.Errorf("restore-test.log: %q, want result=failed naming %s", line, c.want)
		}
		if v := brfRestoreResult(t, s.p, s.name); v != 0 {
			t.Errorf("restore_test_last_result %v, want 0", v)
		}
	}
}
