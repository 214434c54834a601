# labmind's two commands: `make demo` (install + run the built-in example) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bwrap chromium

# The demo needs only labmind itself; the tests also need the dev tools (pytest, ruff, playwright, mlflow).
$(BIN)/labmind: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(BIN)/labmind
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: $(BIN)/labmind
	$(BIN)/labmind run examples/tiny-lm --max-experiments 12 --slots 2
	$(BIN)/labmind log examples/tiny-lm

# Bubblewrap sandboxes runs; install it when missing (Debian/Ubuntu) so the sandbox tests run for real.
bwrap:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  if command -v apt-get >/dev/null 2>&1; then \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "bubblewrap is not installed and apt-get is unavailable: sandbox tests will be skipped"; fi; }

# The dashboard's browser tests drive Debian's Chromium through playwright; install it when missing.
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  if command -v apt-get >/dev/null 2>&1; then \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed and apt-get is unavailable: browser tests will be skipped"; fi; }

test: $(VENV)/.dev bwrap chromium
	$(BIN)/ruff check src tests
	$(BIN)/pytest -q -m "slow or not slow" tests

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests
