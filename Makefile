# webhookd — see README.md. `make run` and `make test` are the quick start.
GO      ?= go
BIN     ?= bin/webhookd
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable

.PHONY: build run test vet fmt migrate

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/webhookd

run: build
	$(BIN) serve --migrate

test: vet
	$(GO) test -count=1 ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

migrate: build
	$(BIN) migrate
