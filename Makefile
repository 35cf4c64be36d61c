# The commands: `make run`, `make test` and `make lint`. Each sets itself up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test lint setup setup-dev vendor bytecode bench bench-quick cluster clean notify

# `make run HOST=0.0.0.0 PORT=8080`: the address and port to serve on (default 127.0.0.1:5000).
run: setup
	$(PY) app.py --host $(HOST) --port $(PORT)

# `make notify ARGS='--room ops --title "Backup done"'`: `papo notify` from the virtualenv, to the
# server `make run` serves on the same HOST and PORT (or PAPO_URL); NOTIFY_TOKEN must be the server's.
PAPO_URL ?= http://$(HOST):$(PORT)
notify: setup
	PAPO_URL=$(PAPO_URL) $(VENV)/bin/papo notify $(ARGS)

LINTED := chat bench tests tools app.py

# The browser client's unit tests (node --test, no dependencies) first, then the Python suites.
test: setup-dev
	node --test tests/js/*.test.js
	$(PY) -m pytest

lint: setup-dev
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/mypy $(LINTED)

setup: $(VENV)/.runtime vendor bytecode

setup-dev: setup $(VENV)/.dev

# The pinned dependencies, then the package itself (editable, no dependencies): the `papo` command.
$(VENV)/.runtime: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

vendor: $(VENV)/.runtime
	$(PY) tools/vendor.py

# Papo's modules compiled, as an installed package has them: where PYTHONDONTWRITEBYTECODE is set
# (the test servers set it), every start would compile them again, 0.1 s of CPU (measured).
bytecode: $(VENV)/.runtime
	$(PY) -m compileall -q chat app.py

clean:
	rm -rf $(VENV) static/vendor instance .pytest_cache

# N processes on consecutive ports from 5001 behind nginx on 127.0.0.1:8000, sharing Redis and
# PostgreSQL (REDIS_URL and DATABASE_URL, see docs/scaling.md). Ctrl-C stops them all.
N ?= 3
cluster: setup
	$(PY) tools/cluster.py --processes $(N)

# The benchmark (docs/benchmarks.md, bench/README.md): `make bench` at most 30 minutes, three rounds;
# `make bench-quick` at most 4, one round at small sizes; `make bench-storage` only the storage and
# scale-out suites (about 18 minutes). They start every server themselves on 127.0.0.1, write
# bench/results/*.json, docs/benchmarks.md and docs/img/bench_*.png.
.PHONY: bench-deps bench-storage
bench: setup-dev bench-deps
	$(PY) bench/run.py

bench-quick: setup-dev bench-deps
	$(PY) bench/run.py --quick

bench-storage: setup-dev bench-deps
	$(PY) bench/run.py --only latency-disk,storm,scaling,profile

bench-deps: bench/reference/node_modules/.package-lock.json

bench/%/node_modules/.package-lock.json: bench/%/package-lock.json
	npm ci --prefix bench/$* --no-audit --no-fund
