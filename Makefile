# webhookd — see README.md. `make run` and `make test` are the quick start.
GO      ?= go
BIN     ?= bin/webhookd
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# Tests run on TEST_DATABASE_URL when it is set (CI: the system PostgreSQL);
# otherwise on a throwaway embedded PostgreSQL that devpg starts and stops.
DEVPG   := bin/devpg

.PHONY: build run test vet fmt migrate

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/webhookd

run: build
	$(BIN) serve --migrate

test: vet
ifeq ($(TEST_DATABASE_URL),)
	$(GO) build -o $(DEVPG) ./internal/devdb/cmd/devpg
	$(DEVPG) -- $(GO) test -count=1 ./...
else
	$(GO) test -count=1 ./...
endif

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

migrate: build
	$(BIN) migrate
