package replica

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// rpgPgBin holds the PostgreSQL 15 server programs (Debian's layout).
const rpgPgBin = "/usr/lib/postgresql/15/bin"

// rpgNodeA and rpgNodeB are the two nodes' addresses: both listen on one port, as db and
// db-replica do on the compose network, so that .env's DB_PRIMARY_HOST alone says which
// one is the primary. Linux routes all of 127.0.0.0/8 to the loopback interface.
const (
	rpgNodeA = "127.0.0.2"
	rpgNodeB = "127.0.0.3"
)

// rpgPostgresUser returns the uid and gid the instances and scripts run as: postgres when
// the test runs as root (PostgreSQL refuses to run as root), else the test's own.
func rpgPostgresUser(t *testing.T) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return os.Getuid(), os.Getgid()
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root, the PostgreSQL instances need a user postgres: %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// rpgFastDir is a private directory with short paths (Unix sockets), on /dev/shm when it
// has room, removed when the test ends.
func rpgFastDir(t *testing.T) string {
	t.Helper()
	parent := ""
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && st.Bavail*uint64(st.Bsize) > 4<<30 {
		parent = "/dev/shm"
	}
	d, err := os.MkdirTemp(parent, "rpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// rpgCluster is a generated project with two PostgreSQL nodes on this host, run as the
// scripts' plain-host mode describes (docs/replica.md, "Without docker").
type rpgCluster struct {
	t        *testing.T
	proj     string
	base     string
	port     int
	uid, gid int
	data     map[string]string // node -> data directory
	env      []string          // the settings of the ops/db scripts
}

// rpgNewCluster generates a project with answers and prepares the directories of two nodes;
// it starts nothing.
func rpgNewCluster(t *testing.T, answers map[string]string) *rpgCluster {
	t.Helper()
	for _, tool := range []string{"psql", "flock", filepath.Join(rpgPgBin, "initdb"), filepath.Join(rpgPgBin, "pg_ctl"),
		filepath.Join(rpgPgBin, "pg_rewind"), filepath.Join(rpgPgBin, "pg_basebackup")} {
		e2eutil.RequireTool(t, tool)
	}
	c := &rpgCluster{t: t, proj: e2eutil.Generate(t, answers), base: rpgFastDir(t), port: e2eutil.FreePort(t), data: map[string]string{}}
	c.uid, c.gid = rpgPostgresUser(t)
	// The scripts run as PostgreSQL's user and write .env, var/ and the lock in the project.
	for d := filepath.Dir(c.proj); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := filepath.Walk(c.proj, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, c.uid, c.gid)
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{rpgNodeA, rpgNodeB} {
		c.data[n] = filepath.Join(c.base, strings.ReplaceAll(n, ".", "_"))
		for _, d := range []string{c.data[n], c.data[n] + ".s"} {
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(d, c.uid, c.gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chown(c.base, c.uid, c.gid); err != nil {
		t.Fatal(err)
	}
	c.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + c.base, "LANG=C.UTF-8", "TMPDIR=" + c.base,
		"DB_OPS_MODE=host",
		"DB_NODES=" + rpgNodeA + " " + rpgNodeB,
		"DB_PORT=" + strconv.Itoa(c.port),
		"PG_BINDIR=" + rpgPgBin,
		"DB_PGDATA_MAP=" + rpgNodeA + "=" + c.data[rpgNodeA] + " " + rpgNodeB + "=" + c.data[rpgNodeB],
		// A host's own instance settings (its address, port and socket) live outside the
		// data directory, which pg_rewind and pg_basebackup copy from the other node.
		"DB_NODE_START_CMD=" + c.startCmd(),
		"FAILOVER_RESTART_CMD=echo \"$(date +%s.%N) DB_PRIMARY_HOST=$(sed -n 's/^DB_PRIMARY_HOST=//p' .env)\" >>" + filepath.Join(c.base, "restarts"),
	}
	// A plain host says where the primary is by address.
	c.setEnvFile("DB_PRIMARY_HOST", rpgNodeA)
	return c
}

// startCmd is how a node starts (DB_NODE_START_CMD: node and pgdata are set).
func (c *rpgCluster) startCmd() string {
	return fmt.Sprintf(`%s/pg_ctl -D "$pgdata" -l "$pgdata.log" -w -t 300 -o "-c listen_addresses=$node -c port=%d -c unix_socket_directories=$pgdata.s -c fsync=off" start`,
		rpgPgBin, c.port)
}

// setEnvFile replaces KEY's line in the project's .env.
func (c *rpgCluster) setEnvFile(key, value string) {
	c.t.Helper()
	p := filepath.Join(c.proj, ".env")
	b, err := os.ReadFile(p)
	if err != nil {
		c.t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	found := false
	for i, l := range lines {
		if strings.HasPrefix(l, key+"=") {
			lines[i], found = key+"="+value, true
		}
	}
	if !found {
		c.t.Fatalf(".env has no %s line:\n%s", key, b)
	}
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// primaryHost is DB_PRIMARY_HOST as compose.yaml hands it to the backend
// (DB_HOST: "${DB_PRIMARY_HOST:-db}": the last assignment in .env, or db).
func (c *rpgCluster) primaryHost() string {
	c.t.Helper()
	f, err := os.Open(filepath.Join(c.proj, ".env"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	host := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "DB_PRIMARY_HOST="); ok {
			host = v
		}
	}
	if host == "" {
		host = "db"
	}
	return host
}

// as runs cmd as the nodes' user.
func (c *rpgCluster) as(cmd *exec.Cmd) *exec.Cmd {
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.gid)}}
	}
	if cmd.Dir == "" {
		cmd.Dir = c.base
	}
	return cmd
}

// initPrimary creates node's cluster as the postgres image does (superuser app with the
// project's db_password, database app, trust on the socket, passwords over TCP and no
// replication line) and starts it.
func (c *rpgCluster) initPrimary(node string) {
	c.t.Helper()
	pw := filepath.Join(c.base, "initdb-pw")
	if err := os.WriteFile(pw, []byte(e2eutil.ReadFile(c.t, filepath.Join(c.proj, "secrets", "db_password"))), 0o600); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Chown(pw, c.uid, c.gid); err != nil {
		c.t.Fatal(err)
	}
	out, err := c.as(exec.Command(filepath.Join(rpgPgBin, "initdb"), "-D", c.data[node], "-U", "app", "--pwfile="+pw,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")).CombinedOutput()
	if err != nil {
		c.t.Fatalf("initdb: %v\n%s", err, out)
	}
	hba := "local all all trust\nhost all all all scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(c.data[node], "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(c.data[node], "pg_hba.conf"), c.uid, c.gid); err != nil {
		c.t.Fatal(err)
	}
	c.start(node)
	c.psql(node, "postgres", "CREATE DATABASE app;")
}

// start starts node's server the way the scripts do (DB_NODE_START_CMD).
func (c *rpgCluster) start(node string) {
	c.t.Helper()
	cmd := c.as(exec.Command("bash", "-c", `eval "$DB_NODE_START_CMD"`))
	cmd.Env = append(c.env, "node="+node, "pgdata="+c.data[node])
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("start %s: %v\n%s\n%s", node, err, out, c.serverLog(node))
	}
	c.t.Cleanup(func() { c.stop(node, "immediate") })
}

// stop stops node's server if it runs.
func (c *rpgCluster) stop(node, mode string) {
	_ = c.as(exec.Command(filepath.Join(rpgPgBin, "pg_ctl"), "-D", c.data[node], "-m", mode, "-w", "stop")).Run()
}

// serverLog is node's server log.
func (c *rpgCluster) serverLog(node string) string {
	b, _ := os.ReadFile(c.data[node] + ".log")
	return string(b)
}

// pid is the process id of node's postmaster.
func (c *rpgCluster) pid(node string) int {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.data[node], "postmaster.pid"))
	if err != nil {
		c.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		c.t.Fatal(err)
	}
	return pid
}

