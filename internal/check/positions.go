package check

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// positions finds where things are written in the compose files. compose-go's model has no
// positions, so the files are parsed a second time as yaml.v3 node trees.
type positions struct {
	files []posFile
}

type posFile struct {
	path string     // absolute
	root *yaml.Node // the document's top-level mapping, or nil for an empty file
}

// at is a place in a file: the file's absolute path and a 1-based line (0: unknown).
type at struct {
	path string
	line int
}

func readPositions(dir string, paths []string) (*positions, error) {
	p := &positions{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, inputErrorf("read compose file: %w", err)
		}
		var doc yaml.Node
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
			// yaml.v3 says "yaml: line N: ...": prefix the file so the message reads file:line.
			return nil, InputError{fmt.Errorf("%s: invalid YAML: %w", relTo(dir, path), err)}
		}
		f := posFile{path: path}
		if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
			f.root = doc.Content[0]
		}
		p.files = append(p.files, f)
	}
	return p, nil
}

// firstInvalidYAML is the first of paths that does not parse as YAML, or "".
func firstInvalidYAML(paths []string) string {
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var doc yaml.Node
		if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
			return p
		}
	}
	return ""
}

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// get returns the key and value nodes of key in mapping m, following aliases and `<<` merge
// keys (a key written in m wins over a merged one, as in YAML).
func get(m *yaml.Node, key string) (k, v *yaml.Node) {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], deref(m.Content[i+1])
		}
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "<<" {
			continue
		}
		src := deref(m.Content[i+1])
		var srcs []*yaml.Node
		if src != nil && src.Kind == yaml.SequenceNode {
			srcs = src.Content
		} else {
			srcs = []*yaml.Node{src}
		}
		for _, s := range srcs {
			if k, v := get(s, key); k != nil {
				return k, v
			}
		}
	}
	return nil, nil
}

// pairs lists the key/value node pairs of a mapping, merged keys included.
func pairs(m *yaml.Node) [][2]*yaml.Node {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	var out [][2]*yaml.Node
	seen := map[string]bool{}
	var merged []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "<<" {
			merged = append(merged, m.Content[i+1])
			continue
		}
		seen[m.Content[i].Value] = true
		out = append(out, [2]*yaml.Node{m.Content[i], deref(m.Content[i+1])})
	}
	for _, mn := range merged {
		mn = deref(mn)
		srcs := []*yaml.Node{mn}
		if mn != nil && mn.Kind == yaml.SequenceNode {
			srcs = mn.Content
		}
		for _, s := range srcs {
			for _, kv := range pairs(s) {
				if !seen[kv[0].Value] {
					seen[kv[0].Value] = true
					out = append(out, kv)
				}
			}
		}
	}
	return out
}

// service returns, per file that defines service name, its key node and value node.
func (p *positions) service(name string) []svcDef {
	var out []svcDef
	for _, f := range p.files {
		_, svcs := get(f.root, "services")
		if k, v := get(svcs, name); k != nil {
			out = append(out, svcDef{path: f.path, key: k, val: v})
		}
	}
	return out
}

type svcDef struct {
	path     string
	key, val *yaml.Node
}

// serviceAt is where service name is first defined (the line of its name), or the first
// compose file when no loaded file names it (a service from `include` or `extends`).
func (p *positions) serviceAt(name string) at {
	if defs := p.service(name); len(defs) > 0 {
		return at{defs[0].path, defs[0].key.Line}
	}
	return p.first()
}

// first is the first compose file, line 1: where repository-level findings point.
func (p *positions) first() at {
	if len(p.files) == 0 {
		return at{}
	}
	return at{p.files[0].path, 1}
}

// keyAt is where key of service name is set, in the last file that sets it (the one that
// wins), else where the service is defined.
func (p *positions) keyAt(name string, path ...string) at {
	defs := p.service(name)
	for i := len(defs) - 1; i >= 0; i-- {
		n := defs[i].val
		var k *yaml.Node
		for _, key := range path {
			k, n = get(n, key)
			if k == nil {
				break
			}
		}
		if k != nil {
			return at{defs[i].path, k.Line}
		}
	}
	return p.serviceAt(name)
}
