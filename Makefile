# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each builds .venv from the lock file when it is missing or the lock changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench bench-store bench-webhooks reliability lock clean

$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: $(STAMP)
	$(BIN)/certsync demo

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

# Three workers on two cores: the end-to-end tests wait on servers and child
# processes as much as they compute. The crash campaign, the soak and the failover
# campaign run shorter here (8 kills, 100 cycles, 4 failovers); `make reliability`
# runs them whole.
# certsync's own modules are compiled first: the machine may forbid writing bytecode
# (PYTHONDONTWRITEBYTECODE), and every command the tests start would compile them again.
unit: $(STAMP)
	$(BIN)/python -m compileall -q src
	CERTSYNC_CRASH_KILLS=8 CERTSYNC_SOAK_CYCLES=100 CERTSYNC_FAILOVER_POINTS=4 \
		$(BIN)/pytest -q -n 3 --dist worksteal

# The reliability campaign on its own and whole (20 kills, 300 soak cycles, 20 failover
# points on PostgreSQL), printing its figures.
reliability: $(STAMP)
	CERTSYNC_CRASH_KILLS=20 CERTSYNC_SOAK_CYCLES=300 CERTSYNC_FAILOVER_POINTS=20 $(BIN)/pytest -q -s \
		tests/test_faults.py tests/test_crash.py tests/test_store_faults.py tests/test_soak.py \
		tests/test_hostile_input.py tests/test_security.py tests/test_secrets.py tests/test_failover.py

# Requests, time and memory at 1,000 / 10,000 / 100,000 / 300,000 records (about 16 minutes).
bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-store: $(STAMP)
	$(BIN)/python bench/users_csv.py

# The webhook receiver at 200 deliveries a second while cycles run (about 30 seconds).
bench-webhooks: $(STAMP)
	$(BIN)/python bench/webhooks.py

# Regenerates both lock files from pyproject.toml (needs pip-tools in the venv).
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --no-emit-index-url --no-emit-find-links \
		--strip-extras -o requirements.lock pyproject.toml
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --no-emit-index-url \
		--no-emit-find-links --strip-extras --extra dev -o requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
