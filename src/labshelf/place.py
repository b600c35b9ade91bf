"""Where a repository's registry and data live, from what this client was given.

A client writes and deletes data files only in the folder it was given (the
shelf folder it opened, or ``root=`` with a PostgreSQL URL), never where a
registry row or a marker says: both may have been written by someone else.
An embedded shelf's registry is the plain file ``registry.sqlite3`` in its
folder.  A PostgreSQL registry and its data folder are paired by a random
shelf id recorded in both at creation (``shelf_info`` and the marker); data
folders are reached by different paths on different machines (NFS mounts),
so paths are never compared.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from .errors import NotAShelf, ShelfError
from .marker import MARKER, REGISTRY_FILE, Marker, read_marker
from .registry import migrate
from .registry.engine import (
    Database,
    check_schema_name,
    is_postgres_url,
    make_engine,
    sqlite_access,
    sqlite_engine,
)

#: ``shelf_info`` keys written at creation: the shelf id (also in the marker)
#: and the data folder as the creating machine saw it (only ever a hint).
SHELF_ID_KEY = "shelf_id"
ROOT_KEY = "root"
#: Files SQLite keeps beside an embedded registry.  SQLite follows links, so
#: any of them being one could make it write another shelf's registry.
SQLITE_FILES = (REGISTRY_FILE, *(REGISTRY_FILE + suffix for suffix in ("-wal", "-shm", "-journal")))


def checked_target(path: str | os.PathLike[str]) -> str:
    """``path`` as text, refusing URLs other than postgresql:// (they would become folder names)."""
    target = os.fspath(path)
    if not isinstance(target, str):
        raise ShelfError(f"a shelf is a folder path or a postgresql:// URL, not {target!r}")
    if is_postgres_url(target):
        return target
    if "://" in target or target.lower().startswith(("sqlite:", "file:")) or "\x00" in target:
        raise ShelfError(
            f"{target!r} is neither a shelf folder path nor a postgresql:// URL; an embedded (SQLite) shelf "
            "is named by its folder, e.g. labshelf.create('lab.shelf')"
        )
    return target


