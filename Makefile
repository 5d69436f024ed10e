# Two commands matter on a fresh machine: `make run` and `make test`.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
REDOCLY_VERSION ?= 2.77.0
# -race where time allows: the suite stays well under 10 minutes on 2 cores.
TEST_FLAGS ?= -race -count=1 -timeout 15m

FUZZTIME ?= 30s

.PHONY: run test lint fuzz chaos bench build compose-up db-stop clean

run: ## start a local PostgreSQL if none is configured, migrate, serve API + workers + River UI on :8080
	./scripts/run-dev.sh

test: ## every test against a real PostgreSQL (TEST_DATABASE_URL, or an ephemeral cluster)
	$(GO) test $(TEST_FLAGS) ./...

lint: ## go vet + staticcheck + the OpenAPI document through redocly's recommended rules (npx; make test keeps its rules too)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	npx --yes @redocly/cli@$(REDOCLY_VERSION) lint http/openapi.json

FUZZ_TARGETS ?= FuzzWebhook FuzzWellFormedWebhook FuzzStripeWebhook FuzzUpload FuzzJSONBodies
# Minimizing a new input does not count as executions and defaults to 60s,
# which would eat a short FUZZTIME whole: keep it short.

fuzz: ## bounded fuzzing (FUZZTIME each) of the webhook parser (any bytes; any object in a signed envelope), uploads and every JSON body; needs one shared PostgreSQL: TEST_DATABASE_URL or the make-run cluster
	@export TEST_DATABASE_URL="$${TEST_DATABASE_URL:-$$(./scripts/pg-local.sh start | sed 's#/veza_dev?#/postgres?#')}"; \
	for target in $(FUZZ_TARGETS); do \
		echo "== $$target ($(FUZZTIME))"; \
		$(GO) test -run XXX -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./http > .fuzz.log 2>&1; status=$$?; \
		for again in 1 2; do \
			if [ $$status -ne 0 ] && grep -q 'context deadline exceeded' .fuzz.log && ! grep -q 'Failing input' .fuzz.log; then \
				echo "   the fuzzing engine timed out stopping its workers (no failing input): running $$target again ($$again of 2)"; \
				$(GO) test -run XXX -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./http > .fuzz.log 2>&1; status=$$?; \
			fi; \
		done; \
		if [ $$status -eq 0 ]; then tail -n 3 .fuzz.log; else tail -n 80 .fuzz.log; fi; rm -f .fuzz.log; [ $$status -eq 0 ] || exit $$status; \
	done

chaos: ## the crash suite at full size (CHAOS_PURCHASES, CHAOS_KILLS) and the database-restart test
	CHAOS_PURCHASES=$${CHAOS_PURCHASES:-200} CHAOS_KILLS=$${CHAOS_KILLS:-20} $(GO) test -count=1 -timeout 30m -v -run 'TestCrashSuite|TestDatabaseRestartUnderWebhookLoad' ./chaos

bench: ## measure against same-run baselines (own PostgreSQL, real binary, fakes); prints a table, writes bench/results/*.json
	$(GO) run ./bench $(BENCH_FLAGS)

build: ## the one binary, in bin/app
	$(GO) build -o bin/app ./cmd/app

compose-up: ## PostgreSQL 16, MinIO, Mailpit and the app in Docker
	docker compose up --build

db-stop: ## stop the local development PostgreSQL (data stays in .data/)
	./scripts/pg-local.sh stop

clean:
	rm -rf bin
