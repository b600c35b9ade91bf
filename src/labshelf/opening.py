"""Creating, opening and upgrading shelves: where a shelf's registry and data live.

An embedded shelf is a folder holding ``labshelf.json`` (the marker),
``registry.sqlite3`` and the data files.  A PostgreSQL shelf has the same
folder for its data files, with the marker pointing at the database URL and
schema, so the folder alone opens it.  ``labshelf.create``, ``labshelf.open``
and ``labshelf.upgrade`` are these functions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from .datastore import Datastore
from .errors import NotAShelf, ShelfError, ShelfExists
from .registry import migrate
from .registry.engine import Database, is_postgres_url, make_engine, sqlite_url
from .registry.registry import Registry
from .shelf import Shelf

MARKER = "labshelf.json"
REGISTRY_FILE = "registry.sqlite3"
MODES = ("r", "rw")


def _read_marker(folder: Path) -> dict[str, Any]:
    marker = folder / MARKER
    if not folder.exists():
        raise NotAShelf(f"{folder} does not exist; create a shelf with labshelf.create({str(folder)!r})")
    if not marker.is_file():
        raise NotAShelf(
            f"{folder} is not a labshelf shelf (it has no {MARKER}); "
            f"create one with labshelf.create(path) in an empty folder"
        )
    try:
        doc = json.loads(marker.read_text())
        if not isinstance(doc, dict) or doc.get("format") != "labshelf":
            raise ValueError("not a labshelf marker")
        return doc
    except (OSError, ValueError) as exc:
        raise NotAShelf(f"{marker} is damaged or not a labshelf marker: {exc}") from exc


def _write_marker(folder: Path, doc: Mapping[str, Any]) -> None:
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, folder / MARKER)


def _database(url: str, where: str, *, mode: str, schema: str | None, durable: bool) -> Database:
    engine = make_engine(url, readonly=mode == "r", schema=schema, durable=durable)
    return Database(engine, readonly=mode == "r", where=where)


def create(
    path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    schema: str | None = None,
    durable: bool = False,
) -> Shelf:
    """Create a new, empty shelf and open it for writing.

    Parameters
    ----------
    path
        A folder for an embedded shelf (SQLite registry + data files inside
        it), or a ``postgresql://`` URL for a shared registry.
    root
        With a PostgreSQL URL: the folder for data files (required).  A
        ``labshelf.json`` there points back to the registry, so the folder
        alone opens the shelf later.
    schema
        With PostgreSQL: the schema holding this shelf's tables (created if
        missing), so one database can hold several shelves.
    durable
        Sync data files and the registry to disk on every write, surviving
        power loss as well as process crashes (slower).
    """
    target = os.fspath(path)
    if is_postgres_url(target):
        if root is None:
            raise ShelfError("a PostgreSQL shelf needs root= (the folder for its data files)")
        folder = Path(root)
        url = target
    else:
        if root is not None:
            raise ShelfError("root= is only for PostgreSQL shelves; an embedded shelf keeps data in its folder")
        folder = Path(target)
        url = sqlite_url(folder.resolve() / REGISTRY_FILE, readonly=False)
    if (folder / MARKER).exists():
        raise ShelfExists(f"{folder} is a shelf already; open it with labshelf.open({str(folder)!r})")
    if folder.exists() and not folder.is_dir():
        raise ShelfError(f"{folder} exists and is not a folder")
    if folder.exists() and any(folder.iterdir()):
        raise ShelfError(f"{folder} is not empty; create a shelf in a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    where = str(folder) if not is_postgres_url(target) else target
    if schema is not None:
        _create_schema(target, schema)
    db = _database(url, where, mode="rw", schema=schema, durable=durable)
    with db.engine.connect() as conn:
        if migrate.current_version(conn) is not None:
            raise ShelfExists(f"{where} already holds a labshelf registry; open it instead")
    with db.engine.begin() as conn:
        migrate.upgrade(conn)
    registry = Registry(db)
    import datetime

    from . import __version__

    with db.write() as txn:
        registry.set_info(
            txn,
            {
                "created": datetime.datetime.now(datetime.UTC).isoformat(),
                "created_by": f"labshelf {__version__}",
                "root": str(folder.resolve()),
            },
        )
    marker: dict[str, Any] = {"format": "labshelf", "version": 1, "durable": durable}
    if is_postgres_url(target):
        marker.update(registry=target, schema=schema)
    else:
        marker.update(registry=REGISTRY_FILE)
    _write_marker(folder, marker)
    return Shelf(registry=registry, datastore=Datastore(folder, durable=durable), where=where, mode="rw")


def _create_schema(url: str, schema: str) -> None:
    from sqlalchemy import text

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()


def _locate(
    path: str | os.PathLike[str], *, mode: str, schema: str | None, root: str | os.PathLike[str] | None
) -> tuple[str, str, str | None, str | os.PathLike[str] | None, bool]:
    """(registry URL, where, schema, datastore root, durable) of a shelf folder or URL."""
    target = os.fspath(path)
    if is_postgres_url(target):
        return target, target, schema, root, False
    folder = Path(target)
    marker = _read_marker(folder)
    durable = bool(marker.get("durable", False))
    registry_spec = str(marker.get("registry", REGISTRY_FILE))
    if is_postgres_url(registry_spec):
        return registry_spec, str(folder), marker.get("schema"), root or folder, durable
    db_file = folder / registry_spec
    if not db_file.is_file():
        raise NotAShelf(f"{folder} has a {MARKER} but its registry {db_file} is missing")
    # An embedded shelf's data live in its folder, wherever it was moved or
    # copied to since it was created.
    return sqlite_url(db_file.resolve(), readonly=mode == "r"), str(folder), schema, root or folder, durable


def open(  # noqa: A001 - labshelf.open is the natural name, as in h5py.File / xarray.open_dataset
    path: str | os.PathLike[str],
    *,
    mode: str = "rw",
    root: str | os.PathLike[str] | None = None,
    schema: str | None = None,
) -> Shelf:
    """Open an existing shelf.

    Parameters
    ----------
    path
        The shelf folder, or a ``postgresql://`` URL.
    mode
        ``"rw"`` (default) to read and write, ``"r"`` to refuse every write.
    root
        With a URL: the folder of data files, if not the one recorded at creation.
    schema
        With a URL: the PostgreSQL schema of the shelf.
    """
    if mode not in MODES:
        raise ShelfError(f"mode must be one of {MODES}, not {mode!r}")
    url, where, schema, root, durable = _locate(path, mode=mode, schema=schema, root=root)
    db = _database(url, where, mode=mode, schema=schema, durable=durable)
    try:
        with db.engine.connect() as conn:
            migrate.check_version(conn, where)
    except SQLAlchemyError as exc:
        db.dispose()
        raise NotAShelf(f"cannot read the registry of {where}: {exc}") from exc
    except Exception:
        db.dispose()
        raise
    registry = Registry(db)
    if root is None:
        recorded = registry.info().get("root")
        if recorded is None:
            raise NotAShelf(f"{where} records no datastore root; pass root=")
        root = recorded
    return Shelf(
        registry=registry,
        datastore=Datastore(Path(root), readonly=mode == "r", durable=durable),
        where=where,
        mode=mode,
    )


def upgrade(path: str | os.PathLike[str], *, schema: str | None = None) -> tuple[str | None, str]:
    """Migrate a shelf's registry to this labshelf's schema; return (old, new) versions."""
    url, where, schema, _root, _durable = _locate(path, mode="rw", schema=schema, root=None)
    db = _database(url, where, mode="rw", schema=schema, durable=False)
    try:
        with db.engine.begin() as conn:
            old = migrate.current_version(conn)
            if old is None:
                raise NotAShelf(f"{where} holds no labshelf registry")
            if old not in migrate.KNOWN_VERSIONS:
                migrate.check_version(conn, where)  # raises: newer than this labshelf
            migrate.upgrade(conn)
            new = migrate.current_version(conn)
    finally:
        db.dispose()
    assert new is not None
    return old, new
