package e2eutil

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// MariadbAccounts takes a lock, shared by every test process of this machine, on changing
// the local MariaDB's accounts: shared to create or drop one (NewScratchDB), exclusive for a
// job that must see the account list stand still (webapp 1.3.0's dump, released and not
// changeable, fails on an account dropped between its listing and SHOW CREATE USER; later
// versions leave such an account out). The returned func releases it.
func MariadbAccounts(t testing.TB, exclusive bool) func() {
	t.Helper()
	p := filepath.Join(os.TempDir(), "opsready-e2e-mariadb-accounts.lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		_ = f.Close()
		t.Fatal(err)
	}
	return func() { _ = f.Close() } // closing the file releases the lock
}

// MariadbTmpDir makes dir/tmp (mode 1777, for a server run as mysql) for one test server's
// mariadb-install-db: its bootstrap server writes temporary tables into the default /tmp, and
// bootstraps running at once there were seen to fail on each other's files.
func MariadbTmpDir(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o1777); err != nil {
		t.Fatal(err)
	}
	return p
}
