# The commands: `make run` (a demo shop on http://127.0.0.1:5000) and `make test` (the whole suite); `make cluster`
# shows the production shape on one machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app fantasize
DEMO_ADMIN_EMAIL ?= admin@fantasize.local
DEMO_ADMIN_PASSWORD ?= fantasize-admin-demo
# Two workers: each gets its own PostgreSQL database and SQLite file (see tests/conftest.py).
PYTEST_ARGS ?= -n 2

.PHONY: run cluster test install lint fuzz bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(FLASK) db upgrade
	$(FLASK) seed
	$(FLASK) create-admin --email $(DEMO_ADMIN_EMAIL) --password $(DEMO_ADMIN_PASSWORD) --if-missing
	@echo ""
	@echo "  Fantasize is starting on http://127.0.0.1:5000  (API docs: http://127.0.0.1:5000/api/docs)"
	@echo "  Demo admin login: $(DEMO_ADMIN_EMAIL) / $(DEMO_ADMIN_PASSWORD)"
	@echo ""
	$(BIN)/python wsgi.py

# nginx in front of INSTANCES gunicorn instances on http://127.0.0.1:8080, sharing PostgreSQL and Redis (DATABASE_URL
# and REDIS_URL, else private ones kept in instance/cluster); Ctrl-C or `deploy/local-cluster stop` stops it.
# E.g. `make cluster INSTANCES=3 ARGS="--port 8081"`.
INSTANCES ?= 2
cluster: install
	DEMO_ADMIN_EMAIL=$(DEMO_ADMIN_EMAIL) DEMO_ADMIN_PASSWORD=$(DEMO_ADMIN_PASSWORD) \
	deploy/local-cluster --instances $(INSTANCES) $(ARGS)

# The Node side of the real-time tests (socket.io-client, playwright-core), exactly as the lockfile pins it.
NODE_TESTS := tests/node
$(NODE_TESTS)/node_modules/.installed: $(NODE_TESTS)/package.json $(NODE_TESTS)/package-lock.json
	npm ci --prefix $(NODE_TESTS) --no-audit --no-fund --loglevel=error
	touch $@

test: install $(NODE_TESTS)/node_modules/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

# The fuzz tests of `make test`, deeper: every phase for every caller and version, many more examples, a random
# seed (printed; FUZZ_SEED=<n> repeats a run). Needs PostgreSQL and Redis, like the suite.
FUZZ_EXAMPLES ?= 100
FUZZ_SEED ?= random
fuzz: install
	FANTASIZE_REQUIRE_SERVICES=1 FUZZ_MAX_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_STATEFUL_EXAMPLES=$(FUZZ_EXAMPLES) \
	FUZZ_COVERAGE_ROLES=all FUZZ_COVERAGE_VERSIONS=v1,v2 FUZZ_SEED=$(FUZZ_SEED) FUZZ_TIMEOUT=7200 \
	$(BIN)/python -m pytest tests/test_fuzz.py -p no:cacheprovider -o timeout=7500

# Fantasize against bare Flask, one table (bench/harness.py says what it measures); e.g. BENCH_ARGS=--quick.
# BENCH_ARGS=--cluster: through nginx, one instance against two (bench/cluster.py).
bench:
	bench/run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache $(NODE_TESTS)/node_modules
