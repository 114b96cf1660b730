package generator

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
)

// spdTree is a tree of 40 files using every kind of template Render knows: partials, slots,
// a define used in its own file, path templates, a Go file, a script, a copied file.
func spdTree() fstest.MapFS {
	t := fstest.MapFS{
		"_partials/hello.tmpl":          {Data: []byte(`hello {{ .name }}{{ include "inner" . }}`)},
		"_partials/inner.tmpl":          {Data: []byte(`!`)},
		"x/_slots/list/10-a.tmpl":       {Data: []byte("a={{ .name }}\n")},
		"y/_slots/list/20-b.tmpl":       {Data: []byte(`b={{ include "inner" . }}` + "\n")},
		"own.txt.tmpl":                  {Data: []byte(`{{ define "own: x" }}[{{ . }}]{{ end }}{{ template "own: x" .name }}`)},
		"{{ .name }}/conf.tmpl":         {Data: []byte("{{ slot \"list\" . }}")},
		"main.go.tmpl":                  {Data: []byte("package main\nfunc main(){\nprintln( {{ jsonString .name }} )}\n")},
		"run.sh.tmpl":                   {Data: []byte("#!/bin/sh\necho {{ .name }}\n")},
		"bin/tool":                      {Data: []byte("x"), Mode: 0o755},
		"skip/{{ if false }}x{{ end }}": {Data: []byte("gone")},
	}
	for i := range 30 {
		t[fmt.Sprintf("d%d/f.txt.tmpl", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(`%d {{ include "hello" . }} {{ sortAlpha .list | join "," }}`, i))}
	}
	return t
}

// spdRenderBoth renders fsys serially and with renderParallel, each with its own copy of
// data (a template may sort a list of it); ok says whether renderParallel took the tree.
func spdRenderBoth(t *testing.T, fsys fs.FS, data map[string]any) (serial, par Files, serr error, ok bool) {
	t.Helper()
	own := func() map[string]any {
		c, ok := copyData(data)
		if !ok {
			return data
		}
		return c.(map[string]any)
	}
	r, regular, err := newRenderer(fsys, nil, own())
	if err != nil {
		t.Fatal(err)
	}
	serial, serr = r.renderSerial(regular)
	r, regular, err = newRenderer(fsys, nil, own())
	if err != nil {
		t.Fatal(err)
	}
	par, ok = r.renderParallel(regular)
	return serial, par, serr, ok
}

func spdSetProcs(t *testing.T, n int) {
	old := runtime.GOMAXPROCS(n)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
}

func TestSpdRenderParallelMatchesSerial(t *testing.T) {
	spdSetProcs(t, 4)
	data := map[string]any{"name": "it's", "list": []string{"a", "b"}, "opts": map[string]any{"x": []any{"1", 2}}}
	serial, par, err, ok := spdRenderBoth(t, spdTree(), data)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatal("renderParallel refused a tree whose files are independent")
	}
	if !reflect.DeepEqual(serial, par) {
		t.Errorf("parallel render differs:\nserial %+v\nparallel %+v", serial, par)
	}
	if f, _ := par.Get("own.txt"); string(f.Data) != "[it's]" {
		t.Errorf("own.txt = %q", f.Data)
	}
	if !reflect.DeepEqual(data["list"], []string{"a", "b"}) {
		t.Errorf("data changed: %v", data["list"])
	}
}

