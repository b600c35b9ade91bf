"""Fixtures shared by the whole suite: shelves on SQLite and PostgreSQL.

The ``shelf`` fixture is parametrised over both registries.  PostgreSQL
tests run when ``LABSHELF_TEST_POSTGRES`` names a server (``.ci/run`` sets
it); otherwise they are skipped with a message, except under ``CI=true``,
where a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import labshelf

POSTGRES_URL = os.environ.get("LABSHELF_TEST_POSTGRES", "")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SKIP_POSTGRES = (
    "PostgreSQL tests skipped: set LABSHELF_TEST_POSTGRES=postgresql://postgres@127.0.0.1:5432/test to run them"
)

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def require_postgres() -> str:
    if not POSTGRES_URL:
        if IN_CI:
            pytest.fail("CI=true but LABSHELF_TEST_POSTGRES is not set: PostgreSQL tests must run in CI")
        pytest.skip(SKIP_POSTGRES)
    return POSTGRES_URL


class PostgresSchemas:
    """Creates throw-away schemas in the test database and drops them after."""

    def __init__(self, url: str):
        from sqlalchemy import create_engine

        self.url = url
        self.engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        self.made: list[str] = []

    def new(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.made.append(name)
        return name

    def drop_all(self) -> None:
        from sqlalchemy import text

        with self.engine.begin() as conn:
            for name in self.made:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        self.engine.dispose()


@pytest.fixture(scope="session")
def pg_schemas() -> Iterator[PostgresSchemas]:
    schemas = PostgresSchemas(require_postgres())
    yield schemas
    schemas.drop_all()


def make_shelf(backend: str, tmp_path: Path, request: pytest.FixtureRequest, name: str = "test.shelf") -> labshelf.Shelf:
    """A new empty shelf on ``backend`` ("sqlite" or "postgres")."""
    if backend == "sqlite":
        return labshelf.create(tmp_path / name)
    schemas: PostgresSchemas = request.getfixturevalue("pg_schemas")
    return labshelf.create(schemas.url, root=tmp_path / name, schema=schemas.new())


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
