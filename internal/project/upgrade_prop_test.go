package project

import (
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/internal/lock"
	"github.com/opsready/opsready/internal/merge"
)

// `make test` runs a bounded number of random trials; `make fuzz` raises it. A failing
// trial prints its seed; `-upgrade-seed N` replays that one trial alone.
var (
	propCases = flag.Int("upgrade-cases", 30, "random trials in the upgrade property test (one in six on the webapp blueprint)")
	propSeed  = flag.Int("upgrade-seed", -1, "replay only this trial of the upgrade property test")
)

// propCase is a blueprint a trial upgrades: from one of froms to to, changing some of keys.
type propCase struct {
	lib   *blueprints.Library
	name  string
	froms []string
	to    string
	keys  []string
	set   map[string]string // always given (questions without a default)
}

// propCaseFor picks the blueprint of trial seed: mostly the small demo blueprint (every
// upgrade case in a few files, fast), every sixth the real webapp from a released version
// to the newest.
func propCaseFor(t *testing.T, seed uint64) propCase {
	if seed%6 != 5 {
		return propCase{lib: &demoLib, name: "demo", froms: []string{"1.0.0", "1.1.0"}, to: "1.2.0",
			keys: []string{"cache", "variant"}, set: map[string]string{"owner": "ops@example.org"}}
	}
	lib := blueprints.Embedded()
	vs, err := lib.Versions("webapp")
	if err != nil {
		t.Fatal(err)
	}
	froms := vs
	if len(vs) > 1 {
		froms = vs[:len(vs)-1]
	}
	return propCase{lib: &lib, name: "webapp", froms: froms, to: vs[len(vs)-1], keys: []string{"frontend", "backend", "db", "cache", "tls"}}
}

// propEdit records what the team did to a project, to check the upgrade against.
type propEdit struct {
	marked   map[string][]string // path -> lines the team wrote there
	exact    map[string]string   // path -> content (binary) the team wrote, to be kept whole
	exec     map[string]bool     // path -> the executable bit the team set
	touched  map[string]bool     // paths the team changed, deleted, added or renamed
	unedited map[string]bool     // generated paths the team did not touch
	policy   map[string]string   // the policy each generated path had before the upgrade
	kinds    map[string]int      // edit kind -> how often (for the log)
}

// treeEntry is one file of a project tree as a test sees it.
type treeEntry struct {
	data string
	mode fs.FileMode // permissions, or fs.ModeSymlink
}

