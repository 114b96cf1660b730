package adopt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/opsready/opsready/internal/check"
	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

func corpusDir(t *testing.T) string { return e2eutil.CorpusDir(t) }

func copyTree(t *testing.T, src string) string { return e2eutil.CopyTree(t, src) }

func detectDir(t *testing.T, dir string) *Detection {
	t.Helper()
	p, files, err := check.LoadProject(context.Background(), dir, nil, nil, nil)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	d, err := Detect(p, dir, files)
	if err != nil {
		t.Fatalf("detect %s: %v", dir, err)
	}
	return d
}

// detectYAML writes a compose.yaml (and extra files) into a temp dir and detects it.
func detectYAML(t *testing.T, compose string, extra map[string]string) *Detection {
	t.Helper()
	dir := t.TempDir()
	extra = cloneMap(extra)
	extra["compose.yaml"] = compose
	for name, body := range extra {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return detectDir(t, dir)
}

func cloneMap(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func name(s *Service) string {
	if s == nil {
		return ""
	}
	return s.Name
}

type corpusWant struct {
	roles                    map[string]string
	db                       string
	engine, version, dataDir string
	access                   DBAccess
	cache                    string
	backend, frontend, proxy string
	dataVolumes              []string
	unsupported              []string
	health                   map[string][]string // suggested test per service; absent or nil: none
	ports                    map[string][]string
	networks                 map[string][]string
	notes                    []string // substrings that must appear in some note
}

// Every expectation below comes from reading the corpus compose files, Dockerfiles and
// package.json files by hand.
var corpusWants = map[string]corpusWant{
	"django": {
		roles:   map[string]string{"web": RoleBackend},
		backend: "web",
		ports:   map[string][]string{"web": {"8000:8000"}},
		notes:   []string{"no relational database"},
	},
	"flask-redis": {
		roles:   map[string]string{"redis": RoleCache, "web": RoleBackend},
		cache:   "redis",
		backend: "web",
		health:  map[string][]string{"redis": {"CMD", "redis-cli", "ping"}},
		ports:   map[string][]string{"redis": {"6379:6379"}, "web": {"8000:8000"}},
		notes:   []string{"image redislabs/redismod names no version"},
	},
	"nextcloud-redis-mariadb": {
		roles:   map[string]string{"db": RoleDB, "nc": RoleBackend, "redis": RoleCache},
		db:      "db",
		engine:  "mariadb",
		version: "10.5",
		dataDir: "/var/lib/mysql",
		access:  DBAccess{User: "nextcloud", Database: "nextcloud", PasswordEnv: "MYSQL_PASSWORD", PasswordLiteral: true},
		cache:   "redis", backend: "nc",
		dataVolumes: []string{"nc_data"},
		health: map[string][]string{
			"db":    {"CMD-SHELL", "mariadb-admin ping -h 127.0.0.1 --silent || mysqladmin ping -h 127.0.0.1 --silent"},
			"redis": {"CMD", "redis-cli", "ping"},
		},
		ports:    map[string][]string{"nc": {"80:80"}},
		networks: map[string][]string{"nc": {"dbnet", "redisnet"}, "db": {"dbnet"}, "redis": {"redisnet"}},
		notes:    []string{"password is written literally"},
	},
	"nginx-golang-postgres": {
		roles:   map[string]string{"backend": RoleBackend, "db": RoleDB, "proxy": RoleProxy},
		db:      "db",
		engine:  "postgres",
		dataDir: "/var/lib/postgresql/data",
		access:  DBAccess{User: "postgres", Database: "example", PasswordSecret: "db-password", PasswordSecretFile: "db/password.txt"},
		backend: "backend", proxy: "proxy",
		health: map[string][]string{
			"proxy": {"CMD", "curl", "-ksS", "-o", "/dev/null", "http://127.0.0.1:80/"},
		},
		ports:    map[string][]string{"proxy": {"80:80"}},
		networks: map[string][]string{"db": {"default"}},
		notes:    []string{"image postgres names no version"},
	},
	"react-express-mongodb": {
		roles:       map[string]string{"backend": RoleBackend, "frontend": RoleFrontend, "mongo": RoleDB},
		backend:     "backend",
		frontend:    "frontend",
		unsupported: []string{"service mongo: MongoDB (mongo:4.2.0) is not covered: no backup, no exporter, no alert rules; the rest is adopted"},
		health: map[string][]string{
			"mongo": {"CMD", "mongo", "--quiet", "--eval", "db.adminCommand('ping')"},
		},
		ports:    map[string][]string{"frontend": {"3000:3000"}},
		networks: map[string][]string{"backend": {"express-mongo", "react-express"}},
		notes:    []string{"no relational database"},
	},
	"react-express-mysql": {
		roles:   map[string]string{"backend": RoleBackend, "db": RoleDB, "frontend": RoleFrontend},
		db:      "db",
		engine:  "mariadb",
		version: "10.6.4-focal",
		dataDir: "/var/lib/mysql",
		access:  DBAccess{User: "root", Database: "example", PasswordSecret: "db-password", PasswordSecretFile: "db/password.txt"},
		backend: "backend", frontend: "frontend",
		health: map[string][]string{
			// A ping needs no account (an adopted data directory may lack the healthcheck user);
			// the backend's Dockerfile has a HEALTHCHECK.
			"db": {"CMD-SHELL", "mariadb-admin ping -h 127.0.0.1 --silent || mysqladmin ping -h 127.0.0.1 --silent"},
		},
		ports: map[string][]string{"backend": {"80:80", "9229:9229", "9230:9230"}, "frontend": {"3000:3000"}},
		notes: []string{"volume back-notused (/opt/app/node_modules in backend)"},
	},
	"wordpress-mysql": {
		roles:   map[string]string{"db": RoleDB, "wordpress": RoleBackend},
		db:      "db",
		engine:  "mariadb",
		version: "10.6.4-focal",
		dataDir: "/var/lib/mysql",
		access:  DBAccess{User: "wordpress", Database: "wordpress", PasswordEnv: "MYSQL_PASSWORD", PasswordLiteral: true},
		backend: "wordpress",
		health: map[string][]string{
			"db": {"CMD-SHELL", "mariadb-admin ping -h 127.0.0.1 --silent || mysqladmin ping -h 127.0.0.1 --silent"},
		},
		ports: map[string][]string{"wordpress": {"80:80"}},
		notes: []string{"wordpress keeps its data in /var/www/html"},
	},
}

func TestAdoptDetectCorpus(t *testing.T) {
	corpus := corpusDir(t)
	entries, err := os.ReadDir(corpus)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		seen++
		want, ok := corpusWants[e.Name()]
		if !ok {
			t.Errorf("corpus project %s has no expectations here: add them", e.Name())
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			dir := copyTree(t, filepath.Join(corpus, e.Name()))
			d := detectDir(t, dir)
			checkCorpus(t, d, want)
		})
	}
	if seen < len(corpusWants) {
		t.Errorf("corpus has %d projects, expectations for %d", seen, len(corpusWants))
	}
}

