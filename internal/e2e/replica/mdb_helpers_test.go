package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
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

// rmdNodeA and rmdNodeB are the two MariaDB servers' addresses: both listen on one port, as
// db and db-replica do on the compose network, so that .env's DB_PRIMARY_HOST alone says
// which one is the primary (Linux routes all of 127.0.0.0/8 to the loopback interface).
const (
	rmdNodeA = "127.0.0.4"
	rmdNodeB = "127.0.0.5"
)

// rmdWait bounds every wait for a server or for replication: a hang, not a race.
const rmdWait = 3 * time.Minute

// rmdCluster is a generated project (db=mariadb, db_replica=streaming) and two mariadbd
// instances of its own, started through the generated ops/db/replica-start.sh with the
// generated settings of compose.prod.yaml's db and db-replica.
type rmdCluster struct {
	t       *testing.T
	proj    string // the generated project
	dir     string // short private directory: data directories and sockets
	port    int
	rootPW  string
	cmdArgs map[string][]string // node -> the service's command after "mariadbd" (the tuning)
	env     map[string][]string // node -> the service's environment for replica-start.sh
	procs   map[string]*exec.Cmd
	exited  map[string]chan struct{}
}

// rmdService names the compose service each node starts as.
var rmdService = map[string]string{rmdNodeA: "db", rmdNodeB: "db-replica"}

