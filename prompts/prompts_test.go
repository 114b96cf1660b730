package prompts

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

func intp(n int) *int { return &n }

var testQuestions = []Question{
	{Key: "name", Title: "Name", Type: TypeInput, Default: `{{ default "demo" ._dir }}`, Validate: Validation{Required: true, Validator: "dnslabel"}},
	{Key: "db", Title: "Database", Type: TypeSelect, Options: []Option{{Value: "postgres"}, {Value: "mariadb"}}, Default: "postgres"},
	{Key: "tls", Title: "TLS", Type: TypeConfirm, Default: true},
	{Key: "email", Title: "E-mail", Type: TypeInput, When: ".tls", Default: "ops@{{ .name }}.org", Validate: Validation{Required: true, Validator: "email"}},
	{Key: "replicas", Title: "Replicas", Type: TypeNumber, Default: 2, Validate: Validation{Min: intp(2), Max: intp(9)}},
	{Key: "channels", Title: "Channels", Type: TypeMultiSelect, Options: []Option{{Value: "email"}, {Value: "webhook"}}, Default: []any{"email"}},
}

func TestQuestionsCheck(t *testing.T) {
	for _, q := range testQuestions {
		if err := q.Check(); err != nil {
			t.Error(err)
		}
	}
	for _, q := range []Question{{Key: "Bad"}, {Key: "a", Type: "slider"}, {Key: "a", Type: TypeSelect}, {Key: "a", Type: TypeInput, Validate: Validation{Pattern: "("}}, {Key: "a", Type: TypeInput, Validate: Validation{Validator: "nope"}}} {
		if err := q.Check(); err == nil {
			t.Errorf("%+v passed Check", q)
		}
	}
}

