package backup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
	"go.yaml.in/yaml/v3"
)

// ---------------------------------------------------------------------------------------
// Docs.

// bopsSlug is the anchor GitHub gives a heading.
func bopsSlug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

func TestBackupOpsDocs(t *testing.T) {
	for _, c := range bopsCases() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, c.set())
			policy := bopsReadFile(t, filepath.Join(dir, "docs", "backup-policy.md"))
			plan := bopsReadFile(t, filepath.Join(dir, "docs", "restore-plan.md"))
			for name, doc := range map[string]string{"backup-policy.md": policy, "restore-plan.md": plan} {
				if strings.Contains(doc, "{{") || strings.Contains(doc, "<no value>") {
					t.Errorf("docs/%s: unrendered template text", name)
				}
				e2eutil.CheckMarkdownLinks(t, dir, "docs/"+name, doc)
			}
			anchors := map[string]bool{}
			for _, h := range e2eutil.MarkdownHeadings(plan) {
				anchors[bopsSlug(strings.TrimLeft(h, "# "))] = true
			}

			// One row per store, in the table whose header names the columns of the policy.
			header := "| store | what | method and tool | type and schedule | RPO (worst case) | RTO | retention | location | encryption and key | verification | restore procedure |"
			_, table, ok := strings.Cut(policy, "\n"+header+"\n")
			if !ok {
				t.Fatalf("docs/backup-policy.md has no table with the header %s", header)
			}
			rows := map[string]string{}
			for _, line := range strings.Split(table, "\n")[1:] {
				if !strings.HasPrefix(line, "|") {
					break
				}
				cells := strings.Split(strings.Trim(line, "|"), " | ")
				if len(cells) != 11 {
					t.Errorf("row with %d cells, want 11: %s", len(cells), line)
					continue
				}
				rows[strings.Trim(strings.TrimSpace(cells[0]), "`")] = line
			}
			var got []string
			for s := range rows {
				got = append(got, s)
			}
			sort.Strings(got)
			wantStores := slices.Sorted(slices.Values(c.stores()))
			if !slices.Equal(got, wantStores) {
				t.Errorf("docs/backup-policy.md rows %v, want %v", got, wantStores)
			}
			for _, s := range c.stores() {
				row := rows[s]
				cells := strings.Split(strings.Trim(row, "|"), " | ")
				if len(cells) != 11 {
					continue
				}
				for _, m := range regexp.MustCompile(`restore-plan\.md#([a-z0-9_-]+)`).FindAllStringSubmatch(cells[10], -1) {
					if !anchors[m[1]] {
						t.Errorf("%s row links restore-plan.md#%s, which has no such heading", s, m[1])
					}
				}
				if !strings.Contains(cells[10], "restore-plan.md#restore-"+s) {
					t.Errorf("%s row: restore procedure %q, want a link to restore-plan.md#restore-%s", s, cells[10], s)
				}
				// The worst case when the host is lost: pgBackRest's WAL leaves it only with the
				// off-site copy after each backup.
				loss := 24
				if s == c.db && c.method == "physical" {
					loss = c.incrHours
				}
				meets := loss <= c.rpo
				if strings.Contains(cells[4], "meets the") != meets || strings.Contains(cells[4], "misses the") == meets {
					t.Errorf("%s row: RPO cell %q, want it to say the schedule (%d h) %s the %d h objective", s, cells[4], loss, map[bool]string{true: "meets", false: "misses"}[meets], c.rpo)
				}
				retention := "9 daily, 3 weekly, 11 monthly"
				if s == "postgres" && c.method == "physical" && c.offsite == "none" {
					retention = "the newest 3 full backups (one a week) and 9 differential ones"
				}
				if !strings.Contains(cells[5], "3 h") || !strings.Contains(cells[6], retention) ||
					!strings.Contains(cells[8], "keys@"+c.name+".example.test") || !strings.Contains(cells[3], c.backupTime) {
					t.Errorf("%s row does not carry the answers (RTO 3 h, retention 9/3/11, custodian, %s): %s", s, c.backupTime, row)
				}
				if (c.offsite == "none") != strings.Contains(cells[7], "no off-site copy") {
					t.Errorf("%s row: location %q with offsite=%s", s, cells[7], c.offsite)
				}
			}
			if (c.offsite == "local") != strings.Contains(policy, "**Warning: `offsite=local` is a directory on this host.**") {
				t.Errorf("docs/backup-policy.md: the same-host warning is there=%v with offsite=%s", c.offsite != "local", c.offsite)
			}
			if strings.Contains(policy, "<!-- restore-test:") || !strings.Contains(policy, "| verification of the repositories | daily at ") ||
				!strings.Contains(policy, "`ops/backup/verify.sh` (`make verify`) | `"+c.name+"-verify.timer` |") {
				t.Errorf("docs/backup-policy.md: a restore-test marker left, or no verification row in the schedule")
			}
			if (c.offsite == "none") != strings.Contains(policy, "**Warning: there is no off-site copy.**") {
				t.Errorf("docs/backup-policy.md: the no-off-site warning is there=%v with offsite=%s", !(c.offsite == "none"), c.offsite)
			}
			if !strings.Contains(policy, "## Encryption and key escrow") || !strings.Contains(policy, "**keys@"+c.name+".example.test**") {
				t.Errorf("docs/backup-policy.md: no key escrow section naming the custodian")
			}

			// The plan: a restore command per store, and only for the stores there are.
			for _, s := range []string{"postgres", "mariadb", "redis", "files"} {
				cmd := "dc run --rm restore ops/backup/restore.sh " + s + " "
				if has := strings.Contains(plan, cmd); has != slices.Contains(c.stores(), s) {
					t.Errorf("docs/restore-plan.md: %q present=%v, want %v", cmd, has, !has)
				}
				if slices.Contains(c.stores(), s) && !anchors["restore-"+s] {
					t.Errorf("docs/restore-plan.md: no heading \"Restore %s\"", s)
				}
			}
			if has := strings.Contains(plan, "--time '"); has != c.pitr() {
				t.Errorf("docs/restore-plan.md: point-in-time restore (--time) present=%v, want %v", has, c.pitr())
			}
			if has := anchors["restore-a-mariadb-backup-chain"]; has != (c.db == "mariadb" && c.method == "physical") {
				t.Errorf("docs/restore-plan.md: mariadb-backup chain section present=%v", has)
			}
			if !strings.Contains(plan, "dc() { docker compose -f "+strings.Join(bopsComposeFiles, " -f ")+` "$@"; }`) {
				t.Errorf("docs/restore-plan.md: no dc() with the four production files")
			}
			repo := map[string]string{"local": c.offsitePath(), "s3": "s3:https://objects.example.test/" + c.name + "-bak",
				"sftp": "sftp:bak@vault.example.test:/srv/bak/" + c.name}[c.offsite]
			if c.offsite != "none" {
				for _, s := range []string{"export RESTIC_REPOSITORY='" + repo + "'", "restic_password", "keys@" + c.name + ".example.test",
					"restore latest --host " + c.name + " --tag store=files"} {
					if !strings.Contains(plan, s) {
						t.Errorf("docs/restore-plan.md: the off-site section lacks %q", s)
					}
				}
			} else if !strings.Contains(plan, "**This project has no off-site copy**") {
				t.Errorf("docs/restore-plan.md: no warning that there is no off-site copy")
			}
			if !strings.Contains(plan, "make restore-test") || !strings.Contains(plan, "var/log/ops/restore-test.log") {
				t.Errorf("docs/restore-plan.md: no verification with the restore test")
			}

			// README, acceptance checklist, runbooks, .gitignore.
			readme := bopsReadFile(t, filepath.Join(dir, "README.md"))
			if !strings.Contains(readme, "\n## Backups\n") || !strings.Contains(readme, "make restore-test") {
				t.Errorf("README.md: no Backups section with make restore-test")
			}
			acc := bopsReadFile(t, filepath.Join(dir, "docs", "production-acceptance.md"))
			_, item3, _ := strings.Cut(acc, "\n## "+e2eutil.AcceptanceItems[2]+"\n")
			item3, _, _ = strings.Cut(item3, "\n## ")
			if !strings.Contains(item3, "make restore-test") || !strings.Contains(item3, "var/log/ops/restore-test.log") {
				t.Errorf("docs/production-acceptance.md item 3 does not point at make restore-test and restore-test.log:\n%s", item3)
			}
			if !strings.Contains(item3, "make check` looks for those lines, and for an off-site copy") {
				t.Errorf("docs/production-acceptance.md item 3 does not say that the off-site copy is checked:\n%s", item3)
			}
			for _, rb := range []string{"backup-stale", "backup-missing", "restore-test-failed", "restore-test-stale",
				"backup-failed", "backup-verify-failed", "backup-verify-stale"} {
				doc := bopsReadFile(t, filepath.Join(dir, "docs", "runbooks", rb+".md"))
				for _, s := range []string{"journalctl -u " + c.name + "-", "make "} {
					if !strings.Contains(doc, s) {
						t.Errorf("docs/runbooks/%s.md lacks %q", rb, s)
					}
				}
			}
		})
	}
}