// rmdNewCluster generates the project, installs the two data directories and reads the
// servers' settings from the generated compose files.
func rmdNewCluster(t *testing.T, answers map[string]string) *rmdCluster {
	t.Helper()
	for _, tool := range []string{"mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump", "flock", "bash"} {
		e2eutil.RequireTool(t, tool)
	}
	set := map[string]string{"db": "mariadb", "db_replica": "streaming", "frontend": "none", "backend": "go"}
	for k, v := range answers {
		set[k] = v
	}
	c := &rmdCluster{t: t, proj: e2eutil.Generate(t, set), port: rmdFreePort(t),
		cmdArgs: map[string][]string{}, env: map[string][]string{},
		procs: map[string]*exec.Cmd{}, exited: map[string]chan struct{}{}}
	if _, err := os.Stat(filepath.Join(c.proj, "secrets", "db_replication_password")); err != nil {
		// The secret is declared by every replica component with the same name; a component
		// that declares it for its own database only hides it from the others.
		t.Errorf("opsready new did not create secrets/db_replication_password for db=mariadb: %v", err)
		if err := os.WriteFile(filepath.Join(c.proj, "secrets", "db_replication_password"), []byte("rmd-stand-in-replication-pw"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.rootPW = strings.TrimSpace(e2eutil.ReadFile(t, filepath.Join(c.proj, "secrets", "db_root_password")))

	proj, err := e2eutil.LoadCompose(c.proj, e2eutil.ProdEnv(), "", "compose.yaml", "compose.prod.yaml")
	if err != nil {
		t.Fatalf("load compose.yaml + compose.prod.yaml: %v", err)
	}
	db, err := proj.GetService("db")
	if err != nil {
		t.Fatal(err)
	}
	replica, err := proj.GetService("db-replica")
	if err != nil {
		t.Fatal(err)
	}
	if db.Image != replica.Image {
		t.Errorf("db-replica's image %s is not db's %s", replica.Image, db.Image)
	}
	for node, s := range map[string]string{rmdNodeA: "db", rmdNodeB: "db-replica"} {
		svc, _ := proj.GetService(s)
		if got := strings.Join(svc.Entrypoint, " "); got != "/ops/db/replica-start.sh" {
			t.Fatalf("%s: entrypoint %q, want /ops/db/replica-start.sh", s, got)
		}
		if len(svc.Command) == 0 || svc.Command[0] != "mariadbd" {
			t.Fatalf("%s: command %q does not start with mariadbd", s, svc.Command)
		}
		c.cmdArgs[node] = svc.Command[1:]
		for _, k := range []string{"DB_REPLICATION_OPTIONS", "DB_START_ROLE"} {
			if v, ok := svc.Environment[k]; ok && v != nil {
				c.env[node] = append(c.env[node], k+"="+*v)
			}
		}
		if !strings.Contains(e2eutil.HealthTest(svc), "/ops/db/replica-health.sh") {
			t.Errorf("%s: healthcheck %q does not run ops/db/replica-health.sh", s, e2eutil.HealthTest(svc))
		}
	}
	if !e2eutil.HasVolumeMount(replica, "db-replica-data") {
		t.Errorf("db-replica does not mount its own volume db-replica-data")
	}
	if names := e2eutil.SecretNames(replica); !strings.Contains(strings.Join(names, ","), "db_replication_password") {
		t.Errorf("db-replica's secrets %v lack db_replication_password", names)
	}

	c.dir = rmdShortDir(t)
	for _, node := range []string{rmdNodeA, rmdNodeB} {
		// The server writes its socket and pid file here, as mysql when the test runs as root.
		if err := os.MkdirAll(filepath.Join(c.dir, node), 0o755); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			if out, err := exec.Command("chown", "mysql:", filepath.Join(c.dir, node)).CombinedOutput(); err != nil {
				t.Fatalf("chown mysql %s: %v\n%s", node, err, out)
			}
		}
		data := c.dataDir(node)
		args := []string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db"}
		if os.Geteuid() == 0 {
			args = append(args, "--user=mysql")
		}
		if out, err := exec.Command("mariadb-install-db", args...).CombinedOutput(); err != nil {
			t.Fatalf("mariadb-install-db %s: %v\n%s", data, err, out)
		}
	}
	t.Cleanup(c.stopAll)
	return c
}

// rmdFreePort is a port free on both nodes' addresses.
func rmdFreePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		p := e2eutil.FreePort(t)
		ok := true
		for _, a := range []string{rmdNodeA, rmdNodeB} {
			l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(p)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no port free on both node addresses")
	return 0
}

// rmdShortDir is a private directory with a short path (Unix sockets), removed at the end,
// that the mysql user can enter.
func rmdShortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "rmd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func (c *rmdCluster) dataDir(node string) string { return filepath.Join(c.dir, node, "data") }
func (c *rmdCluster) socket(node string) string  { return filepath.Join(c.dir, node, "s") }

// start starts node's mariadbd through the generated ops/db/replica-start.sh (which adds
// DB_REPLICATION_OPTIONS and --read-only=1 for a replica) and waits until it answers.
func (c *rmdCluster) start(node string) {
	t := c.t
	t.Helper()
	shim := filepath.Join(c.dir, node, "entrypoint.sh")
	user := ""
	if os.Geteuid() == 0 {
		user = "--user=mysql"
	}
	script := fmt.Sprintf("#!/bin/sh\n# stands in for the image's docker-entrypoint.sh\n[ \"$1\" = mariadbd ] && shift\nexec mariadbd --no-defaults --datadir=%s --socket=%s --port=%d --bind-address=%s --pid-file=%s %s \"$@\"\n",
		c.dataDir(node), c.socket(node), c.port, node, filepath.Join(c.dir, node, "pid"), user)
	if err := os.WriteFile(shim, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, node, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(c.proj, "ops", "db", "replica-start.sh"), append([]string{"mariadbd"}, c.cmdArgs[node]...)...)
	cmd.Env = append(append(os.Environ(), c.env[node]...), "DB_DATADIR="+c.dataDir(node), "DB_ENTRYPOINT="+shim)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", node, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.procs[node], c.exited[node] = cmd, done
	deadline := time.Now().Add(rmdWait)
	for {
		// ping answers before root has a password (the bootstrap sets it) and after.
		if exec.Command("mariadb-admin", "--no-defaults", "-S", c.socket(node), "--connect-timeout=5", "ping").Run() == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("mariadbd %s exited while starting:\n%s", node, c.serverLog(node))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mariadbd %s does not answer after %s:\n%s", node, rmdWait, c.serverLog(node))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// bootstrap does what the image's entrypoint does on an empty data directory, unlogged:
// root's password from the secret (and root@'%'), no anonymous accounts, and on the primary
// the database and account of the application.
func (c *rmdCluster) bootstrap(node string, primary bool) {
	appPW := strings.TrimSpace(e2eutil.ReadFile(c.t, filepath.Join(c.proj, "secrets", "db_password")))
	q := fmt.Sprintf(`SET SESSION sql_log_bin = 0;
DELETE FROM mysql.global_priv WHERE User = '';
FLUSH PRIVILEGES;
ALTER USER root@localhost IDENTIFIED BY '%[1]s';
CREATE USER root@'%%' IDENTIFIED BY '%[1]s';
GRANT ALL ON *.* TO root@'%%' WITH GRANT OPTION;`, c.rootPW)
	if primary {
		q += fmt.Sprintf(`
CREATE DATABASE app;
CREATE USER app@'%%' IDENTIFIED BY '%s';
GRANT ALL ON app.* TO app@'%%';`, appPW)
	}
	cmd := exec.Command("mariadb", "--no-defaults", "-uroot", "-S", c.socket(node), "-e", q)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("bootstrap %s: %v\n%s", node, err, out)
	}
}

// kill sends SIGKILL to node's mariadbd and waits for it to be gone.
func (c *rmdCluster) kill(node string) {
	if err := c.procs[node].Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", node, err)
	}
	<-c.exited[node]
}

// stop shuts node down cleanly (SIGTERM), or kills it after the wait.
func (c *rmdCluster) stop(node string) {
	p := c.procs[node]
	if p == nil {
		return
	}
	select {
	case <-c.exited[node]:
		return
	default:
	}
	_ = p.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited[node]:
	case <-time.After(rmdWait):
		_ = p.Process.Kill()
		<-c.exited[node]
	}
}

func (c *rmdCluster) stopAll() {
	for node := range c.procs {
		c.stop(node)
	}
	if c.t.Failed() {
		for _, node := range []string{rmdNodeA, rmdNodeB} {
			c.t.Logf("%s server log (tail):\n%s", node, c.serverLog(node))
		}
	}
}

func (c *rmdCluster) serverLog(node string) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, node, "server.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// sqlErr runs q as root over TCP on node and returns the rows, tab-separated.
func (c *rmdCluster) sqlErr(node, q string) (string, error) {
	return c.client(node, "-N", "-B", "-e", q)
}

// client runs the mariadb client as root over TCP on node with args.
func (c *rmdCluster) client(node string, args ...string) (string, error) {
	cmd := exec.Command("mariadb", append([]string{"--no-defaults", "-uroot", "--protocol=TCP", "-h", node, "-P", strconv.Itoa(c.port),
		"--connect-timeout=5"}, args...)...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+c.rootPW)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

func (c *rmdCluster) sql(node, q string) string {
	c.t.Helper()
	out, err := c.sqlErr(node, q)
	if err != nil {
		c.t.Fatalf("%s: %s: %v", node, q, err)
	}
	return out
}

// slaveField is one field of SHOW SLAVE STATUS on node ("" when it is no replica).
func (c *rmdCluster) slaveField(node, name string) string {
	c.t.Helper()
	out, err := c.client(node, "-E", "-e", "SHOW SLAVE STATUS")
	if err != nil {
		c.t.Fatalf("%s: SHOW SLAVE STATUS: %v", node, err)
	}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			return v
		}
	}
	return ""
}

