# Airlock — `make demo` and `make test` set themselves up from nothing.
# The virtual environment comes from requirements.lock (pinned, with hashes);
# our own five components are installed editable on top, without dependencies.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# Ignore machine-wide pip settings (extra indexes, find-links) so that only the
# hashes in requirements.lock decide what is installed.
PIP    := PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_NO_INPUT=1 $(BIN)/python -m pip
COMPONENTS := bundles keys-ceremony hub spoke/node spoke
# pytest-xdist on both cores (a module's tests stay on one process). `make test-fast` uses
# it; `make test` does not unless asked (`make test TEST_PARALLEL="-n 2 --dist loadscope"`):
# the fleet simulations judge latency ratios that a second busy worker skews (tests/README.md).
FAST_PARALLEL ?= -n 2 --dist loadscope
TEST_PARALLEL ?=
STAMP  := $(VENV)/.airlock-installed

.PHONY: demo test test-fast lint bench lock setup system-deps clean

setup: $(STAMP) system-deps

$(STAMP): requirements.lock $(foreach c,$(COMPONENTS),$(c)/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes --no-deps -r requirements.lock
	$(PIP) install --quiet --no-deps --no-build-isolation $(foreach c,$(COMPONENTS),-e ./$(c))
	touch $@

# Stock tools the tests and the benchmark compare against: age (interoperability)
# and openssl; SoftHSM2 and pkcs11-tool for the HSM path; strace (the benchmark
# counts what an import reads); faketime (libfaketime)
# for the shifted-clock tests. Installed from the distribution when missing and we may.
system-deps:
	@for tool in age age-keygen openssl softhsm2-util pkcs11-tool faketime strace; do \
		command -v $$tool >/dev/null || { scripts/install-system-deps.sh; break; }; done

demo: setup
	$(BIN)/python scripts/demo.py

# The whole suite (what CI runs), and the fast tier for the edit-test loop: every test
# not listed in tests/slow_tests.txt, a few minutes at most (tests/README.md).
test: setup
	$(BIN)/python -m pytest $(TEST_PARALLEL)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(FAST_PARALLEL)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/bench_bundle.py
	$(BIN)/python bench/bench_fleet.py
	$(BIN)/python bench/bench_audit.py

# Re-resolve requirements.in into requirements.lock (needs the network to the package index).
lock: setup
	$(PIP) install --quiet uv
	$(BIN)/uv pip compile --universal --python-version 3.11 --generate-hashes requirements.in -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
