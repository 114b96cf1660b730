package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/opsready/opsready/internal/project"
	"github.com/opsready/opsready/prompts"
)

// Exit codes, as documented in `opsready --help`.
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2
	exitConflicts = 3
	exitAborted   = 130
)

// usageError marks errors caused by how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// deps are what commands need from the outside world, injectable in tests.
type deps struct {
	in        io.Reader
	out, err  io.Writer
	canPrompt bool
	version   string
}

func run(args []string, in io.Reader, out, errOut io.Writer) int {
	d := &deps{in: in, out: out, err: errOut, version: buildVersion()}
	d.canPrompt = isTerminal(in) && isTerminal(out)
	root := newRootCmd(d)
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ce conflictsError
	switch {
	case errors.As(err, &ce):
		return exitConflicts
	case errors.Is(err, prompts.ErrAborted):
		fmt.Fprintln(errOut, "opsready: aborted, nothing was written")
		return exitAborted
	}
	fmt.Fprintf(errOut, "opsready: %v\n", err)
	var ue usageError
	var ie project.InputError
	if errors.As(err, &ue) || errors.As(err, &ie) || isFlagError(err) {
		fmt.Fprintln(errOut, "run `opsready --help` or `opsready <command> --help` for usage")
		return exitUsage
	}
	return exitError
}

// conflictsError ends a command that finished but left conflicts to resolve (exit 3).
type conflictsError struct{ n int }

func (e conflictsError) Error() string { return fmt.Sprintf("%d conflicts to resolve", e.n) }

func isTerminal(f any) bool {
	if fd, ok := f.(interface{ Fd() uintptr }); ok {
		return isatty.IsTerminal(fd.Fd()) || isatty.IsCygwinTerminal(fd.Fd())
	}
	return false
}

func isFlagError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "unknown flag") || strings.Contains(s, "unknown shorthand") ||
		strings.Contains(s, "invalid argument") || strings.Contains(s, "flag needs an argument") ||
		strings.Contains(s, "accepts at most") || strings.Contains(s, "accepts ") || strings.Contains(s, "unknown command")
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newRootCmd(d *deps) *cobra.Command {
	root := &cobra.Command{
		Use:   "opsready",
		Short: "Generate production-ready service repositories and keep them up to date",
		Long: `opsready generates a repository in which backups with restore tests, log rotation,
monitoring, healthchecks, resource quotas, CI and runbooks are already there and tested,
and later brings newer blueprint versions into it without losing your edits.

Exit codes: 0 ok, 1 error, 2 usage error, 3 upgrade finished with conflicts, 130 aborted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{flagErrorWithHint(c, err)}
	})
	root.AddCommand(newNewCmd(d, nil), newUpgradeCmd(d, nil), newStatusCmd(d), newCheckCmd(d, nil), newAdoptCmd(d, nil), newBlueprintsCmd(d), newVersionCmd(d))
	return root
}

// flagErrorWithHint adds a "did you mean" to an unknown flag error.
func flagErrorWithHint(c *cobra.Command, err error) error {
	msg := err.Error()
	name, ok := strings.CutPrefix(msg, "unknown flag: --")
	if !ok {
		return err
	}
	var names []string
	c.Flags().VisitAll(func(f *pflagFlag) { names = append(names, f.Name) })
	return fmt.Errorf("unknown flag `--%s`%s", name, prompts.DidYouMean(name, names))
}

// interactivity decides once per command whether to prompt and in which mode: prompts need
// a terminal on stdin and stdout, except huh's line mode asked for with an explicit
// --accessible, which works on a pipe. ACCESSIBLE=1 also selects line mode.
func (d *deps) interactivity(c *cobra.Command, accessible bool) (lineMode, prompt bool) {
	explicit := c.Flags().Changed("accessible")
	if !explicit && os.Getenv("ACCESSIBLE") != "" {
		accessible = true
	}
	return accessible, d.canPrompt || (accessible && explicit)
}

// asker returns the wizard's question function, or nil when nothing may be asked.
func (d *deps) asker(interactive, accessible bool) prompts.Asker {
	if !interactive {
		return nil
	}
	w := &prompts.Wizard{In: d.in, Out: d.err, Accessible: accessible, Plain: prompts.Plain()}
	return w.Ask
}

// parseSets splits `--set key=value` flags; the keys are checked against the blueprint later.
func parseSets(sets []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("`--set %s`: want key=value", s)}
		}
		out[k] = v
	}
	return out, nil
}

// recovered reports on stderr an interrupted write that a command finished or undid before
// doing its own work.
func (d *deps) recovered(dir string) func(project.Recovery) {
	return func(r project.Recovery) {
		fmt.Fprintf(d.err, "opsready: %s: %s\n", dir, r)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newVersionCmd(d *deps) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print opsready's version and build information",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintf(d.out, "opsready %s\n", d.version)
			if bi, ok := debug.ReadBuildInfo(); ok {
				fmt.Fprintf(d.out, "go %s\n", bi.GoVersion)
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" || s.Key == "vcs.time" || s.Key == "vcs.modified" {
						fmt.Fprintf(d.out, "%s %s\n", s.Key, s.Value)
					}
				}
			}
			return nil
		},
	}
}
