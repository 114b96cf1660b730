package golden

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/internal/check"
)

// prodFiles are a generated project's production compose files, as its Makefile loads them.
var prodFiles = []string{"compose.yaml", "compose.prod.yaml", "compose.monitoring.yaml", "compose.backup.yaml"}

// TestGldCheck scores every case of the newest version with `opsready check` on its
// production files: nothing at medium or above may be left unwaived (each waiver in the
// generated .opsready-waivers.yaml has its reason), no waiver may go unused, and the whole
// report is kept as check.json beside the case (-update-golden rewrites it).
func TestGldCheck(t *testing.T) {
	for _, c := range goldenCases(t) {
		newest, err := blueprints.Embedded().Latest(c.Blueprint)
		must(t, err)
		if c.Version != newest {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			want := filepath.Join(c.Dir, "want")
			if _, err := os.Stat(want); err != nil {
				t.Skipf("%s: no want/ yet (make golden)", c.Dir)
			}
			r, err := check.Run(context.Background(), check.Options{
				Dir: want, Files: prodFiles, Env: []string{"TAG=1.2.3", "BACKUP_TAG=b-0123456789ab", "REGISTRY=registry.example.test/team"},
			})
			if err != nil {
				t.Fatalf("check %s: %v", want, err)
			}
			for _, f := range r.Findings {
				if f.Waiver == nil && f.Severity >= check.Medium {
					t.Errorf("%s: %s %s %s (%s:%d): %s", c.Name, f.Severity, f.ID, f.Service, f.File, f.Line, f.Why)
				}
			}
			for _, w := range r.UnusedWaivers {
				t.Errorf("%s: unused waiver %s %s (%s:%d)", c.Name, w.ID, w.Service, w.File, w.Line)
			}
			var b bytes.Buffer
			must(t, check.WriteJSON(&b, r))
			golden := filepath.Join(c.Dir, "check.json")
			if *updateGolden {
				must(t, os.WriteFile(golden, b.Bytes(), 0o644))
				return
			}
			old, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (make golden writes it)", err)
			}
			if !bytes.Equal(old, b.Bytes()) {
				t.Errorf("%s: check report differs from %s (make golden; read the diff)", c.Name, golden)
			}
		})
	}
}
