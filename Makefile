# The two commands of the README (`make demo`, `make test`) do all the set-up
# on a fresh machine: a virtual environment in .venv with labshelf installed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_SHELF ?= demo.shelf

.PHONY: demo test bench lint typecheck clean venv

venv: $(STAMP)

# Reinstalls only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/labshelf demo $(DEMO_SHELF) --overwrite

test: $(STAMP) lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(DEMO_SHELF) .pytest_cache .mypy_cache .ruff_cache