// Whatever makes the order of files matter sends Render to the serial path, which gives
// exactly what it gave before.
func TestSpdRenderParallelRefuses(t *testing.T) {
	spdSetProcs(t, 4)
	for _, c := range []struct {
		name  string
		files map[string]string
		data  map[string]any
	}{
		{"define used by a later file", map[string]string{"a.tmpl": `{{ define "shared" }}x{{ end }}`, "b.tmpl": `{{ template "shared" }}`}, nil},
		{"define used by an earlier file", map[string]string{"b.tmpl": `{{ define "shared" }}x{{ end }}`, "a.tmpl": `{{ template "shared" }}`}, nil},
		{"two files define one name", map[string]string{"a.tmpl": `{{ define "n" }}a{{ end }}{{ template "n" }}`, "b.tmpl": `{{ define "n" }}b{{ end }}{{ template "n" }}`}, nil},
		{"a file calls another by its path", map[string]string{"a.tmpl": `x`, "b.tmpl": `{{ template "a.tmpl" }}`}, nil},
		{"a template changes the data", map[string]string{"a.tmpl": `{{ $_ := set . "k" "v" }}`, "b.tmpl": `{{ .k }}`}, map[string]any{"k": "0"}},
		{"sortAlpha of an unsorted list in the data", map[string]string{"a.tmpl": `{{ sortAlpha .l }}`, "b.tmpl": `{{ .l }}`}, map[string]any{"l": []string{"b", "a"}}},
		{"a partial calls what a file defines", map[string]string{"_partials/p.tmpl": `{{ template "d" }}`, "a.tmpl": `{{ define "d" }}x{{ end }}`, "b.tmpl": `{{ include "p" . }}`}, nil},
		{"a file fails", map[string]string{"a.tmpl": `{{ .missing }}`}, nil},
		{"data it cannot copy", map[string]string{"a.tmpl": `x`}, map[string]any{"p": &struct{}{}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for i := range 40 {
				fsys[fmt.Sprintf("pad/%02d.txt", i)] = &fstest.MapFile{Data: []byte("pad")}
			}
			for p, d := range c.files {
				fsys[p] = &fstest.MapFile{Data: []byte(d)}
			}
			data := c.data
			if data == nil {
				data = map[string]any{}
			}
			if _, _, _, ok := spdRenderBoth(t, fsys, data); ok {
				t.Errorf("renderParallel took it")
			}
		})
	}
}

// With one processor, or a few files, Render stays on one goroutine.
func TestSpdRenderParallelNeedsWork(t *testing.T) {
	spdSetProcs(t, 1)
	if _, _, _, ok := spdRenderBoth(t, spdTree(), map[string]any{"name": "n", "list": []string{}}); ok {
		t.Error("renderParallel ran with GOMAXPROCS=1")
	}
}

// sourceFiles lists a MapFS in fs.WalkDir's order.
func TestSpdSourceFilesWalkOrder(t *testing.T) {
	names := []string{"a.txt", "a/b", "a-b/c", "a/b.c/d", "a/b/c", "ab", "A/x", "a/-", "a/.x", "z", "é/x", "a b/c", ".hidden/x"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		var segs []string
		for range 1 + r.IntN(4) {
			segs = append(segs, []string{"a", "b", "a.b", "a-b", "_", "x.tmpl", "{{ .n }}"}[r.IntN(7)]+fmt.Sprint(r.IntN(3)))
		}
		names = append(names, strings.Join(segs, "/")+fmt.Sprintf(".f%d", i))
	}
	m := fstest.MapFS{}
	for _, n := range names {
		m[n] = &fstest.MapFile{Data: []byte(n)}
	}
	m["dir"] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	got, err := sourceFiles(m)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	if err := fs.WalkDir(m, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			want = append(want, p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sourceFiles:\n%q\nfs.WalkDir:\n%q", got, want)
	}
	if _, ok := mapFiles(fstest.MapFS{"a": {}, "a/b": {}}); ok {
		t.Error("a file that is also a folder was listed, not walked")
	}
}

// The compiled rules match as Match does.
func TestSpdCompiledRulesMatch(t *testing.T) {
	globs := []string{"backend/**", "**/*.sh", "*.yaml", "ops/*/x", "**", "a/**/b", "a/[bc]/d", `a\*b`, "components/x/files/**", "**/_slots/**"}
	names := []string{"backend/a/b.go", "backend", "backendx/a", "ops/smoke/smoke.sh", "smoke.sh", "compose.yaml", "ops/x.yaml",
		"ops/a/x", "a/b", "a/x/y/b", "a/c/d", "a*b", "components/x/files/a", "components/x/files", "p/_slots/s/f.tmpl", ""}
	for _, g := range globs {
		rs := compileRules([]Rule{{Glob: g}})
		for _, n := range names {
			if got, want := matchCompiled(rs[0].segs, rs[0].literal, strings.Split(n, "/")), Match(g, n); got != want {
				t.Errorf("compiled %q on %q = %v, Match = %v", g, n, got, want)
			}
		}
	}
}
