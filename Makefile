# The two commands a newcomer needs: `make run` and `make test`. Each creates .venv when it is
# missing and installs the project into it. torch==2.13.0 is installed first, on its own, so that
# no resolver ever pulls a CUDA build of torch.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast install lint bench-world bench-protocol deploy-demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/fedscore run experiments/configs/pilot8.toml --out runs/pilot8

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The inner loop: everything but the tests marked slow (real processes, large worlds).
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -m "not slow" -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench-world: $(STAMP)
	$(BIN)/python benchmarks/bench_world.py

bench-protocol: $(STAMP)
	$(BIN)/python benchmarks/bench_protocol.py

# SuperLink with TLS and SuperNode authentication, one SuperNode per firm on 127.0.0.1, our
# secure aggregation through `flwr run`; stops every process it started (docs/DEPLOY.md).
deploy-demo: $(STAMP)
	$(BIN)/python -m experiments.cli.deploy --work runs/deploy-demo

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
