# EventPulse: `make help` lists the targets. Every target installs what it needs first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

UV_VERSION := 0.13.9
# pytest-xdist workers for `make test` (every test starts its own services on free ports); the fault suite runs
# alone after them, as its kill -9 timings and its figures table want.
TEST_WORKERS ?= 2
LOCK := requirements/dev.lock

# Installs come from the committed, hashed lock (requirements/*.lock); `make upgrade` refreshes it.
$(STAMP): pyproject.toml $(LOCK) sdk/python/pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --python $(PY) --require-hashes --compile-bytecode -r $(LOCK)
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e sdk/python  # the client SDK (its one dependency, httpx, is in the lock)
	touch $(STAMP)

# The durable local broker's object store (s3rver, npm) from its committed lock; Node.js from Debian if missing.
S3RVER := devstack/broker/s3rver
S3RVER_STAMP := $(S3RVER)/node_modules/.installed-stamp
$(S3RVER_STAMP): $(S3RVER)/package.json $(S3RVER)/package-lock.json
	@bash scripts/ensure-node.sh
	cd $(S3RVER) && npm ci --no-audit --no-fund --loglevel=error
	touch $(S3RVER_STAMP)

install: $(STAMP) $(S3RVER_STAMP) redis ## Create the virtualenv and install EventPulse with its dev tools (from the locks), s3rver and redis-server

LOCK_ARGS := --generate-hashes --universal --python-version 3.11 -q

lock: install ## Re-resolve the lock files after a change to pyproject.toml (keeps versions where allowed)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev $(LOCK_ARGS) -o requirements/dev.lock
	$(VENV)/bin/uv pip compile pyproject.toml $(LOCK_ARGS) -o requirements/runtime.lock

upgrade: install ## Refresh the lock files to the newest versions pyproject.toml allows
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev $(LOCK_ARGS) --upgrade -o requirements/dev.lock
	$(VENV)/bin/uv pip compile pyproject.toml $(LOCK_ARGS) --upgrade -o requirements/runtime.lock

redis: ## Install Debian's redis-server (shared rate limits, idempotency, query cache; needs root or sudo)
	@bash scripts/ensure-redis.sh

browser: ## Install Debian's chromium for the real-browser test (needs root or sudo)
	@bash scripts/ensure-chromium.sh

run: install redis ## Start the whole local stack with synthetic traffic (Ctrl-C stops everything)
	$(VENV)/bin/eventpulse up --traffic

test: install redis browser ## Lint, import contracts, types, docs, then run every test (unit, integration on the local stack, browser)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir $(VENV)/docs-site
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile -m "not faults"
	$(VENV)/bin/pytest tests/faults -m faults

test-faults: install ## The fault suite alone (tests/faults: kill -9 and restarts under load); prints its figures table
	$(VENV)/bin/pytest tests/faults -m faults

# The fast tier keeps bytecode caches even where PYTHONDONTWRITEBYTECODE is set: recompiling the project and
# pytest's rewritten test modules on every run costs more than the tests themselves. Properties try a tenth of
# their examples here (tests/support/examples.py); `make test` tries them all.
test-unit: install ## The fast tier: every test that needs no broker, warehouse, server or subprocess (under a minute)
	env -u PYTHONDONTWRITEBYTECODE $(VENV)/bin/pytest -m "not integration" -q --hypothesis-profile unit

docs: install ## Build the documentation site strictly (any warning fails) into site/
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: install ## Serve the documentation with live reload on http://127.0.0.1:8001
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8001

.PHONY: docs docs-serve

lint: install ## ruff check + format check + the import contracts (pyproject.toml [tool.importlinter])
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

typecheck: install ## Type-check every package with mypy and the pydantic plugin (pyproject.toml [tool.mypy])
	$(VENV)/bin/mypy

hooks: install ## Install the git pre-commit hooks (.pre-commit-config.yaml: ruff, import contracts, mypy)
	$(VENV)/bin/pre-commit install

format: install ## Format the code with ruff
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

migrate: install ## Apply warehouse migrations (EVENTPULSE_WAREHOUSE_URL)
	$(VENV)/bin/eventpulse migrate

bench: install ## Run the benchmarks (prints ratios against same-run baselines)
	$(PY) benchmarks/validation.py
	$(PY) benchmarks/dataflow.py
	$(PY) benchmarks/gateway.py

clean: ## Remove the virtualenv, local data and caches
	rm -rf $(VENV) $(S3RVER)/node_modules .data .pytest_cache .ruff_cache .mypy_cache .import_linter_cache test-artifacts *.egg-info

.PHONY: help install lock upgrade redis browser run test test-faults test-unit lint typecheck hooks format migrate bench clean
