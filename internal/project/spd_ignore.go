package project

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// readPatterns is gitignore.ReadPatterns(wt.Filesystem, nil) for the work tree in dir. The
// go-git version looks at every path component of every folder and file it opens (its
// file system resolves symbolic links itself and checks every path) and at every entry of
// every folder it lists: most of the system calls of a commit. This one lists the folders
// only, and leaves to go-git any tree where that could differ: one with a symbolic link, a
// .git below the top, or a folder name its path checks might refuse (see plainName).
func readPatterns(dir string, wt *git.Worktree) ([]gitignore.Pattern, error) {
	ps, ok, err := readPatternsPlain(dir, nil)
	if err != nil || !ok {
		return gitignore.ReadPatterns(wt.Filesystem, nil)
	}
	return ps, nil
}

// readPatternsPlain mirrors gitignore.ReadPatterns step for step (down to how it appends to
// path, which the patterns' domains share). ok is false when it met a symbolic link or a
// nested .git.
func readPatternsPlain(root string, path []string) (ps []gitignore.Pattern, ok bool, err error) {
	// go-git's work tree refuses every path through .git, so its .git/info/exclude is never
	// read: only .gitignore is.
	ps = readIgnoreFilePlain(root, path, ".gitignore")
	entries, err := os.ReadDir(filepath.Join(append([]string{root}, path...)...))
	if err != nil {
		return nil, false, err
	}
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink != 0 || (e.Name() == ".git" && len(path) > 0) {
			return nil, false, nil
		}
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() != ".git" {
			if gitignore.NewMatcher(ps).Match(append(path, e.Name()), true) {
				continue
			}
			if !plainName(e.Name()) {
				return nil, false, nil
			}
			subps, ok, err := readPatternsPlain(root, append(path, e.Name()))
			if err != nil || !ok {
				return nil, ok, err
			}
			if len(subps) > 0 {
				ps = append(ps, subps...)
			}
		}
	}
	return ps, true, nil
}

// readIgnoreFilePlain is go-git's readIgnoreFile: errors are ignored as ReadPatterns ignores
// them.
func readIgnoreFilePlain(root string, path []string, ignoreFile string) (ps []gitignore.Pattern) {
	f, err := os.Open(filepath.Join(append([]string{root}, append(path, ignoreFile)...)...))
	if err != nil {
		return nil
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		s := scanner.Text()
		if !strings.HasPrefix(s, "#") && len(strings.TrimSpace(s)) > 0 {
			ps = append(ps, gitignore.ParsePattern(s, path))
		}
	}
	return ps
}

// plainName says whether a folder name certainly passes go-git's work tree path checks
// (no .git or NTFS alias of it, no Windows device name, no control character): ASCII
// letters, digits, '.', '_' and '-' only, and none of those names.
func plainName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	lower := strings.ToLower(name)
	if strings.HasPrefix(lower, ".git") && strings.Trim(lower[4:], ".") == "" {
		return false
	}
	base, _, _ := strings.Cut(lower, ".")
	switch base {
	case "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8", "com9",
		"lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9":
		return false
	}
	return true
}
