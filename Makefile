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
JOBS ?= 2

.PHONY: env test reproduce calibrate bench docs readme check-sync nbtest pytest docs-check lab lab-check clean-runs

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

# JupyterLab on the project environment (its kernel is this venv's python); ipywidgets 8 brings the
# @jupyter-widgets/jupyterlab-manager extension prebuilt. LAB_ARGS for more, e.g. LAB_ARGS="--port 8899 --no-browser".
LAB_ARGS ?=
lab: env
	@$(BIN)/jupyter labextension list 2>&1 | grep -q '@jupyter-widgets/jupyterlab-manager.*enabled' || \
	  { echo "ERROR: ipywidgets' JupyterLab extension is missing: make env (pip install -e '.[dev]')"; exit 1; }
	$(BIN)/jupyter lab --ServerApp.root_dir=. $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) $(LAB_ARGS)

# the JupyterLab browser test alone (`make pytest` runs it with the other tests)
lab-check: env
	$(BIN)/python -m pytest tests/test_lab_browser.py -q -p no:cacheprovider

test: check-sync nbtest pytest docs-check

# every sweep spec in sweeps/ (resumable: finished runs are skipped), then the report draws every figure spec and
# writes its summary (figures/<name>.json), from which the README's results section is regenerated
reproduce: env
	$(BIN)/sslseg-sweep sweeps/*.yaml --profile $(PROFILE) --jobs $(JOBS) --report
	$(BIN)/python tools/readme.py

# the fine-tuning step budget of a profile, measured (nbs/calibration.ipynb; figures/calibration.png); resumable
CAL_BUDGETS ?= 200,400,800,1600
CAL_FRACTIONS ?= 0.01,0.1,1.0
calibrate: env
	mkdir -p runs/$(PROFILE)
	$(BIN)/papermill nbs/calibration.ipynb runs/$(PROFILE)/calibration.ipynb -p profile $(PROFILE) -p budgets $(CAL_BUDGETS) \
	  -p fractions $(CAL_FRACTIONS) -p jobs $(JOBS) --cwd nbs

# speed of the BYOL and fine-tuning steps and of data loading (bench/results/protocol.json)
bench: env
	$(BIN)/python bench/bench_protocol.py

clean-runs:
	rm -rf runs
