package merge

import (
	"bytes"
	"fmt"
	"strings"
)

// Unified returns a unified diff from a to b with context lines of context around each
// change, headed "--- aName" and "+++ bName", as `diff -u` and `git diff` print it: hunks
// closer than 2*context lines are joined, and a last line without newline is followed by
// "\ No newline at end of file". It returns "" when a and b are equal. The hunks come from
// the same diff as Merge3, so a dry run shows changes where the merge will see them.
func Unified(aName, bName string, a, b []byte, context int) string {
	if bytes.Equal(a, b) {
		return ""
	}
	context = max(context, 0)
	al, bl := splitLines(a), splitLines(b)
	edits := diffLines(al, bl)

	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", aName, bName)
	for first := 0; first < len(edits); {
		// Gather the edits of one hunk: each closer than 2*context to the previous one.
		last := first
		for last+1 < len(edits) && edits[last+1].a0-(edits[last].a0+edits[last].an) <= 2*context {
			last++
		}
		f, l := edits[first], edits[last]
		prevEnd := 0
		if first > 0 {
			prevEnd = edits[first-1].a0 + edits[first-1].an
		}
		lead := min(context, f.a0-prevEnd)
		trail := min(context, len(al)-(l.a0+l.an))
		a0, b0 := f.a0-lead, f.b0-lead
		a1, b1 := l.a0+l.an+trail, l.b0+l.bn+trail
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(a0, a1-a0), hunkRange(b0, b1-b0))

		pos := a0
		for _, e := range edits[first : last+1] {
			writeDiffLines(&out, ' ', al[pos:e.a0])
			writeDiffLines(&out, '-', al[e.a0:e.a0+e.an])
			writeDiffLines(&out, '+', bl[e.b0:e.b0+e.bn])
			pos = e.a0 + e.an
		}
		writeDiffLines(&out, ' ', al[pos:a1])
		first = last + 1
	}
	return out.String()
}

// hunkRange formats the start (1-based) and length of a hunk side; an empty side names the
// line before it, and a length of 1 is left out, as diff does.
func hunkRange(start, n int) string {
	switch n {
	case 0:
		return fmt.Sprintf("%d,0", start)
	case 1:
		return fmt.Sprintf("%d", start+1)
	default:
		return fmt.Sprintf("%d,%d", start+1, n)
	}
}

func writeDiffLines(out *strings.Builder, prefix byte, lines [][]byte) {
	for _, l := range lines {
		out.WriteByte(prefix)
		out.Write(l)
		if len(l) == 0 || l[len(l)-1] != '\n' {
			out.WriteString("\n\\ No newline at end of file\n")
		}
	}
}
