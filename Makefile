# The two commands of the README: `make run` and `make test`. Each creates the virtual
# environment and installs the project first when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: run test install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(OFFLINE) $(PY) main.py $(ARGS)

test: $(STAMP)
	$(OFFLINE) $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var
