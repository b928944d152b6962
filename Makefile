# Two commands do all the set-up on a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv when it is missing and install the package with the CPU torch build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ufm demo --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check ufmtheory tests benchmarks
	$(BIN)/ruff format --check ufmtheory tests benchmarks
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -n 2 -m "not slow" --doctest-modules ufmtheory tests
	$(BIN)/pytest --nbmake notebooks
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d build/site

test-slow: $(STAMP)
	$(BIN)/pytest -n 2 -m slow tests

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_flow.py
	$(BIN)/python benchmarks/bench_reduced.py
	$(BIN)/python benchmarks/bench_baseline.py

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d build/site

clean:
	rm -rf build runs .pytest_cache .ruff_cache
