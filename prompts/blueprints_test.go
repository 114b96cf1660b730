package prompts_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/prompts"
)

// notForPeople are bits of template and regular-expression syntax that help must not show.
var notForPeople = []string{"{{", "}}", "^", "$", `\d`, `\.`, "[0-9", "[a-z", "[A-Z", "(?", ".*", "]+", "]{"}

// templateWords are a template's field references (.db) and comparisons (eq .db "x").
var templateWords = regexp.MustCompile(`(^|[\s(])\.[a-z_][a-z0-9_]*([\s)"]|$)|\b(eq|ne|has)\s+[".(]|\bdefault "[^"]*" [.(]|dnsLabel`)

// TestHlpEveryQuestionReadsAsWords: in every embedded blueprint version, what help says of
// each question (allowed values, default, condition) has no expression in it, and every
// inline pattern and condition is known to the translation rather than left to a fallback.
func TestHlpEveryQuestionReadsAsWords(t *testing.T) {
	lib := blueprints.Embedded()
	n := 0
	for _, ref := range allVersions(t, lib) {
		name, version := ref[0], ref[1]
		bp, err := lib.Open(name, version)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range bp.Questions {
			n++
			where := fmt.Sprintf("%s@%s %s", name, version, q.Key)
			texts := map[string]string{"allowed": q.Allowed(), "default": prompts.DescribeDefault(q), "value name": q.ValueName()}
			if q.When != "" {
				texts["when"] = prompts.DescribeWhen(q.When)
				if texts["when"] == prompts.WhenFallback {
					t.Errorf("%s: condition %q is not translated", where, q.When)
				}
			}
			if texts["allowed"] == prompts.PatternHelp {
				t.Errorf("%s: pattern %q has no description", where, q.Validate.Pattern)
			}
			if strings.Contains(texts["default"], "computed from other answers") {
				t.Errorf("%s: default %q is not translated", where, q.Default)
			}
			for what, s := range texts {
				for _, bad := range notForPeople {
					if strings.Contains(s, bad) {
						t.Errorf("%s: %s %q shows %q", where, what, s, bad)
					}
				}
				if m := templateWords.FindString(s); m != "" {
					t.Errorf("%s: %s %q shows %q", where, what, s, m)
				}
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d questions in the embedded versions", n)
	}
}

// TestHlpGoldenAnswersFitTheSchema: every golden answers file validates against the
// JSON Schema of its version, if/then included.
func TestHlpGoldenAnswersFitTheSchema(t *testing.T) {
	lib := blueprints.Embedded()
	files, err := filepath.Glob("../golden/*/*/*/answers.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden answers files: %v", err)
	}
	schemas := map[string]func(string) error{}
	for _, f := range files {
		parts := strings.Split(filepath.ToSlash(f), "/")
		name, version := parts[2], parts[3]
		if version == "newest" { // the case list of the newest version (golden/<name>/newest)
			if version, err = lib.Latest(name); err != nil {
				t.Fatal(err)
			}
		}
		check, ok := schemas[name+"@"+version]
		if !ok {
			bp, err := lib.Open(name, version)
			if err != nil {
				t.Fatal(err)
			}
			id := "https://opsready.dev/schemas/" + name + "/" + version + "/answers.json"
			raw, err := prompts.Schema(id, "t", bp.Questions)
			if err != nil {
				t.Fatal(err)
			}
			check = schemaChecker(t, id, raw)
			schemas[name+"@"+version] = check
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := check(string(data)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func allVersions(t *testing.T, lib blueprints.Library) [][2]string {
	t.Helper()
	var out [][2]string
	names, err := lib.Names()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		vs, err := lib.Versions(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			out = append(out, [2]string{n, v})
		}
	}
	if len(out) < 5 {
		t.Fatalf("only %d blueprint versions embedded", len(out))
	}
	return out
}

func schemaChecker(t *testing.T, id string, raw []byte) func(string) error {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		t.Fatal(err)
	}
	return func(answers string) error {
		var v any
		if err := yaml.Unmarshal([]byte(answers), &v); err != nil {
			return err
		}
		if v == nil {
			v = map[string]any{}
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return err
		}
		return sch.Validate(inst)
	}
}
