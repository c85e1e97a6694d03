# One entry point for everything: `make demo`, `make test`, `make check`.
# Everything installs into .venv; nothing touches the system Python.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MANIFEST ?= retrain.yaml.example
AZURITE := tests/fakes/node_modules/.installed

.PHONY: install install-test demo azure-demo azureml-demo plan test fuzz lint typecheck layers check chaos clean schema

install: $(VENV)/.installed

# What the tests need besides: the Azurite emulator.
install-test: install $(AZURITE)

# The Azurite blob emulator for the Azure tests (npm; pinned in tests/fakes/package-lock.json).
$(AZURITE): tests/fakes/package-lock.json
	npm ci --prefix tests/fakes --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[examples,dev]'
	touch $@

# The main job: apply the example manifest on the embedded local backend.
demo: install
	$(BIN)/retrain apply -f $(MANIFEST) --auto-approve
	@echo
	$(BIN)/retrain status -f $(MANIFEST)
	@echo
	@echo "Next: run '$(BIN)/retrain plan -f $(MANIFEST)' (no changes), then edit a file under"
	@echo "examples/bike_rental/data/ or the manifest and plan again to see what would change and why."

# The Azure example against a local fake of the Azure APIs and Azurite (no Azure account).
azure-demo: install-test
	bash examples/azure/try-with-fake.sh

# The Azure ML v2 example against the fake workspace and Azurite (issue 9).
azureml-demo: install-test
	bash examples/azureml/try-with-fake.sh

plan: install
	$(BIN)/retrain plan -f $(MANIFEST)

test: install-test
	$(BIN)/python -m pytest

# The long fuzzing campaign (10,000 inputs, a few minutes); writes bench/results/fuzz.md.
# `make test` runs a bounded, derandomized part of it (tests/fuzz).
FUZZ_EXAMPLES ?= 10000
FUZZ_SEED ?= 0
fuzz: install
	$(BIN)/python -m bench.fuzz --examples $(FUZZ_EXAMPLES) --seed $(FUZZ_SEED)

lint: install
	$(BIN)/ruff check reconciler tests examples bench
	$(BIN)/ruff format --check reconciler tests examples bench

typecheck: install
	$(BIN)/mypy

layers: install
	$(BIN)/lint-imports

check: lint typecheck layers test

# The published manifest schema: the core part composed with the built-in backends'
# fragments (tests/unit/test_schema.py fails when it is out of date).
schema: install
	$(BIN)/python -m reconciler.providers.schema

# The chaos campaign (issue 7): KILLS signals to `apply` on a generated local fleet, a re-run
# after each; every count must be 0 (else it exits 1). Rewrites the LABEL section of
# bench/results/chaos.md, keeping the others (e.g. LABEL="after the fixes").
KILLS ?= 30
LABEL ?= latest
chaos: install
	$(BIN)/python -m bench.chaos --kills $(KILLS) --label "$(LABEL)"

clean:
	rm -rf .retrain .pytest_cache .mypy_cache .ruff_cache .hypothesis
