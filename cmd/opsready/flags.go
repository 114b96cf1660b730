package main

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/opsready/opsready/prompts"
)

type pflagFlag = pflag.Flag

// namedValue is a string flag whose help shows what it takes (DOMAIN, HH:MM, go|python|node)
// where a plain string flag shows "string".
type namedValue struct {
	s    *string
	name string
}

func (v *namedValue) String() string     { return *v.s }
func (v *namedValue) Set(s string) error { *v.s = s; return nil }
func (v *namedValue) Type() string       { return v.name }

// questionUsage is a question flag's help: the title, what it takes when the value name
// does not already list it, the default and when the question is asked, all in words.
func questionUsage(q prompts.Question) string {
	usage := q.Title
	if q.Type != prompts.TypeConfirm && !(q.Type == prompts.TypeSelect && strings.Contains(q.ValueName(), "|")) {
		usage += ": " + q.Allowed()
	}
	if def := prompts.DescribeDefault(q); def != "" {
		usage += "; default " + def
	}
	if q.When != "" {
		usage += "; only when " + prompts.DescribeWhen(q.When)
	}
	// pflag would take a backquoted word for the value name.
	return strings.ReplaceAll(usage, "`", "'")
}
