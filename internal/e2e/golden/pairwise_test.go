package golden

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"testing"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/prompts"
)

// valueOnly names the select questions whose value is copied into the output without
// choosing what is generated: every value must appear in some case, but pairs with other
// questions add nothing.
var valueOnly = map[string]map[string]string{
	"webapp": {"backup_full_weekday": "names the day of the full backup in schedules and documents"},
}

// factor is one dimension of the pairwise check: a select or confirm question, or one option of
// a multiselect question (chosen or not).
type factor struct {
	name   string
	values []string
	of     func(answers map[string]any) string
	q      prompts.Question
}

// factors lists the questions of bp that choose what is generated.
func factors(t *testing.T, bp *blueprints.Blueprint) []factor {
	t.Helper()
	var fs []factor
	for _, q := range bp.Questions {
		if _, ok := valueOnly[bp.Name][q.Key]; ok {
			continue
		}
		key := q.Key
		if q.Type != prompts.TypeSelect && q.Type != prompts.TypeConfirm && q.Type != prompts.TypeMultiSelect {
			continue
		}
		// A conditional question has no answer where it is not asked (of gives ""); pairs with
		// it are needed only where it is asked (possible, below).
		switch q.Type {
		case prompts.TypeSelect:
			// Values only `opsready adopt` gives are not `new`'s to pair (internal/e2e/adopt has them).
			var vals []string
			for _, o := range q.Options {
				if !o.AdoptOnly {
					vals = append(vals, o.Value)
				}
			}
			fs = append(fs, factor{key, vals, func(a map[string]any) string { return answerString(a, key) }, q})
		case prompts.TypeConfirm:
			fs = append(fs, factor{key, []string{"true", "false"}, func(a map[string]any) string { return answerString(a, key) }, q})
		case prompts.TypeMultiSelect:
			for _, o := range q.OptionValues() {
				fs = append(fs, factor{key + " has " + o, []string{"yes", "no"}, func(a map[string]any) string {
					list, _ := a[key].([]string)
					if slices.Contains(list, o) {
						return "yes"
					}
					return "no"
				}, q})
			}
		}
	}
	return fs
}

// TestGldPairwise: the cases rendered at the newest version (the case set and the defaults
// case) hold every pair of values of any two questions that choose what is generated, and
// every value of the value-only questions.
func TestGldPairwise(t *testing.T) {
	byBlueprint := map[string][]goldenCase{}
	for _, c := range goldenCases(t) {
		byBlueprint[c.Blueprint] = append(byBlueprint[c.Blueprint], c)
	}
	for name, all := range byBlueprint {
		newest, err := blueprints.Embedded().Latest(name)
		must(t, err)
		bp, err := blueprints.Embedded().Open(name, newest)
		must(t, err)
		var answers []map[string]any
		for _, c := range all {
			if c.Version != newest {
				continue
			}
			a, err := resolveCase(bp, c)
			if err != nil {
				t.Fatalf("%s: %v", c.Dir, err)
			}
			answers = append(answers, a)
		}
		fs := factors(t, bp)
		base, err := resolveCase(bp, goldenCase{Blueprint: name, Version: newest, Name: defaultsCase})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) < 2 {
			t.Fatalf("%s@%s: %d factors; nothing to pair", name, newest, len(fs))
		}
		var missing []string
		pairs := 0
		for i, f := range fs {
			for _, g := range fs[i+1:] {
				seen := map[[2]string]bool{}
				for _, a := range answers {
					seen[[2]string{f.of(a), g.of(a)}] = true
				}
				for _, x := range f.values {
					for _, y := range g.values {
						if !possible(t, base, f, x, g, y) {
							continue
						}
						pairs++
						if !seen[[2]string{x, y}] {
							missing = append(missing, fmt.Sprintf("%s=%s with %s=%s", f.name, x, g.name, y))
						}
					}
				}
			}
		}
		sort.Strings(missing)
		for _, m := range missing {
			t.Errorf("%s@%s: no golden case has %s", name, newest, m)
		}
		for key, why := range valueOnly[name] {
			q, err := prompts.Find(bp.Questions, key)
			if err != nil {
				t.Fatalf("valueOnly %s (%s): %v", key, why, err)
			}
			for _, v := range q.OptionValues() {
				if !slices.ContainsFunc(answers, func(a map[string]any) bool { return fmt.Sprint(a[key]) == v }) {
					t.Errorf("%s@%s: no golden case has %s=%s", name, newest, key, v)
				}
			}
		}
		t.Logf("%s@%s: %d cases, %d factors, %d pairs, %d missing", name, newest, len(answers), len(fs), pairs, len(missing))
	}
}

func answerString(a map[string]any, key string) string {
	v, ok := a[key]
	if !ok {
		return "" // not asked
	}
	return fmt.Sprint(v)
}

// possible says whether f=x and g=y can be answered together: with every other answer at its
// default, each of them that is conditional is asked. (A pair that needs other non-default
// answers to be asked is not required; no question of webapp has one.)
func possible(t *testing.T, base map[string]any, f factor, x string, g factor, y string) bool {
	t.Helper()
	if f.q.When == "" && g.q.When == "" {
		return true
	}
	data := maps.Clone(base)
	for _, fv := range []struct {
		f factor
		v string
	}{{f, x}, {g, y}} {
		if fv.f.q.Type == prompts.TypeMultiSelect {
			continue // options of a multiselect are not conditions of any question here
		}
		v, err := fv.f.q.Parse(fv.v)
		if err != nil {
			t.Fatalf("%s=%s: %v", fv.f.name, fv.v, err)
		}
		data[fv.f.q.Key] = v
	}
	for _, c := range []factor{f, g} {
		if c.q.When == "" {
			continue
		}
		asked, err := generator.EvalBool(c.q.When, data)
		if err != nil {
			t.Fatalf("%s: when %s: %v", c.name, c.q.When, err)
		}
		if !asked {
			return false
		}
	}
	return true
}
