package prompts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"

	"go.yaml.in/yaml/v3"
)

// LoadAnswers decodes an answers file (a YAML mapping of question keys to values), converts
// each value to its question's type and validates it. Unknown keys are errors.
func LoadAnswers(qs []Question, data []byte) (map[string]any, error) {
	var raw map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]any{}, nil
		}
		return nil, fmt.Errorf("not a YAML mapping of answers: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("want a single YAML document")
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]any, len(raw))
	for _, k := range keys {
		q, err := Find(qs, k)
		if err != nil {
			return nil, err
		}
		if raw[k] == nil {
			return nil, fmt.Errorf("key %q: no value (want %s)", k, q.Allowed())
		}
		v, err := q.Coerce(raw[k])
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}
