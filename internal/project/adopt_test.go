package project

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/lock"
)

// sampleAdopts are adopt records of a PostgreSQL project, a MariaDB one with Redis and a data
// volume, and one without a database.
func sampleAdopts() []*lock.Adopt {
	svc := func(n, role, engine string) lock.AdoptService {
		return lock.AdoptService{Name: n, Role: role, Engine: engine, Networks: []string{"default"}, AddRestart: true, AddLogging: true, AddLimits: true}
	}
	return []*lock.Adopt{
		{ComposeFiles: []string{"compose.yaml"}, Project: "pg", HealthPath: "/healthz",
			Services: []lock.AdoptService{svc("api", "backend", ""), svc("db", "db", "postgres")},
			DB:       &lock.AdoptDB{Service: "db", Engine: "postgres", Image: "postgres:17.6", Networks: []string{"default"}, User: "postgres", Database: "app", PasswordFile: "db/password.txt"}},
		{ComposeFiles: []string{"docker-compose.yml"}, Project: "maria", HealthPath: "/",
			Services:    []lock.AdoptService{svc("cache", "cache", "redis"), svc("web", "backend", ""), svc("zdb", "db", "mariadb")},
			DB:          &lock.AdoptDB{Service: "zdb", Engine: "mariadb", Image: "mariadb:10.11", Networks: []string{"back"}, User: "root", Database: "wp", PasswordFile: "secrets/db_password"},
			Cache:       &lock.AdoptCache{Service: "cache", Image: "redis:7.4", Networks: []string{"default"}},
			DataVolumes: []lock.AdoptVolume{{Name: "uploads", Service: "web", Target: "/var/www/html"}}},
		{ComposeFiles: []string{"compose.yaml"}, Project: "none", HealthPath: "/",
			Services:    []lock.AdoptService{svc("mongo", "db", "mongodb"), svc("web", "backend", "")},
			Unsupported: []string{"service mongo: MongoDB"}},
	}
}

// TestAdpNewRefusesAdoptOnly: `new --db none` is refused with the flag and the values new
// allows, and nothing is written.
func TestAdpNewRefusesAdoptOnly(t *testing.T) {
	dir := t.TempDir() + "/shop"
	_, err := Create(CreateOptions{Dir: dir, Set: map[string]string{"db": "none"}, Defaults: true, Version: "test"})
	var ie InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "`--db none` is only for `opsready adopt`") || !strings.Contains(err.Error(), "mariadb, postgres") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused new left %s behind", dir)
	}
}

// TestAdpFreeName: adopt's name for a file the team has is .opsready before the extension,
// numbered when that is taken too.
func TestAdpFreeName(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"Makefile", "compose.prod.opsready.yaml"} {
		if err := os.WriteFile(dir+"/"+p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for in, want := range map[string]string{
		"compose.prod.yaml": "compose.prod.opsready-2.yaml",
		"Makefile":          "Makefile.opsready",
		".gitignore":        ".gitignore.opsready",
		"docs/a.md":         "docs/a.opsready.md",
	} {
		if got := freeAdoptName(dir, in, map[string]bool{}); got != want {
			t.Errorf("freeAdoptName(%s) = %s, want %s", in, got, want)
		}
	}
	if got := freeAdoptName(dir, "docs/a.md", map[string]bool{"docs/a.opsready.md": true}); got != "docs/a.opsready-2.md" {
		t.Errorf("a name planned for another file: %s", got)
	}
}
