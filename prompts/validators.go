package prompts

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Validator is a named check a question may use in `validate.validator`. Each is defined
// once, in validators below: validation, help texts, the JSON Schema and the list in
// docs/contributing.md all derive from it. Each accepts only values that are safe to place
// in shell, YAML and JSON after escaping.
type Validator struct {
	Name      string
	Describe  string // what a person may type, for help texts and errors
	ValueName string // the placeholder in flag help, e.g. DOMAIN
	// Pattern is the JSON Schema pattern. The check runs it too, so it is the whole rule
	// except for what extra adds (a range a regular expression states badly).
	Pattern   string
	Format    string // JSON Schema format, "" for none
	MaxLength int    // JSON Schema maxLength, 0 for none
	fail      string // completes "%q …" in the error
	re        *regexp.Regexp
	extra     func(string) bool // nil: the pattern is the rule
}

// Check reports why s fails the validator, or nil.
func (v Validator) Check(s string) error {
	if !v.re.MatchString(s) || (v.MaxLength > 0 && len(s) > v.MaxLength) || (v.extra != nil && !v.extra(s)) {
		return fmt.Errorf("%q %s", s, v.fail)
	}
	return nil
}

const domainPart = `([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}`

// validators is the table; keep it in the order docs/contributing.md lists it.
var validators = []Validator{
	{Name: "dnslabel", Describe: "lower-case letters, digits and dashes, starting with a letter, at most 40 characters", ValueName: "NAME",
		Pattern: `^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$`, fail: "is not a valid name"},
	{Name: "domain", Describe: "a fully qualified lower-case domain name such as app.example.org", ValueName: "DOMAIN",
		Pattern: `^` + domainPart + `$`, MaxLength: 253, fail: "is not a valid domain name"},
	{Name: "email", Describe: "an e-mail address such as ops@example.org", ValueName: "EMAIL",
		Pattern: `^[A-Za-z0-9_+-]+(\.[A-Za-z0-9_+-]+)*@` + domainPart + `$`, Format: "email", fail: "is not a plain e-mail address",
		extra: func(s string) bool {
			a, err := mail.ParseAddress(s)
			return err == nil && a.Address == s && a.Name == ""
		}},
	// Segments are never empty, "." or "..": the path is clean, as path.Clean would leave it.
	{Name: "abspath", Describe: "an absolute path of letters, digits, '.', '_', '-' and '/'", ValueName: "PATH",
		Pattern: `^(/([A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))+$`, fail: "is not a clean absolute path"},
	{Name: "hostport", Describe: "host:port such as smtp.example.org:587", ValueName: "HOST:PORT",
		Pattern: `^(` + domainPart + `|[0-9]{1,3}(\.[0-9]{1,3}){3}):[1-9][0-9]{0,4}$`, fail: "is not host:port",
		extra: func(s string) bool {
			host, port, _ := strings.Cut(s, ":")
			n, err := strconv.Atoi(port)
			return err == nil && n <= 65535 && (host[len(host)-1] > '9' || net.ParseIP(host) != nil)
		}},
	{Name: "percent", Describe: "a percentage below 100 such as 99.9", ValueName: "PERCENT",
		Pattern: `^[0-9]{1,2}(\.[0-9]{1,4})?$`, fail: "is not a percentage between 0 and 100",
		extra: func(s string) bool { f, err := strconv.ParseFloat(s, 64); return err == nil && f > 0 }},
	{Name: "url", Describe: "an http(s) URL of letters, digits and -._~/:% without a trailing slash", ValueName: "URL",
		Pattern: `^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*[A-Za-z0-9._~%-])?$`, fail: "is not an http(s) URL without a trailing slash",
		extra: func(s string) bool { _, err := url.Parse(s); return err == nil }},
	{Name: "cpus", Describe: "a number of CPU cores such as 0.5 or 2", ValueName: "CORES",
		Pattern: `^[0-9]{1,3}(\.[0-9]{1,2})?$`, fail: "is not a positive number of cores",
		extra: func(s string) bool { f, err := strconv.ParseFloat(s, 64); return err == nil && f > 0 }},
	// The bounds are where the derived database settings were started and measured
	// (internal/e2e/tuning): below 128 MB a database cannot hold its own working set.
	{Name: "memlimit", Describe: "a size from 128m to 32g such as 512m or 2g", ValueName: "SIZE",
		Pattern: `^[1-9][0-9]{0,5}[mg]$`, fail: "is not a size from 128m to 32g",
		extra: func(s string) bool {
			n, err := strconv.Atoi(s[:len(s)-1])
			if err != nil {
				return false
			}
			if s[len(s)-1] == 'g' {
				n *= 1024
			}
			return n >= 128 && n <= 32*1024
		}},
}

var validatorByName = func() map[string]*Validator {
	m := make(map[string]*Validator, len(validators))
	for i := range validators {
		validators[i].re = regexp.MustCompile(validators[i].Pattern)
		m[validators[i].Name] = &validators[i]
	}
	return m
}()

// LookupValidator returns the validator with the given name.
func LookupValidator(name string) (Validator, bool) {
	v, ok := validatorByName[name]
	if !ok {
		return Validator{}, false
	}
	return *v, true
}

// patternFormat describes, for people, a pattern that released blueprint versions state
// inline instead of naming a validator.
type patternFormat struct {
	Describe, ValueName string
}

// knownPatterns are the inline patterns of the released webapp versions, which cannot
// change (their content is pinned). A new version should name a validator or give
// `validate.describe` instead of adding here.
var knownPatterns = map[string]patternFormat{
	`^([01][0-9]|2[0-3]):[0-5][0-9]$`: {"HH:MM such as 02:30", "HH:MM"},
	`^[1-9][0-9]{0,5}[kmg]$`:          {"a size such as 10m or 1g (k, m or g)", "SIZE"},
	`^[1-9][0-9]{0,5}[mg]$`:           {"a size such as 512m or 2g (m or g)", "SIZE"},
	`^[1-9][0-9]{0,4}(MB|GB)$`:        {"a size such as 500MB or 10GB", "SIZE"},
	`^[1-9][0-9]{0,3}[dw]$`:           {"a number of days or weeks such as 15d or 2w", "DURATION"},
	`^-?[0-9]{1,16}$`:                 {"digits, negative for a group chat, such as -1001234567890", "ID"},
	`^[A-Za-z0-9._@+-]{1,128}$`:       {"letters, digits and . _ @ + -, at most 128 characters", "USER"},
	`^s3:https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`: {
		"s3:https://HOST/BUCKET such as s3:https://s3.example.com/shop-backups", "URL"},
	`^[a-z_][a-z0-9_.-]{0,31}@[A-Za-z0-9.-]+:/[A-Za-z0-9._/-]+$`: {
		"user@host:/path such as backup@backup.example.org:/srv/backups/shop", "TARGET"},
}

// patternHelp is what help says of a pattern nobody described: never the expression itself.
const patternHelp = "text in the blueprint's format (the answers-file schema has the exact rule)"