func TestBackupOpsGitignore(t *testing.T) {
	gitPath := e2eutil.RequireTool(t, "git")
	dir := e2eutil.Generate(t, bopsCases()[3].set())
	if out, err := exec.Command(gitPath, "-C", dir, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	paths := []string{"var/backups/restic/config", "var/backups/pgbackrest/backup/x", "var/backups/staging/files/manifest.json",
		"var/log/ops/restore-test.log", "var/lib/node-exporter/textfile/backup_files_full.prom"}
	cmd := exec.Command(gitPath, "-C", dir, "check-ignore", "--no-index", "--stdin")
	cmd.Stdin = strings.NewReader(strings.Join(paths, "\n") + "\n")
	out, _ := cmd.Output()
	if got := strings.Fields(string(out)); !slices.Equal(got, paths) {
		t.Errorf("git ignores %v, want %v", got, paths)
	}
	cmd = exec.Command(gitPath, "-C", dir, "check-ignore", "--no-index", "--stdin")
	cmd.Stdin = strings.NewReader("ops/systemd/bops-d-backup.timer\nops/cron/bops-d-backup\nops/backup/Dockerfile\ncompose.backup.yaml\ndocs/backup-policy.md\n")
	if out, _ := cmd.Output(); len(out) > 0 {
		t.Errorf("generated files are git-ignored: %s", out)
	}
}

// ---------------------------------------------------------------------------------------
// The backup alert rules.

func TestBackupOpsRules(t *testing.T) {
	promtool := e2eutil.RequireTool(t, "promtool")
	for _, c := range []bopsCase{bopsCases()[0], bopsCases()[3], bopsCases()[5], bopsCases()[6]} {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, c.set())
			prom := filepath.Join(dir, "monitoring", "prometheus")
			var rf e2eutil.PromRuleFile
			e2eutil.ReadYAML(t, filepath.Join(prom, "rules", "backups.yml"), &rf)
			var missing []e2eutil.PromRule
			for _, g := range rf.Groups {
				for _, r := range g.Rules {
					if r.Alert == "BackupMissing" {
						missing = append(missing, r)
					}
				}
			}
			var stores []string
			for _, r := range missing {
				stores = append(stores, r.Labels["store"])
				if want := `absent(backup_last_success_timestamp_seconds{store="` + r.Labels["store"] + `"})`; strings.TrimSpace(r.Expr) != want {
					t.Errorf("BackupMissing for %s: expr %q, want %q", r.Labels["store"], r.Expr, want)
				}
			}
			if want := c.stores(); !slices.Equal(stores, want) {
				t.Fatalf("BackupMissing covers %v, want every store %v", stores, want)
			}
			e2eutil.Promtool(t, promtool, prom, "test", "rules", filepath.Join("tests", "backups.test.yml"))

			// The failure and verification alerts read the metrics the scripts write.
			exprs := map[string]string{}
			for _, g := range rf.Groups {
				for _, r := range g.Rules {
					exprs[r.Alert] += r.Expr
				}
			}
			verify := bopsReadFile(t, filepath.Join(dir, "ops", "backup", "verify.sh"))
			lib := bopsReadFile(t, filepath.Join(dir, "ops", "backup", "lib.sh"))
			for alert, metric := range map[string]string{"BackupFailed": "backup_last_result", "BackupVerifyFailed": "backup_verify_last_result",
				"BackupVerifyStale": "backup_verify_last_success_timestamp_seconds"} {
				if !strings.Contains(exprs[alert], metric) {
					t.Errorf("%s: expr %q does not read %s", alert, exprs[alert], metric)
				}
				if src := map[bool]string{true: verify, false: lib}[strings.HasPrefix(metric, "backup_verify_")]; !strings.Contains(src, metric+"{") {
					t.Errorf("%s reads %s, which no script writes", alert, metric)
				}
			}

			// An independent test: with a fresh backup metric of every store but files, only
			// files is missing after an hour; with it, nothing is.
			render := func(s, store string) string { return strings.ReplaceAll(s, "{{ $labels.store }}", store) }
			r := missing[len(missing)-1]
			var series []map[string]string
			for _, s := range c.stores() {
				if s != "files" {
					series = append(series, map[string]string{
						"series": fmt.Sprintf(`backup_last_success_timestamp_seconds{job="node",instance="node-exporter:9100",store=%q,kind="full"}`, s),
						"values": "0+600x12"})
				}
			}
			withFiles := append(slices.Clone(series), map[string]string{
				"series": `backup_last_success_timestamp_seconds{job="node",instance="node-exporter:9100",store="files",kind="full"}`,
				"values": "0+600x12"})
			doc := map[string]any{
				"rule_files":          []string{"../rules/backups.yml"},
				"evaluation_interval": "10m",
				"tests": []any{
					map[string]any{"interval": "10m", "input_series": series, "alert_rule_test": []any{
						map[string]any{"eval_time": "50m", "alertname": "BackupMissing", "exp_alerts": []any{}},
						map[string]any{"eval_time": "70m", "alertname": "BackupMissing", "exp_alerts": []any{map[string]any{
							"exp_labels": map[string]string{"severity": r.Labels["severity"], "store": "files"},
							"exp_annotations": map[string]string{"summary": render(r.Annotations["summary"], "files"),
								"description": render(r.Annotations["description"], "files"), "runbook_url": r.Annotations["runbook_url"]},
						}}},
					}},
					map[string]any{"interval": "10m", "input_series": withFiles, "alert_rule_test": []any{
						map[string]any{"eval_time": "110m", "alertname": "BackupMissing", "exp_alerts": []any{}},
					}},
				},
			}
			raw, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(prom, "tests", "bops-files.test.yml"), raw, 0o644); err != nil {
				t.Fatal(err)
			}
			e2eutil.Promtool(t, promtool, prom, "test", "rules", filepath.Join("tests", "bops-files.test.yml"))
		})
	}
}
