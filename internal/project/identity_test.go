package project

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/internal/lock"
	"github.com/opsready/opsready/prompts"
)

var (
	identityCases = flag.Int("identity-cases", 60, "answer sets rendered by TestComponentsLayoutIsByteIdentical")
	identitySeed  = flag.Uint64("identity-seed", 1, "seed of those answer sets (replay a failure with its seed)")
)

// identityPairs are the versions whose output must be equal but for the version in the lock
// file: a re-layout of the blueprint sources, not a change of what they generate.
var identityPairs = [][2]string{{"1.3.1", "1.4.0"}}

// identitySets picks, for every select, multiselect and confirm question, a random allowed
// value: the answer sets that decide which files and which lines a project gets.
func identitySets(qs []prompts.Question, r *rand.Rand) map[string]string {
	set := map[string]string{}
	for _, q := range qs {
		switch q.Type {
		case "select":
			vals := q.OfferedValues() // adopt_only values are adopt's (TestEveryPartIsUsed adopts too)
			set[q.Key] = vals[r.IntN(len(vals))]
		case "confirm":
			set[q.Key] = fmt.Sprint(r.IntN(2) == 1)
		case "multiselect":
			var pick []string
			for _, o := range q.Options {
				if r.IntN(2) == 1 {
					pick = append(pick, o.Value)
				}
			}
			if len(pick) == 0 {
				pick = []string{q.Options[0].Value}
			}
			set[q.Key] = strings.Join(pick, ",")
		case "number":
			// Half the time the default; else a bound or a value between (an RPO of 1 hour
			// that a daily backup misses, a retention of 0 months).
			if lo, hi := q.Validate.Min, q.Validate.Max; lo != nil && hi != nil && r.IntN(2) == 1 {
				set[q.Key] = fmt.Sprint([]int{*lo, *hi, *lo + r.IntN(*hi-*lo+1)}[r.IntN(3)])
			}
		}
	}
	// The one required answer that has no default.
	set["telegram_chat_id"] = "-1001234567890"
	return set
}

func TestComponentsLayoutIsByteIdentical(t *testing.T) {
	lib := blueprints.Embedded()
	for _, pair := range identityPairs {
		older, err := lib.Open("webapp", pair[0])
		if err != nil {
			t.Fatal(err)
		}
		newer, err := lib.Open("webapp", pair[1])
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(*identitySeed, 0))
		for i := range *identityCases {
			set := identitySets(newer.Questions, r)
			if i == 0 {
				set = map[string]string{"telegram_chat_id": "-1001234567890"} // the defaults
			}
			answers, err := ResolveAnswers(newer, AnswerInputs{Set: set, Defaults: true, Context: map[string]any{"_dir": "same"}})
			if err != nil {
				t.Fatalf("case %d %v: %v", i, set, err)
			}
			a, err := RenderProject(older, answers, "test")
			if err != nil {
				t.Fatal(err)
			}
			b, err := RenderProject(newer, answers, "test")
			if err != nil {
				t.Fatal(err)
			}
			if diff := treeDiff(a, b, pair); diff != "" {
				t.Fatalf("%s vs %s, case %d (seed %d) %v:\n%s", pair[0], pair[1], i, *identitySeed, set, diff)
			}
		}
	}
}

// treeDiff describes how two rendered trees differ, ignoring the version line of the lock file.
func treeDiff(a, b generator.Files, pair [2]string) string {
	var out []string
	idx := map[string]generator.File{}
	for _, f := range b {
		idx[f.Path] = f
	}
	for _, f := range a {
		g, ok := idx[f.Path]
		delete(idx, f.Path)
		switch {
		case !ok:
			out = append(out, "only in "+pair[0]+": "+f.Path)
		case f.Path == lock.FileName:
			want := bytes.Replace(f.Data, []byte("version: "+pair[0]+"\n"), []byte("version: "+pair[1]+"\n"), 1)
			if !bytes.Equal(want, g.Data) {
				out = append(out, "lock file differs beyond the version")
			}
		case !bytes.Equal(f.Data, g.Data):
			out = append(out, "content differs: "+f.Path)
		case f.Mode != g.Mode || f.Policy != g.Policy:
			out = append(out, fmt.Sprintf("%s: mode/policy %v %s, %v %s", f.Path, f.Mode, f.Policy, g.Mode, g.Policy))
		}
	}
	for p := range idx {
		out = append(out, "only in "+pair[1]+": "+p)
	}
	return strings.Join(out, "\n")
}

