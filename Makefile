# Every target bootstraps the project's virtual environment (.venv) first, so on a fresh clone
# `make test` or `make dev` is one command.  `make setup` is quick when nothing changed: the
# install is redone only when pyproject.toml is newer than the stamp it leaves behind.
PYTHON ?= $(shell command -v python3 || command -v python)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.wordloom-installed
ENV_FILE ?= .env.dev

.PHONY: setup dev test test-fast bench services services-stop migrate lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(VPY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

dev: setup
	$(VENV)/bin/honcho start -f Procfile.dev

test: setup
	$(VPY) -m pytest -q tests

test-fast: setup
	$(VPY) -m pytest -q tests/unit

bench: setup
	$(VPY) backend/scripts/cli.py bench $(if $(QUICK),--quick,)

services: setup
	$(VPY) backend/scripts/cli.py dev services --env-file $(ENV_FILE) --background

services-stop: setup
	$(VPY) backend/scripts/cli.py dev services --env-file $(ENV_FILE) --stop

migrate: setup
	$(VPY) backend/scripts/cli.py dev migrate --env-file $(ENV_FILE)

lint: setup
	$(VENV)/bin/lint-imports --config backend/scripts/importlinter.toml --no-cache

clean:
	rm -rf var/
