package adopt

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"

	"github.com/opsready/opsready/internal/check"
)

// Roles a service can have.
const (
	RoleDB       = "db"
	RoleCache    = "cache"
	RoleProxy    = "proxy"
	RoleBackend  = "backend"
	RoleFrontend = "frontend"
	RoleJob      = "job"
	RoleOther    = "other"
)

// Service is what adopt learned about one compose service.
type Service struct {
	Name     string
	Image    string   // as written; "" when only built
	Built    bool     // has a build section
	Role     string   // "db", "cache", "proxy", "backend", "frontend", "job", "other"
	Engine   string   // postgres, mariadb, mysql, redis, valkey, mongodb, memcached, …; "" for non-stores
	Version  string   // image tag (e.g. "10.5", "16-alpine"); "" when unpinned/latest/digest-only/no version in the tag
	Networks []string // sorted; "default" when none given (nil with network_mode)
	Volumes  []string // named volumes it mounts, sorted
	DataDir  string   // mount target of the named volume holding the engine's data (e.g. /var/lib/mysql)
	Ports    []string // published host ports, e.g. "80:80", "127.0.0.1:5432:5432", "53:53/udp"
	// Healthcheck is true when the compose files give the service a healthcheck that is not
	// disabled.
	Healthcheck bool
	// SuggestedHealthcheck is a compose test array adopt can add when Healthcheck is false and
	// the image tells how; nil when it has one, or when none can be determined (HealthWhy says
	// why). HealthWhy may also carry a caveat about a suggestion.
	SuggestedHealthcheck []string
	HealthWhy            string
	// HealthPath is the app's health endpoint when detectable (from a URL or a path such as
	// /healthz in an existing healthcheck or the Dockerfile's HEALTHCHECK), else "".
	HealthPath string
	DB         DBAccess // for Role db with a relational engine: from the engine's env conventions

	// BuildBase is the external base image of the built stage (the Dockerfile's FROM, followed
	// through earlier stages), "" when not built or the Dockerfile could not be read.
	BuildBase string
	// ImageHealthcheck is true when the built stage of the Dockerfile declares a HEALTHCHECK:
	// docker runs it although the compose files do not show it.
	ImageHealthcheck bool
}

// DBAccess is how to reach a relational database, from the official images' variables.
type DBAccess struct {
	User, Database string // POSTGRES_USER (default postgres) / POSTGRES_DB (default = user); MYSQL_/MARIADB_ USER or root, DATABASE
	// PasswordSecret is the compose secret name when *_PASSWORD_FILE=/run/secrets/NAME (the
	// ROOT one for root).
	PasswordSecret string
	// PasswordSecretFile is that secret's file: source relative to the project dir (slashes),
	// "" if external or from the environment.
	PasswordSecretFile string
	// PasswordEnv is the container environment variable that holds the password when it is
	// given in the environment (literal or interpolated), e.g. MYSQL_PASSWORD; "" otherwise.
	PasswordEnv string
	// PasswordLiteral is true when the password is given literally in the environment (adopt
	// then cannot keep it out of git; report it). A value equal to a variable of the
	// interpolation environment (.env, process) counts as interpolated, not literal.
	PasswordLiteral bool
}

// Detection is the stack adopt found in a compose project.
type Detection struct {
	Dir      string
	Files    []string  // compose files loaded, relative
	Project  string    // compose project name
	Services []Service // sorted by name
	// DB is the one relational database adopt backs up (postgres, mariadb, mysql); nil if
	// none; first by name if several (Notes says so).
	DB                       *Service
	Cache                    *Service // redis/valkey
	Backend, Frontend, Proxy *Service
	// DataVolumes are named volumes that hold data but belong to no data store (files
	// backup), sorted.
	DataVolumes []string
	// Unsupported has one line per data store adopt does not cover.
	Unsupported []string
	Notes       []string // what could not be detected and why, one line each
}

// Service returns the detected service called name, or nil.
func (d *Detection) Service(name string) *Service {
	for i := range d.Services {
		if d.Services[i].Name == name {
			return &d.Services[i]
		}
	}
	return nil
}

// Detect reads the stack from a loaded compose project (check.LoadProject). dir is the
// project directory and files the compose files relative to it; both are reported as given,
// and dir resolves secret files and build contexts. It reads nothing but the build contexts'
// Dockerfile and package.json. An image that is not a valid reference is an error.
func Detect(p *types.Project, dir string, files []string) (*Detection, error) {
	if p == nil {
		return nil, errors.New("detect: no compose project")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	d := &Detection{Dir: dir, Files: files, Project: p.Name}
	names := make([]string, 0, len(p.Services))
	for n := range p.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		d.Notes = append(d.Notes, "the compose files define no service (in the active profiles): nothing to adopt")
		return d, nil
	}

	// First pass: what each service is on its own.
	facts := make(map[string]*svcFacts, len(names))
	for _, n := range names {
		f, err := inspect(p, p.Services[n], abs)
		if err != nil {
			return nil, err
		}
		facts[n] = f
		d.Services = append(d.Services, f.Service)
	}
	// Second pass: roles, which depend on the other services.
	for i := range d.Services {
		s := &d.Services[i]
		s.Role = role(p, facts, s.Name)
	}
	for i := range d.Services {
		s := &d.Services[i]
		if s.Role == RoleDB && relational(s.Engine) {
			s.DB = dbAccess(p, p.Services[s.Name], s.Engine, abs)
		}
		suggestHealth(s, facts[s.Name])
	}
	d.pick(facts)
	d.dataVolumes(p, facts)
	d.note(p, facts)
	return d, nil
}

