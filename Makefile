# The two commands of the README:  `make run`  and  `make test`.
# Both create .venv on first use (torch pinned by constraints.txt to the local
# CPU build; elsewhere drop -c constraints.txt or pin your own torch).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-0.1
DATA ?=
OUT ?=
ARGS ?=

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

.PHONY: install run test
install: $(STAMP)

## Train + evaluate the default recipe (synthetic data unless DATA=...), print metrics with CIs, write report.html.
run: $(STAMP)
	$(VENV)/bin/scintix run --report $(if $(DATA),--data $(DATA)) $(if $(OUT),--out $(OUT)) $(ARGS)

## The test suite (fast, CPU; real-data tests skip when ../shared/data is absent), one pytest-xdist worker per core.
test: $(STAMP)
	$(PY) -m pytest -n auto --dist worksteal
