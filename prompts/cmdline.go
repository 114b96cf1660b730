package prompts

import (
	"strings"
)

// CommandLine is the non-interactive command that gives the same answers, built from the
// same question table as the flags.
func CommandLine(prefix []string, qs []Question, answers map[string]any, args []string) string {
	parts := append([]string{}, prefix...)
	for _, q := range qs {
		v, ok := answers[q.Key]
		if !ok {
			continue
		}
		parts = append(parts, "--"+q.FlagName()+"="+shellWord(Format(v)))
	}
	for _, a := range args {
		parts = append(parts, shellWord(a))
	}
	return strings.Join(parts, " ")
}

func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
