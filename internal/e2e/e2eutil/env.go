package e2eutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/project"
)

// Generate renders the newest webapp version into a fresh temporary directory with the
// given answers over the blueprint defaults, and returns the directory.
func Generate(t testing.TB, set map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj")
	if _, err := project.Create(project.CreateOptions{
		Dir:       dir,
		Blueprint: "webapp",
		Set:       set,
		Defaults:  true,
		Version:   "test",
	}); err != nil {
		t.Fatalf("generate %v: %v", set, err)
	}
	return dir
}

// InCI reports whether missing tools and servers must fail rather than skip.
func InCI() bool { return os.Getenv("CI") != "" }

// Unavailable fails the test under CI and skips it otherwise: for a missing tool, server or
// module, so that CI never passes without running a test.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// RequireTool returns the path of an external program; under CI a missing one fails the test.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, fmt.Sprintf("%s is not installed (run `make tools`)", name))
	}
	return p
}

// RequireServer checks that a local server answers on 127.0.0.1:port; under CI a missing one fails.
func RequireServer(t testing.TB, name string, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		Unavailable(t, fmt.Sprintf("%s is not running on 127.0.0.1:%d (run `make tools`): %v", name, port, err))
	}
	c.Close()
}

// FreePort asks the kernel for a free TCP port on the loopback interface.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var (
	rootOnce sync.Once
	root     string
	rootErr  error
)

// RepoPath returns the path of rel (slash-separated) in the repository, found from the
// working directory (a test's package folder) by the go.mod above it, so that a test does
// not depend on how deep its package sits.
func RepoPath(t testing.TB, rel string) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				root = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = fmt.Errorf("no go.mod above the working directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatalf("find the repository: %v", rootErr)
	}
	return filepath.Join(root, filepath.FromSlash(rel))
}

// ReadFile returns the content of p; when it cannot be read, the test fails (and goes on)
// and ReadFile returns "".
func ReadFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Error(err)
	}
	return string(b)
}

// ReadDirNames returns the names of the entries of dir, sorted.
func ReadDirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
