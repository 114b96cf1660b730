package generator

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"text/template"
)

var evalCache sync.Map // template text -> *template.Template

func parseCached(text string) (*template.Template, error) {
	if t, ok := evalCache.Load(text); ok {
		return t.(*template.Template), nil
	}
	t, err := template.New("expr").Option("missingkey=error").Funcs(Funcs()).Parse(text)
	if err != nil {
		return nil, err
	}
	evalCache.Store(text, t)
	return t, nil
}

// Eval renders a short template (a default value, a path) against data.
func Eval(text string, data map[string]any) (string, error) {
	t, err := parseCached(text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// EvalBool evaluates a template pipeline such as `eq .db "postgres"` as a condition.
func EvalBool(expr string, data map[string]any) (bool, error) {
	out, err := Eval("{{ "+expr+" }}", data)
	if err != nil {
		return false, err
	}
	b, err := strconv.ParseBool(strings.TrimSpace(out))
	if err != nil {
		return false, fmt.Errorf("condition %q gave %q, not true or false", expr, out)
	}
	return b, nil
}

// CheckExpr reports whether a condition parses, so blueprints fail at load time.
func CheckExpr(expr string) error {
	_, err := parseCached("{{ " + expr + " }}")
	return err
}
