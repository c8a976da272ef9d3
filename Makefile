# The commands a newcomer needs; `make dev` runs the gateway, `make test` runs the suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install dev test lint typecheck check bench

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

tests/smsc_node/node_modules: tests/smsc_node/package-lock.json
	cd tests/smsc_node && npm ci --no-audit --no-fund --silent
	touch tests/smsc_node/node_modules

# The docs page test opens /docs in headless Chromium: Debian's package, installed when missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

install: $(STAMP) tests/smsc_node/node_modules $(CHROMIUM)

# Options pass through: make dev ARGS="--port 8081 --smsc-port 2776 --credits 500"
dev: $(STAMP)
	$(VENV)/bin/smsbroker dev $(ARGS)

test: install
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check broker api workers cli bench smsc_sim whatsapp_sim

typecheck: $(STAMP)
	$(VENV)/bin/mypy broker api workers cli bench smsc_sim whatsapp_sim

check: lint typecheck test

bench: $(STAMP)
	$(VENV)/bin/smsbroker bench