// svcFacts is a Service with what role and healthcheck detection need beyond it.
type svcFacts struct {
	Service
	img         imageRef
	kind        string // check.StoreKind
	job         bool
	targets     []uint32 // container ports: published, exposed, Dockerfile EXPOSE
	uiDeps      bool     // the build context's package.json names a browser UI framework
	jsBase      bool     // built from node/bun/deno
	bindData    string   // bind-mount source holding the engine's data, when not a named volume
	dataPath    string   // where the engine keeps its data, "" if unknown
	pingEnabled bool     // traefik's command or environment enables ping
	front       int      // evidence for the frontend role
	back        int      // evidence for the backend role
}

type imageRef struct {
	base    string // last path element: postgres, mariadb, nextcloud
	path    string // repository path without registry: library/postgres, bitnami/redis
	tag     string
	digest  bool
	library bool // an official image or a mirror of one (no namespace in the path)
}

func parseImage(image string) (imageRef, error) {
	if image == "" {
		return imageRef{}, nil
	}
	n, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return imageRef{}, err
	}
	r := imageRef{path: reference.Path(n)}
	r.base = r.path[strings.LastIndex(r.path, "/")+1:]
	r.library = !strings.Contains(r.path, "/") || strings.HasPrefix(r.path, "library/") && strings.Count(r.path, "/") == 1
	if t, ok := n.(reference.Tagged); ok {
		r.tag = t.Tag()
	}
	_, r.digest = n.(reference.Digested)
	return r, nil
}

// version is the tag when it names a version: "" for no tag, latest, or a tag without digits
// (alpine, apache, stable), which float.
func (r imageRef) version() string {
	if r.tag == "" || r.tag == "latest" || !strings.ContainsAny(r.tag, "0123456789") {
		return ""
	}
	return r.tag
}

var (
	proxyImages = map[string]bool{"nginx": true, "nginx-unprivileged": true, "openresty": true, "traefik": true,
		"caddy": true, "haproxy": true, "envoy": true, "httpd": true, "nginx-proxy": true}
	proxyNames    = map[string]bool{"proxy": true, "reverse-proxy": true, "nginx": true, "traefik": true, "caddy": true, "haproxy": true, "gateway": true, "lb": true, "ingress": true}
	backendNames  = map[string]bool{"backend": true, "api": true, "app": true, "server": true}
	frontendNames = map[string]bool{"frontend": true, "ui": true, "client": true, "web-ui": true, "webui": true, "webapp": true, "spa": true}
	// appImages are official application images that run the backend themselves, with the
	// directory where they keep their data.
	appImages = map[string]string{"nextcloud": "/var/www/html", "wordpress": "/var/www/html", "drupal": "/var/www/html",
		"joomla": "/var/www/html", "ghost": "/var/lib/ghost/content", "gitea": "/data", "mediawiki": "/var/www/html/images",
		"redmine": "/usr/src/redmine/files", "matomo": "/var/www/html", "odoo": "/var/lib/odoo", "nodebb": "/usr/src/app/public/uploads",
		"mattermost-team-edition": "/mattermost/data"}
	// toolImages are admin and developer tools: never the backend.
	toolImages = map[string]bool{"adminer": true, "phpmyadmin": true, "pgadmin4": true, "mailhog": true, "mailpit": true,
		"redis-commander": true, "mongo-express": true, "prometheus": true, "grafana": true, "alertmanager": true,
		"cadvisor": true, "node-exporter": true, "portainer": true, "watchtower": true, "loki": true, "promtail": true}
	// dataPaths are where official store images keep their data.
	dataPaths = map[string]string{"postgres": "/var/lib/postgresql/data", "mariadb": "/var/lib/mysql", "mysql": "/var/lib/mysql",
		"mongodb": "/data/db", "redis": "/data", "valkey": "/data", "keydb": "/data", "elasticsearch": "/usr/share/elasticsearch/data",
		"opensearch": "/usr/share/opensearch/data", "influxdb": "/var/lib/influxdb2", "rabbitmq": "/var/lib/rabbitmq",
		"minio": "/data", "couchdb": "/opt/couchdb/data", "cassandra": "/var/lib/cassandra", "neo4j": "/data", "etcd": "/etcd-data"}
	engineTitles = map[string]string{"mongodb": "MongoDB", "elasticsearch": "Elasticsearch", "opensearch": "OpenSearch",
		"cassandra": "Cassandra", "couchdb": "CouchDB", "influxdb": "InfluxDB", "neo4j": "Neo4j", "etcd": "etcd",
		"minio": "MinIO", "rabbitmq": "RabbitMQ", "keydb": "KeyDB", "clickhouse": "ClickHouse"}
	jsDevPorts = map[uint32]bool{3000: true, 5173: true, 8080: true, 4200: true}
	apiPorts   = map[uint32]bool{80: true, 443: true, 3000: true, 4000: true, 5000: true, 8000: true, 8080: true, 8081: true, 9000: true}
)

