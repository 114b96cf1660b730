package project

import (
	"errors"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/opsready/opsready/generator"
)

// commitAll initialises a repository in dir (or opens the one there), stages every file
// that .gitignore does not exclude and commits. It returns the commit hash.
func commitAll(dir, message string) (string, error) {
	repo, err := git.PlainInit(dir, false)
	fresh := err == nil
	if errors.Is(err, git.ErrRepositoryAlreadyExists) {
		repo, err = git.PlainOpen(dir)
	}
	if err != nil {
		return "", err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", err
	}
	// Write's staging folder (with the originals of replaced files) still exists at this point.
	// So is the write lock.
	wt.Excludes = append(wt.Excludes, gitignore.ParsePattern(generator.StagingPrefix+"*", nil), gitignore.ParsePattern("/"+WriteLockName, nil))
	if fresh {
		// A new repository: one pack written from a single read of each file, instead of go-git's
		// status walk plus one loose object (and folder) per file.
		if h, err := commitNew(repo, wt, dir, message); !errors.Is(err, errNotPlain) {
			return h, err
		}
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return "", err
	}
	sig := signature(repo)
	h, err := wt.Commit(message, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// signature uses the user's git identity where one is configured, and opsready's otherwise
// (CI machines often have none, and go-git refuses to commit without an author).
func signature(repo *git.Repository) *object.Signature {
	sig := &object.Signature{Name: "opsready", Email: "opsready@localhost", When: time.Now()}
	if cfg, err := repo.ConfigScoped(config.SystemScope); err == nil && cfg.User.Name != "" && cfg.User.Email != "" {
		sig.Name, sig.Email = cfg.User.Name, cfg.User.Email
	}
	return sig
}
