# The two commands: `make run` (the demo day on the embedded warehouse) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# empty: RunAll's own default, the day the schedule is on ([schedule] timezone; tasks.params.default_run_date)
DATE ?=

.PHONY: run test test-fast bench lint lock luigid warehouse-stop clean postgres-binaries browser

# Installs exactly the versions in requirements/lock.txt (every dependency, the embedded warehouse and the
# test tools), then the package itself without resolving again. `make lock` refreshes the lock.
$(STAMP): setup.cfg pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The one command that refreshes the lock: the newest versions inside setup.cfg's ranges, for the package
# with its `embedded` and `test` extras. Commit requirements/lock.txt after it.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --upgrade --no-header --no-emit-index-url --no-emit-find-links \
	  --annotation-style=line --extra embedded --extra test --strip-extras -o requirements/lock.txt setup.cfg

run: $(STAMP)
	$(BIN)/python -m tasks check-config
	$(BIN)/python -m tasks warehouse start
	$(BIN)/python -m tasks seed-demo
	$(BIN)/luigi --module tasks RunAll $(if $(DATE),--date $(DATE)) --local-scheduler --workers 3

test: lint postgres-binaries browser
	$(BIN)/python -m pytest

# The shared-state tests run a real PostgreSQL server (tasks/state/server.py starts it in a temporary
# folder): Debian's package, installed when its binaries are missing (root, or sudo without a password).
postgres-binaries:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
	  $$SUDO apt-get install -y -q postgresql >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q postgresql >/dev/null; }; }

# The unsubscribe page is tested in a real headless Chromium driven by selenium: Debian's chromium and
# chromium-driver, installed when either is missing (root, or sudo without a password).
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
	  $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null; }; }

# the unit tests (no warehouse, no luigi run; the ledger and limiter ones use the test Postgres): the edit-test loop
test-fast: $(STAMP) postgres-binaries
	$(BIN)/python -m pytest -m "not slow" tests/unit

# ruff (ruff.toml) over the repository, mypy (setup.cfg [mypy]) over tasks/
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy tasks

bench: $(STAMP)
	$(BIN)/python -m bench

luigid: $(STAMP)
	$(BIN)/python -m tasks luigid

warehouse-stop: $(STAMP)
	$(BIN)/python -m tasks warehouse stop

clean:
	-$(BIN)/python -m tasks warehouse stop
	rm -rf var
