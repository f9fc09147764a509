# hcgym: two commands for a fresh machine.
#   make demo   create .venv, install everything, run `hcgym demo` (writes out/demo/)
#   make test   install if needed, run the test suite against a non-editable install
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.hcgym-deps
PYTEST_ARGS ?=

.PHONY: demo test install deps clean

demo: install
	$(VENV)/bin/hcgym demo --out out/demo

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Dependencies: reinstalled when pyproject.toml changes. torch first, pinned to the CPU wheel.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q ".[test]"
	$(PIP) install -q --no-deps "$$($(PY) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["insightface"][0])')"
	touch $(STAMP)

deps: $(STAMP)

# The package itself, always reinstalled (non-editable) so tests see exactly what users get.
install: $(STAMP)
	rm -rf build
	$(PIP) install -q --no-deps --no-build-isolation --force-reinstall .

clean:
	rm -rf build *.egg-info out .pytest_cache
