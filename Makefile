# Two commands do all set-up on a fresh machine (README.md): `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORPUS ?= data/corpus
WORKDIR ?= runs/demo
EXPORT ?= runs/demo/export
MINUTES ?= 60
SEED ?= 1

.PHONY: demo test lint install bench clean-demo

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[demo,tflite,dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job end to end on the built-in corpus. Each stage skips work that is already done, so re-running
# after an interruption continues where it stopped.
demo: $(STAMP)
	$(VENV)/bin/jointctc-synth --out_dir $(CORPUS) --minutes $(MINUTES) --seed $(SEED)
	$(PY) -m tf_jointctc.cli.inspect_corpus --corpus $(CORPUS) --config configs/demo.py

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -p no:cacheprovider tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check . || true

bench: $(STAMP)
	@for b in bench/*.py; do $(PY) $$b; done
