# Firetower: the two commands that matter are `make demo` and `make test`.
# Neither touches a service of the machine (its PostgreSQL, Mosquitto, ...): both use a
# private PostgreSQL cluster in var/postgresql (`firetower localdb`) and brokers of their own
# on free ports, unless FIRETOWER_DATABASE_URL / FIRETOWER_MQTT_URL (demo) or
# FIRETOWER_TEST_ADMIN_URL (tests) point at the user's own servers.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The demo and the tests are development: the public development key and the printed demo
# passwords are accepted only there (firetower/settings.py). Production sets its own.
export FIRETOWER_ENV ?= development

.PHONY: setup localdb demo test test-fast chromium fonts bench lint clean

## Install system packages (Debian) and the Python environment; safe to re-run.
## Installs programs only: no service is started, stopped or configured. The console's map
## library (Leaflet) and chart library (Chart.js) come from the npm registry into node_modules
## (package-lock.json).
setup: $(BIN)/firetower fonts
	@command -v mosquitto >/dev/null || (apt-get update -q && apt-get install -y -q --no-install-recommends mosquitto mosquitto-clients)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q postgresql)
	@command -v npm >/dev/null || (apt-get update -q && apt-get install -y -q --no-install-recommends npm)
	@test -f node_modules/leaflet/dist/leaflet.js -a -f node_modules/chart.js/dist/chart.umd.min.js \
	  || npm ci --no-audit --no-fund --loglevel=error

$(BIN)/firetower: pyproject.toml
	@command -v $(PY) >/dev/null || (echo "need $(PY)"; exit 1)
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

## The private PostgreSQL cluster (initdb in var/postgresql the first time, a free port on
## 127.0.0.1, deploy/postgresql/firetower.conf applied); idempotent. Skipped when the user
## points the demo or the tests at their own server.
localdb: setup
	@if [ -z "$$FIRETOWER_DATABASE_URL$$FIRETOWER_TEST_ADMIN_URL" ]; then $(BIN)/firetower localdb start; \
	  else echo "PostgreSQL: the user's own ($${FIRETOWER_DATABASE_URL:-$$FIRETOWER_TEST_ADMIN_URL})"; fi

## Headless Chromium for the browser tests only (Debian's package, no recommends).
chromium:
	@test -x /usr/bin/chromium || (apt-get update -q && apt-get install -y -q --no-install-recommends chromium)

## The CJK TrueType font of the monthly briefings' PDF and charts (assessment/briefing_pdf.py;
## FIRETOWER_BRIEFING_FONT names another): Debian's package, no recommends.
BRIEFING_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
fonts:
	@test -f $(BRIEFING_FONT) || (apt-get update -q && apt-get install -y -q --no-install-recommends fonts-wqy-microhei)

## Install, migrate and run the whole centre with a simulated fleet on this machine:
## its own broker on a free port, the private PostgreSQL, the API on :8000 (or a free port).
demo: setup localdb
	$(BIN)/firetower run

## Run the whole test suite: the tests start their own Mosquitto brokers on free ports and use
## throwaway databases on the private PostgreSQL (or on FIRETOWER_TEST_ADMIN_URL's server).
## With coverage of the project's packages: below the floor ([tool.coverage.report] fail_under
## in pyproject.toml) the run fails even when every test passes.
test: setup localdb chromium fonts
	@echo "tests: Mosquitto brokers of their own on free ports of 127.0.0.1"
	$(BIN)/pytest --cov

test-fast: setup
	$(BIN)/pytest -m "not integration and not browser"

bench: setup localdb
	FIRETOWER_DATABASE_URL=$${FIRETOWER_DATABASE_URL:-$$($(BIN)/firetower localdb url)} $(BIN)/firetower bench ingest

## The house rules, as .ci/run checks them before the tests (README "House rules"): the import
## contracts ([tool.importlinter] in pyproject.toml), ruff, and mypy (strict for the kernel, no
## error beyond .ci/mypy-baseline.txt elsewhere). Needs only the Python environment.
lint: $(BIN)/firetower
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/python .ci/mypy_baseline.py

## Stops the private PostgreSQL before removing var/ (nothing else of the machine).
clean:
	-@test -x $(BIN)/firetower && $(BIN)/firetower localdb stop
	rm -rf $(VENV) var node_modules .pytest_cache .hypothesis
