package adopt

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/internal/lock"
)

// Plan is what adopt writes for a detected project: the record templates read (`._adopt`),
// the answers it fixes, the local files (a literal password copied to secrets/) and the
// lines of the report.
type Plan struct {
	Record *lock.Adopt
	// Fixed are the answers the compose model decides (db, cache, frontend, …).
	Fixed map[string]string
	// Local are files only this machine gets (never committed, never locked).
	Local generator.Files
	// Report says what adopt found, could not detect and does not cover, one line each.
	Report []string
}

// passwordSecretFile is where adopt keeps a database password it found written literally in
// the environment: the compose file keeps it too, but the backup jobs and the exporter read a
// file.
const passwordSecretFile = "secrets/db_password"

// MakePlan turns a detection into the adopt record. p is the loaded model the detection came
// from (the literal passwords are read from it).
func MakePlan(d *Detection, p *types.Project) (*Plan, error) {
	rec := &lock.Adopt{ComposeFiles: slices.Clone(d.Files), Project: d.Project, HealthPath: "/"}
	pl := &Plan{Record: rec, Fixed: map[string]string{
		"frontend":         "none",
		"tls":              "none",
		"ci":               "github",
		"db_backup_method": "logical",
		"db":               "none",
		"cache":            "none",
		// A replica of the team's database is a change to their own services: not adopted yet.
		"db_replica": "none",
	}}
	if name := dnsLabel(d.Project); name != "" {
		pl.Fixed["name"] = name
	}
	if d.Backend != nil && d.Backend.HealthPath != "" {
		rec.HealthPath = d.Backend.HealthPath
	}
	healthy := map[string]bool{}
	for _, s := range d.Services {
		if s.Healthcheck || s.ImageHealthcheck || len(s.SuggestedHealthcheck) > 0 {
			healthy[s.Name] = true
		}
	}
	for _, s := range d.Services {
		as := lock.AdoptService{Name: s.Name, Role: s.Role, Engine: s.Engine, Networks: slices.Clone(s.Networks)}
		svc := p.Services[s.Name]
		if s.Role != RoleJob {
			as.AddRestart = svc.Restart == "" || svc.Restart == types.RestartPolicyNo
			as.AddLogging = !rotated(svc)
			as.AddLimits = !limited(svc)
			as.AddStopGrace = (s.Role == RoleDB || s.Role == RoleCache) && (svc.StopGracePeriod == nil || *svc.StopGracePeriod < types.Duration(30e9))
			if s.ImageHealthcheck && !s.Healthcheck {
				as.HealthWhy = "its Dockerfile declares a HEALTHCHECK, which docker runs; the compose files do not show it (check reads only them): waive svc-healthcheck for it"
			}
			if !s.Healthcheck && !s.ImageHealthcheck {
				as.Healthcheck = slices.Clone(s.SuggestedHealthcheck)
				as.HealthWhy = s.HealthWhy
				if len(as.Healthcheck) == 0 && as.HealthWhy == "" {
					as.HealthWhy = "adopt cannot tell from the image how to check it"
				}
			}
			for dep, cfg := range svc.DependsOn {
				if cfg.Condition == types.ServiceConditionStarted && healthy[dep] {
					as.DependsHealthy = append(as.DependsHealthy, dep)
				}
			}
			slices.Sort(as.DependsHealthy)
		}
		rec.Services = append(rec.Services, as)
	}
	if s := d.DB; s != nil {
		switch s.Engine {
		case "postgres", "mariadb":
			db, local, err := dbRecord(s, p)
			if err != nil {
				return nil, err
			}
			rec.DB = db
			pl.Local = append(pl.Local, local...)
			pl.Fixed["db"] = s.Engine
		default:
			rec.Unsupported = append(rec.Unsupported, fmt.Sprintf("service %s: %s (%s) has no backup script, exporter or alert rules in opsready yet (PostgreSQL and MariaDB have); the rest is adopted", s.Name, s.Engine, s.Image))
		}
	}
	if s := d.Cache; s != nil {
		switch {
		case redisAuth(p.Services[s.Name]):
			rec.Unsupported = append(rec.Unsupported, fmt.Sprintf("service %s: Redis with a password (requirepass): adopt does not read it, so its exporter and backup are left out", s.Name))
		case !officialRedis(s.Image):
			// The backup's redis tools come from the official image of the same version; a
			// build with modules (redis-stack, redismod) or another vendor's may write RDB data
			// plain Redis cannot load.
			rec.Unsupported = append(rec.Unsupported, fmt.Sprintf("service %s: %s is not the official redis image: its backup could not be restored by plain Redis, so its exporter and backup are left out", s.Name, cmp.Or(s.Image, "a built image")))
		default:
			rec.Cache = &lock.AdoptCache{Service: s.Name, Image: s.Image, Networks: slices.Clone(s.Networks)}
			pl.Fixed["cache"] = "redis"
		}
	}
	for _, v := range d.DataVolumes {
		if av, ok := volumeUser(p, v); ok {
			rec.DataVolumes = append(rec.DataVolumes, av)
		}
	}
	rec.Unsupported = append(rec.Unsupported, d.Unsupported...)
	for _, s := range rec.Services {
		if len(s.Networks) == 0 {
			rec.Unsupported = append(rec.Unsupported, fmt.Sprintf("service %s: network_mode is set, so the ops services cannot join its network", s.Name))
		}
	}
	slices.Sort(rec.Unsupported)
	rec.Unsupported = slices.Compact(rec.Unsupported)
	if clash := makeClashes(d.Dir); len(clash) > 0 {
		rec.MakePrefix = "ops-"
		pl.Report = append(pl.Report, fmt.Sprintf("your Makefile has the targets %s: opsready.mk's targets get the prefix ops- (make -f opsready.mk ops-backup)", strings.Join(clash, ", ")))
	}
	pl.Report = append(pl.Report, d.Notes...)
	if err := rec.Check(); err != nil {
		return nil, fmt.Errorf("adopt record: %w", err)
	}
	return pl, nil
}

