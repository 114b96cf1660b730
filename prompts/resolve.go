package prompts

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/opsready/opsready/generator"
)

// ErrMissing is wrapped by the error for an answer that no source gave when no prompt is possible.
var ErrMissing = errors.New("missing answer")

// Asker asks one question on a terminal. def is the suggested value (nil when there is none).
type Asker func(q Question, def any) (any, error)

// Sources are the places an answer may come from, highest precedence first.
type Sources struct {
	Flags    map[string]any // typed values from flags and `--set`
	File     map[string]any // typed values from `--answers FILE`
	Stored   map[string]any // typed values from the lock file (upgrade)
	Defaults bool           // take a question's default before prompting
	Context  map[string]any // extra template data for defaults and conditions, e.g. "_dir"
	Ask      Asker          // nil when not running interactively
}

// Resolve walks the questions in order and settles every answer that applies:
// flag > answers file > stored answer > default (with Defaults) > prompt. A question whose
// `when` is false gets no answer. Values given for such a question are dropped.
func Resolve(qs []Question, src Sources) (map[string]any, error) {
	answers := map[string]any{}
	for _, q := range qs {
		data := templateData(answers, src.Context)
		ok, err := Applies(q, data)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		var v any
		var found bool
		for _, m := range []map[string]any{src.Flags, src.File, src.Stored} {
			if x, has := m[q.Key]; has {
				v, found = x, true
				break
			}
		}
		if found {
			if err := q.Valid(v); err != nil {
				return nil, fmt.Errorf("`--%s`: %w", q.FlagName(), err)
			}
			answers[q.Key] = v
			continue
		}
		def, err := DefaultValue(q, data)
		if err != nil {
			return nil, err
		}
		switch {
		case src.Defaults && def != nil:
			if err := q.Valid(def); err != nil {
				return nil, fmt.Errorf("default of `--%s`: %w", q.FlagName(), err)
			}
			v = def
		case src.Ask != nil:
			v, err = src.Ask(q, def)
			if err != nil {
				return nil, err
			}
			if err := q.Valid(v); err != nil {
				return nil, fmt.Errorf("%s: %w", q.Key, err)
			}
		default:
			hint := ""
			if def != nil {
				hint = ", or `--defaults`"
			}
			return nil, fmt.Errorf("%w: `--%s` (required when not running interactively; %s%s)", ErrMissing, q.FlagName(), q.Allowed(), hint)
		}
		answers[q.Key] = v
	}
	return answers, nil
}

func templateData(answers, ctx map[string]any) map[string]any {
	data := make(map[string]any, len(answers)+len(ctx))
	for k, v := range ctx {
		data[k] = v
	}
	for k, v := range answers {
		data[k] = v
	}
	return data
}

// Applies evaluates the question's `when` condition against the answers so far.
func Applies(q Question, data map[string]any) (bool, error) {
	if q.When == "" {
		return true, nil
	}
	ok, err := generator.EvalBool(q.When, data)
	if err != nil {
		return false, fmt.Errorf("question %q: when: %w", q.Key, err)
	}
	return ok, nil
}

// DefaultValue is the question's default with template expressions in a string default
// evaluated against the answers so far. It returns nil when the question has no default.
func DefaultValue(q Question, data map[string]any) (any, error) {
	if q.Default == nil {
		if q.Type == TypeConfirm {
			return false, nil
		}
		return nil, nil
	}
	if s, ok := q.Default.(string); ok && strings.Contains(s, "{{") {
		out, err := generator.Eval(s, data)
		if err != nil {
			return nil, fmt.Errorf("question %q: default: %w", q.Key, err)
		}
		// A template renders text: parse it as the flag value would be (numbers included).
		v, err := q.Parse(out)
		if err != nil {
			return nil, fmt.Errorf("default of `--%s`: %w; give it explicitly", q.FlagName(), err)
		}
		return v, nil
	}
	v, err := q.Coerce(q.Default)
	if err != nil {
		return nil, fmt.Errorf("question %q: default: %w", q.Key, err)
	}
	return v, nil
}

// Find returns the question with the given key, or an error with a "did you mean" hint.
func Find(qs []Question, key string) (Question, error) {
	keys := make([]string, len(qs))
	for i, q := range qs {
		if q.Key == key {
			return q, nil
		}
		keys[i] = q.Key
	}
	return Question{}, fmt.Errorf("unknown key %q%s", key, DidYouMean(key, keys))
}

// DidYouMean suggests the closest candidate, or lists them all when none is close.
func DidYouMean(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := levenshtein(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && bestD <= max(2, len(s)/3) {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	return fmt.Sprintf(" (known keys: %s)", strings.Join(sorted, ", "))
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
