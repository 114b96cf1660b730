package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestBackupRedis backs up a password-protected Redis of its own with data in several
// databases, checks the manifest and metrics, changes the data, proves the restore test and
// a full restore bring back exactly the data of the backup, and that a damaged newest backup
// fails the restore test (result 0, last success kept).
func TestBackupRedis(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"redis-server", "redis-cli", "redis-check-rdb"} {
		e2eutil.RequireTool(t, tool)
	}
	genStart := time.Now()
	p := brfNewProject(t, map[string]string{"cache": "redis"}, true)
	p.cheapRepos(t)
	t.Logf("generate: %s", time.Since(genStart).Round(time.Millisecond))
	pw, err := os.ReadFile(filepath.Join(p.dir, "secrets", "redis_password"))
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(pw))
	if password == "" {
		t.Fatal("the generated secrets/redis_password is empty")
	}
	liveDir := filepath.Join(p.tmp, "live")
	live, port := brfStartRedis(t, liveDir, password, "--enable-debug-command", "yes")
	redisEnv := map[string]string{"BACKUP_STORES": "redis:redis", "REDIS_HOST": "127.0.0.1",
		"REDIS_PORT": strconv.Itoa(port), "REDIS_PASSWORD_FILE": "secrets/redis_password"}

	// Data in three databases: strings (one binary), every collection type, a key with a
	// long TTL, and one whose TTL has passed but that is still stored (active expiry off, as
	// on a busy cache that has not got to it yet): it is in the RDB, and the restore test
	// must count it although it loads the snapshot long after that TTL.
	bin := make([]byte, 4096)
	if _, err := rand.Read(bin); err != nil {
		t.Fatal(err)
	}
	live.must(t, "SELECT", "0")
	for i := 0; i < 300; i++ {
		live.must(t, "SET", fmt.Sprintf("user:%d", i), fmt.Sprintf("value %d ü", i))
	}
	live.must(t, "SET", "blob", string(bin)+"\x00\r\n")
	live.must(t, "RPUSH", "queue", "a", "b", "c", "a")
	live.must(t, "HSET", "hash", "f1", "v1", "f2", "v2")
	live.must(t, "SADD", "set", "x", "y", "z")
	live.must(t, "ZADD", "zset", "1.5", "one", "2", "two")
	live.must(t, "XADD", "stream", "1-1", "field", "value")
	live.must(t, "SELECT", "3")
	for i := 0; i < 120; i++ {
		live.must(t, "SET", fmt.Sprintf("session %d", i), strings.Repeat("s", i))
	}
	live.must(t, "SET", "ttl-key", "lives an hour", "EX", "3600")
	live.must(t, "SELECT", "9")
	live.must(t, "SET", "only-key-in-db9", "9")
	live.must(t, "DEBUG", "SET-ACTIVE-EXPIRE", "0")
	live.must(t, "SET", "ephemeral", "expired already", "PX", "1")
	time.Sleep(10 * time.Millisecond)

	// The first backup copies the RDB from the data directory (as the backup container does
	// with the cache's volume mounted), the second one below fetches it with redis-cli --rdb.
	dataDirEnv := map[string]string{"REDIS_DATA_DIR": liveDir}
	for k, v := range redisEnv {
		dataDirEnv[k] = v
	}
	start := time.Now()
	out := p.mustRun(t, dataDirEnv, "ops/backup/backup.sh")
	end := time.Now()
	backupTook := end.Sub(start)
	metrics := brfCheckBackupMetrics(t, p, "redis", "full", start, end, 1000)
	if !strings.Contains(out, "redis backup") {
		t.Errorf("backup printed no summary:\n%s", out)
	}

	// The key counts (DBSIZE counts the expired key) and the data (reading it drops that
	// key) as they were at the backup, canary included.
	wantKeys := map[string]int{}
	for db := 0; db < 16; db++ {
		live.must(t, "SELECT", strconv.Itoa(db))
		if n := live.must(t, "DBSIZE").(int64); n > 0 {
			wantKeys["db"+strconv.Itoa(db)] = int(n)
		}
	}
	original := brfDump(t, live)
	manifest := p.manifest(t, "redis")
	gotKeys := map[string]int{}
	for k, v := range manifest["keys"].(map[string]any) {
		gotKeys[k] = int(v.(float64))
	}
	if fmt.Sprint(gotKeys) != fmt.Sprint(wantKeys) {
		t.Errorf("manifest keys %v, the live Redis had %v", gotKeys, wantKeys)
	}
	total := 0
	for _, n := range wantKeys {
		total += n
	}
	if manifest["keys_total"].(float64) != float64(total) || manifest["keys_exact"] != true {
		t.Errorf("manifest keys_total %v keys_exact %v, want %d and true", manifest["keys_total"], manifest["keys_exact"], total)
	}
	canary := manifest["canary"].(map[string]any)
	live.must(t, "SELECT", "0")
	if v := live.must(t, "GET", "opsready:backup-canary"); canary["key"] != "opsready:backup-canary" || canary["id"] != v {
		t.Errorf("manifest canary %v, the live canary key is %v", canary, v)
	}
	info := live.must(t, "INFO", "server").(string)
	_, version, _ := strings.Cut(info, "redis_version:")
	version, _, _ = strings.Cut(version, "\r\n")
	if major, _, _ := strings.Cut(version, "."); manifest["server_major"] != major || version == "" {
		t.Errorf("manifest server_major %v, the live Redis is %q", manifest["server_major"], version)
	}
	if manifest["source"] != "data-dir" {
		t.Errorf("manifest source %v, want data-dir (REDIS_DATA_DIR was set)", manifest["source"])
	}
	files := manifest["files"].([]any)
	if len(files) != 1 || files[0].(map[string]any)["name"] != "dump.rdb" || len(files[0].(map[string]any)["sha256"].(string)) != 64 {
		t.Errorf("manifest files %v, want dump.rdb with its sha256", files)
	}
	if _, ok := original["9/ephemeral"]; ok || wantKeys["db9"] != 2 {
		t.Fatalf("the expired key is not set up as intended: dump has it %v, db9 has %d keys", ok, wantKeys["db9"])
	}
	t.Logf("backup of %d keys in %d dbs: %s, %v bytes staged", total, len(wantKeys), backupTook.Round(time.Millisecond), metrics["backup_last_size_bytes"])

	// Change the live data after the backup.
	live.must(t, "SELECT", "0")
	live.must(t, "SET", "user:1", "changed")
	live.must(t, "DEL", "hash", "user:2")
	live.must(t, "SET", "new-key", "new")
	live.must(t, "SELECT", "3")
	live.must(t, "FLUSHDB")

	start = time.Now()
	out = p.mustRun(t, redisEnv, "ops/backup/restore-test.sh")
	rtTook := time.Since(start)
	line := brfLastLogLine(t, p)
	for _, want := range []string{"store=redis", "result=passed", fmt.Sprintf("keys=%d", total), fmt.Sprintf("dbs=%d", len(wantKeys)), "canary=ok"} {
		if !strings.Contains(line, want) {
			t.Errorf("restore-test.log line %q lacks %q\n%s", line, want, out)
		}
	}
	if r := brfRestoreResult(t, p, "redis"); r != 1 {
		t.Errorf("restore_test_last_result %v after a passed test, want 1", r)
	}
	passed, err := os.ReadFile(p.textfile("restore_test_redis.prom"))
	if err != nil {
		t.Fatalf("no restore_test_redis.prom after a passed test: %v", err)
	}
	t.Logf("restore test: %s (%s)", rtTook.Round(time.Millisecond), line)

	// The disaster path: the RDB into a data directory, a server started on it.
	restored := filepath.Join(p.tmp, "restored")
	p.mustRun(t, nil, "ops/backup/restore.sh", "redis", "--target-dir", restored)
	if out, err := p.run(t, nil, "ops/backup/restore.sh", "redis", "--target-dir", restored); err == nil || !strings.Contains(out, "--force") {
		t.Errorf("a second restore over an existing dump.rdb did not refuse (err %v):\n%s", err, out)
	}
	p.mustRun(t, nil, "ops/backup/restore.sh", "redis", "--target-dir", restored, "--force")
	back, _ := brfStartRedis(t, restored, "")
	if d := brfDiff(original, brfDump(t, back)); len(d) > 0 {
		t.Errorf("the restored Redis differs from the data at the backup (%d differences): %v", len(d), d[:min(len(d), 10)])
	}
	if out, err := p.run(t, nil, "ops/backup/redis.sh", "restore", "--help"); err != nil || !strings.Contains(out, "Usage:") {
		t.Errorf("redis.sh restore --help: %v\n%s", err, out)
	}
	if out := p.mustRun(t, nil, "ops/backup/list.sh", "redis"); !strings.Contains(out, "\tfull\t") {
		t.Errorf("list.sh redis lists no full backup:\n%s", out)
	}

	// A backup of a Redis that is not there fails and writes no metric.
	wrong := map[string]string{"BACKUP_STORES": "redis:redis", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": strconv.Itoa(e2eutil.FreePort(t)),
		"BACKUP_TEXTFILE_DIR": filepath.Join(p.tmp, "textfile-wrong")}
	if out, err := p.run(t, wrong, "ops/backup/backup.sh"); err == nil || !strings.Contains(out, "cannot reach Redis") {
		t.Errorf("backup of a Redis on a closed port: err %v, want a failure naming it:\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(p.tmp, "textfile-wrong", "backup_redis_full.prom")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed backup wrote backup_redis_full.prom (%v)", err)
	}

	// A second backup whose packs are then damaged off-site: the restore test (which reads
	// off-site) must fail, say why, record 0 and keep the last success.
	// It starts while a slow background save (begun before its canary) runs: it has to wait
	// for that one and save again. The save is slow enough (0.2 s a key) to outlast the
	// script's start on any machine, and is ended by the test once the script has met it,
	// so nothing races the clock.
	before := brfDataFiles(t, p.offsite())
	live.must(t, "CONFIG", "SET", "rdb-key-save-delay", "200000")
	live.must(t, "BGSAVE")
	out = brfBackupMeetingSave(t, p, live, redisEnv)
	if !strings.Contains(out, "already running") {
		t.Errorf("the backup did not meet the running background save:\n%s", out)
	}
	m := p.manifest(t, "redis")
	if m["source"] != "redis-cli-rdb" || m["keys_exact"] != true {
		t.Errorf("second backup: manifest source %v keys_exact %v, want redis-cli-rdb and true", m["source"], m["keys_exact"])
	}
	live.must(t, "SELECT", "0")
	if v := live.must(t, "GET", "opsready:backup-canary"); m["canary"].(map[string]any)["id"] != v || v == canary["id"] {
		t.Errorf("second backup: manifest canary %v, live %v, first %v", m["canary"], v, canary["id"])
	}
	brfCorruptNew(t, p.offsite(), before)
	start = time.Now()
	out, err = p.run(t, redisEnv, "ops/backup/restore-test.sh")
	t.Logf("failing restore test: %s", time.Since(start).Round(time.Millisecond))
	if err == nil {
		t.Fatalf("the restore test passed on a damaged backup:\n%s", out)
	}
	if !strings.Contains(out, "restore test of redis FAILED") || !strings.Contains(out, "damaged") {
		t.Errorf("the failed restore test does not say what is wrong:\n%s", out)
	}
	if r := brfRestoreResult(t, p, "redis"); r != 0 {
		t.Errorf("restore_test_last_result %v after a failed test, want 0", r)
	}
	if now, _ := os.ReadFile(p.textfile("restore_test_redis.prom")); !bytes.Equal(now, passed) {
		t.Errorf("a failed restore test changed restore_test_redis.prom:\n%s\nwas:\n%s", now, passed)
	}
	if line := brfLastLogLine(t, p); !strings.Contains(line, "result=failed") {
		t.Errorf("restore-test.log last line %q, want result=failed", line)
	}
}

