package check

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Severity ranks a finding; --fail-on compares against it.
type Severity int

// Severities, lowest first.
const (
	Low Severity = iota + 1
	Medium
	High
	Critical
)

var severityNames = []string{"", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < Low || s > Critical {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity reads low, medium, high or critical.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if i > 0 && strings.EqualFold(s, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want low, medium, high or critical)", s)
}

// MarshalJSON writes the severity's name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a severity's name.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var n string
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	v, err := ParseSeverity(n)
	*s = v
	return err
}

// Rule is one kind of finding. The table below is the catalogue docs/checks.md describes;
// a test keeps the two in step.
type Rule struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	Scope    string   `json:"scope"` // service or repository
	Title    string   `json:"title"`
	// Why is the rationale, one sentence.
	Why string `json:"why"`
	// Source names where the practice is written down.
	Source string `json:"source"`
	// CIS is the CIS Docker Benchmark v1.6.0 recommendation, or "" when none applies.
	CIS string `json:"cis,omitempty"`
}

const (
	scopeService = "service"
	scopeRepo    = "repository"
	adoptFix     = "opsready adopt adds this"
)

// Rules is every check, in report order.
var Rules = []Rule{
	{ID: "svc-restart", Severity: High, Scope: scopeService, Title: "no restart policy",
		Why:    "without one, the service stays down after a crash, an OOM kill or a host reboot",
		Source: "Docker docs: Start containers automatically; compose spec: restart"},
	{ID: "svc-log-rotation", Severity: High, Scope: scopeService, Title: "container logs not rotated",
		Why:    "the default json-file driver keeps every log line forever, until the disk is full",
		Source: "Docker docs: JSON File logging driver (max-size, max-file), local driver"},
	{ID: "svc-healthcheck", Severity: Medium, Scope: scopeService, Title: "no healthcheck",
		Why:    "without one, dependants cannot wait for it, `up --wait` cannot tell a hung service from a healthy one, and monitoring sees only 'running'",
		Source: "compose spec: healthcheck; Docker docs: HEALTHCHECK", CIS: "5.27, 4.6"},
	{ID: "svc-depends-condition", Severity: Medium, Scope: scopeService, Title: "dependency without a condition",
		Why:    "a plain depends_on waits only until the dependency's container started, not until it accepts connections",
		Source: "compose spec: depends_on (condition: service_healthy)"},
	{ID: "svc-memory-limit", Severity: Medium, Scope: scopeService, Title: "no memory limit",
		Why:    "one leaking service can take the host's memory and get other services OOM-killed",
		Source: "compose spec: deploy.resources.limits; Docker docs: Resource constraints", CIS: "5.11"},
	{ID: "svc-cpu-limit", Severity: Low, Scope: scopeService, Title: "no CPU limit",
		Why:    "one busy service can starve the others on the host",
		Source: "compose spec: deploy.resources.limits; Docker docs: Resource constraints", CIS: "5.12"},
	{ID: "svc-image-unpinned", Severity: High, Scope: scopeService, Title: "image not pinned",
		Why:    "no tag or `latest` means the next pull can bring another major version, e.g. a database that no longer reads its data directory",
		Source: "Docker docs: Image tags are mutable; compose spec: image"},
	{ID: "svc-image-floating", Severity: Low, Scope: scopeService, Title: "image tag without a version",
		Why:    "a tag such as `alpine` or `stable` moves to new releases; a pull changes what runs without a change in the repository",
		Source: "Docker docs: Image tags are mutable"},
	{ID: "svc-db-published", Severity: High, Scope: scopeService, Title: "data store published on the host's network",
		Why:    "a database or cache port open on every host interface is reachable from the network, and docker's rules bypass the host firewall",
		Source: "compose spec: ports (host_ip); Docker docs: Packet filtering and firewalls", CIS: "5.14"},
	{ID: "svc-secret-literal", Severity: High, Scope: scopeService, Title: "secret written in the compose file",
		Why:    "a password in the environment section is committed with the file and shown by `docker inspect`",
		Source: "compose spec: secrets; Docker docs: Manage secrets securely in Docker Compose"},
	{ID: "svc-privileged", Severity: High, Scope: scopeService, Title: "privileged container",
		Why:    "a privileged container has every capability and all host devices: a compromise is a host compromise",
		Source: "compose spec: privileged", CIS: "5.5"},
	{ID: "svc-docker-socket", Severity: High, Scope: scopeService, Title: "docker socket mounted",
		Why:    "access to the docker socket is root on the host, even when mounted read-only",
		Source: "Docker docs: Docker Engine security (daemon attack surface)", CIS: "5.32"},
	{ID: "svc-host-namespace", Severity: Medium, Scope: scopeService, Title: "host namespace shared",
		Why:    "sharing the host's network, PID, IPC or UTS namespace removes a layer of isolation between the container and the host",
		Source: "compose spec: network_mode, pid, ipc, uts", CIS: "5.10, 5.16, 5.17, 5.21"},
	{ID: "svc-cap-add", Severity: Medium, Scope: scopeService, Title: "powerful capability added",
		Why:    "capabilities such as SYS_ADMIN or ALL give the container near-root power over the host kernel",
		Source: "compose spec: cap_add; Docker docs: Runtime privilege and Linux capabilities", CIS: "5.4"},
	{ID: "svc-no-new-privileges", Severity: Low, Scope: scopeService, Title: "privilege escalation not blocked",
		Why:    "without no-new-privileges, a setuid binary in the image can raise a compromised process's privileges",
		Source: "compose spec: security_opt; Docker docs: docker run --security-opt", CIS: "5.26"},
	{ID: "svc-read-only", Severity: Low, Scope: scopeService, Title: "root filesystem writable",
		Why:    "a read-only root filesystem stops an attacker or a bug from changing the container's binaries and configuration",
		Source: "compose spec: read_only", CIS: "5.13"},
	{ID: "svc-db-stop-grace", Severity: Low, Scope: scopeService, Title: "data store killed after 10 s",
		Why:    "docker sends SIGKILL 10 s after SIGTERM by default; a database still flushing is killed and starts with crash recovery",
		Source: "compose spec: stop_grace_period; Docker docs: docker stop"},

	{ID: "repo-backup", Severity: Critical, Scope: scopeRepo, Title: "no backups",
		Why:    "the project keeps data (a database or named volumes) and nothing in the repository backs it up",
		Source: "opsready SPEC §6 (Backup)"},
	{ID: "repo-restore-test", Severity: High, Scope: scopeRepo, Title: "backups never restored in a test",
		Why:    "a backup that was never restored is not known to work; only a restore test proves it",
		Source: "opsready SPEC §6 (Restore test)"},
	{ID: "repo-prometheus", Severity: High, Scope: scopeRepo, Title: "no Prometheus configuration",
		Why:    "nothing collects metrics, so nothing can alert before users notice",
		Source: "opsready SPEC §6 (Monitoring and alerting)"},
	{ID: "repo-alert-rules", Severity: High, Scope: scopeRepo, Title: "no alert rules",
		Why:    "without alert rules a full disk, a dead database or a failed backup is found by users",
		Source: "opsready SPEC §6 (Monitoring and alerting)"},
	{ID: "repo-alert-tests", Severity: Medium, Scope: scopeRepo, Title: "alert rules without tests",
		Why:    "an untested rule can have a typo in a metric name and never fire; promtool test rules catches that",
		Source: "Prometheus docs: Unit testing for rules"},
	{ID: "repo-alertmanager", Severity: High, Scope: scopeRepo, Title: "no Alertmanager configuration",
		Why:    "alerts that are not routed to a person are not seen",
		Source: "opsready SPEC §6 (Monitoring and alerting)"},
	{ID: "repo-runbooks", Severity: Medium, Scope: scopeRepo, Title: "no runbooks",
		Why:    "the person paged at night needs to know what the alert means and what to do",
		Source: "opsready SPEC §6 (Docs)"},
	{ID: "repo-ci", Severity: Medium, Scope: scopeRepo, Title: "no CI pipeline",
		Why:    "without CI nothing checks the compose files, scripts and rules before they reach production",
		Source: "opsready SPEC §6 (CI)"},
	{ID: "repo-smoke-test", Severity: Medium, Scope: scopeRepo, Title: "no smoke test",
		Why:    "a deploy is not known to work until every health endpoint answered through the proxy",
		Source: "opsready SPEC §6 (Tests in the generated repo)"},
	{ID: "repo-load-test", Severity: Low, Scope: scopeRepo, Title: "no load test",
		Why:    "resource limits and capacity are guesses until a load test measured them",
		Source: "opsready SPEC §6 (Tests in the generated repo)"},
	{ID: "repo-host-logrotate", Severity: Medium, Scope: scopeRepo, Title: "no log rotation for host log files",
		Why:    "log files written to the host or to bind mounts are not rotated by docker and fill the disk",
		Source: "opsready SPEC §6 (Logging); logrotate(8)"},
	{ID: "repo-postmortem", Severity: Low, Scope: scopeRepo, Title: "no postmortem template",
		Why:    "a blameless postmortem template makes the lessons of an incident get written down",
		Source: "opsready SPEC §6 (Docs); Google SRE book, Postmortem culture"},
	{ID: "repo-acceptance", Severity: Low, Scope: scopeRepo, Title: "no production-acceptance checklist",
		Why:    "a checklist states what must be true (alerts, quotas, a restored backup) before the service is accepted for production",
		Source: "opsready SPEC §6 (Docs)"},
}

// ruleByID finds a rule.
func ruleByID(id string) (Rule, bool) {
	for _, r := range Rules {
		if r.ID == id {
			return r, true
		}
	}
	return Rule{}, false
}

func ruleIndex(id string) int {
	for i, r := range Rules {
		if r.ID == id {
			return i
		}
	}
	return len(Rules)
}
