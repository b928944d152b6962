# Two commands do all the set-up on a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv when it is missing and install the package with the CPU torch build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# pytest for `make test`: the derandomized hypothesis profile (tests/conftest.py: the same examples every
# run), no cache, the per-test timeout from pyproject.toml.
PYTEST := HYPOTHESIS_PROFILE=ci $(BIN)/pytest -p no:cacheprovider

.PHONY: demo test test-slow fuzz lint bench bench-quick docs clean

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
	$(BIN)/mypy ufmtheory

# Everything but the slow tests (K = 10^6, long flows: `make test-slow`); the fuzz tests run here with a
# small example budget and in `make fuzz` with a large one.
test: lint
	$(PYTEST) -n 2 -m "not slow" --doctest-modules ufmtheory tests
	$(BIN)/pytest -p no:cacheprovider -n 2 --nbmake notebooks
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d build/site

test-slow: $(STAMP)
	$(PYTEST) -n 2 -m slow tests

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=many $(BIN)/pytest -p no:cacheprovider -n 2 -m fuzz --timeout 600 tests

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_flow.py
	$(BIN)/python benchmarks/bench_reduced.py
	$(BIN)/python benchmarks/bench_baseline.py

# Each benchmark at its smallest setting: proves the scripts run (their numbers mean little); JSON to
# build/bench-quick. Minutes on a busy 2-core machine.
bench-quick: $(STAMP)
	mkdir -p build/bench-quick
	for b in flow reduced baseline convex; do $(BIN)/python benchmarks/bench_$$b.py --quick --out build/bench-quick || exit 1; done

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d build/site

clean:
	rm -rf build runs .pytest_cache .ruff_cache
