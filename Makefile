# Two commands on a fresh machine: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser run test lint bench chaos test-django6 clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || \
		($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q python3-venv)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## The browser tests drive the distribution's chromium through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q chromium)

## make run: web (gunicorn) + worker on SQLite, with example jobs and a printed admin login.
run: install
	$(PY) manage.py relay_run

## make test: lint, migration check, deploy check, then the whole suite on SQLite and on PostgreSQL.
test: install browser lint
	$(PY) -m tests.run

lint: install
	$(VENV)/bin/ruff check .
	DATABASE_URL= $(PY) manage.py makemigrations --check --dry-run
	DATABASE_URL= $(PY) manage.py check
	@echo "check --deploy with production settings (DEBUG=0, a fresh SECRET_KEY):"
	DATABASE_URL= DEBUG=0 RELAY_EXAMPLES=0 ALLOWED_HOSTS=relay.example.com \
		SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))') \
		$(PY) manage.py check --deploy --fail-level WARNING

## make bench: throughput and latency on $DATABASE_URL (PostgreSQL recommended).
bench: install
	$(PY) manage.py relay_bench --jobs 5000 --workers 2 --runs 3

## make chaos: the chaos test at full size (20,000 jobs; make test runs 2,000), both databases.
chaos: install
	RELAY_CHAOS_JOBS=20000 $(PY) -m tests.run tests/acceptance/test_chaos.py -q -s

## make test-django6: the suite on Python 3.12 with the newest Django 6.x
## (PYTHON312=/path/to/python3.12 when it is not on PATH).
PYTHON312 ?= python3.12
test-django6:
	$(PYTHON312) -m venv .venv-django6
	.venv-django6/bin/python -m pip install -q --upgrade pip
	.venv-django6/bin/python -m pip install -q -e '.[test]' 'django>=6,<6.2'
	.venv-django6/bin/python -m tests.run

clean:
	rm -rf $(VENV) .venv-django6 relay.sqlite3* relay-test*.sqlite3* .relay staticfiles
