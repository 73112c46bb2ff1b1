# sslseg — the two commands of the README's Quickstart are `make reproduce` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sslseg-installed
# torch and torchvision from PyPI as a matched pair (settings.ini pins the same pair)
TORCH_PAIR := "torch==2.15.*" "torchvision==0.29.*"
NB_WORKERS ?= 2
PROFILE ?= quick

.PHONY: env test reproduce docs readme check-sync nbtest pytest docs-check clean-runs

$(STAMP): settings.ini setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PAIR)
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

env: $(STAMP)

# nbdev_export and nbdev_clean must leave the tree as it was (notebooks are the source of truth)
check-sync: env
	@before=$$({ git status --porcelain; git diff; } | md5sum); \
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean && $(BIN)/python tools/readme.py; \
	after=$$({ git status --porcelain; git diff; } | md5sum); \
	if [ "$$before" != "$$after" ]; then \
	  echo "ERROR: nbdev_export / nbdev_clean / tools/readme.py changed files: notebooks, package or README out of sync"; \
	  git status --short; exit 1; fi; \
	echo "notebooks and package in sync"

nbtest: env
	$(BIN)/nbdev_test --n_workers $(NB_WORKERS) --timing

pytest: env
	$(BIN)/python -m pytest tests -q -p no:cacheprovider --ignore=tests/test_docs_browser.py

readme: env
	$(BIN)/python tools/readme.py

docs: env
	$(BIN)/python tools/build_docs.py

docs-check: docs
	$(BIN)/python -m pytest tests/test_docs_browser.py -q -p no:cacheprovider

test: check-sync nbtest pytest docs-check

reproduce: env
	$(BIN)/sslseg-sweep --profile $(PROFILE) --report

clean-runs:
	rm -rf runs
