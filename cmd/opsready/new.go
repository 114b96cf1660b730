package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/internal/project"
	"github.com/opsready/opsready/prompts"
)

// newOptions are the inputs of `opsready new`.
type newOptions struct {
	Dir         string
	Blueprint   string
	Flags       map[string]string
	Sets        []string
	AnswersFile string
	Defaults    bool
	DryRun      bool
	Force       bool
	JSON        bool
	Accessible  bool
	Git         bool
	Interactive bool
}

func newNewCmd(d *deps, runF func(*newOptions) error) *cobra.Command {
	opts := &newOptions{Flags: map[string]string{}}
	// Per-question flags mirror the default blueprint's newest version.
	lib := blueprints.Embedded()
	bp, err := lib.Open("webapp", "")
	if err != nil {
		panicf("embedded blueprint webapp: %v", err) // a broken build, caught by every test
	}
	cmd := &cobra.Command{
		Use:   "new [DIR]",
		Short: "Generate a project from a blueprint",
		Long: `Generate a project from a blueprint version into DIR (default: the current folder).

On a terminal a wizard asks every question that flags, --set and --answers did not
answer. Off a terminal nothing is asked: every answer must come from a flag, --set,
--answers or --defaults, and a missing one is a usage error naming its flag.
Precedence: flag or --set > --answers FILE > default (with --defaults) > prompt.
Nothing is written until every file has rendered; a failure leaves nothing behind.`,
		Example: `  # interactive wizard
  opsready new ./shop

  # scripted: defaults for everything not given
  opsready new --defaults --backend python --db mariadb --cache redis ./shop

  # from an answers file, showing the plan only
  opsready new --answers answers.yaml --dry-run ./shop`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Dir = "."
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			for _, q := range bp.Questions {
				if f := c.Flags().Lookup(q.FlagName()); f != nil && f.Changed {
					opts.Flags[q.Key] = f.Value.String()
				}
			}
			opts.Accessible, opts.Interactive = d.interactivity(c, opts.Accessible)
			if c.Flags().Changed("git") && c.Flags().Changed("no-git") {
				return usageError{fmt.Errorf("`--git` and `--no-git` exclude each other")}
			}
			if noGit, _ := c.Flags().GetBool("no-git"); noGit {
				opts.Git = false
			}
			if runF != nil {
				return runF(opts)
			}
			return runNew(d, opts)
		},
	}
	f := cmd.Flags()
	for _, q := range bp.Questions {
		f.Var(&namedValue{s: new(string), name: q.ValueName()}, q.FlagName(), questionUsage(q))
		if vals := q.OfferedValues(); len(vals) > 0 {
			_ = cmd.RegisterFlagCompletionFunc(q.FlagName(), cobra.FixedCompletions(vals, cobra.ShellCompDirectiveNoFileComp))
		}
	}
	// A backquoted word in a usage text is the flag's value name in help.
	f.StringVar(&opts.Blueprint, "blueprint", "webapp", "generate from blueprint `NAME[@VERSION]`; opsready blueprints lists them")
	f.StringArrayVar(&opts.Sets, "set", nil, "answer a question as `KEY=VALUE` (repeatable; keys as in the answers file)")
	f.StringVar(&opts.AnswersFile, "answers", "", "read answers from the YAML `FILE`; opsready blueprints schema webapp prints its JSON Schema")
	f.BoolVar(&opts.Defaults, "defaults", false, "use the default for every question not answered otherwise")
	f.BoolVar(&opts.DryRun, "dry-run", false, "print the file plan and write nothing")
	f.BoolVar(&opts.Force, "force", false, "write into a folder that is not empty")
	f.BoolVar(&opts.JSON, "json", false, "print the result as JSON")
	f.BoolVar(&opts.Accessible, "accessible", false, "line-by-line prompts for screen readers (also ACCESSIBLE=1)")
	f.BoolVar(&opts.Git, "git", true, "initialise a git repository and commit the generated files")
	f.Bool("no-git", false, "do not create a git repository")
	_ = cmd.RegisterFlagCompletionFunc("blueprint", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return blueprintRefs(lib), cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func blueprintRefs(lib blueprints.Library) []string {
	var refs []string
	names, _ := lib.Names()
	for _, n := range names {
		refs = append(refs, n)
		vs, _ := lib.Versions(n)
		for _, v := range vs {
			refs = append(refs, n+"@"+v)
		}
	}
	return refs
}

func runNew(d *deps, opts *newOptions) error {
	sets, err := parseSets(opts.Sets)
	if err != nil {
		return err
	}
	ask := d.asker(opts.Interactive, opts.Accessible)
	asked := false
	askOnce := ask
	if ask != nil {
		askOnce = func(q prompts.Question, def any) (any, error) {
			asked = true
			return ask(q, def)
		}
	}
	res, err := project.Create(project.CreateOptions{
		Dir: opts.Dir, Blueprint: opts.Blueprint, Flags: opts.Flags, Set: sets,
		AnswersFile: opts.AnswersFile, Defaults: opts.Defaults, Ask: askOnce,
		Force: opts.Force, DryRun: opts.DryRun, Git: opts.Git, Version: d.version,
		OnRecover: d.recovered(opts.Dir),
	})
	if err != nil {
		return err
	}
	equivalent := ""
	if asked {
		args := []string{"opsready", "new"}
		if opts.Blueprint != "webapp" {
			args = append(args, "--blueprint="+res.Blueprint+"@"+res.Version)
		}
		equivalent = prompts.CommandLine(args, res.Questions, res.Answers, []string{opts.Dir})
	}
	if opts.JSON {
		return writeJSON(d.out, struct {
			*project.Created
			Command string `json:"command,omitempty"`
		}{res, equivalent})
	}
	rel := opts.Dir
	if opts.DryRun {
		fmt.Fprintf(d.out, "plan for %s (%s %s), nothing written:\n", rel, res.Blueprint, res.Version)
		for _, f := range res.Files {
			pol := f.Policy
			if pol == "" {
				pol = "local"
			}
			fmt.Fprintf(d.out, "  %-9s %s %-7s %7d  %s\n", f.Action, f.Mode, pol, f.Size, f.Path)
		}
	} else {
		fmt.Fprintf(d.out, "generated %s %s in %s: %d files", res.Blueprint, res.Version, rel, len(res.Files))
		if res.Commit != "" {
			fmt.Fprintf(d.out, ", committed %s", res.Commit[:12])
		}
		fmt.Fprintln(d.out)
		fmt.Fprintf(d.out, "next: cd %s && make up   (secrets are in %s, git-ignored)\n", shellPath(rel), filepath.Join(rel, "secrets"))
		if len(res.ToFill) > 0 {
			fmt.Fprintf(d.out, "fill in before production (credentials only you can get): %s\n", strings.Join(res.ToFill, ", "))
		}
	}
	if equivalent != "" {
		fmt.Fprintf(d.out, "\nthe same without the wizard:\n  %s\n", equivalent)
	}
	return nil
}

func shellPath(p string) string {
	if strings.ContainsAny(p, " '\"$`\\") {
		return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
	}
	return p
}

func panicf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
