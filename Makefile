# The two commands of the README (`make demo`, `make test`) do all the set-up
# on a fresh machine: a virtual environment in .venv with labshelf installed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := notebooks
# Next to the notebooks: they open it as `demo.shelf` (binder/postBuild builds it there too).
DEMO_SHELF ?= $(NOTEBOOKS)/demo.shelf
DEMO_RUNS ?= 200
CHROMIUM ?= /usr/bin/chromium

# JupyterLab for `make demo`: on 127.0.0.1 only; as root it must be told that is fine;
# without a display no browser is opened (a text browser could take over the terminal).
LAB_IP ?= 127.0.0.1
LAB_ARGS ?=
# The demo's JupyterLab settings and workspace, apart from the user's own: copied fresh from
# labextension/demo-settings (no news toast; the Shelves panel opens the demo shelf at start).
DEMO_LAB := .demo-lab
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--ServerApp.allow_root=True)
NO_DISPLAY_ARGS := $(if $(or $(DISPLAY),$(WAYLAND_DISPLAY),$(filter Darwin,$(shell uname -s))),,--no-browser)

# The Shelves panel (a prebuilt JupyterLab extension): TypeScript in labextension/, built with
# JupyterLab's jlpm into src/labshelf/labextension (git-ignored), rebuilt when its sources change.
LABEXT := labextension
LABEXT_BUILT := src/labshelf/labextension/package.json
# The panel bundles the notebook widgets' run table and tree (labextension/src/widgets links to
# their static folder), so a change there rebuilds it too.
LABEXT_SOURCES := $(wildcard $(LABEXT)/src/*.ts $(LABEXT)/style/* $(LABEXT)/schema/*) \
	$(wildcard src/labshelf/widgets/static/*.js src/labshelf/widgets/static/*.css) \
	$(LABEXT)/package.json $(LABEXT)/tsconfig.json $(LABEXT)/install.json
JLPM := $(VENV)/bin/jlpm
NODE_STAMP := $(LABEXT)/node_modules/.yarn-state.yml
LAB_EXTENSIONS := $(VENV)/share/jupyter/labextensions

.PHONY: demo demo-shelf test bench lint typecheck chromium clean venv labextension

venv: $(STAMP)

labextension: $(LABEXT_BUILT)

# Reinstalls only when pyproject.toml changes.  The editable install copies the built panel into
# the venv; a link to the build output replaces that copy, so a rebuild needs no reinstall.
$(STAMP): pyproject.toml | $(LABEXT_BUILT)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -rf $(LAB_EXTENSIONS)/labshelf && mkdir -p $(LAB_EXTENSIONS)
	ln -s $(CURDIR)/src/labshelf/labextension $(LAB_EXTENSIONS)/labshelf
	@touch $@

# jlpm comes with JupyterLab: the first build installs it alone, before labshelf itself.
$(JLPM):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet 'jupyterlab>=4.1'

$(NODE_STAMP): $(LABEXT)/package.json $(LABEXT)/yarn.lock | $(JLPM)
	cd $(LABEXT) && ../$(JLPM) install --immutable
	@touch $@

$(LABEXT_BUILT): $(LABEXT_SOURCES) $(NODE_STAMP)
	cd $(LABEXT) && PATH=$(CURDIR)/$(VENV)/bin:$$PATH ../$(JLPM) build
	@touch $@

demo-shelf: $(STAMP) $(LABEXT_BUILT)
	$(VENV)/bin/labshelf demo $(DEMO_SHELF) --runs $(DEMO_RUNS) --overwrite

# The server's landing page is the quickstart, so the URL it prints opens it; the Shelves panel
# opens the demo shelf beside it (openShelves in labextension/demo-settings).
demo: demo-shelf
	rm -rf $(DEMO_LAB) && mkdir -p $(DEMO_LAB) && cp -R $(LABEXT)/demo-settings $(DEMO_LAB)/user-settings
	@echo "Starting JupyterLab on $(NOTEBOOKS)/quickstart.ipynb: open the .../lab/tree/quickstart.ipynb?token=... URL printed below; Ctrl-C twice stops it."
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(NOTEBOOKS) --LabApp.default_url=/lab/tree/quickstart.ipynb \
		--LabApp.user_settings_dir=$(DEMO_LAB)/user-settings --LabApp.workspaces_dir=$(DEMO_LAB)/workspaces \
		--ServerApp.ip=$(LAB_IP) $(ROOT_ARGS) $(NO_DISPLAY_ARGS) $(LAB_ARGS)

# The browser tests run in a pytest process of their own: Playwright's sync API
# keeps an event loop marked running (and greenlets) on the main thread for the
# whole session, which other tests' asyncio and ast use must not meet.
test: $(STAMP) $(LABEXT_BUILT) lint typecheck chromium
	$(PY) -m pytest --ignore=tests/browser $(PYTEST_ARGS)
	$(PY) -m pytest tests/browser $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium (never `playwright install`: it cannot download here).
# Installed when missing and we are root; otherwise tests/browser skips with a message (fails under CI=true).
chromium:
	@if [ -x $(CHROMIUM) ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium with apt-get for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
			|| echo "could not install chromium: the browser tests will be skipped (a failure under CI=true)"; \
	else \
		echo "no $(CHROMIUM) and not root: the browser tests will be skipped (apt-get install chromium to run them)"; \
	fi

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(LABEXT)/lib $(LABEXT)/tsconfig.tsbuildinfo src/labshelf/labextension $(DEMO_SHELF) demo.shelf $(DEMO_LAB) .pytest_cache .mypy_cache .ruff_cache tests/artifacts
