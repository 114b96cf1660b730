package blueprints

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"sort"
	"strings"
	"testing"
)

func TestEveryEmbeddedVersionLoads(t *testing.T) {
	lib := Embedded()
	names, err := lib.Names()
	if err != nil || len(names) == 0 {
		t.Fatalf("names: %v %v", names, err)
	}
	for _, n := range names {
		vs, err := lib.Versions(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			bp, err := lib.Open(n, v)
			if err != nil {
				t.Errorf("%s@%s: %v", n, v, err)
				continue
			}
			if len(bp.Questions) == 0 || len(bp.History) == 0 {
				t.Errorf("%s@%s: no questions or changelog", n, v)
			}
			// No literal go.mod in a template tree: it would cut the tree out of the embed.
			_ = fs.WalkDir(bp.Files, ".", func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && (strings.HasSuffix(p, "/go.mod") || p == "go.mod") {
					t.Errorf("%s@%s: literal %s; name it go.mod.tmpl", n, v, p)
				}
				return err
			})
		}
	}
}

func TestExtends(t *testing.T) {
	lib := New(os.DirFS("testdata/lib"))
	bp, err := lib.Open("demo", "")
	if err != nil {
		t.Fatal(err)
	}
	if bp.Version != "1.1.0" {
		t.Errorf("newest = %s", bp.Version)
	}
	var keys []string
	for _, q := range bp.Questions {
		keys = append(keys, q.Key)
	}
	if strings.Join(keys, ",") != "name,db,cache" || bp.Questions[1].Title != "Database" || len(bp.Questions[1].Options) != 3 {
		t.Errorf("questions not merged: %+v", bp.Questions)
	}
	var files []string
	_ = fs.WalkDir(bp.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	sort.Strings(files)
	if strings.Join(files, ",") != "app/main.txt,extra.txt,readme.txt.tmpl" {
		t.Errorf("files = %v", files)
	}
	data, _ := fs.ReadFile(bp.Files, "readme.txt.tmpl")
	if string(data) != "v2 {{ .name }}\n" {
		t.Errorf("child file does not override: %q", data)
	}
	if len(bp.Rules) != 2 || bp.History[0].Version != "1.1.0" || bp.History[1].Version != "1.0.0" {
		t.Errorf("rules %v history %v", bp.Rules, bp.History)
	}
	if _, err := lib.Open("demo", "9.9.9"); err == nil || !strings.Contains(err.Error(), "versions: 1.0.0, 1.1.0") {
		t.Errorf("unknown version: %v", err)
	}
	if _, err := lib.Open("dmeo", ""); err == nil || !strings.Contains(err.Error(), `did you mean "demo"`) {
		t.Errorf("unknown blueprint: %v", err)
	}
}

func TestSemver(t *testing.T) {
	if CompareSemver("1.10.0", "1.9.0") <= 0 || CompareSemver("1.0.0", "1.0.0") != 0 {
		t.Error("semver order")
	}
	for _, bad := range []string{"1.0", "v1.0.0", "1.01.0", "1.0.0-rc1"} {
		if _, err := ParseSemver(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

// released pins the content of every released version. A released version is immutable:
// change nothing under it; make a new version that extends it instead.
var released = map[string]string{
	"webapp@1.0.0": "e95f7aeabd0ce44ae59b313163c6aa7a69366b3b03846dd5d390d40866483b12",
	"webapp@1.1.0": "373619dbe0245857619c75fbe8494c3bbcc5cc4d099a9bc6733478e50822bfb4",
	"webapp@1.2.0": "b2f16f3277b3a16e0b47296baea588808f18606bdd4a2d03f179d3b5fd5e8580",
	"webapp@1.3.0": "98fc4168f6fdb1d2913f8119367b95387d7785b7176c31f969379edaa444563e",
	"webapp@1.3.1": "449b3c5a79b462c21304adce419ada800600e007b92c1f8bb1431fb12a97758b",
	"webapp@1.4.0": "00fd0ed15c661fea2f6067c65d994d600f32d08b7c35052cda7ac1f38e7fd19e",
	"webapp@1.5.0": "b62eab0e0e31bbcba365e79072cf892ff8b4de280ba7573cfd5ebc3396d1578b",
}

func TestReleasedVersionsAreUnchanged(t *testing.T) {
	// Every version but the newest is released: a version another one extends can no longer change.
	names, _ := Embedded().Names()
	for _, n := range names {
		vs, _ := Embedded().Versions(n)
		for _, v := range vs[:len(vs)-1] {
			if _, ok := released[n+"@"+v]; !ok {
				h, _ := versionHash(Embedded().FS(), n+"/"+v)
				t.Errorf("%s@%s is not the newest version but has no pinned hash in released (its hash now: %s)", n, v, h)
			}
		}
	}
	for ref, want := range released {
		name, version := ParseRef(ref)
		got, err := versionHash(Embedded().FS(), name+"/"+version)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: content hash %s, pinned %s: released versions are immutable; put changes in a new version", ref, got, want)
		}
	}
}

// versionHash hashes every path and content below dir, in path order.
func versionHash(fsys fs.FS, dir string) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		h.Write([]byte(p + "\x00" + hex.EncodeToString(sum[:]) + "\n"))
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}
