# The two commands of the README: `make run` and `make test`. Each creates the virtual
# environment and installs the project first when needed. `make test` runs `make lint` first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: run test lint install clean

# Every check runs even after one fails, so one CI log lists all of them.
LINT_STEPS := "ruff check ." "ruff format --check ." "lint-imports" "mypy"

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(OFFLINE) $(PY) main.py $(ARGS)

# lint-imports imports nothing but needs the packages findable: the editable install does it.
lint: $(STAMP)
	@failed=""; \
	for step in $(LINT_STEPS); do \
		echo "lint: $$step"; \
		$(BIN)/$$step || failed="$$failed  $(BIN)/$$step\n"; \
	done; \
	if [ -n "$$failed" ]; then \
		printf "\nmake lint FAILED (their output is above; 'ruff check --fix' and 'ruff format FILE'\nfix most of ruff's findings):\n$$failed" >&2; \
		exit 1; \
	fi; \
	echo "lint: all checks passed"

test: lint
	$(OFFLINE) $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var
