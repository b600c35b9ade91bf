"""A real Jupyter server (pytest-jupyter's, in this process) with labshelf.server enabled, and shelves under its root.

pytest-jupyter's fixtures are imported here rather than named in
``pytest_plugins`` (which only a top-level conftest may do), so that its
autouse event loop and its async-test hooks apply to tests/server only.
Its server has a random token; ``jp_fetch`` and ``jp_ws_fetch`` send it,
and its base URL is ``/a%40b/`` (so every URL here is built from it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _serving import SHELF, fill
from pytest_jupyter.jupyter_server import *  # noqa: F403 - the fixtures and hooks (jp_serverapp, jp_fetch, ...)
from traitlets.config import Config

from _shelves import make_shelf


@pytest.fixture
def labshelf_config() -> dict[str, Any]:
    """``c.LabShelf`` of the server; a test changes it before asking for the server."""
    return {}


@pytest.fixture
def jp_server_config(labshelf_config: dict[str, Any]) -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"labshelf": True}}, "LabShelf": labshelf_config})


@pytest.fixture
def lab(backend: str, jp_root_dir: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """``data/lab.shelf`` under the server's root (on each backend), closed: the server opens its own."""
    (jp_root_dir / "data").mkdir()
    shelf = make_shelf(backend, jp_root_dir / "data", request, name="lab.shelf")
    fill(shelf).close()
    yield jp_root_dir / SHELF


@pytest.fixture
def api(jp_fetch: Any) -> Callable[..., Any]:
    """``await api("runs", shelf=..., ...)`` -> (status, JSON body); errors answered, not raised."""

    async def call(endpoint: str, *, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None,
                   **params: Any) -> tuple[int, Any]:
        response = await jp_fetch(
            "labshelf", "api", endpoint, method=method, params=params, headers=headers, raise_error=False,
            body=None if body is None else (body if isinstance(body, (str, bytes)) else json.dumps(body)),
        )
        kind = response.headers.get("Content-Type", "")
        return response.code, (json.loads(response.body) if "json" in kind and response.body else response)

    return call
