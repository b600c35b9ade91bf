"""A real JupyterLab and a real Chromium for the browser tests.

One server and one browser serve the whole session (starting them costs
~5-10 s; a scenario ~10 s); each test gets a fresh browser context and page,
and a screenshot of it lands in ``tests/artifacts/<test>.png`` (git-ignored)
whether it passed or not.

- The server runs from this interpreter (``sys.executable -m jupyterlab``),
  so the notebooks' default ``python3`` kernel is this venv's Python:
  jupyter_client replaces a kernelspec's bare ``python`` by the server's
  ``sys.executable``.  Every Jupyter and IPython directory is temporary so
  nothing from the user's home leaks in (another ``python3`` kernelspec, a
  workspace, a startup file); ``test_lab_smoke.py`` checks the kernel's Python.
- The server is its own process group and is stopped by ``killpg`` on its
  own pid, which ends its kernels too.
- Chromium is Debian's (``/usr/bin/chromium``, or ``$LABSHELF_CHROMIUM``;
  ``make test`` installs it with apt-get when run as root).  Without it the
  browser tests are skipped with a message, except under ``CI=true``, where
  that is a failure.
- After each test its page is closed and every kernel of the server shut
  down, so finished scenarios do not keep polling on the shared CPUs.

The server root holds ``demo.shelf``, a 30-run demo shelf built once per
session; notebooks are written next to it by :meth:`Lab.open_notebook`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _lab import CHROMIUM, CHROMIUM_ARGS, Lab, LabServer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
DEMO_RUNS = 30


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml belongs to everyone: the marker is registered where it is used.
    config.addinivalue_line("markers", "browser: drives a real JupyterLab in Chromium (tests/browser)")


# -- fixtures -------------------------------------------------------------------------------------


def chromium_or_skip() -> str:
    if Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = (f"browser tests skipped: no Chromium at {CHROMIUM} "
               "(`make test` installs it with apt-get when run as root; or `apt-get install chromium`)")
    if IN_CI:
        pytest.fail(f"CI=true but {message.split(': ', 1)[1]}: the browser tests must run in CI")
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh temporary profile (a --user-data-dir arg is refused).
        chromium = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def demo_shelf_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's root, with a small demo shelf in it (``demo.shelf``, 30 runs)."""
    import labshelf
    import labshelf.demo

    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    with labshelf.create(root / "demo.shelf") as shelf:
        labshelf.demo.build(shelf, runs=DEMO_RUNS)
    return base


@pytest.fixture(scope="session")
def lab_server(chromium_path: str, demo_shelf_root: Path) -> Iterator[LabServer]:
    server = LabServer(demo_shelf_root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lab(lab_server: LabServer, browser: Any) -> Lab:
    return Lab(lab_server, browser)


@pytest.fixture
def page(lab: Lab, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; afterwards its screenshot goes to tests/artifacts/ and its kernels are shut down."""
    pg = lab.new_page()
    try:
        yield pg
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        try:
            pg.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        finally:
            pg.context.close()
            lab.server.shutdown_kernels()

