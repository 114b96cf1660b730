package generator

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		glob, name string
		want       bool
	}{
		{"backend/**", "backend/a/b.go", true},
		{"backend/**", "backend", true},
		{"backend/**", "backendx/a", false},
		{"**/*.sh", "ops/smoke/smoke.sh", true},
		{"**/*.sh", "smoke.sh", true},
		{"*.yaml", "compose.yaml", true},
		{"*.yaml", "ops/x.yaml", false},
		{"ops/*/x", "ops/a/x", true},
	} {
		if got := Match(c.glob, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v", c.glob, c.name, got)
		}
	}
}

func TestRender(t *testing.T) {
	fsys := fstest.MapFS{
		"a.txt.tmpl":                           {Data: []byte("name={{ .name }} q={{ shellQuote .name }}\n")},
		"raw.txt":                              {Data: []byte("{{ not rendered }}\n")},
		"run.sh.tmpl":                          {Data: []byte("#!/bin/sh\necho {{ .name }}\n")},
		"bin/tool":                             {Data: []byte("x"), Mode: 0o755},
		"go-src/main.go.tmpl":                  {Data: []byte("package main\nfunc main(){\nprintln( {{ jsonString .name }} )}\n")},
		"py-src/app.py":                        {Data: []byte("print(1)\n")},
		"{{ .name }}/conf.tmpl":                {Data: []byte("x\n")},
		"{{ if eq .db \"x\" }}skip{{ end }}/f": {Data: []byte("x\n")},
	}
	rules := []Rule{
		{Glob: "go-src/**", When: `eq .lang "go"`, To: "src"},
		{Glob: "py-src/**", When: `eq .lang "py"`, To: "src"},
		{Glob: "src/**", Policy: PolicySeed},
	}
	files, err := Render(fsys, rules, map[string]any{"name": "it's", "lang": "go", "db": "pg"})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	want := "a.txt bin/tool it's/conf raw.txt run.sh src/main.go"
	if got := strings.Join(paths, " "); got != want {
		t.Fatalf("paths = %s, want %s", got, want)
	}
	get := func(p string) File { f, _ := files.Get(p); return f }
	if got := string(get("a.txt").Data); got != "name=it's q='it'\\''s'\n" {
		t.Errorf("a.txt = %q", got)
	}
	if got := string(get("raw.txt").Data); got != "{{ not rendered }}\n" {
		t.Errorf("raw.txt was rendered: %q", got)
	}
	if get("run.sh").Mode != 0o755 || get("bin/tool").Mode != 0o755 || get("a.txt").Mode != 0o644 {
		t.Errorf("modes: run.sh %v bin/tool %v a.txt %v", get("run.sh").Mode, get("bin/tool").Mode, get("a.txt").Mode)
	}
	if got := string(get("src/main.go").Data); got != "package main\n\nfunc main() {\n\tprintln(\"it's\")\n}\n" {
		t.Errorf("main.go not gofmt'ed: %q", got)
	}
	if get("src/main.go").Policy != PolicySeed || get("a.txt").Policy != PolicyMerge {
		t.Errorf("policies: %q %q", get("src/main.go").Policy, get("a.txt").Policy)
	}
}

func TestRenderErrors(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"missing key": {"a.tmpl": {Data: []byte("{{ .nope }}")}},
		"bad syntax":  {"a.tmpl": {Data: []byte("{{ if }}")}},
		"bad go":      {"a.go.tmpl": {Data: []byte("package {{ .name }} func(")}},
		"duplicate":   {"a.tmpl": {Data: []byte("x")}, "a": {Data: []byte("y")}},
	} {
		if _, err := Render(fsys, nil, map[string]any{"name": "x"}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRuleCheck(t *testing.T) {
	for _, r := range []Rule{{}, {Glob: "a/*", To: "b"}, {Glob: "a/**", Policy: "sometimes"}, {Glob: "a", When: "{{"}} {
		if err := r.Check(); err == nil {
			t.Errorf("rule %+v passed Check", r)
		}
	}
	if err := (Rule{Glob: "a/**", To: "b", When: `eq .x "y"`, Policy: PolicyManaged}).Check(); err != nil {
		t.Error(err)
	}
}