func checkCorpus(t *testing.T, d *Detection, w corpusWant) {
	t.Helper()
	if !reflect.DeepEqual(d.Files, []string{"compose.yaml"}) {
		t.Errorf("files = %q", d.Files)
	}
	if d.Project == "" {
		t.Error("no project name")
	}
	roles := map[string]string{}
	for _, s := range d.Services {
		roles[s.Name] = s.Role
	}
	if !reflect.DeepEqual(roles, w.roles) {
		t.Errorf("roles = %v, want %v", roles, w.roles)
	}
	if !slices.IsSortedFunc(d.Services, func(a, b Service) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("services not sorted by name")
	}
	if got := name(d.DB); got != w.db {
		t.Errorf("db = %q, want %q", got, w.db)
	} else if d.DB != nil {
		if d.DB.Engine != w.engine || d.DB.Version != w.version || d.DB.DataDir != w.dataDir {
			t.Errorf("db engine/version/datadir = %q %q %q, want %q %q %q", d.DB.Engine, d.DB.Version, d.DB.DataDir, w.engine, w.version, w.dataDir)
		}
		if d.DB.DB != w.access {
			t.Errorf("db access = %+v, want %+v", d.DB.DB, w.access)
		}
		if d.DB != d.Service(w.db) {
			t.Error("DB does not point into Services")
		}
	}
	for _, c := range []struct{ role, got, want string }{
		{"cache", name(d.Cache), w.cache}, {"backend", name(d.Backend), w.backend},
		{"frontend", name(d.Frontend), w.frontend}, {"proxy", name(d.Proxy), w.proxy},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.role, c.got, c.want)
		}
	}
	if !reflect.DeepEqual(d.DataVolumes, w.dataVolumes) {
		t.Errorf("data volumes = %q, want %q", d.DataVolumes, w.dataVolumes)
	}
	if !reflect.DeepEqual(d.Unsupported, w.unsupported) {
		t.Errorf("unsupported = %q, want %q", d.Unsupported, w.unsupported)
	}
	for _, s := range d.Services {
		if want := w.health[s.Name]; !reflect.DeepEqual(s.SuggestedHealthcheck, want) {
			t.Errorf("%s: suggested healthcheck = %q, want %q (why: %s)", s.Name, s.SuggestedHealthcheck, want, s.HealthWhy)
		}
		if s.SuggestedHealthcheck == nil && !s.Healthcheck && s.HealthWhy == "" {
			t.Errorf("%s: no healthcheck, no suggestion and no reason", s.Name)
		}
		if want, ok := w.ports[s.Name]; ok && !reflect.DeepEqual(s.Ports, want) {
			t.Errorf("%s: ports = %q, want %q", s.Name, s.Ports, want)
		}
		if want, ok := w.networks[s.Name]; ok && !reflect.DeepEqual(s.Networks, want) {
			t.Errorf("%s: networks = %q, want %q", s.Name, s.Networks, want)
		}
	}
	for _, n := range w.notes {
		if !slices.ContainsFunc(d.Notes, func(s string) bool { return strings.Contains(s, n) }) {
			t.Errorf("no note contains %q; notes: %q", n, d.Notes)
		}
	}
}