func relational(engine string) bool {
	return engine == "postgres" || engine == "mariadb" || engine == "mysql"
}

// inspect gathers what a service says about itself.
func inspect(p *types.Project, s types.ServiceConfig, dir string) (*svcFacts, error) {
	img, err := parseImage(s.Image)
	if err != nil {
		return nil, fmt.Errorf("detect: service %q: image %q is not a valid image reference: %w", s.Name, s.Image, err)
	}
	f := &svcFacts{img: img, job: check.IsJob(p, s)}
	f.Name, f.Image, f.Built = s.Name, s.Image, s.Build != nil
	if s.Build != nil {
		df := readDockerfile(s.Build, dir)
		f.BuildBase, f.ImageHealthcheck = df.base, df.healthcheck
		if f.ImageHealthcheck {
			f.HealthPath = healthPath(df.healthTest)
		}
		for _, b := range df.bases {
			if r, err := parseImage(b); err == nil && (r.base == "node" || r.base == "bun" || r.base == "deno") {
				f.jsBase = true
			}
		}
		f.targets = append(f.targets, df.expose...)
		f.uiDeps = uiFramework(s.Build.Context)
		// A built service runs its Dockerfile's base (image: only names the build), for the
		// store, proxy and app rules.
		if df.base != "" {
			if r, err := parseImage(df.base); err == nil {
				f.img = r
			}
		}
	}
	f.kind = check.StoreKind(s.Image)
	if f.kind == "" && f.BuildBase != "" {
		f.kind = check.StoreKind(f.BuildBase)
	}
	f.Engine = engine(f.kind, f.img.base)
	f.Version = img.version()
	if f.Built && f.kind != "" {
		f.Version = f.img.version() // a store built FROM a pinned official image
	}
	switch {
	case s.NetworkMode != "":
	case len(s.Networks) == 0:
		f.Networks = []string{"default"}
	default:
		for n := range s.Networks {
			f.Networks = append(f.Networks, n)
		}
		slices.Sort(f.Networks)
	}
	for _, pt := range s.Ports {
		f.targets = append(f.targets, pt.Target)
		if pt.Published == "" {
			continue
		}
		v := pt.Published + ":" + strconv.FormatUint(uint64(pt.Target), 10)
		if pt.HostIP != "" {
			v = pt.HostIP + ":" + v
		}
		if pt.Protocol != "" && pt.Protocol != "tcp" {
			v += "/" + pt.Protocol
		}
		f.Ports = append(f.Ports, v)
	}
	for _, e := range s.Expose {
		if n, err := strconv.ParseUint(strings.Split(e, "/")[0], 10, 32); err == nil {
			f.targets = append(f.targets, uint32(n))
		}
	}
	f.pingEnabled = traefikPingFlag.MatchString(strings.Join(s.Command, " ")) || env(s, "TRAEFIK_PING") == "true"
	f.dataPath = dataPaths[f.Engine]
	if f.Engine == "postgres" {
		// From 18 the images keep data in a versioned directory under the volume
		// /var/lib/postgresql, so that pg_upgrade --link can work across versions.
		if v := leadingInts(f.Version); len(v) > 0 && v[0] >= 18 {
			f.dataPath = fmt.Sprintf("/var/lib/postgresql/%d/docker", v[0])
		}
		if v := env(s, "PGDATA"); v != "" {
			f.dataPath = v
		}
	}
	for _, v := range s.Volumes {
		holds := f.dataPath != "" && (v.Target == f.dataPath || strings.HasPrefix(f.dataPath, strings.TrimSuffix(v.Target, "/")+"/"))
		switch {
		case v.Type == types.VolumeTypeVolume && v.Source != "":
			if !slices.Contains(f.Volumes, v.Source) {
				f.Volumes = append(f.Volumes, v.Source)
			}
			if holds {
				f.DataDir = v.Target
			}
		case v.Type == types.VolumeTypeBind && holds:
			f.bindData = v.Source
		}
	}
	slices.Sort(f.Volumes)
	if hc := s.HealthCheck; hc != nil && !hc.Disable && (len(hc.Test) == 0 || hc.Test[0] != "NONE") {
		f.Healthcheck = true
		if hp := healthPath(strings.Join(hc.Test, " ")); hp != "" {
			f.HealthPath = hp
		}
	}
	return f, nil
}

