"""Driving a real JupyterLab from tests: the server process and notebooks in a Playwright page.

Used by the fixtures of ``conftest.py`` (see its docstring for the choices) and by
``benchmarks/bench_browser.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

#: Debian's Chromium (never `playwright install`: it downloads a browser of its own, which fails here).
CHROMIUM = os.environ.get("LABSHELF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
#: Generous: the machine is shared, and the first start of a server builds its caches.
SERVER_START_TIMEOUT = 90.0
KERNEL_TIMEOUT_MS = 90_000
CELL_TIMEOUT_MS = 60_000
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# -- the server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_settings(settings: Path) -> None:
    """The two user settings without which the page misbehaves in tests (JUPYTER-TESTING.md)."""
    files = {
        # A news toast would otherwise cover the page.
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
        # Windowing would drop cells scrolled out of view from the DOM.
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for name, doc in files.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))


def own_extensions(base: Path) -> dict[str, str]:
    """``JUPYTER_PATH`` and ``JUPYTER_CONFIG_PATH`` that make a server load *this* labshelf's front ends.

    The labshelf imported here may be a source tree (PYTHONPATH, an editable
    install): its built Shelves panel (``src/labshelf/labextension``, made by
    ``make``) and its server extension's config file (``jupyter-config/``)
    are then given to the server first, so a test sees the panel and the
    server of the code under test, whatever the environment's
    ``share/jupyter`` holds.  Installed from a wheel, neither is beside the
    package and the environment's own copies serve.
    """
    import labshelf

    package = Path(labshelf.__file__).resolve().parent
    env: dict[str, str] = {}
    built = package / "labextension"
    if (built / "package.json").exists():
        extensions = base / "jupyter-path" / "labextensions"
        extensions.mkdir(parents=True, exist_ok=True)
        link = extensions / "labshelf"
        if not link.exists():
            link.symlink_to(built, target_is_directory=True)
        env["JUPYTER_PATH"] = str(base / "jupyter-path")
    config = package.parent.parent / "jupyter-config" / "server-config" / "labshelf.json"
    if config.exists():
        enabled = base / "config-path" / "jupyter_server_config.d"
        enabled.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config, enabled / "labshelf.json")
        env["JUPYTER_CONFIG_PATH"] = str(base / "config-path")
    return env


class LabServer:
    """A JupyterLab server process on 127.0.0.1 with temporary directories."""

    def __init__(self, base: Path):
        self.base = base
        self.root = base / "root"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        #: More command-line options for JupyterLab (set before start()).
        self.extra_args: list[str] = []

    def start(self) -> None:
        dirs = {name: self.base / name for name in ("root", "settings", "workspaces", "data", "config", "runtime",
                                                      "ipython")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        write_settings(dirs["settings"])
        env = dict(os.environ)
        env.update(
            JUPYTER_DATA_DIR=str(dirs["data"]),
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            IPYTHONDIR=str(dirs["ipython"]),
            # Kernels (and `!labshelf` in a cell) find this venv's scripts first.
            PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        )
        for name in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "LABSHELF"):
            env.pop(name, None)
        env.update(own_extensions(self.base))
        cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser", *self.extra_args,
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",
            "--PasswordIdentityProvider.hashed_password=",
            "--ServerApp.disable_check_xsrf=True",
            "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={dirs['root']}",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={dirs['settings']}",
            f"--LabApp.workspaces_dir={dirs['workspaces']}",
        ]
        log = self.log_path.open("wb")
        # Its own process group: killpg at the end stops the server and every kernel it started.
        self.proc = subprocess.Popen(cmd, cwd=dirs["root"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with status {self.proc.returncode} while starting:\n"
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer /api/status within {SERVER_START_TIMEOUT:.0f} s:\n"
                           f"{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """End every kernel (a finished scenario's kernel would only eat the shared CPUs)."""
        for kernel in self.api("GET", "/api/kernels"):
            try:
                self.api("DELETE", f"/api/kernels/{kernel['id']}")
            except urllib.error.HTTPError:
                pass  # already gone

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass


# -- notebooks in the page ---------------------------------------------------------------------

_NOTEBOOK_READY = """(path) => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  if (!w || !w.context || w.context.path !== path || !w.sessionContext) return false;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && w.content.widgets.length > 0;
}"""

_RUN_ALL = """() => {
  window.__lsRunAll = null;
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    (ok) => { window.__lsRunAll = {ok: ok}; },
    (err) => { window.__lsRunAll = {error: String(err)}; });
}"""

_RUN_ONE = """(source) => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  const index = nb.model.cells.length;
  nb.model.sharedModel.insertCell(index, {cell_type: 'code', source: source});
  nb.activeCellIndex = index;
  window.__lsRunOne = null;
  window.jupyterapp.commands.execute('notebook:run-cell').then(
    (ok) => { window.__lsRunOne = {ok: ok, index: index}; },
    (err) => { window.__lsRunOne = {error: String(err), index: index}; });
}"""

_OUTPUTS = """() => window.jupyterapp.shell.currentWidget.content.widgets.map(
  (cell) => cell.model.type === 'code' ? cell.model.outputs.toJSON() : [])"""


def notebook_json(cells: list[str]) -> dict[str, Any]:
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {}, "outputs": [],
             "source": source}
            for i, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def error_text(outputs: list[dict[str, Any]]) -> str | None:
    """The first error output of a cell as readable text, or None."""
    for out in outputs:
        if out.get("output_type") == "error":
            trace = "\n".join(ANSI.sub("", line) for line in out.get("traceback", []))
            return f"{out.get('ename')}: {out.get('evalue')}\n{trace}"
    return None


