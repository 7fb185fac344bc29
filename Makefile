# The README's contract: `make reproduce` and `make test` each work alone on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/

.PHONY: setup reproduce test docs bench lint clean

# Re-installs only when pyproject.toml is newer than the last install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

reproduce: setup
	$(BIN)/python -m hjepa_jax.experiments.run all --quick --out $(OUT)
	$(BIN)/python -m hjepa_jax.experiments.run planning_two_rooms --preset hjepa_three_rooms --out $(OUT)hjepa_three_rooms --ckpt-dir $(OUT)ckpt/hjepa_three_rooms
	$(BIN)/python -m hjepa_jax.experiments.run planning_two_rooms --preset hjepa_search_three_rooms --out $(OUT)hjepa_search_three_rooms --ckpt-dir $(OUT)ckpt/hjepa_three_rooms

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The API reference from the docstrings (pdoc): docs/api/index.html. Not committed.
docs: setup
	$(BIN)/python docs/build_api.py docs/api

bench: setup
	$(BIN)/python -m benchmarks.latent --out $(OUT)bench/
	$(BIN)/python -m benchmarks.scaling --out $(OUT)bench/
	$(BIN)/python -m benchmarks.sampling --out $(OUT)bench/
	$(BIN)/python -m benchmarks.jepa --out $(OUT)bench/
	$(BIN)/python -m benchmarks.planning --out $(OUT)bench/

lint: setup
	$(BIN)/ruff check hjepa_jax benchmarks tests docs
	$(BIN)/ruff format --check hjepa_jax benchmarks tests docs

clean:
	rm -rf $(OUT) .pytest_cache build dist docs/api