// snapshotTree reads every file and link below dir (not .git).
func snapshotTree(t *testing.T, dir string) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == ".git" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			out[rel] = treeEntry{target, fs.ModeSymlink}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = treeEntry{string(data), fi.Mode().Perm()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// upgradeTrial is one random case: a project generated at a random version with random
// answers, edited and committed as a team would, to be upgraded with random `--set`s. The
// crash and concurrency cases reuse it: prepareTrial, run the upgrade their way, checkTrial
// (propCrashAndRace).
type upgradeTrial struct {
	seed   uint64
	c      propCase
	dir    string
	from   string
	set    map[string]string
	edits  propEdit
	before map[string]treeEntry // the committed tree the upgrade starts from
}

func (tr *upgradeTrial) options() UpgradeOptions {
	return UpgradeOptions{Dir: tr.dir, To: tr.c.to, Set: tr.set, Version: "t", Library: tr.c.lib}
}

func prepareTrial(t *testing.T, seed uint64, dir string) *upgradeTrial {
	t.Helper()
	c := propCaseFor(t, seed)
	rng := rand.New(rand.NewPCG(seed, 42))
	tr := &upgradeTrial{seed: seed, c: c, dir: dir, from: c.froms[rng.IntN(len(c.froms))]}
	fromBP, err := c.lib.Open(c.name, tr.from)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(CreateOptions{Dir: dir, Blueprint: c.name + "@" + fromBP.Version, Set: randomSets(rng, fromBP, c.keys, nil), Defaults: true, Git: true, Version: "t", Library: c.lib}); err != nil {
		t.Fatal(err)
	}
	lk, err := lock.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	toBP, err := c.lib.Open(c.name, c.to)
	if err != nil {
		t.Fatal(err)
	}
	tr.set = randomSets(rng, toBP, c.keys, c.set)
	// The paths the upgrade will generate, for the edits that get in their way.
	var upcoming []string
	if answers, err := ResolveAnswers(toBP, AnswerInputs{Set: tr.set, Stored: lk.Answers, Defaults: true}); err == nil {
		if files, err := RenderProject(toBP, answers, "t"); err == nil {
			for _, f := range files {
				upcoming = append(upcoming, f.Path)
			}
		}
	}
	tr.edits = randomEdits(t, rng, dir, lk, upcoming)
	commit(t, dir)
	tr.before = snapshotTree(t, dir)
	return tr
}

// randomEdits changes a committed project the way a team would: insert, change, delete and
// append lines, convert to CRLF, make a text file binary, chmod +x/-x, delete and rename
// files; add files of their own, files at paths the new version will generate, files named
// like an upgrade's side files (`*.opsready-new`), a file where the new version needs a
// folder and a folder where it has a file.
func randomEdits(t *testing.T, rng *rand.Rand, dir string, lk *lock.Lock, upcoming []string) propEdit {
	t.Helper()
	e := propEdit{marked: map[string][]string{}, exact: map[string]string{}, exec: map[string]bool{}, touched: map[string]bool{},
		unedited: map[string]bool{}, policy: map[string]string{}, kinds: map[string]int{}}
	var paths []string
	for p := range lk.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	n := 0
	mark := func(p string) string {
		n++
		return fmt.Sprintf("# team line %d in %s\n", n, p)
	}
	for _, p := range paths {
		e.unedited[p] = true
		e.policy[p] = lk.Files[p].Policy
	}
	for _, p := range paths {
		full := filepath.Join(dir, p)
		data, err := os.ReadFile(full)
		if err != nil || e.touched[p] {
			continue
		}
		binary := merge.IsBinary(data)
		switch k := rng.IntN(12); {
		case k <= 2 && !binary: // edit lines
			e.kinds["lines"]++
			lines := strings.SplitAfter(string(data), "\n")
			if lines[len(lines)-1] == "" {
				lines = lines[:len(lines)-1]
			}
			for range 1 + rng.IntN(3) {
				marker := mark(p)
				i := rng.IntN(len(lines) + 1)
				switch rng.IntN(3) {
				case 0: // insert
					lines = append(lines[:i], append([]string{marker}, lines[i:]...)...)
					e.marked[p] = append(e.marked[p], marker)
				case 1: // change
					if i < len(lines) && !strings.HasPrefix(lines[i], "# team line") {
						lines[i] = marker
						e.marked[p] = append(e.marked[p], marker)
					}
				case 2: // delete
					if i < len(lines) && len(lines) > 1 && !strings.HasPrefix(lines[i], "# team line") {
						lines = append(lines[:i], lines[i+1:]...)
					}
				}
			}
			writeKeepMode(t, full, strings.Join(lines, ""))
			e.touched[p] = true
		case k == 3 && !binary: // append
			e.kinds["append"]++
			marker := mark(p)
			s := string(data)
			if s != "" && !strings.HasSuffix(s, "\n") {
				s += "\n"
			}
			writeKeepMode(t, full, s+marker)
			e.marked[p] = append(e.marked[p], marker)
			e.touched[p] = true
		case k == 4 && rng.IntN(2) == 0: // delete the file
			e.kinds["delete"]++
			must(t, os.Remove(full))
			e.touched[p] = true
		case k == 5 && rng.IntN(3) == 0: // rename: for the blueprint a deletion and an unknown new file
			e.kinds["rename"]++
			to := p + ".renamed"
			must(t, os.Rename(full, filepath.Join(dir, to)))
			e.touched[p], e.touched[to] = true, true
			if binary {
				e.exact[to] = string(data)
			} else {
				e.marked[to] = strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
			}
		case k == 6: // chmod +x / -x
			e.kinds["chmod"]++
			fi, err := os.Stat(full)
			must(t, err)
			exec := fi.Mode()&0o100 == 0
			mode := fs.FileMode(0o644)
			if exec {
				mode = 0o755
			}
			must(t, os.Chmod(full, mode))
			e.exec[p] = exec
			e.touched[p] = true
		case k == 7 && !binary && rng.IntN(2) == 0: // CRLF line ends, and a team line in them
			e.kinds["crlf"]++
			s := strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n", "\r\n")
			marker := strings.TrimSuffix(mark(p), "\n") + "\r\n"
			writeKeepMode(t, full, marker+s)
			e.marked[p] = append(e.marked[p], marker)
			e.touched[p] = true
		case k == 8 && rng.IntN(3) == 0: // the team's binary version of the file
			e.kinds["binary"]++
			s := fmt.Sprintf("\x00team binary %d of %s\x00\x01", rng.IntN(1000), p)
			writeKeepMode(t, full, s)
			e.exact[p] = s
			e.touched[p] = true
		case k == 9 && rng.IntN(2) == 0: // a file named like an upgrade's side file
			e.kinds["opsready-new"]++
			side := p + ".opsready-new"
			if rng.IntN(2) == 0 {
				side += ".1"
			}
			marker := mark(side)
			write(t, dir, side, marker)
			e.marked[side] = []string{marker}
			e.touched[side] = true
		}
		if e.touched[p] {
			delete(e.unedited, p)
		}
	}
	for i := range rng.IntN(3) {
		p := fmt.Sprintf("team/notes-%d.txt", i)
		write(t, dir, p, "team file\n")
		e.touched[p] = true
		e.marked[p] = []string{"team file\n"}
	}
	// Paths the new version generates and the project does not have yet.
	var fresh []string
	for _, p := range upcoming {
		if _, ok := lk.Files[p]; !ok && p != lock.FileName && !exists(dir, p) && !e.touched[p] {
			fresh = append(fresh, p)
		}
	}
	if len(fresh) > 0 && rng.IntN(2) == 0 { // a team file at a path the new version generates
		e.kinds["named-like-ours"]++
		p := fresh[rng.IntN(len(fresh))]
		if !exists(dir, filepath.Dir(p)) || isDir(dir, filepath.Dir(p)) {
			marker := mark(p)
			write(t, dir, p, marker)
			e.marked[p] = []string{marker}
			e.touched[p] = true
		}
	}
	if len(fresh) > 0 && rng.IntN(3) == 0 { // a team folder where the new version has a file
		p := fresh[rng.IntN(len(fresh))]
		if !exists(dir, p) && (!exists(dir, filepath.Dir(p)) || isDir(dir, filepath.Dir(p))) {
			e.kinds["folder-for-file"]++
			q := p + "/notes.txt"
			marker := mark(q)
			write(t, dir, q, marker)
			e.marked[q] = []string{marker}
			e.touched[q] = true
		}
	}
	if rng.IntN(3) == 0 { // a team file where the new version needs a folder
		var folders []string
		for _, p := range upcoming {
			if i := strings.Index(p, "/"); i > 0 {
				folders = append(folders, p[:i])
			}
		}
		if len(folders) > 0 {
			d := folders[rng.IntN(len(folders))]
			if !exists(dir, d) || (d != ".github" && rng.IntN(2) == 0) {
				// The team dropped the folder (every generated file in it) for a file.
				e.kinds["file-for-folder"]++
				must(t, os.RemoveAll(filepath.Join(dir, d)))
				for p := range lk.Files {
					if strings.HasPrefix(p, d+"/") {
						e.touched[p] = true
						delete(e.unedited, p)
						delete(e.marked, p)
						delete(e.exact, p)
						delete(e.exec, p)
					}
				}
				for p := range e.marked {
					if strings.HasPrefix(p, d+"/") {
						delete(e.marked, p)
					}
				}
				for p := range e.exact {
					if strings.HasPrefix(p, d+"/") {
						delete(e.exact, p)
					}
				}
				marker := mark(d)
				write(t, dir, d, marker)
				e.marked[d] = []string{marker}
				e.touched[d] = true
			}
		}
	}
	return e
}

func writeKeepMode(t *testing.T, full, content string) {
	t.Helper()
	fi, err := os.Stat(full)
	must(t, err)
	must(t, os.WriteFile(full, []byte(content), fi.Mode().Perm()))
}

func isDir(dir, p string) bool {
	fi, err := os.Stat(filepath.Join(dir, p))
	return err == nil && fi.IsDir()
}

func randomSets(rng *rand.Rand, bp *blueprints.Blueprint, keys []string, always map[string]string) map[string]string {
	set := map[string]string{}
	for _, q := range bp.Questions {
		for _, k := range keys {
			if vals := q.OfferedValues(); q.Key == k && len(vals) > 0 && rng.IntN(3) != 0 {
				set[k] = vals[rng.IntN(len(vals))]
			}
		}
		if v, ok := always[q.Key]; ok {
			set[q.Key] = v
		}
	}
	return set
}

// Totals over every trial, logged at the end (`go test -v`).
var (
	propTrials, propLinesChecked, propLinesLost atomic.Int64
	propKindsMu                                 sync.Mutex
	propKinds                                   = map[string]int{}
	// propSeeds counts the trials; propTrials the upgrades checked (a rolled-back kill is
	// upgraded and checked again).
	propSeeds, propKillsForward, propKillsBack, propPairs, propNoWrite atomic.Int64
)

// Which trials also SIGKILL a copy of the upgrade, and which run two upgrades at once: a
// share of them, so that `make test` stays fast and `make fuzz` does thousands of each.
func propKills(seed uint64) bool { return seed%3 == 2 }
func propRaces(seed uint64) bool { return seed%5 == 3 }

func TestUpgradeProperties(t *testing.T) {
	first, last := 0, *propCases
	if *propSeed >= 0 {
		first, last = *propSeed, *propSeed+1
	}
	t.Cleanup(func() {
		t.Logf("upgrade property: %d trials (%d upgrades checked), %d SIGKILLed (%d rolled forward, %d back), %d concurrent pairs, %d without a write; %d team lines checked, %d lost; team edits %v",
			propSeeds.Load(), propTrials.Load(), propKillsForward.Load()+propKillsBack.Load(), propKillsForward.Load(), propKillsBack.Load(), propPairs.Load(), propNoWrite.Load(),
			propLinesChecked.Load(), propLinesLost.Load(), propKinds)
	})
	for i := first; i < last; i++ {
		seed := uint64(i)
		t.Run(fmt.Sprintf("seed-%d", i), func(t *testing.T) {
			t.Parallel()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("replay: go test ./internal/project -run TestUpgradeProperties -upgrade-seed %d -v", seed)
				}
			})
			dir := filepath.Join(t.TempDir(), "p")
			if d := os.Getenv("UPGRADE_DEBUG"); d != "" {
				dir = filepath.Join(d, fmt.Sprintf("seed-%d", seed))
			}
			propSeeds.Add(1)
			tr := prepareTrial(t, seed, dir)
			// The committed tree before the upgrade, for the kill and the concurrent runs.
			template := ""
			if propKills(seed) || propRaces(seed) {
				template = filepath.Join(t.TempDir(), "template")
				crashCopy(t, dir, template)
			}
			res, err := Upgrade(tr.options())
			if err != nil {
				t.Fatalf("%s %s -> %s, --set %v: %v", tr.c.name, tr.from, tr.c.to, tr.set, err)
			}
			checkTrial(t, tr, res)
			if template != "" {
				propCrashAndRace(t, tr, template)
			}
			if os.Getenv("UPGRADE_DEBUG") != "" {
				t.Logf("%s %s -> %s --set %v; edits %v", tr.c.name, tr.from, tr.c.to, tr.set, tr.edits.kinds)
				for _, ch := range res.Changes {
					t.Logf("%s %s %s", ch.Path, ch.Action, ch.Note)
				}
			}

			// Take every file as it is, conflict markers and all, as `git add -A` would.
			commit(t, dir)
			again, err := Upgrade(UpgradeOptions{Dir: dir, To: tr.c.to, Version: "t", Library: tr.c.lib})
			if err != nil {
				t.Fatal(err)
			}
			// A file the first upgrade could not place is the one thing left to do: with the
			// team's file at its path it is merged as added by both.
			blocked := map[string]bool{}
			for _, ch := range res.Changes {
				if ch.Action == ActionConflict && strings.HasPrefix(ch.Note, "not written") {
					blocked[ch.Path] = true
				}
			}
			var did []string
			for _, ch := range again.Changes {
				if ch.Action != ActionUnchanged && ch.Action != ActionLeftDeleted && !blocked[ch.Path] {
					did = append(did, ch.Path+":"+ch.Action)
				}
			}
			if len(did) > 0 || (!again.NothingToDo && len(blocked) == 0) {
				t.Errorf("second upgrade is not a no-op: %v", did)
			}
		})
	}
}

