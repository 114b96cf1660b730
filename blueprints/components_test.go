package blueprints

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/opsready/opsready/generator"
)

func renderKit(t *testing.T, version string, data map[string]any) (*Blueprint, generator.Files) {
	t.Helper()
	bp, err := New(os.DirFS("testdata/comps")).Open("kit", version)
	if err != nil {
		t.Fatal(err)
	}
	files, err := generator.Render(bp.Files, bp.Rules, data)
	if err != nil {
		t.Fatal(err)
	}
	return bp, files
}

func paths(files generator.Files) string {
	var ps []string
	for _, f := range files {
		ps = append(ps, f.Path+":"+f.Policy)
	}
	return strings.Join(ps, " ")
}

func TestComponents(t *testing.T) {
	bp, files := renderKit(t, "1.0.0", map[string]any{"name": "shop", "db": "pg"})
	// Manifests, partials, fragments and test data are never output; rules are relative to
	// the component's files/ and the version's rules still see output paths.
	if got := paths(files); got != "README.md:seed compose.yaml:merge ops/pg.sh:seed" {
		t.Errorf("files = %s", got)
	}
	compose, _ := files.Get("compose.yaml")
	if string(compose.Data) != "services:\n  app: {image: shop}\n  db: {image: postgres:16}\n" {
		t.Errorf("compose.yaml = %q", compose.Data)
	}
	readme, _ := files.Get("README.md")
	if string(readme.Data) != "# SHOP\n" {
		t.Errorf("README.md = %q", readme.Data)
	}
	var keys, secrets, comps []string
	for _, q := range bp.Questions {
		keys = append(keys, q.Key)
	}
	for _, s := range bp.Secrets {
		secrets = append(secrets, s.Name)
	}
	for _, c := range bp.Components {
		comps = append(comps, c.Name)
	}
	if strings.Join(keys, ",") != "name,db,my_engine" || strings.Join(secrets, ",") != "pg_password" ||
		strings.Join(comps, ",") != "core,db-my,db-pg" {
		t.Errorf("questions %v secrets %v components %v", keys, secrets, comps)
	}

	_, files = renderKit(t, "1.0.0", map[string]any{"name": "shop", "db": "my", "my_engine": "aria"})
	compose, _ = files.Get("compose.yaml")
	if string(compose.Data) != "services:\n  app: {image: shop}\n  db: {image: mariadb:11, engine: aria}\n" {
		t.Errorf("mariadb compose.yaml = %q", compose.Data)
	}
	if _, ok := files.Get("ops/pg.sh"); ok {
		t.Error("a switched-off component's file was generated")
	}
}

// A later version overrides one fragment and adds a component; the shared file is not copied.
func TestComponentsExtend(t *testing.T) {
	bp, files := renderKit(t, "1.1.0", map[string]any{"name": "shop", "db": "pg", "cache": true})
	compose, _ := files.Get("compose.yaml")
	want := "services:\n  app: {image: shop}\n  db: {image: postgres:17}\n  cache: {image: redis:7}\n"
	if string(compose.Data) != want {
		t.Errorf("compose.yaml = %q, want %q", compose.Data, want)
	}
	if len(bp.Components) != 4 || bp.Components[0].Name != "cache" {
		t.Errorf("components: %+v", bp.Components)
	}
	wantSrc := "components/core/files/compose.yaml.tmpl components/core/_slots/compose.services/10-app.yaml.tmpl " +
		"components/db-pg/_slots/compose.services/20-db.yaml.tmpl components/cache/_slots/compose.services/30-cache.yaml.tmpl"
	if got := strings.Join(compose.Sources, " "); got != wantSrc {
		t.Errorf("sources = %s", got)
	}
	origin := New(os.DirFS("testdata/comps")).Origins(bp, compose.Sources)
	if got := strings.Join(origin, " "); !strings.Contains(got, "kit/1.0.0/components/core/files/compose.yaml.tmpl") ||
		!strings.Contains(got, "kit/1.1.0/components/db-pg/_slots/compose.services/20-db.yaml.tmpl") {
		t.Errorf("origins = %s", got)
	}
}

func TestComponentFolderErrors(t *testing.T) {
	base := func() fstest.MapFS {
		return fstest.MapFS{
			"kit/1.0.0/blueprint.yaml": {Data: []byte("name: kit\nversion: 1.0.0\ndescription: d\nchangelog: [x]\n" +
				"questions:\n  - {key: name, title: Name, type: input, default: x}\n")},
			"kit/1.0.0/components/a/component.yaml": {Data: []byte("description: a\n")},
		}
	}
	for _, c := range []struct {
		name string
		add  map[string]string
		want string
	}{
		{"stray file in a component", map[string]string{"kit/1.0.0/components/a/notes.txt": "x"}, "a component folder holds only"},
		{"files/components is reserved", map[string]string{"kit/1.0.0/files/components/x": "x"}, "reserved for components"},
		{"bad when", map[string]string{"kit/1.0.0/components/a/component.yaml": "when: eq .db (\n"}, "components/a/component.yaml: when"},
		{"unknown key", map[string]string{"kit/1.0.0/components/a/component.yaml": "colour: red\n"}, "field colour not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := base()
			for p, d := range c.add {
				m[p] = &fstest.MapFile{Data: []byte(d)}
			}
			_, err := New(m).Open("kit", "")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}
