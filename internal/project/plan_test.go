package project

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/internal/merge"
)

// TestPlanDecisionTable walks SPEC §5's decision table, one named row each: the old render
// (base), the team's file (ours) and the new render (theirs) of one path, and what the
// upgrade plans for it: the action and note the report shows, and what becomes of the file.
func TestPlanDecisionTable(t *testing.T) {
	const p = "conf/app.txt"
	file := func(s string) side { return side{true, []byte(s), 0o644} }
	exe := func(s string) side { return side{true, []byte(s), 0o755} }
	none := side{}
	five := "1\n2\n3\n4\n5\n"
	bin := "\x00\x01binary"
	const (
		kept    = "(left as it is)"
		removed = "(removed)"
	)
	for _, r := range []struct {
		name              string
		base, ours, their side
		policy            string // the file's policy; "" for a path the old lock does not list
		wantAction        string
		wantNote          string
		want              string      // the file afterwards, or kept / removed
		wantMode          fs.FileMode // 0: not checked
		wantBeside        string      // the binary file written beside, if any
		wantUnmerged      bool        // the three sides go to the git index
		from              string      // a migration renamed the file: the team's is still here
	}{
		{name: "unchanged by the team: theirs", base: file("a\n"), ours: file("a\n"), their: file("b\n"), policy: generator.PolicyMerge,
			wantAction: ActionUpdated, want: "b\n"},
		{name: "unchanged by the blueprint: ours", base: file("a\n"), ours: file("mine\n"), their: file("a\n"), policy: generator.PolicyMerge,
			wantAction: ActionUnchanged, wantNote: "your edits kept", want: kept},
		{name: "unchanged by both", base: file("a\n"), ours: file("a\n"), their: file("a\n"), policy: generator.PolicyMerge,
			wantAction: ActionUnchanged, want: kept},
		{name: "the same change on both sides", base: file("a\n"), ours: file("b\n"), their: file("b\n"), policy: generator.PolicyMerge,
			wantAction: ActionUnchanged, want: kept},
		{name: "both changed apart: merged", base: file(five), ours: file("one\n2\n3\n4\n5\n"), their: file("1\n2\n3\n4\nfive\n"), policy: generator.PolicyMerge,
			wantAction: ActionMerged, want: "one\n2\n3\n4\nfive\n"},
		{name: "both changed the same lines: conflict", base: file(five), ours: file("1\n2\nmine\n4\n5\n"), their: file("1\n2\ntheirs\n4\n5\n"), policy: generator.PolicyMerge,
			wantAction: ActionConflict, wantNote: "1 conflicting hunk", want: "1\n2\n<<<<<<< ours\nmine\n||||||| base\n3\n=======\ntheirs\n>>>>>>> theirs\n4\n5\n", wantUnmerged: true},
		{name: "deleted by the blueprint, unmodified: deleted", base: file("a\n"), ours: file("a\n"), their: none, policy: generator.PolicyMerge,
			wantAction: ActionDeleted, want: removed},
		{name: "deleted by the blueprint, modified: kept and reported", base: file("a\n"), ours: file("mine\n"), their: none, policy: generator.PolicyMerge,
			wantAction: ActionKept, wantNote: "modified by you, no longer generated", want: kept},
		{name: "deleted by the blueprint and by the team", base: file("a\n"), ours: none, their: none, policy: generator.PolicyMerge,
			wantAction: ActionUnchanged, want: removed},
		{name: "deleted by the team: stays deleted", base: file("a\n"), ours: none, their: file("b\n"), policy: generator.PolicyMerge,
			wantAction: ActionLeftDeleted, want: removed},
		{name: "new in the blueprint: created", base: none, ours: none, their: file("b\n"),
			wantAction: ActionCreated, want: "b\n"},
		{name: "added by both, the same: unchanged", base: none, ours: file("x\n"), their: file("x\n"),
			wantAction: ActionUnchanged, want: kept},
		{name: "added by both, one of them empty: merged against an empty base", base: none, ours: file(""), their: file(five),
			wantAction: ActionMerged, wantNote: "no reproducible base: merged against an empty file", want: five},
		{name: "no reproducible base, both differ: conflict, never overwritten", base: none, ours: file("1\n2\nmine\n"), their: file("1\n2\ntheirs\n"), policy: generator.PolicyMerge,
			wantAction: ActionConflict, wantNote: "1 conflicting hunk", want: "<<<<<<< ours\n1\n2\nmine\n||||||| base\n=======\n1\n2\ntheirs\n>>>>>>> theirs\n", wantUnmerged: true},
		{name: "added by both, differently: conflict against an empty base", base: none, ours: file("mine\n"), their: file("theirs\n"),
			wantAction: ActionConflict, wantNote: "1 conflicting hunk", want: "<<<<<<< ours\nmine\n||||||| base\n=======\ntheirs\n>>>>>>> theirs\n", wantUnmerged: true},
		{name: "binary, both changed: ours kept, theirs beside", base: file(bin + "1"), ours: file(bin + "2"), their: file(bin + "3"), policy: generator.PolicyMerge,
			wantAction: ActionConflict, wantNote: "binary file: yours kept, the new version written to " + p + ".opsready-new",
			want: kept, wantBeside: bin + "3", wantUnmerged: true},
		{name: "binary, unchanged by the team: theirs", base: file(bin + "1"), ours: file(bin + "1"), their: file(bin + "3"), policy: generator.PolicyMerge,
			wantAction: ActionUpdated, want: bin + "3"},
		{name: "seed, edited by the team: theirs ignored", base: file("a\n"), ours: file("mine\n"), their: file("b\n"), policy: generator.PolicySeed,
			wantAction: ActionUnchanged, wantNote: "seed file: yours kept, the new render differs", want: kept},
		{name: "seed, untouched: still the team's", base: file("a\n"), ours: file("a\n"), their: file("b\n"), policy: generator.PolicySeed,
			wantAction: ActionUnchanged, wantNote: "seed file: yours kept, the new render differs", want: kept},
		{name: "seed, no longer generated: kept", base: file("a\n"), ours: file("a\n"), their: none, policy: generator.PolicySeed,
			wantAction: ActionKept, wantNote: "seed file no longer generated: yours, kept (delete it when unused)", want: kept},
		{name: "seed, edited and no longer generated: kept", base: file("a\n"), ours: file("mine\n"), their: none, policy: generator.PolicySeed,
			wantAction: ActionKept, wantNote: "seed file: the team owns it", want: kept},
		{name: "managed, unchanged by the team: theirs", base: file("a\n"), ours: file("a\n"), their: file("b\n"), policy: generator.PolicyManaged,
			wantAction: ActionUpdated, want: "b\n"},
		{name: "managed, edited by the team: conflict even when it would merge", base: file(five), ours: file("one\n2\n3\n4\n5\n"), their: file("1\n2\n3\n4\nfive\n"), policy: generator.PolicyManaged,
			wantAction: ActionConflict, wantNote: "managed file edited locally", want: "<<<<<<< ours\none\n2\n3\n4\n5\n||||||| base\n=======\n1\n2\n3\n4\nfive\n>>>>>>> theirs\n", wantUnmerged: true},
		{name: "managed, deleted by the team: restored", base: file("a\n"), ours: none, their: file("b\n"), policy: generator.PolicyManaged,
			wantAction: ActionCreated, wantNote: "managed file restored", want: "b\n"},
		{name: "renamed by a migration, edited by the team: the edit moves along", from: "old/app.txt", base: file(five), ours: file("one\n2\n3\n4\n5\n"), their: file("1\n2\n3\n4\nfive\n"), policy: generator.PolicyMerge,
			wantAction: ActionMerged, want: "one\n2\n3\n4\nfive\n"},
		{name: "mode: the blueprint makes the file executable", base: file("a\n"), ours: file("a\n"), their: exe("a\n"), policy: generator.PolicyMerge,
			wantAction: ActionUpdated, wantNote: "mode 644 -> 755", want: "a\n", wantMode: 0o755},
		{name: "mode: the team's chmod is kept through an update", base: file("a\n"), ours: exe("a\n"), their: file("b\n"), policy: generator.PolicyMerge,
			wantAction: ActionUpdated, wantNote: "your mode 755 kept (the new version has 644)", want: "b\n", wantMode: 0o755},
		{name: "mode: both make it executable", base: file("a\n"), ours: exe("a\n"), their: exe("b\n"), policy: generator.PolicyMerge,
			wantAction: ActionUpdated, want: "b\n", wantMode: 0o755},
		{name: "mode: a seed file keeps the team's mode", base: file("a\n"), ours: file("a\n"), their: exe("a\n"), policy: generator.PolicySeed,
			wantAction: ActionUnchanged, want: kept},
	} {
		t.Run(r.name, func(t *testing.T) {
			dir := t.TempDir()
			oursAt := p
			if r.from != "" {
				oursAt = r.from
			}
			full := filepath.Join(dir, filepath.FromSlash(oursAt))
			if r.ours.ok {
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, r.ours.data, r.ours.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(full, r.ours.mode); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			in := planInput{
				dir: dir, paths: []string{p}, base: map[string]side{}, theirs: map[string]side{},
				policies: map[string]string{}, theirPolicy: map[string]string{},
				labels: merge.Labels{Ours: "ours", Base: "base", Theirs: "theirs"},
			}
			if r.from != "" {
				in.renamed = map[string]string{p: r.from}
			}
			if r.base.ok {
				in.base[p] = r.base
			}
			if r.their.ok {
				in.theirs[p] = r.their
				in.theirPolicy[p] = r.policy
			}
			if r.policy != "" {
				in.policies[p] = r.policy
			}
			pl, err := planFiles(in)
			if err != nil {
				t.Fatal(err)
			}
			if len(pl.changes) != 1 {
				t.Fatalf("changes = %+v, want one", pl.changes)
			}
			ch := pl.changes[0]
			if ch.From != r.from || slices.Contains(pl.removes, r.from) != (r.from != "") {
				t.Errorf("renamed from %q, removes %v; want from %q", ch.From, pl.removes, r.from)
			}
			if ch.Action != r.wantAction || ch.Note != r.wantNote {
				t.Errorf("report: %s %q, want %s %q", ch.Action, ch.Note, r.wantAction, r.wantNote)
			}
			if want := map[bool]int{true: 1}[r.wantAction == ActionConflict]; pl.conflicts != want {
				t.Errorf("conflicts = %d, want %d", pl.conflicts, want)
			}
			got := kept
			var gotMode fs.FileMode
			for _, w := range pl.writes {
				switch w.Path {
				case p:
					got, gotMode = string(w.Data), w.Mode
				case p + ".opsready-new":
					if string(w.Data) != r.wantBeside || ch.Beside != w.Path {
						t.Errorf("beside: %s %q (report says %q), want %q", w.Path, w.Data, ch.Beside, r.wantBeside)
					}
				default:
					t.Errorf("writes %s", w.Path)
				}
			}
			if slices.Contains(pl.removes, p) || (!r.ours.ok && got == kept) {
				got = removed
			}
			if got != r.want {
				t.Errorf("file afterwards:\n%s\nwant:\n%s", got, r.want)
			}
			if r.wantMode != 0 && gotMode != r.wantMode {
				t.Errorf("mode %o, want %o", gotMode, r.wantMode)
			}
			if r.wantBeside == "" && ch.Beside != "" {
				t.Errorf("written beside at %s", ch.Beside)
			}
			if (len(pl.unmerged) > 0) != r.wantUnmerged {
				t.Errorf("unmerged = %v, want %v", pl.unmerged, r.wantUnmerged)
			}
			if strings.Contains(got, "<<<<<<<") != (r.wantAction == ActionConflict && r.wantBeside == "") {
				t.Errorf("markers in %q for a %s", got, r.wantAction)
			}
		})
	}
}
