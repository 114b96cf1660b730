package tuning

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

var (
	tunCases = flag.Int("tuning-cases", 24, "random answer sets TestTunFormulasHold renders")
	tunSeed  = flag.Uint64("tuning-seed", 13, "seed of TestTunFormulasHold's answer sets (replay a failure with it)")
)

// TestTunFormulasHold renders random quotas (memory, CPU, replicas, peak load, latency
// objective; seeded, -tuning-seed replays) and checks what docs/tuning.md promises on the
// compose files docker compose loads: every backend replica's DB_POOL_SIZE is the same, all
// replicas twice over (a deploy) stay within the database's max_connections minus 20, each
// pool is 4 to 50, the database gets at most its memory limit in buffers, and the replica (if
// any) runs with the primary's settings.
func TestTunFormulasHold(t *testing.T) {
	r := rand.New(rand.NewPCG(*tunSeed, 1))
	mems := []string{"128m", "200m", "512m", "1g", "3g", "8g", "32g"}
	for i := range *tunCases {
		set := map[string]string{
			"db":               []string{"postgres", "mariadb"}[i%2],
			"db_replica":       []string{"streaming", "none"}[(i/2)%2],
			"db_backup_method": []string{"logical", "physical"}[(i/4)%2],
			"memory_limit":     mems[r.IntN(len(mems))],
			"cpu_limit":        []string{"0.01", "0.5", "1.0", "2", "3.5", "16", "999.99"}[r.IntN(7)],
			"backend_replicas": strconv.Itoa(2 + r.IntN(31)),
			"load_peak_rps":    strconv.Itoa(1 + r.IntN(2000)),
			"slo_latency_ms":   strconv.Itoa(10 + r.IntN(3000)),
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, set)
			files := append(slices.Clone(e2eutil.MonitoringFiles), "compose.backup.yaml")
			p, err := e2eutil.LoadCompose(dir, e2eutil.ProdEnv(), "", files...)
			if err != nil {
				t.Fatalf("%v: load: %v", set, err)
			}
			be := p.Services["backend"]
			pool, err := strconv.Atoi(e2eutil.Deref(be.Environment["DB_POOL_SIZE"]))
			if err != nil {
				t.Fatalf("%v: backend DB_POOL_SIZE %v: %v", set, be.Environment["DB_POOL_SIZE"], err)
			}
			replicas := 0
			if be.Deploy != nil && be.Deploy.Replicas != nil {
				replicas = *be.Deploy.Replicas
			}
			if want, _ := strconv.Atoi(set["backend_replicas"]); replicas != want {
				t.Fatalf("%v: backend replicas %d", set, replicas)
			}
			db := p.Services["db"]
			settings := tunSettings(t, set["db"], db.Command[1:])
			maxConn, err := strconv.Atoi(settings["max_connections"])
			if err != nil {
				t.Fatalf("%v: max_connections %q", set, settings["max_connections"])
			}
			if pool < 4 || pool > 50 {
				t.Errorf("%v: pool %d outside 4..50", set, pool)
			}
			if 2*replicas*pool > maxConn-20 {
				t.Errorf("%v: 2 × %d replicas × pool %d > max_connections %d − 20", set, replicas, pool, maxConn)
			}
			memMB := tunMB(t, set["memory_limit"])
			var buffers int
			if set["db"] == "postgres" {
				buffers = tunMB(t, settings["shared_buffers"]) + tunMB(t, settings["maintenance_work_mem"])
			} else {
				buffers = tunMB(t, settings["innodb_buffer_pool_size"]) + tunMB(t, settings["tmp_table_size"])
			}
			if buffers >= memMB && memMB > 128 {
				t.Errorf("%v: %d MB of buffers in a %d MB limit", set, buffers, memMB)
			}
			if rep, ok := p.Services["db-replica"]; ok && set["db"] == "postgres" {
				// A hot standby refuses to start with a smaller max_connections or
				// max_worker_processes than its primary's.
				got := strings.Join(rep.Command, " ")
				for _, k := range []string{"max_connections", "max_worker_processes"} {
					if !strings.Contains(got, k+"="+settings[k]) {
						t.Errorf("%v: db-replica's command %q lacks %s=%s", set, got, k, settings[k])
					}
				}
			}
		})
	}
}

// tunMB reads a size as the generated settings write it (512m, 1g, 128MB, 3640kB, 256M).
func tunMB(t testing.TB, s string) int {
	t.Helper()
	num := strings.TrimRight(s, "kKmMgGbB")
	n, err := strconv.Atoi(num)
	if err != nil {
		t.Fatalf("size %q: %v", s, err)
	}
	switch strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(s[len(num):], "B"), "b")) {
	case "k":
		return n / 1024
	case "g":
		return n * 1024
	}
	return n
}
