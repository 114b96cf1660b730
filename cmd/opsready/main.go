// Command opsready generates production-ready service repositories from versioned
// blueprints and keeps them up to date.
package main

import (
	"os"
	"runtime/debug"
)

func main() {
	tuneGC()
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// gcMemoryLimit is the heap size from which the collector runs when tuneGC turned it off.
const gcMemoryLimit = 512 << 20

// tuneGC turns the garbage collector off up to gcMemoryLimit unless GOGC or GOMEMLIMIT say
// otherwise. A command lives a fraction of a second and allocates tens of MB while keeping
// little: `new` of the largest stack collected six times, for about a tenth of its CPU. Past
// the limit (a very large project) the collector runs as usual.
func tuneGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(gcMemoryLimit)
}
