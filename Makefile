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

.PHONY: book test env lab lint clean check-cpu

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
# book/_ext/build_book.py is `jupyter-book build` with the pages read (and their notebooks
# executed) by one process per CPU; BOOK_JOBS=1 builds them one after the other.
BOOK_JOBS ?=
BUILD_BOOK = env -u MPLBACKEND $(BIN)/python book/_ext/build_book.py $(if $(BOOK_JOBS),--jobs $(BOOK_JOBS)) -W -n --keep-going --all .

book: $(STAMP)
	$(BUILD_BOOK)
	@echo "The book is built: open $(CURDIR)/_build/html/index.html in a browser."

# The kernel set a stage computes with: torch picks its float kernels per CPU and so does MKL, so
# the same seed gives different float32 results on different machines. KERNELS prints the set.
KERNELS = $(BIN)/python -c "from bnguide import kernels; print('kernel set:', kernels.describe())"
# The second execution of the notebooks simulates another CPU: torch's portable kernels and MKL's
# compatible code path, neither of which any real CPU uses by default.
OTHER_KERNELS := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE
# Its experiment cache starts empty, so every experiment is recomputed under those kernels.
SECOND_CACHE := $(CURDIR)/_build/.bnguide-cache-other-kernels

# Each stage prints how long it took and which kernel set it ran with. The book build executes
# every notebook under the CPU's own kernels; pytest then runs the unit tests and executes every
# notebook again (nbval) under OTHER_KERNELS with an empty experiment cache, so every claim must
# hold under both; tests/test_website.py opens every page of the fresh _build/html in headless
# Chromium (screenshots in artifacts/screenshots/).
# pytest runs the test modules and notebooks in one worker process per CPU (pytest-xdist); each
# module or notebook stays whole on one worker (--dist loadscope: a notebook's cells run in
# order, in one kernel), and a result two notebooks need is computed once (bnguide.cache).
# TEST_JOBS=0 runs everything in this process.
TEST_JOBS ?= auto
PARALLEL_TESTS = $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadscope)

define timed
	@t0=$$(date +%s); $(2); rc=$$?; echo "==> stage '$(1)' took $$(( $$(date +%s) - t0 )) s"; exit $$rc
endef

test: $(STAMP)
	$(call timed,lint,$(BIN)/ruff check bnguide tests)
	@$(KERNELS)
	$(call timed,book build,$(BUILD_BOOK))
	rm -rf $(SECOND_CACHE)
	@env $(OTHER_KERNELS) $(KERNELS)
	$(call timed,pytest (unit tests + notebooks; other kernels),env $(OTHER_KERNELS) BNGUIDE_CACHE=$(SECOND_CACHE) $(BIN)/python -m pytest -q --durations=25 $(PARALLEL_TESTS))

# Run notebooks under a chosen kernel set with a private, empty experiment cache:
#   make check-cpu NB=book/why/ics.ipynb CPU=avx2        (CPU: default, avx2 or avx512)
#   make check-cpu CPU=default MKL=COMPATIBLE            (every notebook; MKL= sets MKL_CBWR)
# torch silently falls back to a lower capability when the CPU lacks one: the printed kernel set
# is what ran.
NB ?= book
CPU ?= default
MKL ?=
check-cpu: $(STAMP)
	@cache=$$(mktemp -d); \
	export ATEN_CPU_CAPABILITY=$(CPU) BNGUIDE_CACHE=$$cache; \
	if [ -n "$(MKL)" ]; then export MKL_CBWR=$(MKL); fi; \
	$(KERNELS); t0=$$(date +%s); \
	env -u MPLBACKEND $(BIN)/python -m pytest -q $(NB); rc=$$?; \
	echo "==> check-cpu $(NB) under CPU=$(CPU) MKL=$(MKL) took $$(( $$(date +%s) - t0 )) s"; \
	rm -rf $$cache; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check bnguide tests

clean:
	rm -rf _build
