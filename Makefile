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

PARITY := ../shared/parity/mig-bench

# Until the full train-and-evaluate demo lands, the demo scores the MIG-Bench parity data.
demo: setup
	@echo "== mirg demo: scoring the published MIG-Bench result files in $(PARITY) (the training demo is not built yet)"
	$(VENV)/bin/mirg score --data $(PARITY)/revised_MIG_bench.json --predictions $(PARITY)/results/univg-r1/*.json \
		--out runs/demo/univg-r1.compat.json --compat migbench
	$(VENV)/bin/mirg score --data $(PARITY)/revised_MIG_bench.json --predictions $(PARITY)/results/qwen2_vl/*.json \
		--out runs/demo/qwen2_vl.compat.json --compat migbench

bench: setup
	$(PY) benchmarks/parse_speed.py
	$(PY) benchmarks/score_speed.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
