package project

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// WriteLockName is the file in a project's root that opsready locks (flock) while it reads
// and writes the project. It lives in the root rather than in .git because a project may have
// no repository yet (`new`, `upgrade --force`) or get one half-way (`new` commits): one place
// for every command is what makes the lock exclusive. It is removed when the command ends; a
// killed command leaves it, harmlessly, since the kernel releases the flock with the process.
const WriteLockName = ".opsready.lock"

// ErrBusy is returned when another opsready process holds a project's write lock.
var ErrBusy = errors.New("another opsready is writing to the project")

// BusyError names the process that holds the lock.
type BusyError struct {
	Dir   string
	Pid   int
	Since time.Time
}

func (e *BusyError) Error() string {
	who := "pid unknown"
	if e.Pid > 0 {
		who = "pid " + strconv.Itoa(e.Pid)
		if !e.Since.IsZero() {
			who += " since " + e.Since.Local().Format(time.DateTime)
		}
	}
	return fmt.Sprintf("another opsready is writing to %s (%s); wait for it to finish", e.Dir, who)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// writeLock is a held project lock.
type writeLock struct {
	f          *os.File
	path, dir  string
	removeRoot bool // recovery undid a `new` that had created dir: remove it when empty
}

// lockProject takes dir's write lock without waiting: a second opsready fails at once.
func lockProject(dir string) (*writeLock, error) {
	p := filepath.Join(dir, WriteLockName)
	for range 20 {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		if err := flock(f); err != nil {
			_ = f.Close()
			if errors.Is(err, errWouldBlock) {
				pid, since := readHolder(p)
				return nil, &BusyError{Dir: dir, Pid: pid, Since: since}
			}
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		// The holder removes the file before it unlocks; a lock on a removed file is no lock.
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(p)
		if err1 != nil || err2 != nil || !os.SameFile(fi, pi) {
			_ = f.Close()
			continue
		}
		l := &writeLock{f: f, path: p, dir: dir}
		// A killed `new` that had created the folder says so here: once its write is undone,
		// the folder goes too (when empty), so that it is as it was.
		if prev, err := os.ReadFile(p); err == nil && strings.Contains(string(prev), "\n"+createdRootLine+"\n") {
			l.removeRoot = true
		}
		l.record(false)
		return l, nil
	}
	return nil, fmt.Errorf("lock %s: the lock file keeps changing", dir)
}

const createdRootLine = "created the folder"

// record writes who holds the lock (for the message of a second run), and whether this run
// created the folder.
func (l *writeLock) record(createdRoot bool) {
	info := fmt.Sprintf("pid %d\nsince %s\n", os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	if createdRoot {
		info += createdRootLine + "\n"
	}
	if err := l.f.Truncate(0); err == nil {
		_, _ = l.f.WriteAt([]byte(info), 0)
	}
}

func readHolder(p string) (int, time.Time) {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, time.Time{}
	}
	var pid int
	var since time.Time
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "pid":
			pid, _ = strconv.Atoi(v)
		case "since":
			since, _ = time.Parse(time.RFC3339, v)
		}
	}
	return pid, since
}

// unlock removes the lock file, then releases the lock (closing the file).
func (l *writeLock) unlock() error {
	if l == nil {
		return nil
	}
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	if l.removeRoot {
		_ = os.Remove(l.dir) // only when empty
	}
	return err
}
