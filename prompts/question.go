package prompts

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Question types.
const (
	TypeInput       = "input"
	TypeSelect      = "select"
	TypeMultiSelect = "multiselect"
	TypeConfirm     = "confirm"
	TypeNumber      = "number"
)

// Question is one answer a blueprint needs. It is plain data, read from blueprint.yaml;
// the wizard, the flags, the answers file, the JSON Schema and validation all derive from it.
type Question struct {
	Key      string     `yaml:"key" json:"key"`
	Title    string     `yaml:"title" json:"title"`
	Help     string     `yaml:"help,omitempty" json:"help,omitempty"`
	Type     string     `yaml:"type" json:"type"`
	Options  []Option   `yaml:"options,omitempty" json:"options,omitempty"`
	Default  any        `yaml:"default,omitempty" json:"default,omitempty"`
	When     string     `yaml:"when,omitempty" json:"when,omitempty"`
	Validate Validation `yaml:"validate,omitempty" json:"validate,omitempty"`
}

// Option is one allowed value of a select or multiselect question.
type Option struct {
	Value string `yaml:"value" json:"value"`
	Label string `yaml:"label,omitempty" json:"label,omitempty"`
}

// Validation holds the rules a value must pass.
type Validation struct {
	Required  bool   `yaml:"required,omitempty" json:"required,omitempty"`
	Pattern   string `yaml:"pattern,omitempty" json:"pattern,omitempty"`
	Min       *int   `yaml:"min,omitempty" json:"min,omitempty"`
	Max       *int   `yaml:"max,omitempty" json:"max,omitempty"`
	Validator string `yaml:"validator,omitempty" json:"validator,omitempty"`
}

// FlagName is the command-line flag for the question: the key with dashes for underscores.
func (q Question) FlagName() string { return strings.ReplaceAll(q.Key, "_", "-") }

// OptionValues lists the allowed values of a select or multiselect question.
func (q Question) OptionValues() []string {
	vals := make([]string, len(q.Options))
	for i, o := range q.Options {
		vals[i] = o.Value
	}
	return vals
}

// Validator is a named check that a string value must pass; it returns a reason on failure.
type Validator struct {
	Describe string
	Check    func(string) error
}

