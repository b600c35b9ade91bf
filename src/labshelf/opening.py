"""Creating, opening and upgrading shelves: where a shelf's registry and data live.

An embedded shelf is a folder holding ``labshelf.json`` (the marker),
``registry.sqlite3`` and the data files.  A PostgreSQL shelf has the same
folder for its data files, with the marker pointing at the database URL and
schema, so the folder alone opens it.  ``labshelf.create``, ``labshelf.open``
and ``labshelf.upgrade`` are these functions.

What a client was given is checked in ``place`` (where the registry and the
data folder are: never where a registry row says) and ``marker`` (what a
``labshelf.json`` may say).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from .cache import DEFAULT_CACHE_BYTES, check_limit
from .datastore import Datastore
from .errors import NotAShelf, ReadOnlyShelf, ShelfError, ShelfExists
from .marker import MARKER, REGISTRY_FILE, Marker, url_problem, write_marker
from .place import (
    ROOT_KEY,
    SHELF_ID_KEY,
    SQLITE_FILES,
    check_root,
    checked_target,
    database,
    driver_error,
    locate,
    read_only_version,
)
from .registry import migrate
from .registry.engine import Database, check_schema_name, is_postgres_url, make_engine, sqlite_engine
from .registry.registry import Registry
from .shelf import Shelf

__all__ = ["MARKER", "REGISTRY_FILE", "RepoSpec", "create", "is_postgres_url", "open", "repo", "upgrade"]

MODES = ("r", "rw")
#: Modes a repository's configuration may give: read, write, read and write.
REPO_MODES = ("r", "w", "rw")
#: ``shelf_info`` keys of the repository configuration.
REPO_MODE_KEY = "repo_mode"
PARENTS_KEY = "parents"

if TYPE_CHECKING:
    from .collections import Repository


def create(
    path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    schema: str | None = None,
    durable: bool = False,
    repo_mode: str = "rw",
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
        missing), so one database can hold several shelves.  A plain
        identifier: letters, digits and ``_``.
    durable
        Sync data files and the registry to disk on every write, surviving
        power loss as well as process crashes (slower).
    repo_mode
        The repository's configured mode: ``"rw"``, ``"r"`` (read-only:
        never an output, opened read-only) or ``"w"`` (never an input).
        Change it later with :meth:`Shelf.set_repo_mode`.

    Nothing is left behind when creating fails: neither the folder (if this
    call made it) nor the schema (if this call made it).
    """
    # Every argument is checked before anything is made or any SQL runs.
    if repo_mode not in REPO_MODES:
        raise ShelfError(f"repo_mode must be one of {REPO_MODES}, not {repo_mode!r}")
    if not isinstance(durable, bool):
        raise ShelfError(f"durable must be True or False, not {durable!r}")
    target = checked_target(path)
    postgres = is_postgres_url(target)
    if postgres:
        if root is None:
            raise ShelfError("a PostgreSQL shelf needs root= (the folder for its data files)")
        if schema is not None:
            check_schema_name(schema)
        folder = Path(root)
        where = target
        pg_engine = make_engine(target, schema=schema)  # parses the URL; connects only when used
    else:
        if root is not None:
            raise ShelfError("root= is only for PostgreSQL shelves; an embedded shelf keeps data in its folder")
        if schema is not None:
            raise ShelfError("schema= is only for PostgreSQL shelves (with a postgresql:// URL)")
        folder = Path(target)
        where = str(folder)
    _check_new_folder(folder)
    made = _make_folder(folder)
    db = None
    made_schema = False
    try:
        if not os.access(folder, os.W_OK):
            raise ReadOnlyShelf(f"cannot create a shelf in {folder}: it is not writable")
        if postgres:
            made_schema = schema is not None and _create_schema(pg_engine, schema)
            engine = pg_engine
        else:
            engine = sqlite_engine(folder.resolve() / REGISTRY_FILE, access="create", durable=durable)
        db = Database(engine, readonly=False, where=where)
        with db.engine.connect() as conn:
            if migrate.current_version(conn) is not None:
                raise ShelfExists(f"{where} already holds a labshelf registry; open it instead")
        db.enable_wal()
        with db.engine.begin() as conn:
            migrate.upgrade(conn)
        registry = Registry(db)
        shelf_id = uuid.uuid4().hex
        _record_creation(registry, folder, shelf_id, repo_mode)
        write_marker(
            folder,
            Marker(folder, target if postgres else REGISTRY_FILE, schema, durable, shelf_id),
        )
    except BaseException as exc:
        if db is not None:
            db.dispose()
        if postgres:
            if made_schema:
                assert schema is not None
                _drop_schema(pg_engine, schema)
            pg_engine.dispose()
        _unmake(folder, made, postgres=postgres)
        if isinstance(exc, SQLAlchemyError):
            raise ShelfError(f"cannot create a shelf at {where}: {driver_error(exc)}") from exc
        if isinstance(exc, OSError) and not isinstance(exc, ShelfError):
            raise ShelfError(f"cannot create a shelf at {where}: {exc.strerror or exc}") from exc
        raise
    return Shelf(registry=registry, datastore=Datastore(folder, durable=durable), where=where, mode="rw")


