# Two commands: `make demo` (set up .venv, install vaekit, run the demo) and `make test` (the test suite).
# TORCH picks the PyTorch build: on machines with the local CPU wheel the pin takes it; elsewhere override,
# e.g. `make demo TORCH=torch` for your platform's normal build.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test install clean bench

$(BIN)/vaekit: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile "$(TORCH)" || $(BIN)/python -m pip install --quiet --no-compile torch
	$(BIN)/python -m pip install --quiet --no-compile -e ".[dev]"
# byte-compile on every core (pip compiles on one; with PYTHONDONTWRITEBYTECODE set nothing is cached later)
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null 2>&1 || true
	touch $(BIN)/vaekit

install: $(BIN)/vaekit

demo: install
	$(BIN)/vaekit demo --out demo-report

test: install
	$(BIN)/python -m pytest tests -n 2 --dist worksteal --durations=15   # 2 workers (pytest-xdist), one compute thread each; an idle worker takes queued tests from the busy one

clean:
	rm -rf $(VENV) demo-report

bench: install   # every README figure from scratch (hours; see benchmarks/run.py --list)
	$(BIN)/python benchmarks/run.py