// OpsTargets are the targets of opsready.mk (adopt component); a test keeps the list and the
// template in step.
var OpsTargets = []string{
	"help-ops", "prod-config", "prod-up", "prod-down", "prod-ps", "prod-logs", "prod-smoke", "monitoring-reload",
	"alerts-test", "check-readiness", "install-logrotate", "backup", "restore-test", "backups", "prune", "verify",
	"install-schedule", "install-cron",
}

var makeTarget = regexp.MustCompile(`(?m)^([A-Za-z0-9_./%-]+(?:[ \t]+[A-Za-z0-9_./%-]+)*)[ \t]*::?(?:[^=]|$)`)

// makeClashes lists the targets of the team's Makefile that opsready.mk also defines: an
// `include opsready.mk` would redefine them.
func makeClashes(dir string) []string {
	var clash []string
	for _, n := range []string{"GNUmakefile", "makefile", "Makefile"} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		for _, m := range makeTarget.FindAllStringSubmatch(string(b), -1) {
			for _, t := range strings.Fields(m[1]) {
				if slices.Contains(OpsTargets, t) && !slices.Contains(clash, t) {
					clash = append(clash, t)
				}
			}
		}
	}
	slices.Sort(clash)
	return clash
}

// dbRecord is how the backups and the exporter reach the database. MariaDB backups need root
// (users, grants, events), so its root password is used; PostgreSQL uses the detected user.
func dbRecord(s *Service, p *types.Project) (*lock.AdoptDB, generator.Files, error) {
	db := &lock.AdoptDB{Service: s.Name, Engine: s.Engine, Image: s.Image, Networks: slices.Clone(s.Networks),
		User: s.DB.User, Database: s.DB.Database, DataDir: s.DataDir}
	if db.Image == "" {
		db.Image = s.BuildBase
	}
	if db.Image == "" {
		return nil, nil, fmt.Errorf("service %s: the database image is not known (built from a Dockerfile adopt could not read)", s.Name)
	}
	svc := p.Services[s.Name]
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == s.DataDir {
			db.Volume = v.Source
		}
	}
	if s.Engine == "mariadb" && db.User != "root" {
		// The root password: the team's *_ROOT_PASSWORD(_FILE).
		root := rootAccess(svc, p)
		db.User = "root"
		s = &Service{DB: root}
	}
	var local generator.Files
	switch {
	case s.DB.PasswordSecretFile != "":
		db.PasswordFile = s.DB.PasswordSecretFile
	case s.DB.PasswordEnv != "" && svc.Environment[s.DB.PasswordEnv] != nil:
		db.PasswordFile = passwordSecretFile
		local = append(local, generator.File{Path: passwordSecretFile, Data: []byte(*svc.Environment[s.DB.PasswordEnv]), Mode: 0o600})
	default:
		return nil, nil, fmt.Errorf("service %s: no password found (neither a *_PASSWORD variable nor a *_PASSWORD_FILE secret): adopt needs one for the backups", s.Name)
	}
	return db, local, nil
}

