# The two commands: `make run` (the demo day on the embedded warehouse) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATE ?= $(shell date +%F)

.PHONY: run test test-fast bench lint luigid warehouse-stop clean

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

test: $(STAMP)
	$(BIN)/python -m pytest

# the pure unit tests (no warehouse, no luigi run, no subprocess): seconds, for the edit-test loop
test-fast: $(STAMP)
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
