# gradtx: `make demo` races every optimizer; `make test` runs the whole suite.
# Both create .venv on first use and install gradtx with its pinned dependencies.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS := flax,bench,dev,privacy,docs
STAMP := $(VENV)/.gradtx-installed
PYTEST_WORKERS ?= 2

.PHONY: install demo test test-main test-sharding test-notebooks test-docs docs bench lint readme lock clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements/lock.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/lock.txt -e '.[$(EXTRAS)]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m benchmarks.race $(ARGS)

test: test-main test-sharding test-notebooks test-docs

test-main: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not sharding" tests

# Sharding tests need 8 simulated devices, set before jax is imported: their own process.
test-sharding: $(STAMP)
	XLA_FLAGS=--xla_force_host_platform_device_count=8 $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -m sharding tests

# Notebooks run top to bottom, so they never rot.
test-notebooks: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --nbmake notebooks

# The documentation site (docs/_build/html), warnings as errors. Notebooks are rendered, not executed.
SPHINXBUILD := $(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

docs: $(STAMP)
	$(SPHINXBUILD)

# The docs must build in `make test`: a fresh build (-E), so no stale page hides a warning.
test-docs: $(STAMP)
	$(SPHINXBUILD) -E -q

# Every benchmark, then the README's tables. Each prints ratios measured side by side in one run.
# The tuned race (3 seeds, learning rates swept) runs on all three problems after them.
BENCHMARKS := step_overhead step_cost cpu_allocator clip_noise curvature kronecker geometry estimators privacy scaling

bench: $(STAMP)
	@for b in $(BENCHMARKS); do \
	  test -f benchmarks/$$b.py || continue; \
	  echo "== benchmarks/$$b.py"; $(BIN)/python -m benchmarks.$$b || exit 1; \
	done
	$(BIN)/python -m benchmarks.race --full --problem all
	$(BIN)/python -m benchmarks.readme_table --write

lint: $(STAMP)
	$(BIN)/ruff check gradtx tests benchmarks docs
	$(BIN)/mypy  # configured in pyproject.toml [tool.mypy]: gradtx/ only

readme: $(STAMP)
	$(BIN)/python -m benchmarks.readme_table --write  # also docs/scale.md's memory table

lock: $(STAMP)
	{ echo '# Exact versions `make` installs (tested set). Regenerate with `make lock`.'; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -i '^\(pip\|setuptools\|wheel\)=='; } > requirements/lock.txt

clean:
	rm -rf $(VENV) .pytest_cache