// engine names the store an image runs, from check's store kind and the image name.
func engine(kind, base string) string {
	switch kind {
	case "":
		return ""
	case "mongo":
		return "mongodb"
	case "redis":
		if base == "valkey" || base == "keydb" {
			return base
		}
		return "redis"
	case "other":
		if strings.HasPrefix(base, "clickhouse") {
			return "clickhouse"
		}
		return base
	}
	return kind
}

func env(s types.ServiceConfig, name string) string {
	if v, ok := s.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

var (
	urlPath = regexp.MustCompile(`(?:https?://[^/\s"']+|\b(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])(?::[0-9]+)?)(/[^\s"'?#]*)`)
	// healthWord is a path whose last segment names a health endpoint, as an argument of
	// its own (a port-less probe such as `/app -probe /readyz`).
	healthWord = regexp.MustCompile(`(?:^|[\s"'=:])((?:/[A-Za-z0-9_.-]+)*/(?:healthz?|readyz?|livez?|ping|status)(?:\.php)?)(?:$|[\s"'?])`)
	// fsRoots start file paths, not URL paths: `test -f /tmp/ready` is no endpoint.
	fsRoots = regexp.MustCompile(`^/(tmp|var|run|etc|usr|bin|sbin|opt|proc|dev|home|root|data)(/|$)`)
)

// healthPath finds the app's health endpoint in a healthcheck command.
func healthPath(test string) string {
	if m := urlPath.FindStringSubmatch(test); m != nil && m[1] != "" && m[1] != "/" {
		return m[1]
	}
	if m := healthWord.FindStringSubmatch(test); m != nil && !fsRoots.MatchString(m[1]) {
		return m[1]
	}
	return ""
}

// role decides a service's role; see doc.go for the rules.
func role(p *types.Project, facts map[string]*svcFacts, name string) string {
	f := facts[name]
	switch {
	case f.job:
		return RoleJob
	case f.kind == "redis" || f.kind == "memcached":
		return RoleCache
	case f.kind != "":
		return RoleDB
	}
	front, back := scores(p, facts, name)
	f.front, f.back = front, back
	if isProxy(p, facts, name) {
		return RoleProxy
	}
	switch {
	case front >= 2 && front > back:
		return RoleFrontend
	case back >= 2 || back >= 1 && f.Built:
		return RoleBackend
	}
	return RoleOther
}

// proxyImage reports whether the service runs a proxy image in a proxy's job: a built nginx
// named like a frontend or built from a UI project serves an SPA instead.
func proxyImage(f *svcFacts) bool {
	return proxyImages[f.img.base] && !(f.Built && (frontendNames[f.Name] || f.uiDeps))
}

func isProxy(p *types.Project, facts map[string]*svcFacts, name string) bool {
	f := facts[name]
	if !proxyImage(f) {
		return false
	}
	if proxyNames[name] {
		return true
	}
	for _, t := range publishedTargets(p.Services[name]) {
		if t == 80 || t == 443 {
			return true
		}
	}
	for dep := range p.Services[name].DependsOn {
		if o, ok := facts[dep]; ok && o.kind == "" && !o.job && !proxyImage(o) {
			return true
		}
	}
	return false
}

func publishedTargets(s types.ServiceConfig) []uint32 {
	var out []uint32
	for _, pt := range s.Ports {
		if pt.Published != "" {
			out = append(out, pt.Target)
			if n, err := strconv.ParseUint(strings.Split(pt.Published, "-")[0], 10, 32); err == nil {
				out = append(out, uint32(n))
			}
		}
	}
	return out
}

// scores weighs the evidence for frontend and backend; doc.go lists the weights.
func scores(p *types.Project, facts map[string]*svcFacts, name string) (front, back int) {
	f := facts[name]
	if toolImages[f.img.base] && !f.Built {
		return 0, 0
	}
	switch {
	case frontendNames[name] || strings.HasPrefix(name, "frontend"):
		front += 3
	case name == "web":
		front++ // "web" names backends (django, flask) as often as UIs: a weak hint both ways
	}
	if f.uiDeps {
		front += 2
	}
	if f.jsBase && slices.ContainsFunc(f.targets, func(t uint32) bool { return jsDevPorts[t] }) {
		front++
	}
	switch {
	case backendNames[name] || strings.HasPrefix(name, "backend") || strings.HasPrefix(name, "api"):
		back += 3
	case name == "web":
		back++
	}
	if _, ok := appImages[f.img.base]; ok && f.img.library && !f.Built {
		back += 3
	}
	byApp, byProxy := false, false
	for on, o := range p.Services {
		if _, ok := o.DependsOn[name]; !ok || on == name {
			continue
		}
		if of := facts[on]; of.kind == "" && !of.job {
			if proxyImage(of) {
				byProxy = true
			} else {
				byApp = true
			}
		}
	}
	if byApp {
		back += 2
	} else if byProxy {
		back++
	}
	for dep := range p.Services[name].DependsOn {
		if o, ok := facts[dep]; ok && o.kind != "" {
			back += 2
			break
		}
	}
	if slices.ContainsFunc(f.targets, func(t uint32) bool { return apiPorts[t] }) {
		back++
	}
	return front, back
}

// pick chooses the one service of each role adopt wires up.
func (d *Detection) pick(facts map[string]*svcFacts) {
	var dbs, caches []*Service
	for i := range d.Services {
		s := &d.Services[i]
		switch {
		case s.Role == RoleDB && relational(s.Engine):
			dbs = append(dbs, s)
		case s.Role == RoleCache && (s.Engine == "redis" || s.Engine == "valkey"):
			caches = append(caches, s)
		}
	}
	if len(dbs) > 0 {
		d.DB = dbs[0]
		if len(dbs) > 1 {
			d.Notes = append(d.Notes, fmt.Sprintf("several relational databases (%s): adopt backs up and monitors %s only; name the one to adopt to change it",
				joinNames(dbs), d.DB.Name))
		}
	}
	if len(caches) > 0 {
		d.Cache = caches[0]
		if len(caches) > 1 {
			d.Notes = append(d.Notes, fmt.Sprintf("several caches (%s): adopt monitors %s only", joinNames(caches), d.Cache.Name))
		}
	}
	d.Backend = d.best(RoleBackend, facts, backendNames, func(f *svcFacts) int { return f.back })
	d.Frontend = d.best(RoleFrontend, facts, frontendNames, func(f *svcFacts) int { return f.front })
	d.Proxy = d.best(RoleProxy, facts, proxyNames, func(f *svcFacts) int {
		n := 0
		for _, p := range f.Ports {
			if strings.HasSuffix(p, ":80") || strings.HasSuffix(p, ":443") {
				n = 1
			}
		}
		return n
	})
}

// best is the service of role with the highest score, then a conventional name, then the
// first by name.
func (d *Detection) best(role string, facts map[string]*svcFacts, names map[string]bool, score func(*svcFacts) int) *Service {
	var cands []*Service
	for i := range d.Services {
		if d.Services[i].Role == role {
			cands = append(cands, &d.Services[i])
		}
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortStableFunc(cands, func(a, b *Service) int {
		return cmp.Or(cmp.Compare(score(facts[b.Name]), score(facts[a.Name])),
			cmp.Compare(b2i(names[b.Name]), b2i(names[a.Name])),
			strings.Compare(a.Name, b.Name))
	})
	if len(cands) > 1 {
		d.Notes = append(d.Notes, fmt.Sprintf("several %s candidates (%s): took %s", role, joinNames(cands), cands[0].Name))
	}
	return cands[0]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func joinNames(ss []*Service) string {
	var n []string
	for _, s := range ss {
		n = append(n, s.Name)
	}
	slices.Sort(n)
	return strings.Join(n, ", ")
}

// dependencyDir matches mount targets that hold installed dependencies or caches, which a
// rebuild recreates: not data.
var dependencyDir = regexp.MustCompile(`(^|/)(node_modules|vendor|\.cache|cache|tmp|\.venv|site-packages|__pycache__|\.npm|\.yarn|\.m2|\.gradle)(/|$)`)

// dataVolumes lists the named volumes that hold data outside the data stores.
func (d *Detection) dataVolumes(p *types.Project, facts map[string]*svcFacts) {
	seen := map[string]bool{}
	store := map[string]bool{}
	for _, f := range facts {
		if f.kind != "" {
			for _, v := range f.Volumes {
				store[v] = true
			}
		}
	}
	for _, n := range sortedFacts(facts) {
		f := facts[n]
		if f.kind != "" {
			continue
		}
		for _, v := range p.Services[n].Volumes {
			if v.Type != types.VolumeTypeVolume || v.Source == "" || seen[v.Source] {
				continue
			}
			seen[v.Source] = true
			switch {
			case store[v.Source]:
				// Shared with a data store: its backup covers it.
			case dependencyDir.MatchString(v.Target):
				d.Notes = append(d.Notes, fmt.Sprintf("volume %s (%s in %s) holds dependencies or a cache, not data: not backed up", v.Source, v.Target, n))
			default:
				d.DataVolumes = append(d.DataVolumes, v.Source)
			}
		}
	}
	slices.Sort(d.DataVolumes)
}

func sortedFacts(facts map[string]*svcFacts) []string {
	var n []string
	for k := range facts {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}

// note records unsupported stores and what detection could not tell.
func (d *Detection) note(p *types.Project, facts map[string]*svcFacts) {
	for _, s := range d.Services {
		f := facts[s.Name]
		if s.Role == RoleDB || s.Role == RoleCache {
			switch {
			case s.Engine == "memcached":
				d.Notes = append(d.Notes, fmt.Sprintf("service %s: memcached keeps no data to back up; no exporter or alert rules for it", s.Name))
			case !relational(s.Engine) && s.Engine != "redis" && s.Engine != "valkey":
				title := engineTitles[s.Engine]
				if title == "" {
					title = s.Engine
				}
				image := s.Image
				if image == "" {
					image = "built from " + s.BuildBase
				}
				d.Unsupported = append(d.Unsupported, fmt.Sprintf("service %s: %s (%s) is not covered: no backup, no exporter, no alert rules; the rest is adopted", s.Name, title, image))
			}
			if s.Engine != "memcached" && s.DataDir == "" {
				switch {
				case f.bindData != "":
					d.Notes = append(d.Notes, fmt.Sprintf("service %s: its data is in the bind mount %s, not a named volume", s.Name, f.bindData))
				case f.dataPath == "":
					d.Notes = append(d.Notes, fmt.Sprintf("service %s: where %s keeps its data is unknown", s.Name, s.Engine))
				case s.Role == RoleDB:
					d.Notes = append(d.Notes, fmt.Sprintf("service %s: no volume holds %s: the data lives in the container and is lost when it is recreated", s.Name, f.dataPath))
				}
			}
			if s.Version == "" && s.Image != "" {
				d.Notes = append(d.Notes, fmt.Sprintf("service %s: image %s names no version: the %s version is unknown", s.Name, s.Image, s.Engine))
			}
		}
		if s.Role == RoleBackend && !s.Built {
			if dir := appImages[f.img.base]; dir != "" && f.img.library && !slices.ContainsFunc(p.Services[s.Name].Volumes, func(v types.ServiceVolumeConfig) bool {
				return v.Target == dir || strings.HasPrefix(dir, strings.TrimSuffix(v.Target, "/")+"/")
			}) {
				d.Notes = append(d.Notes, fmt.Sprintf("service %s: %s keeps its data in %s, which no volume holds: it is lost when the container is recreated", s.Name, f.img.base, dir))
			}
		}
		if s.Role == RoleDB && s.DB.PasswordLiteral {
			d.Notes = append(d.Notes, fmt.Sprintf("service %s: the database password is written literally in the compose files: adopt cannot keep it out of git", s.Name))
		}
	}
	if d.DB == nil {
		d.Notes = append(d.Notes, "no relational database (postgres, mariadb, mysql) found: no database backup")
	}
	if d.Backend == nil {
		d.Notes = append(d.Notes, "no backend service recognised: name it when adopting")
	} else if b := d.Backend; !b.Healthcheck && !b.ImageHealthcheck && b.HealthPath == "" {
		d.Notes = append(d.Notes, fmt.Sprintf("service %s: no health endpoint detected (no healthcheck names one): adopt adds no healthcheck for it", b.Name))
	}
}

// readDockerfile is what the built stage of a build section says; empty when the
// Dockerfile cannot be read (a remote context, a missing file).
func readDockerfile(b *types.BuildConfig, dir string) dockerfile {
	text := b.DockerfileInline
	if text == "" {
		ctx := b.Context
		if ctx == "" {
			ctx = "."
		}
		if strings.Contains(ctx, "://") || strings.HasPrefix(ctx, "git@") {
			return dockerfile{}
		}
		if !filepath.IsAbs(ctx) {
			ctx = filepath.Join(dir, ctx)
		}
		name := b.Dockerfile
		if name == "" {
			name = "Dockerfile"
		}
		if !filepath.IsAbs(name) {
			name = filepath.Join(ctx, name)
		}
		data, err := os.ReadFile(name)
		if err != nil || len(data) > 1<<20 {
			return dockerfile{}
		}
		text = string(data)
	}
	return parseDockerfile(text, b.Target)
}

// uiFramework reports whether the build context's package.json names a browser UI
// framework or dev server.
func uiFramework(ctx string) bool {
	if ctx == "" || strings.Contains(ctx, "://") {
		return false
	}
	data, err := os.ReadFile(filepath.Join(ctx, "package.json"))
	if err != nil {
		return false
	}
	s := string(data)
	for _, w := range []string{`"react-dom"`, "react-scripts", `"vite"`, "vite ", `"@angular/core"`, `"vue"`, `"svelte"`, `"@sveltejs/kit"`, `"next"`, `"nuxt"`, `"preact"`} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// dockerfile is what adopt reads from a Dockerfile: cheap facts only, no build.
type dockerfile struct {
	base        string   // external base image of the built stage
	bases       []string // FROM images from the built stage back to its root
	expose      []uint32
	healthcheck bool   // the built stage inherits or declares a HEALTHCHECK other than NONE
	healthTest  string // its command
}

type dfStage struct {
	name, from string
	expose     []uint32
	hc         *string // nil: not set in this stage; "": HEALTHCHECK NONE
}

// parseDockerfile follows the target stage (the last one when target is "") through the
// stages it is built FROM.
func parseDockerfile(text, target string) dockerfile {
	var stages []*dfStage
	for _, line := range logicalLines(text) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		args := fields[1:]
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			args = args[1:]
		}
		instr := strings.ToUpper(fields[0])
		if instr == "FROM" {
			if len(args) == 0 {
				continue
			}
			st := &dfStage{from: args[0]}
			if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
				st.name = args[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			continue
		}
		cur := stages[len(stages)-1]
		switch instr {
		case "EXPOSE":
			for _, a := range args {
				if n, err := strconv.ParseUint(strings.Split(a, "/")[0], 10, 32); err == nil {
					cur.expose = append(cur.expose, uint32(n))
				}
			}
		case "HEALTHCHECK":
			test := ""
			if len(args) > 0 && !strings.EqualFold(args[0], "NONE") {
				test = strings.Join(args, " ")
			}
			cur.hc = &test
		}
	}
	if len(stages) == 0 {
		return dockerfile{}
	}
	idx := len(stages) - 1
	if target != "" {
		idx = slices.IndexFunc(stages, func(s *dfStage) bool { return strings.EqualFold(s.name, target) })
		if idx < 0 {
			return dockerfile{}
		}
	}
	var df dockerfile
	var hc *string
	for {
		st := stages[idx]
		df.bases = append(df.bases, st.from)
		df.expose = append(df.expose, st.expose...)
		if hc == nil {
			hc = st.hc
		}
		// A FROM naming an earlier stage continues that stage.
		prev := slices.IndexFunc(stages[:idx], func(s *dfStage) bool { return s.name != "" && strings.EqualFold(s.name, st.from) })
		if prev < 0 {
			df.base = st.from
			break
		}
		idx = prev
	}
	if hc != nil && *hc != "" {
		df.healthcheck, df.healthTest = true, *hc
	}
	return df
}

var heredoc = regexp.MustCompile(`<<-?["']?([A-Za-z_][A-Za-z0-9_]*)["']?`)

// logicalLines joins continued lines and drops comments and heredoc bodies.
func logicalLines(text string) []string {
	var out []string
	var cur strings.Builder
	var until []string // heredoc terminators still open
	for _, raw := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if len(until) > 0 {
			if strings.TrimSpace(raw) == until[0] {
				until = until[1:]
			}
			continue
		}
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		full := cur.String()
		cur.Reset()
		for _, m := range heredoc.FindAllStringSubmatch(full, -1) {
			until = append(until, m[1])
		}
		out = append(out, full)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// suggestHealth fills SuggestedHealthcheck and HealthWhy for a service without a compose
// healthcheck.
func suggestHealth(s *Service, f *svcFacts) {
	switch {
	case s.Healthcheck:
		return
	case s.Role == RoleJob:
		s.HealthWhy = "a one-shot job: it needs no healthcheck"
		return
	case s.ImageHealthcheck:
		s.HealthWhy = "the Dockerfile's HEALTHCHECK applies to the built image (" + f.dfHealth() + "): no compose healthcheck needed"
		return
	}
	cmd := func(a ...string) []string { return append([]string{"CMD"}, a...) }
	switch s.Engine {
	case "postgres":
		// Over TCP: during first start the entrypoint's temporary server listens on the
		// socket only, so this does not report ready before initialisation is done.
		s.SuggestedHealthcheck = cmd("pg_isready", "-h", "127.0.0.1", "-U", s.DB.User, "-d", s.DB.Database)
	case "mariadb":
		// A ping is answered while the server runs, even with "Access denied", so it needs no
		// account: healthcheck.sh --innodb_initialized logs in as a user the image creates only
		// when it initialises a data directory, which an adopted project's older one lacks.
		// mariadb-admin from 10.4; the mysqladmin name in older images.
		s.SuggestedHealthcheck = []string{"CMD-SHELL", "mariadb-admin ping -h 127.0.0.1 --silent || mysqladmin ping -h 127.0.0.1 --silent"}
	case "mysql":
		s.SuggestedHealthcheck = cmd("mysqladmin", "ping", "-h", "127.0.0.1")
	case "redis":
		s.SuggestedHealthcheck = cmd("redis-cli", "ping")
	case "valkey":
		s.SuggestedHealthcheck = cmd("valkey-cli", "ping")
	case "keydb":
		s.SuggestedHealthcheck = cmd("keydb-cli", "ping")
	case "mongodb":
		// The mongo shell left the images in 6.0; mongosh arrived in 5.0.
		shell := "mongosh"
		if m := leadingInts(s.Version); len(m) > 0 && m[0] < 5 {
			shell = "mongo"
		}
		s.SuggestedHealthcheck = cmd(shell, "--quiet", "--eval", "db.adminCommand('ping')")
	case "":
		if s.Role == RoleProxy {
			proxyHealth(s, f)
			return
		}
		s.HealthWhy = "no health endpoint known for " + s.Name + ": give the app one (e.g. /healthz) and a healthcheck that requests it with a tool its image has"
	default:
		s.HealthWhy = "adopt knows no healthcheck command the " + s.Engine + " image ships"
	}
}

func (f *svcFacts) dfHealth() string {
	if f.HealthPath != "" {
		return "path " + f.HealthPath
	}
	return "its own command"
}

// proxyHealth suggests a check that the proxy answers on its port, whatever the upstream
// says: a proxy that is up but whose backend is down is the backend's alert, not the proxy's.
func proxyHealth(s *Service, f *svcFacts) {
	port, scheme := uint32(80), "http"
	if f.img.base == "nginx-unprivileged" {
		port = 8080
	}
	if len(f.targets) > 0 {
		port = f.targets[0]
		for _, t := range f.targets {
			if t == 80 {
				port = 80
				break
			}
		}
	}
	if port == 443 {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://127.0.0.1:%d/", scheme, port)
	switch f.img.base {
	case "nginx", "nginx-unprivileged":
		// The official images ship curl; without -f any HTTP answer (even a 502) passes.
		s.SuggestedHealthcheck = []string{"CMD", "curl", "-ksS", "-o", "/dev/null", url}
	case "httpd":
		if strings.Contains(f.img.tag, "alpine") {
			s.SuggestedHealthcheck = []string{"CMD", "wget", "-q", "-O", "/dev/null", url}
		} else {
			// The Debian-based image has bash but neither curl nor wget.
			s.SuggestedHealthcheck = []string{"CMD", "bash", "-c", fmt.Sprintf(":> /dev/tcp/127.0.0.1/%d", port)}
		}
	case "caddy":
		// The admin API, on by default on localhost:2019; busybox wget is in the image.
		s.SuggestedHealthcheck = []string{"CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:2019/config/"}
		s.HealthWhy = "uses caddy's admin API on localhost:2019: not with `admin off` in the Caddyfile"
	case "traefik":
		if f.pingEnabled {
			s.SuggestedHealthcheck = []string{"CMD", "traefik", "healthcheck", "--ping"}
		} else {
			s.HealthWhy = "traefik answers `traefik healthcheck --ping` only with ping enabled: add --ping=true to its command (or ping: {} to its static config), then use that test"
		}
	default:
		s.HealthWhy = "adopt knows no healthcheck command the " + f.img.base + " image ships"
	}
}

var traefikPingFlag = regexp.MustCompile(`--ping(\s|=true|$)`)

// leadingInts parses the numeric prefix of a tag: "10.6.4-focal" -> 10, 6, 4.
func leadingInts(tag string) []int {
	var out []int
	for _, part := range strings.Split(tag, ".") {
		end := strings.IndexFunc(part, func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			end = len(part)
		}
		n, err := strconv.Atoi(part[:end])
		if err != nil {
			break
		}
		out = append(out, n)
		if end < len(part) {
			break
		}
	}
	return out
}

// dbAccess reads user, database and password source from the official images' variables.
func dbAccess(p *types.Project, s types.ServiceConfig, engine, dir string) DBAccess {
	first := func(names ...string) (string, string) {
		for _, n := range names {
			if v := env(s, n); v != "" {
				return n, v
			}
		}
		return "", ""
	}
	prefixes := []string{"MARIADB_", "MYSQL_"}
	if engine == "mysql" {
		prefixes = []string{"MYSQL_"}
	}
	vars := func(suffix string) []string {
		var out []string
		for _, pre := range prefixes {
			out = append(out, pre+suffix)
		}
		return out
	}
	var a DBAccess
	var pwVars, fileVars []string
	switch engine {
	case "postgres":
		_, a.User = first("POSTGRES_USER")
		if a.User == "" {
			a.User = "postgres"
		}
		_, a.Database = first("POSTGRES_DB")
		if a.Database == "" {
			a.Database = a.User
		}
		pwVars, fileVars = []string{"POSTGRES_PASSWORD"}, []string{"POSTGRES_PASSWORD_FILE"}
	default:
		_, a.User = first(vars("USER")...)
		_, a.Database = first(vars("DATABASE")...)
		pwVars, fileVars = vars("PASSWORD"), vars("PASSWORD_FILE")
		if a.User == "" || a.User == "root" {
			a.User = "root"
			pwVars, fileVars = vars("ROOT_PASSWORD"), vars("ROOT_PASSWORD_FILE")
		}
	}
	if _, file := first(fileVars...); strings.HasPrefix(file, "/run/secrets/") {
		target := strings.TrimPrefix(file, "/run/secrets/")
		a.PasswordSecret = target
		for _, sec := range s.Secrets {
			t := sec.Target
			if t == "" {
				t = sec.Source
			}
			if t == target || t == file {
				a.PasswordSecret = sec.Source
				break
			}
		}
		if def, ok := p.Secrets[a.PasswordSecret]; ok && !bool(def.External) && def.File != "" {
			a.PasswordSecretFile = filepath.ToSlash(def.File)
			if r, err := filepath.Rel(dir, def.File); err == nil && !strings.HasPrefix(r, "..") {
				a.PasswordSecretFile = filepath.ToSlash(r)
			}
		}
	}
	if v, pw := first(pwVars...); pw != "" {
		a.PasswordEnv, a.PasswordLiteral = v, true
		for _, v := range p.Environment {
			if v == pw {
				a.PasswordLiteral = false // interpolated from .env or the environment
				break
			}
		}
	}
	return a
}