// checkTrial asserts what an upgrade promises, on the tree it left: no line the team wrote
// is lost, the team's modes are kept, files the team did not touch equal the new render,
// the report equals the tree, and the git index holds exactly the conflicts as unmerged.
func checkTrial(t *testing.T, tr *upgradeTrial, res *Upgraded) {
	t.Helper()
	dir, e := tr.dir, tr.edits
	propTrials.Add(1)
	propKindsMu.Lock()
	for k, n := range e.kinds {
		propKinds[k] += n
	}
	propKinds[tr.c.name]++
	propKindsMu.Unlock()
	after := snapshotTree(t, dir)
	byPath := map[string]FileChange{}
	for _, ch := range res.Changes {
		byPath[ch.Path] = ch
	}
	// Where a generated file went: the blueprint's renames, unless the new name was blocked.
	renamedTo := map[string]string{}
	migrations, err := migrationsBetween(*tr.c.lib, tr.c.name, res.From, res.To)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations {
		if r := m.RenameFile; r != nil {
			for from, to := range renamedTo {
				if to == r.From {
					renamedTo[from] = r.To
				}
			}
			if _, ok := renamedTo[r.From]; !ok {
				renamedTo[r.From] = r.To
			}
		}
	}
	where := func(p string) string {
		if to, ok := renamedTo[p]; ok {
			if ch := byPath[to]; ch.From == p && !(ch.Action == ActionConflict && strings.HasPrefix(ch.Note, "not written")) {
				return to
			}
		}
		return p
	}

	// No line the team wrote is lost: it is in its file (after the blueprint's renames).
	for p, lines := range e.marked {
		at := where(p)
		got, ok := after[at]
		propLinesChecked.Add(int64(len(lines)))
		if !ok {
			propLinesLost.Add(int64(len(lines)))
			t.Errorf("%s: the team's file is gone (%s)", at, byPath[at].Action)
			continue
		}
		for _, l := range lines {
			if !strings.Contains(got.data, l) {
				propLinesLost.Add(1)
				t.Errorf("%s lost the team's line %q (%s %s)", at, l, byPath[at].Action, byPath[at].Note)
			}
		}
	}
	for p, want := range e.exact {
		at := where(p)
		propLinesChecked.Add(1)
		if after[at].data != want {
			propLinesLost.Add(1)
			t.Errorf("%s: the team's binary content is not kept whole (%s)", at, byPath[at].Action)
		}
	}
	// The team's executable bits hold.
	for p, exec := range e.exec {
		at := where(p)
		if got, ok := after[at]; ok && (got.mode&0o100 != 0) != exec {
			t.Errorf("%s: mode %o, the team set the executable bit to %v (%s)", at, got.mode, exec, byPath[at].Action)
		}
	}

	// Files the team did not touch equal the new render exactly, mode included (seed files
	// excepted: never touched).
	bp, err := tr.c.lib.Open(res.Blueprint, res.To)
	if err != nil {
		t.Fatal(err)
	}
	files, err := RenderProject(bp, res.Answers, "t")
	if err != nil {
		t.Fatal(err)
	}
	rendered := map[string]generator.File{}
	for _, f := range files {
		rendered[f.Path] = f
	}
	for p := range e.unedited {
		was := e.policy[p]
		if to, ok := renamedTo[p]; ok && where(p) != to {
			continue // the new name is blocked: the file stays where it was, reported
		}
		p = where(p)
		f, generated := rendered[p]
		got, ok := after[p]
		switch {
		case was == generator.PolicySeed:
			// Seed files are the team's after `new`: never touched, whatever the blueprint does.
		case byPath[p].Action == ActionConflict && strings.HasPrefix(byPath[p].Note, "not written"):
			// A team file or folder is in the way: reported, and left for the team.
		case !generated && ok:
			t.Errorf("%s: no longer generated and unmodified, but not deleted", p)
		case generated && !ok:
			t.Errorf("%s: unmodified by the team but gone (%s %s)", p, byPath[p].Action, byPath[p].Note)
		case generated && (got.data != string(f.Data) || got.mode != f.Mode.Perm()):
			t.Errorf("%s: unmodified by the team but differs from the new render (mode %o, want %o)", p, got.mode, f.Mode.Perm())
		}
	}

	// The report equals the tree: what it says was written or deleted was, and nothing it
	// does not mention changed.
	changed := map[string]bool{}
	for p, a := range after {
		if b, ok := tr.before[p]; !ok || b != a {
			changed[p] = true
		}
	}
	for p := range tr.before {
		if _, ok := after[p]; !ok {
			changed[p] = true
		}
	}
	accounted := map[string]bool{lock.FileName: true}
	for _, ch := range res.Changes {
		_, was := tr.before[ch.Path]
		_, is := after[ch.Path]
		switch ch.Action {
		case ActionCreated, ActionUpdated:
			if !changed[ch.Path] || !is {
				t.Errorf("%s: reported %s, but the file is not written", ch.Path, ch.Action)
			}
		case ActionDeleted:
			if !was || is {
				t.Errorf("%s: reported deleted, but it is not", ch.Path)
			}
		case ActionUnchanged, ActionKept, ActionLeftDeleted:
			if ch.From == "" && changed[ch.Path] {
				t.Errorf("%s: reported %s, but it changed", ch.Path, ch.Action)
			}
		}
		if ch.Action == ActionConflict && strings.HasPrefix(ch.Note, "not written") && changed[ch.Path] {
			t.Errorf("%s: reported not written, but it changed", ch.Path)
		}
		accounted[ch.Path] = true
		if ch.From != "" {
			accounted[ch.From] = true
		}
		if ch.Beside != "" {
			accounted[ch.Beside] = true
			if b, ok := tr.before[ch.Beside]; ok {
				t.Errorf("%s: the new version of %s was written over a file that was there (%q)", ch.Beside, ch.Path, b.data)
			}
		}
	}
	for p := range changed {
		if !accounted[p] {
			t.Errorf("%s changed, but the report does not say so", p)
		}
	}

	// The git index holds exactly the conflicts as unmerged.
	var conflicts []string
	for _, ch := range res.Changes {
		if ch.Action == ActionConflict {
			conflicts = append(conflicts, ch.Path)
		}
	}
	unmerged := dedupe(unmergedPaths(dir))
	sort.Strings(conflicts)
	if strings.Join(unmerged, ",") != strings.Join(conflicts, ",") || res.Conflicts != len(conflicts) {
		t.Errorf("unmerged in the git index %v, conflicts reported %v (count %d)", unmerged, conflicts, res.Conflicts)
	}
}

