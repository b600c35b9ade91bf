"""The Shelf: one repository (a registry plus a datastore root) and its API.

``labshelf.create`` and ``labshelf.open`` make Shelf objects; everything a
user does with runs and datasets starts here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from .datastore import Datastore, formatters
from .errors import (
    CorruptDataset,
    DatasetNotFound,
    NotAShelf,
    NotPersisted,
    ReadOnlyShelf,
    RunNotFound,
    ShelfError,
    ShelfExists,
    close_matches,
)
from .names import check_name, data_id_key, format_data_id, normalize_data_id
from .registry import migrate
from .registry.annotations import Annotations
from .registry.engine import Database, is_postgres_url, make_engine, sqlite_url
from .registry.records import DatasetRef
from .registry.registry import Registry
from .writer import Writer

if TYPE_CHECKING:
    from .derived import ReprocessReport
    from .run import Run
    from .runview import RunView

MARKER = "labshelf.json"
REGISTRY_FILE = "registry.sqlite3"
MODES = ("r", "rw")


class Shelf:
    """A shelf of runs and their datasets.  Make one with :func:`create` or :func:`open`.

    A Shelf behaves like a read-only mapping of run number to :class:`Run`
    (``12 in shelf``, ``shelf[12]``, ``for run in shelf``) and is a context
    manager that closes its database connections.
    """

    def __init__(self, *, registry: Registry, datastore: Datastore, where: str, mode: str):
        self._registry = registry
        self._datastore = datastore
        self._writer = Writer(registry, datastore)
        self._annotations = Annotations(registry)
        self._closed = False
        self.where = where
        self.mode = mode

    # -- identity and lifecycle --------------------------------------------------

    @property
    def root(self) -> Path:
        """The datastore root (where data files live)."""
        return self._datastore.root

    @property
    def readonly(self) -> bool:
        return self.mode == "r"

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyShelf(
                f"the shelf {self.where} is open read-only (mode='r'); open it with mode='rw' to write"
            )

    def close(self) -> None:
        """Release database connections.  The shelf cannot be used afterwards."""
        self._closed = True
        self._registry.db.dispose()

    def __enter__(self) -> Shelf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:  # never reconnect just to describe a closed shelf
            return f"<Shelf {self.where} mode={self.mode!r} closed>"
        return f"<Shelf {self.where} mode={self.mode!r} runs={len(self)}>"

    def info(self) -> dict[str, Any]:
        """Facts about the shelf: where it is, its schema, its size."""
        info: dict[str, Any] = dict(self._registry.info())
        info.update(
            where=self.where,
            root=str(self.root),
            mode=self.mode,
            backend=self._registry.db.engine.dialect.name,
            runs=self._registry.count_runs(),
            datasets=self._registry.count_datasets(),
        )
        return info

    # -- runs --------------------------------------------------------------------

    def new_run(
        self, experiment: str = "", params: Mapping[str, Any] | None = None, *, number: int | None = None
    ) -> Run:
        """Start a run; use it as a context manager so it ends as finished or failed.

        Parameters
        ----------
        experiment
            Name of the experiment (a free string, shown in the run table).
        params
            JSON-compatible parameters of the run.
        number
            Run number to use; by default the next free one.
        """
        import socket

        from .run import Run

        self._check_writable()
        if not isinstance(experiment, str) or "\x00" in experiment or len(experiment) > 255:
            raise ShelfError(f"experiment must be a str of at most 255 characters without NUL, not {experiment!r}")
        params = dict(params or {})
        try:
            json.dumps(params)
        except (TypeError, ValueError) as exc:
            raise ShelfError(f"run params must be JSON-compatible (numbers, strings, lists, dicts): {exc}") from exc
        if number is not None and (not isinstance(number, int) or number < 1):
            raise ShelfError(f"a run number is a positive int, not {number!r}")
        record = self._registry.create_run(
            number=number, experiment=experiment, params=params, host=socket.gethostname(), user=_user(), pid=os.getpid()
        )
        return Run(self, record)

    def run(self, number: int) -> Run:
        """The run with this number (RunNotFound if none)."""
        from .run import Run

        if isinstance(number, bool) or not isinstance(number, int):
            raise RunNotFound(f"a run is found by its number (an int), not {number!r}")
        record = self._registry.run(number)
        if record is None:
            numbers = self._registry.run_numbers()
            hint = f"runs go from {numbers[0]} to {numbers[-1]}" if numbers else "the shelf has no runs yet"
            raise RunNotFound(f"no run {number} in {self.where}; {hint}")
        return Run(self, record)

    @property
    def runs(self) -> RunView:
        """The run table: one row per run, built from the registry alone."""
        from .runview import RunView

        return RunView(self)

    # -- annotations -------------------------------------------------------------------

    def annotate(
        self,
        runs: int | Iterable[int],
        *,
        comment: Any = ...,
        tags: Iterable[str] | None = None,
        **columns: Any,
    ) -> int:
        """Add what people know about runs: a comment, tags, user columns.

        Parameters
        ----------
        runs
            A run number or several.
        comment
            The run's comment (None clears it; leave it out to keep it).
        tags
            The run's tags (replaces the list).
        **columns
            User columns and their values (numbers, text or bools; None
            clears one).  A new name creates the column, typed by its value.

        Returns
        -------
        int
            How many values changed.  Each change is kept in the history
            (:meth:`history`) and the change feed.  Finished runs can be
            annotated: their data are not touched.
        """
        self._check_writable()
        numbers = [runs] if isinstance(runs, int) else [self._run_number(r) for r in runs]
        return self._annotations.annotate(numbers, comment=comment, tags=tags, columns=columns, user=_user())

    def history(self, run: int) -> list[dict[str, Any]]:
        """Every annotation change of a run: field, old, new, user, time (oldest first)."""
        self.run(run)  # RunNotFound with a hint
        return self._annotations.history(run)

    # -- derived variables ---------------------------------------------------------------

    @property
    def context_path(self) -> Path | None:
        """The context file of derived variables: the one recorded with :meth:`set_context`,
        else ``context.py`` in the root if it exists, else None."""
        from .derived import context_path

        return context_path(self)

    def set_context(self, path: str | os.PathLike[str] | None) -> Path | None:
        """Record ``path`` as this shelf's context file, once it loads without error (None forgets it).

        A file inside the shelf's root is recorded relative to it, so it
        moves with the shelf.  Returns the context file now in use.
        """
        from .derived import set_context

        return set_context(self, path)

    def reprocess(
        self,
        runs: Any = None,
        variables: str | Iterable[str] | None = None,
        *,
        jobs: int = 1,
        dask_scheduler: str | None = None,
        force: bool = False,
        progress: bool = True,
    ) -> ReprocessReport:
        """Compute the derived variables of the context file where they are stale.

        Parameters
        ----------
        runs
            Which runs: None (all), a run number, a list of them, a
            ``range``, or a text like ``"10-20,25"`` (ranges take the runs
            that exist).
        variables
            Names of variables to compute (with the variables they depend
            on); None for all.
        jobs
            How many processes compute at once, this one included.
        dask_scheduler
            Address of a Dask distributed scheduler (``"tcp://host:8786"``)
            whose workers compute instead; they must reach this shelf by its
            path and its registry.
        force
            Recompute the chosen variables even where their results are current.
        progress
            Show a progress bar over runs (tqdm; a widget in Jupyter).

        Returns
        -------
        ReprocessReport
            How many (run, variable) results were computed, up to date,
            failed or had missing inputs, and the errors.  A variable that
            raises is recorded as failed for that run and never stops the
            others; variables that depend on it are "missing" there.

        Raises
        ------
        ContextError
            The shelf has no context file, or it cannot be loaded (the
            message names the file and line).
        """
        from .derived import reprocess

        return reprocess(
            self, runs, variables, jobs=jobs, dask_scheduler=dask_scheduler, force=force, progress=progress
        )

    def derived_status(self, run: int | None = None) -> list[dict[str, Any]]:
        """Bookkeeping of derived variables, per (run, variable), of one run or all.

        Each dict has ``run``, ``variable``, ``status`` (``"ok"``,
        ``"error"``, ``"missing"``), ``error`` (the message, or None),
        ``inputs`` (dataset label -> version it was computed from),
        ``source_hash`` and ``updated`` (seconds since the epoch).
        """
        from .derived import derived_status

        return derived_status(self, run)

    def __getitem__(self, number: int) -> Run:
        return self.run(number)

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and self._registry.run(number) is not None

    def __iter__(self) -> Iterator[Run]:
        from .run import Run

        return (Run(self, record) for record in self._registry.runs())

    def __len__(self) -> int:
        return self._registry.count_runs()

    def _ipython_key_completions_(self) -> list[int]:
        return self._registry.run_numbers()[-50:]

    # -- datasets --------------------------------------------------------------------

    def find(self, name: str, *, run: int, data_id: Mapping[str, Any] | None = None) -> DatasetRef:
        """The DatasetRef of ``name`` in ``run`` (DatasetNotFound if none)."""
        check_name(name)
        key = data_id_key(normalize_data_id(data_id))
        run = self._run_number(run)
        ref = self._registry.find(run, name, key)
        if ref is None:
            raise self._not_found(run, name, key, data_id)
        return ref

    def get(self, name: str, *, run: int, data_id: Mapping[str, Any] | None = None) -> Any:
        """Read the value of dataset ``name`` of ``run`` (with its exact type)."""
        ref = self.find(name, run=run, data_id=data_id)
        return self.read(ref)

    def read(self, ref: DatasetRef) -> Any:
        """Read the value a DatasetRef points to."""
        formatter = formatters.by_kind(ref.kind)
        if ref.storage.inline is not None:
            return self._read_inline(formatter, ref)
        for _attempt in range(3):
            paths = [self._datastore.path(f) for f in ref.storage.files]
            try:
                return formatter.read(paths, ref.name, ref, {})
            except FileNotFoundError as exc:
                # A writer may have replaced this version between our lookup
                # and the read: look again and read the newer one.
                fresh = self._registry.find(ref.run, ref.name, data_id_key(ref.data_id))
                if fresh is None or fresh.version == ref.version:
                    raise CorruptDataset(
                        f"dataset {ref.label!r} of run {ref.run}: its data file {exc.filename} is missing"
                    ) from exc
                ref = fresh
                if ref.storage.inline is not None:
                    return self._read_inline(formatter, ref)
            except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
                raise CorruptDataset(
                    f"dataset {ref.label!r} of run {ref.run} cannot be read: data file "
                    f"{', '.join(str(p) for p in paths)} is damaged ({exc}). Other datasets are not affected"
                ) from exc
        raise CorruptDataset(f"dataset {ref.label!r} of run {ref.run} kept changing while being read")

    @staticmethod
    def _read_inline(formatter: Any, ref: DatasetRef) -> Any:
        try:
            return formatter.from_inline(ref.storage.inline)
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptDataset(
                f"dataset {ref.label!r} of run {ref.run}: its value in the registry is damaged ({exc}). "
                "Other datasets are not affected"
            ) from exc

    def datasets(self, run: int) -> list[DatasetRef]:
        """Every dataset of a run, in the order they were first put."""
        return self._registry.datasets(self._run_number(run))

    def orphans(self, older_than: float = 3600.0) -> list[str]:
        """Data files no dataset refers to (left by crashed writers)."""
        return self._datastore.orphans(self._registry.all_files(), older_than=older_than)

    def _run_number(self, run: Any) -> int:
        if isinstance(run, bool) or not isinstance(run, int):
            number = getattr(run, "number", None)
            if isinstance(number, int):
                return number
            raise RunNotFound(f"run= takes a run number (an int) or a Run, not {run!r}")
        return run

    def _not_found(self, run: int, name: str, key: str, data_id: Any) -> DatasetNotFound:
        """The error to raise for a dataset that is not there, saying why."""
        if self._registry.run(run) is None:
            self.run(run)  # raises RunNotFound with a hint
        if self._registry.was_broadcast(run, name, key):
            return NotPersisted(
                f"dataset {name!r} of run {run} was put with persist=False: it was broadcast to "
                "live subscribers only and never stored"
            )
        refs = self._registry.datasets(run)
        same_name = [r for r in refs if r.name == name]
        if same_name:
            ids = "; ".join(format_data_id(r.data_id) or "(no data ID)" for r in same_name[:10])
            return DatasetNotFound(
                f"run {run} has {name!r} only with other data IDs than "
                f"{format_data_id(normalize_data_id(data_id)) or '(none)'}: {ids}"
            )
        names = sorted({r.name for r in refs})
        return DatasetNotFound(f"run {run} has no dataset {name!r}{close_matches(name, names)}")


def _user() -> str:
    """The OS user name, recorded with runs and annotations."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return str(os.getuid())


# -- creating and opening ---------------------------------------------------------------


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
