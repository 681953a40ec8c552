# Two commands on a fresh machine (see README.md):
#   make demo   installs into .venv and runs the main job on an embedded default
#   make test   installs the test extras, lints (make lint) and runs every test (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# --no-compile: pip would byte-compile every installed file (torch, mlflow, ray: tens of
# thousands); Python compiles the few a run imports, once, on first import.
PIP := $(BIN)/pip install --quiet --disable-pip-version-check --no-compile -c constraints.txt

.PHONY: install install-test demo lint test test-extended test-fast bench-smoke bench-mnist bench-zoo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	$(BIN)/python -c "import baerase_mlops, torch, torchvision, mlflow, starlette, uvicorn, prometheus_client"
	touch $@

# One resolver pass for the package and its test extras (CI's path), not two.
$(VENV)/.installed-test: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e ".[test]"
	$(BIN)/python -c "import baerase_mlops, torch, torchvision, mlflow, starlette, uvicorn, prometheus_client"
	$(BIN)/python -c "import pytest, xdist, moto, ray"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/baerase demo

# ruff (pinned in the test extras; rules and line length in pyproject.toml): findings and
# unformatted files fail the target, and so `make test` and CI, before the minutes of pytest.
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Two pytest workers, one test file each at a time (module fixtures stay together), the longest
# files first (tests/conftest.py, LONGEST_FIRST; xdist would otherwise reorder by test count): the suite is
# mostly CPU-bound model training and scanning, and CI has two cores. One thread each (and in the
# jobs they start): torch's default of one thread per core in both workers oversubscribes the
# cores, and its threads then spin waiting for each other. Bytecode is written (an empty
# PYTHONDONTWRITEBYTECODE is unset): the install does not compile (--no-compile above), and on a
# machine whose environment sets PYTHONDONTWRITEBYTECODE=1 (this project's CI machines do) each of
# the dozens of processes the suite starts (jobs, servers, pool and Ray workers) would compile torch, MLflow
# and the rest from source again: 1.5 CPU-seconds more for `import torch, mlflow` alone.
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=
test: install-test lint
	$(TEST_ENV) $(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

# What CI leaves out for time (marker "extended"): run it before a release.
test-extended: install-test
	$(TEST_ENV) $(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder -m extended

test-fast: install-test
	$(BIN)/pytest -m "not slow"

# The benchmark suite (benchmarks/, BENCHMARKS.md): smoke is what CI runs inside `make test`;
# the zoo merges shards into the committed BENCHMARKS.md (needs ../shared/datasets; models cached in
# ~/.cache/baerase-mlops/zoo or $BAERASE_ZOO_CACHE). bench-mnist is one shard; bench-zoo all of it (days on 2 cores).
bench-smoke: install
	$(BIN)/python -m benchmarks.run --profile smoke

bench-mnist: install
	$(BIN)/python -m benchmarks.run --profile zoo --datasets mnist --datasets-dir ../shared/datasets

bench-zoo: install
	$(BIN)/python -m benchmarks.run --profile zoo --datasets-dir ../shared/datasets

clean:
	rm -rf $(VENV) demo .pytest_cache
