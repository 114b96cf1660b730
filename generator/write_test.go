package generator

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteCreatesTree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "proj")
	files := Files{{Path: "a/b.txt", Data: []byte("b"), Mode: 0o644}, {Path: "run.sh", Data: []byte("#!/bin/sh\n"), Mode: 0o755}, {Path: "secrets/x", Data: []byte("s"), Mode: 0o600}}
	if err := Write(dir, files, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.Mode {
			t.Errorf("%s: mode %v, want %v", f.Path, fi.Mode().Perm(), f.Mode)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "a" && e.Name() != "run.sh" && e.Name() != "secrets" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// A failure half-way must leave an existing folder exactly as it was.
func TestWriteFailureRestoresEverything(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("old"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "gone.txt"), []byte("old gone"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "blocker"), []byte("a file where a folder is needed"), 0o644))
	files := Files{
		{Path: "keep.txt", Data: []byte("new"), Mode: 0o644},
		{Path: "fresh/new.txt", Data: []byte("n"), Mode: 0o644},
		{Path: "blocker/inside.txt", Data: []byte("x"), Mode: 0o644}, // fails: blocker is a file
	}
	if err := Write(dir, files, []string{"gone.txt"}); err == nil {
		t.Fatal("expected an error")
	}
	for name, want := range map[string]string{"keep.txt": "old", "gone.txt": "old gone", "blocker": "a file where a folder is needed"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want only the three original files", names)
	}
}

func TestWriteFailureRemovesCreatedFolder(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "a", "b")
	err := Write(dir, Files{{Path: "x", Data: nil, Mode: 0o644}, {Path: "../escape", Data: nil, Mode: 0o644}}, nil)
	if err == nil {
		t.Fatal("expected an error for a path outside the project")
	}
	if _, err := os.Stat(filepath.Join(parent, "a")); !os.IsNotExist(err) {
		t.Errorf("created folders were not removed: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
