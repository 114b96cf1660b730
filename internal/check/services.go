package check

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"go.yaml.in/yaml/v3"
)

// storeKind is the kind of data store an image runs, or "" for anything else.
func storeKind(image string) string {
	if image == "" {
		return ""
	}
	name := image
	if n, err := reference.ParseNormalizedNamed(image); err == nil {
		name = reference.Path(n)
	}
	base := name[strings.LastIndex(name, "/")+1:]
	for _, tool := range []string{"exporter", "backup", "admin", "proxy", "operator", "insight", "commander"} {
		if strings.Contains(base, tool) {
			return "" // a tool for a data store (postgres-exporter, pgadmin, …), not one
		}
	}
	switch {
	case strings.Contains(base, "postgres") || base == "postgis" || base == "timescaledb":
		return "postgres"
	case base == "mariadb":
		return "mariadb"
	case base == "mysql" || strings.HasPrefix(base, "percona"):
		return "mysql"
	case base == "mongo" || base == "mongodb" || strings.HasPrefix(base, "mongodb-"):
		return "mongo"
	case strings.HasPrefix(base, "redis") || base == "valkey" || base == "keydb":
		return "redis"
	case base == "memcached":
		return "memcached"
	case base == "elasticsearch" || base == "opensearch" || base == "cassandra" || base == "couchdb" ||
		base == "influxdb" || strings.HasPrefix(base, "clickhouse") || base == "neo4j" || base == "etcd" ||
		base == "minio" || base == "rabbitmq":
		return "other"
	}
	return ""
}

// isJob tells a one-shot task (a migration, a backup run) from a long-running service:
// something waits for it to complete, or it declares both `restart: "no"` and a disabled
// healthcheck, which only makes sense for a task.
func isJob(p *types.Project, s types.ServiceConfig) bool {
	for _, o := range p.Services {
		if d, ok := o.DependsOn[s.Name]; ok && d.Condition == types.ServiceConditionCompletedSuccessfully {
			return true
		}
	}
	return s.Restart == types.RestartPolicyNo && s.HealthCheck != nil && s.HealthCheck.Disable
}

// checkServices runs every service-level rule.
func (c *checker) checkServices() error {
	p := c.l.project
	for _, name := range c.l.serviceNames() {
		s := p.Services[name]
		if err := c.checkImage(s); err != nil {
			return err
		}
		job := isJob(p, s)
		kind := storeKind(s.Image)
		if !job {
			c.restart(s)
			c.healthcheck(s, kind)
		}
		c.dependsOn(s)
		c.logRotation(s)
		c.limits(s)
		c.published(s, kind)
		c.secrets(s)
		c.hardening(s)
		if kind != "" && kind != "memcached" && !job {
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= 10*time.Second {
				c.add("svc-db-stop-grace", s.Name, c.l.yaml.keyAt(s.Name, "stop_grace_period"),
					"the data store gets docker's default 10 s to shut down before SIGKILL",
					"stop_grace_period: 60s")
			}
		}
	}
	return nil
}

var versionDigit = lazyRegexp(`[0-9]`)

func (c *checker) checkImage(s types.ServiceConfig) error {
	pos := c.l.yaml.keyAt(s.Name, "image")
	if s.Image == "" {
		return nil // compose-go already refused a service with neither image nor build
	}
	ref, err := reference.ParseNormalizedNamed(s.Image)
	if err != nil {
		return inputErrorf("%s:%d: service %q: image %q is not a valid image reference: %v",
			c.l.relPath(pos.path), pos.line, s.Name, s.Image, err)
	}
	if s.Build != nil || c.builtHere(s.Image) {
		return nil // built here: the tag names the local build, pinning is the Dockerfile's job
	}
	_, digested := ref.(reference.Digested)
	tagged, hasTag := ref.(reference.Tagged)
	switch {
	case digested:
	case !hasTag:
		c.add("svc-image-unpinned", s.Name, pos, fmt.Sprintf("image %q has no tag: docker pulls `latest`", s.Image),
			fmt.Sprintf("image: %s:<version>   # e.g. the version running today; or pin a digest with @sha256:...", reference.FamiliarName(ref)))
	case tagged.Tag() == "latest":
		c.add("svc-image-unpinned", s.Name, pos, fmt.Sprintf("image %q uses the `latest` tag", s.Image),
			fmt.Sprintf("image: %s:<version>   # e.g. the version running today; or pin a digest with @sha256:...", reference.FamiliarName(ref)))
	case !versionDigit.MatchString(tagged.Tag()):
		c.add("svc-image-floating", s.Name, pos, fmt.Sprintf("image %q: tag %q names no version", s.Image, tagged.Tag()),
			fmt.Sprintf("image: %s:<version>-%s", reference.FamiliarName(ref), tagged.Tag()))
	}
	return nil
}

