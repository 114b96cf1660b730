package generator

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

// notHermetic are sprig functions that HermeticTxtFuncMap still exposes although their
// output depends on randomness, the clock or the host: rendering must be deterministic.
var notHermetic = []string{
	"shuffle", "randInt", "genPrivateKey", "genCA", "genCAWithKey", "genSelfSignedCert",
	"genSelfSignedCertWithKey", "genSignedCert", "genSignedCertWithKey", "bcrypt", "htpasswd",
	"encryptAES", "decryptAES", "ago", "toDate", "mustToDate", "osBase", "osDir", "osClean",
	"osExt", "osIsAbs", "getHostByName", "env", "expandenv", "now", "date", "dateInZone",
	"date_in_zone", "dateModify", "date_modify", "mustDateModify", "must_date_modify",
	"htmlDate", "htmlDateInZone", "duration", "durationRound", "unixEpoch", "randAlpha",
	"randAlphaNum", "randAscii", "randNumeric", "randBytes", "uuidv4", "derivePassword",
}

// Funcs returns the template function map: sprig's hermetic functions plus ours.
// It is built once; text/template copies it into each template.
var Funcs = sync.OnceValue(buildFuncs)

func buildFuncs() template.FuncMap {
	m := sprig.HermeticTxtFuncMap()
	for _, name := range notHermetic {
		delete(m, name)
	}
	for name, fn := range own {
		m[name] = fn
	}
	return m
}

var own = template.FuncMap{
	"composeString": composeString,
	"dnsLabel":      dnsLabel,
	"envName":       envName,
	"jsonString":    jsonString,
	"shellWord":     shellWord,
	"shellQuote":    shellQuote,
	"yamlString":    yamlString,
}

var nonLabel = regexp.MustCompile(`[^a-z0-9]+`)

// dnsLabel lower-cases s and folds everything but letters and digits into single dashes,
// giving a name usable as a compose project, image or host name ("" stays "").
func dnsLabel(s string) string {
	s = strings.Trim(nonLabel.ReplaceAllString(strings.ToLower(s), "-"), "-")
	for s != "" && (s[0] >= '0' && s[0] <= '9') {
		s = strings.TrimLeft(s[1:], "-")
	}
	if len(s) > 40 {
		s = strings.TrimRight(s[:40], "-")
	}
	return s
}

var nonEnv = regexp.MustCompile(`[^A-Z0-9]+`)

// envName turns s into an UPPER_SNAKE environment variable name.
func envName(s string) string {
	return strings.Trim(nonEnv.ReplaceAllString(strings.ToUpper(s), "_"), "_")
}

// jsonString returns s as a JSON string literal, quotes included.
func jsonString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// shellQuote returns s as one POSIX shell word in single quotes.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellWord is s as one shell word: as it is when it needs no quoting, else shellQuote(s).
// Settings files read by people keep `PGHOST=db` plain, and any other value stays safe.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:@%+=,-") == "" {
		return s
	}
	return shellQuote(s)
}

// yamlString returns s as a double-quoted YAML scalar: strconv's escapes are a subset of
// those YAML allows in double quotes.
func yamlString(s string) string {
	return strconv.Quote(s)
}

// composeString is yamlString for compose files, which also interpolate ${VAR}: a $ is doubled.
func composeString(s string) string {
	return strings.ReplaceAll(yamlString(s), "$", "$$")
}
