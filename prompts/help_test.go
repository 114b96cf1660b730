package prompts

import (
	"bytes"
	"encoding/json"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

func TestHlpDescribeWhen(t *testing.T) {
	for _, c := range []struct{ when, want string }{
		{`eq .tls "letsencrypt"`, "--tls=letsencrypt"},
		{`ne .ci "github"`, "--ci is not github"},
		{`has "email" .alert_channels`, "--alert-channels includes email"},
		{`eq .db_backup_method "physical"`, "--db-backup-method=physical"},
		{`and (eq .db "postgres") (eq .db_backup_method "physical")`, "--db=postgres and --db-backup-method=physical"},
		{`or (eq .db "postgres") (has "x" .l) (ne .a "b")`, "--db=postgres or --l includes x or --a is not b"},
		{`and (or (eq .a "1") (eq .a "2")) (not (eq .b "c"))`, "(--a=1 or --a=2) and not (--b=c)"},
		{`.tls`, "--tls=true"},
		{`not .tls`, "not (--tls=true)"},
		{`eq .replicas 3`, "--replicas=3"},
		{`eq .db "postgres" "mariadb"`, "--db is postgres or mariadb"},
		// Whatever the translation does not know reads as words, never as the expression.
		{`gt .replicas 3`, whenFallback},
		{`eq ._dir "x"`, whenFallback},
		{`.a | not`, whenFallback},
		{`eq .a`, whenFallback},
		{`{{`, whenFallback},
	} {
		if got := DescribeWhen(c.when); got != c.want {
			t.Errorf("DescribeWhen(%q) = %q, want %q", c.when, got, c.want)
		}
	}
}

func TestHlpDescribeDefault(t *testing.T) {
	for _, c := range []struct {
		q    Question
		want string
	}{
		{Question{Type: TypeInput, Default: "/mnt/offsite-backups/{{ .name }}"}, "/mnt/offsite-backups/<name>"},
		{Question{Type: TypeInput, Default: "backup@backup.{{ .domain }}:/srv/backups/{{ .name }}"}, "backup@backup.<domain>:/srv/backups/<name>"},
		{Question{Type: TypeInput, Default: `{{ default "myapp" (dnsLabel ._dir) }}`}, "<folder name> (or myapp)"},
		{Question{Type: TypeNumber, Default: `{{ if eq .db_backup_method "physical" }}1{{ else }}24{{ end }}`}, "1 when --db-backup-method=physical, else 24"},
		{Question{Type: TypeInput, Default: `{{ .a | upper }}`}, "computed from other answers"},
		{Question{Type: TypeMultiSelect, Options: []Option{{Value: "email"}, {Value: "webhook"}}, Default: []any{"email", "webhook"}}, "email,webhook"},
		{Question{Type: TypeNumber, Default: 4}, "4"},
		{Question{Type: TypeInput}, ""},
	} {
		if got := DescribeDefault(c.q); got != c.want {
			t.Errorf("DescribeDefault(%v) = %q, want %q", c.q.Default, got, c.want)
		}
	}
}

func TestHlpAllowedDescribesPatterns(t *testing.T) {
	for _, c := range []struct {
		v    Validation
		want string
	}{
		{Validation{Pattern: `^([01][0-9]|2[0-3]):[0-5][0-9]$`}, "HH:MM such as 02:30"},
		{Validation{Pattern: `^[1-9][0-9]{0,5}[kmg]$`}, "a size such as 10m or 1g (k, m or g)"},
		{Validation{Pattern: `^x+$`, Describe: "some x"}, "some x"},
		{Validation{Pattern: `^x+$`}, patternHelp},
		{Validation{Validator: "abspath", Pattern: `^x+$`}, "an absolute path of letters, digits, '.', '_', '-' and '/'"},
	} {
		q := Question{Key: "k", Type: TypeInput, Validate: c.v}
		if got := q.Allowed(); got != c.want {
			t.Errorf("Allowed(%+v) = %q, want %q", c.v, got, c.want)
		}
		if _, err := q.Parse("!"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%+v, !) err = %v, want it to say %q", c.v, err, c.want)
		}
	}
	for p := range knownPatterns {
		if _, err := regexp.Compile(p); err != nil {
			t.Errorf("known pattern %q: %v", p, err)
		}
	}
}

// The abspath pattern is the whole rule: it accepts exactly the clean absolute paths of
// safe characters. Every string of up to 7 characters over "/a._" is tried.
func TestHlpAbspathPatternIsTheRule(t *testing.T) {
	v, _ := LookupValidator("abspath")
	clean := func(s string) bool {
		return path.IsAbs(s) && s != "/" && path.Clean(s) == s && strings.Trim(s, "/a._") == ""
	}
	var walk func(s string)
	n := 0
	walk = func(s string) {
		if (v.Check(s) == nil) != clean(s) {
			t.Errorf("abspath(%q): ok = %v, path.Clean says %v", s, v.Check(s) == nil, clean(s))
		}
		n++
		if len(s) == 7 {
			return
		}
		for _, c := range "/a._" {
			walk(s + string(c))
		}
	}
	walk("")
	if n < 20000 {
		t.Fatalf("tried %d strings", n)
	}
}

