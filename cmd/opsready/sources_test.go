package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// Every rendered file names the library files it came from, with their version folder.
func TestNewJSONListsSources(t *testing.T) {
	code, out, errOut := runCLI(t, "", "new", "--defaults", "--dry-run", "--json", "--no-git", filepath.Join(t.TempDir(), "shop"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res struct {
		Files []struct {
			Path    string   `json:"path"`
			Sources []string `json:"sources"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range res.Files {
		switch {
		case f.Path == ".env" || f.Path == ".opsready.yaml" || strings.HasPrefix(f.Path, "secrets"):
			if len(f.Sources) != 0 {
				t.Errorf("%s: sources %v for a file opsready writes itself", f.Path, f.Sources)
			}
		case len(f.Sources) == 0:
			t.Errorf("%s: no sources", f.Path)
		case !strings.HasPrefix(f.Sources[0], "webapp/") || !strings.Contains(f.Sources[0], "/files/"):
			t.Errorf("%s: template %q has no version folder", f.Path, f.Sources[0])
		default:
			seen++
		}
	}
	if seen < 100 {
		t.Errorf("only %d files with sources", seen)
	}
}

func TestBlueprintsShowFiles(t *testing.T) {
	code, out, errOut := runCLI(t, "", "blueprints", "show", "webapp@1.3.0", "--files", "--set", "cache=redis")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "compose.yaml\n    template webapp/1.0.0/files/compose.yaml.tmpl\n") ||
		!strings.Contains(out, "ops/backup/redis.sh\n") {
		t.Errorf("output:\n%s", out)
	}
	code, _, errOut = runCLI(t, "", "blueprints", "show", "webapp", "--files", "--set", "cache=memcached")
	if code != 2 || !strings.Contains(errOut, "cache") {
		t.Errorf("bad --set: exit %d, %s", code, errOut)
	}
}