func TestParse(t *testing.T) {
	q := map[string]Question{}
	for _, x := range testQuestions {
		q[x.Key] = x
	}
	for _, c := range []struct {
		key, in string
		want    any
		wantErr string
	}{
		{"name", "shop", "shop", ""},
		{"name", "Shop", nil, "not a valid name"},
		{"name", "", nil, "required"},
		{"db", "mariadb", "mariadb", ""},
		{"db", "mysql", nil, "allowed: postgres, mariadb"},
		{"tls", "false", false, ""},
		{"tls", "maybe", nil, "true or false"},
		{"replicas", "3", 3, ""},
		{"replicas", "1", nil, "minimum 2"},
		{"replicas", "x", nil, "whole number"},
		{"channels", "email, webhook", []string{"email", "webhook"}, ""},
		{"channels", "sms", nil, "allowed: email, webhook"},
		{"email", "a@b.org", "a@b.org", ""},
		{"email", "Joe <a@b.org>", nil, "plain e-mail"},
		{"email", "a'b@x.org", nil, "plain e-mail"},
		{"name", "a\nb", nil, ""},
	} {
		got, err := q[c.key].Parse(c.in)
		if c.wantErr != "" || c.want == nil {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("Parse(%s, %q) err = %v, want %q", c.key, c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Parse(%s, %q) = %#v, %v; want %#v", c.key, c.in, got, err, c.want)
		}
	}
}

func TestValidators(t *testing.T) {
	for name, cases := range map[string]map[string]bool{
		"domain":   {"app.example.org": true, "localhost": false, "a..b.org": false, "-a.org": false, "App.example.org": false, "x.y.z.io": true, "a.org;rm": false},
		"abspath":  {"/srv/app": true, "srv": false, "/srv/../etc": false, "/": false, "/a b": false, "/a/": false},
		"cpus":     {"1.0": true, "0.25": true, "0": false, "-1": false, "1e3": false, "2": true},
		"hostport": {"smtp.example.org:587": true, "10.0.0.1:25": true, "smtp.example.org": false, "a b:25": false, "x.org:0": false, "x.org:99999": false},
		"percent":  {"99.9": true, "99.95": true, "100": false, "0": false, "99.": false, "abc": false},
		"url":      {"https://git.example.com/shop/-/blob/main": true, "http://x.org": true, "ftp://x.org": false, "https://x.org/": false, "https://x.org/a b": false, "https://x.org/$(id)": false, "https://x.org/a\"b": false},
	} {
		for in, ok := range cases {
			if v, _ := LookupValidator(name); (v.Check(in) == nil) != ok {
				t.Errorf("%s(%q): ok = %v, want %v", name, in, !ok, ok)
			}
		}
	}
}

func TestResolvePrecedence(t *testing.T) {
	src := Sources{
		Flags:    map[string]any{"db": "mariadb"},
		File:     map[string]any{"db": "postgres", "replicas": 4, "name": "fromfile"},
		Stored:   map[string]any{"replicas": 5, "tls": false},
		Defaults: true,
		Context:  map[string]any{"_dir": "ctx"},
	}
	got, err := Resolve(testQuestions, src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "fromfile", "db": "mariadb", "tls": false, "replicas": 4, "channels": []string{"email"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

func TestResolveDefaultsFollowEarlierAnswers(t *testing.T) {
	got, err := Resolve(testQuestions, Sources{Defaults: true, Context: map[string]any{"_dir": "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	if got["name"] != "shop" || got["email"] != "ops@shop.org" {
		t.Errorf("defaults: %#v", got)
	}
}

// A template default renders text; a number question must still get a number from it.
func TestTemplateDefaultOfANumber(t *testing.T) {
	q := Question{Key: "rpo", Title: "RPO", Type: TypeNumber, Default: `{{ if eq .db "mariadb" }}1{{ else }}24{{ end }}`,
		Validate: Validation{Min: ptr(1), Max: ptr(168)}}
	for db, want := range map[string]int{"mariadb": 1, "postgres": 24} {
		got, err := DefaultValue(q, map[string]any{"db": db})
		if err != nil || got != want {
			t.Errorf("db=%s: default %#v, %v; want %d", db, got, err, want)
		}
	}
	q.Default = `{{ .db }}`
	if _, err := DefaultValue(q, map[string]any{"db": "x"}); err == nil || !strings.Contains(err.Error(), "--rpo") {
		t.Errorf("non-numeric template default: error %v, want one naming --rpo", err)
	}
}

func TestResolveMissingNamesTheFlag(t *testing.T) {
	_, err := Resolve(testQuestions, Sources{Flags: map[string]any{"name": "x"}})
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "missing answer: `--db` (required when not running interactively") {
		t.Errorf("err = %v", err)
	}
}

func TestResolveAsksOnlyWhatApplies(t *testing.T) {
	var asked []string
	ask := func(q Question, def any) (any, error) {
		asked = append(asked, q.Key)
		if q.Key == "tls" {
			return false, nil
		}
		return def, nil
	}
	got, err := Resolve(testQuestions, Sources{Flags: map[string]any{"db": "postgres"}, Ask: ask, Context: map[string]any{"_dir": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(asked, ",") != "name,tls,replicas,channels" {
		t.Errorf("asked %v", asked)
	}
	if _, ok := got["email"]; ok {
		t.Error("email does not apply when tls is false")
	}
}

func TestDidYouMean(t *testing.T) {
	if got := DidYouMean("fronted", []string{"frontend", "backend"}); !strings.Contains(got, `"frontend"`) {
		t.Errorf("got %s", got)
	}
	if got := DidYouMean("zzzzzz", []string{"frontend", "backend"}); !strings.Contains(got, "known keys: backend, frontend") {
		t.Errorf("got %s", got)
	}
}

func TestLoadAnswers(t *testing.T) {
	got, err := LoadAnswers(testQuestions, []byte("name: shop\nreplicas: 3\ntls: false\nchannels: [webhook]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "shop", "replicas": 3, "tls": false, "channels": []string{"webhook"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v", got)
	}
	for in, wantErr := range map[string]string{
		"nme: shop\n":        `unknown key "nme" (did you mean "name"?)`,
		"db: oracle\n":       "allowed: postgres, mariadb",
		"replicas: many\n":   "whole number",
		"- a\n- b\n":         "not a YAML mapping",
		"name: a\n---\nb: 1": "single YAML document",
		"name:\n":            "no value",
		"replicas: 2.5\n":    "whole number",
	} {
		if _, err := LoadAnswers(testQuestions, []byte(in)); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("LoadAnswers(%q) err = %v, want %q", in, err, wantErr)
		}
	}
}

// FuzzLoadAnswers: whatever the file holds, the loader returns an error or values that
// pass validation; it never panics.
func FuzzLoadAnswers(f *testing.F) {
	for _, s := range []string{"name: shop\n", "db: [1,2]\n", "replicas: 1e9\n", "tls: yes\n", "channels: email\n", "{}", "", "name: &a x\nb: *a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := LoadAnswers(testQuestions, []byte(in))
		if err != nil {
			return
		}
		for k, v := range got {
			q, err := Find(testQuestions, k)
			if err != nil {
				t.Fatalf("unknown key %q accepted", k)
			}
			if err := q.Valid(v); err != nil {
				t.Fatalf("%s=%#v accepted but invalid: %v", k, v, err)
			}
		}
	})
}

func TestSchemaAcceptsWhatTheLoaderAccepts(t *testing.T) {
	raw, err := Schema("https://opsready.dev/schemas/test.json", "test", testQuestions)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("https://opsready.dev/schemas/test.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("https://opsready.dev/schemas/test.json")
	if err != nil {
		t.Fatal(err)
	}
	for in, ok := range map[string]bool{
		"name: shop\ndb: mariadb\nreplicas: 3\nchannels: [email]\n": true,
		"db: oracle\n":  false,
		"replicas: 1\n": false,
		"nme: x\n":      false,
		"name: Shop\n":  false,
	} {
		var v any
		if err := yaml.Unmarshal([]byte(in), &v); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v)
		inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		schemaOK := sch.Validate(inst) == nil
		_, loadErr := LoadAnswers(testQuestions, []byte(in))
		if schemaOK != ok || (loadErr == nil) != ok {
			t.Errorf("%q: schema ok=%v loader err=%v, want ok=%v", in, schemaOK, loadErr, ok)
		}
	}
}

func TestWizardAccessibleWithInjectedInput(t *testing.T) {
	// name: default (empty line), db: 2 (mariadb), tls: n, replicas: 3, channels: default
	in := strings.NewReader("\n2\nn\n3\n\n")
	var out bytes.Buffer
	w := &Wizard{In: in, Out: &out, Accessible: true}
	got, err := Resolve(testQuestions, Sources{Ask: w.Ask, Context: map[string]any{"_dir": "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "shop", "db": "mariadb", "tls": false, "replicas": 3, "channels": []string{"email"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v\noutput:\n%s", got, want, out.String())
	}
	if !strings.Contains(out.String(), "Database") || strings.Contains(out.String(), "E-mail") {
		t.Errorf("wizard output should ask Database and skip E-mail:\n%s", out.String())
	}
}

func TestWizardRepromptsOnInvalidInput(t *testing.T) {
	in := strings.NewReader("Not Valid\nshop\n")
	var out bytes.Buffer
	w := &Wizard{In: in, Out: &out, Accessible: true}
	v, err := w.Ask(testQuestions[0], "")
	if err != nil || v != "shop" {
		t.Errorf("got %v, %v\n%s", v, err, out.String())
	}
	if !strings.Contains(out.String(), "not a valid name") {
		t.Errorf("no validation message shown:\n%s", out.String())
	}
}

func TestCommandLine(t *testing.T) {
	got := CommandLine([]string{"opsready", "new"}, testQuestions, map[string]any{"name": "shop", "db": "postgres", "channels": []string{"email", "webhook"}}, []string{"./my dir"})
	want := "opsready new --name=shop --db=postgres --channels=email,webhook './my dir'"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func ptr(n int) *int { return &n }
