# napari-gerbil — two commands on a fresh machine:
#   make demo   set up, simulate a session, localize its calls, open the review window
#   make test   set up, lint and type-check, then run the whole test suite (napari under Xvfb)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU build of torch is installed first, so the range in pyproject.toml is already
# satisfied and pip does not pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: setup demo test lint benchmark benchmark-full demo-model clean

$(STAMP): pyproject.toml napari.yaml
	bash scripts/install_system_deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	bash scripts/with_display.sh $(BIN)/napari-gerbil demo --screenshot demo_screenshot.png

test: setup
	$(BIN)/ruff check src tests scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy

benchmark: setup
	$(BIN)/napari-gerbil benchmark --quick --out benchmark_out/quick

benchmark-full: setup
	$(BIN)/napari-gerbil benchmark --full --out benchmark_out/full

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