// waitReplicating waits until node's IO and SQL threads both run.
func (c *rmdCluster) waitReplicating(node string) {
	c.t.Helper()
	deadline := time.Now().Add(rmdWait)
	for {
		io, sqlT := c.slaveField(node, "Slave_IO_Running"), c.slaveField(node, "Slave_SQL_Running")
		if io == "Yes" && sqlT == "Yes" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s does not replicate after %s: IO %q (%s), SQL %q (%s)", node, rmdWait, io,
				c.slaveField(node, "Last_IO_Error"), sqlT, c.slaveField(node, "Last_SQL_Error"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitSQL polls q on node until it returns want.
func (c *rmdCluster) waitSQL(node, q, want string) {
	c.t.Helper()
	deadline := time.Now().Add(rmdWait)
	for {
		got, err := c.sqlErr(node, q)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %s = %q (%v) after %s, want %q", node, q, got, err, rmdWait, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// seed runs the generated ops/db/replica-seed.sh on node (the replica) against the primary,
// as db-replica's first start does, then restarts it so that replica-start.sh sees a replica.
func (c *rmdCluster) seed(replica, primary string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rmdWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.proj, "ops", "db", "replica-seed.sh"))
	cmd.WaitDelay = 10 * time.Second // its clients may hold the output open
	cmd.Env = append(os.Environ(),
		"DB_SEED_HOST="+primary, "DB_SEED_PORT="+strconv.Itoa(c.port),
		"DB_LOCAL_SOCKET="+c.socket(replica),
		"DB_ADMIN_PASSWORD_FILE="+filepath.Join(c.proj, "secrets", "db_root_password"),
		"DB_REPLICATION_PASSWORD_FILE="+filepath.Join(c.proj, "secrets", "db_replication_password"))
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("replica-seed.sh: %v\n%s", err, out)
	}
	c.stop(replica)
	c.start(replica)
	if ro := c.sql(replica, "SELECT @@read_only"); ro != "1" {
		c.t.Errorf("the replica started through replica-start.sh has read_only=%s, want 1", ro)
	}
	c.waitReplicating(replica)
}

// scriptEnv is the environment of failover.sh and rejoin.sh on this plain host: direct
// connections, the old primary oldP and the new primary newP.
func (c *rmdCluster) scriptEnv(oldP, newP string, extra ...string) []string {
	return append(append(os.Environ(),
		"DB_VIA=direct",
		"DB_OLD_PRIMARY_HOST="+oldP, "DB_OLD_PRIMARY_PORT="+strconv.Itoa(c.port),
		"DB_NEW_PRIMARY_HOST="+newP, "DB_NEW_PRIMARY_PORT="+strconv.Itoa(c.port),
		"DB_WAIT_TIMEOUT=120",
	), extra...)
}

// script runs ops/db/NAME with env and args; it returns the output and exit code.
func (c *rmdCluster) script(name string, env []string, args ...string) (string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rmdWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.proj, "ops", "db", name), args...)
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	return string(out), 0
}

