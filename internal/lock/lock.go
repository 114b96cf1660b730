// Package lock reads and writes .opsready.yaml, the record of what opsready generated:
// blueprint and version, the answers (never secrets) and each file's policy and pristine hash.
package lock

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/opsready/opsready/generator"
)

// FileName is the lock file's name in the project root.
const FileName = ".opsready.yaml"

const header = "# Managed by opsready: written by `opsready new` and `opsready upgrade`, read by\n" +
	"# `opsready status` and `opsready upgrade`. Do not edit by hand. Commit it.\n"

// Lock is the content of the lock file.
type Lock struct {
	Blueprint string         `yaml:"blueprint"`
	Version   string         `yaml:"version"`
	Opsready  string         `yaml:"opsready"`
	Answers   map[string]any `yaml:"answers"`
	// Adopt is what `opsready adopt` found in a project it did not generate; nil for `new`.
	Adopt *Adopt           `yaml:"adopt,omitempty"`
	Files map[string]Entry `yaml:"files"`
}

// Entry is what the lock file knows of one generated file.
type Entry struct {
	Policy string `yaml:"policy"`
	SHA256 string `yaml:"sha256"`
}

// New records a rendered tree; files without a policy (secrets, .env) are left out.
func New(blueprint, version, opsready string, answers map[string]any, files generator.Files) *Lock {
	l := &Lock{Blueprint: blueprint, Version: version, Opsready: opsready, Answers: answers, Files: map[string]Entry{}}
	for _, f := range files {
		if f.Policy != "" {
			l.Files[f.Path] = Entry{Policy: f.Policy, SHA256: f.SHA256()}
		}
	}
	return l
}

// Marshal encodes the lock file; map keys come out sorted, so the output is deterministic.
func (l *Lock) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(l); err != nil {
		return nil, fmt.Errorf("encode lock file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Parse decodes a lock file strictly.
func Parse(data []byte) (*Lock, error) {
	var l Lock
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("parse %s: %w", FileName, err)
	}
	if l.Blueprint == "" || l.Version == "" {
		return nil, fmt.Errorf("parse %s: blueprint and version are required", FileName)
	}
	if l.Answers == nil {
		l.Answers = map[string]any{}
	}
	if l.Files == nil {
		l.Files = map[string]Entry{}
	}
	if err := l.Adopt.Check(); err != nil {
		return nil, fmt.Errorf("parse %s: %w", FileName, err)
	}
	return &l, nil
}

// Read loads the lock file of the project in dir.
func Read(dir string) (*Lock, error) {
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		return nil, fmt.Errorf("%s is not an opsready project: %w", dir, err)
	}
	return Parse(data)
}
