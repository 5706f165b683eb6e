# rsdix: the commands a user types. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# torch for this CPU machine (pip takes these from the local wheel cache); on a GPU box
# set TORCH_SPEC to the build that matches your CUDA, e.g. TORCH_SPEC="torch torchvision"; `make setup
# CPU=1`: the CPU-only build (no CUDA libraries, a much smaller download). A new TORCH_SPEC reinstalls torch.
CPU_TORCH = torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= $(if $(filter 1,$(CPU)),$(CPU_TORCH),torch==2.14.1 torchvision==0.29.1)
PROFILE ?= cpu
DATA_ROOT ?= $(if $(RSDIX_DATA_ROOT),$(RSDIX_DATA_ROOT),$(if $(wildcard ../shared/data),$(abspath ../shared/data),$(CURDIR)/data))
export RSDIX_DATA_ROOT := $(DATA_ROOT)
export HF_HUB_DISABLE_TELEMETRY := 1
PYTEST_ARGS ?=

.PHONY: help setup test test-slow test-all reproduce smoke lab bench gpu-check clean wordnet study spice kernel

help:
	@echo "make setup       virtual environment ($(VENV)) with torch and every dependency, rsdix editable, WordNet"
	@echo "make test        the test suite without the slow tests (minutes; real-data tests use DATA_ROOT=$(DATA_ROOT))"
	@echo "make test-slow   the slow tests (multi-process launches, dry-run pieces, the smoke study); CI runs both; make test-all adds the heavy ones"
	@echo "make reproduce   run notebooks 01-06 through papermill (PROFILE=cpu|paper|smoke; DRY_RUN=1: offline stand-ins)"
	@echo "make smoke       make reproduce PROFILE=smoke (minutes; what CI runs)"
	@echo "make lab         JupyterLab at the repository, opening notebooks/ (REMOTE=1 PORT=8888: localhost + SSH tunnel line)"
	@echo "make bench       speed benchmarks, written to figures/bench.{csv,md}"
	@echo "make gpu-check   the paper path on this machine's GPU in minutes (train, kill, resume, check, evaluate, caption); CPU without one"
	@echo "make study       the data-efficiency study, both regimes, into figures/study/ (PROFILE=paper: the GPU design; resumes; docs/study.md)"

setup: $(VENV)/.rsdix-installed wordnet kernel

# the spec torch was installed with, rewritten (as make reads this file) only when TORCH_SPEC changes:
# a new spec, and only a new one, reinstalls
$(shell mkdir -p $(VENV) && (echo '$(TORCH_SPEC)' | cmp -s - $(VENV)/.torch-spec || echo '$(TORCH_SPEC)' > $(VENV)/.torch-spec))

$(VENV)/.rsdix-installed: pyproject.toml .ci/constraints.txt $(VENV)/.torch-spec
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -c .ci/constraints.txt -e ".[offline,notebooks,dev]"
	touch $@

# SPICE's Stanford CoreNLP jars (~400 MB, needs internet once): captioning then reports SPICE
spice: $(VENV)/.rsdix-installed
	$(VENV)/bin/rsdix spice install

# the notebooks' kernel, `rsdix` (their kernelspec names it): this venv's python, for Lab and papermill
kernel: $(VENV)/share/jupyter/kernels/rsdix/kernel.json
$(VENV)/share/jupyter/kernels/rsdix/kernel.json: $(VENV)/.rsdix-installed
	$(PY) -m ipykernel install --sys-prefix --name rsdix --display-name "Python (rsdix)" >/dev/null

wordnet: $(VENV)/.rsdix-installed
	@if [ ! -f /usr/share/wordnet/data.noun ] && [ ! -f /usr/share/wordnet/dict/data.noun ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q wordnet-base wordnet-sense-index >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q wordnet-base wordnet-sense-index >/dev/null)); \
	  else echo "WordNet missing: run 'sudo apt-get install wordnet-base wordnet-sense-index' (needed by notebook 06)"; fi; \
	fi
	-$(VENV)/bin/rsdix wordnet install

test: $(VENV)/.rsdix-installed
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(VENV)/.rsdix-installed
	$(PY) -m pytest -m "slow and not heavy" $(PYTEST_ARGS)

test-all: $(VENV)/.rsdix-installed
	$(PY) -m pytest $(PYTEST_ARGS)

reproduce: $(VENV)/.rsdix-installed
	$(VENV)/bin/rsdix reproduce --profile $(PROFILE) --data-root "$(DATA_ROOT)" $(if $(filter 1,$(DRY_RUN)),--dry-run)

smoke:
	$(MAKE) reproduce PROFILE=smoke

# JupyterLab rooted at the repository (README, docs and figures browsable), opening notebooks/; as root
# (containers, GPU boxes) with --allow-root. `make lab REMOTE=1 [PORT=8888]`: no browser, still on
# localhost only, and the SSH tunnel command to run on your own machine is printed
PORT ?= 8888
LAB_ARGS = --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks --ip=127.0.0.1 --port=$(PORT) \
	$(if $(filter 0,$(shell id -u)),--allow-root) $(if $(REMOTE),--no-browser)
lab: $(VENV)/.rsdix-installed kernel
	$(if $(REMOTE),@echo "on your machine: ssh -N -L $(PORT):localhost:$(PORT) $$(whoami)@$$(hostname -f 2>/dev/null || hostname)  then open the http://localhost:$(PORT)/lab?token=... line below")
	$(PY) -m jupyter lab $(LAB_ARGS)

# the cpu profile runs both regimes into figures/study (scratch: efficiency/cpu.yaml, pretrained teacher:
# efficiency/cpu_pretrained.yaml); other profiles run their own file
STUDY_PROFILES = $(if $(filter cpu,$(PROFILE)),cpu cpu_pretrained,$(PROFILE))
study: $(VENV)/.rsdix-installed
	for p in $(STUDY_PROFILES); do $(VENV)/bin/rsdix study efficiency --profile $$p --data-root "$(DATA_ROOT)" || exit 1; done

bench: $(VENV)/.rsdix-installed
	$(VENV)/bin/rsdix bench --out figures/bench

# docs/paper.md: before a long GPU run; on a machine without CUDA the same steps at CPU sizes (CI)
gpu-check: $(VENV)/.rsdix-installed
	$(PY) -m rsdix.benchmarks.gpu_check

clean:
	rm -rf runs/smoke runs/paper-dry runs/gpu-check .pytest_cache
