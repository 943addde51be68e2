# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint throughput bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU build of torch first, so nothing pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0 || $(BIN)/pip install -q torch --index-url https://download.pytorch.org/whl/cpu
	$(BIN)/pip install -q -e ".[dev,sb3,video,sweep]"
	touch $@

demo: $(STAMP)
	SDL_VIDEODRIVER=dummy $(BIN)/gaming-gym demo

test: $(STAMP)
	SDL_VIDEODRIVER=dummy $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

throughput: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py

bench-quick: $(STAMP)
	SDL_VIDEODRIVER=dummy $(BIN)/gaming-gym bench --quick --out bench_out/quick

clean:
	rm -rf $(VENV) demo_out bench_out
