# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint bench docs docs-build screenshots clean node

# `make test` installs everything; `make demo` only what the demo needs.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,test,bench,docs]'
	touch $(STAMP)

# npm packages the tests run (the oidc-provider IdP of the OAuth suite), pinned by lockfile.
NODE_STAMP := tests/oidc/node_modules/.installed
$(NODE_STAMP): tests/oidc/package.json tests/oidc/package-lock.json
	npm ci --prefix tests/oidc --no-audit --no-fund
	touch $(NODE_STAMP)

node: $(NODE_STAMP)

$(DEMO_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(PY) -m uvicorn examples.notes.app:app --host 127.0.0.1 --port 8000

# jose for the interop suite, pinned by its lockfile.
INTEROP_NODE := tests/interop/node_modules/.package-lock.json
$(INTEROP_NODE): tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund --silent

# axe-core for the demo's accessibility check, pinned by its lockfile.
A11Y := tests/a11y/node_modules/.installed
$(A11Y): tests/a11y/package.json tests/a11y/package-lock.json
	npm ci --prefix tests/a11y --ignore-scripts --no-audit --no-fund
	touch $(A11Y)

# ESLint for the browser client (authbridge/static), pinned by its lockfile.
JSLINT := tests/jslint/node_modules/.installed
$(JSLINT): tests/jslint/package.json tests/jslint/package-lock.json
	npm ci --prefix tests/jslint --ignore-scripts --no-audit --no-fund
	touch $(JSLINT)

# Branch coverage of authbridge/ (servers and CLI runs in child processes included), held to
# fail_under in pyproject.toml's [tool.coverage.report]. `coverage run` starts measuring before
# pytest loads its plugins (authbridge.testing imports the package). A subset (a tests/... path
# or -k in PYTEST_ARGS) is measured but not held to the floor; COVERAGE=off does not measure.
# The exit status is pytest's, else the report's (2 when under the floor).
COVERAGE ?= on
SUBSET := $(strip $(filter tests% -k,$(PYTEST_ARGS)))
PYTEST := -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test: $(STAMP) $(INTEROP_NODE) $(A11Y) $(NODE_STAMP)
ifeq ($(COVERAGE),off)
	$(PY) $(PYTEST)
else
	$(PY) -m coverage erase
	$(PY) -m coverage run $(PYTEST); status=$$?; \
	$(PY) -m coverage combine -q; \
	$(PY) -m coverage report $(if $(SUBSET),--fail-under=0); report=$$?; \
	if [ $$status -eq 0 ]; then status=$$report; fi; exit $$status
endif

lint: $(STAMP) $(JSLINT)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict
	npm run --prefix tests/jslint --silent lint

bench: $(STAMP)
	$(PY) -m bench

# The docs site (MkDocs + Material) on http://127.0.0.1:8001, rebuilt as files change.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8001

docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Re-take the demo's screenshots for the docs (Chromium; tests/e2e/test_screenshots.py checks them).
screenshots: $(STAMP)
	$(PY) -m tests.e2e.screenshots

clean:
	rm -rf $(VENV) site tests/a11y/node_modules tests/jslint/node_modules authbridge.db authbridge.db-wal authbridge.db-shm
	rm -rf .coverage-data
