package generator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
)

// File policies decide what `upgrade` may do with a file.
const (
	PolicyMerge   = "merge"   // 3-way merged with the team's edits
	PolicySeed    = "seed"    // created once, never touched again
	PolicyManaged = "managed" // always regenerated; a local edit becomes a conflict
)

// File is one generated file, in memory.
type File struct {
	Path   string      // slash-separated, relative to the project root
	Data   []byte      //
	Mode   fs.FileMode // 0644 or 0755; fs.ModeDir|perm for a folder entry (the secrets folder)
	Policy string      // empty for files opsready does not track (secrets, .env)
	// Sources are the blueprint paths that produced the file: its template first, then the
	// partials and slot fragments it rendered, in first-use order. Empty for files not
	// rendered from a blueprint (the lock file, secrets).
	Sources []string
}

// SHA256 is the hex SHA-256 of the file's content, as recorded in the lock file.
func (f File) SHA256() string { return HashBytes(f.Data) }

// HashBytes is the hex SHA-256 of b.
func HashBytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Files is a rendered tree sorted by path.
type Files []File

// Sort orders the files by path and rejects duplicates.
func (fs Files) Sort() error {
	sort.Slice(fs, func(i, j int) bool { return fs[i].Path < fs[j].Path })
	for i := 1; i < len(fs); i++ {
		if fs[i].Path == fs[i-1].Path {
			return fmt.Errorf("two files render to %s", fs[i].Path)
		}
	}
	return nil
}

// Get returns the file at path (a linear scan: trees are small, and it needs no sorting).
func (fs Files) Get(path string) (File, bool) {
	for _, f := range fs {
		if f.Path == path {
			return f, true
		}
	}
	return File{}, false
}