// Every validator's check and its schema pattern agree on samples; the schema may be looser
// only where the table says so (MaxLength, extra).
func TestHlpValidatorsAgreeWithTheirSchemaPattern(t *testing.T) {
	samples := map[string][]string{
		"dnslabel": {"shop", "a", "a-b", "-a", "a-", "A", strings.Repeat("a", 40), strings.Repeat("a", 41)},
		"domain":   {"app.example.org", "localhost", "a..b.org", strings.Repeat("a.", 126) + "org"},
		"email":    {"ops@example.org", "a.b+c@x.org", ".a@x.org", "a..b@x.org", "a@x", "Joe <a@b.org>"},
		"abspath":  {"/srv/app", "/srv/../etc", "/.hidden", "/a/..b", "/a/"},
		"hostport": {"smtp.example.org:587", "10.0.0.1:25", "300.0.0.1:25", "x.org:65535", "x.org:65536", "x.org:0587"},
		"percent":  {"99.9", "0", "0.0", "100", "5"},
		"url":      {"https://x.org", "https://x.org/", "https://x.org/a%zz", "http://x.org:8080/a"},
		"cpus":     {"0.5", "0", "0.00", "2", "999.99"},
		"memlimit": {"128m", "127m", "512m", "32g", "33g", "32768m", "32769m", "0g", "1g"},
	}
	for _, v := range validators {
		ss, ok := samples[v.Name]
		if !ok {
			t.Errorf("validator %s: no samples", v.Name)
		}
		re := regexp.MustCompile(v.Pattern)
		for _, s := range ss {
			if v.Check(s) == nil && !re.MatchString(s) {
				t.Errorf("%s(%q): the check accepts what the schema pattern rejects", v.Name, s)
			}
		}
	}
}

// The schema states conditional questions as if/then: a key the file's own answers rule out
// is refused, a key whose condition the file leaves open is allowed.
func TestHlpSchemaIfThen(t *testing.T) {
	qs := []Question{
		{Key: "offsite", Title: "Off-site", Type: TypeSelect, Options: []Option{{Value: "local"}, {Value: "s3"}}, Default: "local"},
		{Key: "offsite_path", Title: "Path", Type: TypeInput, When: `eq .offsite "local"`, Default: "/mnt/{{ .name }}", Validate: Validation{Validator: "abspath"}},
		{Key: "channels", Title: "Channels", Type: TypeMultiSelect, Options: []Option{{Value: "email"}, {Value: "webhook"}}},
		{Key: "tls", Title: "TLS", Type: TypeConfirm},
		{Key: "smtp", Title: "SMTP", Type: TypeInput, When: `and (has "email" .channels) (not (eq .offsite "s3"))`},
		{Key: "acme", Title: "ACME", Type: TypeInput, When: `.tls`},
		{Key: "other", Title: "Other", Type: TypeInput, When: `ne .offsite "local"`},
	}
	raw, err := Schema("https://opsready.dev/schemas/hlp.json", "hlp", qs)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if conds, _ := doc["allOf"].([]any); len(conds) != 4 {
		t.Errorf("allOf has %d if/then, want 4 (one per conditional question):\n%s", len(conds), raw)
	}
	op := doc["properties"].(map[string]any)["offsite_path"].(map[string]any)
	if _, ok := op["default"]; ok || op["description"] != "Default: /mnt/<name>." {
		t.Errorf("a template default: %v", op)
	}
	sch := compileSchema(t, "https://opsready.dev/schemas/hlp.json", raw)
	for in, ok := range map[string]bool{
		"offsite: local\noffsite_path: /x\n":        true,
		"offsite_path: /x\n":                        true, // offsite may come from a flag or the default
		"offsite: s3\noffsite_path: /x\n":           false,
		"offsite: s3\nother: x\n":                   true,
		"offsite: local\nother: x\n":                false,
		"channels: [email]\nsmtp: x\n":              true,
		"channels: [webhook]\nsmtp: x\n":            false,
		"channels: [email]\noffsite: s3\nsmtp: x\n": false,
		"offsite: s3\nsmtp: x\n":                    false,
		"smtp: x\n":                                 true,
		"tls: true\nacme: x\n":                      true,
		"tls: false\nacme: x\n":                     false,
		"offsite_path: srv\n":                       false,
	} {
		if got := validates(t, sch, in); got != ok {
			t.Errorf("%q: schema ok = %v, want %v", in, got, ok)
		}
	}
}

func compileSchema(t *testing.T, id string, raw []byte) *jsonschema.Schema {
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
	return sch
}

func validates(t *testing.T, sch *jsonschema.Schema, answers string) bool {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(answers), &v); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		v = map[string]any{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return sch.Validate(inst) == nil
}

// TestHlpDocsListEveryValidator: docs/contributing.md lists exactly the validators of the
// table, in its order, with the same descriptions.
func TestHlpDocsListEveryValidator(t *testing.T) {
	data, err := os.ReadFile("../docs/contributing.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n### Validators\n")
	if !ok {
		t.Fatal("docs/contributing.md has no ### Validators section")
	}
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9]+)` \\| (.*) \\|$")
	var got, want []string
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		got = append(got, m[1]+": "+m[2])
	}
	for _, v := range validators {
		want = append(want, v.Name+": "+v.Describe)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("docs/contributing.md lists\n%s\nthe table in prompts/validators.go has\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
