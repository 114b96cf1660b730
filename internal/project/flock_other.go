//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package project

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("locked")

// flock is a no-op where flock(2) does not exist: only one opsready per project is then the
// user's to ensure.
func flock(*os.File) error { return nil }
