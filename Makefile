# The README's commands. Every target is idempotent: run it again and it does only what is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Stages in dvc.yaml call `mnist ...`: put the environment's scripts first on PATH.
export PATH := $(BIN):$(PATH)
# Quieter TensorFlow start-up logs in every command run from here.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup pipeline test browser bench bench-suite mutate lab freeze clean

# GPU=1 adds TensorFlow's CUDA libraries (requirements-gpu.txt) for training on an NVIDIA GPU; the CPU install is the same.
GPU ?= 0
setup: $(VENV)/.installed $(if $(filter 1,$(GPU)),$(VENV)/.installed-gpu)

$(VENV)/.installed: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is needed, found {sys.version.split()[0]}: set PYTHON=/path/to/python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@# Let Jupyter open notebooks/*.py as notebooks (jupytext) on a double click, with this environment's kernel chosen
	@# (jupytext picks the python kernel whose command is this environment's python: install it under an absolute
	@# path) and without the news prompt (it would fetch from the network).
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
	mkdir -p $(VENV)/share/jupyter/lab/settings
	printf '%s\n' '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}},' \
	  ' "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
	  > $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

$(VENV)/.installed-gpu: requirements-gpu.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-gpu.txt
	touch $@

pipeline: setup
	dvc repro

# Test files run in parallel worker processes (pytest-xdist), each file's tests on one worker, in file order.
# PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= 2
test: setup browser
	pytest $(if $(filter 0,$(PYTEST_WORKERS)),-p no:xdist,-n $(PYTEST_WORKERS) --dist loadfile)

# The report test opens the HTML in headless Chromium. Install it from the OS packages when we can (root and
# apt-get); otherwise say so and go on: that test then skips and names the reason.
APT_INSTALL := apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120
BROWSER_PACKAGE ?= chromium
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 \
	|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && echo "installing $(BROWSER_PACKAGE) with apt-get" \
	     && { $(APT_INSTALL) $(BROWSER_PACKAGE) >/dev/null 2>&1 \
	          || { apt-get update -q >/dev/null 2>&1 && $(APT_INSTALL) $(BROWSER_PACKAGE) >/dev/null 2>&1; }; }; } \
	|| echo "note: no Chromium and it could not be installed (needs root, apt-get and a package mirror); the browser test will skip"

# Measure each section (tests/benchmarks/bench_NAME.py -> outputs/bench/NAME.json), then render BENCHMARKS.md from
# every section measured so far. One or a few: `make bench SECTIONS="data pipeline"`. `accuracy`, `ensemble` and
# `data_efficiency` take hours (they keep finished runs and resume): opt-in.
SECTIONS ?= data training pipeline inference
BENCH_ARGS_inference ?= --batch-size 32 --batch-size 256 --batch-size 1000
bench: setup
	@failed=; $(foreach s,$(SECTIONS),echo "== bench $(s)"; python tests/benchmarks/bench_$(s).py $(BENCH_ARGS_$(s)) || failed="$$failed $(s)";) \
	python tests/benchmarks/report.py --expect "$(SECTIONS)"; \
	if [ -n "$$failed" ]; then echo "make bench: failed:$$failed" >&2; exit 1; fi

# The whole test suite's wall time (as `make test` runs it) -> outputs/bench/test_suite.json, then BENCHMARKS.md.
bench-suite: setup browser
	python tests/benchmarks/bench_suite.py --workers 0,$(PYTEST_WORKERS)
	python tests/benchmarks/report.py

# Mutation testing (mutmut) of the modules that decide what runs and what is kept, each module's mutants against
# its own fast tests; results kept in outputs/mutate/ (a rerun tests only what changed), then MUTATION.md.
# Not part of `make test`. One or a few: `make mutate MUTATE_MODULES="params split"`.
MUTATE_MODULES ?=
mutate: setup
	python tests/mutation/mutate.py $(if $(MUTATE_MODULES),--modules $(MUTATE_MODULES))

lab: setup
	jupyter lab notebooks/

# Re-pin requirements.txt from the current environment and mirror the pins into environment.yml.
freeze: setup
	{ sed -n '1,2p' requirements.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^mnist' ; } > requirements.tmp && mv requirements.tmp requirements.txt
	{ sed -n '1,2p' environment.yml; printf 'name: mnist\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n'; grep -v '^#' requirements.txt | sed 's/^/      - /'; } > environment.tmp && mv environment.tmp environment.yml

clean:
	rm -rf $(VENV) .pytest_cache
