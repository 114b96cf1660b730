package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// brfProject is a generated project whose backup scripts run with a temporary BACKUP_DIR,
// off-site repository, textfile and log directory.
type brfProject struct {
	dir string            // the generated project
	tmp string            // per-test scratch space outside the project
	env map[string]string // settings over the filtered environment
}

// brfNewProject generates a project and points its backup settings into temp dirs. An empty
// offsite leaves BACKUP_OFFSITE_REPOSITORY empty (no off-site copy, faster).
func brfNewProject(t *testing.T, set map[string]string, offsite bool) *brfProject {
	t.Helper()
	for _, tool := range []string{"restic", "jq", "flock", "sha256sum"} {
		requireTool(t, tool)
	}
	p := &brfProject{dir: generate(t, set), tmp: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(p.tmp, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	p.env = map[string]string{
		"BACKUP_DIR":                filepath.Join(p.tmp, "backups"),
		"BACKUP_OFFSITE_REPOSITORY": "",
		"BACKUP_TEXTFILE_DIR":       filepath.Join(p.tmp, "textfile"),
		"BACKUP_LOG_DIR":            filepath.Join(p.tmp, "log"),
		"TMPDIR":                    filepath.Join(p.tmp, "tmp"),
		"TZ":                        "UTC",
	}
	if offsite {
		p.env["BACKUP_OFFSITE_REPOSITORY"] = filepath.Join(p.tmp, "offsite")
	}
	return p
}

// environ is the process environment without anything that configures the backups, plus
// the project's settings and extra.
func (p *brfProject) environ(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		skip := k == "TZ" || k == "REDISCLI_AUTH" || k == "TMPDIR"
		for _, prefix := range []string{"BACKUP_", "REDIS_", "RESTIC_", "RESTORE_TEST_", "PG", "MARIADB_"} {
			skip = skip || strings.HasPrefix(k, prefix)
		}
		if !skip {
			env = append(env, kv)
		}
	}
	for k, v := range p.env {
		if _, over := extra[k]; !over {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// run runs a generated script (path relative to the project) and returns its combined
// output and error.
func (p *brfProject) run(t *testing.T, extra map[string]string, script string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(p.dir, script), args...)
	cmd.Dir = p.dir
	cmd.Env = p.environ(extra)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustRun runs a script that has to succeed and logs how long it took.
func (p *brfProject) mustRun(t *testing.T, extra map[string]string, script string, args ...string) string {
	t.Helper()
	start := time.Now()
	out, err := p.run(t, extra, script, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
	t.Logf("%s %s: %s", script, strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out
}

func (p *brfProject) primary() string { return filepath.Join(p.env["BACKUP_DIR"], "restic") }
func (p *brfProject) offsite() string { return p.env["BACKUP_OFFSITE_REPOSITORY"] }
func (p *brfProject) textfile(name string) string {
	return filepath.Join(p.env["BACKUP_TEXTFILE_DIR"], name)
}

// restic runs restic on repo with the project's password.
func (p *brfProject) restic(t *testing.T, repo string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("restic", append([]string{"--cache-dir", filepath.Join(p.tmp, "restic-cache")}, args...)...)
	cmd.Env = append(p.environ(nil), "RESTIC_REPOSITORY="+repo,
		"RESTIC_PASSWORD_FILE="+filepath.Join(p.dir, "secrets", "restic_password"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("restic %v on %s: %v\n%s", args, repo, err, stderr.String())
	}
	return out
}

// brfSnapshot is what restic snapshots --json says about a snapshot.
type brfSnapshot struct {
	ID    string    `json:"id"`
	Time  time.Time `json:"time"`
	Host  string    `json:"hostname"`
	Paths []string  `json:"paths"`
	Tags  []string  `json:"tags"`
}

// snapshots lists the snapshots of repo having tag (all when empty), oldest first.
func (p *brfProject) snapshots(t *testing.T, repo, tag string) []brfSnapshot {
	t.Helper()
	args := []string{"snapshots", "--json"}
	if tag != "" {
		args = append(args, "--tag", tag)
	}
	var list []brfSnapshot
	if err := json.Unmarshal(p.restic(t, repo, args...), &list); err != nil {
		t.Fatalf("restic snapshots: %v", err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Time.Before(list[j].Time) })
	return list
}

// manifest reads manifest.json of the newest snapshot of store in the primary repository.
func (p *brfProject) manifest(t *testing.T, store string) map[string]any {
	t.Helper()
	list := p.snapshots(t, p.primary(), "store="+store)
	if len(list) == 0 {
		t.Fatalf("no %s snapshot in the primary repository", store)
	}
	newest := list[len(list)-1]
	b := p.restic(t, p.primary(), "dump", newest.ID, filepath.Join(newest.Paths[0], "manifest.json"))
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest.json of %s: %v\n%s", store, err, b)
	}
	return m
}

// brfSample is one sample of a Prometheus text file.
type brfSample struct {
	labels map[string]string
	value  float64
}

// brfParseProm parses a textfile-collector file: every sample must have a HELP and a TYPE
// line before it; it returns the samples by metric name.
func brfParseProm(t *testing.T, path string) map[string][]brfSample {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("metrics file: %v", err)
	}
	help, typ := map[string]bool{}, map[string]bool{}
	out := map[string][]brfSample{}
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, _, _ := strings.Cut(rest, " ")
			help[name] = true
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, kind, _ := strings.Cut(rest, " ")
			if kind != "gauge" && kind != "counter" {
				t.Errorf("%s:%d: type %q", path, i+1, kind)
			}
			typ[name] = true
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("%s:%d: not a sample: %q", path, i+1, line)
		}
		name, labels, _ := strings.Cut(series, "{")
		s := brfSample{labels: map[string]string{}}
		if labels != "" {
			if !strings.HasSuffix(labels, "}") {
				t.Fatalf("%s:%d: labels not closed: %q", path, i+1, line)
			}
			for _, kv := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
				k, v, ok := strings.Cut(kv, "=")
				uq, err := strconv.Unquote(v)
				if !ok || err != nil {
					t.Fatalf("%s:%d: bad label %q", path, i+1, kv)
				}
				s.labels[k] = uq
			}
		}
		if s.value, err = strconv.ParseFloat(value, 64); err != nil {
			t.Fatalf("%s:%d: value %q: %v", path, i+1, value, err)
		}
		if !help[name] || !typ[name] {
			t.Errorf("%s:%d: %s has no HELP or TYPE line before it", path, i+1, name)
		}
		out[name] = append(out[name], s)
	}
	return out
}

// brfCheckBackupMetrics checks backup_<store>_<kind>.prom: the three metrics, one sample
// each with store and kind labels, finished within [from, to], and the size.
func brfCheckBackupMetrics(t *testing.T, p *brfProject, store, kind string, from, to time.Time, minSize float64) map[string]float64 {
	t.Helper()
	m := brfParseProm(t, p.textfile(fmt.Sprintf("backup_%s_%s.prom", store, kind)))
	got := map[string]float64{}
	for _, name := range []string{"backup_last_success_timestamp_seconds", "backup_last_duration_seconds", "backup_last_size_bytes"} {
		s := m[name]
		if len(s) != 1 {
			t.Fatalf("%s: %d samples, want 1", name, len(s))
		}
		if s[0].labels["store"] != store || s[0].labels["kind"] != kind || len(s[0].labels) != 2 {
			t.Errorf("%s labels %v, want store=%q kind=%q", name, s[0].labels, store, kind)
		}
		got[name] = s[0].value
	}
	if ts := got["backup_last_success_timestamp_seconds"]; ts < float64(from.Unix()) || ts > float64(to.Unix()+1) {
		t.Errorf("backup_last_success_timestamp_seconds %v outside the run [%d, %d]", ts, from.Unix(), to.Unix())
	}
	if d := got["backup_last_duration_seconds"]; d < 0 || d > to.Sub(from).Seconds()+1 {
		t.Errorf("backup_last_duration_seconds %v, the run took %s", d, to.Sub(from))
	}
	if got["backup_last_size_bytes"] < minSize {
		t.Errorf("backup_last_size_bytes %v, want at least %v", got["backup_last_size_bytes"], minSize)
	}
	return got
}

// brfRestoreResult returns restore_test_last_result of store.
func brfRestoreResult(t *testing.T, p *brfProject, store string) float64 {
	t.Helper()
	s := brfParseProm(t, p.textfile("restore_test_result_"+store+".prom"))["restore_test_last_result"]
	if len(s) != 1 || s[0].labels["store"] != store {
		t.Fatalf("restore_test_last_result of %s: %v", store, s)
	}
	return s[0].value
}

// brfLastLogLine returns the last line of restore-test.log.
func brfLastLogLine(t *testing.T, p *brfProject) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.env["BACKUP_LOG_DIR"], "restore-test.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// brfDataFiles lists the pack files of a restic repository.
func brfDataFiles(t *testing.T, repo string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(repo, "data"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out[path] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// brfCorruptNew damages every pack of repo that is not in before (the packs the newest
// backup added): bytes flipped throughout, the size kept, as bit rot does. (Truncated packs
// fail the same way, but restic 0.14 retries short reads for about 45 s before giving up.)
func brfCorruptNew(t *testing.T, repo string, before map[string]bool) {
	t.Helper()
	n := 0
	for path := range brfDataFiles(t, repo) {
		if before[path] {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(b); i += 97 {
			b[i] ^= 0xff
		}
		// Pack files are read-only in a restic repository.
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("the newest backup added no pack to the off-site repository")
	}
	t.Logf("corrupted %d pack(s) of the newest snapshot in %s", n, repo)
}

// ---------------------------------------------------------------------------------------
// A minimal RESP client, so that binary values compare exactly.

type brfRedis struct {
	c net.Conn
	r *bufio.Reader
}

type brfRedisError string

func (e brfRedisError) Error() string { return string(e) }

func brfDial(port int, password string) (*brfRedis, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		return nil, err
	}
	r := &brfRedis{c: c, r: bufio.NewReader(c)}
	if password != "" {
		if _, err := r.do("AUTH", password); err != nil {
			c.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *brfRedis) do(args ...string) (any, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_ = r.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write(b.Bytes()); err != nil {
		return nil, err
	}
	return r.read()
}

func (r *brfRedis) read() (any, error) {
	line, err := r.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty RESP line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, brfRedisError(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		list := make([]any, n)
		for i := range list {
			if list[i], err = r.read(); err != nil {
				return nil, err
			}
		}
		return list, nil
	}
	return nil, fmt.Errorf("unknown RESP reply %q", line)
}

// must runs a command that has to succeed.
func (r *brfRedis) must(t *testing.T, args ...string) any {
	t.Helper()
	v, err := r.do(args...)
	if err != nil {
		t.Fatalf("redis %v: %v", args, err)
	}
	return v
}

// brfStartRedis starts a redis-server of its own on a free port with dir as its data
// directory (and the RDB there loaded), and connects to it.
func brfStartRedis(t *testing.T, dir, password string, extra ...string) (*brfRedis, int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	args := []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no"}
	if password != "" {
		args = append(args, "--requirepass", password)
	}
	args = append(args, extra...)
	proc := startProc(t, exec.Command("redis-server", args...), port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := brfDial(port, password)
		if err == nil {
			if v, err := r.do("PING"); err == nil && v == "PONG" {
				t.Cleanup(func() { r.c.Close() })
				return r, port
			}
			r.c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %d did not come up: %v\n%s", port, err, proc.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// brfDump reads every key of every database with its type, value and whether it has a
// TTL, as "db/key" -> description; sets and hashes sorted so that order does not matter.
func brfDump(t *testing.T, r *brfRedis) map[string]string {
	t.Helper()
	out := map[string]string{}
	for db := 0; db < 16; db++ {
		r.must(t, "SELECT", strconv.Itoa(db))
		cursor := "0"
		for {
			reply := r.must(t, "SCAN", cursor, "COUNT", "1000").([]any)
			cursor = reply[0].(string)
			for _, k := range reply[1].([]any) {
				key := k.(string)
				typ := r.must(t, "TYPE", key).(string)
				var val any
				switch typ {
				case "string":
					val = r.must(t, "GET", key)
				case "list":
					val = r.must(t, "LRANGE", key, "0", "-1")
				case "set":
					val = brfSorted(r.must(t, "SMEMBERS", key))
				case "hash":
					val = brfSorted(r.must(t, "HGETALL", key)) // pairs sorted as one list: fine for equality of small hashes with distinct fields/values
				case "zset":
					val = r.must(t, "ZRANGE", key, "0", "-1", "WITHSCORES")
				case "stream":
					val = r.must(t, "XRANGE", key, "-", "+")
				default:
					t.Fatalf("key %q has unexpected type %s", key, typ)
				}
				ttl := r.must(t, "PTTL", key).(int64) > 0
				out[fmt.Sprintf("%d/%s", db, key)] = fmt.Sprintf("%s ttl=%v %q", typ, ttl, fmt.Sprint(val))
			}
			if cursor == "0" {
				break
			}
		}
	}
	return out
}

func brfSorted(v any) []string {
	var s []string
	for _, x := range v.([]any) {
		s = append(s, x.(string))
	}
	sort.Strings(s)
	return s
}

func brfDiff(want, got map[string]string) []string {
	var d []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			d = append(d, "missing "+k)
		} else if g != v {
			d = append(d, fmt.Sprintf("%s: got %s, want %s", k, g, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, "extra "+k)
		}
	}
	sort.Strings(d)
	return d
}

// TestBackupRedis backs up a password-protected Redis of its own with data in several
// databases, checks the manifest and metrics, changes the data, proves the restore test and
// a full restore bring back exactly the data of the backup, and that a damaged newest backup
// fails the restore test (result 0, last success kept).
func TestBackupRedis(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"redis-server", "redis-cli", "redis-check-rdb"} {
		requireTool(t, tool)
	}
	genStart := time.Now()
	p := brfNewProject(t, map[string]string{"cache": "redis"}, true)
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
	wrong := map[string]string{"BACKUP_STORES": "redis:redis", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": strconv.Itoa(freePort(t)),
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
	var out syncBuffer
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

// brfEntry describes a file system entry for comparison: type, permissions and content or
// link target.
func brfEntry(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		return "missing"
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			t.Fatal(err)
		}
		return "symlink -> " + target
	case fi.IsDir():
		return fmt.Sprintf("dir %v", fi.Mode().Perm())
	default:
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("file %v %d %x", fi.Mode().Perm(), len(b), b)
	}
}

// brfTree maps each path below root/rel (for each rel) to brfEntry.
func brfTree(t *testing.T, root string, rels ...string) (map[string]string, int) {
	t.Helper()
	out, files := map[string]string{}, 0
	for _, rel := range rels {
		err := filepath.WalkDir(filepath.Join(root, rel), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			r, _ := filepath.Rel(root, path)
			out[r] = brfEntry(t, path)
			if d.Type().IsRegular() {
				files++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out, files
}

// TestBackupFiles backs up .env, secrets and uploads (binary, nested, odd names, modes, a
// symlink), restores them byte for byte with their modes, and proves that a backup that
// does not match its manifest, and one whose packs are damaged, fail the restore test.
func TestBackupFiles(t *testing.T) {
	t.Parallel()
	p := brfNewProject(t, nil, true)
	up := filepath.Join(p.dir, "var", "uploads")
	blob := make([]byte, 256<<10)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		rel  string
		data []byte
		mode fs.FileMode
	}{
		{"a.txt", []byte("hello\n"), 0o644},
		{"img/blob.bin", blob, 0o600},
		{"img/deep/nested dir/naïve file.txt", []byte("nested\n"), 0o640},
		{"tools/run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755},
		{"empty", nil, 0o644},
	} {
		path := filepath.Join(up, f.rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(up, "link")); err != nil {
		t.Fatal(err)
	}
	paths := []string{".env", "secrets", "var/uploads"}
	original, nfiles := brfTree(t, p.dir, paths...)
	env := map[string]string{"BACKUP_STORES": "files:files", "BACKUP_FILES_PATHS": strings.Join(paths, " ") + " not/there"}

	start := time.Now()
	out := p.mustRun(t, env, "ops/backup/backup.sh")
	end := time.Now()
	if !strings.Contains(out, "not/there") || !strings.Contains(out, "skipped") {
		t.Errorf("a missing path was not reported as skipped:\n%s", out)
	}
	metrics := brfCheckBackupMetrics(t, p, "files", "full", start, end, float64(len(blob)))
	m := p.manifest(t, "files")
	if fmt.Sprint(m["paths"]) != fmt.Sprint(paths) || fmt.Sprint(m["skipped"]) != "[not/there]" || m["files_count"].(float64) != float64(nfiles) {
		t.Errorf("manifest paths %v skipped %v files_count %v, want %v [not/there] %d", m["paths"], m["skipped"], m["files_count"], paths, nfiles)
	}
	t.Logf("files backup: %d files, %s, %v bytes staged", nfiles, end.Sub(start).Round(time.Millisecond), metrics["backup_last_size_bytes"])

	start = time.Now()
	p.mustRun(t, env, "ops/backup/restore-test.sh")
	line := brfLastLogLine(t, p)
	for _, want := range []string{"store=files", "result=passed", fmt.Sprintf("files=%d", nfiles), "paths=3", "canary=ok"} {
		if !strings.Contains(line, want) {
			t.Errorf("restore-test.log line %q lacks %q", line, want)
		}
	}
	t.Logf("files restore test: %s", time.Since(start).Round(time.Millisecond))
	passed, err := os.ReadFile(p.textfile("restore_test_files.prom"))
	if err != nil || brfRestoreResult(t, p, "files") != 1 {
		t.Fatalf("a passed restore test did not record success: %v", err)
	}

	// Change the originals, then restore into a new directory: equal to the backup.
	if err := os.WriteFile(filepath.Join(up, "a.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(p.tmp, "restored")
	p.mustRun(t, nil, "ops/backup/restore.sh", "files", "--target-dir", target)
	got, _ := brfTree(t, target, paths...)
	if d := brfDiff(original, got); len(d) > 0 {
		t.Errorf("restored files differ from the backed-up ones: %v", d[:min(len(d), 10)])
	}
	if _, err := os.Lstat(filepath.Join(target, ".backup-canary")); err == nil {
		t.Error("the restore left the canary file in the target")
	}
	if out, err := p.run(t, nil, "ops/backup/restore.sh", "files", "--target-dir", target); err == nil || !strings.Contains(out, "--force") {
		t.Errorf("a restore over existing files did not refuse (err %v):\n%s", err, out)
	}
	p.mustRun(t, nil, "ops/backup/restore.sh", "files", "--target-dir", target, "--force")
	defOut := p.mustRun(t, nil, "ops/backup/files.sh", "restore")
	if !strings.Contains(defOut, filepath.Join(p.env["BACKUP_DIR"], "restored", "files-")) {
		t.Errorf("restore without --target-dir did not use a new directory below BACKUP_DIR/restored:\n%s", defOut)
	}

	// A snapshot whose file does not match its manifest (same size, other bytes) fails.
	newest := p.snapshots(t, p.primary(), "store=files")
	tamper := filepath.Join(p.tmp, "tamper")
	p.restic(t, p.primary(), "restore", newest[len(newest)-1].ID, "--target", tamper)
	staged := filepath.Join(tamper, newest[len(newest)-1].Paths[0])
	if err := os.WriteFile(filepath.Join(staged, "tree", "var", "uploads", "a.txt"), []byte("HELLO\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.restic(t, p.primary(), "backup", "--host", newest[0].Host, "--tag", "store=files", "--tag", "kind=full", staged)
	out, err = p.run(t, map[string]string{"RESTORE_TEST_FROM": "primary"}, "ops/backup/files.sh", "restore-test")
	if err == nil || !strings.Contains(out, "tree/var/uploads/a.txt has a different sha256") {
		t.Errorf("a snapshot not matching its manifest: err %v, want a failure naming the file:\n%s", err, out)
	}
	if brfRestoreResult(t, p, "files") != 0 {
		t.Error("restore_test_last_result is not 0 after a failed test")
	}

	// Damaged packs of the newest off-site backup fail the restore test.
	before := brfDataFiles(t, p.offsite())
	p.mustRun(t, env, "ops/backup/backup.sh")
	brfCorruptNew(t, p.offsite(), before)
	out, err = p.run(t, env, "ops/backup/restore-test.sh")
	if err == nil || !strings.Contains(out, "restore test of files FAILED") || !strings.Contains(out, "damaged") {
		t.Errorf("the restore test of a damaged backup: err %v, want a failure:\n%s", err, out)
	}
	if brfRestoreResult(t, p, "files") != 0 {
		t.Error("restore_test_last_result is not 0 after a failed test")
	}
	if now, _ := os.ReadFile(p.textfile("restore_test_files.prom")); !bytes.Equal(now, passed) {
		t.Error("a failed restore test changed restore_test_files.prom")
	}
}

// TestBackupRedisDispatchOneFails: with two stores of which one fails, backup.sh still
// backs up the other, fails, and names the failed store.
func TestBackupRedisDispatchOneFails(t *testing.T) {
	t.Parallel()
	p := brfNewProject(t, map[string]string{"cache": "redis"}, false)
	env := map[string]string{"BACKUP_STORES": "redis:redis files:files", "REDIS_HOST": "127.0.0.1",
		"REDIS_PORT": strconv.Itoa(freePort(t)), "REDIS_PASSWORD_FILE": ""}
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
