package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/opsready/opsready/internal/check"
	"github.com/opsready/opsready/prompts"
)

// checkOptions are the inputs of `opsready check`.
type checkOptions struct {
	Dir      string
	Files    []string
	Profiles []string
	Format   string // human, json or sarif
	FailOn   string
	Waivers  string
	Colour   bool
}

// findingsError ends a check that found something at or above --fail-on (exit 1).
type findingsError struct {
	n      int
	failOn check.Severity
}

func (e findingsError) Error() string {
	return fmt.Sprintf("check: %d findings at or above `--fail-on %s`", e.n, e.failOn)
}

func newCheckCmd(d *deps, runF func(*checkOptions) error) *cobra.Command {
	opts := &checkOptions{}
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check [DIR]",
		Short: "Score a compose project's production readiness",
		Long: `Load the compose files of DIR (default: the current folder) the way docker compose does
(compose.yaml or docker-compose.yml plus its override file, or COMPOSE_FILE, or -f; the
project's .env; profiles from --profile or COMPOSE_PROFILES) and report, per service and
for the repository, what is missing for production: healthchecks, dependency conditions,
restart policies, log rotation, limits, pinned images, published databases, literal
secrets, hardening; backups with a restore test, alert rules with tests, Prometheus and
Alertmanager, runbooks, CI, smoke and load tests, host log rotation, a postmortem template
and an acceptance checklist. Every finding id is described in docs/checks.md.

Waivers: a committed .opsready-waivers.yaml accepts a finding for a service with a reason;
waived findings are still listed and do not count for --fail-on:
  waivers:
    - service: node-exporter
      id: svc-host-namespace
      reason: reads the host's processes and network to monitor the host

Exit codes: 0 nothing at or above --fail-on, 1 findings at or above it, 2 usage error
(no compose file, a file that does not load, a bad waivers file).`,
		Example: `  opsready check
  opsready check -f compose.yaml -f compose.prod.yaml --fail-on medium
  opsready check --format sarif ./shop > opsready.sarif`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Dir = "."
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			if asJSON {
				if c.Flags().Changed("format") && opts.Format != "json" {
					return usageError{fmt.Errorf("`--json` and `--format %s` exclude each other", opts.Format)}
				}
				opts.Format = "json"
			}
			switch opts.Format {
			case "human", "json", "sarif":
			default:
				return usageError{fmt.Errorf("`--format %s`: want human, json or sarif", opts.Format)}
			}
			if _, err := check.ParseSeverity(opts.FailOn); err != nil {
				return usageError{fmt.Errorf("`--fail-on`: %w", err)}
			}
			opts.Colour = !prompts.Plain() && isTerminal(d.out)
			if runF != nil {
				return runF(opts)
			}
			return runCheck(d, opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&opts.Files, "file", "f", nil, "compose `FILE` to load, relative to DIR (repeatable; default: as docker compose)")
	f.StringArrayVar(&opts.Profiles, "profile", nil, "compose `PROFILE` to enable (repeatable; default: COMPOSE_PROFILES)")
	f.StringVar(&opts.Format, "format", "human", "output format: `human|json|sarif`")
	f.BoolVar(&asJSON, "json", false, "same as --format json")
	f.StringVar(&opts.FailOn, "fail-on", "high", "exit 1 when a finding at or above this severity is not waived: `low|medium|high|critical`")
	f.StringVar(&opts.Waivers, "waivers", "", "waivers `FILE`, relative to DIR (default: "+check.WaiversFile+" when present)")
	return cmd
}

func runCheck(d *deps, opts *checkOptions) error {
	failOn, err := check.ParseSeverity(opts.FailOn)
	if err != nil {
		return usageError{fmt.Errorf("`--fail-on`: %w", err)}
	}
	r, err := check.Run(context.Background(), check.Options{
		Dir: opts.Dir, Files: opts.Files, Profiles: opts.Profiles, Env: os.Environ(),
		Waivers: opts.Waivers, FailOn: failOn,
	})
	var ie check.InputError
	if errors.As(err, &ie) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	switch opts.Format {
	case "json":
		err = check.WriteJSON(d.out, r)
	case "sarif":
		err = check.WriteSARIF(d.out, r, d.version)
	default:
		err = check.WriteHuman(d.out, r, opts.Colour)
	}
	if err != nil {
		return err
	}
	if r.Failed {
		n := 0
		for _, f := range r.Findings {
			if f.Waiver == nil && f.Severity >= failOn {
				n++
			}
		}
		return findingsError{n: n, failOn: failOn}
	}
	return nil
}
