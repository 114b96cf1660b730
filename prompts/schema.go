package prompts

import (
	"encoding/json"
	"strings"
	"text/template/parse"
)

// Schema returns the JSON Schema (draft 2020-12) of an answers file for the questions.
//
// A conditional question becomes an if/then: when the file's own answers rule the question
// out (`offsite: s3` for `offsite_path`), the key must be absent, since the loader would
// drop its value. When the file leaves the condition open (the answer comes from a flag or
// a default), the key is allowed.
func Schema(id, title string, qs []Question) ([]byte, error) {
	props := map[string]any{}
	var conds []any
	for _, q := range qs {
		p := map[string]any{"title": q.Title}
		if q.Help != "" {
			p["description"] = q.Help
		}
		if s, ok := q.Default.(string); ok && strings.Contains(s, "{{") {
			// A default computed from other answers is no value an editor could insert.
			p["description"] = strings.TrimSpace(q.Help + " Default: " + DescribeDefault(q) + ".")
		} else if q.Default != nil {
			p["default"] = q.Default
		}
		switch q.Type {
		case TypeSelect:
			p["type"] = "string"
			p["enum"] = q.OfferedValues()
		case TypeMultiSelect:
			p["type"] = "array"
			p["items"] = map[string]any{"type": "string", "enum": q.OfferedValues()}
			p["uniqueItems"] = true
			if q.Validate.Required {
				p["minItems"] = 1
			}
		case TypeConfirm:
			p["type"] = "boolean"
		case TypeNumber:
			p["type"] = "integer"
			if q.Validate.Min != nil {
				p["minimum"] = *q.Validate.Min
			}
			if q.Validate.Max != nil {
				p["maximum"] = *q.Validate.Max
			}
		default:
			p["type"] = "string"
			if q.Validate.Required {
				p["minLength"] = 1
			}
			if q.Validate.Pattern != "" {
				p["pattern"] = q.Validate.Pattern
			} else if v, ok := LookupValidator(q.Validate.Validator); ok {
				p["pattern"] = v.Pattern
				if v.Format != "" {
					p["format"] = v.Format
				}
				if v.MaxLength > 0 {
					p["maxLength"] = v.MaxLength
				}
			}
		}
		if q.When != "" {
			p["$comment"] = "asked only when " + DescribeWhen(q.When)
			if pipe, ok := parseAction(q.When); ok {
				if ruledOut, ok := condSchema(pipe, false); ok {
					conds = append(conds, map[string]any{
						"if":   ruledOut,
						"then": map[string]any{"properties": map[string]any{q.Key: false}},
					})
				}
			}
		}
		props[q.Key] = p
	}
	schema := map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"$id":                  id,
		"title":                title,
		"type":                 "object",
		"properties":           props,
		"additionalProperties": false,
	}
	if len(conds) > 0 {
		schema["allOf"] = conds
	}
	return json.MarshalIndent(schema, "", "  ")
}

// condSchema is a schema that holds when the file's answers make the condition certainly
// hold (want true) or certainly fail (want false). An answer the file does not give leaves
// the condition open, so both schemas require the keys they look at.
func condSchema(n parse.Node, want bool) (map[string]any, bool) {
	on := func(key string, s map[string]any) map[string]any {
		return map[string]any{"required": []string{key}, "properties": map[string]any{key: s}}
	}
	negate := func(s map[string]any, neg bool) map[string]any {
		if neg {
			return map[string]any{"not": s}
		}
		return s
	}
	switch x := n.(type) {
	case *parse.PipeNode:
		if len(x.Cmds) != 1 || len(x.Decl) > 0 {
			return nil, false
		}
		return condSchema(x.Cmds[0], want)
	case *parse.FieldNode:
		if _, ok := flagOf(x); !ok {
			return nil, false
		}
		return on(x.Ident[0], map[string]any{"const": want}), true
	case *parse.CommandNode:
		if len(x.Args) == 1 {
			return condSchema(x.Args[0], want)
		}
		id, ok := x.Args[0].(*parse.IdentifierNode)
		if !ok {
			return nil, false
		}
		args := x.Args[1:]
		switch id.Ident {
		case "eq", "ne":
			f, ok := args[0].(*parse.FieldNode)
			if len(args) < 2 || !ok {
				return nil, false
			}
			if _, ok := flagOf(f); !ok {
				return nil, false
			}
			var vals []any
			for _, a := range args[1:] {
				v, ok := jsonLiteral(a)
				if !ok {
					return nil, false
				}
				vals = append(vals, v)
			}
			if id.Ident == "ne" && len(vals) != 1 {
				return nil, false
			}
			holds := want == (id.Ident == "eq")
			return on(f.Ident[0], negate(map[string]any{"enum": vals}, !holds)), true
		case "has":
			f, ok := args[len(args)-1].(*parse.FieldNode)
			if len(args) != 2 || !ok {
				return nil, false
			}
			v, ok := jsonLiteral(args[0])
			if _, isFlag := flagOf(f); !ok || !isFlag {
				return nil, false
			}
			return on(f.Ident[0], negate(map[string]any{"contains": map[string]any{"const": v}}, !want)), true
		case "not":
			if len(args) != 1 {
				return nil, false
			}
			return condSchema(args[0], !want)
		case "and", "or":
			var parts []any
			for _, a := range args {
				s, ok := condSchema(a, want)
				if !ok {
					return nil, false
				}
				parts = append(parts, s)
			}
			// and holds when all parts hold and fails when any fails; or the other way round.
			if (id.Ident == "and") == want {
				return map[string]any{"allOf": parts}, true
			}
			return map[string]any{"anyOf": parts}, true
		}
	}
	return nil, false
}

func jsonLiteral(n parse.Node) (any, bool) {
	switch x := n.(type) {
	case *parse.StringNode:
		return x.Text, true
	case *parse.NumberNode:
		if x.IsInt {
			return x.Int64, true
		}
		return x.Float64, x.IsFloat
	case *parse.BoolNode:
		return x.True, true
	}
	return nil, false
}
