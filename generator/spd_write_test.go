//go:build unix

package generator

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func spdFiles() Files {
	fs := Files{
		{Path: "a.txt", Data: []byte("a\n"), Mode: 0o644},
		{Path: "deep/er/run.sh", Data: []byte("#!/bin/sh\n"), Mode: 0o755},
		{Path: "secrets", Mode: fs.ModeDir | 0o700},
		{Path: "secrets/s", Data: []byte("s"), Mode: 0o600},
	}
	for i := range 20 {
		fs = append(fs, File{Path: fmt.Sprintf("d%d/f", i), Data: []byte(fmt.Sprint(i)), Mode: 0o644})
	}
	return fs
}

// spdTree lists every path below dir with its mode and content.
func spdTreeOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data := []byte{}
		if fi.Mode().IsRegular() {
			data, _ = os.ReadFile(p)
		}
		fmt.Fprintf(&b, "%s %v %q\n", rel, fi.Mode(), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A fresh write (files one after another, no fsync per file, the short moves) leaves the
// same tree, modes included, as the fsynced one; the modes are exact whatever the umask.
func TestSpdFreshWriteMatches(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	var trees [2]string
	for i, fresh := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "p")
		tx, err := ApplyChange(dir, Change{Files: spdFiles(), Fresh: fresh})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Done(); err != nil {
			t.Fatal(err)
		}
		trees[i] = spdTreeOf(t, dir)
	}
	if trees[0] != trees[1] {
		t.Errorf("fresh write differs:\n%s\nfsynced:\n%s", trees[1], trees[0])
	}
	for _, want := range []string{`a.txt -rw-r--r--`, `deep/er/run.sh -rwxr-xr-x`, `secrets drwx------`, `d0 drwxr-xr-x`} {
		if !strings.Contains(trees[1], want) {
			t.Errorf("missing %q in\n%s", want, trees[1])
		}
	}
}

// A file that appears where a new one goes after the journal is committed stops the write
// as before (the rename refuses to replace it) and the write is undone.
func TestSpdFreshWriteRefusesAppearedFile(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		t.Run(fmt.Sprint("fresh=", fresh), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "p")
			files := spdFiles()
			pause := filepath.Join(t.TempDir(), "points")
			points.Lock()
			// staging folder created, marker written, one point per staged file, journal
			// written, journal committed: pause at the last.
			at := points.n + 2 + (len(files) - 1) + 1
			points.Unlock()
			t.Setenv(envPauseFile, pause)
			t.Setenv(envPauseAt, fmt.Sprint(at))
			go func() {
				for !exists(pause + ".paused") {
					time.Sleep(2 * time.Millisecond)
				}
				_ = os.WriteFile(filepath.Join(dir, "a.txt"), []byte("theirs"), 0o644)
				_ = os.WriteFile(pause+".go", nil, 0o644)
			}()
			_, err := ApplyChange(dir, Change{Files: files, Fresh: fresh})
			if err == nil || !strings.Contains(err.Error(), "replace a.txt: it appeared during the write") {
				t.Fatalf("err = %v", err)
			}
			log, _ := os.ReadFile(pause)
			if !strings.Contains(string(log), fmt.Sprintf("%d journal committed", at)) {
				t.Fatalf("paused elsewhere:\n%s", log)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(got) != "theirs" {
				t.Errorf("a.txt = %q", got)
			}
			if exists(filepath.Join(dir, "d0")) {
				t.Errorf("the write was not undone:\n%s", spdTreeOf(t, dir))
			}
		})
	}
}