def _record_creation(registry: Registry, folder: Path, shelf_id: str, repo_mode: str) -> None:
    import datetime

    from . import __version__

    with registry.db.write() as txn:
        registry.set_info(
            txn,
            {
                "created": datetime.datetime.now(datetime.UTC).isoformat(),
                "created_by": f"labshelf {__version__}",
                # Only a hint for people: a client's data folder is the one it was given.
                ROOT_KEY: str(folder.resolve()),
                SHELF_ID_KEY: shelf_id,
                REPO_MODE_KEY: repo_mode,
            },
        )


def _check_new_folder(folder: Path) -> None:
    try:
        if (folder / MARKER).exists() or (folder / MARKER).is_symlink():
            raise ShelfExists(f"{folder} is a shelf already; open it with labshelf.open({str(folder)!r})")
        if folder.exists() and not folder.is_dir():
            raise ShelfError(f"{folder} exists and is not a folder")
        if folder.exists() and any(folder.iterdir()):
            raise ShelfError(f"{folder} is not empty; create a shelf in a new or empty folder")
    except OSError as exc:
        if isinstance(exc, ShelfError):
            raise
        raise ShelfError(f"cannot create a shelf in {folder}: {exc.strerror or exc}") from exc


def _make_folder(folder: Path) -> list[Path]:
    """Make ``folder`` and missing parents; return those made, deepest first."""
    missing = []
    here = folder.absolute()
    while not here.exists() and not here.is_symlink() and here != here.parent:
        missing.append(here)
        here = here.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_folders(missing)
        raise ShelfError(f"cannot create the shelf folder {folder}: {exc.strerror or exc}") from exc
    return missing


def _remove_folders(made: Sequence[Path]) -> None:
    for directory in made:  # deepest first; one that is not empty stays
        try:
            directory.rmdir()
        except OSError:
            return


def _unmake(folder: Path, made: Sequence[Path], *, postgres: bool) -> None:
    """Undo a failed create: the files it writes, then the folders it made."""
    # The folder was empty (or new) when create began, so these files are
    # ours; nothing else in it is touched.
    names = [MARKER, MARKER + ".tmp", *(() if postgres else SQLITE_FILES)]
    for name in names:
        try:
            (folder / name).unlink()
        except FileNotFoundError:
            pass
        except OSError:
            return
    _remove_folders(made)


def _create_schema(engine: Any, schema: str) -> bool:
    """Create ``schema`` if missing; return whether this call created it."""
    from sqlalchemy import inspect
    from sqlalchemy.schema import CreateSchema

    with engine.begin() as conn:
        if inspect(conn).has_schema(schema):
            return False
        conn.execute(CreateSchema(check_schema_name(schema)))
    return True


def _drop_schema(engine: Any, schema: str) -> None:
    """Drop a schema this create made (best effort: the original error matters more)."""
    from sqlalchemy.schema import DropSchema

    try:
        with engine.begin() as conn:
            conn.execute(DropSchema(check_schema_name(schema), cascade=True, if_exists=True))
    except SQLAlchemyError:
        pass


