package generator

import (
	"strings"
	"testing"
	"testing/fstest"
)

func partsTree() fstest.MapFS {
	return fstest.MapFS{
		"compose.yaml.tmpl":            {Data: []byte("services:\n{{ slot \"compose.services\" . }}volumes: {}\n")},
		"Makefile.tmpl":                {Data: []byte(`{{ include (printf "make/%s" .db) . }}`)},
		"_partials/make/postgres.tmpl": {Data: []byte("psql: ; psql {{ .name }}\n")},
		"_partials/make/mariadb.tmpl":  {Data: []byte("mariadb: ; mariadb {{ include \"quoted\" .name }}\n")},
		"_partials/quoted.tmpl":        {Data: []byte(`{{ shellQuote . }}`)},
		// Ordered by file name across components, then by path.
		"components/web/_slots/compose.services/10-web.yaml.tmpl":       {Data: []byte("  web: {}\n")},
		"components/postgres/_slots/compose.services/20-db.yaml.tmpl":   {Data: []byte("  db: {image: postgres}\n")},
		"components/mariadb/_slots/compose.services/20-db.yaml.tmpl":    {Data: []byte("  db: {image: mariadb}\n")},
		"components/backup/_slots/compose.services/30-backup.yaml.tmpl": {Data: []byte("  backup: {name: {{ .name }}}\n")},
		"components/postgres/files/ops/pg.sh":                           {Data: []byte("#!/bin/sh\n")},
	}
}

func partsRules() []Rule {
	return []Rule{
		{Glob: "components/postgres/**", When: `eq .db "postgres"`},
		{Glob: "components/mariadb/**", When: `eq .db "mariadb"`},
		{Glob: "components/postgres/files/**", To: "."},
	}
}

func TestRenderSlotsAndPartials(t *testing.T) {
	files, err := Render(partsTree(), partsRules(), map[string]any{"name": "it's", "db": "mariadb"})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	// Partials and fragments are never written; the disabled component's file is not generated.
	if got := strings.Join(paths, ","); got != "Makefile,compose.yaml" {
		t.Fatalf("paths = %s", got)
	}
	compose, _ := files.Get("compose.yaml")
	want := "services:\n  web: {}\n  db: {image: mariadb}\n  backup: {name: it's}\nvolumes: {}\n"
	if string(compose.Data) != want {
		t.Errorf("compose.yaml:\n%s\nwant:\n%s", compose.Data, want)
	}
	wantSrc := "compose.yaml.tmpl components/web/_slots/compose.services/10-web.yaml.tmpl " +
		"components/mariadb/_slots/compose.services/20-db.yaml.tmpl components/backup/_slots/compose.services/30-backup.yaml.tmpl"
	if got := strings.Join(compose.Sources, " "); got != wantSrc {
		t.Errorf("sources = %s", got)
	}
	files2, err := Render(fstest.MapFS{
		"port.tmpl": {Data: []byte(`{{ slotOne "db.port" . }}`)},
		"components/postgres/_slots/db.port/10.tmpl": {Data: []byte("5432")},
		"components/mariadb/_slots/db.port/10.tmpl":  {Data: []byte("3306")},
	}, partsRules(), map[string]any{"db": "mariadb"})
	if port, _ := files2.Get("port"); err != nil || string(port.Data) != "3306" {
		t.Errorf("slotOne: %q %v", port.Data, err)
	}
	mk, _ := files.Get("Makefile")
	if string(mk.Data) != "mariadb: ; mariadb 'it'\\''s'\n" {
		t.Errorf("Makefile = %q", mk.Data)
	}
	if got := strings.Join(mk.Sources, " "); got != "Makefile.tmpl _partials/make/mariadb.tmpl _partials/quoted.tmpl" {
		t.Errorf("Makefile sources = %s", got)
	}

	files, err = Render(partsTree(), partsRules(), map[string]any{"name": "x", "db": "postgres"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files.Get("ops/pg.sh"); !ok {
		t.Error("component file not moved to the root")
	}
	compose, _ = files.Get("compose.yaml")
	if !strings.Contains(string(compose.Data), "image: postgres") || strings.Contains(string(compose.Data), "mariadb") {
		t.Errorf("postgres compose:\n%s", compose.Data)
	}
}

func TestRenderPartsErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(fstest.MapFS)
		want string
	}{
		{"unknown partial", func(m fstest.MapFS) { m["x.tmpl"] = &fstest.MapFile{Data: []byte(`{{ include "nope" . }}`)} },
			`include "nope": no such partial (have: make/mariadb, make/postgres, quoted)`},
		{"unknown slot", func(m fstest.MapFS) { m["x.tmpl"] = &fstest.MapFile{Data: []byte(`{{ slot "compose.service" . }}`)} },
			`slot "compose.service": no fragment fills it (have: compose.services)`},
		{"duplicate partial", func(m fstest.MapFS) { m["components/web/_partials/quoted.tmpl"] = &fstest.MapFile{Data: []byte("x")} },
			`two partials named "quoted"`},
		{"partial not a template", func(m fstest.MapFS) { m["_partials/x.yaml"] = &fstest.MapFile{Data: []byte("x")} },
			"partial _partials/x.yaml: name it *.tmpl"},
		{"fragment outside a slot folder", func(m fstest.MapFS) { m["_slots/a.tmpl"] = &fstest.MapFile{Data: []byte("x")} },
			"expected _slots/SLOT/FILE.tmpl"},
		{"slotOne with two fragments", func(m fstest.MapFS) {
			m["x.tmpl"] = &fstest.MapFile{Data: []byte(`{{ slotOne "compose.services" . }}`)}
		}, `slot "compose.services": wants exactly one fragment, 3 are in the project`},
		{"slotOne with none", func(m fstest.MapFS) {
			m["x.tmpl"] = &fstest.MapFile{Data: []byte(`{{ slotOne "db.port" . }}`)}
			m["components/mariadb/_slots/db.port/10.tmpl"] = &fstest.MapFile{Data: []byte("3306")}
		}, `slot "db.port": wants exactly one fragment, 0 are in the project ()`},
		{"recursive partial", func(m fstest.MapFS) {
			m["_partials/loop.tmpl"] = &fstest.MapFile{Data: []byte(`{{ include "loop" . }}`)}
			m["x.tmpl"] = &fstest.MapFile{Data: []byte(`{{ include "loop" . }}`)}
		}, "more than 64 nested includes"},
		{"error inside a fragment names it", func(m fstest.MapFS) {
			m["components/web/_slots/compose.services/10-web.yaml.tmpl"] = &fstest.MapFile{Data: []byte("{{ .missing }}")}
		}, "components/web/_slots/compose.services/10-web.yaml.tmpl"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tree := partsTree()
			c.edit(tree)
			_, err := Render(tree, partsRules(), map[string]any{"name": "x", "db": "postgres"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestPart(t *testing.T) {
	for _, c := range []struct{ src, kind, name string }{
		{"a/_partials/b/c.yaml.tmpl", "partial", "b/c.yaml"},
		{"_slots/make.targets/10-x.tmpl", "fragment", "make.targets"},
		{"components/db/files/x.tmpl", "", ""},
		{"docs/_partialsx/y.tmpl", "", ""},
	} {
		kind, name, err := Part(c.src)
		if err != nil || kind != c.kind || name != c.name {
			t.Errorf("Part(%s) = %q %q %v", c.src, kind, name, err)
		}
	}
}
