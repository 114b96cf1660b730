package project

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/internal/lock"
)

// Status compares a project's files with its lock file.
type Status struct {
	Dir       string         `json:"dir"`
	Blueprint string         `json:"blueprint"`
	Version   string         `json:"version"`
	Opsready  string         `json:"opsready"`
	Answers   map[string]any `json:"answers"`
	Modified  []string       `json:"modified"`  // generated files whose content differs from the render
	Missing   []string       `json:"missing"`   // managed files that are gone
	Added     []string       `json:"added"`     // files opsready did not generate (git-ignored ones left out)
	Conflicts []string       `json:"conflicts"` // files that still hold conflict markers
	Unchanged int            `json:"unchanged"`
	Seed      int            `json:"seed"` // seed files: the team's after `new`, never compared
}

// ReadStatus reports the state of the project in dir.
func ReadStatus(dir string) (*Status, error) {
	l, err := lock.Read(dir)
	if err != nil {
		return nil, err
	}
	st := &Status{Dir: dir, Blueprint: l.Blueprint, Version: l.Version, Opsready: l.Opsready, Answers: l.Answers,
		Modified: []string{}, Missing: []string{}, Added: []string{}, Conflicts: []string{}}
	for p, e := range l.Files {
		if e.Policy == generator.PolicySeed {
			st.Seed++
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		switch {
		// A folder at the path, or a file where one of its folders should be, is no file either.
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR):
			st.Missing = append(st.Missing, p)
			continue
		case err != nil:
			return nil, err
		}
		if generator.HashBytes(data) != l.Files[p].SHA256 {
			st.Modified = append(st.Modified, p)
		} else {
			st.Unchanged++
		}
		if HasConflictMarkers(data) {
			st.Conflicts = append(st.Conflicts, p)
		}
	}
	patterns, err := gitignore.ReadPatterns(osfs.New(dir), nil)
	if err != nil {
		return nil, err
	}
	ignored := gitignore.NewMatcher(patterns)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if d.IsDir() {
			if rel == ".git" || ignored.Match(parts, true) {
				return filepath.SkipDir
			}
			return nil
		}
		slash := filepath.ToSlash(rel)
		// The write lock is opsready's while it runs, never the team's file.
		if _, ok := l.Files[slash]; ok || slash == lock.FileName || slash == WriteLockName || ignored.Match(parts, false) {
			return nil
		}
		st.Added = append(st.Added, slash)
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.Conflicts = append(st.Conflicts, unmergedPaths(dir)...)
	for _, p := range st.Added {
		if orig, ok := opsreadyNewOf(p); ok {
			st.Conflicts = append(st.Conflicts, orig)
		}
	}
	st.Conflicts = dedupe(st.Conflicts)
	for _, s := range [][]string{st.Modified, st.Missing, st.Added, st.Conflicts} {
		sort.Strings(s)
	}
	return st, nil
}

// HasConflictMarkers reports whether data holds a complete set of merge conflict markers.
func HasConflictMarkers(data []byte) bool {
	return hasLinePrefix(data, "<<<<<<< ") && hasLinePrefix(data, "=======") && hasLinePrefix(data, ">>>>>>> ")
}

func hasLinePrefix(data []byte, prefix string) bool {
	for line := range bytes.Lines(data) {
		if bytes.HasPrefix(line, []byte(prefix)) {
			return true
		}
	}
	return false
}

// unmergedPaths lists the paths the git index holds as unmerged (stage > 0).
func unmergedPaths(dir string) []string {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return nil
	}
	idx, err := repo.Storer.Index()
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range idx.Entries {
		if e.Stage != 0 {
			out = append(out, e.Name)
		}
	}
	return out
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// opsreadyNewOf returns the file whose new version an upgrade wrote at p (`x.opsready-new`,
// or `x.opsready-new.N` when that name was taken).
func opsreadyNewOf(p string) (string, bool) {
	if i := strings.LastIndex(p, ".opsready-new."); i > 0 {
		if _, err := strconv.Atoi(p[i+len(".opsready-new."):]); err == nil {
			return p[:i], true
		}
	}
	orig, ok := strings.CutSuffix(p, ".opsready-new")
	return orig, ok && orig != ""
}
