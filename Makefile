# The two commands: `make run` (the demo day on the embedded warehouse) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATE ?= $(shell date +%F)

.PHONY: run test test-fast bench lint luigid warehouse-stop clean postgres-binaries

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m tasks check-config
	$(BIN)/python -m tasks warehouse start
	$(BIN)/python -m tasks seed-demo
	$(BIN)/luigi --module tasks RunAll --date $(DATE) --local-scheduler --workers 3

test: $(STAMP) postgres-binaries
	$(BIN)/python -m pytest

# The shared-state tests run a real PostgreSQL server (tasks/state/server.py starts it in a temporary
# folder): Debian's package, installed when its binaries are missing (root, or sudo without a password).
postgres-binaries:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
	  $$SUDO apt-get install -y -q postgresql >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q postgresql >/dev/null; }; }

# the unit tests (no warehouse, no luigi run; the ledger and limiter ones use the test Postgres): the edit-test loop
test-fast: $(STAMP) postgres-binaries
	$(BIN)/python -m pytest -m "not slow" tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m bench

luigid: $(STAMP)
	$(BIN)/python -m tasks luigid

warehouse-stop: $(STAMP)
	$(BIN)/python -m tasks warehouse stop

clean:
	-$(BIN)/python -m tasks warehouse stop
	rm -rf var
