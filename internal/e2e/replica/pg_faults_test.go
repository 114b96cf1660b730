package replica

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRpgFailoverRefused checks that the generated failover.sh refuses, with a clear message
// and .env untouched, when there is no replica to promote (down, or not in recovery), and
// that of two failovers at once the second is refused while the first runs.
func TestRpgFailoverRefused(t *testing.T) {
	answers := map[string]string{"db": "postgres", "db_replica": "streaming"}
	t.Run("replica down", func(t *testing.T) {
		t.Parallel()
		c := rpgNewCluster(t, answers)
		before := rpgSnapshotEnv(t, c)
		out, code := c.script("failover.sh")
		rpgRefused(t, c, before, out, code, "refusing: the replica "+rpgNodeB+" does not answer")
	})
	t.Run("not a replica", func(t *testing.T) {
		t.Parallel()
		c := rpgNewCluster(t, answers)
		c.initPrimary(rpgNodeB) // a second primary, not a standby
		before := rpgSnapshotEnv(t, c)
		out, code := c.script("failover.sh")
		rpgRefused(t, c, before, out, code, "refusing: "+rpgNodeB+" is not a replica")
	})
	t.Run("two at once", func(t *testing.T) {
		t.Parallel()
		c := rpgNewCluster(t, answers)
		// A "replica" that accepts connections and answers nothing keeps the first failover
		// busy (holding the lock) until the test closes the connection.
		l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", rpgNodeB, c.port))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan net.Conn, 16)
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				accepted <- conn
			}
		}()
		before := rpgSnapshotEnv(t, c)
		first := c.as(exec.Command("bash", filepath.Join(c.proj, "ops", "db", "failover.sh")))
		first.Env = append(append([]string{}, c.env...), "PGCONNECT_TIMEOUT=600")
		var firstOut bytes.Buffer
		first.Stdout, first.Stderr = &firstOut, &firstOut
		if err := first.Start(); err != nil {
			t.Fatal(err)
		}
		var held net.Conn
		select {
		case held = <-accepted:
		case <-time.After(3 * time.Minute):
			_ = first.Process.Signal(syscall.SIGKILL)
			t.Fatalf("the first failover.sh never connected to the replica:\n%s", firstOut.String())
		}
		out, code := c.script("failover.sh")
		rpgRefused(t, c, before, out, code, "another failover.sh or rejoin.sh is running")
		held.Close()
		l.Close() // the first failover's retries find nothing listening
		err = first.Wait()
		if err == nil || !strings.Contains(firstOut.String(), "refusing: the replica "+rpgNodeB+" does not answer") {
			t.Errorf("first failover.sh against a replica that never answers = %v, want a refusal:\n%s", err, firstOut.String())
		}
		rpgRefused(t, c, before, "", 1, "")
	})
}

type rpgEnvState struct {
	content []byte
	mode    os.FileMode
}

func rpgSnapshotEnv(t *testing.T, c *rpgCluster) rpgEnvState {
	t.Helper()
	p := filepath.Join(c.proj, ".env")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return rpgEnvState{b, fi.Mode()}
}

// rpgRefused checks a refused failover: non-zero exit, want in its output, .env as before,
// no failover recorded.
func rpgRefused(t *testing.T, c *rpgCluster, before rpgEnvState, out string, code int, want string) {
	t.Helper()
	if code == 0 || !strings.Contains(out, want) {
		t.Errorf("failover.sh = exit %d, want non-zero and %q:\n%s", code, want, out)
	}
	if now := rpgSnapshotEnv(t, c); !bytes.Equal(now.content, before.content) || now.mode != before.mode {
		t.Errorf(".env changed by a refused failover (mode %v -> %v):\n%s", before.mode, now.mode, now.content)
	}
	if _, err := os.Stat(filepath.Join(c.proj, "var", "lib", "node-exporter", "textfile", "db_failover.prom")); err == nil {
		t.Errorf("a refused failover recorded a failover")
	}
}
