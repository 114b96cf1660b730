package project

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	l, err := lockProject(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockProject(dir)
	var busy *BusyError
	if !errors.As(err, &busy) || !errors.Is(err, ErrBusy) || busy.Pid != os.Getpid() || busy.Since.IsZero() {
		t.Fatalf("second lock: %v", err)
	}
	if want := fmt.Sprintf("another opsready is writing to %s (pid %d since ", dir, os.Getpid()); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want it to start with %q", err, want)
	}
	if _, err := Recover(dir); !errors.Is(err, ErrBusy) {
		t.Errorf("recovery while locked: %v, want busy", err)
	}
	must(t, l.unlock())
	if _, err := os.Stat(filepath.Join(dir, WriteLockName)); !os.IsNotExist(err) {
		t.Errorf("the lock file stays after unlock: %v", err)
	}
	l2, err := lockProject(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	must(t, l2.unlock())
}

// A lock file left by a killed process (its flock died with it) does not block.
func TestWriteLockLeftoverDoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, WriteLockName), []byte("pid 999999\nsince 2026-01-01T00:00:00Z\n"), 0o644))
	l, err := lockProject(dir)
	if err != nil {
		t.Fatalf("a leftover lock file blocks: %v", err)
	}
	must(t, l.unlock())
}
