# hcgym: two commands for a fresh machine.
#   make demo   create .venv, install everything, run `hcgym demo` (writes out/demo/)
#   make test   install if needed, run the test suite against a non-editable install
# Development:
#   make test-fast    the suite without tests marked slow (the inner loop)
#   make lint         ruff, with the project's configuration in pyproject.toml
#   make constraints  rewrite constraints.txt from the venv (after a dependency change)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.hcgym-deps
PYTEST_ARGS ?=
# Every install takes the exact versions CI tested.
CONSTRAINTS := constraints.txt

.PHONY: demo test test-fast lint install deps constraints clean

demo: install
	$(VENV)/bin/hcgym demo --out out/demo

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: deps
	$(VENV)/bin/ruff check .

# Dependencies: reinstalled when pyproject.toml or constraints.txt changes. torch first, pinned to the CPU wheel;
# insightface last and without its dependencies (it asks for opencv-python, a second cv2 beside mediapipe's
# opencv-contrib-python); its version is pinned in constraints.txt like everything else.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -qq --upgrade pip setuptools wheel
	$(PIP) install -qq -c $(CONSTRAINTS) torch==2.13.0
	$(PIP) install -qq -c $(CONSTRAINTS) ".[test]"
	$(PIP) install -qq -c $(CONSTRAINTS) --no-deps insightface
	touch $(STAMP)

deps: $(STAMP)

# The package itself, always reinstalled (non-editable) so tests see exactly what users get.
install: $(STAMP)
	rm -rf build
	$(PIP) install -qq --no-deps --no-build-isolation --force-reinstall .

constraints: deps
	{ sed -n '1,2p' $(CONSTRAINTS); $(PIP) list --format=freeze --exclude-editable \
	  | grep -v -E '^(hcgym|pip|setuptools|wheel)==' | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/' \
	  | sort -f; } > $(CONSTRAINTS).tmp && mv $(CONSTRAINTS).tmp $(CONSTRAINTS)

clean:
	rm -rf build *.egg-info out .pytest_cache
