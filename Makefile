# Thin wrappers around go. `make test` installs what the tests need first.
GO ?= go
# Per package, with a wide margin over the ~8 minutes an idle 2-core machine needs: a busy
# machine must not turn a slow run into a failure.
TEST_TIMEOUT ?= 25m
# The e2e tests mostly wait for servers, restic and child processes: more of them at once than
# there are cores keeps the machine busy.
TEST_PARALLEL ?= 4
# Test packages run at once: the e2e areas (internal/e2e/...) are independent packages, so the
# slowest one, not their sum, sets the time of `make test`. -count=1: the tests use servers and
# tools outside Go's view, so a cached pass could hide one that is gone since.
TEST_PACKAGES ?= 4
FAULTS_TIMEOUT ?= 60m

.PHONY: all build test test-go faults tools golden bench fuzz lint clean

all: build

build:
	$(GO) build -o bin/opsready ./cmd/opsready

tools:
	./scripts/install-tools.sh

test: tools test-go

test-go:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -p $(TEST_PACKAGES) -parallel $(TEST_PARALLEL) ./...

# The backup fault matrix: every fault at every step of every store and method, against the
# real servers (too slow for `make test`; .ci/run runs it after it).
# OPSREADY_BACKUP_FAULTS=full also repeats the repository faults on every store.
faults: tools
	$(GO) test ./internal/e2e/backup -run 'Faults' -faults -count=1 -parallel $(TEST_PARALLEL) -timeout $(FAULTS_TIMEOUT)

golden:
	$(GO) test ./internal/e2e/golden -count=1 -run 'TestGolden(Upgrade)?$$|TestGldCheck' -update-golden
	$(GO) test ./internal/e2e/golden -count=1
	git status --short golden

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The upgrade property run: 2000 trials (a third SIGKILLed, a fifth two runs at once), about
# 1.4 s a trial on 2 cores under load (100 trials: 136 s), so some 45 min; idle about half.
fuzz:
	$(GO) test ./prompts -run '^$$' -fuzz FuzzLoadAnswers -fuzztime 60s
	$(GO) test ./internal/merge -run '^$$' -fuzz FuzzMerge3 -fuzztime 60s
	$(GO) test ./internal/project -run TestUpgradeProperties -upgrade-cases 2000 -timeout 90m

lint:
	$(GO) vet ./...
	test -z "$$(gofmt -l cmd generator prompts blueprints internal)"

clean:
	rm -rf bin demo
