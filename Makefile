# twin — two commands do all the set-up on a fresh machine:
#   make pipeline   run every notebook end to end on the bundled sample with the tiny model
#   make test       run the whole test suite (unit tests + the notebooks via papermill/nbval)
#
# torch is installed here, not by the package, so each machine gets the right build.
# Default: torch==2.13.0 (a local CPU wheel on our CI machines). Elsewhere pick yours, e.g.
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
RUN_DIR    ?= runs/sample
PROFILE    ?= tiny
EXPORT     ?= data/sample
ME         ?= Robin Vale
PYTEST_ARGS ?=
TEST_RUN   := runs/.pytest-pipeline

PY  := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: pipeline test test-unit test-notebooks venv clean-venv lint-notebooks strip-notebooks bench

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -e ".[notebooks,test,bench]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (twin)" >/dev/null
	@touch $@

pipeline: venv
	$(PY) -m twinlib run --export "$(EXPORT)" --me "$(ME)" --profile $(PROFILE) --run-dir $(RUN_DIR) --resume

test: venv
	$(PY) -m pytest $(PYTEST_ARGS) tests
	$(PY) -m pytest -p no:cacheprovider --nbval-lax $(TEST_RUN)/notebooks

strip-notebooks: venv
	$(PY) -m twinlib.nbtools strip notebooks/*.ipynb

bench: venv
	$(PY) bench/parse_bench.py
	$(PY) bench/sft_bench.py
	$(PY) bench/rl_bench.py
	$(PY) bench/serve_bench.py
	$(PY) bench/contention_bench.py

clean-venv:
	rm -rf $(VENV)
