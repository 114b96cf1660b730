//go:build linux && (amd64 || arm64)

package generator

import (
	"os"
	"syscall"
	"unsafe"
)

const renameNoReplaceFlag = 0x1 // RENAME_NOREPLACE

// renameNoReplace renames from to to unless to exists (EEXIST then), in one call.
func renameNoReplace(from, to string) error {
	f, err := syscall.BytePtrFromString(from)
	if err != nil {
		return err
	}
	t, err := syscall.BytePtrFromString(to)
	if err != nil {
		return err
	}
	for {
		_, _, e := syscall.Syscall6(sysRenameat2, uintptr(atFDCWD), uintptr(unsafe.Pointer(f)), uintptr(atFDCWD), uintptr(unsafe.Pointer(t)), renameNoReplaceFlag, 0)
		switch e {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		case syscall.ENOSYS, syscall.EINVAL:
			return errNoRenameNoReplace
		}
		return &os.LinkError{Op: "renameat2", Old: from, New: to, Err: e}
	}
}

var atFDCWD = -0x64 // AT_FDCWD (a variable: a negative constant does not convert to uintptr)
