// Package prompts turns question definitions into answers: validation, precedence of
// flags, answers files, stored answers and defaults, the terminal wizard, command-line
// flags and the JSON Schema of the answers file all derive from the same Question data.
package prompts