// brfBackupMeetingSave runs backup.sh while live's slow background save runs: once the script
// says it waits for that save, the test makes saves fast again and kills the save's child
// process, so the script's own save follows at once. It returns the script's output.
func brfBackupMeetingSave(t *testing.T, p *brfProject, live *brfRedis, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out e2eutil.SyncBuffer
	cmd := exec.CommandContext(ctx, filepath.Join(p.dir, "ops/backup/backup.sh"))
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = p.dir, p.environ(env), &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for met := false; !met; {
		select {
		case err := <-done:
			t.Fatalf("backup.sh ended (%v) before it met the running background save:\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
			met = strings.Contains(out.String(), "already running")
		}
	}
	live.must(t, "CONFIG", "SET", "rdb-key-save-delay", "0")
	info, _ := live.must(t, "INFO", "server").(string)
	var pid string
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			pid = v
		}
	}
	children, err := os.ReadFile(filepath.Join("/proc", pid, "task", pid, "children"))
	if err != nil || len(strings.Fields(string(children))) == 0 {
		t.Fatalf("no background save child of redis-server %q: %v", pid, err)
	}
	for _, c := range strings.Fields(string(children)) {
		if n, err := strconv.Atoi(c); err == nil {
			_ = syscall.Kill(n, syscall.SIGKILL)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("backup.sh after the background save: %v\n%s", err, out.String())
	}
	return out.String()
}

