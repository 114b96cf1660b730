package lock

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Adopt records the stack `opsready adopt` detected in a team's compose project. Templates
// read it as `._adopt` (nil for a generated project), so `upgrade` renders an adopted project
// from the same facts adopt saw, without loading the team's compose files again.
type Adopt struct {
	// ComposeFiles are the team's compose files in load order, relative to the project.
	ComposeFiles []string `yaml:"compose_files"`
	// Project is the compose project name (docker compose -p).
	Project string `yaml:"project"`
	// HealthPath is the path the blackbox probe and the smoke test ask on the public URL: the
	// backend's health endpoint when adopt found one, else "/".
	HealthPath string `yaml:"health_path"`
	// Services are the team's services, sorted by name.
	Services []AdoptService `yaml:"services"`
	// DB is the relational database the backups and the exporter use; nil when there is none.
	DB *AdoptDB `yaml:"db,omitempty"`
	// Cache is the Redis-compatible cache; nil when there is none.
	Cache *AdoptCache `yaml:"cache,omitempty"`
	// DataVolumes are named volumes of the team's that hold data no database script covers;
	// the files backup saves them (mounted read-only into the backup service).
	DataVolumes []AdoptVolume `yaml:"data_volumes,omitempty"`
	// Unsupported names what adopt does not cover, one line each (e.g. a MongoDB service).
	Unsupported []string `yaml:"unsupported,omitempty"`
	// MakePrefix is put before every target of opsready.mk ("ops-") when the team's Makefile
	// has a target of the same name; "" otherwise.
	MakePrefix string `yaml:"make_prefix,omitempty"`
	// Renames maps a generated path to the free name it was written to because the team
	// already had a file there; upgrade keeps writing it there.
	Renames map[string]string `yaml:"renames,omitempty"`
}

// AdoptService is one service of the team's and what the override adds to it.
type AdoptService struct {
	Name string `yaml:"name"`
	Role string `yaml:"role"` // db, cache, proxy, backend, frontend, job, other
	// Engine is the data store's kind (postgres, mariadb, redis, mongodb, …), "" otherwise.
	Engine   string   `yaml:"engine,omitempty"`
	Networks []string `yaml:"networks,omitempty"`
	// What the service lacks and the override adds.
	AddRestart   bool `yaml:"add_restart,omitempty"`
	AddLogging   bool `yaml:"add_logging,omitempty"`
	AddLimits    bool `yaml:"add_limits,omitempty"`
	AddStopGrace bool `yaml:"add_stop_grace,omitempty"`
	// Healthcheck is the test the override adds (compose's array form); empty when the service
	// has one or none can be determined.
	Healthcheck []string `yaml:"healthcheck,omitempty"`
	// HealthWhy says why no healthcheck could be added, for the adopt report and docs.
	HealthWhy string `yaml:"health_why,omitempty"`
	// DependsHealthy lists dependencies whose plain depends_on becomes condition: service_healthy.
	DependsHealthy []string `yaml:"depends_healthy,omitempty"`
}

// AdoptDB is how the backup scripts and the exporter reach the team's database.
type AdoptDB struct {
	Service  string   `yaml:"service"`
	Engine   string   `yaml:"engine"` // postgres or mariadb (MySQL is served by the MariaDB tools)
	Image    string   `yaml:"image"`
	Networks []string `yaml:"networks"`
	User     string   `yaml:"user"`
	Database string   `yaml:"database"`
	// PasswordFile is the file, relative to the project, that holds the password: the team's
	// compose secret file, or secrets/<name> written by adopt from a literal in the environment.
	PasswordFile string `yaml:"password_file"`
	// Volume is the named volume of the data directory, DataDir where it is mounted.
	Volume  string `yaml:"volume,omitempty"`
	DataDir string `yaml:"data_dir,omitempty"`
}

// AdoptCache is the team's Redis-compatible cache.
type AdoptCache struct {
	Service  string   `yaml:"service"`
	Image    string   `yaml:"image"`
	Networks []string `yaml:"networks"`
}

// AdoptVolume is a named volume the files backup saves.
type AdoptVolume struct {
	Name    string `yaml:"name"`    // the compose volume key
	Service string `yaml:"service"` // a service that mounts it
	Target  string `yaml:"target"`  // where that service mounts it
}

