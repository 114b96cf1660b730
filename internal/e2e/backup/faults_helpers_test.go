package backup

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

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
		if e2eutil.InCI() {
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
