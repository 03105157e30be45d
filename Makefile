# Two commands for a new machine:  `make run` (the demo: a week of rollout in a minute, no
# Slack account or Prometheus needed) and `make test` (installs what the tests need, then
# runs every check). `make serve` runs the real bot with the example config.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := prometheus prometheus-alertmanager chromium wrk
CONFIG ?= bot/examples/genesis-phase4.yml

.PHONY: run serve test lint unit bench chaos system-packages clean

# Python 3.11 or newer, with ensurepip for `-m venv`: Debian leaves it out of python3 and
# ships it as python3-venv, installed here when missing (as root or through sudo).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "rollout-bot needs Python 3.11 or newer; $(PYTHON) is" \
			"$$($(PYTHON) --version 2>/dev/null || echo 'not installed')." \
			"Install a newer one, or name it: make run PYTHON=python3.12" >&2; \
		exit 1; }
	@if ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
		if ! command -v apt-get >/dev/null; then \
			echo "$(PYTHON) -m venv needs ensurepip: install your system's package for" \
				"Python venvs, then run make again" >&2; \
			exit 1; \
		fi; \
		echo "installing Debian package: python3-venv ($(PYTHON) -m venv needs ensurepip)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
			python3-venv >/dev/null; \
		$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
			echo "$(PYTHON) still has no ensurepip after installing python3-venv; is it" \
				"Debian's python3? Install its venv package, or name another:" \
				"make run PYTHON=python3.12" >&2; \
			exit 1; }; \
	fi
	$(PYTHON) -m venv $(VENV)
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

# Every benchmark, then docs/PERFORMANCE.md from this run's figures alone: written even
# when a benchmark fails (its section then says not measured), and make still fails.
bench: system-packages $(STAMP)
	rm -rf test-artifacts/bench
	$(VENV)/bin/pytest tests/bench -m bench -q -s; status=$$?; \
		$(PY) -m tests.bench.report && exit $$status

# The fault tests at their full counts (every run of `make test` has them at small
# counts), each printing its figures.
chaos: system-packages $(STAMP)
	CHAOS_SCALE=full $(VENV)/bin/pytest tests/chaos -q -s

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