def output_text(outputs: list[dict[str, Any]]) -> str:
    """What a cell printed (streams) and its text/plain results, joined."""
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            text = out.get("text", "")
            parts.append("".join(text) if isinstance(text, list) else text)
        elif "data" in out and "text/plain" in out["data"]:
            text = out["data"]["text/plain"]
            parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


class Lab:
    """The server, the browser and helpers to drive notebooks in a page."""

    def __init__(self, server: LabServer, browser: Any):
        self.server = server
        self.browser = browser
        self.root = server.root
        self.shelf_path = server.root / "demo.shelf"

    def new_page(self) -> Any:
        context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        return context.new_page()

    def open_notebook(self, page: Any, name: str, cells: list[str] | None = None) -> list[list[dict[str, Any]]]:
        """Open notebook ``name`` of the server root, run all its cells; return their outputs.

        With ``cells``, the notebook is first written with those code cells;
        without, it must be in the root already.  Fails the test with the
        traceback if any cell raised.
        """
        path = self.root / name
        if cells is not None:
            path.write_text(json.dumps(notebook_json(cells)))
        sources = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]]
        # ?reset: a fresh workspace, or the previous notebook could be restored and run instead.
        page.goto(f"{self.server.url}/lab/tree/{name}?reset")
        page.wait_for_function(_NOTEBOOK_READY, arg=name, timeout=KERNEL_TIMEOUT_MS)
        page.evaluate(_RUN_ALL)
        page.wait_for_function("() => window.__lsRunAll !== null", timeout=CELL_TIMEOUT_MS * max(1, len(sources)))
        outputs: list[list[dict[str, Any]]] = page.evaluate(_OUTPUTS)
        for index, cell_outputs in enumerate(outputs):
            problem = error_text(cell_outputs)
            if problem:
                pytest.fail(f"cell {index} of {name} raised:\n{sources[index]}\n---\n{problem}")
        done = page.evaluate("() => window.__lsRunAll")
        assert done.get("ok") is True, f"Run All did not finish cleanly: {done}"
        return outputs

    def run_cell(self, page: Any, source: str, *, allow_error: bool = False) -> list[dict[str, Any]]:
        """Append a code cell to the open notebook, run it, return its outputs."""
        page.evaluate(_RUN_ONE, source)
        page.wait_for_function("() => window.__lsRunOne !== null", timeout=CELL_TIMEOUT_MS)
        index = page.evaluate("() => window.__lsRunOne.index")
        outputs: list[dict[str, Any]] = page.evaluate(_OUTPUTS)[index]
        problem = error_text(outputs)
        if problem and not allow_error:
            pytest.fail(f"cell raised:\n{source}\n---\n{problem}")
        return outputs

    def cell_output(self, page: Any, index: int) -> Any:
        """The output area (a Playwright locator) of code cell ``index`` of the open notebook."""
        return page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(index).locator(".jp-Cell-outputArea")
