package adopt

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/internal/check"
	"github.com/opsready/opsready/internal/project"
)

// upgradeLib is the embedded library plus webapp 1.5.99, a test version that extends 1.5.0
// and changes what an adopted project has: a target in opsready.mk, the restic stage of the
// backup image (a fragment) and a new document.
func upgradeLib(t testing.TB) *blueprints.Library {
	t.Helper()
	emb := blueprints.Embedded().FS()
	m := fstest.MapFS{}
	err := fs.WalkDir(emb, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(emb, p)
		if err != nil {
			return err
		}
		m[p] = &fstest.MapFile{Data: b, Mode: 0o644}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	v := "webapp/1.5.99/"
	m[v+"blueprint.yaml"] = &fstest.MapFile{Data: []byte("name: webapp\nversion: 1.5.99\nextends: 1.5.0\ndescription: test\nchangelog: [test]\n")}
	mk := string(m["webapp/1.5.0/components/adopt/files/opsready.mk.tmpl"].Data)
	m[v+"components/adopt/files/opsready.mk.tmpl"] = &fstest.MapFile{Data: []byte(mk + "\nops-version: ## the blueprint version\n\t@echo {{ ._version }}\n")}
	stage := strings.Replace(string(m["webapp/1.5.0/components/adopt/_slots/backup-dockerfile.stages/90-restic.tmpl"].Data), "restic:0.17.3", "restic:0.17.9", 1)
	m[v+"components/adopt/_slots/backup-dockerfile.stages/90-restic.tmpl"] = &fstest.MapFile{Data: []byte(stage)}
	m[v+"components/adopt/files/docs/opsready-upgrades.md.tmpl"] = &fstest.MapFile{Data: []byte("# Upgrades of {{ .name }}\n\nAdopted project {{ ._adopt.project }}.\n")}
	lib := blueprints.New(m)
	return &lib
}

// TestAdoptUpgrade: a project adopted with 1.5.0, edited by the team (a line in a generated
// runbook, a file of theirs where 1.5.99 adds nothing), is upgraded to 1.5.99 like a generated
// one: the new version's changes arrive, in the renamed file too, the team's edit is kept,
// the team's own files are untouched, and the lock keeps the adopt record.
func TestAdoptUpgrade(t *testing.T) {
	t.Parallel()
	lib := upgradeLib(t)
	dir := copyCorpus(t, "nginx-golang-postgres")
	if err := os.WriteFile(filepath.Join(dir, "opsready.mk"), []byte("# the team's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, files, err := check.LoadProject(context.Background(), dir, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := detectFor(p, dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := project.Adopt(project.AdoptOptions{Dir: dir, Detected: pl.Record, Fixed: pl.Fixed, Defaults: true,
		Version: "test", Local: pl.Local, Library: lib, BlueprintVersion: "1.5.0"}); err != nil {
		t.Fatal(err)
	}
	runbook := filepath.Join(dir, "docs/runbooks/postgres-down.md")
	edit := "\nOur on-call phone: +1 555 0100.\n"
	b, err := os.ReadFile(runbook)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(runbook, append(b, edit...), 0o644); err != nil {
		t.Fatal(err)
	}
	before := treeHashes(t, dir)

	res, err := project.Upgrade(project.UpgradeOptions{Dir: dir, To: "1.5.99", Force: true, Version: "test", Library: lib})
	if err != nil {
		t.Fatal(err)
	}
	if res.Conflicts != 0 {
		t.Fatalf("%d conflicts: %+v", res.Conflicts, res.Changes)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if !strings.Contains(read("opsready.opsready.mk"), "ops-version:") {
		t.Errorf("the renamed opsready.opsready.mk did not get 1.5.99's target")
	}
	if read("opsready.mk") != "# the team's\n" {
		t.Errorf("the team's opsready.mk changed")
	}
	if !strings.Contains(read("ops/backup/Dockerfile"), "restic/restic:0.17.9") {
		t.Errorf("the fragment change of 1.5.99 did not reach ops/backup/Dockerfile")
	}
	if !strings.Contains(read("docs/opsready-upgrades.md"), "Adopted project nginx-golang-postgres") {
		t.Errorf("the new document of 1.5.99 is missing or lacks the adopt record: %q", read("docs/opsready-upgrades.md"))
	}
	if !strings.Contains(read("docs/runbooks/postgres-down.md"), edit) {
		t.Errorf("the team's edit of the runbook was lost")
	}
	after := treeHashes(t, dir)
	for p, h := range before {
		if strings.HasPrefix(p, "backend/") || p == "compose.yaml" || strings.HasPrefix(p, "proxy/") || strings.HasPrefix(p, "db/") {
			if after[p] != h {
				t.Errorf("the team's %s changed in the upgrade", p)
			}
		}
	}
	st, err := project.ReadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "1.5.99" {
		t.Errorf("status version %q", st.Version)
	}
	if len(st.Modified) != 1 || st.Modified[0] != "docs/runbooks/postgres-down.md" {
		t.Errorf("status modified %v, want only the edited runbook", st.Modified)
	}
}