@dataclass(frozen=True, slots=True)
class RepoSpec:
    """A repository to open as part of a shelf's view: ``labshelf.repo(path, tag="old")``."""

    path: str
    tag: str | None = None
    schema: str | None = None
    root: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in {"path": self.path, "tag": self.tag, "schema": self.schema, "root": self.root}.items() if v}


def repo(
    path: str | os.PathLike[str] | RepoSpec,
    *,
    tag: str | None = None,
    schema: str | None = None,
    root: str | os.PathLike[str] | None = None,
) -> RepoSpec:
    """Name a repository for ``labshelf.open(inputs=[...], output=...)``, optionally with a tag.

    A :class:`~labshelf.DataId` carrying the same tag limits a search to the
    repositories opened with it and their parents.
    """
    if isinstance(path, RepoSpec):
        return path
    if tag is not None and (not isinstance(tag, str) or not tag):
        raise ShelfError(f"a repository tag is a non-empty str, not {tag!r}")
    target = checked_target(path)
    if schema is not None:
        check_schema_name(schema)
    if not is_postgres_url(target):
        target = str(Path(target).resolve())
    return RepoSpec(target, tag, schema, None if root is None else str(Path(root).resolve()))


def _open_one(spec: RepoSpec, mode: str | None, *, role: str) -> tuple[Registry, Datastore, str, str]:
    """Open one repository: (registry, datastore, where, mode), checking its configured mode."""
    place = locate(spec.path, schema=spec.schema, root_given=spec.root)
    open_mode = mode or "rw"
    if open_mode == "rw" and not place.writable():
        # A mounted archive or another account's shelf: read it, as a
        # repository configured read-only is read.
        if role == "output" or mode == "rw":
            what = "an output" if role == "output" else "opened with mode='rw'"
            raise ReadOnlyShelf(
                f"the shelf {place.where} is in a place this process cannot write ({place.root}), so it cannot be "
                f"{what}; open it with mode='r'"
            )
        open_mode = "r"
    db = database(place, mode=open_mode)
    try:
        with db.engine.connect() as conn:
            migrate.check_version(conn, place.where)
        registry = Registry(db)
        recorded = registry.info()
        check_root(place, recorded)
        configured = recorded.get(REPO_MODE_KEY, "rw")
        if configured == "r" and open_mode == "rw":
            if role == "output" or mode == "rw":
                what = "an output" if role == "output" else "opened with mode='rw'"
                raise ReadOnlyShelf(
                    f"the repository {place.where} is read-only by its configuration (repo mode 'r'), so it cannot "
                    f"be {what}; open it with mode='r'"
                )
            db.dispose()  # reopen read-only, as its configuration says
            return _open_one(spec, "r", role=role)
        if configured == "w" and role == "input":
            raise ShelfError(
                f"the repository {place.where} is write-only by its configuration (repo mode 'w'); "
                "it cannot be an input"
            )
        # Only now that the registry is accepted: a refused open changes nothing.
        db.enable_wal()
    except SQLAlchemyError as exc:
        db.dispose()
        raise NotAShelf(f"cannot read the registry of {place.where}: {driver_error(exc)}") from exc
    except BaseException:
        db.dispose()
        raise
    assert place.root is not None  # _check_root refused a URL without root=
    datastore = Datastore(place.root, readonly=open_mode == "r", durable=place.durable)
    return registry, datastore, place.where, open_mode


def _parents(registry: Registry) -> list[RepoSpec]:
    """The parents a repository records, checked: a registry row is untrusted input.

    A parent names another repository to read, so it may be any folder or
    URL; it is opened like any input (read-only, with the same data folder
    rules: a PostgreSQL parent needs its recorded data folder, whose marker
    must name the same shelf id), and its URL may not carry driver options
    that read local files.
    """
    text = registry.info().get(PARENTS_KEY)
    if not text:
        return []
    where = registry.db.where
    try:
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError("not a list")
        specs = [_parent_spec(item) for item in items]
    except ValueError as exc:
        raise ShelfError(
            f"the registry of {where} records damaged parents ({exc}); re-record them by opening it with "
            "inputs=[...] after removing the 'parents' entry of shelf_info"
        ) from exc
    return specs


