package delivery

// The backup image is tagged by its content, not by the application's release: BACKUP_TAG is
// what ops/backup/image-tag.sh prints (a hash of the files the image is built from), CI builds
// and publishes the image under it, the deploys write it into the host's .env, and the compose
// files run the backup jobs and (physical PostgreSQL backups) the db service on
// REGISTRY/<name>-backup:${BACKUP_TAG}. So an application deploy that leaves ops/backup's image
// files unchanged leaves the db service's configuration unchanged, and compose does not
// recreate (restart) the database. The workflows' own steps are run here with fake docker,
// make and apk commands that record what they are asked to do.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

var bktTagRe = regexp.MustCompile(`^b-[0-9a-f]{12}$`)

// bktEnv is a hermetic environment for git and the generated scripts: no user or system git
// configuration, a fixed identity, fake commands first on PATH when bin is set.
func bktEnv(t *testing.T, home, bin string, extra ...string) []string {
	t.Helper()
	path := os.Getenv("PATH")
	if bin != "" {
		path = bin + string(os.PathListSeparator) + path
	}
	env := []string{"PATH=" + path, "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "LANG=C",
		"GIT_AUTHOR_NAME=bkt", "GIT_AUTHOR_EMAIL=bkt@example.test",
		"GIT_COMMITTER_NAME=bkt", "GIT_COMMITTER_EMAIL=bkt@example.test"}
	return append(env, extra...)
}

// bktRun runs argv in dir with env and returns stdout, stderr and the error.
func bktRun(dir string, env []string, stdin string, argv ...string) (string, string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// bktGit runs git in dir and returns its trimmed output; the test fails when git does.
func bktGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, errOut, err := bktRun(dir, bktEnv(t, t.TempDir(), ""), "", append([]string{"git"}, args...)...)
	if err != nil {
		t.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, errOut)
	}
	return strings.TrimSpace(out)
}

// bktCommit commits every file of dir (a repository is created when there is none) and
// returns the commit SHA.
func bktCommit(t *testing.T, dir, msg string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		bktGit(t, dir, "init", "-q", "-b", "main")
	}
	bktGit(t, dir, "add", "-A")
	bktGit(t, dir, "commit", "-q", "--allow-empty", "-m", msg)
	return bktGit(t, dir, "rev-parse", "HEAD")
}

// bktTag runs ops/backup/image-tag.sh of project dir from cwd and returns the tag it prints.
func bktTag(t *testing.T, dir, cwd string) string {
	t.Helper()
	out, errOut, err := bktRun(cwd, bktEnv(t, t.TempDir(), ""), "", filepath.Join(dir, "ops", "backup", "image-tag.sh"))
	if err != nil {
		t.Fatalf("ops/backup/image-tag.sh (from %s): %v\n%s", cwd, err, errOut)
	}
	tag := strings.TrimSpace(out)
	if !bktTagRe.MatchString(tag) {
		t.Fatalf("ops/backup/image-tag.sh printed %q, want b- and 12 hex digits", out)
	}
	return tag
}

// bktAppend appends text to the file rel of dir.
func bktAppend(t *testing.T, dir, rel, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, rel), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// bktSet are the answers of the tests: physical PostgreSQL backups (the db service runs the
// backup image), both CI providers.
func bktSet(extra map[string]string) map[string]string {
	set := map[string]string{"name": "bkt-app", "frontend": "static", "db": "postgres", "db_backup_method": "physical", "ci": "both"}
	for k, v := range extra {
		set[k] = v
	}
	return set
}

