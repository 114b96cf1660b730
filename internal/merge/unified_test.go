package merge

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestUnified(t *testing.T) {
	tests := []struct {
		name    string
		a, b    string
		context int
		want    string
	}{
		{name: "equal", a: "a\nb\n", b: "a\nb\n", context: 3, want: ""},
		{name: "both empty", a: "", b: "", context: 3, want: ""},
		{
			name: "one line changed", a: "1\n2\n3\n4\n5\n6\n7\n8\n", b: "1\n2\n3\n4\nfive\n6\n7\n8\n", context: 3,
			want: "--- a/f\n+++ b/f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n",
		},
		{
			name: "context zero", a: "1\n2\n3\n", b: "1\nTWO\n3\n", context: 0,
			want: "--- a/f\n+++ b/f\n@@ -2 +2 @@\n-2\n+TWO\n",
		},
		{
			name: "pure insertion with context zero names the line before", a: "1\n2\n", b: "1\nnew\n2\n", context: 0,
			want: "--- a/f\n+++ b/f\n@@ -1,0 +2 @@\n+new\n",
		},
		{
			name: "hunks closer than twice the context join", a: "1\n2\n3\n4\n5\n", b: "one\n2\n3\n4\nfive\n", context: 2,
			want: "--- a/f\n+++ b/f\n@@ -1,5 +1,5 @@\n-1\n+one\n 2\n 3\n 4\n-5\n+five\n",
		},
		{
			name: "distant hunks stay apart", a: "1\n2\n3\n4\n5\n6\n", b: "one\n2\n3\n4\n5\nsix\n", context: 1,
			want: "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-1\n+one\n 2\n@@ -5,2 +5,2 @@\n 5\n-6\n+six\n",
		},
		{
			name: "from empty", a: "", b: "x\ny\n", context: 3,
			want: "--- a/f\n+++ b/f\n@@ -0,0 +1,2 @@\n+x\n+y\n",
		},
		{
			name: "to empty", a: "x\n", b: "", context: 3,
			want: "--- a/f\n+++ b/f\n@@ -1 +0,0 @@\n-x\n",
		},
		{
			name: "newline added at end", a: "a\nb", b: "a\nb\n", context: 3,
			want: "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n",
		},
		{
			name: "no newline on either side", a: "a\nb", b: "a\nc", context: 3,
			want: "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n",
		},
		{
			name: "unchanged last line without newline as context", a: "a\nb", b: "A\nb", context: 3,
			want: "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a\n+A\n b\n\\ No newline at end of file\n",
		},
		{
			name: "crlf kept", a: "a\r\nb\r\n", b: "a\r\nc\r\n", context: 3,
			want: "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\r\n-b\r\n+c\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Unified("a/f", "b/f", []byte(tt.a), []byte(tt.b), tt.context)
			if got != tt.want {
				t.Errorf("Unified:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestUnifiedApplies applies random diffs with a small patcher and expects b back.
func TestUnifiedApplies(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 2000 {
		a, b, _ := randomCase(rng)
		context := i % 4
		diff := Unified("a/f", "b/f", a, b, context)
		got, err := applyUnified(a, diff)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("case %d: a %q b %q context %d\ndiff:\n%s\napplied: %q, %v", i, a, b, context, diff, got, err)
		}
	}
}

// TestUnifiedAgainstGit checks that `git apply` accepts the diffs and produces b, and that the
// hunks are those of `git diff` (without the indent heuristic, which only moves hunks for
// readability and which Unified does not use).
func TestUnifiedAgainstGit(t *testing.T) {
	git := lookGit(t, true)
	dir := t.TempDir()
	if out, err := gitCommand(git, dir, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	cases := []struct{ name, a, b string }{
		{"edit", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\nthree\n4\n5\n6\n7\neight\n9\n"},
		{"newline added", "a\nb", "a\nb\n"},
		{"newline removed", "a\nb\n", "a\nB"},
		{"crlf", "a\r\nb\r\nc\r\n", "a\r\nB\r\nc\r\n"},
		{"from empty", "", "x\ny\n"},
		{"to empty", "x\ny\n", ""},
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for i := range 40 {
		a, b, _ := randomCase(rng)
		cases = append(cases, struct{ name, a, b string }{fmt.Sprintf("random %d", i), string(a), string(b)})
	}
	for _, c := range cases {
		if c.a == c.b {
			continue
		}
		diff := Unified("a/f", "b/f", []byte(c.a), []byte(c.b), 3)
		write := func(name, data string) {
			t.Helper()
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("f", c.a)
		write("p.diff", diff)
		write("want", c.b)
		if out, err := gitCommand(git, dir, "apply", "--check", "p.diff").CombinedOutput(); err != nil {
			t.Errorf("%s: git apply --check rejects\n%s\n%v: %s", c.name, diff, err, out)
			continue
		}
		if out, err := gitCommand(git, dir, "apply", "p.diff").CombinedOutput(); err != nil {
			t.Errorf("%s: git apply: %v: %s", c.name, err, out)
			continue
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "f")); string(got) != c.b {
			t.Errorf("%s: git apply gives %q, want %q", c.name, got, c.b)
		}

		write("f", c.a)
		out, _ := gitCommand(git, dir, "diff", "--no-index", "--no-indent-heuristic", "-U3", "f", "want").Output()
		if gitHunks, ours := fromFirstHunk(string(out)), fromFirstHunk(diff); gitHunks != ours {
			t.Errorf("%s: hunks differ from git diff\ngit:\n%s\nUnified:\n%s", c.name, gitHunks, ours)
		}
	}
}

// fromFirstHunk drops the file headers, which differ between git and Unified, and the
// function name git appends to hunk headers.
func fromFirstHunk(diff string) string {
	if i := strings.Index(diff, "\n@@ "); i >= 0 {
		return funcName.ReplaceAllString(diff[i+1:], "$1")
	}
	return ""
}

var funcName = regexp.MustCompile(`(?m)^(@@ [^@]* @@).*$`)

func FuzzUnified(f *testing.F) {
	f.Add([]byte("a\nb\nc\n"), []byte("a\nB\nc"), 3)
	f.Add([]byte(""), []byte("x\r\n"), 0)
	f.Fuzz(func(t *testing.T, a, b []byte, context int) {
		context = min(max(context, 0), 5)
		diff := Unified("a", "b", a, b, context)
		if got, err := applyUnified(a, diff); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("diff does not turn a into b: %q, %v\n%s", got, err, diff)
		}
	})
}

var hunkHeader = regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@\n$`)

// applyUnified is a strict patcher for Unified's output: every context and removed line
// must match a, and the hunk headers must count the lines that follow.
func applyUnified(a []byte, diff string) ([]byte, error) {
	if diff == "" {
		return bytes.Clone(a), nil
	}
	lines := strings.SplitAfter(diff, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "--- ") || !strings.HasPrefix(lines[1], "+++ ") {
		return nil, fmt.Errorf("missing --- and +++ headers")
	}
	src := splitLines(a)
	var out []byte
	pos := 0 // next line of src
	for i := 2; i < len(lines); {
		m := hunkHeader.FindStringSubmatch(lines[i])
		if m == nil {
			return nil, fmt.Errorf("line %d: want a hunk header, got %q", i, lines[i])
		}
		num := func(s string) int {
			if s == "" {
				return 1
			}
			n, _ := strconv.Atoi(s)
			return n
		}
		oldStart, oldLen, newLen := num(m[1]), num(m[2]), num(m[4])
		if oldLen > 0 {
			oldStart-- // 0-based; an empty side already names the line before
		}
		if oldStart < pos || oldStart > len(src) {
			return nil, fmt.Errorf("hunk %q out of order or range", lines[i])
		}
		for _, l := range src[pos:oldStart] {
			out = append(out, l...)
		}
		pos = oldStart
		i++
		seenOld, seenNew := 0, 0
		for ; i < len(lines) && !strings.HasPrefix(lines[i], "@@ "); i++ {
			op, text := lines[i][0], lines[i][1:]
			if i+1 < len(lines) && lines[i+1] == "\\ No newline at end of file\n" {
				text = strings.TrimSuffix(text, "\n")
				i++
			}
			switch op {
			case ' ', '-':
				if pos >= len(src) || string(src[pos]) != text {
					return nil, fmt.Errorf("line %d: %q does not match a's line %d", i, lines[i], pos+1)
				}
				pos++
				seenOld++
				if op == ' ' {
					out = append(out, text...)
					seenNew++
				}
			case '+':
				out = append(out, text...)
				seenNew++
			default:
				return nil, fmt.Errorf("line %d: unexpected %q", i, lines[i])
			}
		}
		if seenOld != oldLen || seenNew != newLen {
			return nil, fmt.Errorf("hunk %q has %d old and %d new lines", m[0], seenOld, seenNew)
		}
	}
	for _, l := range src[pos:] {
		out = append(out, l...)
	}
	return out, nil
}

func TestIsBinary(t *testing.T) {
	late := append(bytes.Repeat([]byte("x"), binarySniffLen), 0)
	tests := []struct {
		name string
		data []byte
		want bool
	}{
		{"empty", nil, false},
		{"text", []byte("hello\nworld\n"), false},
		{"utf-8", []byte("héllo — 世界\r\n"), false},
		{"nul", []byte("PNG\x00\x01"), true},
		{"nul past the sniffed prefix", late, false},
		{"invalid utf-8", []byte("caf\xe9\n"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsBinary(tt.data); got != tt.want {
				t.Errorf("IsBinary = %v, want %v", got, tt.want)
			}
		})
	}
}
