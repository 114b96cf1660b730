package e2eutil

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyTestsImportE2eutil keeps this package out of the opsready binary: only test files
// may import it.
func TestOnlyTestsImportE2eutil(t *testing.T) {
	RequireTool(t, "go")
	const self = "github.com/opsready/opsready/internal/e2e/e2eutil"
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "./...")
	cmd.Dir = RepoPath(t, ".")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		checked++
		for _, imp := range strings.Fields(imports) {
			if imp == self && pkg != self {
				t.Errorf("%s imports %s in non-test code", pkg, self)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("go list listed %d packages:\n%s", checked, out)
	}
}
