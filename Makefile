# The book's commands. `make book` and `make test` set up .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NB ?=

.PHONY: venv book test chapter bench clean export check-export audit site-check help

help:
	@echo "make book            export the library and render the website into _docs/"
	@echo "make test            check the library matches the notebooks, run every notebook (quick) and tests/"
	@echo "make chapter NB=...  execute one notebook at full scale and save its outputs"
	@echo "make bench           time the hot paths against their anchors (benchmarks/)"
	@echo "make clean           remove build outputs (keeps .venv and cached results)"

# (Re)install when .venv is missing or pyproject.toml's content changed since the last install
# (nbdev rewrites pyproject.toml in place, so its mtime says nothing).
venv:
	@want=$$(sha256sum pyproject.toml | cut -d' ' -f1); \
	if [ ! -x $(BIN)/python ] || [ "$$(cat $(STAMP) 2>/dev/null)" != "$$want" ]; then \
	  echo "setting up $(VENV) (pip install -e '.[dev]'; a few minutes the first time)"; \
	  test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || exit 1; \
	  $(BIN)/python -m pip install -q --upgrade pip || exit 1; \
	  $(BIN)/python -m pip install -q -e ".[dev]" || exit 1; \
	  echo "$$want" > $(STAMP); \
	fi

export: venv
	$(BIN)/nbdev-export

# The library must be exactly what the notebooks export.
check-export: venv
	@rm -rf .export-before && cp -r physml_book .export-before
	@$(BIN)/nbdev-export
	@if ! diff -r -q -x __pycache__ .export-before physml_book; then \
	  rm -rf .export-before; \
	  echo "physml_book/ did not match the notebooks: it was edited by hand or not re-exported (now re-exported; review and commit)"; \
	  exit 1; fi
	@rm -rf .export-before
	@$(BIN)/python tools/nbrun.py stale-modules
	@echo "physml_book/ matches the notebooks"

audit: venv
	$(BIN)/python tools/nbrun.py audit

book: export
	$(BIN)/python tools/build_site.py --screenshots

site-check: export
	$(BIN)/python tools/build_site.py --require-screenshots

test: check-export audit
	$(BIN)/python -m pytest tests

chapter: export
	@test -n "$(NB)" || { echo "usage: make chapter NB=nbs/<chapter>/<notebook>.ipynb"; exit 2; }
	PHYSML_SCALE=full $(BIN)/python tools/nbrun.py run "$(NB)" --scale full --save
	$(BIN)/nbdev-clean --fname "$(NB)"
	$(BIN)/nbdev-export

bench: export
	@shopt -s nullglob; for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python "$$b" || exit 1; done

clean:
	rm -rf _docs _proc _screenshots .pytest_cache .export-before
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
