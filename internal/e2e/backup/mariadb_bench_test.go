package backup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/project"
)

// bmyBenchDB creates a database with ~100k rows on the local MariaDB for the benchmarks and
// a backup account with a password; both are dropped at cleanup.
func bmyBenchDB(b *testing.B) (db, user, pwFile string) {
	b.Helper()
	if _, err := exec.LookPath("mariadb-dump"); err != nil {
		b.Skip("mariadb-dump is not installed")
	}
	suffix := fmt.Sprintf("%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	db, user = "opsready_bench_"+suffix, "bmy_bench_"+suffix
	bmySharedRoot.exec(b, fmt.Sprintf("CREATE DATABASE `%[1]s`; CREATE USER '%[2]s'@'%%' IDENTIFIED BY 'pw'; GRANT ALL ON *.* TO '%[2]s'@'%%'", db, user))
	b.Cleanup(func() {
		bmySharedRoot.exec(b, fmt.Sprintf("DROP DATABASE IF EXISTS `%s`; DROP USER IF EXISTS '%s'@'%%'", db, user))
	})
	rows := 80000
	if v := os.Getenv("OPSREADY_BENCH_MARIADB_ROWS"); v != "" {
		// A larger data set (e.g. 8000000 rows, about 1 GB of dump) for the overhead ratio.
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("OPSREADY_BENCH_MARIADB_ROWS=%q: want a number of rows of at least 1000", v)
		}
		rows = n
	}
	bmySharedRoot.exec(b, bmyLoadSQL(rows), db)
	pwFile = filepath.Join(b.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("pw\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	return db, user, pwFile
}

// BenchmarkBackupMariadbDumpScript runs the generated backup (dump with row counting,
// accounts, manifest, restic into the primary repository and the off-site copy).
func BenchmarkBackupMariadbDumpScript(b *testing.B) {
	db, user, pw := bmyBenchDB(b)
	dir := filepath.Join(b.TempDir(), "proj")
	if _, err := project.Create(project.CreateOptions{Dir: dir, Blueprint: "webapp", Defaults: true, Version: "test",
		Set: map[string]string{"db": "mariadb", "db_backup_method": "logical"}}); err != nil {
		b.Fatal(err)
	}
	tmp := b.TempDir()
	env := append(os.Environ(), "MARIADB_HOST=127.0.0.1", "MARIADB_PORT=3306", "MARIADB_USER="+user,
		"MARIADB_DATABASE="+db, "MARIADB_PASSWORD_FILE="+pw, "BACKUP_STORES=mariadb:mariadb-dump",
		"BACKUP_DIR="+filepath.Join(tmp, "backups"), "BACKUP_OFFSITE_REPOSITORY="+filepath.Join(tmp, "offsite"),
		"BACKUP_TEXTFILE_DIR="+filepath.Join(tmp, "textfile"), "BACKUP_LOG_DIR="+filepath.Join(tmp, "log"))
	run := func() {
		cmd := exec.Command(filepath.Join(dir, "ops/backup/mariadb-dump.sh"), "backup")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("backup: %v\n%s", err, out)
		}
	}
	run() // initialises the repositories outside the measurement
	repo := filepath.Join(tmp, "backups", "restic")
	before := bmySize(repo)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
	b.StopTimer()
	size, err := os.ReadFile(filepath.Join(tmp, "textfile", "backup_mariadb_logical.prom"))
	if err != nil {
		b.Fatal(err)
	}
	if m := regexp.MustCompile(`backup_last_size_bytes\{[^}]*\} (\d+)`).FindSubmatch(size); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		b.ReportMetric(v, "staged-bytes")
	}
	b.ReportMetric(float64(bmySize(repo)-before)/float64(b.N), "repo-growth-bytes/op")
	b.ReportMetric(float64(before), "repo-first-bytes")
}

// BenchmarkBackupMariadbBareDump is the baseline: mariadb-dump with the same options into a file.
func BenchmarkBackupMariadbBareDump(b *testing.B) {
	db, user, pw := bmyBenchDB(b)
	out := filepath.Join(b.TempDir(), "dump.sql")
	var size int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("mariadb-dump", "-h", "127.0.0.1", "-P", "3306", "-u", user, "-p"+strings.TrimSpace(bmyRead(b, pw)),
			"--single-transaction", "--quick", "--routines", "--triggers", "--events", "--hex-blob", db)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = f, &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("mariadb-dump: %v\n%s", err, stderr.String())
		}
		f.Close()
		fi, _ := os.Stat(out)
		size = fi.Size()
	}
	b.ReportMetric(float64(size), "dump-bytes")
}

func bmyRead(b *testing.B, path string) string {
	v, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return string(v)
}
