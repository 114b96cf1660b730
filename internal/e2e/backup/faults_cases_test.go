package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// bftCases is the matrix.
func bftCases() []bftCase {
	file := func(t *testing.T, s *bftStore, name, content string) string {
		p := filepath.Join(s.p.tmp, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	none := func() {}
	env := func(kv ...string) func(*testing.T, *bftStore) (map[string]string, func()) {
		return func(*testing.T, *bftStore) (map[string]string, func()) {
			m := map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			return m, none
		}
	}
	closed := func(t *testing.T, s *bftStore) (map[string]string, func()) {
		port := strconv.Itoa(e2eutil.FreePort(t))
		if s.name == "postgres" {
			return map[string]string{"PGPORT": port}, none
		}
		return map[string]string{"REDIS_PORT": port}, none
	}
	rename := func(rel func(*bftStore) string) func(*testing.T, *bftStore) (map[string]string, func()) {
		return func(t *testing.T, s *bftStore) (map[string]string, func()) {
			p := rel(s)
			if err := os.Rename(p, p+".away"); err != nil {
				t.Fatal(err)
			}
			return nil, func() {
				if err := os.Rename(p+".away", p); err != nil {
					t.Error(err)
				}
			}
		}
	}
	damage := func(how string) func(*testing.T, *bftStore) (map[string]string, func()) {
		return func(t *testing.T, s *bftStore) (map[string]string, func()) {
			// A fresh backup whose packs are the newest: only they are damaged.
			before := brfDataFiles(t, s.p.offsite())
			bftTouch(t, s)
			s.p.mustRun(t, nil, "ops/backup/"+s.script, "backup")
			return nil, bftDamage(t, s.p.offsite(), before, how)
		}
	}
	full := func(size int, key string) func(*testing.T, *bftStore) (map[string]string, func()) {
		return func(t *testing.T, s *bftStore) (map[string]string, func()) {
			dir := bftTmpfs(t, size)
			if key == "TMPDIR" {
				os.Chmod(dir, 0o1777)
				return map[string]string{key: dir}, none
			}
			return map[string]string{key: filepath.Join(dir, "repo")}, none
		}
	}
	return []bftCase{
		// Backups.
		{name: "restic password file missing", generic: true, action: "backup", want: `RESTIC_PASSWORD_FILE`,
			inject: env("RESTIC_PASSWORD_FILE", "/nonexistent/restic_password")},
		{name: "wrong restic password", generic: true, action: "backup", want: `wrong password`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				return map[string]string{"RESTIC_PASSWORD_FILE": file(t, s, "wrong-restic", "not the password\n")}, none
			}},
		{name: "db password file missing", action: "backup", stores: []string{"postgres"}, want: `PGPASSWORD_FILE`,
			inject: env("PGPASSWORD_FILE", "/nonexistent/db_password")},
		{name: "redis password file missing", action: "backup", stores: []string{"redis"}, want: `REDIS_PASSWORD_FILE`,
			inject: env("REDIS_PASSWORD_FILE", "/nonexistent/redis_password")},
		{name: "wrong redis password", action: "backup", stores: []string{"redis"}, want: `cannot reach Redis.*(WRONGPASS|NOAUTH|invalid)`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				return map[string]string{"REDIS_PASSWORD_FILE": file(t, s, "wrong-redis", "wrong\n")}, none
			}},
		{name: "unreachable server", action: "backup", stores: []string{"postgres", "redis"},
			want: `cannot connect to PostgreSQL|cannot reach Redis`, inject: closed},
		{name: "server ends the session mid-dump", action: "backup", stores: []string{"postgres", "redis"},
			want:   `pg_dump of .* failed: .*terminat|redis-cli --rdb .* failed`,
			inject: env(),
			run: func(t *testing.T, s *bftStore, env map[string]string) (string, error, bool) {
				release := s.block(t)
				defer release()
				cmd, out := bftStart(t, s, env, "backup")
				s.killMidDump(t)
				err := cmd.Wait()
				return out.String(), err, true
			}},
		{name: "SIGKILL while dumping", action: "backup", stores: []string{"postgres", "redis"}, inject: env(),
			run: func(t *testing.T, s *bftStore, env map[string]string) (string, error, bool) {
				release := s.block(t)
				defer release()
				out := bftKillWhen(t, s, env, "the dump started", func() bool { return s.dumping(t) })
				return out, fmt.Errorf("killed"), false
			}},
		{name: "SIGKILL while restic stores the backup", generic: true, action: "backup", inject: env(),
			run: func(t *testing.T, s *bftStore, env map[string]string) (string, error, bool) {
				out := bftKillWhen(t, s, env, "a lock in the primary repository", func() bool { return bftLocks(s.p.primary()) })
				return out, fmt.Errorf("killed"), false
			}},
		{name: "SIGKILL while copying off-site", action: "backup", stores: []string{"files"}, inject: env(),
			run: func(t *testing.T, s *bftStore, env map[string]string) (string, error, bool) {
				out := bftKillWhen(t, s, env, "a lock in the off-site repository", func() bool { return bftLocks(s.p.offsite()) })
				return out, fmt.Errorf("killed"), false
			}},
		{name: "prune after a killed backup (stale lock)", generic: true, action: "prune", want: `removed the stale lock`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				// A restic lock of a process that is gone, as a SIGKILL leaves it.
				bftKillWhen(t, s, nil, "a lock in the primary repository", func() bool { return bftLocks(s.p.primary()) })
				return nil, none
			}},
		{name: "full disk: staging", action: "backup", want: `not enough free space .*staging`,
			inject: full(1<<20, "BACKUP_STAGING_DIR")},
		// Repository file systems smaller than a backup: without the free-space check the
		// copy itself fails with ENOSPC (which 1.3.0 lost: exit 0, "stored").
		{name: "full disk: local repository", generic: true, action: "backup", want: `not enough free space .*primary restic repository`,
			inject: full(48<<10, "BACKUP_RESTIC_REPOSITORY")},
		{name: "full disk: off-site repository", generic: true, action: "backup", want: `not enough free space .*offsite restic repository`,
			inject: full(48<<10, "BACKUP_OFFSITE_REPOSITORY")},
		{name: "off-site repository key deleted", generic: true, action: "backup", want: `restic copy on the offsite repository .*(no key found|wrong password)`,
			inject: rename(func(s *bftStore) string { return filepath.Join(s.p.offsite(), "keys") })},
		{name: "off-site repository gone", generic: true, action: "backup", want: `offsite restic repository .* is missing`,
			inject: rename(func(s *bftStore) string { return s.p.offsite() })},
		{name: "two runs at once", generic: true, action: "backup", want: `another job holds`, inject: env("BACKUP_LOCK_TIMEOUT", "1"),
			run: func(t *testing.T, s *bftStore, env map[string]string) (string, error, bool) {
				lock := filepath.Join(s.p.env["BACKUP_DIR"], "locks", s.name+".lock")
				f, err := os.OpenFile(lock, os.O_CREATE|os.O_WRONLY, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
					t.Fatal(err)
				}
				out, err := s.p.run(t, env, "ops/backup/"+s.script, "backup")
				return out, err, true
			}},
		// Restore tests.
		{name: "wrong restic password", generic: true, action: "restore-test", want: `wrong password`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				return map[string]string{"RESTIC_PASSWORD_FILE": file(t, s, "wrong-restic", "not the password\n")}, none
			}},
		{name: "off-site key deleted", generic: true, action: "restore-test", want: `no key found|wrong password`,
			inject: rename(func(s *bftStore) string { return filepath.Join(s.p.offsite(), "keys") })},
		{name: "off-site directory missing", generic: true, action: "restore-test", want: `offsite repository .*(no such file|does not exist|unable to open)`,
			inject: rename(func(s *bftStore) string { return s.p.offsite() })},
		{name: "corrupted pack", generic: true, action: "restore-test", want: `damaged`, inject: damage("corrupt")},
		{name: "truncated pack", generic: true, action: "restore-test", want: `damaged.*unexpected file size`, inject: damage("truncate")},
		{name: "deleted pack", generic: true, action: "restore-test", want: `damaged.*does not exist`, inject: damage("delete")},
		{name: "deleted snapshot off-site", generic: true, action: "restore-test", want: `off-site copy is stale`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				list := s.p.snapshots(t, s.p.offsite(), "store="+s.name)
				newest := list[len(list)-1]
				p := filepath.Join(s.p.offsite(), "snapshots", newest.ID)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				return nil, func() {
					if err := os.WriteFile(p, b, 0o444); err != nil {
						t.Error(err)
					}
				}
			}},
		{name: "stale off-site copy", action: "restore-test", want: `off-site copy is stale`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				// A newer backup that never reached the off-site repository.
				bftTouch(t, s)
				s.p.mustRun(t, map[string]string{"BACKUP_OFFSITE_REPOSITORY": ""}, "ops/backup/"+s.script, "backup")
				return nil, func() { s.p.mustRun(t, nil, "ops/backup/"+s.script, "backup") }
			}},
		{name: "deleted manifest", action: "restore-test", want: `has no manifest`,
			inject: func(t *testing.T, s *bftStore) (map[string]string, func()) {
				// The newest local backup without its manifest.json, restore-tested there.
				list := s.p.snapshots(t, s.p.primary(), "store="+s.name)
				newest := list[len(list)-1]
				dir := filepath.Join(s.p.tmp, "nomanifest")
				os.RemoveAll(dir)
				s.p.restic(t, s.p.primary(), "restore", newest.ID, "--target", dir)
				src := filepath.Join(dir, newest.Paths[0])
				if err := os.Remove(filepath.Join(src, "manifest.json")); err != nil {
					t.Fatal(err)
				}
				args := []string{"backup", "--host", s.p.env["BACKUP_PROJECT"]}
				for _, tag := range newest.Tags {
					args = append(args, "--tag", tag)
				}
				s.p.restic(t, s.p.primary(), append(args, "--json", src)...)
				added := s.p.snapshots(t, s.p.primary(), "store="+s.name)
				id := added[len(added)-1].ID
				return map[string]string{"RESTORE_TEST_FROM": "primary"}, func() {
					s.p.restic(t, s.p.primary(), "forget", id)
				}
			}},
		{name: "full disk: scratch restore", action: "restore-test", want: `not enough free space`,
			inject: full(2<<20, "TMPDIR")},
	}
}