// rootAccess finds MariaDB's root password: MARIADB_ROOT_PASSWORD(_FILE) or the MYSQL_ names.
func rootAccess(svc types.ServiceConfig, p *types.Project) DBAccess {
	var a DBAccess
	for _, n := range []string{"MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD"} {
		if v := svc.Environment[n+"_FILE"]; v != nil {
			if name, ok := strings.CutPrefix(*v, "/run/secrets/"); ok {
				if sec, ok := p.Secrets[name]; ok && sec.File != "" {
					a.PasswordSecretFile = relTo(p.WorkingDir, sec.File)
					return a
				}
			}
			for _, ref := range svc.Secrets {
				if ref.Target == *v || "/run/secrets/"+ref.Target == *v {
					if sec, ok := p.Secrets[ref.Source]; ok && sec.File != "" {
						a.PasswordSecretFile = relTo(p.WorkingDir, sec.File)
						return a
					}
				}
			}
		}
		if v := svc.Environment[n]; v != nil {
			a.PasswordEnv = n
			return a
		}
	}
	return a
}

func relTo(dir, p string) string {
	if r, ok := strings.CutPrefix(p, strings.TrimSuffix(dir, "/")+"/"); ok {
		return r
	}
	return p
}

// officialRedis: the Docker Official Image redis (redis, redis:TAG, docker.io/library/redis…).
func officialRedis(image string) bool {
	name, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	switch name {
	case "redis", "library/redis", "docker.io/redis", "docker.io/library/redis":
		return true
	}
	return false
}

var requirepass = regexp.MustCompile(`--requirepass|requirepass\s`)

func redisAuth(svc types.ServiceConfig) bool {
	return requirepass.MatchString(strings.Join(svc.Command, " ")) || svc.Environment["REDIS_PASSWORD"] != nil
}

func volumeUser(p *types.Project, name string) (lock.AdoptVolume, bool) {
	for _, sn := range p.ServiceNames() {
		for _, v := range p.Services[sn].Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source == name {
				return lock.AdoptVolume{Name: name, Service: sn, Target: v.Target}, true
			}
		}
	}
	return lock.AdoptVolume{}, false
}

func rotated(s types.ServiceConfig) bool {
	if s.Logging == nil {
		return false
	}
	switch s.Logging.Driver {
	case "", "json-file":
		return s.Logging.Options["max-size"] != ""
	default: // local rotates by itself; syslog, journald, fluentd, … ship the logs away
		return true
	}
}

func limited(s types.ServiceConfig) bool {
	if s.MemLimit > 0 {
		return true
	}
	return s.Deploy != nil && s.Deploy.Resources.Limits != nil && s.Deploy.Resources.Limits.MemoryBytes > 0
}

// dnsLabel makes a compose project name a valid `name` answer.
func dnsLabel(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '-' || r == '_' || r == '.':
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if out != "" && (out[0] < 'a' || out[0] > 'z') {
		out = "app-" + out // a name starts with a letter
	}
	if len(out) > 40 {
		out = strings.Trim(out[:40], "-")
	}
	return out
}
