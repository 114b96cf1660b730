package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/opsready/opsready/internal/project"
)

// upgradeOptions are the inputs of `opsready upgrade`.
type upgradeOptions struct {
	Dir         string
	To          string
	Sets        []string
	AnswersFile string
	DryRun      bool
	JSON        bool
	Force       bool
	Accessible  bool
	Interactive bool
}

func newUpgradeCmd(d *deps, runF func(*upgradeOptions) error) *cobra.Command {
	opts := &upgradeOptions{}
	cmd := &cobra.Command{
		Use:   "upgrade [DIR]",
		Short: "Bring a newer blueprint version or changed answers into a project",
		Long: `Re-apply the project's blueprint at a newer version (default: the newest) and/or with
changed answers, keeping the team's edits. Per file: the old render (base), your tree (ours)
and the new render (theirs) are merged three ways. Overlapping edits become conflicts with
git-style markers, recorded as unmerged in the git index; the exit code is then 3 and
` + "`opsready status`" + ` lists them. The work tree must be clean (commit first) unless --force.
New questions take their defaults; one without a default is asked on a terminal or must be
given with --set.`,
		Example: `  # newest blueprint version, with a plan first
  opsready upgrade --dry-run
  opsready upgrade

  # change an answer: add Redis everywhere it belongs
  opsready upgrade --set cache=redis ./shop`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Dir = "."
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			opts.Accessible, opts.Interactive = d.interactivity(c, opts.Accessible)
			if runF != nil {
				return runF(opts)
			}
			return runUpgrade(d, opts)
		},
	}
	f := cmd.Flags()
	// A backquoted word in a usage text is the flag's value name in help.
	f.StringVar(&opts.To, "to", "", "upgrade to blueprint `VERSION` (default: the newest)")
	f.StringArrayVar(&opts.Sets, "set", nil, "change an answer: `KEY=VALUE` (repeatable)")
	f.StringVar(&opts.AnswersFile, "answers", "", "read changed answers from the YAML `FILE`")
	f.BoolVar(&opts.DryRun, "dry-run", false, "print the plan with diffs and write nothing")
	f.BoolVar(&opts.JSON, "json", false, "print the plan/report as JSON")
	f.BoolVar(&opts.Force, "force", false, "upgrade although the work tree has uncommitted changes or is not a git repository")
	f.BoolVar(&opts.Accessible, "accessible", false, "line-by-line prompts for new questions (also ACCESSIBLE=1)")
	return cmd
}

func runUpgrade(d *deps, opts *upgradeOptions) error {
	sets, err := parseSets(opts.Sets)
	if err != nil {
		return err
	}
	ask := d.asker(opts.Interactive, opts.Accessible)
	res, err := project.Upgrade(project.UpgradeOptions{
		Dir: opts.Dir, To: opts.To, Set: sets, AnswersFile: opts.AnswersFile, Ask: ask,
		DryRun: opts.DryRun, Force: opts.Force, Version: d.version,
		OnRecover: d.recovered(opts.Dir),
	})
	if err != nil && res == nil {
		return err
	}
	if opts.JSON {
		if jerr := writeJSON(d.out, res); jerr != nil {
			return jerr
		}
	} else {
		printUpgrade(d, res)
	}
	if err != nil {
		return err
	}
	if res.Conflicts > 0 && !res.DryRun {
		return conflictsError{res.Conflicts}
	}
	return nil
}

func printUpgrade(d *deps, res *project.Upgraded) {
	verb := "upgraded"
	if res.DryRun {
		verb = "plan (nothing written):"
	}
	if res.NothingToDo {
		fmt.Fprintf(d.out, "%s is up to date: %s %s with these answers, nothing to do\n", res.Dir, res.Blueprint, res.To)
		return
	}
	fmt.Fprintf(d.out, "%s %s %s -> %s\n", verb, res.Blueprint, res.From, res.To)
	for _, c := range res.Changes {
		if c.Action == project.ActionUnchanged && c.Note == "" {
			continue
		}
		line := fmt.Sprintf("  %-12s %s", c.Action, c.Path)
		if c.From != "" {
			line += " (renamed from " + c.From + ")"
		}
		if c.Note != "" {
			line += "  (" + c.Note + ")"
		}
		fmt.Fprintln(d.out, line)
		if c.Diff != "" {
			fmt.Fprint(d.out, indent(c.Diff, "    "))
		}
	}
	fmt.Fprintf(d.out, "%d created, %d updated, %d merged, %d conflicted, %d deleted, %d kept, %d left deleted, %d unchanged\n",
		res.Count(project.ActionCreated), res.Count(project.ActionUpdated), res.Count(project.ActionMerged), res.Conflicts,
		res.Count(project.ActionDeleted), res.Count(project.ActionKept), res.Count(project.ActionLeftDeleted), res.Count(project.ActionUnchanged))
	if res.Conflicts > 0 && !res.DryRun {
		fmt.Fprintln(d.out, "resolve the conflicts (git status / git mergetool show them), then `git add` and commit")
	} else if !res.DryRun {
		fmt.Fprintln(d.out, "review with `git diff`, then commit")
	}
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString(prefix + l)
		}
	}
	return b.String()
}