// Upgrading a project from 1.3.1 to 1.4.0 writes nothing but the lock file, for every golden
// case of the newest version and a few random answer sets.
func TestComponentsLayoutUpgradeIsANoop(t *testing.T) {
	lib := blueprints.Embedded()
	newer, err := lib.Open("webapp", "1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	cases, err := filepath.Glob("../../golden/webapp/newest/*/answers.yaml")
	cases = append(cases, "../../golden/webapp/1.4.0/defaults/answers.yaml")
	if err != nil || len(cases) < 10 {
		t.Fatalf("golden cases: %v %v", cases, err)
	}
	older, err := lib.Open("webapp", "1.3.1")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(*identitySeed, 7))
	for i := range len(cases) + 3 {
		opts := CreateOptions{Blueprint: "webapp@1.3.1", Defaults: true, Git: true, Version: "test"}
		name := "random"
		if i < len(cases) {
			// The newest cases may answer questions 1.3.1 does not ask (db_replica): those are left out.
			opts.Set, name = idAnswersFor(t, older, cases[i]), filepath.Base(filepath.Dir(cases[i]))
		} else {
			opts.Set = identitySets(newer.Questions, r)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts.Dir = filepath.Join(t.TempDir(), "p")
			if _, err := Create(opts); err != nil {
				t.Fatalf("%v: %v", opts.Set, err)
			}
			res, err := Upgrade(UpgradeOptions{Dir: opts.Dir, To: "1.4.0", Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range res.Changes {
				if c.Action != "unchanged" && c.Path != lock.FileName {
					t.Errorf("%v: %s %s", opts.Set, c.Action, c.Path)
				}
			}
			for _, line := range strings.Split(strings.TrimSpace(gitCmd(t, opts.Dir, "status", "--porcelain")), "\n") {
				if !strings.HasSuffix(line, " "+lock.FileName) {
					t.Errorf("changed by the upgrade: %q", line)
				}
			}
		})
	}
}

// Every partial and slot fragment of the newest version is rendered by some answer set: a
// fragment under a misspelt slot folder, or a partial nothing includes, is dead text.
func TestEveryPartIsUsed(t *testing.T) {
	lib := blueprints.Embedded()
	bp, err := lib.Open("webapp", "")
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]bool{}
	_ = fs.WalkDir(bp.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if kind, _, _ := generator.Part(p); err == nil && kind != "" {
			parts[p] = false
		}
		return err
	})
	r := rand.New(rand.NewPCG(*identitySeed, 3))
	for i := 0; i < *identityCases && slices.Contains(slices.Collect(maps.Values(parts)), false); i++ {
		answers, err := ResolveAnswers(bp, AnswerInputs{Set: identitySets(bp.Questions, r), Defaults: true, Context: map[string]any{"_dir": "used"}})
		if err != nil {
			t.Fatal(err)
		}
		files, err := generator.Render(bp.Files, bp.Rules, TemplateData(bp, answers))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			for _, s := range f.Sources {
				if _, ok := parts[s]; ok {
					parts[s] = true
				}
			}
		}
	}
	// What only an adopted project renders: the adopt component's fragments, db-none's.
	for _, ad := range sampleAdopts() {
		set := map[string]string{"db": "none", "cache": "none", "frontend": "none", "tls": "none"}
		if ad.DB != nil {
			set["db"] = ad.DB.Engine
		}
		if ad.Cache != nil {
			set["cache"] = "redis"
		}
		answers, err := ResolveAnswers(bp, AnswerInputs{Set: set, Defaults: true, Context: map[string]any{"_dir": "used"}})
		if err != nil {
			t.Fatal(err)
		}
		files, err := generator.Render(bp.Files, bp.Rules, adoptData(bp, answers, ad))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			for _, s := range f.Sources {
				if _, ok := parts[s]; ok {
					parts[s] = true
				}
			}
		}
	}
	for p, used := range parts {
		if !used {
			t.Errorf("%s@%s: %s is never rendered (in %d answer sets)", bp.Name, bp.Version, p, *identityCases)
		}
	}
}

// idAnswersFor reads an answers file as --set values, keeping only the keys bp asks.
func idAnswersFor(t *testing.T, bp *blueprints.Blueprint, file string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	set := map[string]string{}
	for k, v := range m {
		if _, err := prompts.Find(bp.Questions, k); err != nil {
			continue
		}
		if list, ok := v.([]any); ok {
			parts := make([]string, len(list))
			for i, x := range list {
				parts[i] = fmt.Sprint(x)
			}
			set[k] = strings.Join(parts, ",")
			continue
		}
		set[k] = fmt.Sprint(v)
	}
	return set
}
