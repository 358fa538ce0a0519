# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench,email]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m uvicorn examples.notes.app:app --host 127.0.0.1 --port 8000

# jose for the interop suite, pinned by its lockfile.
INTEROP_NODE := tests/interop/node_modules/.package-lock.json
$(INTEROP_NODE): tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund --silent

test: $(STAMP) $(INTEROP_NODE)
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) authbridge.db authbridge.db-wal authbridge.db-shm
