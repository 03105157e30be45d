# Two commands for a new machine:  `make run` (the demo: a week of rollout in a minute, no
# Slack account or Prometheus needed) and `make test` (installs what the tests need, then
# runs every check). `make serve` runs the real bot with the example config.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := prometheus prometheus-alertmanager chromium
CONFIG ?= examples/genesis-phase4.yml

.PHONY: run serve test lint unit bench system-packages clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/rollout-bot demo

serve: $(STAMP)
	$(VENV)/bin/rollout-bot serve --config $(CONFIG)

# Debian packages for the integration tests: a real Prometheus and a real Alertmanager;
# Chromium for the dashboard's browser test.
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check bot commands storage tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit -q

test: system-packages $(STAMP) lint
	$(VENV)/bin/pytest -q

bench: system-packages $(STAMP)
	$(VENV)/bin/pytest tests/bench -m bench -q -s

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
