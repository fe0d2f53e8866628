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

test: setup browser
	$(PY) -m pytest -q

# Headless Chromium for the HTML report test (Debian's package; the test is skipped, saying why, where
# it can't be installed).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get install -y -q chromium >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
		|| echo "note: could not install chromium; the HTML report browser test will be skipped"

# The whole method on the embedded base: data, trajectories, SFT, GRPO, evaluation of every stage.
# DEMO_FLAGS passes options through, e.g. `make demo DEMO_FLAGS="--seed 1 --out runs/demo1"`.
DEMO_FLAGS ?=
demo: setup
	$(VENV)/bin/mirg demo $(DEMO_FLAGS)

bench: setup
	$(PY) benchmarks/parse_speed.py
	$(PY) benchmarks/score_speed.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