var (
	dnsLabelRe = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$`)
	domainRe   = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	cpusRe     = regexp.MustCompile(`^[0-9]{1,3}(\.[0-9]{1,2})?$`)
	safePathRe = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	percentRe  = regexp.MustCompile(`^[0-9]{1,2}(\.[0-9]{1,4})?$`)
	urlRe      = regexp.MustCompile(`^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$`)
)

// Validators are the named validators a question may use in `validate.validator`.
// Each accepts only values that are safe to place in shell, YAML and JSON after escaping.
var Validators = map[string]Validator{
	"dnslabel": {"lower-case letters, digits and dashes, starting with a letter, at most 40 characters", func(s string) error {
		if !dnsLabelRe.MatchString(s) {
			return fmt.Errorf("%q is not a valid name", s)
		}
		return nil
	}},
	"domain": {"a fully qualified lower-case domain name such as app.example.org", func(s string) error {
		if len(s) > 253 || !domainRe.MatchString(s) {
			return fmt.Errorf("%q is not a valid domain name", s)
		}
		return nil
	}},
	"email": {"an e-mail address such as ops@example.org", func(s string) error {
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s || a.Name != "" || !safeEmail(s) {
			return fmt.Errorf("%q is not a plain e-mail address", s)
		}
		return nil
	}},
	"abspath": {"an absolute path of letters, digits, '.', '_', '-' and '/'", func(s string) error {
		if !path.IsAbs(s) || !safePathRe.MatchString(s) || path.Clean(s) != s || s == "/" {
			return fmt.Errorf("%q is not a clean absolute path", s)
		}
		return nil
	}},
	"hostport": {"host:port such as smtp.example.org:587", func(s string) error {
		host, port, ok := strings.Cut(s, ":")
		n, err := strconv.Atoi(port)
		if !ok || err != nil || n < 1 || n > 65535 || (!domainRe.MatchString(host) && net.ParseIP(host) == nil) {
			return fmt.Errorf("%q is not host:port", s)
		}
		return nil
	}},
	"percent": {"a percentage below 100 such as 99.9", func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if !percentRe.MatchString(s) || err != nil || f <= 0 || f >= 100 {
			return fmt.Errorf("%q is not a percentage between 0 and 100", s)
		}
		return nil
	}},
	"url": {"an http(s) URL of letters, digits and -._~/:%", func(s string) error {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !urlRe.MatchString(s) || strings.HasSuffix(s, "/") {
			return fmt.Errorf("%q is not an http(s) URL without a trailing slash", s)
		}
		return nil
	}},
	"cpus": {"a number of CPU cores such as 0.5 or 2", func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if !cpusRe.MatchString(s) || err != nil || f <= 0 {
			return fmt.Errorf("%q is not a positive number of cores", s)
		}
		return nil
	}},
}

func safeEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || !domainRe.MatchString(domain) {
		return false
	}
	for _, r := range local {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._+-", r)) {
			return false
		}
	}
	return true
}

// Check validates the question definition itself, so a broken blueprint fails at load time.
func (q Question) Check() error {
	if !regexp.MustCompile(`^[a-z][a-z0-9_]*$`).MatchString(q.Key) {
		return fmt.Errorf("question key %q: use lower-case letters, digits and underscores", q.Key)
	}
	switch q.Type {
	case TypeInput, TypeConfirm, TypeNumber:
		if len(q.Options) > 0 {
			return fmt.Errorf("question %q: options are only for select and multiselect", q.Key)
		}
	case TypeSelect, TypeMultiSelect:
		if len(q.Options) == 0 {
			return fmt.Errorf("question %q: a %s needs options", q.Key, q.Type)
		}
		seen := map[string]bool{}
		for _, o := range q.Options {
			if seen[o.Value] || o.Value == "" {
				return fmt.Errorf("question %q: option %q is empty or repeated", q.Key, o.Value)
			}
			seen[o.Value] = true
		}
	default:
		return fmt.Errorf("question %q: unknown type %q (allowed: input, select, multiselect, confirm, number)", q.Key, q.Type)
	}
	if q.Validate.Pattern != "" {
		if _, err := regexp.Compile(q.Validate.Pattern); err != nil {
			return fmt.Errorf("question %q: pattern: %w", q.Key, err)
		}
	}
	if v := q.Validate.Validator; v != "" {
		if _, ok := Validators[v]; !ok {
			return fmt.Errorf("question %q: unknown validator %q", q.Key, v)
		}
	}
	return nil
}

// Parse turns a textual value (a flag, `--set`, a typed answer) into the question's type
// and validates it.
func (q Question) Parse(s string) (any, error) {
	switch q.Type {
	case TypeConfirm:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	case TypeNumber:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", s)
		}
		return n, q.Valid(n)
	case TypeMultiSelect:
		var vals []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				vals = append(vals, p)
			}
		}
		if vals == nil {
			vals = []string{}
		}
		return vals, q.Valid(vals)
	default:
		return s, q.Valid(s)
	}
}

// Coerce converts a value decoded from YAML or JSON into the question's type and validates it.
func (q Question) Coerce(v any) (any, error) {
	switch q.Type {
	case TypeConfirm:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("%v is not true or false", v)
		}
		return b, nil
	case TypeNumber:
		var n int
		switch x := v.(type) {
		case int:
			n = x
		case int64:
			n = int(x)
		case uint64:
			n = int(x)
		case float64:
			if x != float64(int(x)) {
				return nil, fmt.Errorf("%v is not a whole number", v)
			}
			n = int(x)
		default:
			return nil, fmt.Errorf("%v is not a whole number", v)
		}
		return n, q.Valid(n)
	case TypeMultiSelect:
		list, ok := v.([]any)
		if s, isStr := v.([]string); isStr {
			return s, q.Valid(s)
		}
		if !ok {
			return nil, fmt.Errorf("%v is not a list", v)
		}
		vals := []string{}
		for _, x := range list {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("%v is not a string", x)
			}
			vals = append(vals, s)
		}
		return vals, q.Valid(vals)
	default:
		switch x := v.(type) {
		case string:
			return x, q.Valid(x)
		case int, int64, uint64, float64, bool:
			// YAML reads 10m as a string but 1.0 as a number; accept scalars as their text.
			s := fmt.Sprint(x)
			if f, ok := x.(float64); ok {
				s = strconv.FormatFloat(f, 'f', -1, 64)
				if !strings.Contains(s, ".") {
					s += ".0"
				}
			}
			return s, q.Valid(s)
		default:
			return nil, fmt.Errorf("%v is not a string", v)
		}
	}
}

// Valid checks a typed value against the question's rules. The error says what is allowed.
func (q Question) Valid(v any) error {
	switch x := v.(type) {
	case string:
		if q.Type == TypeSelect {
			if !slices.Contains(q.OptionValues(), x) {
				return fmt.Errorf("%q is not allowed (allowed: %s)", x, strings.Join(q.OptionValues(), ", "))
			}
			return nil
		}
		if x == "" {
			if q.Validate.Required {
				return fmt.Errorf("a value is required")
			}
			return nil
		}
		if len(x) > 4096 {
			return fmt.Errorf("value is longer than 4096 characters")
		}
		if strings.ContainsAny(x, "\x00\n\r") {
			return fmt.Errorf("value must be a single line")
		}
		if p := q.Validate.Pattern; p != "" && !regexp.MustCompile(p).MatchString(x) {
			return fmt.Errorf("%q does not match %s", x, p)
		}
		if name := q.Validate.Validator; name != "" {
			val := Validators[name]
			if err := val.Check(x); err != nil {
				return fmt.Errorf("%w (want %s)", err, val.Describe)
			}
		}
	case int:
		if q.Validate.Min != nil && x < *q.Validate.Min {
			return fmt.Errorf("%d is less than the minimum %d", x, *q.Validate.Min)
		}
		if q.Validate.Max != nil && x > *q.Validate.Max {
			return fmt.Errorf("%d is more than the maximum %d", x, *q.Validate.Max)
		}
	case []string:
		allowed := q.OptionValues()
		for _, s := range x {
			if !slices.Contains(allowed, s) {
				return fmt.Errorf("%q is not allowed (allowed: %s)", s, strings.Join(allowed, ", "))
			}
		}
		if q.Validate.Required && len(x) == 0 {
			return fmt.Errorf("choose at least one of: %s", strings.Join(allowed, ", "))
		}
	}
	return nil
}

// Allowed describes the allowed values in a few words, for help texts and errors.
func (q Question) Allowed() string {
	switch q.Type {
	case TypeSelect:
		return "one of " + strings.Join(q.OptionValues(), ", ")
	case TypeMultiSelect:
		return "comma-separated, any of " + strings.Join(q.OptionValues(), ", ")
	case TypeConfirm:
		return "true or false"
	case TypeNumber:
		switch {
		case q.Validate.Min != nil && q.Validate.Max != nil:
			return fmt.Sprintf("a whole number from %d to %d", *q.Validate.Min, *q.Validate.Max)
		case q.Validate.Min != nil:
			return fmt.Sprintf("a whole number, at least %d", *q.Validate.Min)
		}
		return "a whole number"
	}
	if v := q.Validate.Validator; v != "" {
		return Validators[v].Describe
	}
	if q.Validate.Pattern != "" {
		return "matching " + q.Validate.Pattern
	}
	return "text"
}

// Format renders a typed value as the text a flag or `--set` takes.
func Format(v any) string {
	switch x := v.(type) {
	case []string:
		return strings.Join(x, ",")
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
