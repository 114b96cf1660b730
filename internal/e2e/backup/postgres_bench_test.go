package backup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
	"github.com/opsready/opsready/internal/project"
)

// bpgGenerate is generate for benchmarks.
func bpgGenerate(b *testing.B, set map[string]string) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "proj")
	if _, err := project.Create(project.CreateOptions{Dir: dir, Blueprint: "webapp", Set: set, Defaults: true, Version: "test"}); err != nil {
		b.Fatalf("generate %v: %v", set, err)
	}
	return dir
}

// bpgBenchDB creates a database of about 100k rows on the local server for a benchmark and
// drops it afterwards.
func bpgBenchDB(b *testing.B) string {
	b.Helper()
	missing := func(format string, args ...any) {
		if e2eutil.InCI() {
			b.Fatalf(format, args...)
		}
		b.Skipf(format, args...)
	}
	for _, tool := range []string{"psql", "pg_dump", "pg_dumpall", "restic", "jq", "flock"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing("%s is not installed (run `make tools`)", tool)
		}
	}
	name := fmt.Sprintf("opsready_bpg_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	admin := []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres"}
	if _, err := bpgPsqlErr(admin, "CREATE DATABASE "+name+";"); err != nil {
		missing("local PostgreSQL on 127.0.0.1:5432: %v", err)
	}
	b.Cleanup(func() {
		if _, err := bpgPsqlErr(admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE);"); err != nil {
			b.Errorf("drop %s: %v", name, err)
		}
	})
	bpgPsql(b, []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", name}, bpgLoadSQL("", 80000))
	return name
}

// BenchmarkBackupPostgresDumpScript measures a whole backup by the generated script
// (canary, snapshot row counts, pg_dump, globals, manifest, restic) of a ~100k-row database;
// compare with BenchmarkBackupPostgresBarePgDump for the script's overhead.
func BenchmarkBackupPostgresDumpScript(b *testing.B) {
	name := bpgBenchDB(b)
	proj := bpgGenerate(b, map[string]string{"db": "postgres", "db_backup_method": "logical", "offsite": "none"})
	tmp := b.TempDir()
	pw := filepath.Join(tmp, "pw")
	if err := os.WriteFile(pw, []byte("unused\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	env := bpgEnv("PGHOST=127.0.0.1", "PGPORT=5432", "PGUSER=postgres", "PGDATABASE="+name, "PGPASSWORD_FILE="+pw,
		"BACKUP_DIR="+filepath.Join(tmp, "backups"), "BACKUP_TEXTFILE_DIR="+filepath.Join(tmp, "textfile"),
		"BACKUP_LOG_DIR="+filepath.Join(tmp, "logs"))
	bpgMustRun(b, proj, env, "postgres-dump.sh", "backup") // initialises the restic repository
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bpgMustRun(b, proj, env, "postgres-dump.sh", "backup")
	}
	b.StopTimer()
	b.ReportMetric(bpgMetric(b, filepath.Join(tmp, "textfile", "backup_postgres_logical.prom"), "backup_last_size_bytes"), "backup-bytes")
	b.ReportMetric(100000, "rows")
}

// BenchmarkBackupPostgresBarePgDump measures `pg_dump -Fc` alone of the same database.
func BenchmarkBackupPostgresBarePgDump(b *testing.B) {
	name := bpgBenchDB(b)
	out := filepath.Join(b.TempDir(), "db.dump")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command("pg_dump", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-Fc", "-f", out, name)
		cmd.Env = bpgEnv()
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("pg_dump: %v\n%s", err, o)
		}
	}
	b.StopTimer()
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size()), "backup-bytes")
	b.ReportMetric(100000, "rows")
}
