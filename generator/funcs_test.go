package generator

import (
	"os/exec"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestFuncsAreHermetic(t *testing.T) {
	m := Funcs()
	for _, name := range notHermetic {
		if _, ok := m[name]; ok {
			t.Errorf("%s is still in the func map", name)
		}
	}
	for name := range own {
		if _, ok := m[name]; !ok {
			t.Errorf("own function %s missing", name)
		}
	}
}

func TestDNSLabel(t *testing.T) {
	for in, want := range map[string]string{
		"My App":                 "my-app",
		"demo":                   "demo",
		"9lives_x":               "lives-x",
		"--a--b--":               "a-b",
		"":                       "",
		"ÄÖÜ shop!":              "shop",
		strings.Repeat("ab", 30): strings.Repeat("ab", 20),
	} {
		if got := dnsLabel(in); got != want {
			t.Errorf("dnsLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"db_password": "DB_PASSWORD", "my-app.x": "MY_APP_X", "__a": "A"} {
		if got := envName(in); got != want {
			t.Errorf("envName(%q) = %q, want %q", in, got, want)
		}
	}
}

var nasty = []string{"plain", "it's", `a "quoted" \ value`, "$HOME and ${X} and `id`", "tab\there", "new\nline", "ünïcödé", "#comment: x", "- [a]", ""}

func TestShellQuoteRoundTrips(t *testing.T) {
	for _, s := range nasty {
		out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != s {
			t.Errorf("shellQuote(%q) came back from sh as %q", s, out)
		}
	}
}

// TestShellWordRoundTrips: a value comes back from sh as it went in, and a plain one is left
// unquoted (settings files keep PGHOST=db readable).
func TestShellWordRoundTrips(t *testing.T) {
	for _, s := range append(nasty, "db", "secrets/db_password", "a=b", "~root", "*", "x y", "[a]") {
		out, err := exec.Command("sh", "-c", "printf %s "+shellWord(s)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != s {
			t.Errorf("shellWord(%q) = %s came back from sh as %q", s, shellWord(s), out)
		}
	}
	for _, s := range []string{"db", "secrets/db_password", "db-1.internal:5432"} {
		if shellWord(s) != s {
			t.Errorf("shellWord(%q) = %s, want it unquoted", s, shellWord(s))
		}
	}
}

func TestYAMLStringRoundTrips(t *testing.T) {
	for _, s := range nasty {
		var got struct{ V string }
		if err := yaml.Unmarshal([]byte("v: "+yamlString(s)+"\n"), &got); err != nil {
			t.Fatalf("yamlString(%q): %v", s, err)
		}
		if got.V != s {
			t.Errorf("yamlString(%q) decoded as %q", s, got.V)
		}
	}
}

func TestComposeStringEscapesInterpolation(t *testing.T) {
	if got := composeString("a$b"); got != `"a$$b"` {
		t.Errorf("composeString = %s", got)
	}
}

func TestJSONString(t *testing.T) {
	if got := jsonString("a\"b\n<"); got != `"a\"b\n\u003c"` {
		t.Errorf("jsonString = %s", got)
	}
}

func TestEvalBool(t *testing.T) {
	data := map[string]any{"db": "postgres", "n": 3}
	for expr, want := range map[string]bool{`eq .db "postgres"`: true, `ne .db "postgres"`: false, `gt .n 2`: true} {
		got, err := EvalBool(expr, data)
		if err != nil || got != want {
			t.Errorf("EvalBool(%s) = %v, %v", expr, got, err)
		}
	}
	if _, err := EvalBool(`.missing`, data); err == nil {
		t.Error("a missing key must be an error (missingkey=error)")
	}
	if _, err := EvalBool(`.db`, data); err == nil {
		t.Error("a non-boolean condition must be an error")
	}
}
