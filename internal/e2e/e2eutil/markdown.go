package e2eutil

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// CheckMarkdownLinks checks that each relative Markdown link of doc, the content of the file
// rel (slash-separated, relative to dir), resolves in the tree under dir.
func CheckMarkdownLinks(t testing.TB, dir, rel, doc string) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range markdownLink.FindAllStringSubmatch(doc, -1) {
		target := m[1]
		if seen[target] {
			continue
		}
		seen[target] = true
		if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		target, _, _ = strings.Cut(target, "#")
		p := path.Join(path.Dir(rel), target)
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p))); err != nil {
			t.Errorf("%s: link %q does not resolve: %v", rel, m[1], err)
		}
	}
}

// MarkdownHeadings returns the headings of a Markdown document, outside fenced code blocks.
func MarkdownHeadings(doc string) []string {
	var hs []string
	fenced := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " "), "```") {
			fenced = !fenced
			continue
		}
		if !fenced && strings.HasPrefix(line, "#") {
			hs = append(hs, strings.TrimRight(line, " "))
		}
	}
	return hs
}
