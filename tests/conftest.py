"""Fixtures shared by the whole suite: shelves on SQLite and PostgreSQL.

The ``shelf`` fixture is parametrised over both registries.  PostgreSQL
tests run when ``LABSHELF_TEST_POSTGRES`` names a server (``.ci/run`` sets
it); otherwise they are skipped with a message, except under ``CI=true``,
where a missing server is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import labshelf
from _shelves import BACKENDS, POSTGRES_URL, SKIP_POSTGRES, PostgresSchemas, make_shelf, require_postgres


@pytest.fixture(autouse=True)
def own_config_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own XDG_CONFIG_HOME (child processes inherit it): what labshelf remembers
    per user (confirmed context files, labshelf.trust) never reaches the real ~/.config."""
    home = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def pg_schemas() -> Iterator[PostgresSchemas]:
    schemas = PostgresSchemas(require_postgres())
    yield schemas
    schemas.drop_all()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        require_postgres()
    return request.param


@pytest.fixture
def shelf(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[labshelf.Shelf]:
    """A new, empty shelf on each registry backend."""
    s = make_shelf(backend, tmp_path, request)
    yield s
    s.close()


@pytest.fixture
def sqlite_shelf(tmp_path: Path) -> Iterator[labshelf.Shelf]:
    s = labshelf.create(tmp_path / "test.shelf")
    yield s
    s.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if not POSTGRES_URL:
        terminalreporter.write_line("")
        terminalreporter.write_line(SKIP_POSTGRES, yellow=True, bold=True)
