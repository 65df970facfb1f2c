# Two commands do all the set-up on a fresh machine:
#   make bench   calibrate the generator against wrk and h2load, run every scenario, write results and charts
#   make test    run the test suite
# Both create .venv, install the pinned dependencies, generate the gRPC stubs and, where the
# machine allows it, install the system packages the harness uses (wrk, h2load, curl, mosquitto).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
SYSTEM_PACKAGES := $(VENV)/.system-packages
PROTOS := $(wildcard protos/*.proto)
GENERATED := servers/generated/.stamp
SCENARIOS ?= scenarios/*.toml

.PHONY: bench test setup protos quick calibrate publish lint format clean

# A calibration that fails for a pattern says so in its record; the scenarios still run.
bench: setup
	-$(BIN)/bench calibrate --duration 3
	$(BIN)/bench run $(SCENARIOS)

test: setup
	$(BIN)/pytest

quick: setup
	$(BIN)/bench run --quick $(SCENARIOS)

calibrate: setup
	$(BIN)/bench calibrate

# Re-render the committed report in results/published/ from the runs stored there.
# To publish new runs first: .venv/bin/bench publish --latest
publish: setup
	$(BIN)/bench publish

setup: $(SYSTEM_PACKAGES) $(INSTALLED) $(GENERATED)

$(SYSTEM_PACKAGES): scripts/install-system-packages.sh
	@mkdir -p $(VENV)
	sh scripts/install-system-packages.sh
	@touch $@

$(BIN)/python: $(SYSTEM_PACKAGES)
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

# gRPC stubs, generated from protos/ by grpcio-tools: never edited, never committed.
# The virtual proto path makes the generated modules import each other as servers.generated.
protos: $(GENERATED)

$(GENERATED): $(PROTOS) $(INSTALLED)
	@mkdir -p servers/generated
	@echo '"""gRPC stubs generated from protos/ by `make protos`. Do not edit."""' \
		> servers/generated/__init__.py
	$(BIN)/python -m grpc_tools.protoc --proto_path=servers/generated=protos \
		--python_out=. --grpc_python_out=. --pyi_out=. $(PROTOS)
	@touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) servers/generated *.egg-info .pytest_cache .ruff_cache
