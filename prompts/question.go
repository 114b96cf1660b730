package prompts

import (
	"fmt"
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
	// AdoptOnly marks a value only `opsready adopt` may give (db none, say): `new` refuses it
	// and its wizard does not offer it.
	AdoptOnly bool `yaml:"adopt_only,omitempty" json:"adopt_only,omitempty"`
}

// Validation holds the rules a value must pass.
type Validation struct {
	Required  bool   `yaml:"required,omitempty" json:"required,omitempty"`
	Pattern   string `yaml:"pattern,omitempty" json:"pattern,omitempty"`
	Min       *int   `yaml:"min,omitempty" json:"min,omitempty"`
	Max       *int   `yaml:"max,omitempty" json:"max,omitempty"`
	Validator string `yaml:"validator,omitempty" json:"validator,omitempty"`
	// Describe says in words what Pattern allows, for help texts (e.g. "HH:MM such as 02:30").
	Describe string `yaml:"describe,omitempty" json:"describe,omitempty"`
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

// OfferedValues are the values a person may choose: OptionValues without the adopt_only ones,
// which only `opsready adopt` gives (help, messages, completions and the schema show these).
func (q Question) OfferedValues() []string {
	var vals []string
	for _, o := range q.Options {
		if !o.AdoptOnly {
			vals = append(vals, o.Value)
		}
	}
	return vals
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
		if _, ok := LookupValidator(v); !ok {
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
				return fmt.Errorf("%q is not allowed (allowed: %s)", x, strings.Join(q.OfferedValues(), ", "))
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
			return fmt.Errorf("%q is not allowed (want %s)", x, q.Allowed())
		}
		if name := q.Validate.Validator; name != "" {
			val, _ := LookupValidator(name)
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
		return "one of " + strings.Join(q.OfferedValues(), ", ")
	case TypeMultiSelect:
		return "comma-separated, any of " + strings.Join(q.OfferedValues(), ", ")
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
	if v, ok := LookupValidator(q.Validate.Validator); ok {
		return v.Describe
	}
	if p := q.Validate.Pattern; p != "" {
		if q.Validate.Describe != "" {
			return q.Validate.Describe
		}
		if f, ok := knownPatterns[p]; ok {
			return f.Describe
		}
		return patternHelp
	}
	return "text"
}

// ValueName is the placeholder for the question's value in flag help, e.g. DOMAIN.
func (q Question) ValueName() string {
	switch q.Type {
	case TypeSelect:
		if s := strings.Join(q.OfferedValues(), "|"); len(s) <= 24 {
			return s
		}
		return "VALUE"
	case TypeMultiSelect:
		return "LIST"
	case TypeConfirm:
		return "true|false"
	case TypeNumber:
		return "N"
	}
	if v, ok := LookupValidator(q.Validate.Validator); ok {
		return v.ValueName
	}
	if f, ok := knownPatterns[q.Validate.Pattern]; ok {
		return f.ValueName
	}
	return "TEXT"
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