func TestBktImageTagScript(t *testing.T) {
	e2eutil.RequireTool(t, "git")
	dir := e2eutil.Generate(t, bktSet(nil))
	bktCommit(t, dir, "v1")
	tag := bktTag(t, dir, dir)

	// The documented formula: the SHA-256 of `git ls-files -s` of .dockerignore and the files
	// it lets in, run in ops/backup.
	listing := bktGit(t, filepath.Join(dir, "ops", "backup"), "ls-files", "-s", "--", ".dockerignore", "Dockerfile")
	sum := sha256.Sum256([]byte(listing + "\n"))
	if want := "b-" + hex.EncodeToString(sum[:])[:12]; tag != want {
		t.Errorf("tag %s, want %s (sha256 of:\n%s)", tag, want, listing)
	}
	// The same wherever it is run from, and in another checkout of the same content made by
	// another generation and commit.
	for _, cwd := range []string{filepath.Join(dir, "ops"), filepath.Join(dir, "ops", "backup"), t.TempDir()} {
		if got := bktTag(t, dir, cwd); got != tag {
			t.Errorf("run from %s: %s, want %s", cwd, got, tag)
		}
	}
	other := e2eutil.Generate(t, bktSet(nil))
	bktAppend(t, other, "README.md", "\nanother commit of the same ops/backup\n")
	bktCommit(t, other, "elsewhere")
	if got := bktTag(t, other, other); got != tag {
		t.Errorf("another checkout of the same ops/backup: %s, want %s", got, tag)
	}

	steps := []struct {
		name    string
		change  func()
		changes bool
	}{
		{"an application file (README.md)", func() { bktAppend(t, dir, "README.md", "\nmore\n") }, false},
		{"the compose files", func() { bktAppend(t, dir, "compose.prod.yaml", "\n# more\n") }, false},
		{"a backup script mounted at run time (ops/backup/lib.sh)", func() { bktAppend(t, dir, "ops/backup/lib.sh", "\n# more\n") }, false},
		{"ops/backup/backup.env", func() { bktAppend(t, dir, "ops/backup/backup.env", "\n# more\n") }, false},
		{"ops/backup/Dockerfile", func() { bktAppend(t, dir, "ops/backup/Dockerfile", "\n# more\n") }, true},
		{"the mode of ops/backup/Dockerfile", func() {
			if err := os.Chmod(filepath.Join(dir, "ops", "backup", "Dockerfile"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"ops/backup/.dockerignore", func() { bktAppend(t, dir, "ops/backup/.dockerignore", "# more\n") }, true},
		{"a file let into the build context", func() {
			if err := os.WriteFile(filepath.Join(dir, "ops", "backup", "extra.conf"), []byte("a\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			bktAppend(t, dir, "ops/backup/.dockerignore", "!extra.conf\n")
		}, true},
		{"that file's content", func() { bktAppend(t, dir, "ops/backup/extra.conf", "b\n") }, true},
	}
	prev := tag
	seen := map[string]string{tag: "v1"}
	for _, s := range steps {
		s.change()
		bktCommit(t, dir, s.name)
		got := bktTag(t, dir, dir)
		if s.changes && got == prev {
			t.Errorf("after a change to %s: tag %s unchanged, want a new one", s.name, got)
		}
		if !s.changes && got != prev {
			t.Errorf("after a change to %s: tag %s, want %s unchanged (the image is not built from it)", s.name, got, prev)
		}
		if s.changes {
			if was, ok := seen[got]; ok {
				t.Errorf("after a change to %s: tag %s repeats the one of %q", s.name, got, was)
			}
			seen[got] = s.name
		}
		prev = got
	}

	// An uncommitted change is reported; the tag stays that of what git holds.
	bktAppend(t, dir, "ops/backup/Dockerfile", "\n# not committed\n")
	out, errOut, err := bktRun(dir, bktEnv(t, t.TempDir(), ""), "", "ops/backup/image-tag.sh")
	if err != nil || strings.TrimSpace(out) != prev || !strings.Contains(errOut, "uncommitted changes") {
		t.Errorf("with an uncommitted change: %v, printed %q, stderr %q; want %s and a warning", err, out, errOut, prev)
	}
	bktGit(t, dir, "checkout", "--", "ops/backup/Dockerfile")

	// What the script refuses, each with a message naming the cause.
	refusals := []struct {
		name, dockerignore, want string
		untracked                bool
	}{
		{"a pattern", "*\n!Dockerfile\n!*.sh\n", "without patterns", false},
		{"no * line", "!Dockerfile\n", "before the '*' line", false},
		{"an exclusion it cannot follow", "*\n!Dockerfile\nsecrets\n", "only '*' and '!name' lines", false},
		{"a file git does not track", "*\n!Dockerfile\n!untracked.conf\n", "not tracked by git", true},
	}
	for _, r := range refusals {
		if err := os.WriteFile(filepath.Join(dir, "ops", "backup", ".dockerignore"), []byte(r.dockerignore), 0o644); err != nil {
			t.Fatal(err)
		}
		if r.untracked {
			if err := os.WriteFile(filepath.Join(dir, "ops", "backup", "untracked.conf"), []byte("x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, errOut, err := bktRun(dir, bktEnv(t, t.TempDir(), ""), "", "ops/backup/image-tag.sh")
		if err == nil || out != "" || !strings.Contains(errOut, r.want) {
			t.Errorf(".dockerignore with %s: %v, printed %q, stderr %q; want a failure saying %q", r.name, err, out, errOut, r.want)
		}
		os.Remove(filepath.Join(dir, "ops", "backup", "untracked.conf"))
	}
	bktGit(t, dir, "checkout", "--", "ops/backup/.dockerignore")

	// Outside a git checkout: no tag, and why.
	loose := t.TempDir()
	for _, f := range []string{"image-tag.sh", ".dockerignore", "Dockerfile"} {
		b, err := os.ReadFile(filepath.Join(dir, "ops", "backup", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(loose, f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, err = bktRun(loose, bktEnv(t, t.TempDir(), "", "GIT_CEILING_DIRECTORIES="+filepath.Dir(loose)), "", "./image-tag.sh")
	if err == nil || out != "" || !strings.Contains(errOut, "not in a git checkout") {
		t.Errorf("outside a checkout: %v, printed %q, stderr %q; want a failure saying so", err, out, errOut)
	}
}

// TestBktDockerfileContext: every file the backup image's Dockerfile copies from its build
// context is one .dockerignore lets in, so the tag (a hash of those files) covers all the image
// is built from; COPY --from a stage takes nothing from the context.
func TestBktDockerfileContext(t *testing.T) {
	for _, set := range []map[string]string{
		bktSet(nil),
		bktSet(map[string]string{"db_backup_method": "logical", "cache": "redis", "offsite": "sftp"}),
		bktSet(map[string]string{"db": "mariadb", "db_backup_method": "physical", "cache": "redis"}),
		bktSet(map[string]string{"db": "mariadb", "db_backup_method": "logical", "offsite": "s3"}),
	} {
		t.Run(set["db"]+"-"+set["db_backup_method"]+"-cache-"+set["cache"]+"-offsite-"+set["offsite"], func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, set)
			allowed := map[string]bool{}
			for i, l := range strings.Split(e2eutil.ReadFile(t, filepath.Join(dir, "ops", "backup", ".dockerignore")), "\n") {
				switch {
				case l == "" || strings.HasPrefix(l, "#"):
				case l == "*":
					if len(allowed) > 0 {
						t.Errorf(".dockerignore:%d: * after a !name line lets nothing in", i+1)
					}
				case strings.HasPrefix(l, "!"):
					allowed[strings.TrimPrefix(l, "!")] = true
				default:
					t.Errorf(".dockerignore:%d: %q", i+1, l)
				}
			}
			if !allowed["Dockerfile"] {
				t.Errorf(".dockerignore does not let the Dockerfile in: %v", allowed)
			}
			var copies int
			for i, l := range strings.Split(e2eutil.ReadFile(t, filepath.Join(dir, "ops", "backup", "Dockerfile")), "\n") {
				f := strings.Fields(l)
				if len(f) == 0 || (!strings.EqualFold(f[0], "COPY") && !strings.EqualFold(f[0], "ADD")) {
					continue
				}
				copies++
				args := f[1:]
				fromStage := false
				for len(args) > 0 && strings.HasPrefix(args[0], "--") {
					fromStage = fromStage || strings.HasPrefix(args[0], "--from=")
					args = args[1:]
				}
				if fromStage || len(args) < 2 {
					continue
				}
				for _, src := range args[:len(args)-1] {
					if !allowed[strings.TrimPrefix(src, "./")] {
						t.Errorf("Dockerfile:%d copies %s from the build context, which .dockerignore does not let in: the tag would not cover it", i+1, src)
					}
				}
			}
			t.Logf("%d COPY/ADD lines, context files %v", copies, slices.Sorted(func(yield func(string) bool) {
				for k := range allowed {
					if !yield(k) {
						return
					}
				}
			}))
		})
	}
}

// bktFakeBin writes fake docker, make and apk commands into a new directory: each appends
// its arguments and the TAG and BACKUP_TAG it sees to $BKT_LOG. `docker manifest inspect` and
// `docker buildx imagetools inspect` succeed only for an image listed in $BKT_PUBLISHED.
func bktFakeBin(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	log := `printf '%s %s\tTAG=%s\tBACKUP_TAG=%s\n' "$(basename "$0")" "$*" "${TAG-unset}" "${BACKUP_TAG-unset}" >>"$BKT_LOG"`
	docker := "#!/usr/bin/env bash\n" + log + `
case "$*" in
"manifest inspect "* | "buildx imagetools inspect "*)
	img=${*: -1}
	[[ " ${BKT_PUBLISHED-} " == *" $img "* ]]
	;;
esac
`
	for name, body := range map[string]string{"docker": docker, "make": "#!/usr/bin/env bash\n" + log + "\n", "apk": "#!/usr/bin/env bash\n" + log + "\n"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// bktLog returns the lines of the fake commands' log and empties it.
func bktLog(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// bktHas reports whether a log line holds every one of parts.
func bktHas(lines []string, parts ...string) bool {
	return slices.ContainsFunc(lines, func(l string) bool {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				return false
			}
		}
		return true
	})
}

// bktStep returns the step of a GitHub job whose name is name, or the one that uses uses.
func bktStep(t *testing.T, job map[string]any, name, uses string) map[string]any {
	t.Helper()
	_, _, steps := ciSteps(job)
	for _, s := range steps {
		if (name != "" && s["name"] == name) || (uses != "" && strings.HasPrefix(fmt.Sprint(s["uses"]), uses)) {
			return s
		}
	}
	t.Fatalf("no step %q%q in %v", name, uses, job["name"])
	return nil
}

// bktEnvFile reads KEY=value lines.
func bktEnvFile(t *testing.T, path string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, l := range strings.Split(e2eutil.ReadFile(t, path), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(k, "#") {
			out[k] = append(out[k], v)
		}
	}
	return out
}

func TestBktGitHubWorkflows(t *testing.T) {
	e2eutil.RequireTool(t, "git")
	dir := e2eutil.Generate(t, bktSet(nil))
	sha := bktCommit(t, dir, "v1")
	tag := bktTag(t, dir, dir)
	bin := bktFakeBin(t)
	log := filepath.Join(t.TempDir(), "log")
	home := t.TempDir()

	ci := cdvYAML(t, dir, ".github/workflows/ci.yml")
	jobs := ciMap(ci["jobs"])
	for _, id := range []string{"build", "publish"} {
		job := ciMap(jobs[id])
		entries := map[string]map[string]any{}
		for _, c := range cdvList(ciMap(ciMap(job["strategy"])["matrix"])["component"]) {
			entries[fmt.Sprint(c)] = map[string]any{"component": c}
		}
		for _, inc := range cdvList(ciMap(ciMap(job["strategy"])["matrix"])["include"]) {
			entries[fmt.Sprint(ciMap(inc)["component"])] = ciMap(inc)
		}
		if got := entries["backup"]["tag-script"]; got != "ops/backup/image-tag.sh" {
			t.Errorf("ci.yml: %s: the backup entry's tag-script %v, want ops/backup/image-tag.sh", id, got)
		}
		step := bktStep(t, job, "Image name", "")
		stepEnv := ciMap(step["env"])
		if stepEnv["TAG_SCRIPT"] != "${{ matrix.tag-script }}" || stepEnv["COMPONENT"] != "${{ matrix.component }}" {
			t.Errorf("ci.yml: %s: Image name env %v, want the matrix's component and tag-script", id, stepEnv)
		}
		// The step as the runner runs it (bash -e, GITHUB_ENV a file), for each matrix entry.
		for comp, e := range entries {
			ghEnv := filepath.Join(t.TempDir(), "github_env")
			script, _ := e["tag-script"].(string)
			env := bktEnv(t, home, bin, "BKT_LOG="+log, "GITHUB_ENV="+ghEnv, "GITHUB_SHA="+sha,
				"GITHUB_REPOSITORY=Team/Repo", "COMPONENT="+comp, "TAG_SCRIPT="+script)
			if _, errOut, err := bktRun(dir, env, "", "bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", fmt.Sprint(step["run"])); err != nil {
				t.Fatalf("ci.yml: %s: Image name for %s: %v\n%s", id, comp, err, errOut)
			}
			want := "ghcr.io/team/repo/bkt-app-" + comp + ":" + sha
			if comp == "backup" {
				want = "ghcr.io/team/repo/bkt-app-backup:" + tag
			}
			if got := bktEnvFile(t, ghEnv)["IMAGE"]; !slices.Equal(got, []string{want}) {
				t.Errorf("ci.yml: %s: %s image %v, want %s", id, comp, got, want)
			}
		}
		build := bktStep(t, job, "", "docker/build-push-action@")
		with := ciMap(build["with"])
		if with["tags"] != "${{ env.IMAGE }}" || with["push"] != (id == "publish") {
			t.Errorf("ci.yml: %s: build-push tags %v push %v, want ${{ env.IMAGE }} and push %v", id, with["tags"], with["push"], id == "publish")
		}
	}
	// Publishing refuses an existing tag: for the backup image, content published before.
	pubCheck := bktStep(t, ciMap(jobs["publish"]), "Refuse to overwrite a published tag", "")
	if r := fmt.Sprint(pubCheck["run"]); !strings.Contains(r, `imagetools inspect "$IMAGE"`) {
		t.Errorf("ci.yml: publish checks %q, want the image it is about to push ($IMAGE)", r)
	}

	// Lint loads the production compose files with the tag the script prints.
	lint := bktStep(t, ciMap(jobs["lint"]), "Compose files (development; production with monitoring)", "")
	env := bktEnv(t, home, bin, "BKT_LOG="+log, "REGISTRY=ghcr.io/ci-check/bkt-app", "TAG="+sha)
	if _, errOut, err := bktRun(dir, env, "", "bash", "-e", "-c", fmt.Sprint(lint["run"])); err != nil {
		t.Fatalf("ci.yml: lint compose step: %v\n%s", err, errOut)
	}
	if lines := bktLog(t, log); !bktHas(lines, "docker compose -f compose.yaml", "compose.backup.yaml config -q", "BACKUP_TAG="+tag) {
		t.Errorf("ci.yml: lint checks compose.backup.yaml without BACKUP_TAG=%s:\n%s", tag, strings.Join(lines, "\n"))
	}

	// make check (it loads the production files too) gets the same tag.
	mk := bktStep(t, ciMap(jobs["lint"]), "make check", "")
	if _, errOut, err := bktRun(dir, bktEnv(t, home, bin, "BKT_LOG="+log), "", "bash", "-e", "-c", fmt.Sprint(mk["run"])); err != nil {
		t.Fatalf("ci.yml: make check step: %v\n%s", err, errOut)
	}
	if lines := bktLog(t, log); !bktHas(lines, "make check", "BACKUP_TAG="+tag) {
		t.Errorf("ci.yml: make check runs without BACKUP_TAG=%s:\n%s", tag, strings.Join(lines, "\n"))
	}

	// deploy.yml: the commit's tag, the check that it was published.
	deploy := ciMap(ciMap(cdvYAML(t, dir, ".github/workflows/deploy.yml")["jobs"])["deploy"])
	co := bktStep(t, deploy, "", "actions/checkout@")
	if w := ciMap(co["with"]); w["ref"] != "${{ inputs.sha }}" || w["persist-credentials"] != false {
		t.Errorf("deploy.yml: checkout %v, want ref ${{ inputs.sha }} without credentials", w)
	}
	ghEnv := filepath.Join(t.TempDir(), "github_env")
	tags := bktStep(t, deploy, "Image tags", "")
	if _, errOut, err := bktRun(dir, bktEnv(t, home, bin, "GITHUB_ENV="+ghEnv), "", "bash", "-e", "-c", fmt.Sprint(tags["run"])); err != nil {
		t.Fatalf("deploy.yml: Image tags: %v\n%s", err, errOut)
	}
	if got := bktEnvFile(t, ghEnv)["BACKUP_TAG"]; !slices.Equal(got, []string{tag}) {
		t.Errorf("deploy.yml: BACKUP_TAG %v, want %s", got, tag)
	}
	check := bktStep(t, deploy, "Check that the images of this commit were published", "")
	reg := "ghcr.io/team/repo"
	published := []string{reg + "/bkt-app-backend:" + sha, reg + "/bkt-app-frontend:" + sha, reg + "/bkt-app-backup:" + tag}
	for i := range published {
		env := bktEnv(t, home, bin, "BKT_LOG="+log, "REGISTRY="+reg, "SHA="+sha, "BACKUP_TAG="+tag,
			"BKT_PUBLISHED="+strings.Join(slices.Delete(slices.Clone(published), i, i+1), " "))
		if _, _, err := bktRun(dir, env, "", "bash", "-e", "-c", fmt.Sprint(check["run"])); err == nil {
			t.Errorf("deploy.yml: the check passes with %s not published", published[i])
		}
	}
	env = bktEnv(t, home, bin, "BKT_LOG="+log, "REGISTRY="+reg, "SHA="+sha, "BACKUP_TAG="+tag, "BKT_PUBLISHED="+strings.Join(published, " "))
	bktLog(t, log)
	if _, errOut, err := bktRun(dir, env, "", "bash", "-e", "-c", fmt.Sprint(check["run"])); err != nil {
		t.Errorf("deploy.yml: the check fails with every image published: %v\n%s", err, errOut)
	}
	if lines := bktLog(t, log); !bktHas(lines, "imagetools inspect "+reg+"/bkt-app-backup:"+tag) {
		t.Errorf("deploy.yml: does not check %s/bkt-app-backup:%s:\n%s", reg, tag, strings.Join(lines, "\n"))
	}
}

func TestBktGitLabPipeline(t *testing.T) {
	e2eutil.RequireTool(t, "git")
	e2eutil.RequireTool(t, "sh")
	dir := e2eutil.Generate(t, bktSet(nil))
	sha := bktCommit(t, dir, "v1")
	tag := bktTag(t, dir, dir)
	bin := bktFakeBin(t)
	log := filepath.Join(t.TempDir(), "log")
	home := t.TempDir()
	doc := cdvYAML(t, dir, ".gitlab-ci.yml")
	prefix := "registry.gitlab.test/team/repo/bkt-app"
	if got := ciMap(doc["variables"])["IMAGE_PREFIX"]; got != "$CI_REGISTRY_IMAGE/bkt-app" {
		t.Fatalf("IMAGE_PREFIX %v", got)
	}
	ciEnv := []string{"BKT_LOG=" + log, "IMAGE_PREFIX=" + prefix, "CI_COMMIT_SHA=" + sha, "CI_PROJECT_DIR=" + dir,
		"CI_REGISTRY=registry.gitlab.test", "CI_REGISTRY_USER=u", "CI_REGISTRY_PASSWORD=p", "CI_PROJECT_URL=https://gitlab.test/team/repo",
		"CI_REGISTRY_IMAGE=registry.gitlab.test/team/repo", "REGISTRY=registry.gitlab.test/team/repo", "TAG=" + sha}
	run := func(job string, extra ...string) error {
		script := strings.Join(ciFlatten(ciMap(doc[job])["script"]), "\n")
		_, errOut, err := bktRun(dir, bktEnv(t, home, bin, append(slices.Clone(ciEnv), extra...)...), "", "sh", "-e", "-c", script)
		if err != nil {
			t.Logf("%s: %v\n%s", job, err, errOut)
		}
		return err
	}
	for _, id := range []string{"build", "publish"} {
		var backup map[string]any
		for _, e := range cdvList(ciMap(ciMap(doc[id])["parallel"])["matrix"]) {
			if ciMap(e)["COMPONENT"] == "backup" {
				backup = ciMap(e)
			}
		}
		if backup["TAG_SCRIPT"] != "ops/backup/image-tag.sh" || backup["CONTEXT"] != "ops/backup" {
			t.Fatalf("%s: backup matrix entry %v, want CONTEXT ops/backup and TAG_SCRIPT ops/backup/image-tag.sh", id, backup)
		}
		bktLog(t, log)
		if err := run(id, "COMPONENT=backup", "CONTEXT=ops/backup", "TAG_SCRIPT=ops/backup/image-tag.sh"); err != nil {
			t.Errorf("%s of the backup image failed", id)
		}
		lines := bktLog(t, log)
		if !bktHas(lines, "docker build", "-t "+prefix+"-backup:"+tag+" ops/backup") {
			t.Errorf("%s does not build %s-backup:%s from ops/backup:\n%s", id, prefix, tag, strings.Join(lines, "\n"))
		}
		if id == "publish" && !bktHas(lines, "docker push "+prefix+"-backup:"+tag) {
			t.Errorf("publish does not push %s-backup:%s:\n%s", prefix, tag, strings.Join(lines, "\n"))
		}
		if err := run(id, "COMPONENT=backend"); err != nil {
			t.Errorf("%s of the backend image failed", id)
		}
		if lines := bktLog(t, log); !bktHas(lines, "docker build", "-t "+prefix+"-backend:"+sha+" backend") {
			t.Errorf("%s does not build the backend under the commit SHA:\n%s", id, strings.Join(lines, "\n"))
		}
	}
	// Content published before is not pushed again.
	if err := run("publish", "COMPONENT=backup", "CONTEXT=ops/backup", "TAG_SCRIPT=ops/backup/image-tag.sh", "BKT_PUBLISHED="+prefix+"-backup:"+tag); err != nil {
		t.Errorf("publish of an existing backup tag failed")
	}
	if lines := bktLog(t, log); bktHas(lines, "docker push") || bktHas(lines, "docker build") {
		t.Errorf("publish rebuilt or pushed an existing tag:\n%s", strings.Join(lines, "\n"))
	}
	// compose-config checks compose.backup.yaml with the script's tag.
	if err := run("compose-config"); err != nil {
		t.Errorf("compose-config failed")
	}
	if lines := bktLog(t, log); !bktHas(lines, "compose.backup.yaml config -q", "BACKUP_TAG="+tag) {
		t.Errorf("compose-config checks compose.backup.yaml without BACKUP_TAG=%s:\n%s", tag, strings.Join(lines, "\n"))
	}
	if b, err := os.ReadFile(filepath.Join(home, ".gitconfig")); err != nil || !strings.Contains(string(b), "directory = "+dir) {
		t.Errorf("the jobs do not mark the checkout a safe directory for git: %v %q", err, b)
	}
}

// bktHostScript returns the script a deploy runs on the host over ssh (its here-document).
func bktHostScript(t *testing.T, where, run string) string {
	t.Helper()
	var out []string
	in := false
	for _, l := range strings.Split(run, "\n") {
		switch {
		case strings.HasSuffix(strings.TrimSpace(l), "<<'EOF'"):
			in = true
		case in && strings.TrimSpace(l) == "EOF":
			return strings.Join(out, "\n") + "\n"
		case in:
			out = append(out, strings.TrimSpace(l))
		}
	}
	t.Fatalf("%s: no ssh here-document in:\n%s", where, run)
	return ""
}

// TestBktDeployKeepsDatabase runs each deploy's host script on a checkout: it writes
// BACKUP_TAG into .env (adding the line to an older .env) and exports it for compose; an
// application change leaves BACKUP_TAG, and so the db service's whole configuration, as it
// was (compose recreates a service only when its configuration changes), while a change to
// ops/backup/Dockerfile gives a new tag and a new db image.
func TestBktDeployKeepsDatabase(t *testing.T) {
	e2eutil.RequireTool(t, "git")
	host := filepath.Join(t.TempDir(), "srv", "bkt-app")
	dir := e2eutil.Generate(t, bktSet(map[string]string{"deploy_dir": host}))
	sha0 := bktCommit(t, dir, "v1")

	gh := ciMap(ciMap(cdvYAML(t, dir, ".github/workflows/deploy.yml")["jobs"])["deploy"])
	scripts := map[string]string{
		"deploy.yml": bktHostScript(t, "deploy.yml", fmt.Sprint(bktStep(t, gh, "Deploy", "")["run"])),
		".gitlab-ci.yml": bktHostScript(t, ".gitlab-ci.yml deploy",
			strings.Join(ciFlatten(ciMap(cdvYAML(t, dir, ".gitlab-ci.yml")["deploy"])["script"]), "\n")),
	}
	bin := bktFakeBin(t)
	log := filepath.Join(t.TempDir(), "log")
	home := t.TempDir()

	// The host: a clone with its secrets and an .env from .env.example; first without a
	// BACKUP_TAG line (a host set up before this version).
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		t.Fatal(err)
	}
	bktGit(t, filepath.Dir(host), "clone", "-q", dir, host)
	if out, err := exec.Command("cp", "-a", filepath.Join(dir, "secrets"), host).CombinedOutput(); err != nil {
		t.Fatalf("copy secrets: %v\n%s", err, out)
	}
	example := e2eutil.ReadFile(t, filepath.Join(dir, ".env.example"))
	if !regexp.MustCompile(`(?m)^BACKUP_TAG=$`).MatchString(example) {
		t.Errorf(".env.example has no empty BACKUP_TAG= line")
	}
	older := regexp.MustCompile(`(?m)^BACKUP_TAG=.*\n`).ReplaceAllString(example, "")
	// Production refuses to start while BACKUP_TAG is empty, naming it.
	if err := os.WriteFile(filepath.Join(host, ".env"), []byte(strings.Replace(example, "\nTAG=\n", "\nTAG="+sha0+"\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e2eutil.LoadCompose(host, nil, filepath.Join(host, ".env"), cdvFiles...); err == nil || !strings.Contains(err.Error(), "BACKUP_TAG") {
		t.Errorf("production with .env.example's empty BACKUP_TAG: %v, want an error naming BACKUP_TAG", err)
	}

	deploy := func(t *testing.T, provider, sha string) map[string][]string {
		t.Helper()
		bktLog(t, log)
		env := bktEnv(t, home, bin, "BKT_LOG="+log)
		if out, errOut, err := bktRun(host, env, scripts[provider], "bash", "-s", "--", sha); err != nil {
			t.Fatalf("%s: host script for %s: %v\n%s%s", provider, sha, err, out, errOut)
		}
		return bktEnvFile(t, filepath.Join(host, ".env"))
	}
	dbConfig := func(t *testing.T, envFile string) (db, backend string) {
		t.Helper()
		p, err := e2eutil.LoadCompose(host, nil, envFile, cdvFiles...)
		if err != nil {
			t.Fatalf("load the production files with %s: %v", envFile, err)
		}
		d, _ := json.Marshal(p.Services["db"])
		b, _ := json.Marshal(p.Services["backend"])
		return string(d), string(b)
	}

	for provider := range scripts {
		t.Run(provider, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(host, ".env"), []byte(older), 0o644); err != nil {
				t.Fatal(err)
			}
			sha1 := bktGit(t, dir, "rev-parse", "HEAD")
			tag1 := bktTag(t, dir, dir)
			env := deploy(t, provider, sha1)
			if !slices.Equal(env["TAG"], []string{sha1}) || !slices.Equal(env["BACKUP_TAG"], []string{tag1}) {
				t.Errorf("after the first deploy (an .env without BACKUP_TAG): TAG %v BACKUP_TAG %v, want %s and %s", env["TAG"], env["BACKUP_TAG"], sha1, tag1)
			}
			lines := bktLog(t, log)
			for _, cmd := range []string{"compose.backup.yaml pull", "compose.backup.yaml up -d"} {
				if !bktHas(lines, "docker compose -f compose.yaml", cmd, "TAG="+sha1, "BACKUP_TAG="+tag1) {
					t.Errorf("docker compose ... %s does not see TAG=%s BACKUP_TAG=%s:\n%s", cmd, sha1, tag1, strings.Join(lines, "\n"))
				}
			}
			first := filepath.Join(t.TempDir(), "env1")
			if err := os.WriteFile(first, []byte(e2eutil.ReadFile(t, filepath.Join(host, ".env"))), 0o644); err != nil {
				t.Fatal(err)
			}
			db1, backend1 := dbConfig(t, first)
			if !strings.Contains(db1, `"image":"`+"registry.example.com/bkt-app/bkt-app-backup:"+tag1+`"`) {
				t.Errorf("db service after the first deploy: %s, want the backup image tagged %s", db1, tag1)
			}

			// An application release: new TAG, same BACKUP_TAG, the db service unchanged.
			bktAppend(t, dir, "README.md", "\nrelease notes "+provider+"\n")
			bktAppend(t, dir, "ops/backup/lib.sh", "\n# a script fix "+provider+"\n")
			sha2 := bktCommit(t, dir, "app release")
			env = deploy(t, provider, sha2)
			if !slices.Equal(env["TAG"], []string{sha2}) || !slices.Equal(env["BACKUP_TAG"], []string{tag1}) {
				t.Errorf("after an application deploy: TAG %v BACKUP_TAG %v, want %s and %s unchanged", env["TAG"], env["BACKUP_TAG"], sha2, tag1)
			}
			db2, backend2 := dbConfig(t, filepath.Join(host, ".env"))
			if db2 != db1 {
				t.Errorf("an application deploy changes the db service (compose would recreate it):\n%s\n%s", db1, db2)
			}
			if backend2 == backend1 {
				t.Errorf("an application deploy leaves the backend as it was: the comparison cannot see a change")
			}

			// A new backup image: new BACKUP_TAG (the line replaced, not added), new db image.
			bktAppend(t, dir, "ops/backup/Dockerfile", "\n# rebuilt "+provider+"\n")
			sha3 := bktCommit(t, dir, "backup image")
			tag3 := bktTag(t, dir, dir)
			env = deploy(t, provider, sha3)
			if tag3 == tag1 || !slices.Equal(env["BACKUP_TAG"], []string{tag3}) {
				t.Errorf("after a Dockerfile change: BACKUP_TAG %v, want the new %s (was %s)", env["BACKUP_TAG"], tag3, tag1)
			}
			if db3, _ := dbConfig(t, filepath.Join(host, ".env")); db3 == db1 || !strings.Contains(db3, ":"+tag3+`"`) {
				t.Errorf("after a Dockerfile change the db service still runs %s: %s", tag1, db3)
			}
		})
	}
}

// TestBktComposeUsesBackupTag: the backup and restore jobs and, with physical PostgreSQL
// backups, the db service run REGISTRY/<name>-backup:${BACKUP_TAG}; TAG does not reach them.
func TestBktComposeUsesBackupTag(t *testing.T) {
	for _, set := range []map[string]string{
		bktSet(nil),
		bktSet(map[string]string{"db_backup_method": "logical"}),
		bktSet(map[string]string{"db": "mariadb", "db_backup_method": "physical"}),
	} {
		t.Run(set["db"]+"-"+set["db_backup_method"], func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, set)
			env := map[string]string{"REGISTRY": "r.test/team", "TAG": "app-1", "BACKUP_TAG": "b-000000000001"}
			p, err := e2eutil.LoadCompose(dir, env, "", cdvFiles...)
			if err != nil {
				t.Fatal(err)
			}
			want := "r.test/team/bkt-app-backup:b-000000000001"
			for _, job := range []string{"backup", "restore"} {
				if s, ok := p.DisabledServices[job]; !ok || s.Image != want {
					t.Errorf("%s: image %q, want %q", job, s.Image, want)
				}
			}
			physicalPG := set["db"] == "postgres" && set["db_backup_method"] == "physical"
			if got := p.Services["db"].Image; (got == want) != physicalPG {
				t.Errorf("db: image %q (runs the backup image: %v, want %v)", got, got == want, physicalPG)
			}
			// Another application TAG: the db service's configuration is the same.
			env["TAG"] = "app-2"
			p2, err := e2eutil.LoadCompose(dir, env, "", cdvFiles...)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(p.Services["db"])
			b, _ := json.Marshal(p2.Services["db"])
			if string(a) != string(b) {
				t.Errorf("db service changes with TAG:\n%s\n%s", a, b)
			}
			delete(env, "BACKUP_TAG")
			if _, err := e2eutil.LoadCompose(dir, env, "", cdvFiles...); err == nil || !strings.Contains(err.Error(), "BACKUP_TAG") || !strings.Contains(err.Error(), "image-tag.sh") {
				t.Errorf("without BACKUP_TAG: %v, want an error naming it and ops/backup/image-tag.sh", err)
			}
			conf := e2eutil.ReadFile(t, filepath.Join(dir, "docs", "configuration.md"))
			if !strings.Contains(conf, "\n| `BACKUP_TAG` |") {
				t.Errorf("docs/configuration.md has no BACKUP_TAG row")
			}
		})
	}
}