// psqlErr runs sql on node's database db through its socket as app.
func (c *rpgCluster) psqlErr(node, db, sql string) (string, error) {
	cmd := exec.Command("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", c.data[node]+".s",
		"-p", strconv.Itoa(c.port), "-U", "app", "-d", db)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PGCONNECT_TIMEOUT=10"}
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql on %s: %v: %s\nSQL: %s", node, err, strings.TrimSpace(string(out)), sql)
	}
	return strings.TrimSpace(string(out)), nil
}

func (c *rpgCluster) psql(node, db, sql string) string {
	c.t.Helper()
	out, err := c.psqlErr(node, db, sql)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// waitSQL polls sql on node until it returns want, for at most 3 minutes (a bound on a
// hang, not a race).
func (c *rpgCluster) waitSQL(node, db, sql, want string) {
	c.t.Helper()
	var got string
	var err error
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, err = c.psqlErr(node, db, sql); err == nil && got == want {
			return
		}
	}
	c.t.Fatalf("on %s, %s never returned %q (last: %q, %v)\n%s", node, sql, want, got, err, c.serverLog(node))
}

// script runs ops/db/name of the project as the nodes' user with the cluster's settings
// and extra, and returns its output (stdout and stderr) and exit code.
func (c *rpgCluster) script(name string, extra ...string) (string, int) {
	c.t.Helper()
	cmd := c.as(exec.Command("bash", filepath.Join(c.proj, "ops", "db", name)))
	cmd.Env = append(append([]string{}, c.env...), extra...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			c.t.Fatalf("%s: %v", name, err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// mustScript runs a script that must succeed.
func (c *rpgCluster) mustScript(name string, extra ...string) (string, time.Duration) {
	c.t.Helper()
	start := time.Now()
	out, code := c.script(name, extra...)
	if code != 0 {
		c.t.Fatalf("%s exited %d:\n%s\nnode A log:\n%s\nnode B log:\n%s", name, code, out, c.serverLog(rpgNodeA), c.serverLog(rpgNodeB))
	}
	return out, time.Since(start)
}