// TestAdoptDetectCorpusDetails pins per-service facts the corpus table does not cover.
func TestAdoptDetectCorpusDetails(t *testing.T) {
	corpus := corpusDir(t)
	t.Run("nginx-golang-postgres", func(t *testing.T) {
		d := detectDir(t, copyTree(t, filepath.Join(corpus, "nginx-golang-postgres")))
		db := d.Service("db")
		if !db.Healthcheck || db.SuggestedHealthcheck != nil || !reflect.DeepEqual(db.Volumes, []string{"db-data"}) {
			t.Errorf("db = %+v", db)
		}
		be := d.Service("backend")
		if !be.Built || be.Image != "" || be.BuildBase != "golang:1.18-alpine" || be.ImageHealthcheck {
			t.Errorf("backend = %+v", be)
		}
	})
	t.Run("react-express-mysql", func(t *testing.T) {
		d := detectDir(t, copyTree(t, filepath.Join(corpus, "react-express-mysql")))
		be := d.Service("backend")
		// Target development: FROM node:lts, HEALTHCHECK CMD node healthcheck.js.
		if !be.ImageHealthcheck || be.BuildBase != "node:lts" || be.Healthcheck || be.SuggestedHealthcheck != nil {
			t.Errorf("backend = %+v", be)
		}
		if !reflect.DeepEqual(be.Volumes, []string{"back-notused"}) {
			t.Errorf("backend volumes = %q", be.Volumes)
		}
	})
	t.Run("react-express-mongodb", func(t *testing.T) {
		d := detectDir(t, copyTree(t, filepath.Join(corpus, "react-express-mongodb")))
		m := d.Service("mongo")
		if m.Engine != "mongodb" || m.Version != "4.2.0" || m.DataDir != "/data/db" || !reflect.DeepEqual(m.Volumes, []string{"mongo_data"}) {
			t.Errorf("mongo = %+v", m)
		}
	})
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestAdoptDetectEdgeCases(t *testing.T) {
	tests := []struct {
		name    string
		compose string
		extra   map[string]string
		check   func(t *testing.T, d *Detection)
	}{
		{
			name:    "digest only",
			compose: "services:\n  db:\n    image: postgres@sha256:" + hex64 + "\n",
			check: func(t *testing.T, d *Detection) {
				if name(d.DB) != "db" || d.DB.Engine != "postgres" || d.DB.Version != "" {
					t.Errorf("db = %+v", d.DB)
				}
				want := []string{"CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"}
				if !reflect.DeepEqual(d.DB.SuggestedHealthcheck, want) {
					t.Errorf("health = %q", d.DB.SuggestedHealthcheck)
				}
				if d.DB.DataDir != "" || !hasNote(d, "no volume holds /var/lib/postgresql/data") {
					t.Errorf("datadir %q, notes %q", d.DB.DataDir, d.Notes)
				}
			},
		},
		{
			name:    "tag and digest",
			compose: "services:\n  db:\n    image: postgres:16-alpine@sha256:" + hex64 + "\n",
			check: func(t *testing.T, d *Detection) {
				if d.DB == nil || d.DB.Version != "16-alpine" {
					t.Errorf("db = %+v", d.DB)
				}
			},
		},
		{
			name:    "latest",
			compose: "services:\n  cache:\n    image: redis:latest\n    volumes: [cache:/data]\nvolumes:\n  cache:\n",
			check: func(t *testing.T, d *Detection) {
				if name(d.Cache) != "cache" || d.Cache.Version != "" || d.Cache.Engine != "redis" || d.Cache.DataDir != "/data" {
					t.Errorf("cache = %+v", d.Cache)
				}
				if d.DataVolumes != nil {
					t.Errorf("a store's volume is no data volume: %q", d.DataVolumes)
				}
				if !hasNote(d, "image redis:latest names no version") {
					t.Errorf("notes %q", d.Notes)
				}
			},
		},
		{
			name: "registry with port",
			compose: `services:
  pg:
    image: registry:5000/postgres:16
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: ${PGPASS}
    volumes: [pgdata:/var/lib/postgresql/data]
volumes:
  pgdata:
`,
			extra: map[string]string{".env": "PGPASS=s3cret-from-env\n"},
			check: func(t *testing.T, d *Detection) {
				if name(d.DB) != "pg" || d.DB.Engine != "postgres" || d.DB.Version != "16" || d.DB.DataDir != "/var/lib/postgresql/data" {
					t.Fatalf("db = %+v", d.DB)
				}
				if d.DB.DB != (DBAccess{User: "app", Database: "app", PasswordEnv: "POSTGRES_PASSWORD"}) {
					t.Errorf("access = %+v (interpolated password is not literal)", d.DB.DB)
				}
				want := []string{"CMD", "pg_isready", "-h", "127.0.0.1", "-U", "app", "-d", "app"}
				if !reflect.DeepEqual(d.DB.SuggestedHealthcheck, want) {
					t.Errorf("health = %q", d.DB.SuggestedHealthcheck)
				}
			},
		},
		{
			name: "mysql vs mariadb",
			compose: `services:
  my:
    image: mysql:8.0
    environment:
      MARIADB_USER: ignored-by-mysql
      MYSQL_DATABASE: shop
      MYSQL_ROOT_PASSWORD_FILE: /run/secrets/pw
    secrets:
      - source: dbroot
        target: pw
  zmaria:
    image: mariadb:11.4
    environment:
      MARIADB_USER: blog
      MYSQL_USER: overridden
      MARIADB_DATABASE: blog
      MARIADB_PASSWORD: hunter2
secrets:
  dbroot:
    file: ./secrets/root.txt
`,
			extra: map[string]string{"secrets/root.txt": "x\n"},
			check: func(t *testing.T, d *Detection) {
				my, ma := d.Service("my"), d.Service("zmaria")
				if my.Engine != "mysql" || ma.Engine != "mariadb" || my.Version != "8.0" || ma.Version != "11.4" {
					t.Errorf("engines %q %q versions %q %q", my.Engine, ma.Engine, my.Version, ma.Version)
				}
				if my.DB != (DBAccess{User: "root", Database: "shop", PasswordSecret: "dbroot", PasswordSecretFile: "secrets/root.txt"}) {
					t.Errorf("mysql access = %+v", my.DB)
				}
				if ma.DB != (DBAccess{User: "blog", Database: "blog", PasswordEnv: "MARIADB_PASSWORD", PasswordLiteral: true}) {
					t.Errorf("mariadb access = %+v", ma.DB)
				}
				if !reflect.DeepEqual(my.SuggestedHealthcheck, []string{"CMD", "mysqladmin", "ping", "-h", "127.0.0.1"}) {
					t.Errorf("mysql health = %q", my.SuggestedHealthcheck)
				}
				if !reflect.DeepEqual(ma.SuggestedHealthcheck, []string{"CMD-SHELL", "mariadb-admin ping -h 127.0.0.1 --silent || mysqladmin ping -h 127.0.0.1 --silent"}) {
					t.Errorf("mariadb health = %q", ma.SuggestedHealthcheck)
				}
				if name(d.DB) != "my" || !hasNote(d, "several relational databases (my, zmaria)") {
					t.Errorf("db %q notes %q", name(d.DB), d.Notes)
				}
			},
		},
		{
			name: "several databases and an unsupported store",
			compose: `services:
  b-db:
    image: mariadb:10.11
  a-db:
    image: postgres:17
  search:
    image: docker.elastic.co/elasticsearch/elasticsearch:8.15.0
    volumes: [es:/usr/share/elasticsearch/data]
  memo:
    image: memcached:1.6
volumes:
  es:
`,
			check: func(t *testing.T, d *Detection) {
				if name(d.DB) != "a-db" || !hasNote(d, "adopt backs up and monitors a-db only") {
					t.Errorf("db %q notes %q", name(d.DB), d.Notes)
				}
				want := []string{"service search: Elasticsearch (docker.elastic.co/elasticsearch/elasticsearch:8.15.0) is not covered: no backup, no exporter, no alert rules; the rest is adopted"}
				if !reflect.DeepEqual(d.Unsupported, want) {
					t.Errorf("unsupported = %q", d.Unsupported)
				}
				if m := d.Service("memo"); m.Role != RoleCache || m.Engine != "memcached" || d.Cache != nil || m.SuggestedHealthcheck != nil || m.HealthWhy == "" {
					t.Errorf("memcached = %+v, cache %q", m, name(d.Cache))
				}
				if s := d.Service("search"); s.Role != RoleDB || s.DataDir != "/usr/share/elasticsearch/data" || d.DataVolumes != nil {
					t.Errorf("search = %+v, data volumes %q", s, d.DataVolumes)
				}
				if !reflect.DeepEqual(d.Service("b-db").SuggestedHealthcheck, []string{"CMD-SHELL", "mariadb-admin ping -h 127.0.0.1 --silent || mysqladmin ping -h 127.0.0.1 --silent"}) {
					t.Errorf("mariadb 10.11 health = %q", d.Service("b-db").SuggestedHealthcheck)
				}
			},
		},
		{
			name: "healthcheck disabled",
			compose: `services:
  db:
    image: postgres:16
    restart: always
    environment:
      POSTGRES_DB: app
    healthcheck:
      disable: true
  migrate:
    image: postgres:16
    restart: "no"
    healthcheck:
      disable: true
`,
			check: func(t *testing.T, d *Detection) {
				db := d.Service("db")
				if db.Healthcheck || !reflect.DeepEqual(db.SuggestedHealthcheck, []string{"CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres", "-d", "app"}) {
					t.Errorf("db = %+v", db)
				}
				m := d.Service("migrate")
				if m.Role != RoleJob || m.SuggestedHealthcheck != nil || name(d.DB) != "db" {
					t.Errorf("migrate = %+v, db %q", m, name(d.DB))
				}
			},
		},
		{
			name: "app roles, health path and proxies",
			compose: `services:
  api:
    image: ghcr.io/acme/shop-api:1.4.2
    depends_on: [db]
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://localhost:8080/api/healthz"]
    volumes:
      - uploads:/srv/uploads
      - deps:/srv/node_modules
  db:
    image: postgres:16
    volumes: [pg:/var/lib/postgresql]
  adminer:
    image: adminer:4
    depends_on: [db]
    ports: ["8081:8080"]
  edge:
    image: traefik:v3.1
    command: ["--providers.docker", "--ping=true"]
    ports: ["443:443"]
  static:
    image: httpd:2.4
    ports: ["8088:80"]
volumes:
  uploads:
  deps:
  pg:
`,
			check: func(t *testing.T, d *Detection) {
				api := d.Service("api")
				if api.Role != RoleBackend || !api.Healthcheck || api.HealthPath != "/api/healthz" || api.SuggestedHealthcheck != nil {
					t.Errorf("api = %+v", api)
				}
				if r := d.Service("adminer").Role; r != RoleOther {
					t.Errorf("adminer role = %q", r)
				}
				if name(d.Backend) != "api" || name(d.Proxy) != "edge" || d.Frontend != nil {
					t.Errorf("backend %q proxy %q frontend %q", name(d.Backend), name(d.Proxy), name(d.Frontend))
				}
				if !reflect.DeepEqual(d.DataVolumes, []string{"uploads"}) {
					t.Errorf("data volumes = %q", d.DataVolumes)
				}
				if db := d.Service("db"); db.DataDir != "/var/lib/postgresql" {
					t.Errorf("a volume on the parent of PGDATA holds the data: %q", db.DataDir)
				}
				if e := d.Service("edge"); !reflect.DeepEqual(e.SuggestedHealthcheck, []string{"CMD", "traefik", "healthcheck", "--ping"}) || e.Version != "v3.1" {
					t.Errorf("traefik = %+v", e)
				}
				// httpd publishing 80 is a proxy by the image rule; Debian image: bash.
				if s := d.Service("static"); s.Role != RoleProxy || !reflect.DeepEqual(s.SuggestedHealthcheck, []string{"CMD", "bash", "-c", ":> /dev/tcp/127.0.0.1/80"}) {
					t.Errorf("httpd = %+v", s)
				}
			},
		},
		{
			name: "postgres 18 data directory, built store",
			compose: `services:
  db:
    build: ./db
    volumes: [pg:/var/lib/postgresql]
  old-layout:
    image: postgres:18
    volumes: [pg2:/var/lib/postgresql/data]
volumes:
  pg:
  pg2:
`,
			extra: map[string]string{"db/Dockerfile": "FROM postgres:18-alpine\nCOPY init.sql /docker-entrypoint-initdb.d/\n"},
			check: func(t *testing.T, d *Detection) {
				db := d.Service("db")
				if db.Role != RoleDB || db.Engine != "postgres" || db.Version != "18-alpine" || db.BuildBase != "postgres:18-alpine" || db.DataDir != "/var/lib/postgresql" {
					t.Errorf("db = %+v", db)
				}
				// 18 keeps its data in /var/lib/postgresql/18/docker: a volume below it holds nothing.
				if o := d.Service("old-layout"); o.DataDir != "" || !hasNote(d, "service old-layout: no volume holds /var/lib/postgresql/18/docker") {
					t.Errorf("old-layout = %+v, notes %q", o, d.Notes)
				}
				if name(d.DB) != "db" {
					t.Errorf("db = %q", name(d.DB))
				}
			},
		},
		{
			name: "traefik without ping",
			compose: `services:
  proxy:
    image: traefik:v3.1
    ports: ["80:80"]
`,
			check: func(t *testing.T, d *Detection) {
				if name(d.Proxy) != "proxy" || d.Proxy.SuggestedHealthcheck != nil || !strings.Contains(d.Proxy.HealthWhy, "--ping=true") {
					t.Errorf("proxy = %+v", d.Proxy)
				}
				if !hasNote(d, "no backend service recognised") {
					t.Errorf("notes %q", d.Notes)
				}
			},
		},
		{
			name: "frontend from package.json, nginx SPA build, backend by dependency",
			compose: `services:
  web:
    build: ./web
    ports: ["8080:80"]
    depends_on: [core]
  core:
    build: ./core
`,
			extra: map[string]string{
				"web/Dockerfile":   "FROM node:22 AS build\nRUN <<EOF\nnpm ci\nFROM evil\nEOF\nFROM nginx:1.27-alpine\nCOPY --from=build /app/dist /usr/share/nginx/html\n",
				"web/package.json": `{"devDependencies": {"vite": "^5"}}`,
				"core/Dockerfile":  "FROM golang:1.23 AS build\nFROM gcr.io/distroless/static\nHEALTHCHECK --interval=5s \\\n  CMD [\"/app\", \"-probe\", \"http://127.0.0.1:9000/readyz\"]\n",
			},
			check: func(t *testing.T, d *Detection) {
				w, s := d.Service("web"), d.Service("core")
				if w.Role != RoleFrontend || w.BuildBase != "nginx:1.27-alpine" {
					t.Errorf("web = %+v", w)
				}
				if s.Role != RoleBackend || !s.ImageHealthcheck || s.HealthPath != "/readyz" || s.SuggestedHealthcheck != nil {
					t.Errorf("core = %+v", s)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, detectYAML(t, tt.compose, tt.extra))
		})
	}
}

func hasNote(d *Detection, sub string) bool {
	return slices.ContainsFunc(d.Notes, func(n string) bool { return strings.Contains(n, sub) })
}

func TestAdoptDetectNoServices(t *testing.T) {
	d, err := Detect(&types.Project{Name: "empty"}, t.TempDir(), []string{"compose.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Services) != 0 || d.DB != nil || d.Backend != nil || !hasNote(d, "define no service") {
		t.Errorf("detection = %+v", d)
	}
	if _, err := Detect(nil, ".", nil); err == nil {
		t.Error("nil project: no error")
	}
}

func TestAdoptDetectBadImage(t *testing.T) {
	p := &types.Project{Name: "bad", Services: types.Services{"x": {Name: "x", ContainerSpec: types.ContainerSpec{Image: "Not/Valid:Image"}}}}
	_, err := Detect(p, t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), `service "x"`) {
		t.Errorf("err = %v", err)
	}
}

func TestAdoptDetectDockerfile(t *testing.T) {
	text := "# syntax=docker/dockerfile:1.4\nFROM --platform=$BUILDPLATFORM node:20 AS base\nEXPOSE 3000\n" +
		"HEALTHCHECK CMD curl -f http://localhost:3000/health\nFROM base AS dev\nRUN <<EOF\nFROM nope\nHEALTHCHECK NONE\nEOF\n" +
		"FROM base AS prod\nHEALTHCHECK NONE\nFROM python:3.12\n"
	for _, tt := range []struct {
		target, base string
		hc           bool
		expose       []uint32
	}{
		{"dev", "node:20", true, []uint32{3000}},
		{"prod", "node:20", false, []uint32{3000}},
		{"", "python:3.12", false, nil},
		{"missing", "", false, nil},
	} {
		df := parseDockerfile(text, tt.target)
		if df.base != tt.base || df.healthcheck != tt.hc || !reflect.DeepEqual(df.expose, tt.expose) {
			t.Errorf("target %q: %+v", tt.target, df)
		}
	}
}

// TestAdoptDetectLoadProject covers check.LoadProject: files relative to the directory, in
// load order, and the loader's InputError passed through.
func TestAdoptDetectLoadProject(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"compose.yaml":          "services:\n  db:\n    image: postgres:${PG:-15}\n",
		"compose.override.yaml": "services:\n  db:\n    environment:\n      POSTGRES_DB: fromoverride\n",
		".env":                  "PG=16\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, files, err := check.LoadProject(ctx, dir, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(files, []string{"compose.yaml", "compose.override.yaml"}) {
		t.Errorf("files = %q", files)
	}
	d, err := Detect(p, dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if d.DB == nil || d.DB.Version != "16" || d.DB.DB.Database != "fromoverride" {
		t.Errorf("db = %+v", d.DB)
	}

	_, _, err = check.LoadProject(ctx, t.TempDir(), nil, nil, nil)
	var ie check.InputError
	if !errors.As(err, &ie) || !errors.Is(err, check.ErrNoComposeFile) {
		t.Errorf("empty dir: err = %v", err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "compose.yaml"), []byte("services:\n  a: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = check.LoadProject(ctx, bad, nil, nil, nil)
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "compose.yaml") {
		t.Errorf("syntax error: err = %v", err)
	}
}

func TestAdoptDetectHealthPath(t *testing.T) {
	for test, want := range map[string]string{
		"CMD curl -f http://localhost:8080/api/healthz":               "/api/healthz",
		"CMD wget -qO- http://127.0.0.1:3000/ready?full=1":            "/ready",
		"CMD-SHELL curl -fs http://localhost/ || exit 1":              "",
		"CMD /app -probe /readyz":                                     "/readyz",
		"CMD-SHELL test -f /tmp/ready":                                "",
		"CMD pg_isready":                                              "",
		"CMD node healthcheck.js":                                     "",
		"CMD-SHELL php -r 'exit(0);' && curl localhost:80/status.php": "/status.php",
	} {
		if got := healthPath(test); got != want {
			t.Errorf("healthPath(%q) = %q, want %q", test, got, want)
		}
	}
}

// TestAdoptPlanMakeClashes: a team Makefile with a target of opsready.mk's names makes adopt
// prefix its targets; variables, other targets and recipes do not count.
func TestAdoptPlanMakeClashes(t *testing.T) {
	dir := t.TempDir()
	mk := "PROD := x\nbackup: deps\n\t./backup.sh\nbuild test:\n\tgo build\nprod-up prod-down::\n\ttrue\nverify:=1\n# restore-test: a comment\n"
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk), 0o644); err != nil {
		t.Fatal(err)
	}
	got := makeClashes(dir)
	want := []string{"backup", "prod-down", "prod-up"}
	if !slices.Equal(got, want) {
		t.Errorf("makeClashes = %v, want %v", got, want)
	}
	if c := makeClashes(t.TempDir()); c != nil {
		t.Errorf("no Makefile: %v", c)
	}
}
