package check

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ANSI colours by severity; used only when the caller says the output is a colour terminal.
var sevColour = map[Severity]string{Critical: "\x1b[1;31m", High: "\x1b[31m", Medium: "\x1b[33m", Low: "\x1b[36m"}

const (
	dim   = "\x1b[2m"
	bold  = "\x1b[1m"
	reset = "\x1b[0m"
)

// WriteHuman writes the report grouped by service, repository-level findings last, waived
// findings listed with their reasons.
func WriteHuman(w io.Writer, r *Report, colour bool) error {
	paint := func(code, s string) string {
		if !colour {
			return s
		}
		return code + s + reset
	}
	var b strings.Builder
	fmt.Fprintf(&b, "checked %s: %d services\n", strings.Join(r.Files, ", "), len(r.Services))
	group := "\x00"
	for _, f := range r.Findings {
		if f.Service != group {
			group = f.Service
			name := "service " + f.Service
			if f.Service == "" {
				name = "repository"
			}
			fmt.Fprintf(&b, "\n%s\n", paint(bold, name))
		}
		sev := fmt.Sprintf("%-8s", strings.ToUpper(f.Severity.String()))
		rest := fmt.Sprintf("%-22s %s:%d  %s", f.ID, f.File, f.Line, f.Why)
		if f.Waiver != nil {
			fmt.Fprintf(&b, "%s\n", paint(dim, "  "+sev+" "+rest))
			fmt.Fprintf(&b, "%s\n", paint(dim, fmt.Sprintf("           waived (%s:%d): %s", f.Waiver.File, f.Waiver.Line, f.Waiver.Reason)))
			continue
		}
		fmt.Fprintf(&b, "  %s %s\n", paint(sevColour[f.Severity], sev), rest)
		fix := strings.Split(f.Fix, "\n")
		fmt.Fprintf(&b, "           fix: %s\n", fix[0])
		for _, l := range fix[1:] {
			fmt.Fprintf(&b, "                %s\n", l)
		}
		if f.AdoptLeft != "" && f.AdoptLeft != f.Fix {
			fmt.Fprintf(&b, "           not adopted: %s\n", f.AdoptLeft)
		}
	}
	for _, u := range r.UnusedWaivers {
		fmt.Fprintf(&b, "\nunused waiver %s:%d: %s %s matches no finding\n", u.File, u.Line, u.ID, u.Service)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nnote: %s\n", n)
	}
	c := r.Counts
	total := c.Critical + c.High + c.Medium + c.Low
	fmt.Fprintf(&b, "\n%d findings: %d critical, %d high, %d medium, %d low; %d waived. ", total, c.Critical, c.High, c.Medium, c.Low, c.Waived)
	if r.Failed {
		fmt.Fprintf(&b, "%s\n", paint(sevColour[Critical], fmt.Sprintf("Fails: findings at or above %s.", r.FailOn)))
	} else {
		fmt.Fprintf(&b, "Passes: nothing at or above %s.\n", r.FailOn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
