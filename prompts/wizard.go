package prompts

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/charmbracelet/huh"
)

// ErrAborted is returned when the user cancels the wizard.
var ErrAborted = errors.New("aborted by the user")

// Wizard asks questions with huh forms, one question at a time, so that conditions and
// defaults that depend on earlier answers are evaluated in Go between forms.
type Wizard struct {
	In         io.Reader
	Out        io.Writer
	Accessible bool // huh's line mode: numbered choices, no redrawing
	Plain      bool // no colour (NO_COLOR, TERM=dumb)
	lines      io.Reader
}

// Ask implements Asker.
func (w *Wizard) Ask(q Question, def any) (any, error) {
	var (
		field huh.Field
		str   string
		strs  []string
		yes   bool
	)
	desc := q.Help
	if a := q.Allowed(); q.Type != TypeSelect && q.Type != TypeConfirm && a != "text" {
		desc = strings.TrimSpace(desc + " (" + a + ")")
	}
	if def != nil {
		switch d := def.(type) {
		case []string:
			strs = d
		case bool:
			yes = d
		default:
			str = Format(d)
		}
	}
	switch q.Type {
	case TypeSelect:
		var opts []huh.Option[string]
		for _, o := range q.Options {
			if !o.AdoptOnly { // the wizard is `new`'s; adopt detects such values
				opts = append(opts, huh.NewOption(cmpOr(o.Label, o.Value), o.Value))
			}
		}
		if str == "" {
			str = q.Options[0].Value
		}
		field = huh.NewSelect[string]().Key(q.Key).Title(q.Title).Description(desc).Options(opts...).Value(&str)
	case TypeMultiSelect:
		opts := make([]huh.Option[string], len(q.Options))
		for i, o := range q.Options {
			opts[i] = huh.NewOption(cmpOr(o.Label, o.Value), o.Value)
		}
		field = huh.NewMultiSelect[string]().Key(q.Key).Title(q.Title).Description(desc).Options(opts...).Value(&strs).
			Validate(func(v []string) error { return q.Valid(v) })
	case TypeConfirm:
		field = huh.NewConfirm().Key(q.Key).Title(q.Title).Description(desc).Value(&yes)
	default: // input, number
		field = huh.NewInput().Key(q.Key).Title(q.Title).Description(desc).Value(&str).
			Validate(func(s string) error {
				if s == "" && str != "" {
					return nil // line mode keeps the default on an empty line
				}
				_, err := q.Parse(s)
				return err
			})
	}
	if w.Accessible {
		if w.lines == nil {
			w.lines = &lineReader{r: w.In}
		}
		if err := field.RunAccessible(w.Out, w.lines); err != nil {
			return nil, fmt.Errorf("ask %s: %w", q.Key, err)
		}
	} else {
		form := huh.NewForm(huh.NewGroup(field)).WithInput(w.In).WithOutput(w.Out).WithShowHelp(true)
		if w.Plain {
			form = form.WithTheme(huh.ThemeBase())
		}
		if err := form.Run(); err != nil {
			if errors.Is(err, huh.ErrUserAborted) {
				return nil, ErrAborted
			}
			return nil, fmt.Errorf("ask %s: %w", q.Key, err)
		}
		// The form clears itself; keep a line per answer so earlier choices stay in view.
		shown := str
		switch q.Type {
		case TypeSelect:
			for _, o := range q.Options {
				if o.Value == str {
					shown = cmpOr(o.Label, o.Value)
				}
			}
		case TypeMultiSelect:
			shown = strings.Join(strs, ", ")
		case TypeConfirm:
			shown = strconv.FormatBool(yes)
		}
		fmt.Fprintf(w.Out, "✓ %s: %s\n", q.Title, shown)
	}
	switch q.Type {
	case TypeMultiSelect:
		if strs == nil {
			strs = []string{}
		}
		return strs, nil
	case TypeConfirm:
		return yes, nil
	case TypeNumber:
		n, err := strconv.Atoi(strings.TrimSpace(str))
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a whole number", q.Key, str)
		}
		return n, nil
	}
	return str, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// lineReader hands out at most one line per Read. huh's line mode wraps the input in a new
// bufio.Scanner for every prompt; without this the first prompt would swallow all input.
type lineReader struct {
	r   io.Reader
	buf []byte
	eof bool
}

func (l *lineReader) Read(p []byte) (int, error) {
	for {
		if i := indexNL(l.buf); i >= 0 || (l.eof && len(l.buf) > 0) {
			end := len(l.buf)
			if i >= 0 {
				end = i + 1
			}
			n := copy(p, l.buf[:end])
			l.buf = l.buf[n:]
			return n, nil
		}
		if l.eof {
			return 0, io.EOF
		}
		chunk := make([]byte, 4096)
		n, err := l.r.Read(chunk)
		l.buf = append(l.buf, chunk[:n]...)
		if err != nil {
			l.eof = true
		}
	}
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// Plain reports whether colours should be off: NO_COLOR set or TERM=dumb.
func Plain() bool {
	return os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb"
}