// envFile returns .env's bytes and mode.
func (c *rmdCluster) envFile() ([]byte, os.FileMode) {
	c.t.Helper()
	p := filepath.Join(c.proj, ".env")
	b, err := os.ReadFile(p)
	if err != nil {
		c.t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		c.t.Fatal(err)
	}
	return b, st.Mode().Perm()
}

// statusFile returns var/db-failover.status as a map.
func (c *rmdCluster) statusFile() map[string]string {
	c.t.Helper()
	m := map[string]string{}
	b, err := os.ReadFile(filepath.Join(c.proj, "var", "db-failover.status"))
	if err != nil {
		c.t.Errorf("status file: %v", err)
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// health runs the generated healthcheck against node; it returns its output and exit code.
func (c *rmdCluster) health(node string) (string, int) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.proj, "ops", "db", "replica-health.sh"))
	cmd.Env = append(os.Environ(), "DB_LOCAL_HOST="+node, "DB_LOCAL_PORT="+strconv.Itoa(c.port),
		"DB_ADMIN_PASSWORD_FILE="+filepath.Join(c.proj, "secrets", "db_root_password"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return string(out), 0
}

// primaryFromCompose is the backend's DB_HOST as docker compose computes it from the
// generated compose.yaml and .env: where the application writes.
func (c *rmdCluster) primaryFromCompose() string {
	c.t.Helper()
	proj, err := e2eutil.LoadCompose(c.proj, e2eutil.ProdEnv(), filepath.Join(c.proj, ".env"), "compose.yaml", "compose.prod.yaml")
	if err != nil {
		c.t.Fatalf("load compose with .env: %v", err)
	}
	be, err := proj.GetService("backend")
	if err != nil {
		c.t.Fatal(err)
	}
	return e2eutil.Deref(be.Environment["DB_HOST"])
}

// waitSemiSync waits until the primary node commits semi-synchronously again. A primary
// that timed out waiting (the seed's account change with no replica yet, say) switches back
// only when an acknowledged transaction reaches its binlog's end: so it writes until then.
func (c *rmdCluster) waitSemiSync(node string) {
	c.t.Helper()
	c.sql(node, "CREATE TABLE IF NOT EXISTS app.rmd_semi (id INT AUTO_INCREMENT PRIMARY KEY)")
	deadline := time.Now().Add(rmdWait)
	for {
		c.sql(node, "INSERT INTO app.rmd_semi () VALUES ()")
		if c.sql(node, "SELECT variable_value FROM information_schema.global_status WHERE variable_name = 'Rpl_semi_sync_master_status'") == "ON" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s does not commit semi-synchronously after %s", node, rmdWait)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
