package project

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/internal/lock"
	"github.com/opsready/opsready/internal/merge"
)

// `make test` runs a bounded number of random cases; `make fuzz` raises it.
var propCases = flag.Int("upgrade-cases", 12, "random projects per blueprint in the upgrade property test")

// propEdit records what the team did to a project, to check the upgrade against.
type propEdit struct {
	marked   map[string][]string // path -> lines the team wrote
	touched  map[string]bool     // paths the team changed, deleted, added or renamed
	unedited map[string]bool     // generated paths the team did not touch
	policy   map[string]string   // the policy each generated path had before the upgrade
}

// randomEdits changes a committed project the way a team would: insert, delete and change
// lines of text files; delete, add and rename files.
func randomEdits(t *testing.T, rng *rand.Rand, dir string, lk *lock.Lock) propEdit {
	t.Helper()
	e := propEdit{marked: map[string][]string{}, touched: map[string]bool{}, unedited: map[string]bool{}, policy: map[string]string{}}
	var paths []string
	for p := range lk.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	n := 0
	for _, p := range paths {
		e.unedited[p] = true
		e.policy[p] = lk.Files[p].Policy
		data, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || merge.IsBinary(data) {
			continue
		}
		switch rng.IntN(6) {
		case 0, 1: // edit lines
			lines := strings.SplitAfter(string(data), "\n")
			if lines[len(lines)-1] == "" {
				lines = lines[:len(lines)-1]
			}
			for range 1 + rng.IntN(3) {
				n++
				marker := fmt.Sprintf("# team line %d in %s\n", n, p)
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
			write(t, dir, p, strings.Join(lines, ""))
			e.touched[p] = true
		case 2: // delete the file
			if rng.IntN(3) == 0 {
				must(t, os.Remove(filepath.Join(dir, p)))
				e.touched[p] = true
			}
		case 3: // rename the file: for the blueprint a deletion and an unknown new file
			if rng.IntN(4) == 0 {
				to := p + ".renamed"
				must(t, os.Rename(filepath.Join(dir, p), filepath.Join(dir, to)))
				e.touched[p], e.touched[to] = true, true
				e.marked[to] = strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
			}
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
	return e
}

func randomSets(rng *rand.Rand, bp *blueprints.Blueprint, keys []string) map[string]string {
	set := map[string]string{}
	for _, q := range bp.Questions {
		for _, k := range keys {
			if q.Key == k && len(q.Options) > 0 {
				set[k] = q.Options[rng.IntN(len(q.Options))].Value
			}
		}
	}
	return set
}

func TestUpgradeProperties(t *testing.T) {
	webapp := blueprints.Embedded()
	for _, c := range []struct {
		lib      *blueprints.Library
		name     string
		from, to string
		keys     []string
	}{
		{&demoLib, "demo", "1.0.0", "1.1.0", []string{"cache", "flavor"}},
		{&webapp, "webapp", "", "", []string{"frontend", "backend", "db", "cache", "tls"}},
	} {
		for i := range *propCases {
			t.Run(fmt.Sprintf("%s/%d", c.name, i), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(i), 42))
				fromBP, err := c.lib.Open(c.name, c.from)
				if err != nil {
					t.Fatal(err)
				}
				dir := filepath.Join(t.TempDir(), "p")
				if d := os.Getenv("UPGRADE_DEBUG"); d != "" {
					dir = filepath.Join(d, fmt.Sprintf("%s-%d", c.name, i))
				}
				if _, err := Create(CreateOptions{Dir: dir, Blueprint: c.name + "@" + fromBP.Version, Set: randomSets(rng, fromBP, c.keys), Defaults: true, Git: true, Version: "t", Library: c.lib}); err != nil {
					t.Fatal(err)
				}
				lk, err := lock.Read(dir)
				if err != nil {
					t.Fatal(err)
				}
				edits := randomEdits(t, rng, dir, lk)
				commit(t, dir)
				toBP, _ := c.lib.Open(c.name, c.to)
				set := randomSets(rng, toBP, c.keys)
				if c.name == "demo" {
					delete(set, "flavor") // renamed to variant by 1.1.0
				}
				res, err := Upgrade(UpgradeOptions{Dir: dir, To: c.to, Set: set, Version: "t", Library: c.lib})
				if err != nil {
					t.Fatal(err)
				}
				if os.Getenv("UPGRADE_DEBUG") != "" {
					for _, ch := range res.Changes {
						t.Logf("%s %s %s", ch.Path, ch.Action, ch.Note)
					}
					t.Logf("dir %s", dir)
				}
				checkUpgrade(t, dir, res, edits, c.lib)

				// Take every file as it is, conflict markers and all, as `git add -A` would.
				commit(t, dir)
				again, err := Upgrade(UpgradeOptions{Dir: dir, To: c.to, Version: "t", Library: c.lib})
				if err != nil {
					t.Fatal(err)
				}
				if !again.NothingToDo {
					var did []string
					for _, ch := range again.Changes {
						if ch.Action != ActionUnchanged {
							did = append(did, ch.Path+":"+ch.Action)
						}
					}
					t.Errorf("second upgrade is not a no-op: %v", did)
				}
			})
		}
	}
}

func checkUpgrade(t *testing.T, dir string, res *Upgraded, e propEdit, lib *blueprints.Library) {
	t.Helper()
	renamedTo := map[string]string{"old-name.conf": "new-name.conf"} // demo 1.1.0's migration
	// No line the team wrote is lost.
	for p, lines := range e.marked {
		at := p
		if to, ok := renamedTo[p]; ok && res.Blueprint == "demo" {
			at = to
		}
		data, err := os.ReadFile(filepath.Join(dir, at))
		if err != nil {
			t.Errorf("%s: the team's file is gone: %v", at, err)
			continue
		}
		for _, l := range lines {
			if !strings.Contains(string(data), l) {
				t.Errorf("%s lost the team's line %q", at, l)
			}
		}
	}
	// Files the team did not touch equal the new render exactly (seed files excepted: never touched).
	bp, err := lib.Open(res.Blueprint, res.To)
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
		if to, ok := renamedTo[p]; ok && res.Blueprint == "demo" {
			p = to
		}
		f, generated := rendered[p]
		data, err := os.ReadFile(filepath.Join(dir, p))
		switch {
		case was == generator.PolicySeed:
			// Seed files are the team's after `new`: never touched, whatever the blueprint does.
		case !generated && err == nil:
			t.Errorf("%s: no longer generated and unmodified, but not deleted", p)
		case generated && string(data) != string(f.Data):
			t.Errorf("%s: unmodified by the team but differs from the new render", p)
		}
	}
}
