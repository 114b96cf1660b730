package prompts

import (
	"fmt"
	"strings"
	"text/template/parse"
)

// Help texts speak of flags and values, never of template expressions: a `when` such as
// `and (eq .db "postgres") (has "email" .alert_channels)` reads
// "--db=postgres and --alert-channels includes email".

// whenFallback is said of a condition the translation does not know; never the expression.
const whenFallback = "other answers call for it"

// DescribeWhen says in words when a question with this `when` condition is asked, for
// "only when …" in help texts.
func DescribeWhen(expr string) string {
	n, ok := parseAction(expr)
	if !ok {
		return whenFallback
	}
	if s, ok := condWords(n); ok {
		return s
	}
	return whenFallback
}

// DescribeDefault gives the question's default as help shows it: a template default reads
// with placeholders, e.g. "/mnt/offsite-backups/<name>". It is "" when there is none.
func DescribeDefault(q Question) string {
	s, ok := q.Default.(string)
	if !ok || !strings.Contains(s, "{{") {
		if q.Default == nil {
			return ""
		}
		if v, err := q.Coerce(q.Default); err == nil {
			return Format(v) // a list reads as the flag takes it: email,webhook
		}
		return Format(q.Default)
	}
	t := parse.New("default")
	t.Mode = parse.SkipFuncCheck
	if _, err := t.Parse(s, "{{", "}}", map[string]*parse.Tree{}); err == nil {
		if out, ok := listWords(t.Root); ok {
			return out
		}
	}
	return "computed from other answers"
}

func parseAction(expr string) (*parse.PipeNode, bool) {
	t := parse.New("when")
	t.Mode = parse.SkipFuncCheck
	if _, err := t.Parse("{{"+expr+"}}", "{{", "}}", map[string]*parse.Tree{}); err != nil {
		return nil, false
	}
	if len(t.Root.Nodes) != 1 {
		return nil, false
	}
	a, ok := t.Root.Nodes[0].(*parse.ActionNode)
	if !ok {
		return nil, false
	}
	return a.Pipe, true
}

// condWords translates a condition built of eq, ne, has, and, or, not and boolean answers.
func condWords(n parse.Node) (string, bool) {
	switch x := n.(type) {
	case *parse.PipeNode:
		if len(x.Cmds) != 1 || len(x.Decl) > 0 {
			return "", false
		}
		return condWords(x.Cmds[0])
	case *parse.FieldNode:
		f, ok := flagOf(x)
		return f + "=true", ok
	case *parse.CommandNode:
		if len(x.Args) == 1 {
			return condWords(x.Args[0])
		}
		id, ok := x.Args[0].(*parse.IdentifierNode)
		if !ok {
			return "", false
		}
		args := x.Args[1:]
		switch id.Ident {
		case "eq", "ne":
			if len(args) < 2 {
				return "", false
			}
			f, ok := flagArg(args[0])
			if !ok {
				return "", false
			}
			var vals []string
			for _, a := range args[1:] {
				v, ok := literal(a)
				if !ok {
					return "", false
				}
				vals = append(vals, v)
			}
			if id.Ident == "ne" {
				return f + " is not " + vals[0], len(vals) == 1
			}
			if len(vals) == 1 {
				return f + "=" + vals[0], true
			}
			return f + " is " + strings.Join(vals, " or "), true
		case "has":
			if len(args) != 2 {
				return "", false
			}
			v, ok1 := literal(args[0])
			f, ok2 := flagArg(args[1])
			return f + " includes " + v, ok1 && ok2
		case "not":
			if len(args) != 1 {
				return "", false
			}
			s, ok := condWords(args[0])
			return "not (" + s + ")", ok
		case "and", "or":
			var parts []string
			for _, a := range args {
				s, ok := condWords(a)
				if !ok {
					return "", false
				}
				if strings.Contains(s, " and ") || strings.Contains(s, " or ") {
					s = "(" + s + ")"
				}
				parts = append(parts, s)
			}
			return strings.Join(parts, " "+id.Ident+" "), len(parts) > 1
		}
	}
	return "", false
}

// flagOf names the flag of an answer `.key`; context values such as `._dir` have none.
func flagOf(f *parse.FieldNode) (string, bool) {
	if len(f.Ident) != 1 || strings.HasPrefix(f.Ident[0], "_") {
		return "", false
	}
	return "--" + strings.ReplaceAll(f.Ident[0], "_", "-"), true
}

func flagArg(n parse.Node) (string, bool) {
	f, ok := n.(*parse.FieldNode)
	if !ok {
		return "", false
	}
	return flagOf(f)
}

func literal(n parse.Node) (string, bool) {
	switch x := n.(type) {
	case *parse.StringNode:
		return x.Text, true
	case *parse.NumberNode:
		return x.Text, true
	case *parse.BoolNode:
		return fmt.Sprint(x.True), true
	}
	return "", false
}

// listWords renders a default template with <key> for answers and "A when C, else B" for
// conditions.
func listWords(l *parse.ListNode) (string, bool) {
	if l == nil {
		return "", true
	}
	var b strings.Builder
	for _, n := range l.Nodes {
		switch x := n.(type) {
		case *parse.TextNode:
			b.Write(x.Text)
		case *parse.ActionNode:
			s, ok := valueWords(x.Pipe)
			if !ok {
				return "", false
			}
			b.WriteString(s)
		case *parse.IfNode:
			cond, ok1 := condWords(x.Pipe)
			then, ok2 := listWords(x.List)
			els, ok3 := listWords(x.ElseList)
			if !ok1 || !ok2 || !ok3 {
				return "", false
			}
			b.WriteString(then + " when " + cond + ", else " + els)
		default:
			return "", false
		}
	}
	return b.String(), true
}

// valueWords describes a value expression: an answer, a literal, `default D X`, or a
// sanitising function of one of those.
func valueWords(n parse.Node) (string, bool) {
	switch x := n.(type) {
	case *parse.PipeNode:
		if len(x.Cmds) != 1 || len(x.Decl) > 0 {
			return "", false
		}
		return valueWords(x.Cmds[0])
	case *parse.FieldNode:
		if len(x.Ident) != 1 {
			return "", false
		}
		if x.Ident[0] == "_dir" {
			return "<folder name>", true
		}
		return "<" + x.Ident[0] + ">", true
	case *parse.CommandNode:
		if len(x.Args) == 1 {
			return valueWords(x.Args[0])
		}
		id, ok := x.Args[0].(*parse.IdentifierNode)
		if !ok {
			return "", false
		}
		switch {
		case id.Ident == "default" && len(x.Args) == 3:
			d, ok1 := literal(x.Args[1])
			v, ok2 := valueWords(x.Args[2])
			return v + " (or " + d + ")", ok1 && ok2
		case id.Ident == "dnsLabel" || id.Ident == "lower":
			if len(x.Args) == 2 {
				return valueWords(x.Args[1])
			}
		}
	default:
		return literal(n)
	}
	return "", false
}