// TestBackupRedisDispatchOneFails: with two stores of which one fails, backup.sh still
// backs up the other, fails, and names the failed store.
func TestBackupRedisDispatchOneFails(t *testing.T) {
	t.Parallel()
	p := brfNewProject(t, map[string]string{"cache": "redis"}, false)
	env := map[string]string{"BACKUP_STORES": "redis:redis files:files", "REDIS_HOST": "127.0.0.1",
		"REDIS_PORT": strconv.Itoa(e2eutil.FreePort(t)), "REDIS_PASSWORD_FILE": ""}
	out, err := p.run(t, env, "ops/backup/backup.sh")
	if err == nil {
		t.Fatalf("backup.sh succeeded with an unreachable Redis:\n%s", out)
	}
	if !strings.Contains(out, "backup failed for: redis") || strings.Contains(out, "failed for: redis files") {
		t.Errorf("the failure does not name exactly the failed store:\n%s", out)
	}
	if _, err := os.Stat(p.textfile("backup_files_full.prom")); err != nil {
		t.Errorf("the files store did not run after redis failed: %v\n%s", err, out)
	}
	if _, err := os.Stat(p.textfile("backup_redis_full.prom")); err == nil {
		t.Error("the failed redis backup wrote a metric")
	}
	if n := len(p.snapshots(t, p.primary(), "store=files")); n != 1 {
		t.Errorf("%d files snapshots, want 1", n)
	}
}
