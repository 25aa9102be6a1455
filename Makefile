# Set-up and the two entry points: `make demo` and `make test`.
# On a CPU-only machine torch comes as the local CPU wheel; override with
#   make test TORCH_SPEC='torch>=2.2'      (any pip requirement, e.g. a CUDA build)
PYTHON      ?= python3
VENV        ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_SPEC  ?= torch==$(TORCH_VERSION)
DEMO_OUT    ?= ufm-demo
BIN         := $(VENV)/bin

.PHONY: demo test fuzz install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-run the install when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e . '$(TORCH_SPEC)'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]' '$(TORCH_SPEC)'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/ufm demo --out $(DEMO_OUT)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

# the fuzzed command line, longer than in `make test` (FUZZ_EXAMPLES cases; FUZZ_SEED: other cases)
FUZZ_EXAMPLES ?= 2000
fuzz: $(VENV)/.installed-dev
	UFM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(if $(FUZZ_SEED),UFM_FUZZ_SEED=$(FUZZ_SEED)) \
	  $(BIN)/python -m pytest tests/cli/test_fuzz.py -q --hypothesis-show-statistics

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache build *.egg-info