// builtHere reports whether a service of the project builds image (a job that runs the
// image another service builds, such as a migration).
func (c *checker) builtHere(image string) bool {
	for _, s := range c.l.project.Services {
		if s.Build != nil && s.Image == image {
			return true
		}
	}
	return false
}

func (c *checker) restart(s types.ServiceConfig) {
	switch {
	case s.Restart == types.RestartPolicyAlways || s.Restart == types.RestartPolicyUnlessStopped ||
		strings.HasPrefix(s.Restart, types.RestartPolicyOnFailure):
		return
	case s.Deploy != nil && s.Deploy.RestartPolicy != nil && s.Deploy.RestartPolicy.Condition != "none":
		return
	}
	why := "no restart policy: the service stays down after a crash or a reboot"
	if s.Restart == types.RestartPolicyNo {
		why = "`restart: \"no\"` on a long-running service: it stays down after a crash or a reboot"
	}
	c.add("svc-restart", s.Name, c.l.yaml.keyAt(s.Name, "restart"), why, "restart: unless-stopped")
}

// healthTests are the checks the official images support, by data store kind.
var healthTests = map[string]string{
	"postgres":  `["CMD", "pg_isready", "-h", "127.0.0.1"]`,
	"mariadb":   `["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]   # images from 10.4.32/10.5.23/10.6.16/10.11.6; older: ["CMD", "mysqladmin", "ping", "-h", "127.0.0.1"]`,
	"mysql":     `["CMD", "mysqladmin", "ping", "-h", "127.0.0.1"]`,
	"redis":     `["CMD", "redis-cli", "ping"]`,
	"mongo":     `["CMD", "mongosh", "--quiet", "--eval", "db.adminCommand('ping')"]`,
	"memcached": `["CMD-SHELL", "echo stats | nc 127.0.0.1 11211 | grep -q uptime"]`,
}

func (c *checker) healthcheck(s types.ServiceConfig, kind string) {
	if s.HealthCheck != nil && !s.HealthCheck.Disable {
		return
	}
	why := "no healthcheck in the compose files (an image's own HEALTHCHECK is not visible here)"
	if s.HealthCheck != nil {
		why = "healthcheck disabled on a long-running service"
	}
	test, ok := healthTests[kind]
	if !ok {
		port := "8080"
		if len(s.Ports) > 0 {
			port = fmt.Sprint(s.Ports[0].Target)
		} else if len(s.Expose) > 0 {
			port = strings.Split(s.Expose[0], "/")[0]
		}
		test = fmt.Sprintf(`["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:%s/healthz"]   # or curl; the app's health endpoint`, port)
	}
	c.add("svc-healthcheck", s.Name, c.l.yaml.keyAt(s.Name, "healthcheck"), why,
		"healthcheck:\n  test: "+test+"\n  interval: 10s\n  timeout: 5s\n  retries: 3\n  start_period: 30s")
}

func (c *checker) dependsOn(s types.ServiceConfig) {
	p := c.l.project
	for _, dep := range sortedKeys(s.DependsOn) {
		d := s.DependsOn[dep]
		if d.Condition != types.ServiceConditionStarted && d.Condition != "" {
			continue
		}
		ds, ok := p.Services[dep]
		if !ok {
			continue // in an inactive profile
		}
		cond, extra := "service_healthy", ""
		if isJob(p, ds) {
			cond = "service_completed_successfully"
		} else if ds.HealthCheck == nil || ds.HealthCheck.Disable {
			extra = fmt.Sprintf(" (and a healthcheck on %s)", dep)
		}
		c.add("svc-depends-condition", s.Name, c.dependsAt(s.Name, dep),
			fmt.Sprintf("depends on %s without a condition: it may start before %s is ready", dep, dep),
			fmt.Sprintf("depends_on:\n  %s:\n    condition: %s%s", dep, cond, commentIf(extra)))
	}
}

func commentIf(s string) string {
	if s == "" {
		return ""
	}
	return "   #" + s
}

