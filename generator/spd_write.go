package generator

import (
	"errors"
	"sync"
)

// errNoRenameNoReplace says the system or file system cannot rename without replacing.
var errNoRenameNoReplace = errors.New("rename without replacing is not supported")

// writeFreshStaged runs write for every name in order on this goroutine, and for journal on
// another one at the same time.
func writeFreshStaged(names []string, journal string, write func(string) error) error {
	var (
		wg   sync.WaitGroup
		jerr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		jerr = write(journal)
	}()
	var errs []error
	for _, n := range names {
		if err := write(n); err != nil {
			errs = append(errs, err)
		}
	}
	wg.Wait()
	if jerr != nil {
		errs = append(errs, jerr)
	}
	return errors.Join(errs...)
}