// propCrashAndRace runs the trial's upgrade again in child processes on copies of template
// (the tree before the upgrade), against the tree the checked in-process upgrade left in
// tr.dir: a run SIGKILLed at a random point of its write is, after the next command, exactly
// the old tree or that new one (and a rolled-back one upgrades to it, checked again); of two
// upgrades at once one runs and the other fails at once, exit 1, naming the first.
func propCrashAndRace(t *testing.T, tr *upgradeTrial, template string) {
	rng := rand.New(rand.NewPCG(tr.seed, 7)) // apart from the trial's own stream
	old, want := crashState(t, template), crashState(t, tr.dir)
	op := func(dir string) crashOp {
		return crashOp{Mode: "upgrade", Dir: dir, To: tr.c.to, Set: tr.set, Version: "t", Embedded: tr.c.lib != &demoLib}
	}
	copyOf := func(name string) string {
		dir := filepath.Join(t.TempDir(), name)
		crashCopy(t, template, dir)
		return dir
	}
	// A lone run in a child learns the write's points and must equal the in-process run.
	lone := copyOf("lone")
	full := killAt(t, op(lone), -1)
	if !crashOK(full.Out) {
		t.Fatalf("the upgrade in a child failed:\n%s", full.Out)
	}
	if d := crashDiff(crashState(t, lone), want); d != "" {
		t.Fatalf("the upgrade in a child differs from the one in this process: %s", d)
	}
	if len(full.Points) == 0 {
		propNoWrite.Add(1) // nothing to write: nothing to kill or to race for
		return
	}

	if propKills(tr.seed) {
		dir := copyOf("killed")
		at := rng.IntN(len(full.Points))
		point := full.Points[at]
		killAt(t, op(dir), at)
		recs := strings.Join(crashRecover(t, dir), "+")
		got := crashState(t, dir)
		switch {
		case crashDiff(got, want) == "":
			propKillsForward.Add(1)
			if recs == generator.DirectionBack {
				t.Errorf("killed at %s: reported rolled back, but the tree is the new one", point)
			}
		case crashDiff(got, old) == "":
			propKillsBack.Add(1)
			if recs == generator.DirectionForward {
				t.Errorf("killed at %s: reported rolled forward, but the tree is the old one", point)
			}
			// Rolled back: the team runs the upgrade again, and gets what a lone run gives.
			again := *tr
			again.dir = dir
			res, err := Upgrade(again.options())
			if err != nil {
				t.Fatalf("the upgrade after a kill at %s rolled back: %v", point, err)
			}
			checkTrial(t, &again, res)
			if d := crashDiff(crashState(t, dir), want); d != "" {
				t.Errorf("the upgrade after a kill at %s rolled back differs from a lone upgrade: %s", point, d)
			}
		default:
			t.Errorf("killed at %s (recovered %q): the tree is in between:\n  against the old: %s\n  against the new: %s", point, recs, crashDiff(got, old), crashDiff(got, want))
		}
	}

	if propRaces(tr.seed) {
		// The first holds the project, stopped at a random point of its write, while the
		// second starts: the second must not wait, nor touch anything.
		dir := copyOf("pair")
		first, out, pause := crashStart(t, op(dir), rng.IntN(len(full.Points)))
		crashPaused(t, first, out, pause)
		t0 := time.Now()
		second := killAt(t, op(dir), -1)
		took := time.Since(t0)
		must(t, os.WriteFile(pause+".go", nil, 0o644))
		firstErr := first.Wait()
		propPairs.Add(1)
		wantMsg := fmt.Sprintf("ERROR another opsready is writing to %s (pid %d since ", dir, first.Process.Pid)
		if !strings.Contains(second.Out, wantMsg) || second.ExitCode != 1 || crashOK(second.Out) {
			t.Errorf("the second of two upgrades at once (exit %d):\n%s\nwant exit 1 and %q", second.ExitCode, second.Out, wantMsg)
		}
		if took > 30*time.Second {
			t.Errorf("the second of two upgrades at once waited %s instead of failing at once", took)
		}
		if firstErr != nil || !crashOK(out.String()) {
			t.Fatalf("the first of two upgrades at once: %v\n%s", firstErr, out)
		}
		if d := crashDiff(crashState(t, dir), want); d != "" {
			t.Errorf("after two upgrades at once the project differs from a lone upgrade: %s", d)
		}
	}
}
