package adopt

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/check"
	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestAdoptReadmeTable: the README's before/after table of check scores is what check
// reports on each corpus project before and after `adopt --defaults`, and every corpus
// project has a row.
func TestAdoptReadmeTable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(e2eutil.RepoPath(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(string(readme), "\n") {
		if cells := strings.Split(l, "|"); len(cells) > 4 {
			rows[strings.TrimSpace(cells[1])] = l
		}
	}
	score := func(dir string) (check.Counts, error) {
		r, err := check.Run(context.Background(), check.Options{Dir: dir, Env: []string{}})
		if err != nil {
			return check.Counts{}, err
		}
		return r.Counts, nil
	}
	for _, name := range corpusProjects(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			before, err := score(copyCorpus(t, name))
			if err != nil {
				t.Fatal(err)
			}
			a := adoptCorpus(t, name, nil)
			after, err := score(a.Dir)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("| %s | %d / %d / %d / %d | %d / %d / %d / %d (%d waived) |", name,
				before.Critical, before.High, before.Medium, before.Low,
				after.Critical, after.High, after.Medium, after.Low, after.Waived)
			row, ok := rows[name]
			if !ok {
				t.Fatalf("README has no row for %s; want one starting %s", name, want)
			}
			if !strings.HasPrefix(row, want) {
				t.Errorf("README row\n  %s\nwant it to start\n  %s", row, want)
			}
		})
	}
}
