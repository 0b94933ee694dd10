# Firetower: the two commands that matter are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PG_VERSION := $(shell ls /etc/postgresql 2>/dev/null | sort -n | tail -1)

.PHONY: setup services demo test test-fast bench lint clean

## Install system packages (Debian) and the Python environment; safe to re-run.
setup: $(BIN)/firetower
	@command -v mosquitto >/dev/null || (apt-get update -q && apt-get install -y -q mosquitto mosquitto-clients)
	@command -v psql >/dev/null || (apt-get update -q && apt-get install -y -q postgresql)
	@test -x /usr/bin/chromium || (apt-get update -q && apt-get install -y -q chromium) || echo "chromium not installed: browser tests will skip"

$(BIN)/firetower: pyproject.toml
	@command -v $(PY) >/dev/null || (echo "need $(PY)"; exit 1)
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

PG_CONF := /etc/postgresql/$(PG_VERSION)/main/conf.d/80-firetower.conf

## (Re)start the local PostgreSQL if it is not running, with deploy/postgresql/firetower.conf
## (idempotent: restarts only when that file changed).
services:
	@if [ -n "$(PG_VERSION)" ] && ! cmp -s deploy/postgresql/firetower.conf $(PG_CONF); then \
	  install -m 644 deploy/postgresql/firetower.conf $(PG_CONF) && \
	  echo "installed $(PG_CONF); restarting PostgreSQL" && \
	  pg_ctlcluster --skip-systemctl-redirect $(PG_VERSION) main restart; fi
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $(PG_VERSION) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done

## Install, migrate and run the whole centre with a simulated fleet on this machine.
## Replaces a Mosquitto started with Debian's stock configuration on :1883 by one with the
## project's configuration (queue sizing, per-device credentials).
demo: setup services
	@if pgrep -f 'mosquitto -d -c /etc/mosquitto/mosquitto.conf' >/dev/null; then \
	  echo "stopping the stock Mosquitto on :1883 (the centre runs its own with deploy/mosquitto/firetower.conf)"; \
	  pkill -f 'mosquitto -d -c /etc/mosquitto/mosquitto.conf'; sleep 1; fi
	$(BIN)/firetower run

## Run the whole test suite against real Mosquitto brokers (started by the tests) and PostgreSQL.
test: setup services
	$(BIN)/pytest

test-fast: setup
	$(BIN)/pytest -m "not integration and not browser"

bench: setup services
	$(BIN)/firetower bench ingest

lint:
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
