package e2eutil

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The build cache keeps what building a generated stub produces (a Go server binary, an
// installed node_modules, a built frontend) so that each distinct stub is built once per
// run, by whichever test process gets to it first, however many packages need it.
//
// An entry is a directory named by the SHA-256 of everything the build reads: the kind of
// build, the stub's source files (paths, modes and contents), the toolchain's version and the
// settings that change its output. Same key, same output, so an entry can be reused by a later
// run too. A build runs in a temporary directory beside the entry under an exclusive file lock
// on the key (so two processes do not build the same entry twice) and is renamed into place
// only when it succeeded: a half-written entry is never seen. A failed build leaves nothing.

// CacheDir is the root of the build cache: $OPSREADY_E2E_CACHE, or opsready-e2e-cache in the
// system's temporary directory.
func CacheDir() string {
	if d := os.Getenv("OPSREADY_E2E_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "opsready-e2e-cache")
}

// CacheKey hashes the inputs of a build: kind names the build (and its version, to change
// when the build steps change), src is the source tree (files under skipped top-level names
// such as node_modules or dist are left out), and extra holds toolchain versions and settings.
func CacheKey(kind, src string, skip []string, extra ...string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "kind %q\n", kind)
	for _, e := range extra {
		fmt.Fprintf(h, "extra %q\n", e)
	}
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() && rel != "." {
			for _, s := range skip {
				if rel == s {
					return filepath.SkipDir
				}
			}
		}
		if !d.IsDir() {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", src, err)
	}
	sort.Strings(files)
	for _, rel := range files {
		p := filepath.Join(src, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", src, err)
		}
		fmt.Fprintf(h, "file %q %o %d\n", filepath.ToSlash(rel), fi.Mode(), fi.Size())
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return "", fmt.Errorf("hash %s: %w", src, err)
			}
			io.WriteString(h, target)
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", src, err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", src, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Cached returns the cache entry for key, building it first with build when there is none.
// build writes its output into the (empty) directory it is given and may be called in no
// other way; the entry it leaves must not be changed by its users.
func Cached(t testing.TB, key string, build func(out string) error) string {
	t.Helper()
	dir, built, err := cached(CacheDir(), key, build)
	if err != nil {
		t.Fatalf("build cache: %v", err)
	}
	if built {
		t.Logf("build cache: built %s", dir)
	} else {
		t.Logf("build cache: reused %s", dir)
	}
	return dir
}

// inProcess serialises the builds of one key within a process: flock locks belong to the
// open file, so two goroutines of one process would each get it.
var inProcess sync.Map // key -> *sync.Mutex

func cached(root, key string, build func(out string) error) (dir string, built bool, err error) {
	dir = filepath.Join(root, key)
	if _, err := os.Stat(dir); err == nil {
		return dir, false, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", false, fmt.Errorf("create %s: %w", root, err)
	}
	mu, _ := inProcess.LoadOrStore(key, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", false, fmt.Errorf("lock %s: %w", key, err)
	}
	defer lock.Close() // closing releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", false, fmt.Errorf("lock %s: %w", key, err)
	}
	// Another process may have built it while this one waited.
	if _, err := os.Stat(dir); err == nil {
		return dir, false, nil
	}
	// Under the lock no one else builds this key: a temporary folder left is from a build that
	// was killed, never to be used.
	if stale, _ := filepath.Glob(dir + ".tmp-*"); len(stale) > 0 {
		for _, s := range stale {
			_ = os.RemoveAll(s)
		}
	}
	tmp := fmt.Sprintf("%s.tmp-%d-%s", dir, os.Getpid(), randomSuffix())
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", false, fmt.Errorf("create %s: %w", tmp, err)
	}
	if err := build(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", false, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		return "", false, fmt.Errorf("publish %s: %w", key, err)
	}
	return dir, true, nil
}

func randomSuffix() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return fmt.Sprint(time.Now().UnixNano())
	}
	return hex.EncodeToString(b)
}

// LinkTree recreates the tree src at dst (which must not exist) with hard links to src's
// files, falling back to copies across file systems: cheap for a node_modules of thousands of
// files. The users of dst must not write into the linked files.
func LinkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		default:
			if err := os.Link(p, target); err == nil {
				return nil
			} else if !errors.Is(err, syscall.EXDEV) {
				return err
			}
			return copyFile(p, target, info.Mode().Perm())
		}
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ToolVersion returns the trimmed output of a tool's version command, for a cache key.
func ToolVersion(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	return strings.Join(argv, " ") + ": " + strings.TrimSpace(string(out))
}
