# EventPulse: `make help` lists the targets. Every target installs what it needs first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# pytest-xdist workers for `make test` (every test starts its own services on free ports); the fault suite runs
# alone after them, as its kill -9 timings and its figures table want.
TEST_WORKERS ?= 2

# uv, pinned with its hashes (requirements/uv.txt), in a bootstrap virtualenv of its own: `uv sync` keeps .venv
# exactly to the lock, so uv cannot live there. Only python3 (3.11+) and PyPI are needed.
UV_HOME := .uv
UV := $(UV_HOME)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
# Bytecode compiled at install: the fast tier would otherwise recompile the project on each run.
export UV_COMPILE_BYTECODE := 1

$(UV): requirements/uv.txt
	python3 -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements/uv.txt
	touch $(UV)

uv: $(UV) ## Install the pinned uv (requirements/uv.txt, hash-checked) into .uv/

# Installs come from the committed lock (uv.lock, every artifact hashed); `--locked` fails if pyproject.toml changed
# without `make lock`. The project and the client SDK (sdk/python/, a workspace member) are installed editable.
$(STAMP): $(UV) pyproject.toml uv.lock sdk/python/pyproject.toml
	$(UV) sync --locked --quiet --python python3
	touch $(STAMP)

# The durable local broker's object store (s3rver, npm) from its committed lock; Node.js from Debian if missing.
S3RVER := devstack/broker/s3rver
S3RVER_STAMP := $(S3RVER)/node_modules/.installed-stamp
$(S3RVER_STAMP): $(S3RVER)/package.json $(S3RVER)/package-lock.json
	@bash scripts/ensure-node.sh
	cd $(S3RVER) && npm ci --no-audit --no-fund --loglevel=error
	touch $(S3RVER_STAMP)

install: $(STAMP) $(S3RVER_STAMP) redis ## Create the virtualenv and install EventPulse with its dev tools (uv.lock), s3rver and redis-server

lock: $(UV) ## Re-resolve uv.lock after a change to pyproject.toml (keeps the locked versions where allowed)
	$(UV) lock

upgrade: $(UV) ## Refresh uv.lock to the newest versions pyproject.toml allows (then `make install`, run the tests)
	$(UV) lock --upgrade

redis: ## Install Debian's redis-server (shared rate limits, idempotency, query cache; needs root or sudo)
	@bash scripts/ensure-redis.sh

browser: ## Install Debian's chromium for the real-browser test (needs root or sudo)
	@bash scripts/ensure-chromium.sh

haproxy: ## Install Debian's haproxy to check the cluster profile's load-balancer configuration (needs root or sudo)
	@bash scripts/ensure-haproxy.sh

# `make run` also fills the 7 days before today with demo history once (`eventpulse demo`; days already filled are
# skipped): `make run HISTORY=--no-history` leaves it out.
HISTORY ?= --history
run: install redis ## Start the whole local stack with synthetic traffic and 7 days of history (Ctrl-C stops everything)
	$(VENV)/bin/eventpulse up --traffic $(HISTORY)

test: install redis browser haproxy ## Lint, import contracts, types, docs, then run every test (unit, integration on the local stack, browser)
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

# JupyterLab on notebooks/ with the project's kernel; the notebooks read the warehouse the settings point at (the
# local stack's by default: start it with `make run` first). Jupyter prints the URL with its access token; it
# refuses to run as root unless told (these machines run as root).
NOTEBOOKS_PORT ?= 8888
NOTEBOOKS_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
notebooks: install ## Open notebooks/ in JupyterLab on http://127.0.0.1:8888 (reads the local stack started by `make run`)
	$(VENV)/bin/jupyter lab --no-browser --ip 127.0.0.1 --port $(NOTEBOOKS_PORT) --ServerApp.root_dir=notebooks $(NOTEBOOKS_ROOT_FLAG)

docs: install ## Build the documentation site strictly (any warning fails) into site/
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: install ## Serve the documentation with live reload on http://127.0.0.1:8001
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8001

.PHONY: docs docs-serve notebooks

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
	rm -rf $(VENV) $(UV_HOME) $(S3RVER)/node_modules .data .pytest_cache .ruff_cache .mypy_cache .import_linter_cache test-artifacts *.egg-info

.PHONY: help uv install lock upgrade redis browser haproxy run test test-faults test-unit lint typecheck hooks format migrate bench clean
