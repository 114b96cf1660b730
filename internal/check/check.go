package check

import (
	"cmp"
	"context"
	"github.com/opsready/opsready/internal/lock"
	"path/filepath"
	"slices"
	"strings"
)

// Options are the inputs of Run.
type Options struct {
	Dir      string   // project directory
	Files    []string // `-f` files, relative to Dir; empty: COMPOSE_FILE or the default names
	Profiles []string // `--profile`; empty: COMPOSE_PROFILES
	// Env is the process environment used for interpolation, COMPOSE_FILE and
	// COMPOSE_PROFILES (os.Environ() in the CLI; tests pass their own). Dir/.env adds to it.
	Env []string
	// Waivers is the waivers file, relative to Dir; empty: WaiversFile when it exists.
	Waivers string
	FailOn  Severity // zero means High
}

// Finding is one readiness gap, where it is and how to fix it.
type Finding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	Service  string   `json:"service,omitempty"` // empty for repository-level findings
	File     string   `json:"file"`              // relative to the project directory
	Line     int      `json:"line"`
	Why      string   `json:"why"`
	Fix      string   `json:"fix"`
	Waiver   *Waiver  `json:"waived,omitempty"`
	// AdoptLeft says, in a project `opsready adopt` brought in, why adopt left this to the team.
	AdoptLeft string `json:"adopt_left,omitempty"`
}

// Counts are findings by severity; waived ones only in Waived.
type Counts struct {
	Critical int `json:"critical"`
	High     int `json:"high"`
	Medium   int `json:"medium"`
	Low      int `json:"low"`
	Waived   int `json:"waived"`
}

// Report is the result of a check.
type Report struct {
	Files    []string  `json:"files"` // compose files loaded, relative to the project
	Services []string  `json:"services"`
	Findings []Finding `json:"findings"`
	Counts   Counts    `json:"counts"`
	FailOn   Severity  `json:"fail_on"`
	// Failed is true when a finding that is not waived is at or above FailOn.
	Failed bool `json:"failed"`
	// UnusedWaivers match no finding: stale entries worth deleting.
	UnusedWaivers []Waiver `json:"unused_waivers,omitempty"`
	// Notes say what the check could not see or where to look next.
	Notes []string `json:"notes,omitempty"`
}

type checker struct {
	l        *loaded
	findings []Finding
}

func (c *checker) add(id, service string, pos at, why, fix string) {
	r, _ := ruleByID(id)
	c.findings = append(c.findings, Finding{ID: id, Severity: r.Severity, Service: service,
		File: c.l.relPath(pos.path), Line: pos.line, Why: why, Fix: fix})
}

// Run loads the project and checks it. Errors about the input (exit 2 in the CLI) are
// InputError; Run writes nothing.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.FailOn == 0 {
		opts.FailOn = High
	}
	l, err := load(ctx, opts.Dir, opts.Files, opts.Profiles, opts.Env)
	if err != nil {
		return nil, err
	}
	wfile, required := opts.Waivers, opts.Waivers != ""
	if wfile == "" {
		wfile = WaiversFile
	}
	if !filepath.IsAbs(wfile) {
		wfile = filepath.Join(l.dir, wfile)
	}
	waivers, err := readWaivers(wfile, l.relPath(wfile), required)
	if err != nil {
		return nil, err
	}
	c := &checker{l: l}
	if err := c.checkServices(); err != nil {
		return nil, err
	}
	files, err := readRepo(l.dir)
	if err != nil {
		return nil, err
	}
	c.checkRepo(files)

	if lk, err := lock.Read(l.dir); err == nil {
		explainAdopted(c.findings, lk.Adopt)
	}
	r := &Report{Services: l.serviceNames(), FailOn: opts.FailOn, Findings: c.findings}
	for _, f := range l.files {
		r.Files = append(r.Files, l.relPath(f))
	}
	r.UnusedWaivers = applyWaivers(r.Findings, waivers)
	sortFindings(r.Findings)
	for _, f := range r.Findings {
		if f.Waiver != nil {
			r.Counts.Waived++
			continue
		}
		switch f.Severity {
		case Critical:
			r.Counts.Critical++
		case High:
			r.Counts.High++
		case Medium:
			r.Counts.Medium++
		case Low:
			r.Counts.Low++
		}
		if f.Severity >= opts.FailOn {
			r.Failed = true
		}
	}
	r.Notes = notes(l, opts)
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	return r, nil
}

func applyWaivers(fs []Finding, ws []Waiver) []Waiver {
	used := make([]bool, len(ws))
	for i := range fs {
		for j, w := range ws {
			if w.ID == fs[i].ID && w.Service == fs[i].Service {
				fs[i].Waiver = &ws[j]
				used[j] = true
				break
			}
		}
	}
	var unused []Waiver
	for j, w := range ws {
		if !used[j] {
			unused = append(unused, w)
		}
	}
	return unused
}

// sortFindings orders by service (repository last), then severity (highest first), then
// rule order, then position.
func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if (a.Service == "") != (b.Service == "") {
			if a.Service == "" {
				return 1
			}
			return -1
		}
		return cmp.Or(strings.Compare(a.Service, b.Service), cmp.Compare(b.Severity, a.Severity),
			cmp.Compare(ruleIndex(a.ID), ruleIndex(b.ID)),
			strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
}

// notes point at production files that the default discovery did not load: a project with
// a compose.prod.yaml is meant to be checked with it.
func notes(l *loaded, opts Options) []string {
	if len(opts.Files) > 0 || l.env["COMPOSE_FILE"] != "" {
		return nil
	}
	if lockedFiles(l.dir) != nil {
		return []string{"checked the production files " + lock.FileName + " names (" + strings.Join(relAll(l), ", ") + "); name others with `-f`"}
	}
	var out []string
	for _, n := range []string{"compose.prod.yaml", "compose.prod.yml", "compose.production.yaml", "docker-compose.prod.yml", "docker-compose.prod.yaml", "docker-compose.production.yml"} {
		if _, err := filepath.Glob(filepath.Join(l.dir, n)); err == nil && fileExists(filepath.Join(l.dir, n)) {
			out = append(out, "checked the files `docker compose up` uses ("+strings.Join(relAll(l), ", ")+"); "+n+
				" was not loaded: for production, run `opsready check -f "+relAll(l)[0]+" -f "+n+"` (or set COMPOSE_FILE)")
			break
		}
	}
	return out
}

func relAll(l *loaded) []string {
	var out []string
	for _, f := range l.files {
		out = append(out, l.relPath(f))
	}
	return out
}
