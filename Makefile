# webhookd — see README.md. `make run` and `make test` are the quick start.
GO      ?= go
BIN     ?= bin/webhookd
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# Tests run on TEST_DATABASE_URL when it is set (CI: the system PostgreSQL);
# otherwise on a throwaway embedded PostgreSQL that devpg starts and stops.
# TESTFLAGS go to `go test` (CI: -json, read by internal/ci/testreport).
TESTFLAGS ?=
DEVPG   := bin/devpg

.PHONY: build run test vet fmt migrate bench bench-table bench-replay bench-admin test-faults check-alerts

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/webhookd

# Development mode: an embedded PostgreSQL under .webhookd/ (see README).
run: build
	$(BIN) serve --dev

test: vet
ifeq ($(TEST_DATABASE_URL),)
	$(GO) build -o $(DEVPG) ./internal/devdb/cmd/devpg
	$(DEVPG) -- $(GO) test -count=1 $(TESTFLAGS) ./...
else
	$(GO) test -count=1 $(TESTFLAGS) ./...
endif

# Fault drills (internal/faults, build tag faults): real webhookd processes
# killed and restarted, PostgreSQL stopped mid-load (only when
# WEBHOOKD_FAULTS_PG_CTL names a command that stops/starts the test server,
# e.g. "pg_ctlcluster --skip-systemctl-redirect 15 main" as root), three
# processes on one database. Database as for `make test`.
test-faults:
	$(GO) vet -tags faults ./internal/faults/
ifeq ($(TEST_DATABASE_URL),)
	$(GO) build -o $(DEVPG) ./internal/devdb/cmd/devpg
	$(DEVPG) -- $(GO) test -tags faults -count=1 -timeout 15m ./internal/faults/
else
	$(GO) test -tags faults -count=1 -timeout 15m ./internal/faults/
endif

# The example alerting rules: promtool's syntax check and the unit tests in
# docs/alerts/webhookd.rules.test.yml. promtool is in Debian's prometheus
# package (.ci/run installs it).
check-alerts:
	@command -v promtool >/dev/null || { echo "check-alerts: promtool not found; install it (Debian: apt-get install --no-install-recommends prometheus)"; exit 1; }
	promtool check rules docs/alerts/webhookd.rules.yml
	promtool test rules docs/alerts/webhookd.rules.test.yml

# End-to-end benchmark against the database's own insert limit, on
# DATABASE_URL (else TEST_DATABASE_URL, else the local test database);
# results in bench-results/bench.json.
bench: build
	$(BIN) bench

# The table of README's Performance section: steady load at concurrency 8
# and 64, and a 100,000-event backlog drained at 64, each against the
# database's ceiling measured in the same run; then one Markdown table.
bench-table: build
	$(BIN) bench -n 20000 -c 8 --out bench-results/c8.json
	$(BIN) bench -n 20000 -c 64 --out bench-results/c64.json
	$(BIN) bench --backlog 100000 --out bench-results/backlog.json
	$(BIN) bench --summarize bench-results/c8.json,bench-results/c64.json,bench-results/backlog.json

# Rebuild of each read model (users, practices, memberships) from a synthetic 1,000,000-event ledger of its events (WEBHOOKD_BENCH_EVENTS,
# WEBHOOKD_BENCH_USERS change the size).
bench-replay:
	$(GO) test -run '^$$' -bench '^BenchmarkRebuild$$' -benchtime 1x -timeout 30m ./projections/

# The admin API's user search and a 10,000-entry user timeline on a
# synthetic 1,000,000-entry ledger (WEBHOOKD_BENCH_EVENTS, WEBHOOKD_BENCH_USERS,
# WEBHOOKD_BENCH_HEAVY change the sizes); p50/p99 per request.
bench-admin:
	$(GO) test -run '^$$' -bench '^BenchmarkAdminOnLargeLedger$$' -benchtime 300x -timeout 30m ./admin/

# gofmt over the tree, not `git ls-files`: a copy without .git (a release
# tarball, CI's bare copy) is checked too.
vet:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

fmt:
	gofmt -w .

migrate: build
	$(BIN) migrate
