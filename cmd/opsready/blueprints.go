package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/internal/project"
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
	var showFiles bool
	var sets []string
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
			if showFiles {
				return showFileSources(d, lib, bp, sets)
			}
			fmt.Fprintf(d.out, "%s %s: %s\n\nquestions (flag, allowed values, default):\n", bp.Name, bp.Version, bp.Description)
			for _, q := range bp.Questions {
				def := prompts.DescribeDefault(q)
				if def == "" {
					def = "-"
				}
				fmt.Fprintf(d.out, "  --%s  %s\n      %s; default: %s\n", q.FlagName(), q.Title, q.Allowed(), def)
				if q.When != "" {
					fmt.Fprintf(d.out, "      asked only when %s\n", prompts.DescribeWhen(q.When))
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
	show.Flags().BoolVar(&showFiles, "files", false, "list the files the defaults generate, each with the templates, partials and slot fragments that produced it")
	show.Flags().StringArrayVar(&sets, "set", nil, "with --files: an answer other than the default, as `KEY=VALUE` (repeatable)")
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

// showFileSources prints, per generated file, where it came from in the library.
func showFileSources(d *deps, lib blueprints.Library, bp *blueprints.Blueprint, sets []string) error {
	set, err := parseSets(sets)
	if err != nil {
		return err
	}
	files, err := project.FileSources(lib, bp, set)
	if err != nil {
		return usageError{err}
	}
	fmt.Fprintf(d.out, "%s %s: %d files with the defaults%s\n", bp.Name, bp.Version, len(files), map[bool]string{true: " and --set", false: ""}[len(sets) > 0])
	for _, f := range files {
		fmt.Fprintf(d.out, "%s\n", f.Path)
		for i, s := range f.Sources {
			role := "template"
			if i > 0 {
				role = "  uses  "
			}
			fmt.Fprintf(d.out, "    %s %s\n", role, s)
		}
	}
	return nil
}
