package backup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

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
	port := e2eutil.FreePort(t)
	args := []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no"}
	if password != "" {
		args = append(args, "--requirepass", password)
	}
	args = append(args, extra...)
	proc := e2eutil.StartProc(t, exec.Command("redis-server", args...), port)
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
			t.Fatalf("redis-server on port %d did not come up: %v\n%s", port, err, proc.Out)
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
