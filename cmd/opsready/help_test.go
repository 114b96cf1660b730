package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/opsready/opsready/blueprints"
)

// notForPeople are bits of template and regular-expression syntax; templateWords are a
// template's field references (.db) and comparisons (eq .db "x").
var (
	notForPeople  = regexp.MustCompile(`\{\{|\}\}|\^|\$\)|\$$|\\d|\\\.|\[0-9|\[a-z|\[A-Z|\(\?|\.\*|\]\+|\]\{`)
	templateWords = regexp.MustCompile(`(^|[\s(])\.[a-z_][a-z0-9_]*([\s)"]|$)|\b(eq|ne|has)\s+[".(]|\bdefault "[^"]*" [.(]|dnsLabel`)
)

func readsAsWords(t *testing.T, where, s string) {
	t.Helper()
	for _, line := range strings.Split(s, "\n") {
		if m := notForPeople.FindString(line); m != "" {
			t.Errorf("%s: %q shows %q", where, line, m)
		}
		if m := templateWords.FindString(line); m != "" {
			t.Errorf("%s: %q shows %q", where, line, m)
		}
	}
}

func allCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		out = append(out, allCommands(sub)...)
	}
	return out
}

// TestHlpEveryFlagNamesItsValue: no flag of any command shows a usage fragment as its
// value name (what a backquoted phrase does) or a bare Go type such as "string".
func TestHlpEveryFlagNamesItsValue(t *testing.T) {
	root := newRootCmd(&deps{out: &bytes.Buffer{}, err: &bytes.Buffer{}})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	n := 0
	for _, c := range allCommands(root) {
		c.InitDefaultHelpFlag()
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			n++
			name, usage := pflag.UnquoteUsage(f)
			where := c.CommandPath() + " --" + f.Name
			switch {
			case f.Value.Type() == "bool":
				if name != "" {
					t.Errorf("%s: a switch shows the value name %q", where, name)
				}
			case name == "" || strings.Contains(name, " ") || name != strings.ToUpper(name) && !strings.Contains(name, "|"):
				t.Errorf("%s: value name %q (want e.g. FILE, NAME[@VERSION] or go|python)", where, name)
			}
			if strings.Contains(usage, "`") {
				t.Errorf("%s: usage %q", where, usage)
			}
		})
	}
	if n < 60 {
		t.Fatalf("only %d flags seen", n)
	}
}

// TestHlpEveryHelpReadsAsWords: the --help of every command and the question list of every
// embedded blueprint version show no template expression and no regular expression.
func TestHlpEveryHelpReadsAsWords(t *testing.T) {
	root := newRootCmd(&deps{out: &bytes.Buffer{}, err: &bytes.Buffer{}})
	root.InitDefaultCompletionCmd()
	for _, c := range allCommands(root) {
		args := append(strings.Fields(c.CommandPath())[1:], "--help")
		code, out, errOut := runCLI(t, "", args...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d %s%s", args, code, out, errOut)
			continue
		}
		if strings.HasPrefix(c.CommandPath(), "opsready completion") {
			// cobra's own text shows shell syntax ($(…)); only the flags are ours to check.
			out = out[strings.Index(out, "Flags:"):]
		}
		readsAsWords(t, strings.Join(args, " "), out)
	}
	code, out, _ := runCLI(t, "", "new", "--help")
	for _, want := range []string{
		"--offsite-path PATH", "default /mnt/offsite-backups/<name>; only when --offsite=local",
		"--backup-time HH:MM", "HH:MM such as 02:30", "--log-max-size SIZE", "a size such as 10m or 1g",
		"only when --tls=letsencrypt", "only when --alert-channels includes email",
		"--answers FILE ", "--blueprint NAME[@VERSION] ", "--set KEY=VALUE ", "--db postgres|mariadb ",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("new --help lacks %q:\n%s", want, out)
		}
	}
	lib := blueprints.Embedded()
	names, _ := lib.Names()
	versions := 0
	for _, n := range names {
		vs, _ := lib.Versions(n)
		for _, v := range vs {
			versions++
			bp, err := lib.Open(n, v)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range bp.Questions {
				readsAsWords(t, n+"@"+v+" --"+q.FlagName(), questionUsage(q))
			}
			code, out, _ := runCLI(t, "", "blueprints", "show", n+"@"+v)
			questions, _, ok := strings.Cut(out, "\nchangelog:")
			if code != 0 || !ok || !strings.Contains(questions, "asked only when --") {
				t.Errorf("blueprints show %s@%s: exit %d\n%s", n, v, code, out)
			}
			readsAsWords(t, "blueprints show "+n+"@"+v, questions)
		}
	}
	if versions < 5 {
		t.Fatalf("only %d blueprint versions", versions)
	}
}