// dependsAt is the line naming dep under the service's depends_on, in the last file that
// names it.
func (c *checker) dependsAt(svc, dep string) at {
	defs := c.l.yaml.service(svc)
	for i := len(defs) - 1; i >= 0; i-- {
		k, v := get(defs[i].val, "depends_on")
		if k == nil {
			continue
		}
		switch v.Kind {
		case yaml.SequenceNode:
			for _, e := range v.Content {
				if e.Value == dep {
					return at{defs[i].path, e.Line}
				}
			}
		case yaml.MappingNode:
			if dk, _ := get(v, dep); dk != nil {
				return at{defs[i].path, dk.Line}
			}
		}
	}
	return c.l.yaml.keyAt(svc, "depends_on")
}

func (c *checker) logRotation(s types.ServiceConfig) {
	driver, opts := "", map[string]string{}
	if s.Logging != nil {
		driver, opts = s.Logging.Driver, s.Logging.Options
	}
	if driver != "" && driver != "json-file" {
		return // local rotates by default; journald, syslog, fluentd, … ship logs off the container
	}
	if opts["max-size"] != "" {
		return
	}
	why := "no logging section: docker's default json-file driver never rotates (unless the daemon's daemon.json sets log-opts)"
	if s.Logging != nil {
		why = "json-file logging without max-size: the log grows until the disk is full"
	}
	c.add("svc-log-rotation", s.Name, c.l.yaml.keyAt(s.Name, "logging"), why,
		"logging:\n  driver: json-file\n  options:\n    max-size: \"10m\"\n    max-file: \"5\"")
}

func (c *checker) limits(s types.ServiceConfig) {
	var lim *types.Resource
	if s.Deploy != nil {
		lim = s.Deploy.Resources.Limits
	}
	pos := c.l.yaml.keyAt(s.Name, "deploy", "resources", "limits")
	if s.MemLimit == 0 && (lim == nil || lim.MemoryBytes == 0) {
		c.add("svc-memory-limit", s.Name, pos, "no memory limit (deploy.resources.limits.memory or mem_limit)",
			"deploy:\n  resources:\n    limits:\n      memory: 512m   # measured peak plus headroom; a load test tells")
	}
	if s.CPUS == 0 && s.CPUQuota == 0 && (lim == nil || lim.NanoCPUs == 0) {
		c.add("svc-cpu-limit", s.Name, pos, "no CPU limit (deploy.resources.limits.cpus or cpus)",
			"deploy:\n  resources:\n    limits:\n      cpus: \"1.0\"")
	}
}

func isLoopback(hostIP string) bool {
	if hostIP == "localhost" {
		return true
	}
	ip := net.ParseIP(hostIP)
	return ip != nil && ip.IsLoopback()
}

func (c *checker) published(s types.ServiceConfig, kind string) {
	if kind == "" {
		return
	}
	if s.NetworkMode == "host" {
		c.add("svc-db-published", s.Name, c.l.yaml.keyAt(s.Name, "network_mode"),
			"data store on the host's network: every port it listens on is open on the host",
			"# remove network_mode: host; other services reach it by its service name")
		return
	}
	for _, pt := range s.Ports {
		if pt.Published == "" || isLoopback(pt.HostIP) {
			continue
		}
		where := "every host interface"
		if pt.HostIP != "" && pt.HostIP != "0.0.0.0" && pt.HostIP != "::" {
			where = pt.HostIP
		}
		c.add("svc-db-published", s.Name, c.l.yaml.keyAt(s.Name, "ports"),
			fmt.Sprintf("%s port %d published on %s (host port %s)", kind, pt.Target, where, pt.Published),
			fmt.Sprintf("# remove the ports entry (services reach it as %s:%d), or publish on loopback only:\nports:\n  - \"127.0.0.1:%s:%d\"", s.Name, pt.Target, pt.Published, pt.Target))
		return
	}
}

// secretName matches environment variable names that hold credentials.
var secretName = lazyRegexp(`(?i)(PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL)`)

// literalSecret reports whether an environment value, as written in the file, is a literal
// credential: not empty, not interpolated from the environment, not a path to a secret file.
func literalSecret(name, raw string) bool {
	if !secretName.MatchString(name) {
		return false
	}
	u := strings.ToUpper(name)
	if strings.HasSuffix(u, "_FILE") || strings.HasSuffix(u, "_PATH") || strings.HasSuffix(u, "_DIR") {
		return false
	}
	raw = strings.TrimSpace(raw)
	if raw == "" || strings.Contains(raw, "$") || strings.HasPrefix(raw, "/") {
		return false
	}
	return true
}

