# The two entry points of README: `make demo` and `make test`.
# Both create (or reuse) .venv/ and install the pinned requirements.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo_out
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: demo test lint notebooks clean

$(STAMP): requirements-lock.txt setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-lock.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m simmim_tf.demo --out $(DEMO)

# Two workers (pytest-xdist), one per core of the 2-core machines this is
# planned for; each test file stays on one worker, and the trained runs
# the files share are built once (tests/conftest.py, built_once).
# Not --dist loadgroup: with pytest 9.2 it silently stops grouping
# (pytest-dev/pytest-xdist#1386).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

# notebooks/*.ipynb are generated from the percent-format notebooks/*.py.
notebooks: $(STAMP)
	$(BIN)/jupytext --quiet --update --to ipynb notebooks/*.py

lint: $(STAMP)
	$(BIN)/ruff check simmim_tf tests export benchmarks notebooks
	$(BIN)/ruff format --check simmim_tf tests export benchmarks notebooks

clean:
	rm -rf $(DEMO) .pytest_cache
