package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func chkProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestChkCLIExitCodes runs `opsready check` as main does: 0 when nothing reaches
// --fail-on, 1 when something does, 2 on usage errors, with nothing on stdout then.
func TestChkCLIExitCodes(t *testing.T) {
	// A stateless service with the compose basics: only high repository-level findings
	// (no Prometheus, alert rules, Alertmanager) and lower ones remain.
	basic := chkProject(t, map[string]string{"compose.yaml": `services:
  web:
    image: nginx:1.27
    restart: unless-stopped
    logging:
      driver: local
    healthcheck:
      test: ["CMD", "true"]
`})
	empty := t.TempDir()
	broken := chkProject(t, map[string]string{"compose.yaml": "services:\n  web: [\n"})
	for _, tc := range []struct {
		name      string
		args      []string
		code      int
		out, errs string
	}{
		{"findings at or above high", []string{"check", basic}, 1, "repo-prometheus", "findings at or above `--fail-on high`"},
		{"fail-on critical passes", []string{"check", "--fail-on", "critical", basic}, 0, "Passes: nothing at or above critical", ""},
		{"json", []string{"check", "--json", "--fail-on", "critical", basic}, 0, `"failed": false`, ""},
		{"sarif", []string{"check", "--format", "sarif", basic}, 1, `"version": "2.1.0"`, ""},
		{"no compose file", []string{"check", empty}, 2, "", "no compose file"},
		{"broken yaml", []string{"check", broken}, 2, "", "compose.yaml: "},
		{"unknown format", []string{"check", "--format", "xml", basic}, 2, "", "want human, json or sarif"},
		{"json with sarif", []string{"check", "--json", "--format", "sarif", basic}, 2, "", "exclude each other"},
		{"bad fail-on", []string{"check", "--fail-on", "severe", basic}, 2, "", "unknown severity"},
		{"two dirs", []string{"check", basic, empty}, 2, "", "accepts at most 1 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, strings.NewReader(""), &out, &errOut)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out.String(), errOut.String())
			}
			if tc.out != "" && !strings.Contains(out.String(), tc.out) {
				t.Errorf("stdout lacks %q:\n%s", tc.out, out.String())
			}
			if tc.code == 2 && out.Len() != 0 {
				t.Errorf("usage error wrote to stdout:\n%s", out.String())
			}
			if tc.errs != "" && !strings.Contains(errOut.String(), tc.errs) {
				t.Errorf("stderr lacks %q:\n%s", tc.errs, errOut.String())
			}
			if strings.Contains(out.String(), "\x1b[") {
				t.Error("colour on a non-terminal")
			}
			if strings.Contains(tc.out, `"`) {
				var v map[string]any
				if err := json.Unmarshal(out.Bytes(), &v); err != nil {
					t.Errorf("output is not JSON: %v", err)
				}
			}
		})
	}
}

// TestChkCLIFlags: flags reach the options; DIR defaults to the current folder.
func TestChkCLIFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want checkOptions
	}{
		{"defaults", nil, checkOptions{Dir: ".", Format: "human", FailOn: "high"}},
		{"all", []string{"-f", "compose.yaml", "--file", "compose.prod.yaml", "--profile", "backup", "--json", "--fail-on", "medium", "--waivers", "w.yaml", "shop"},
			checkOptions{Dir: "shop", Files: []string{"compose.yaml", "compose.prod.yaml"}, Profiles: []string{"backup"}, Format: "json", FailOn: "medium", Waivers: "w.yaml"}},
		{"sarif", []string{"--format", "sarif"}, checkOptions{Dir: ".", Format: "sarif", FailOn: "high"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *checkOptions
			d := &deps{in: strings.NewReader(""), out: &bytes.Buffer{}, err: &bytes.Buffer{}}
			cmd := newCheckCmd(d, func(o *checkOptions) error { got = o; return nil })
			cmd.SetArgs(tc.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			if got.Dir != tc.want.Dir || got.Format != tc.want.Format || got.FailOn != tc.want.FailOn || got.Waivers != tc.want.Waivers ||
				!slices.Equal(got.Files, tc.want.Files) || !slices.Equal(got.Profiles, tc.want.Profiles) || got.Colour {
				t.Errorf("options %+v, want %+v", *got, tc.want)
			}
		})
	}
}