func (c *checker) secrets(s types.ServiceConfig) {
	seen := map[string]bool{}
	defs := c.l.yaml.service(s.Name)
	// Last file first: an override that replaces a literal with ${VAR} fixes it.
	for i := len(defs) - 1; i >= 0; i-- {
		_, env := get(defs[i].val, "environment")
		if env == nil {
			continue
		}
		check := func(name, raw string, hasValue bool, line int) {
			if seen[name] {
				return
			}
			seen[name] = true
			if hasValue && literalSecret(name, raw) {
				c.add("svc-secret-literal", s.Name, at{defs[i].path, line},
					fmt.Sprintf("%s is set to a literal value in the compose file", name),
					secretFix(name))
			}
		}
		switch env.Kind {
		case yaml.MappingNode:
			for _, kv := range pairs(env) {
				check(kv[0].Value, kv[1].Value, kv[1].Tag != "!!null", kv[0].Line)
			}
		case yaml.SequenceNode:
			for _, e := range env.Content {
				k, v, ok := strings.Cut(deref(e).Value, "=")
				check(k, v, ok, e.Line)
			}
		}
	}
}

func secretFix(name string) string {
	secret := strings.ToLower(name)
	return fmt.Sprintf("# the official postgres/mariadb/mysql images read %s_FILE; or interpolate from the git-ignored .env: %s: ${%s:?}\nenvironment:\n  %s_FILE: /run/secrets/%s\nsecrets:\n  - %s\n# top level:\nsecrets:\n  %s:\n    file: ./secrets/%s   # git-ignored",
		name, name, name, name, secret, secret, secret, secret)
}

var dangerousCaps = map[string]bool{"ALL": true, "SYS_ADMIN": true, "SYS_MODULE": true, "SYS_PTRACE": true,
	"SYS_RAWIO": true, "NET_ADMIN": true, "DAC_READ_SEARCH": true, "SYS_BOOT": true, "BPF": true, "PERFMON": true}

func (c *checker) hardening(s types.ServiceConfig) {
	y := c.l.yaml
	if s.Privileged {
		c.add("svc-privileged", s.Name, y.keyAt(s.Name, "privileged"), "privileged: true",
			"# drop privileged: true; add only the capabilities and devices the service needs:\ncap_add: [<CAPABILITY>]\ndevices: [\"/dev/<device>\"]")
	}
	for _, v := range s.Volumes {
		src := strings.TrimPrefix(v.Source, "/var")
		if v.Type == types.VolumeTypeBind && (src == "/run/docker.sock" || strings.HasSuffix(v.Source, "/docker.sock")) {
			c.add("svc-docker-socket", s.Name, y.keyAt(s.Name, "volumes"),
				fmt.Sprintf("%s is mounted into the container", v.Source),
				"# remove the mount; if the service must read container metadata, put a filtering proxy in front\n# (e.g. tecnativa/docker-socket-proxy with only the endpoints it needs)")
			break
		}
	}
	for _, ns := range []struct{ key, val string }{{"network_mode", s.NetworkMode}, {"pid", s.Pid}, {"ipc", s.Ipc}, {"uts", s.Uts}} {
		if ns.val == "host" {
			c.add("svc-host-namespace", s.Name, y.keyAt(s.Name, ns.key), fmt.Sprintf("%s: host", ns.key),
				fmt.Sprintf("# remove %s: host unless the service monitors the host itself (then waive it with the reason)", ns.key))
		}
	}
	var caps []string
	for _, cp := range s.CapAdd {
		if dangerousCaps[strings.TrimPrefix(strings.ToUpper(cp), "CAP_")] {
			caps = append(caps, cp)
		}
	}
	if len(caps) > 0 {
		c.add("svc-cap-add", s.Name, y.keyAt(s.Name, "cap_add"), "cap_add: "+strings.Join(caps, ", "),
			"cap_drop: [ALL]\ncap_add: [<only what the service needs, e.g. NET_BIND_SERVICE>]")
	}
	nnp := false
	for _, o := range s.SecurityOpt {
		o = strings.ReplaceAll(o, "=", ":")
		if o == "no-new-privileges" || o == "no-new-privileges:true" {
			nnp = true
		}
	}
	if !nnp && !s.Privileged {
		c.add("svc-no-new-privileges", s.Name, y.keyAt(s.Name, "security_opt"), "security_opt has no no-new-privileges",
			"security_opt:\n  - no-new-privileges:true")
	}
	if !s.ReadOnly {
		c.add("svc-read-only", s.Name, y.keyAt(s.Name, "read_only"), "the container's root filesystem is writable",
			"read_only: true\ntmpfs:\n  - /tmp   # and volumes for the paths the service writes")
	}
}
