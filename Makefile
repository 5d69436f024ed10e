# Two commands matter on a fresh machine: `make run` and `make test`.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
# -race where time allows: the suite stays well under 10 minutes on 2 cores.
TEST_FLAGS ?= -race -count=1 -timeout 15m

FUZZTIME ?= 30s

.PHONY: run test lint fuzz build compose-up db-stop clean

run: ## start a local PostgreSQL if none is configured, migrate, serve API + workers + River UI on :8080
	./scripts/run-dev.sh

test: ## every test against a real PostgreSQL (TEST_DATABASE_URL, or an ephemeral cluster)
	$(GO) test $(TEST_FLAGS) ./...

lint: ## go vet + staticcheck
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

fuzz: ## bounded fuzzing of the webhook handler (FUZZTIME); needs one shared PostgreSQL, so it uses TEST_DATABASE_URL or the make-run cluster
	TEST_DATABASE_URL="$${TEST_DATABASE_URL:-$$(./scripts/pg-local.sh start | sed 's#/veza_dev?#/postgres?#')}" \
		$(GO) test -run XXX -fuzz FuzzWebhook -fuzztime $(FUZZTIME) ./http

build: ## the one binary, in bin/app
	$(GO) build -o bin/app ./cmd/app

compose-up: ## PostgreSQL 16, MinIO, Mailpit and the app in Docker
	docker compose up --build

db-stop: ## stop the local development PostgreSQL (data stays in .data/)
	./scripts/pg-local.sh stop

clean:
	rm -rf bin
