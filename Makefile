# The two commands of the README:
#   make book   create .venv if needed, install bnguide with the book extras, build _build/html
#   make test   the same environment plus test extras, then every test and every notebook
# TORCH_SPEC chooses the PyTorch to install first (the default is the CPU build on this machine;
# e.g. TORCH_SPEC="torch" on a machine where a CUDA build is wanted).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.bnguide-installed

.PHONY: book test env lab lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[book,test]"
	touch $(STAMP)

env: $(STAMP)

# JupyterLab on the book's notebooks (or one: make lab NOTEBOOK=book/data.ipynb), with this
# environment's Python as the kernel: the kernelspec written into .venv comes first on
# JUPYTER_PATH, ahead of any "python3" kernel installed for the user. As root (a container),
# JupyterLab needs --allow-root.
NOTEBOOK ?= book
lab: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (bnguide)" >/dev/null
	JUPYTER_PATH="$(abspath $(VENV))/share/jupyter$${JUPYTER_PATH:+:$$JUPYTER_PATH}" \
	  env -u MPLBACKEND $(BIN)/jupyter lab $(NOTEBOOK) $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

# MPLBACKEND is unset for the build: a non-inline backend such as Agg, inherited by the notebook
# kernels, would leave every figure off the site.
BUILD_BOOK := env -u MPLBACKEND $(BIN)/jupyter-book build -W -n --keep-going --all .

book: $(STAMP)
	$(BUILD_BOOK)
	@echo "The book is built: open $(CURDIR)/_build/html/index.html in a browser."

# Each stage prints how long it took. The book build runs first: it fills the experiment cache,
# so nbval's second execution of every notebook computes no experiment again, and pytest's
# tests/test_website.py then opens every page of the fresh _build/html in headless Chromium
# (screenshots in artifacts/screenshots/).
define timed
	@t0=$$(date +%s); $(2); rc=$$?; echo "==> stage '$(1)' took $$(( $$(date +%s) - t0 )) s"; exit $$rc
endef

test: $(STAMP)
	$(call timed,lint,$(BIN)/ruff check bnguide tests)
	$(call timed,book build,$(BUILD_BOOK))
	$(call timed,pytest (unit tests + notebooks),$(BIN)/python -m pytest -q)

lint: $(STAMP)
	$(BIN)/ruff check bnguide tests

clean:
	rm -rf _build
