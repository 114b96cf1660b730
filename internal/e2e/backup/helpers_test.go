package backup

import (
	"flag"
	"os"
	"testing"
)

// The backup fault matrix (each fault at each step of every store and method) takes longer
// than `make test`'s budget on this kind of machine, so it has a target of its own:
// `make faults` runs it, and .ci/run runs `make test` and then `make faults`.
var runFaultMatrix = flag.Bool("faults", false, "run the backup fault matrix (make faults)")

// requireFaultMatrix skips a fault-matrix test unless `-faults` (or OPSREADY_FAULTS=1) asks for
// it; the skip message names the target that runs it, so it is never a silent pass.
func requireFaultMatrix(t *testing.T) {
	t.Helper()
	if !*runFaultMatrix && os.Getenv("OPSREADY_FAULTS") == "" {
		t.Skip("the backup fault matrix runs with `make faults` (go test ./internal/e2e/backup -faults); .ci/run runs it after `make test`")
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
