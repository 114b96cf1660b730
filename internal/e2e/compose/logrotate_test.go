package compose

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestLogrotate checks the generated ops/logrotate/app.conf with the real logrotate: it parses
// cleanly under `logrotate -d`, and forced rotations of fixture logs below deploy_dir rotate,
// truncate and compress the files it is meant to, and only those.
//
// As root, logrotate ignores config files and skips log directories that are group- or
// world-writable, so the fixtures get explicit modes (0644 files, 0755 directories). The
// `su root root` directive needs root; an unprivileged run checks a copy without it.
func TestLogrotate(t *testing.T) {
	logrotate := e2eutil.RequireTool(t, "logrotate")

	base := t.TempDir()
	deploy := filepath.Join(base, "srv", "shop")
	dir := e2eutil.Generate(t, map[string]string{"name": "shop", "deploy_dir": deploy})

	conf := filepath.Join(dir, "ops", "logrotate", "app.conf")
	text, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(text), "\n") {
		if before, _, ok := strings.Cut(line, "#"); ok && strings.TrimSpace(before) != "" {
			t.Errorf("app.conf:%d: comment after a value (logrotate skips the block): %q", i+1, line)
		}
	}
	for _, want := range []string{deploy + "/var/log/traefik/access.log", deploy + "/var/log/ops/*.log"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("app.conf does not rotate %s", want)
		}
	}
	if os.Geteuid() != 0 {
		text = regexp.MustCompile(`(?m)^\s*su .*\n`).ReplaceAll(text, nil)
		conf = filepath.Join(base, "app.conf")
	}
	if err := os.WriteFile(conf, text, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(conf, 0o644); err != nil {
		t.Fatal(err)
	}

	logs := map[string]string{
		"var/log/traefik/access.log": `{"RequestPath":"/api/items","DownstreamStatus":200}` + "\n",
		"var/log/ops/backup.log":     "backup ok\n",
		"var/log/ops/restore.log":    "restore test ok\n",
	}
	untouched := "var/log/ops/notes.txt"
	for _, d := range []string{"srv", "srv/shop", "srv/shop/var", "srv/shop/var/log", "srv/shop/var/log/traefik", "srv/shop/var/log/ops"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(deploy, rel)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for rel, content := range logs {
		write(rel, content)
	}
	write(untouched, "not a log\n")

	state := filepath.Join(base, "logrotate.status")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(logrotate, append(args, "-s", state, conf)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("logrotate %v: %v\n%s", args, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(strings.ToLower(line), "error") {
				t.Errorf("logrotate %v: %s", args, line)
			}
		}
		return string(out)
	}

	out := run("-d")
	for _, want := range []string{"Handling 2 logs", `rotating pattern: "` + deploy + `/var/log/traefik/access.log"`, `rotating pattern: "` + deploy + `/var/log/ops/*.log"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logrotate -d output lacks %q:\n%s", want, out)
		}
	}

	// First forced rotation: copy to .1 (not yet compressed: delaycompress), truncate in place.
	run("-f")
	for rel, content := range logs {
		p := filepath.Join(deploy, rel)
		if got := e2eutil.ReadFile(t, p+".1"); got != content {
			t.Errorf("%s.1 = %q, want the old content %q", rel, got, content)
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() != 0 {
			t.Errorf("%s after rotation: %v, size %d, want it kept and truncated (copytruncate)", rel, err, sizeOf(fi))
		}
	}
	if _, err := os.Stat(filepath.Join(deploy, untouched+".1")); err == nil {
		t.Errorf("%s was rotated; only *.log files should be", untouched)
	}

	// Second rotation: the previous .1 is compressed to .2.gz.
	for rel := range logs {
		write(rel, "second day\n")
	}
	run("-f")
	for rel, content := range logs {
		p := filepath.Join(deploy, rel)
		if got := e2eutil.ReadFile(t, p+".1"); got != "second day\n" {
			t.Errorf("%s.1 after the second rotation = %q", rel, got)
		}
		if got := gunzip(t, p+".2.gz"); got != content {
			t.Errorf("%s.2.gz = %q, want the first day's %q", rel, got, content)
		}
	}
}

func gunzip(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Error(err)
		return ""
	}
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return ""
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Errorf("%s: %v", p, err)
	}
	return string(out)
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return -1
	}
	return fi.Size()
}
