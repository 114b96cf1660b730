package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/internal/adopt"
	"github.com/opsready/opsready/internal/check"
	"github.com/opsready/opsready/internal/project"
	"github.com/opsready/opsready/prompts"
)

// adoptOptions are the inputs of `opsready adopt`.
type adoptOptions struct {
	Dir         string
	Files       []string
	Profiles    []string
	Flags       map[string]string
	Sets        []string
	AnswersFile string
	Defaults    bool
	DryRun      bool
	JSON        bool
	Accessible  bool
	Interactive bool
}

// adoptAsked are the questions adopt lets the team answer; the others follow from the compose
// model (Plan.Fixed) or do not apply to a project whose application is the team's own.
var adoptAsked = []string{
	"name", "domain", "cpu_limit", "memory_limit", "log_max_size", "log_max_file", "deploy_dir",
	"alert_channels", "alert_email_to", "smtp_from", "smtp_smarthost", "smtp_username", "telegram_chat_id",
	"prometheus_retention", "prometheus_retention_size", "runbook_base_url",
	"backup_time", "backup_full_weekday", "retention_daily", "retention_weekly", "retention_monthly",
	"offsite", "offsite_path", "offsite_s3_url", "offsite_sftp", "rpo_hours", "rto_hours", "backup_key_custodian",
}

func newAdoptCmd(d *deps, runF func(*adoptOptions) error) *cobra.Command {
	opts := &adoptOptions{Flags: map[string]string{}}
	lib := blueprints.Embedded()
	bp, err := lib.Open("webapp", "")
	if err != nil {
		panicf("embedded blueprint webapp: %v", err)
	}
	cmd := &cobra.Command{
		Use:   "adopt [DIR]",
		Short: "Add the ops layer to an existing compose project",
		Long: `Bring an existing docker compose project in DIR (default: the current folder) under opsready.

adopt loads the compose files as docker compose does (or -f), detects the stack (database
engine and version, cache, backend, frontend, proxy, data volumes, healthchecks it can add)
and writes the ops layer around the team's files, never changing one of them:
compose.prod.yaml (log rotation, restart policies, limits, healthchecks, healthy
dependencies the services lack), compose.monitoring.yaml and compose.backup.yaml for the
detected database and cache, alert rules with tests, runbooks, backup and restore-test
scripts, their timers, the documents, a pipeline of the ops layer and opsready.mk. A file
the team already has is not replaced: the new one gets a free name (compose.prod.yaml
becomes compose.prod.opsready.yaml), and the report says so. The lock file .opsready.yaml records what was detected,
so that opsready upgrade and opsready status work as for a generated project.

What cannot be detected is asked on a terminal; off a terminal it comes from flags, --set,
--answers or --defaults, as for new. A data store opsready does not cover (MongoDB, say) is
named in the report and docs/opsready.md; the rest is still adopted.

Exit codes: 0 adopted, 1 error, 2 usage error (no compose file, a file that does not load,
an unknown image reference, a project that is already an opsready project).`,
		Example: `  opsready adopt --dry-run .
  opsready adopt --defaults --domain shop.example.org .
  opsready adopt -f docker-compose.yml -f docker-compose.prod.yml --defaults ./shop`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Dir = "."
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			for _, k := range adoptAsked {
				q, err := prompts.Find(bp.Questions, k)
				if err != nil {
					continue
				}
				if f := c.Flags().Lookup(q.FlagName()); f != nil && f.Changed {
					opts.Flags[q.Key] = f.Value.String()
				}
			}
			opts.Accessible, opts.Interactive = d.interactivity(c, opts.Accessible)
			if runF != nil {
				return runF(opts)
			}
			return runAdopt(d, bp, opts)
		},
	}
	f := cmd.Flags()
	for _, k := range adoptAsked {
		q, err := prompts.Find(bp.Questions, k)
		if err != nil {
			continue // a later blueprint version dropped it
		}
		f.Var(&namedValue{s: new(string), name: q.ValueName()}, q.FlagName(), questionUsage(q))
	}
	f.StringArrayVarP(&opts.Files, "file", "f", nil, "the team's compose `FILE`, relative to DIR (repeatable; default: as docker compose)")
	f.StringArrayVar(&opts.Profiles, "profile", nil, "compose `PROFILE` to enable (repeatable; default: COMPOSE_PROFILES)")
	f.StringArrayVar(&opts.Sets, "set", nil, "answer a question as `KEY=VALUE` (repeatable; keys as in the answers file)")
	f.StringVar(&opts.AnswersFile, "answers", "", "read answers from the YAML `FILE`")
	f.BoolVar(&opts.Defaults, "defaults", false, "use the default for every question not answered otherwise")
	f.BoolVar(&opts.DryRun, "dry-run", false, "print what was detected and the file plan; write nothing")
	f.BoolVar(&opts.JSON, "json", false, "print the result as JSON")
	f.BoolVar(&opts.Accessible, "accessible", false, "line-by-line prompts for screen readers (also ACCESSIBLE=1)")
	return cmd
}

