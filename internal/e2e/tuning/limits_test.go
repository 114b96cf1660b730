package tuning

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// tunLimitCases are the extremes the answers allow: the smallest memory with the least CPU,
// and the largest memory with the most CPU and backend replicas (the most connections).
var tunLimitCases = []struct {
	name, mem, cpus, replicas, backup string
	bytes                             int64
}{
	{"smallest", "128m", "0.01", "2", "logical", 128 << 20},
	// Physical backups: WAL archiving's command in compose.backup.yaml carries the settings.
	{"largest", "32g", "999.99", "32", "physical", 32 << 30},
}

// TestTunServersStartAtTheLimits starts PostgreSQL and MariaDB with the settings the
// generated compose.prod.yaml gives them, at the smallest and largest allowed memory limits,
// inside a memory cgroup of that size: each must start, report every generated value, take a
// short write load and not be killed for memory.
func TestTunServersStartAtTheLimits(t *testing.T) {
	for _, engine := range []string{"postgres", "mariadb"} {
		for _, c := range tunLimitCases {
			t.Run(engine+" "+c.name, func(t *testing.T) {
				t.Parallel()
				cmd := tunDBCommand(t, map[string]string{"db": engine, "db_replica": "none",
					"memory_limit": c.mem, "cpu_limit": c.cpus, "backend_replicas": c.replicas, "db_backup_method": c.backup})
				procs := tunCgroup(t, c.bytes)
				var db *tunDB
				if engine == "postgres" {
					if cmd[0] != "postgres" {
						t.Fatalf("db command %q does not start postgres", cmd)
					}
					db = tunStartPostgres(t, procs, cmd[1:])
				} else {
					if cmd[0] != "mariadbd" {
						t.Fatalf("db command %q does not start mariadbd", cmd)
					}
					db = tunStartMariadb(t, procs, cmd[1:])
				}
				settings := tunSettings(t, engine, cmd[1:])
				if len(settings) < 5 {
					t.Fatalf("only %d settings in %q", len(settings), cmd)
				}
				for name, value := range settings {
					tunCheckSetting(t, db, name, value)
				}
				tunWriteLoad(t, db)
				if db.srv.exited() {
					t.Fatalf("%s stopped under load: %s\n%s%s", engine, db.srv.cmd.ProcessState, db.srv.tail(), db.errorTail())
				}
				if oom := tunOOMKills(procs); !strings.Contains(oom, "oom_kill 0") && strings.Contains(oom, "oom_kill") {
					t.Errorf("the kernel killed in the %s cgroup: %s", c.mem, oom)
				}
				t.Logf("%s at %s, %s CPUs, %s replicas: %d settings as generated; %s", engine, c.mem, c.cpus, c.replicas, len(settings), tunOOMKills(procs))
			})
		}
	}
}

// tunSettings reads name=value pairs from a server command: PostgreSQL's `-c name=value`,
// MariaDB's `--name=value`.
func tunSettings(t testing.TB, engine string, args []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if engine == "postgres" {
			if a != "-c" || i+1 == len(args) {
				t.Fatalf("unexpected postgres argument %q in %q", a, args)
			}
			i++
			a = args[i]
		} else {
			if !strings.HasPrefix(a, "--") {
				t.Fatalf("unexpected mariadbd argument %q in %q", a, args)
			}
			a = strings.TrimPrefix(a, "--")
		}
		name, value, ok := strings.Cut(a, "=")
		if !ok {
			t.Fatalf("setting %q has no value", a)
		}
		out[strings.ReplaceAll(name, "-", "_")] = value
	}
	return out
}

// tunCheckSetting compares what the server reports for name with the generated value.
func tunCheckSetting(t testing.TB, db *tunDB, name, value string) {
	t.Helper()
	if db.engine == "postgres" {
		// pg_settings gives the value in its unit (8kB pages, kB, MB); pg_size_bytes reads ours.
		var sql string
		switch {
		case regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`).MatchString(value):
			sql = fmt.Sprintf(`SELECT setting::numeric = %s FROM pg_settings WHERE name = '%s'`, value, name)
		case regexp.MustCompile(`^[0-9]+(kB|MB|GB)$`).MatchString(value):
			sql = fmt.Sprintf(`SELECT setting::numeric * pg_size_bytes(CASE WHEN unit ~ '^[0-9]' THEN unit ELSE '1 ' || unit END) = pg_size_bytes('%s') FROM pg_settings WHERE name = '%s'`, value, name)
		default:
			sql = fmt.Sprintf(`SELECT setting = '%s' FROM pg_settings WHERE name = '%s'`, strings.ReplaceAll(value, "'", "''"), name)
		}
		got, err := db.query(sql)
		if err != nil || got != "t" {
			shown, _ := db.query(fmt.Sprintf("SHOW %s", name))
			t.Errorf("postgres %s = %q, generated %q (%v)", name, shown, value, err)
		}
		return
	}
	got, err := db.query("SELECT @@" + name)
	if err != nil {
		t.Errorf("mariadb %s: %v", name, err)
		return
	}
	want := value
	if n, ok := strings.CutSuffix(value, "M"); ok {
		v, _ := strconv.ParseInt(n, 10, 64)
		want = strconv.FormatInt(v<<20, 10)
	}
	if got != want {
		t.Errorf("mariadb %s = %s, generated %s (%s)", name, got, value, want)
	}
}

// tunWriteLoad runs a few seconds of writes: pgbench's TPC-B-like script, sysbench's
// read-write OLTP.
func tunWriteLoad(t testing.TB, db *tunDB) {
	t.Helper()
	var steps [][]string
	if db.engine == "postgres" {
		bench := filepath.Join(tunPgBin, "pgbench")
		e2eutil.RequireTool(t, bench)
		conn := []string{"-h", db.sock, "-p", strconv.Itoa(db.port), "-U", "postgres"}
		steps = [][]string{
			append(append([]string{bench}, conn...), "-i", "-q", "-s", "10", "postgres"),
			append(append([]string{bench}, conn...), "-c", "4", "-j", "2", "-T", "5", "-n", "postgres"),
		}
	} else {
		e2eutil.RequireTool(t, "sysbench")
		if _, err := db.query("CREATE DATABASE sbtest"); err != nil {
			t.Fatal(err)
		}
		opts := []string{"oltp_read_write", "--db-driver=mysql", "--mysql-socket=" + db.sock, "--mysql-user=root",
			"--tables=2", "--table-size=20000", "--threads=4", "--time=5"}
		steps = [][]string{append(append([]string{"sysbench"}, opts...), "prepare"), append(append([]string{"sysbench"}, opts...), "run")}
	}
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Env = append(os.Environ(), "PGUSER=postgres")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s\nserver:\n%s%s", strings.Join(s, " "), err, out, db.srv.tail(), db.errorTail())
		}
	}
}
