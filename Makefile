# Two commands do everything on a fresh clone:
#   make run    set up .venv (if needed) and run the main job on the embedded default
#   make test   set up .venv (if needed) and run the test suite
# Set-up is idempotent: it reinstalls only when pyproject.toml changed.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# Idle OpenMP threads spin by default; on a shared 2-core machine that made one fwd+bwd 2-20x slower.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup run test bench lint mlflow-ui

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) -m omninft_bench.run ablation=all

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pytest benchmarks -q --benchmark-json=benchmarks/latest.json

lint: $(STAMP)
	$(VENV)/bin/ruff check omninft_bench trainers tests benchmarks scripts
