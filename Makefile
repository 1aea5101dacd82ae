# Two entry points: `make demo` (set up, then segment the bundled real CT) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The engine accepts torch>=2.3; this pin takes the CPU wheel that ships with the build machines.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test bench clean

$(BIN)/.dccseg-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

setup: $(BIN)/.dccseg-installed

demo: setup
	$(BIN)/dccseg demo --output demo-output

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m dccseg.bench --output bench-output

clean:
	rm -rf $(VENV) demo-output bench-output