def _same_folder(a: str | os.PathLike[str], b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Place:
    """Where one repository's registry and data are, from what this client was given."""

    where: str
    #: The embedded registry file, or the PostgreSQL URL.
    registry: Path | str
    schema: str | None
    #: The data folder this client was given (None: a URL without root=).
    root: Path | None
    #: The data folder's checked marker (None with root None).
    marker: Marker | None
    by_url: bool

    @property
    def durable(self) -> bool:
        return self.marker is not None and self.marker.durable

    def writable(self) -> bool:
        """Whether this process may write the data folder (and an embedded registry)."""
        if self.root is None:
            return True  # refused later: a URL opens only with root=
        if not os.access(self.root, os.W_OK):
            return False
        return not isinstance(self.registry, Path) or os.access(self.registry, os.W_OK)


def locate(path: str, *, schema: str | None, root_given: str | None) -> Place:
    """Where the repository at ``path`` (a folder, or a URL with ``root``) lives, every marker field checked."""
    target = checked_target(path)
    if schema is not None:
        check_schema_name(schema)
    if is_postgres_url(target):
        if root_given is None:
            return Place(target, target, schema, None, None, by_url=True)
        root = Path(root_given)
        try:
            marker = read_marker(root)
        except NotAShelf as exc:
            raise NotAShelf(f"root= is not the data folder of a PostgreSQL shelf: {exc}") from exc
        if not marker.is_postgres:
            raise NotAShelf(
                f"{root} is an embedded shelf (its {MARKER} names the registry file {REGISTRY_FILE}), "
                f"not the data folder of the PostgreSQL shelf {target}"
            )
        return Place(target, target, schema, root, marker, by_url=True)
    folder = Path(target)
    marker = read_marker(folder)
    if root_given is not None and not _same_folder(root_given, folder):
        raise ShelfError(
            f"root= is for a postgresql:// URL; the shelf folder {folder} is its own data folder "
            f"(not {root_given})"
        )
    if marker.is_postgres:
        if schema is not None and schema != marker.schema:
            raise ShelfError(
                f"{folder}'s {MARKER} names PostgreSQL schema {marker.schema!r}, not {schema!r}; "
                "open the folder without schema="
            )
        return Place(str(folder), marker.registry, marker.schema, folder, marker, by_url=False)
    if schema is not None:
        raise ShelfError(f"schema= is only for PostgreSQL shelves; {folder} is an embedded shelf")
    for name in SQLITE_FILES:
        if (folder / name).is_symlink():
            raise NotAShelf(
                f"{folder / name} is a symbolic link; an embedded shelf's registry and the files SQLite keeps "
                "beside it are plain files in its folder (a link could lead to another shelf's registry)"
            )
    db_file = folder / REGISTRY_FILE
    if not db_file.is_file():
        raise NotAShelf(f"{folder} has a {MARKER} but its registry {db_file} is missing")
    # An embedded shelf's data live in its folder, wherever it was moved or
    # copied to since it was created.
    return Place(str(folder), db_file.resolve(), None, folder, marker, by_url=False)


def database(place: Place, *, mode: str) -> Database:
    readonly = mode == "r"
    if isinstance(place.registry, Path):
        access = sqlite_access(place.registry, readonly=readonly)
        wal, shm = (place.registry.with_name(place.registry.name + suffix) for suffix in ("-wal", "-shm"))
        if access == "read-only place" and wal.is_file() and wal.stat().st_size and not shm.exists():
            # SQLite cannot read those transactions without the -shm, and
            # immutable would silently skip them.
            raise NotAShelf(
                f"cannot read {place.where} where it is: its folder cannot be written and its registry has "
                f"transactions in {wal.name} but no {shm.name}; copy the shelf to a writable place to open it"
            )
        engine = sqlite_engine(place.registry, access=access, durable=place.durable)
    else:
        engine = make_engine(place.registry, readonly=readonly, schema=place.schema)
    return Database(engine, readonly=readonly, where=place.where)


def check_root(place: Place, recorded: Mapping[str, str]) -> None:
    """Refuse a data folder that is not this registry's: the folder decides where files go."""
    if place.marker is None:
        hint = recorded.get(ROOT_KEY)
        raise ShelfError(
            f"opening the PostgreSQL shelf {place.where} by URL needs root= (its data folder, which holds its "
            f"{MARKER}), or open that folder itself; labshelf never takes the data folder from the registry"
            + (f" (it was created with root {hint!r}, as the creating machine saw it)" if hint else "")
        )
    marker = place.marker
    if not marker.is_postgres:
        return  # an embedded shelf's registry is the folder's own file
    recorded_id = recorded.get(SHELF_ID_KEY)
    registry = f"{_without_password(str(place.registry))} (schema {place.schema or 'public'})"
    if recorded_id is not None or marker.shelf_id is not None:
        if marker.shelf_id != recorded_id:
            raise NotAShelf(
                f"{marker.folder} is not the data folder of the shelf in {registry}: its {MARKER} names shelf "
                f"{marker.shelf_id or '(none)'} (schema {marker.schema or 'public'}), the registry holds shelf "
                f"{recorded_id or '(none)'}; "
                "open the shelf by its own data folder"
            )
        return
    # A shelf made before shelf ids: its data folder's marker must point at
    # this very registry and schema (opened by that folder, it does).
    if place.by_url and not (_same_database(marker.registry, str(place.registry)) and marker.schema == place.schema):
        raise NotAShelf(
            f"{marker.folder} is not the data folder of the shelf in {registry}: its {MARKER} points at "
            f"{_without_password(marker.registry)} (schema {marker.schema or 'public'})"
        )


def driver_error(exc: SQLAlchemyError) -> str:
    """The driver's own message on one line (SQLAlchemy adds the SQL and a link)."""
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


def _same_database(a: str, b: str) -> bool:
    from sqlalchemy.engine import make_url

    ua, ub = make_url(a), make_url(b)
    return (ua.host, ua.port, ua.database) == (ub.host, ub.port, ub.database)


def _without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for a message
        return "(an invalid URL)"


def read_only_version(place: Place) -> str | None:
    db = database(place, mode="r")
    try:
        with db.engine.connect() as conn:
            return migrate.current_version(conn)
    except SQLAlchemyError as exc:
        raise NotAShelf(f"cannot read the registry of {place.where}: {driver_error(exc)}") from exc
    finally:
        db.dispose()