func runAdopt(d *deps, bp *blueprints.Blueprint, opts *adoptOptions) error {
	sets, err := parseSets(opts.Sets)
	if err != nil {
		return err
	}
	asked := map[string]bool{}
	for _, k := range adoptAsked {
		asked[k] = true
	}
	for k := range sets {
		if !asked[k] {
			return usageError{fmt.Errorf("`--set %s=…`: adopt decides %s from the compose files (it may set: %s)", k, k, strings.Join(adoptAsked, ", "))}
		}
	}
	p, files, err := check.LoadProject(context.Background(), opts.Dir, opts.Files, opts.Profiles, os.Environ())
	var ie check.InputError
	if errors.As(err, &ie) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	det, err := adopt.Detect(p, opts.Dir, files)
	if err != nil {
		return usageError{err}
	}
	if len(det.Services) == 0 {
		return usageError{fmt.Errorf("adopt %s: the compose files define no service: nothing to adopt", opts.Dir)}
	}
	plan, err := adopt.MakePlan(det, p)
	if err != nil {
		return usageError{err}
	}
	// Questions that do not apply to the team's own application take their defaults unasked.
	fixed := map[string]string{}
	for k, v := range plan.Fixed {
		fixed[k] = v
	}
	for _, q := range bp.Questions {
		if _, ok := fixed[q.Key]; ok || asked[q.Key] {
			continue
		}
		if q.Default != nil && !strings.Contains(fmt.Sprint(q.Default), "{{") {
			fixed[q.Key] = fmt.Sprint(q.Default)
		}
	}
	res, err := project.Adopt(project.AdoptOptions{
		Dir: opts.Dir, Detected: plan.Record, Fixed: fixed, Flags: opts.Flags, Set: sets,
		AnswersFile: opts.AnswersFile, Defaults: opts.Defaults, Ask: d.asker(opts.Interactive, opts.Accessible),
		DryRun: opts.DryRun, Version: d.version, Local: plan.Local, OnRecover: d.recovered(opts.Dir),
	})
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(d.out, struct {
			*project.Adopted
			Detected    any      `json:"detected"`
			Unsupported []string `json:"unsupported,omitempty"`
			Notes       []string `json:"notes,omitempty"`
		}{res, plan.Record, plan.Record.Unsupported, plan.Report})
	}
	printAdopt(d, opts, det, plan, res)
	return nil
}

func printAdopt(d *deps, opts *adoptOptions, det *adopt.Detection, plan *adopt.Plan, res *project.Adopted) {
	w := d.out
	fmt.Fprintf(w, "%s: compose files %s, %d services\n", opts.Dir, strings.Join(det.Files, ", "), len(det.Services))
	for _, s := range plan.Record.Services {
		var add []string
		if s.AddRestart {
			add = append(add, "restart")
		}
		if s.AddLogging {
			add = append(add, "log rotation")
		}
		if s.AddLimits {
			add = append(add, "limits")
		}
		if s.AddStopGrace {
			add = append(add, "stop grace")
		}
		if len(s.Healthcheck) > 0 {
			add = append(add, "healthcheck")
		}
		if len(s.DependsHealthy) > 0 {
			add = append(add, "healthy dependencies")
		}
		what := "nothing to add"
		if len(add) > 0 {
			what = "adds " + strings.Join(add, ", ")
		}
		role := s.Role
		if s.Engine != "" {
			role += " (" + s.Engine + ")"
		}
		fmt.Fprintf(w, "  %-16s %-20s %s\n", s.Name, role, what)
		if s.HealthWhy != "" && len(s.Healthcheck) == 0 {
			fmt.Fprintf(w, "  %-16s %-20s no healthcheck: %s\n", "", "", s.HealthWhy)
		}
	}
	for _, u := range plan.Record.Unsupported {
		fmt.Fprintf(w, "not covered: %s\n", u)
	}
	for _, n := range plan.Report {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for from, to := range res.Renamed {
		fmt.Fprintf(w, "name clash: %s is yours; opsready's is written to %s\n", from, to)
	}
	if opts.DryRun {
		fmt.Fprintf(w, "plan (%s %s), nothing written:\n", res.Blueprint, res.Version)
		for _, f := range res.Files {
			pol := f.Policy
			if pol == "" {
				pol = "local"
			}
			fmt.Fprintf(w, "  %-9s %s %-7s %7d  %s\n", f.Action, f.Mode, pol, f.Size, f.Path)
		}
		return
	}
	fmt.Fprintf(w, "adopted with %s %s: %d files written, none of yours changed\n", res.Blueprint, res.Version, len(res.Files))
	fmt.Fprintf(w, "next: make -f opsready.mk help-ops; docs/opsready.md says what was added; commit the new files\n")
	if len(res.ToFill) > 0 {
		fmt.Fprintf(w, "fill in before production (credentials only you can get): %s\n", strings.Join(res.ToFill, ", "))
	}
}
