# massface — the two commands: `make demo` (the main job) and `make test` (the suite).
# TORCH selects the torch requirement, e.g. `make test TORCH=torch==2.13.0` for the CPU build.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.massface-installed

.PHONY: venv demo quickstart test lint check-install bench clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(VENV)/bin/massface demo

quickstart: venv
	$(PY) examples/quickstart.py

test: venv
	$(PY) -m pytest -q tests

# pyflakes, isort and pyupgrade (ruff; configured in pyproject.toml)
lint: venv
	$(VENV)/bin/ruff check massface tests examples benchmarks

# the console script of a non-editable install (wheel -> fresh venv): `massface --help`, `train --print-config`
check-install: venv
	.ci/check-install $(PY)

bench: venv
	$(PY) benchmarks/bench_mining.py --quick
	$(PY) benchmarks/bench_sampler.py
	$(PY) benchmarks/bench_offline_mining.py --sizes 100000 --configs flat identity:64

clean:
	rm -rf $(VENV) build *.egg-info demo-output bench-output
