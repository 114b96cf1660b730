package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/prompts"
)

func newBlueprintsCmd(d *deps) *cobra.Command {
	lib := blueprints.Embedded()
	cmd := &cobra.Command{
		Use:   "blueprints",
		Short: "List blueprints and their versions",
		Example: `  opsready blueprints
  opsready blueprints show webapp@1.0.0
  opsready blueprints schema webapp > answers.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			names, err := lib.Names()
			if err != nil {
				return err
			}
			for _, n := range names {
				vs, err := lib.Versions(n)
				if err != nil {
					return err
				}
				bp, err := lib.Open(n, "")
				if err != nil {
					return err
				}
				fmt.Fprintf(d.out, "%s\t%s\t%s\n", n, strings.Join(vs, ", "), bp.Description)
			}
			return nil
		},
	}
	complete := func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return blueprintRefs(lib), cobra.ShellCompDirectiveNoFileComp
	}
	show := &cobra.Command{
		Use:               "show NAME[@VERSION]",
		Short:             "Print a blueprint version's questions, defaults and changelog",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: complete,
		RunE: func(c *cobra.Command, args []string) error {
			bp, err := openRef(lib, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(d.out, "%s %s: %s\n\nquestions (flag, allowed values, default):\n", bp.Name, bp.Version, bp.Description)
			for _, q := range bp.Questions {
				def := "-"
				if q.Default != nil {
					def = prompts.Format(q.Default)
				}
				fmt.Fprintf(d.out, "  --%s  %s\n      %s; default: %s\n", q.FlagName(), q.Title, q.Allowed(), def)
				if q.When != "" {
					fmt.Fprintf(d.out, "      asked only when: %s\n", q.When)
				}
			}
			fmt.Fprintln(d.out, "\nchangelog:")
			for _, r := range bp.History {
				fmt.Fprintf(d.out, "  %s\n", r.Version)
				for _, ch := range r.Changes {
					fmt.Fprintf(d.out, "    - %s\n", strings.ReplaceAll(ch, "\n", "\n      "))
				}
			}
			return nil
		},
	}
	schema := &cobra.Command{
		Use:               "schema NAME[@VERSION]",
		Short:             "Print the JSON Schema of a blueprint version's answers file",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: complete,
		RunE: func(c *cobra.Command, args []string) error {
			bp, err := openRef(lib, args[0])
			if err != nil {
				return err
			}
			id := fmt.Sprintf("https://opsready.dev/schemas/%s/%s/answers.json", bp.Name, bp.Version)
			out, err := prompts.Schema(id, fmt.Sprintf("opsready answers for %s %s", bp.Name, bp.Version), bp.Questions)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(d.out, string(out))
			return err
		},
	}
	cmd.AddCommand(show, schema)
	return cmd
}

// openRef opens NAME[@VERSION]; an unknown one is a usage error.
func openRef(lib blueprints.Library, ref string) (*blueprints.Blueprint, error) {
	bp, err := lib.Open(blueprints.ParseRef(ref))
	if err != nil {
		return nil, usageError{err}
	}
	return bp, nil
}
