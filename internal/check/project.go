package check

import (
	"context"

	"github.com/compose-spec/compose-go/v2/types"
)

// LoadProject loads the compose project in dir exactly as Run does (same file discovery,
// .env, profiles and environment) for callers that need the model rather than findings, such
// as adopt. It returns the compose files relative to dir. Problems with the input are
// InputError, as from Run.
func LoadProject(ctx context.Context, dir string, files, profiles, env []string) (*types.Project, []string, error) {
	l, err := load(ctx, dir, files, profiles, env)
	if err != nil {
		return nil, nil, err
	}
	return l.project, relAll(l), nil
}

// StoreKind is the kind of data store an image runs ("postgres", "mariadb", "mysql", "mongo",
// "redis", "memcached", "other") or "" for anything else; the rule check itself applies, so
// that adopt and check agree on what a data store is.
func StoreKind(image string) string { return storeKind(image) }

// IsJob reports whether s is a one-shot task rather than a long-running service, by the
// rule check applies.
func IsJob(p *types.Project, s types.ServiceConfig) bool { return isJob(p, s) }
