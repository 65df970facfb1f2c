# Two commands do all the set-up on a fresh machine:
#   make bench   calibrate the generator against wrk, run every scenario, write results and charts
#   make test    run the test suite
# Both create .venv, install the pinned dependencies and, where the machine allows it,
# the system packages the harness uses (wrk, curl, mosquitto).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
SYSTEM_PACKAGES := $(VENV)/.system-packages
SCENARIOS ?= scenarios/*.toml

.PHONY: bench test setup quick calibrate lint format clean

bench: setup
	$(BIN)/bench calibrate
	$(BIN)/bench run $(SCENARIOS)

test: setup
	$(BIN)/pytest

quick: setup
	$(BIN)/bench run --quick $(SCENARIOS)

calibrate: setup
	$(BIN)/bench calibrate

setup: $(SYSTEM_PACKAGES) $(INSTALLED)

$(SYSTEM_PACKAGES): scripts/install-system-packages.sh
	@mkdir -p $(VENV)
	sh scripts/install-system-packages.sh
	@touch $@

$(BIN)/python: $(SYSTEM_PACKAGES)
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
