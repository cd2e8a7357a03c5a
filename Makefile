# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv with the pinned versions (requirements.lock) when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKDIR ?= runs/demo

.PHONY: demo test test-all venv bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/genjax demo --workdir=$(WORKDIR)

# CI's suite (30 minutes on 2 cores); test-all adds the tests marked slow (more kill -9 families,
# two-process faults).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -m "not slow" --durations=20 tests

test-all: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q tests

# PyTorch comparison benchmarks (issue 7); torch stays out of genjax itself.
bench: $(STAMP)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python experiments/torch_speed/run.py

clean:
	rm -rf $(VENV) runs
