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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from .cache import DEFAULT_CACHE_BYTES
from .datastore import Datastore
from .errors import NotAShelf, ReadOnlyShelf, ShelfError, ShelfExists
from .registry import migrate
from .registry.engine import Database, is_postgres_url, make_engine, sqlite_url
from .registry.registry import Registry
from .shelf import Shelf

MARKER = "labshelf.json"
REGISTRY_FILE = "registry.sqlite3"
MODES = ("r", "rw")
#: Modes a repository's configuration may give: read, write, read and write.
REPO_MODES = ("r", "w", "rw")
#: ``shelf_info`` keys of the repository configuration.
REPO_MODE_KEY = "repo_mode"
PARENTS_KEY = "parents"

if TYPE_CHECKING:
    from .collections import Repository


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
        missing), so one database can hold several shelves.
    durable
        Sync data files and the registry to disk on every write, surviving
        power loss as well as process crashes (slower).
    repo_mode
        The repository's configured mode: ``"rw"``, ``"r"`` (read-only:
        never an output, opened read-only) or ``"w"`` (never an input).
        Change it later with :meth:`Shelf.set_repo_mode`.
    """
    if repo_mode not in REPO_MODES:
        raise ShelfError(f"repo_mode must be one of {REPO_MODES}, not {repo_mode!r}")
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
                REPO_MODE_KEY: repo_mode,
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
    target = os.fspath(path)
    if not is_postgres_url(target):
        target = str(Path(target).resolve())
    return RepoSpec(target, tag, schema, None if root is None else str(Path(root).resolve()))


def _open_one(spec: RepoSpec, mode: str | None, *, role: str) -> tuple[Registry, Datastore, str, str]:
    """Open one repository: (registry, datastore, where, mode), checking its configured mode."""
    open_mode = mode or "rw"
    url, where, schema, root, durable = _locate(spec.path, mode=open_mode, schema=spec.schema, root=spec.root)
    db = _database(url, where, mode=open_mode, schema=schema, durable=durable)
    try:
        with db.engine.connect() as conn:
            migrate.check_version(conn, where)
        registry = Registry(db)
        recorded = registry.info()
        configured = recorded.get(REPO_MODE_KEY, "rw")
        if configured == "r" and open_mode == "rw":
            if role == "output" or mode == "rw":
                what = "an output" if role == "output" else "opened with mode='rw'"
                raise ReadOnlyShelf(
                    f"the repository {where} is read-only by its configuration (repo mode 'r'), so it cannot be "
                    f"{what}; open it with mode='r'"
                )
            db.dispose()  # reopen read-only, as its configuration says
            return _open_one(spec, "r", role=role)
        if configured == "w" and role == "input":
            raise ShelfError(
                f"the repository {where} is write-only by its configuration (repo mode 'w'); it cannot be an input"
            )
    except SQLAlchemyError as exc:
        db.dispose()
        raise NotAShelf(f"cannot read the registry of {where}: {exc}") from exc
    except Exception:
        db.dispose()
        raise
    if root is None:
        root = recorded.get("root")
        if root is None:
            db.dispose()
            raise NotAShelf(f"{where} records no datastore root; pass root=")
    datastore = Datastore(Path(root), readonly=open_mode == "r", durable=durable)
    return registry, datastore, where, open_mode


def _parents(registry: Registry) -> list[RepoSpec]:
    text = registry.info().get(PARENTS_KEY)
    if not text:
        return []
    return [RepoSpec(**item) for item in json.loads(text)]


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
        The shelf folder, or a ``postgresql://`` URL (the same as ``output=``).
    mode
        ``"rw"`` to read and write, ``"r"`` to refuse every write.  By
        default ``"rw"``, or ``"r"`` for a repository configured read-only.
    root
        With a URL: the folder of data files, if not the one recorded at creation.
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
    input_specs = [repo(item) for item in inputs or ()]
    if target is not None:
        spec = repo(target) if isinstance(target, RepoSpec) else RepoSpec(
            os.fspath(target), None, schema, None if root is None else os.fspath(root)
        )
        role = "output" if output is not None or input_specs else "shelf"
        registry, datastore, where, open_mode = _open_one(spec, mode, role=role)
        record_parents = bool(input_specs) and not _parents(registry) and open_mode == "rw"
        if not input_specs:
            input_specs = _parents(registry)
        own_tags = {spec.tag} if spec.tag else set()
    else:
        first, *input_specs = input_specs
        registry, datastore, where, open_mode = _open_one(first, "r", role="input")
        own_tags = {first.tag} if first.tag else set()
        input_specs = [*input_specs, *_parents(registry)]
    try:
        repositories = _open_inputs(input_specs, seen={_identity(where)}, inherited=frozenset())
        if target is not None and record_parents:
            # Only once every input opened: a refused one is never recorded.
            with registry.db.write() as txn:
                registry.set_info(txn, {PARENTS_KEY: json.dumps([s.to_json() for s in input_specs])})
    except Exception:
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
