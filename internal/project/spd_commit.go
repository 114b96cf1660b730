package project

import (
	"errors"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"github.com/opsready/opsready/generator"
)

// commitWritten is commitAll right after files were written into dir: when it creates the
// repository, the blobs are hashed from the files' bytes in memory instead of being read
// back from disk. Anything else (a repository that exists, a tree commitNew does not take)
// is left to commitAll.
func commitWritten(dir, message string, files generator.Files) (string, error) {
	repo, err := git.PlainInit(dir, false)
	if errors.Is(err, git.ErrRepositoryAlreadyExists) {
		return commitAll(dir, message)
	}
	if err != nil {
		return "", err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", err
	}
	// As commitAll: the staging folder and the write lock are not the project's.
	wt.Excludes = append(wt.Excludes, gitignore.ParsePattern(generator.StagingPrefix+"*", nil), gitignore.ParsePattern("/"+WriteLockName, nil))
	written := make(map[string][]byte, len(files))
	for _, f := range files {
		if f.Mode.IsRegular() {
			written[f.Path] = f.Data
		}
	}
	h, err := commitNewFrom(repo, wt, dir, message, written)
	if errors.Is(err, errNotPlain) {
		return commitAll(dir, message) // opens the repository just made; go-git's add takes it
	}
	return h, err
}
