package e2eutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Builds of the generated stubs through the build cache (cache.go). What is cached is only
// an output that the key fully determines: a Go binary (the module's sources with go.mod and
// go.sum, the toolchain and its settings) and an installed node_modules (package.json,
// package-lock.json, node and npm). The checks themselves (vet, unit tests, `npm test`,
// builds the tests inspect) still run on every run.

var (
	goEnvOnce sync.Once
	goEnv     string
	goEnvErr  error
)

// goToolchain is what, besides the sources, decides the output of `go build`.
func goToolchain(t testing.TB) string {
	t.Helper()
	goEnvOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOVERSION", "GOOS", "GOARCH", "GOAMD64", "CGO_ENABLED",
			"GOFLAGS", "GOEXPERIMENT", "CC").Output()
		goEnv, goEnvErr = string(out), err
	})
	if goEnvErr != nil {
		t.Fatalf("go env: %v", goEnvErr)
	}
	return goEnv + "GOWORK=off"
}

// GoBinary builds the main package of the Go module in dir (`go build -o name .`) once per
// distinct module and toolchain, and hard-links the binary to dir/name, whose path it
// returns.
func GoBinary(t testing.TB, dir, name string) string {
	t.Helper()
	RequireTool(t, "go")
	key, err := CacheKey("go-build/1 "+name, dir, nil, goToolchain(t))
	if err != nil {
		t.Fatal(err)
	}
	entry := Cached(t, key, func(out string) error {
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", filepath.Join(out, name), ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build in %s: %w\n%s", dir, err, b)
		}
		t.Logf("go build -o %s .: %s", name, time.Since(start).Round(time.Millisecond))
		return nil
	})
	bin := filepath.Join(dir, name)
	if err := LinkTree(filepath.Join(entry, name), bin); err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return bin
}

// NodeModules installs the dependencies of the npm project in dir as `npm ci` does (which
// also fails when package-lock.json does not match package.json) once per distinct
// package.json, package-lock.json and node and npm versions, and hard-links the installed
// node_modules into dir. The tests must not modify files inside it (new files are fine).
func NodeModules(t testing.TB, dir string) {
	t.Helper()
	RequireTool(t, "node")
	RequireTool(t, "npm")
	manifest := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json"} {
		if err := copyFile(filepath.Join(dir, f), filepath.Join(manifest, f), 0o644); err != nil {
			t.Fatalf("npm ci: %v", err)
		}
	}
	key, err := CacheKey("npm-ci/1", manifest, nil, ToolVersion(t, "node", "--version"), ToolVersion(t, "npm", "--version"))
	if err != nil {
		t.Fatal(err)
	}
	entry := Cached(t, key, func(out string) error {
		for _, f := range []string{"package.json", "package-lock.json"} {
			if err := copyFile(filepath.Join(manifest, f), filepath.Join(out, f), 0o644); err != nil {
				return err
			}
		}
		start := time.Now()
		cmd := exec.Command("npm", "ci", "--cache", NpmCache(), "--prefer-offline", "--no-audit", "--no-fund")
		cmd.Dir = out
		cmd.Env = append(os.Environ(), "CI=true", "NO_COLOR=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("npm ci: %w\n%s", err, b)
		}
		t.Logf("npm ci: %s", time.Since(start).Round(time.Millisecond))
		return nil
	})
	if err := LinkTree(filepath.Join(entry, "node_modules"), filepath.Join(dir, "node_modules")); err != nil {
		t.Fatalf("link node_modules: %v", err)
	}
}
