# Two commands: `make demo` and `make test`. Both bootstrap .venv from the
# committed lock (uv.lock) on a machine that has only Python 3.11, pip and make.
PY ?= python3.11
VENV ?= .venv
UV_VERSION := 0.13.9
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# No telemetry anywhere we run the stack (stack-notes: offline machines print errors).
export DO_NOT_TRACK := 1
export BENTOML_DO_NOT_TRACK := True
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_TELEMETRY := false
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install test demo lock bento clean help

help:
	@echo "make demo   - install from the lock, then run the demo on embedded defaults"
	@echo "make test   - install from the lock, then run the test suite"
	@echo "make lock   - re-resolve uv.lock after changing pyproject.toml"
	@echo "make bento  - build the service as a bento (bentoml build) from the locked requirements"
	@echo "make clean  - remove .venv (state under OFFER_BANDIT_HOME is left alone)"

install: $(STAMP)

# --compile-bytecode: the suite and the flows start many Python processes (servers, workers,
# CLI runs), and where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) none of them
# could cache what it compiled: each import of mlflow, prefect and bentoml recompiled them
# (12.6 s of CPU for those imports without the bytecode, 5.2 s with it, measured here).

$(STAMP): uv.lock pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv sync --frozen --inexact --all-extras --compile-bytecode --python $(BIN)/python
	touch $(STAMP)

# The suite is CPU-bound (servers, VW, fuzzing): it runs on every core, a test file per
# worker at a time (--dist loadfile: a file's module fixtures are built once).
TEST_WORKERS ?= auto

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

demo: $(STAMP)
	$(BIN)/offer-bandit demo

OFFER_BANDIT_HOME ?= .offer-bandit

bento: $(STAMP)
	mkdir -p build
	$(BIN)/uv export --frozen --no-hashes --no-emit-project --no-dev --format requirements-txt -o build/requirements.txt
	BENTOML_HOME=$(OFFER_BANDIT_HOME)/bentoml $(BIN)/bentoml build

lock:
	$(BIN)/uv lock --python $(PY)

clean:
	rm -rf $(VENV)
