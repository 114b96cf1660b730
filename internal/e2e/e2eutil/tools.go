package e2eutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// NpmCache is the npm cache shared by all runs (OPSREADY_NPM_CACHE, or one under the user
// cache directory), so repeated runs skip downloads.
func NpmCache() string {
	if c := os.Getenv("OPSREADY_NPM_CACHE"); c != "" {
		return c
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "opsready-e2e", "npm")
}

// RunNpm runs npm in dir with the shared cache (NpmCache) and fails the test with its
// output when it fails.
func RunNpm(t testing.TB, dir string, args ...string) {
	t.Helper()
	name := "npm " + strings.Join(args, " ")
	cmd := exec.Command("npm", append(args, "--cache", NpmCache(), "--prefer-offline", "--no-audit", "--no-fund")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CI=true", "NO_COLOR=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	t.Logf("%s: %s", name, time.Since(start).Round(time.Millisecond))
}

// RunGo runs the go command in dir and fails the test with its output when it fails.
func RunGo(t testing.TB, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("go %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}
