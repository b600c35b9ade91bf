"""Schema versions: create a registry, check it on open, upgrade an old one.

Alembic is imported only to create or upgrade; opening a shelf just reads the
``alembic_version`` row and compares it with :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, text

from ..errors import NotAShelf, SchemaVersionError
from .schema import SCHEMA_VERSION

MIGRATIONS = Path(__file__).with_name("migrations")

#: Every revision this labshelf can upgrade from, oldest first.
KNOWN_VERSIONS = ("0001", "0002", "0003", "0004", "0005")


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def upgrade(conn: Connection, revision: str = "head") -> None:
    """Bring the schema behind ``conn`` to ``revision`` (creating it if empty)."""
    from alembic import command

    command.upgrade(_alembic_config(conn), revision)


def current_version(conn: Connection) -> str | None:
    """The schema revision of the registry, or None if it has no labshelf tables."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def check_version(conn: Connection, where: str) -> None:
    """Raise unless the registry has exactly the schema this labshelf writes."""
    version = current_version(conn)
    if version is None:
        raise NotAShelf(f"{where} holds no labshelf registry; create one with `labshelf create`")
    if version == SCHEMA_VERSION:
        return
    if version in KNOWN_VERSIONS:
        raise SchemaVersionError(
            f"the shelf {where} has registry schema {version}, older than this labshelf's "
            f"{SCHEMA_VERSION}; run `labshelf upgrade {where}` (back it up first)"
        )
    raise SchemaVersionError(
        f"the shelf {where} has registry schema {version}, written by a newer labshelf "
        f"(this one knows up to {SCHEMA_VERSION}); upgrade labshelf to open it"
    )
