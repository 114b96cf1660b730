package tuning

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// tunBenchSet is the quota both servers of a comparison get: the memory cgroup, and the
// answers the tuned settings are generated from.
var tunBenchSet = map[string]string{"db_replica": "none", "memory_limit": "1g", "cpu_limit": "2", "backend_replicas": "2"}

const tunBenchBytes = 1 << 30

// BenchmarkTunPgbench runs pgbench's TPC-B-like load (scale 50, about 750 MB: more than stock
// shared_buffers, less than the memory limit) against PostgreSQL with stock settings and with
// the generated ones, each in a 1 GB memory cgroup, and reports both throughputs.
func BenchmarkTunPgbench(b *testing.B) {
	set := map[string]string{"db": "postgres"}
	for k, v := range tunBenchSet {
		set[k] = v
	}
	tuned := tunDBCommand(b, set)[1:]
	bench := filepath.Join(tunPgBin, "pgbench")
	for b.Loop() {
		tps := map[string]float64{}
		for _, c := range tunRounds(tuned) {
			db := tunStartPostgres(b, tunCgroup(b, tunBenchBytes), c.args)
			conn := []string{"-h", db.sock, "-p", strconv.Itoa(db.port), "-U", "postgres"}
			tunRun(b, append(append([]string{bench}, conn...), "-i", "-q", "-s", "50", "postgres"))
			out := tunRun(b, append(append([]string{bench}, conn...), "-c", "8", "-j", "2", "-T", "20", "-n", "postgres"))
			tps[c.name] += tunNumber(b, out, `tps = ([0-9.]+)`) / tunRoundsEach
			db.srv.stop(b)
		}
		b.ReportMetric(tps["stock"], "stock-tps")
		b.ReportMetric(tps["tuned"], "tuned-tps")
		b.ReportMetric(tps["tuned"]/tps["stock"], "tuned/stock")
	}
}

// BenchmarkTunSysbench runs sysbench's read-write OLTP load (4 tables of 250,000 rows, about
// 240 MB: more than stock innodb_buffer_pool_size) against MariaDB with stock settings and
// with the generated ones, each in a 1 GB memory cgroup, and reports both throughputs.
func BenchmarkTunSysbench(b *testing.B) {
	set := map[string]string{"db": "mariadb"}
	for k, v := range tunBenchSet {
		set[k] = v
	}
	tuned := tunDBCommand(b, set)[1:]
	for b.Loop() {
		tps := map[string]float64{}
		for _, c := range tunRounds(tuned) {
			db := tunStartMariadb(b, tunCgroup(b, tunBenchBytes), c.args)
			if _, err := db.query("CREATE DATABASE sbtest"); err != nil {
				b.Fatal(err)
			}
			opts := []string{"oltp_read_write", "--db-driver=mysql", "--mysql-socket=" + db.sock, "--mysql-user=root",
				"--tables=4", "--table-size=250000", "--threads=8"}
			tunRun(b, append(append([]string{"sysbench"}, opts...), "prepare"))
			out := tunRun(b, append(append([]string{"sysbench"}, opts...), "--time=20", "run"))
			tps[c.name] += tunNumber(b, out, `transactions:\s+[0-9]+\s+\(([0-9.]+) per sec`) / tunRoundsEach
			db.srv.stop(b)
		}
		b.ReportMetric(tps["stock"], "stock-tps")
		b.ReportMetric(tps["tuned"], "tuned-tps")
		b.ReportMetric(tps["tuned"]/tps["stock"], "tuned/stock")
	}
}

func tunRun(b testing.TB, argv []string) string {
	b.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func tunNumber(b testing.TB, out, pattern string) float64 {
	b.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("no %s in:\n%s", pattern, out)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// tunRoundsEach is how often each configuration runs; the rounds alternate (stock, tuned,
// stock, tuned) so that a change in the machine's other load falls on both alike.
const tunRoundsEach = 2

func tunRounds(tuned []string) []struct {
	name string
	args []string
} {
	var out []struct {
		name string
		args []string
	}
	for range tunRoundsEach {
		out = append(out, struct {
			name string
			args []string
		}{"stock", nil}, struct {
			name string
			args []string
		}{"tuned", tuned})
	}
	return out
}
