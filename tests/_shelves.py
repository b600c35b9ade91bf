"""What tests share besides fixtures: the backends, PostgreSQL schemas, making a shelf.

Test modules import these from here, not from ``conftest``: tests/browser has
a conftest of its own, and two modules named ``conftest`` cannot both be
imported by that name in one session.
"""

from __future__ import annotations

import os
import uuid
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

        # One transaction per schema: dropping hundreds of schemas at once
        # takes more locks than PostgreSQL's default max_locks_per_transaction.
        for name in self.made:
            with self.engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        self.engine.dispose()


def make_shelf(backend: str, tmp_path: Path, request: pytest.FixtureRequest, name: str = "test.shelf") -> labshelf.Shelf:
    """A new empty shelf on ``backend`` ("sqlite" or "postgres")."""
    if backend == "sqlite":
        return labshelf.create(tmp_path / name)
    schemas: PostgresSchemas = request.getfixturevalue("pg_schemas")
    return labshelf.create(schemas.url, root=tmp_path / name, schema=schemas.new())
