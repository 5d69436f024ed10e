# Two commands matter on a fresh machine: `make run` and `make test`.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
# -race where time allows: the suite stays well under 10 minutes on 2 cores.
TEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: run test lint build compose-up db-stop clean

run: ## start a local PostgreSQL if none is configured, migrate, serve API + workers + River UI on :8080
	./scripts/run-dev.sh

test: ## every test against a real PostgreSQL (TEST_DATABASE_URL, or an ephemeral cluster)
	$(GO) test $(TEST_FLAGS) ./...

lint: ## go vet + staticcheck
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

build: ## the one binary, in bin/app
	$(GO) build -o bin/app ./cmd/app

compose-up: ## PostgreSQL 16, MinIO, Mailpit and the app in Docker
	docker compose up --build

db-stop: ## stop the local development PostgreSQL (data stays in .data/)
	./scripts/pg-local.sh stop

clean:
	rm -rf bin
