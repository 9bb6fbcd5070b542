# The two entry points of README: `make demo` and `make test`.
# Both create (or reuse) .venv/ and install the pinned requirements.

# The first of python3.11, python3.12, python3.13, python3 that is Python
# 3.11 to 3.13 (TensorFlow 2.21's range; the lock file is tested on 3.11),
# or PYTHON=/path/to/python.
FIND_PYTHON := for p in python3.11 python3.12 python3.13 python3; do \
	$$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' \
	>/dev/null 2>&1 && { command -v $$p; break; }; done
PYTHON ?= $(shell $(FIND_PYTHON))
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo_out
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: demo test install which-python lint notebooks clean tcmalloc

# LiteRT.js for `simmim-tf export --web` (simmim_tf/web/package-lock.json):
# installed, never built.
LITERT_JS := simmim_tf/web/node_modules/.package-lock.json
# Debian's Chromium, for the browser test (tests/test_web_app.py): a system
# package, installed once by `make test` (as root, or with sudo).
CHROMIUM := /usr/bin/chromium
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): requirements-lock.txt setup.cfg pyproject.toml
	@$(MAKE) --no-print-directory -s which-python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-lock.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(LITERT_JS): simmim_tf/web/package-lock.json
	npm ci --prefix simmim_tf/web --no-audit --no-fund --loglevel=error

APT_INSTALL = $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
$(CHROMIUM):
	$(APT_INSTALL) chromium || { $(SUDO) apt-get update -q && $(APT_INSTALL) chromium; }

# tcmalloc under every Python that `make demo` and `make test` start: with
# glibc's malloc, TensorFlow's training spends 30 to 45% of its time in the
# kernel on some machines (every step's tensors mapped and faulted in
# afresh); with tcmalloc 3%, and training is 1.7x faster
# (docs/training.md). Debian's libtcmalloc-minimal4, installed once (as
# root, or with sudo); where it cannot be, both run without it and say so.
TCMALLOC_PACKAGE := libtcmalloc-minimal4
FIND_TCMALLOC := /sbin/ldconfig -p 2>/dev/null | awk '/libtcmalloc_minimal\.so\.4 /{print $$NF; exit}'
PRELOAD = LD_PRELOAD="$$($(FIND_TCMALLOC))"
tcmalloc:
	@test -n "$$($(FIND_TCMALLOC))" || $(APT_INSTALL) $(TCMALLOC_PACKAGE) >/dev/null 2>&1 \
		|| { $(SUDO) apt-get update -q >/dev/null 2>&1 && $(APT_INSTALL) $(TCMALLOC_PACKAGE) >/dev/null 2>&1; } \
		|| echo "note: $(TCMALLOC_PACKAGE) could not be installed; training runs with glibc's malloc, up to 1.7x slower (docs/training.md)"

# The package and its pinned dependencies in .venv, nothing else.
install: $(STAMP) $(LITERT_JS)
	@echo "installed: source $(VENV)/bin/activate, then simmim-tf --help"

# The Python the virtual environment is made with.
which-python:
	@test -n "$(PYTHON)" || { echo "error: no Python 3.11 to 3.13 on PATH (looked for" \
		"python3.11, python3.12, python3.13, python3); install one or give PYTHON=/path/to/python"; exit 1; }
	@$(PYTHON) -c 'import sys; print(sys.executable, "(Python %d.%d)" % sys.version_info[:2])' \
		|| { echo "error: PYTHON=$(PYTHON) does not run"; exit 1; }

demo: $(STAMP) $(LITERT_JS) tcmalloc
	$(PRELOAD) $(BIN)/python -m simmim_tf.demo --out $(DEMO)

# Two workers (pytest-xdist), one per core of the 2-core machines this is
# planned for; each test file stays on one worker, and the trained runs
# the files share are built once (tests/conftest.py, built_once).
# Not --dist loadgroup: with pytest 9.2 it silently stops grouping
# (pytest-dev/pytest-xdist#1386). --no-loadscope-reorder: files go out in
# the order tests/conftest.py gives them (FIRST), so that neither worker
# waits for a run the other is building.
TEST_WORKERS ?= 2
PYTEST_ARGS ?=
test: $(STAMP) $(LITERT_JS) $(CHROMIUM) tcmalloc
	$(PRELOAD) $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		$(PYTEST_ARGS) tests

# notebooks/*.ipynb are generated from the percent-format notebooks/*.py.
notebooks: $(STAMP)
	$(BIN)/jupytext --quiet --update --to ipynb notebooks/*.py

lint: $(STAMP)
	$(BIN)/ruff check simmim_tf tests export benchmarks notebooks
	$(BIN)/ruff format --check simmim_tf tests export benchmarks notebooks

clean:
	rm -rf $(DEMO) .pytest_cache
