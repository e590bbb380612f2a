# Two entry points for a fresh machine (see README.md):
#   make provision  install airig into .venv and provision a local demo box (a systemd
#                   container, air-gapped from a local mirror) with llama.cpp and both agents
#   make test       install what the tests need and run lint + the whole test suite
# Also: make plan (plan the three reference builds), make bench, make lint.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: provision plan test lint unit bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("airig needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-install when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

# The demo box needs docker, the local images and mirror (test tooling: gguf for the test model,
# the ansible package for the docker connection), so it uses the test install.
provision: $(VENV)/.test-installed
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/container-env bookworm
	$(BIN)/python tests/mirror/build.py --serve > /dev/null
	scripts/demo-box up
	$(BIN)/airig provision -i inventories/container/hosts.yml

plan: $(VENV)/.installed
	$(BIN)/airig plan

test: $(VENV)/.test-installed
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/test

lint: $(VENV)/.test-installed
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/test --lint-only

bench: $(VENV)/.test-installed
	$(BIN)/python bench/plan_speed.py
	$(BIN)/python bench/plan_accuracy.py
	$(BIN)/python bench/exporter_scrape.py
	$(BIN)/python bench/burn_sampling.py
	$(BIN)/python bench/platform_scale.py
	$(BIN)/python bench/gateway_meter.py 20000 1000
	scripts/container-env bookworm
	$(BIN)/python bench/converge_speed.py nvidia_driver
	$(BIN)/python bench/converge_speed.py ollama airig-ollama.service
	$(BIN)/python bench/converge_speed.py llama_cpp airig-llama-server@airig-tiny.service
	$(BIN)/python bench/fleet_roll.py
	$(BIN)/python bench/gateway_rolls.py 15
	$(BIN)/python bench/fleet_scale.py
	$(BIN)/python tests/mirror/build.py --serve > /dev/null
	$(BIN)/python bench/bundle.py
	$(BIN)/python tests/mirror/build.py --serve > /dev/null
	$(BIN)/python bench/provision_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build
