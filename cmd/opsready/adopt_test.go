package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// adpTree is every file below dir with its content, to prove a refused adopt wrote nothing.
func adpTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAdpCLIBadInput: each bad input is a usage error (exit 2) with a message that names
// the problem, and adopt writes nothing.
func TestAdpCLIBadInput(t *testing.T) {
	t.Parallel()
	good := "services:\n  db:\n    image: postgres:17.6\n    environment:\n      POSTGRES_PASSWORD: x\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		args  []string
		errs  string
	}{
		{"no compose file", map[string]string{"README.md": "hi\n"}, nil, "no compose file"},
		{"syntax error", map[string]string{"compose.yaml": "services:\n  web: [\n"}, nil, "compose.yaml: "},
		{"unknown image reference", map[string]string{"compose.yaml": "services:\n  web:\n    image: \"Not A/Valid::Ref\"\n"}, nil, "Not A/Valid::Ref"},
		{"no services", map[string]string{"compose.yaml": "services: {}\n"}, nil, "no service"},
		{"a detected answer", map[string]string{"compose.yaml": good}, []string{"--set", "db=mariadb"}, "adopt decides db from the compose files"},
		{"unknown flag", map[string]string{"compose.yaml": good}, []string{"--backend", "go"}, "unknown flag"},
		{"already adopted", map[string]string{"compose.yaml": good, ".opsready.yaml": "blueprint: webapp\nversion: 1.5.0\nopsready: t\nanswers: {}\nfiles: {}\n"}, nil, "already an opsready project"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for n, c := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before := adpTree(t, dir)
			var out, errOut bytes.Buffer
			code := run(append(append([]string{"adopt", "--defaults"}, tc.args...), dir), strings.NewReader(""), &out, &errOut)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, errOut.String())
			}
			if !strings.Contains(errOut.String(), tc.errs) {
				t.Errorf("stderr %q lacks %q", errOut.String(), tc.errs)
			}
			after := adpTree(t, dir)
			if len(after) != len(before) {
				t.Errorf("a refused adopt wrote files: %d before, %d after", len(before), len(after))
			}
			for p, c := range before {
				if after[p] != c {
					t.Errorf("%s changed", p)
				}
			}
		})
	}
}

// TestAdpCLIDryRunAndJSON: --dry-run prints the detection and plan and writes nothing; --json
// gives the same as data; a real run then writes exactly the planned files.
func TestAdpCLIDryRunAndJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	compose := "services:\n  api:\n    build: .\n    depends_on: [db]\n  db:\n    image: mariadb:11.4.8\n    environment:\n      MARIADB_ROOT_PASSWORD: s3cr3t\n    volumes: [data:/var/lib/mysql]\n  mongo:\n    image: mongo:7.0.14\nvolumes:\n  data:\n"
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"adopt", "--defaults", "--dry-run", dir}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"db (mariadb)", "not covered: service mongo", "nothing written", "compose.prod.yaml", "secrets/db_password"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out.String())
		}
	}
	if n := len(adpTree(t, dir)); n != 1 {
		t.Fatalf("dry run wrote: %d files", n)
	}
	out.Reset()
	if code := run([]string{"adopt", "--defaults", "--json", "--domain", "shop.example.org", dir}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("adopt: exit %d: %s", code, errOut.String())
	}
	var res struct {
		Version string `json:"version"`
		Files   []struct {
			Path string `json:"path"`
		} `json:"files"`
		Answers  map[string]any `json:"answers"`
		Detected struct {
			DB struct {
				Service, Engine, User, PasswordFile string
			} `json:"DB"`
		} `json:"detected"`
		Unsupported []string `json:"unsupported"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	if res.Answers["db"] != "mariadb" || res.Answers["domain"] != "shop.example.org" || res.Answers["frontend"] != "none" {
		t.Errorf("answers %v", res.Answers)
	}
	if len(res.Unsupported) != 1 || !strings.Contains(res.Unsupported[0], "mongo") {
		t.Errorf("unsupported %v", res.Unsupported)
	}
	tree := adpTree(t, dir)
	planned := map[string]bool{filepath.Join(dir, "compose.yaml"): true}
	for _, f := range res.Files {
		if fi, err := os.Stat(filepath.Join(dir, f.Path)); err != nil {
			t.Errorf("planned %s not written: %v", f.Path, err)
		} else if !fi.IsDir() {
			planned[filepath.Join(dir, f.Path)] = true
		}
	}
	for p := range tree {
		if !planned[p] {
			t.Errorf("%s written but not planned", p)
		}
	}
	pw := filepath.Join(dir, "secrets", "db_password")
	if tree[pw] != "s3cr3t" {
		t.Errorf("secrets/db_password = %q, want the root password from the compose file", tree[pw])
	}
	if fi, err := os.Stat(pw); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets/db_password mode: %v %v", fi, err)
	}
	if !strings.Contains(tree[filepath.Join(dir, "ops/backup/backup.env")], "MARIADB_USER=root") {
		t.Errorf("backup.env does not back up as root")
	}
}

// TestAdpCLIWizardAsksOnlyWhatItCannotDetect: on a line-mode wizard adopt asks the questions
// of its list (domain, limits, alerting, backups…) and never what the compose files decide
// or what does not apply to the team's own application.
func TestAdpCLIWizardAsksOnlyWhatItCannotDetect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	compose := "services:\n  web:\n    image: wordpress:6.8\n    depends_on: [db]\n  db:\n    image: mariadb:11.4.8\n    environment:\n      MARIADB_ROOT_PASSWORD: s3cr3t\n"
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	// Six inputs taken as they are, 0 to confirm the alert channels, then every default.
	in := "\n\n\n\n\n\n0\n" + strings.Repeat("\n", 40)
	var out, errOut bytes.Buffer
	if code := run([]string{"adopt", "--accessible", "--dry-run", dir}, strings.NewReader(in), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	asked := errOut.String()
	for _, want := range []string{"Public domain", "Alert channels", "Off-site copy of the backups", "Daily backups kept"} {
		if !strings.Contains(asked, want) {
			t.Errorf("adopt did not ask %q", want)
		}
	}
	for _, never := range []string{"Project name", "Database", "Backend", "Frontend", "Cache", "TLS", "CI provider", "Backend replicas", "Availability objective"} {
		if strings.Contains(asked, never+" ") || strings.Contains(asked, never+"\n") {
			t.Errorf("adopt asked %q, which it detects or which does not apply", never)
		}
	}
}
