# `make demo` and `make test` set up .venv themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := plugins/rerank-sql plugins/rerank-language
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo lint check test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned: 2.13.0 has a CPU wheel; an unpinned one pulls gigabytes of CUDA packages.
$(VENV)/.installed: $(BIN)/python pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,integrations]' $(foreach p,$(PLUGINS),$(if $(wildcard $(p)/pyproject.toml),-e $(p)))
	$(BIN)/pip install --quiet -e '.[ray]'  # rerank.ray and --ray: tests/test_ray.py runs them on a local cluster
	touch $@

# LlamaIndex's OpenAI LLM requires openai<3 and rerank openai>=3: it gets a venv of its own, from which
# tests/test_integrations.py calls `rerank serve` as LlamaIndex users would (~300 MB, no torch).
LLAMAINDEX := .venv-llamaindex
$(LLAMAINDEX)/.installed:
	$(PYTHON) -m venv $(LLAMAINDEX)
	$(LLAMAINDEX)/bin/pip install --quiet 'llama-index-llms-openai>=0.8,<0.9'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/rerank score examples/pools.jsonl --format table -q
	$(BIN)/rerank score examples/code.jsonl --format table -q --validator python

# mypy --strict and ruff on rerank/ (both configured in pyproject.toml): they must report nothing.
lint: setup
	$(BIN)/python -m mypy
	$(BIN)/python -m ruff check rerank

# The fast loop: lint, then every test not marked slow (subprocess CLIs, benchmarks, rerank fit, sandbox, Ray).
check: lint
	$(BIN)/python -m pytest -q -m "not slow" tests $(foreach p,$(PLUGINS),$(if $(wildcard $(p)/tests),$(p)/tests))

test: setup $(LLAMAINDEX)/.installed lint
	$(BIN)/python -m pytest -q tests $(foreach p,$(PLUGINS),$(if $(wildcard $(p)/tests),$(p)/tests))

bench: setup
	$(BIN)/python benchmarks/quality.py

clean:
	rm -rf $(VENV) $(LLAMAINDEX)