def _parent_spec(item: Any) -> RepoSpec:
    fields = ("path", "tag", "schema", "root")
    if not isinstance(item, dict) or set(item) - set(fields) or not isinstance(item.get("path"), str):
        raise ValueError(f"{str(item)[:80]} is not a repository entry")
    if any(item.get(key) is not None and not isinstance(item[key], str) for key in fields):
        raise ValueError(f"{str(item)[:80]} has a value that is not text")
    if is_postgres_url(item["path"]):
        problem = url_problem(item["path"])
        if problem is not None:
            raise ValueError(f"a parent's URL is refused: {problem}")
    if item.get("schema") is not None:
        try:
            check_schema_name(item["schema"])
        except ShelfError as exc:
            raise ValueError(str(exc)) from exc
    return RepoSpec(item["path"], item.get("tag") or None, item.get("schema"), item.get("root"))


def open(  # noqa: A001 - labshelf.open is the natural name, as in h5py.File / xarray.open_dataset
    path: str | os.PathLike[str] | RepoSpec | None = None,
    *,
    mode: str | None = None,
    root: str | os.PathLike[str] | None = None,
    schema: str | None = None,
    inputs: Sequence[str | os.PathLike[str] | RepoSpec] | None = None,
    output: str | os.PathLike[str] | RepoSpec | None = None,
    collections: str | Sequence[str] | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> Shelf:
    """Open an existing shelf, or a view of several repositories.

    Parameters
    ----------
    path
        The shelf folder, or a ``postgresql://`` URL with ``root=`` (the same
        as ``output=``).
    mode
        ``"rw"`` to read and write, ``"r"`` to refuse every write.  By
        default ``"rw"``, or ``"r"`` for a repository configured read-only.
    root
        With a URL: the shelf's data folder (required; its ``labshelf.json``
        must name the same shelf).  A client writes data files only where it
        was told to, never where a registry says.
    schema
        With a URL: the PostgreSQL schema of the shelf.
    inputs
        Repositories searched after this one, in order (paths, URLs or
        :func:`repo` specs with a tag), each followed by its own recorded
        parents.  They are opened read-only.  The first time an output is
        opened with inputs it records them as its parents, so opening it
        alone later searches them too.
    output
        The repository writes go to (instead of ``path``).  Without one, a
        view of inputs only is read-only.
    collections
        Default collections searched by ``get``/``find``/``query`` when a
        call gives neither ``run=`` nor ``collections=``.
    cache_bytes
        Size of the in-memory read cache (0 turns it off).
    """
    if mode not in (None, *MODES):
        raise ShelfError(f"mode must be one of {MODES}, not {mode!r}")
    if path is not None and output is not None:
        raise ShelfError("give the shelf as path or as output=, not both")
    target = path if path is not None else output
    record_parents = False
    if target is None and not inputs:
        raise ShelfError("labshelf.open needs a shelf: a path, output=, or inputs=")
    if inputs is not None and (isinstance(inputs, (str, os.PathLike, RepoSpec)) or not isinstance(inputs, Sequence)):
        raise ShelfError(f"inputs= takes a list of repositories, not {inputs!r}")
    cache_bytes = check_limit(cache_bytes)  # before any registry is opened: a refusal leaves no connection
    input_specs = [repo(item) for item in inputs or ()]
    if target is not None:
        spec = repo(target) if isinstance(target, RepoSpec) else RepoSpec(
            os.fspath(target), None, schema, None if root is None else os.fspath(root)
        )
        role = "output" if output is not None or input_specs else "shelf"
        registry, datastore, where, open_mode = _open_one(spec, mode, role=role)
        own_tags = {spec.tag} if spec.tag else set()
    else:
        first, *input_specs = input_specs
        registry, datastore, where, open_mode = _open_one(first, "r", role="input")
        own_tags = {first.tag} if first.tag else set()
    try:
        parents = _parents(registry)
        if target is not None:
            record_parents = bool(input_specs) and not parents and open_mode == "rw"
            input_specs = input_specs or parents
        else:
            input_specs = [*input_specs, *parents]
        repositories = _open_inputs(input_specs, seen={_identity(where)}, inherited=frozenset())
        if target is not None and record_parents:
            # Only once every input opened: a refused one is never recorded.
            with registry.db.write() as txn:
                registry.set_info(txn, {PARENTS_KEY: json.dumps([s.to_json() for s in input_specs])})
    except BaseException:
        registry.db.dispose()
        raise
    return Shelf(
        registry=registry,
        datastore=datastore,
        where=where,
        mode=open_mode,
        inputs=repositories,
        tags=own_tags,
        collections=collections,
        cache_bytes=cache_bytes,
    )


def open_alone(
    path: str | os.PathLike[str],
    *,
    mode: str | None = None,
    root: str | os.PathLike[str] | None = None,
    schema: str | None = None,
) -> Shelf:
    """Open one repository alone, without the parents its registry records.

    For a process that must open nothing but what it was given, such as the
    sidebar's server, which serves the folders under its root: recorded
    parents are registry rows, written by whoever made the shelf, and may
    name any folder or database.  The shelf's own runs and datasets are all
    there; a ``get`` that would have fallen through to a parent finds
    nothing.  Arguments as for :func:`open`.
    """
    if mode not in (None, *MODES):
        raise ShelfError(f"mode must be one of {MODES}, not {mode!r}")
    spec = RepoSpec(checked_target(path), None, schema, None if root is None else os.fspath(root))
    registry, datastore, where, open_mode = _open_one(spec, mode, role="shelf")
    return Shelf(registry=registry, datastore=datastore, where=where, mode=open_mode)


def _identity(where: str) -> str:
    return where if is_postgres_url(where) else str(Path(where).resolve())


def _open_inputs(specs: Sequence[RepoSpec], *, seen: set[str], inherited: frozenset[str]) -> list[Repository]:
    """Open inputs depth-first, left to right, each followed by its recorded parents."""
    from .collections import Repository

    out: list[Repository] = []
    for spec in specs:
        if _identity(spec.path) in seen:
            continue
        registry, datastore, where, _mode = _open_one(spec, "r", role="input")
        seen.add(_identity(where))
        tags = inherited | ({spec.tag} if spec.tag else set())
        out.append(Repository(where, registry, datastore, "r", tags))
        out.extend(_open_inputs(_parents(registry), seen=seen, inherited=tags))
    return out


def upgrade(path: str | os.PathLike[str], *, schema: str | None = None) -> tuple[str | None, str]:
    """Migrate a shelf's registry to this labshelf's schema; return (old, new) versions.

    ``path`` is the shelf folder, or a ``postgresql://`` URL with ``schema``
    (upgrading touches the registry only, so no data folder is needed).
    """
    place = locate(os.fspath(path), schema=schema, root_given=None)
    if isinstance(place.registry, Path) and not place.writable():
        current = read_only_version(place)
        if current == migrate.SCHEMA_VERSION:
            return current, current
        raise ReadOnlyShelf(
            f"cannot upgrade {place.where} (schema {current}): this process cannot write its folder; "
            "copy the shelf somewhere writable and upgrade the copy"
        )
    db = database(place, mode="rw")
    try:
        with db.engine.begin() as conn:
            old = migrate.current_version(conn)
            if old is None:
                raise NotAShelf(f"{place.where} holds no labshelf registry")
            if old not in migrate.KNOWN_VERSIONS:
                migrate.check_version(conn, place.where)  # raises: newer than this labshelf
            migrate.upgrade(conn)
            new = migrate.current_version(conn)
        db.enable_wal()
    except SQLAlchemyError as exc:
        raise NotAShelf(f"cannot upgrade the registry of {place.where}: {driver_error(exc)}") from exc
    finally:
        db.dispose()
    assert new is not None
    return old, new
