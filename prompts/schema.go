package prompts

import (
	"encoding/json"
	"fmt"
)

// validatorPatterns give the JSON Schema a pattern for named validators where one exists.
var validatorPatterns = map[string]string{
	"dnslabel": dnsLabelRe.String(),
	"domain":   domainRe.String(),
	"cpus":     cpusRe.String(),
	"percent":  percentRe.String(),
	"url":      urlRe.String(),
	"abspath":  `^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$`,
}

// Schema returns the JSON Schema (draft 2020-12) of an answers file for the questions.
func Schema(id, title string, qs []Question) ([]byte, error) {
	props := map[string]any{}
	for _, q := range qs {
		p := map[string]any{"title": q.Title}
		if q.Help != "" {
			p["description"] = q.Help
		}
		if q.Default != nil {
			p["default"] = q.Default
		}
		switch q.Type {
		case TypeSelect:
			p["type"] = "string"
			p["enum"] = q.OptionValues()
		case TypeMultiSelect:
			p["type"] = "array"
			p["items"] = map[string]any{"type": "string", "enum": q.OptionValues()}
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
			} else if pat, ok := validatorPatterns[q.Validate.Validator]; ok {
				p["pattern"] = pat
			}
			if q.Validate.Validator == "email" {
				p["format"] = "email"
			}
		}
		if q.When != "" {
			p["$comment"] = fmt.Sprintf("asked only when: %s", q.When)
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
	return json.MarshalIndent(schema, "", "  ")
}
