# Xinyong: `make run` to try it, `make test` to test it, `make check` before pushing.
# Without DATABASE_URL / REDIS_URL, scripts/stack.py starts embedded PostgreSQL and Redis in var/.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(PY) scripts/stack.py
# Re-install only when a requirements file changes.
STAMP := $(VENV)/.installed
# Extra pytest arguments, e.g. `make test ARGS="-k search -x"`.
ARGS ?=

.PHONY: venv run test lint typecheck migrations-check demo bench check services stop

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

run: venv
	$(STACK) run

test: venv
	$(STACK) test $(ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# django-stubs imports the settings, which need a secret unless DEBUG is on.
typecheck: venv
	DJANGO_DEBUG=1 $(VENV)/bin/mypy portal lists agencies scripts

migrations-check: venv
	$(STACK) exec $(PY) manage.py makemigrations --check --dry-run

demo: venv
	$(STACK) demo

# Runs every benchmark on databases of its own beside the stack's (see bench/run_all.py); results go
# to docs/benchmarks.md. `make bench ARGS="--subjects 100000 --rows 100000"` for a quick run.
bench: venv
	$(STACK) exec $(PY) bench/run_all.py $(ARGS)

check: lint typecheck migrations-check test

# Hold the embedded servers open (prints their URLs) so that repeated test runs skip start-up.
services: venv
	$(STACK) services

# Stop embedded servers left running (e.g. after `make services`, or a crash).
stop: venv
	$(STACK) stop
