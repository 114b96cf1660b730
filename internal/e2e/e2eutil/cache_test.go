package e2eutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheKey(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	key := func(extra ...string) string {
		t.Helper()
		k, err := CacheKey("kind", dir, []string{"node_modules"}, extra...)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write("a.go", "package a", 0o644)
	write("sub/b.go", "package b", 0o644)
	base := key()
	if key() != base {
		t.Fatal("the key of an unchanged tree changed")
	}
	write("node_modules/x/index.js", "skipped", 0o644)
	if key() != base {
		t.Error("a file under a skipped folder changed the key")
	}
	for _, c := range []struct {
		name   string
		change func()
	}{
		{"content", func() { write("sub/b.go", "package c", 0o644) }},
		{"mode", func() { write("sub/b.go", "package b", 0o755) }},
		{"new file", func() { write("c.go", "", 0o644) }},
	} {
		c.change()
		if k := key(); k == base {
			t.Errorf("%s: the key did not change", c.name)
		} else {
			base = k
		}
	}
	if key("go1.0") == base {
		t.Error("an extra input did not change the key")
	}
	if _, err := CacheKey("kind", filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("CacheKey of a missing folder: no error")
	}
}

func TestCacheBuildsOnceInProcess(t *testing.T) {
	root := t.TempDir()
	var builds atomic.Int32
	var wg sync.WaitGroup
	dirs := make([]string, 8)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir, _, err := cached(root, "k", func(out string) error {
				builds.Add(1)
				time.Sleep(50 * time.Millisecond) // keep the others waiting on the lock
				return os.WriteFile(filepath.Join(out, "bin"), []byte("built"), 0o644)
			})
			if err != nil {
				t.Error(err)
			}
			dirs[i] = dir
		}()
	}
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Errorf("built %d times, want 1", n)
	}
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, "bin")); err != nil || string(b) != "built" {
			t.Errorf("entry %s: %q, %v", d, b, err)
		}
	}
}

func TestCacheFailedBuildLeavesNothing(t *testing.T) {
	root := t.TempDir()
	// What a build killed half-way leaves: never used, removed by the next build of the key.
	if err := os.MkdirAll(filepath.Join(root, "k.tmp-1-killed"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, err := cached(root, "k", func(out string) error {
		if err := os.WriteFile(filepath.Join(out, "half"), []byte("half"), 0o644); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(root, "k")); err == nil {
			t.Error("the entry is visible while it is being built")
		}
		return errors.New("compile error")
	})
	if err == nil || !strings.Contains(err.Error(), "compile error") {
		t.Fatalf("failed build: err = %v, want the build's error", err)
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if e.Name() != "k.lock" {
			t.Errorf("a failed build left %s", e.Name())
		}
	}
	dir, built, err := cached(root, "k", func(out string) error { return os.WriteFile(filepath.Join(out, "bin"), nil, 0o644) })
	if err != nil || !built {
		t.Fatalf("build after a failed one: built=%v err=%v", built, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "half")); err == nil {
		t.Error("the entry holds the failed build's file")
	}
}

// TestCacheBuildsOnceAcrossProcesses starts several test processes that ask for one entry at
// once, as parallel `go test` packages do: one builds it, the others wait and reuse it.
func TestCacheBuildsOnceAcrossProcesses(t *testing.T) {
	if root := os.Getenv("E2EUTIL_CACHE_HELPER"); root != "" {
		_, built, err := cached(root, "k", func(out string) error {
			time.Sleep(300 * time.Millisecond)
			return os.WriteFile(filepath.Join(out, "bin"), []byte("built"), 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("built=%v\n", built)
		return
	}
	root := t.TempDir()
	const n = 4
	outs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestCacheBuildsOnceAcrossProcesses$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "E2EUTIL_CACHE_HELPER="+root)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("helper process: %v\n%s", err, out)
			}
			outs[i] = string(out)
		}()
	}
	wg.Wait()
	built := 0
	for _, o := range outs {
		built += strings.Count(o, "built=true")
		if !strings.Contains(o, "built=") {
			t.Errorf("helper reported nothing:\n%s", o)
		}
	}
	if built != 1 {
		t.Errorf("%d processes built the entry, want 1:\n%s", built, strings.Join(outs, "\n"))
	}
}

func TestCacheLinkTree(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "a", ".bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a", "x.js"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../x.js", filepath.Join(src, "a", ".bin", "x")); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if err := LinkTree(src, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "a", ".bin", "x")); err != nil || string(b) != "x" {
		t.Errorf("through the linked symlink: %q, %v", b, err)
	}
	fi, err := os.Stat(filepath.Join(dst, "a", "x.js"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("linked file: %v, %v", fi, err)
	}
}
