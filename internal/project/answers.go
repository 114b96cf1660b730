package project

import (
	"errors"
	"fmt"
	"os"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/prompts"
)

// AnswerInputs are the textual sources of answers a command collected.
type AnswerInputs struct {
	Flags       map[string]string
	Set         map[string]string
	AnswersFile string
	Stored      map[string]any
	Defaults    bool
	Ask         prompts.Asker
	Context     map[string]any
}

// InputError marks an error in what the user gave (a flag, `--set`, an answers file, a
// missing answer): the command line, not the machine, has to change.
type InputError struct{ Err error }

func (e InputError) Error() string { return e.Err.Error() }
func (e InputError) Unwrap() error { return e.Err }

// ResolveAnswers parses and validates every source and settles the answers by precedence.
func ResolveAnswers(bp *blueprints.Blueprint, in AnswerInputs) (map[string]any, error) {
	answers, err := resolveAnswers(bp, in)
	if err != nil && !errors.Is(err, prompts.ErrAborted) {
		return nil, InputError{err}
	}
	return answers, err
}

func resolveAnswers(bp *blueprints.Blueprint, in AnswerInputs) (map[string]any, error) {
	qs := bp.Questions
	flags := map[string]any{}
	for k, text := range in.Flags {
		q, err := prompts.Find(qs, k)
		if err != nil {
			return nil, err
		}
		v, err := q.Parse(text)
		if err != nil {
			return nil, fmt.Errorf("`--%s`: %w", q.FlagName(), err)
		}
		flags[k] = v
	}
	for k, text := range in.Set {
		q, err := prompts.Find(qs, k)
		if err != nil {
			return nil, fmt.Errorf("`--set %s=%s`: %w", k, text, err)
		}
		v, err := q.Parse(text)
		if err != nil {
			return nil, fmt.Errorf("`--set %s=%s`: %w", k, text, err)
		}
		if f, ok := flags[k]; ok && prompts.Format(f) != prompts.Format(v) {
			return nil, fmt.Errorf("`--%s` and `--set %s` disagree: %s vs %s", q.FlagName(), k, prompts.Format(f), text)
		}
		flags[k] = v
	}
	var file map[string]any
	if in.AnswersFile != "" {
		data, err := os.ReadFile(in.AnswersFile)
		if err != nil {
			return nil, fmt.Errorf("`--answers`: %w", err)
		}
		file, err = prompts.LoadAnswers(qs, data)
		if err != nil {
			return nil, fmt.Errorf("`--answers` %s: %w", in.AnswersFile, err)
		}
	}
	stored := map[string]any{}
	for k, v := range in.Stored {
		q, err := prompts.Find(qs, k)
		if err != nil {
			continue // a stored answer the blueprint no longer asks is dropped
		}
		if v, err := q.Coerce(v); err == nil {
			stored[k] = v
		}
	}
	return prompts.Resolve(qs, prompts.Sources{
		Flags: flags, File: file, Stored: stored, Defaults: in.Defaults,
		Context: in.Context, Ask: in.Ask,
	})
}
