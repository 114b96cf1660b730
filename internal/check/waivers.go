package check

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// WaiversFile is the default name of the committed waivers file in the project directory.
const WaiversFile = ".opsready-waivers.yaml"

// Waiver accepts one finding for one service (or the repository) with a reason. Waived
// findings are reported as waived and do not count for --fail-on.
type Waiver struct {
	Service string `json:"service,omitempty" yaml:"service"`
	ID      string `json:"id" yaml:"id"`
	Reason  string `json:"reason" yaml:"reason"`
	File    string `json:"file" yaml:"-"`
	Line    int    `json:"line" yaml:"-"`
}

type waiversDoc struct {
	Waivers []yaml.Node `yaml:"waivers"`
}

// readWaivers reads a waivers file; a missing default file is no waivers. Every entry needs
// an id the catalogue knows, a service for service-level ids (none for repository-level
// ones) and a reason.
func readWaivers(path, rel string, required bool) ([]Waiver, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return nil, nil
	}
	if err != nil {
		return nil, inputErrorf("read waivers: %w", err)
	}
	var doc waiversDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, inputErrorf("%s: %w", rel, err)
	}
	var out []Waiver
	for _, n := range doc.Waivers {
		var w Waiver
		bad := func(format string, a ...any) error {
			return inputErrorf("%s:%d: %s", rel, n.Line, fmt.Sprintf(format, a...))
		}
		if err := n.Decode(&w); err != nil {
			return nil, bad("%v", err)
		}
		if n.Kind == yaml.MappingNode {
			for i := 0; i < len(n.Content); i += 2 {
				switch n.Content[i].Value {
				case "service", "id", "reason":
				default:
					return nil, bad("unknown key %q (want service, id, reason)", n.Content[i].Value)
				}
			}
		}
		w.File, w.Line = rel, n.Line
		r, ok := ruleByID(w.ID)
		switch {
		case !ok:
			return nil, bad("unknown finding id %q (see docs/checks.md)", w.ID)
		case strings.TrimSpace(w.Reason) == "":
			return nil, bad("waiver of %s needs a reason", w.ID)
		case r.Scope == scopeService && w.Service == "":
			return nil, bad("waiver of %s needs the service it applies to", w.ID)
		case r.Scope == scopeRepo && w.Service != "":
			return nil, bad("%s is a repository-level finding: a waiver of it names no service", w.ID)
		}
		out = append(out, w)
	}
	return out, nil
}
