# The two entry points of README: `make demo` and `make test`.
# Both create (or reuse) .venv/ and install the pinned requirements.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo_out
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: demo test lint clean

$(STAMP): requirements-lock.txt setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-lock.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m simmim_tf.demo --out $(DEMO)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check simmim_tf tests export benchmarks
	$(BIN)/ruff format --check simmim_tf tests export benchmarks

clean:
	rm -rf $(DEMO) .pytest_cache
