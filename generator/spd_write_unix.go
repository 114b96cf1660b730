//go:build unix

package generator

import (
	"io/fs"
	"os"
	"syscall"
)

// writeNewFile is writeFile with the system calls made directly: os.OpenFile also tries to
// register every file with the network poller (five more calls per file, which regular files
// always refuse), and a project writes hundreds.
func writeNewFile(p string, data []byte, mode fs.FileMode, sync bool) error {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(p, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, uint32(mode.Perm()))
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	for len(data) > 0 && err == nil {
		var n int
		n, err = syscall.Write(fd, data)
		switch {
		case err == syscall.EINTR:
			err = nil
		case err == nil && n == 0:
			err = syscall.EIO
		case err == nil:
			data = data[n:]
		}
	}
	if err != nil {
		err = &os.PathError{Op: "write", Path: p, Err: err}
	}
	// The mode exactly, not what the umask left of it.
	if err == nil {
		if cerr := ignoringEINTR(func() error { return syscall.Fchmod(fd, uint32(mode.Perm())) }); cerr != nil {
			err = &os.PathError{Op: "chmod", Path: p, Err: cerr}
		}
	}
	if err == nil && sync {
		if serr := ignoringEINTR(func() error { return syscall.Fsync(fd) }); serr != nil {
			err = &os.PathError{Op: "sync", Path: p, Err: serr}
		}
	}
	if cerr := syscall.Close(fd); err == nil && cerr != nil {
		err = &os.PathError{Op: "close", Path: p, Err: cerr}
	}
	return err
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != syscall.EINTR {
			return err
		}
	}
}
