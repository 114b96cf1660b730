package check

import (
	"context"
	"errors"
	"fmt"
	"github.com/opsready/opsready/internal/lock"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// InputError marks a problem with what check was given: no compose file, a file that cannot
// be read or loaded, an invalid image reference, a bad waivers file. The CLI exits 2 on it.
type InputError struct{ Err error }

func (e InputError) Error() string { return e.Err.Error() }
func (e InputError) Unwrap() error { return e.Err }

func inputErrorf(format string, a ...any) error { return InputError{fmt.Errorf(format, a...)} }

// ErrNoComposeFile is returned when DIR holds none of the default compose file names and
// neither `-f` nor COMPOSE_FILE names one.
var ErrNoComposeFile = errors.New("no compose file")

// defaultFiles and overrideFiles are docker compose's discovery order (compose-go's lists).
var (
	defaultFiles  = cli.DefaultFileNames
	overrideFiles = cli.DefaultOverrideFileNames
)

// loaded is a compose project as docker compose would run it, with the files it came from.
type loaded struct {
	dir     string   // absolute project directory
	files   []string // absolute compose file paths, in load order
	project *types.Project
	env     map[string]string // interpolation environment (process + .env)
	yaml    *positions
}

// load resolves the compose files and loads them with compose-go. Files named with `-f` and
// in COMPOSE_FILE are relative to dir. Unlike docker compose, discovery does not climb to
// parent folders: check scores dir, not whatever project happens to enclose it.
func load(ctx context.Context, dir string, files, profiles, env []string) (*loaded, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, inputErrorf("%w", err)
	}
	if !fi.IsDir() {
		return nil, inputErrorf("%s is not a directory", dir)
	}
	// The environment first, so that .env can name the files (COMPOSE_FILE) and profiles
	// (COMPOSE_PROFILES), as it can for docker compose.
	o, err := cli.NewProjectOptions(nil,
		cli.WithWorkingDirectory(abs),
		cli.WithEnv(env),
		cli.WithEnvFiles(),
		cli.WithDotEnv,
	)
	if err != nil {
		return nil, inputErrorf("read %s: %w", filepath.Join(dir, ".env"), err)
	}
	paths, err := composeFiles(abs, files, o.Environment)
	if err != nil {
		return nil, err
	}
	o.ConfigPaths = paths
	if err := cli.WithDefaultProfiles(profiles...)(o); err != nil {
		return nil, inputErrorf("profiles: %w", err)
	}
	p, err := o.LoadProject(ctx)
	if err != nil {
		// The loader's YAML errors give the line but not the file: name it.
		if bad := firstInvalidYAML(paths); bad != "" {
			return nil, inputErrorf("%s: %w", relTo(abs, bad), err)
		}
		return nil, inputErrorf("load compose files: %w", err)
	}
	pos, err := readPositions(abs, paths)
	if err != nil {
		return nil, err
	}
	return &loaded{dir: abs, files: paths, project: p, env: o.Environment, yaml: pos}, nil
}

// composeFiles decides which files docker compose would load: `-f`, else COMPOSE_FILE, else
// the first default name and the first override name found in dir.
func composeFiles(dir string, named []string, env map[string]string) ([]string, error) {
	rel := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	check := func(p, origin string) (string, error) {
		fi, err := os.Stat(p)
		if err != nil {
			return "", inputErrorf("compose file %s%s: %w", p, origin, err)
		}
		if fi.IsDir() {
			return "", inputErrorf("compose file %s%s is a directory", p, origin)
		}
		return p, nil
	}
	var out []string
	if len(named) > 0 {
		for _, f := range named {
			p, err := check(rel(f), "")
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	}
	if cf := env["COMPOSE_FILE"]; cf != "" {
		sep := env["COMPOSE_PATH_SEPARATOR"]
		if sep == "" {
			sep = string(os.PathListSeparator)
		}
		for _, f := range strings.Split(cf, sep) {
			p, err := check(rel(f), " (named by COMPOSE_FILE)")
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	}
	if locked := lockedFiles(dir); locked != nil {
		for _, f := range locked {
			p, err := check(rel(f), " (named by "+lock.FileName+")")
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	}
	for _, names := range [][]string{defaultFiles, overrideFiles} {
		for _, n := range names {
			p := filepath.Join(dir, n)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				out = append(out, p)
				break
			}
		}
		if len(out) == 0 {
			return nil, InputError{fmt.Errorf("%s: %w (looked for %s; name files with `-f`)",
				dir, ErrNoComposeFile, strings.Join(defaultFiles, ", "))}
		}
	}
	return out, nil
}

// relPath is p relative to the project directory, with forward slashes.
func (l *loaded) relPath(p string) string {
	if r, err := filepath.Rel(l.dir, p); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return filepath.ToSlash(p)
}

// serviceNames are the services of the loaded project (active profiles only), sorted.
func (l *loaded) serviceNames() []string {
	var names []string
	for n := range l.project.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// lockedFiles are the production compose files of a project `opsready adopt` brought in: the
// team's files plus the three of the ops layer (under the names adopt gave them); nil for any
// other project. Production is what check scores. (A generated project's production files
// need REGISTRY and TAG, so it keeps docker compose's discovery and the note on -f.)
func lockedFiles(dir string) []string {
	lk, err := lock.Read(dir)
	if err != nil || lk.Adopt == nil {
		return nil
	}
	out := append([]string{}, lk.Adopt.ComposeFiles...)
	for _, f := range []string{"compose.prod.yaml", "compose.monitoring.yaml", "compose.backup.yaml"} {
		if to, ok := lk.Adopt.Renames[f]; ok {
			f = to
		}
		out = append(out, f)
	}
	return out
}