// Check validates what a lock file says about an adopted project, so a hand-edited lock fails
// with the key at fault rather than as a broken template.
func (a *Adopt) Check() error {
	if a == nil {
		return nil
	}
	if len(a.ComposeFiles) == 0 {
		return fmt.Errorf("adopt.compose_files: empty")
	}
	for _, f := range a.ComposeFiles {
		if !relClean(f) {
			return fmt.Errorf("adopt.compose_files: %q is not a clean relative path", f)
		}
	}
	if !strings.HasPrefix(a.HealthPath, "/") || strings.ContainsAny(a.HealthPath, " \t\n\"'`$\\") {
		return fmt.Errorf("adopt.health_path: %q is not a URL path", a.HealthPath)
	}
	if a.MakePrefix != "" && a.MakePrefix != "ops-" {
		return fmt.Errorf("adopt.make_prefix: %q (want empty or ops-)", a.MakePrefix)
	}
	names := map[string]bool{}
	for _, s := range a.Services {
		if !serviceName(s.Name) {
			return fmt.Errorf("adopt.services: %q is not a compose service name", s.Name)
		}
		names[s.Name] = true
	}
	if !sort.SliceIsSorted(a.Services, func(i, j int) bool { return a.Services[i].Name < a.Services[j].Name }) {
		return fmt.Errorf("adopt.services: not sorted by name")
	}
	if a.DB != nil {
		if !names[a.DB.Service] {
			return fmt.Errorf("adopt.db.service: %q is not one of adopt.services", a.DB.Service)
		}
		if a.DB.Engine != "postgres" && a.DB.Engine != "mariadb" {
			return fmt.Errorf("adopt.db.engine: %q (want postgres or mariadb)", a.DB.Engine)
		}
		if !relClean(a.DB.PasswordFile) {
			return fmt.Errorf("adopt.db.password_file: %q is not a clean relative path", a.DB.PasswordFile)
		}
	}
	if a.Cache != nil && !names[a.Cache.Service] {
		return fmt.Errorf("adopt.cache.service: %q is not one of adopt.services", a.Cache.Service)
	}
	for from, to := range a.Renames {
		if !relClean(from) || !relClean(to) {
			return fmt.Errorf("adopt.renames: %q -> %q: not clean relative paths", from, to)
		}
	}
	return nil
}

// Template is the adopt record as template data: plain maps and lists, so templates index it
// like answers (`._adopt.db.service`).
func (a *Adopt) Template() map[string]any {
	if a == nil {
		return nil
	}
	svcs := make([]any, 0, len(a.Services))
	for _, s := range a.Services {
		svcs = append(svcs, map[string]any{
			"name": s.Name, "role": s.Role, "engine": s.Engine, "networks": strs(s.Networks),
			"add_restart": s.AddRestart, "add_logging": s.AddLogging, "add_limits": s.AddLimits,
			"add_stop_grace": s.AddStopGrace, "healthcheck": strs(s.Healthcheck), "health_why": s.HealthWhy,
			"depends_healthy": strs(s.DependsHealthy),
		})
	}
	m := map[string]any{
		"compose_files": strs(a.ComposeFiles), "project": a.Project, "health_path": a.HealthPath, "make_prefix": a.MakePrefix, "services": svcs,
		"db": nil, "cache": nil, "data_volumes": []any{}, "unsupported": strs(a.Unsupported),
	}
	if d := a.DB; d != nil {
		m["db"] = map[string]any{
			"service": d.Service, "engine": d.Engine, "image": d.Image, "networks": strs(d.Networks),
			"user": d.User, "database": d.Database, "password_file": d.PasswordFile,
			"volume": d.Volume, "data_dir": d.DataDir,
		}
	}
	if c := a.Cache; c != nil {
		m["cache"] = map[string]any{"service": c.Service, "image": c.Image, "networks": strs(c.Networks)}
	}
	vols := make([]any, 0, len(a.DataVolumes))
	for _, v := range a.DataVolumes {
		vols = append(vols, map[string]any{"name": v.Name, "service": v.Service, "target": v.Target})
	}
	m["data_volumes"] = vols
	froms := make([]string, 0, len(a.Renames))
	for from := range a.Renames {
		froms = append(froms, from)
	}
	sort.Strings(froms)
	renames := make([]any, 0, len(froms))
	for _, from := range froms {
		renames = append(renames, map[string]any{"from": from, "to": a.Renames[from]})
	}
	m["renames"] = renames
	// The names the three compose files of the ops layer have on disk, for the commands that
	// load them (opsready.mk, the pipeline, the documents).
	files := map[string]any{}
	for _, f := range []string{"compose.prod.yaml", "compose.monitoring.yaml", "compose.backup.yaml"} {
		files[f] = f
		if to, ok := a.Renames[f]; ok {
			files[f] = to
		}
	}
	m["ops_files"] = files
	return m
}

func strs(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func relClean(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

// serviceName follows the compose spec's service name pattern.
func serviceName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || (i > 0 && (r == '_' || r == '.' || r == '-'))
		if !ok {
			return false
		}
	}
	return true
}
