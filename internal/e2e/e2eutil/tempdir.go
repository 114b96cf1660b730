package e2eutil

import (
	"os"
	"syscall"
	"testing"
)

// FastTempDir returns a new directory, removed when the test ends, on the tmpfs /dev/shm when
// it has more than 4 GB free, else in the default temp dir. restic, databases and restores
// fsync every file they write, which costs seconds per job on a virtual machine's disk; the
// tests prove behaviour, not disk speed.
func FastTempDir(t testing.TB) string {
	t.Helper()
	parent := ""
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && st.Bavail*uint64(st.Bsize) > 4<<30 {
		parent = "/dev/shm"
	}
	d, err := os.MkdirTemp(parent, "opsready-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(d); err != nil {
			t.Errorf("remove %s: %v", d, err)
		}
	})
	return d
}
