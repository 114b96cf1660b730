package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSplitStatements(t *testing.T) {
	src := `-- 0002: an example; with a semicolon in the comment
CREATE TABLE a (
    id INT -- trailing comments stay
);

CREATE INDEX a_id ON a (id);
INSERT INTO a VALUES (1)`
	want := []string{
		"CREATE TABLE a (\n    id INT -- trailing comments stay\n)",
		"CREATE INDEX a_id ON a (id)",
		"INSERT INTO a VALUES (1)",
	}
	if got := splitStatements(src); !reflect.DeepEqual(got, want) {
		t.Errorf("splitStatements() = %q, want %q", got, want)
	}
	if got := splitStatements("-- only a comment\n\n"); len(got) != 0 {
		t.Errorf("splitStatements(comment) = %q, want none", got)
	}
}

func TestReadMigrationsInNameOrder(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"0010_c.sql", "0002_b.sql", "0001_a.sql", "README.md"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := readMigrations(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.version)
	}
	if want := []string{"0001_a", "0002_b", "0010_c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("versions = %v, want %v", got, want)
	}
	if _, err := readMigrations(filepath.Join(dir, "missing")); err == nil {
		t.Error("readMigrations(missing dir) succeeded")
	}
}

func TestShippedMigrationsParse(t *testing.T) {
	ms, err := readMigrations("migrations")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations in ./migrations")
	}
	for _, m := range ms {
		src, err := os.ReadFile(m.path)
		if err != nil {
			t.Fatal(err)
		}
		if len(splitStatements(string(src))) == 0 {
			t.Errorf("%s holds no statement", m.path)
		}
	}
}

func TestMigrationsDir(t *testing.T) {
	if got := migrationsDir("/srv/m"); got != "/srv/m" {
		t.Errorf("migrationsDir(/srv/m) = %q", got)
	}
	// "migrations" next to the test binary when there is one, else ./migrations.
	if got := migrationsDir(""); filepath.Base(got) != "migrations" {
		t.Errorf(`migrationsDir("") = %q, want a directory named migrations`, got)
	}
}
