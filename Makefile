# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Setup makes .venv, installs the CPU build of torch when the venv has no torch, then the project
# with the versions it is tested with (constraints.txt).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mirg-installed

.PHONY: setup test demo bench clean browser

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/mirg demo

bench: setup
	$(PY) benchmarks/parse_speed.py
	$(PY) benchmarks/score_speed.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
