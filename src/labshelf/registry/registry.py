"""The registry: runs, dataset refs, broadcasts and the change feed in SQL.

Everything here is dialect-neutral SQLAlchemy Core.  Writes go through
:meth:`Database.write`, one transaction per user operation, and record their
change in the ``changes`` table inside that same transaction: a change is
visible exactly when the data it describes is.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType, SimpleNamespace
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    update,
)

from ..errors import CorruptDataset, InvalidName, InvalidValue, RunNotFound, RunNotWritable, ShelfError
from ..names import MAX_RUN
from .engine import Database, Statement, Txn
from .records import MAX_SECONDS, DamagedRef, DatasetRef, RunRecord, Storage, json_list, json_mapping
from .schema import broadcasts, changes, dataset_meta, datasets, derived, runs, shelf_info, user_columns

RUN_STATES = ("running", "finished", "failed", "aborted")

# Statements are built and compiled once per dialect (engine.Statement): the
# hot paths (a put, a small get) then cost the database's own work only.
_DATASET_COLUMNS = tuple(datasets.c)
_WRITABLE_COLUMNS = tuple(c.name for c in datasets.c if c.name != "id")
_FIND = Statement(
    select(*_DATASET_COLUMNS).where(
        datasets.c.run == bindparam("run"),
        datasets.c.name == bindparam("name"),
        datasets.c.data_id == bindparam("data_id"),
    )
)
_LOCK_COLUMNS = (
    runs.c.status,
    datasets.c.id,
    datasets.c.location,
    datasets.c.version,
    # Whether a user column has the name: asked here, in the statement every
    # write runs first, so the check of a new name costs no statement of its own.
    exists().where(user_columns.c.name == bindparam("base")).label("taken"),
)
_LOCK_FROM = runs.outerjoin(
    datasets,
    (datasets.c.run == runs.c.number)
    & (datasets.c.name == bindparam("name"))
    & (datasets.c.data_id == bindparam("data_id")),
)
_LOCK_TARGET = Statement(select(*_LOCK_COLUMNS).select_from(_LOCK_FROM).where(runs.c.number == bindparam("run")))
#: The fields of display metadata (registry/meta.py), in the order they are shown.
META_FIELDS = ("unit", "scale", "precision", "title", "description")


@functools.lru_cache(maxsize=64)
def _lock_target_meta(given: tuple[str, ...]) -> Statement:
    """:data:`_LOCK_TARGET` and whether the name's stored metadata already say the ``given`` fields.

    One statement per set of given fields: a put that repeats what is stored
    pays one EXISTS on the metadata's primary key, and nothing else.
    """
    said = exists().where(
        dataset_meta.c.name == bindparam("base"),
        # A bare bindparam, not a literal: the statement then skips construct_params (engine._Form.direct).
        dataset_meta.c.data_id == bindparam("meta_whole"),
        *(dataset_meta.c[f].is_not_distinct_from(bindparam(f"meta_{f}")) for f in given),
    )
    return Statement(
        select(*_LOCK_COLUMNS, said.label("meta_same")).select_from(_LOCK_FROM).where(runs.c.number == bindparam("run"))
    )


_RUN_STATUS = Statement(select(runs.c.status).where(runs.c.number == bindparam("run")))
_USER_COLUMN_NAMES = Statement(select(user_columns.c.name))


@functools.lru_cache(maxsize=16)
def _rows_named(size: int) -> Statement:
    """The (name, id, location, version, created) rows of ``size`` names of one run and data ID: one IN list
    per bucket of sizes (a batch's names are padded to a power of two), compiled once each."""
    wanted: list[Any] = [bindparam(f"n{i}") for i in range(size)]
    return Statement(
        select(datasets.c.name, datasets.c.id, datasets.c.location, datasets.c.version, datasets.c.created).where(
            datasets.c.run == bindparam("run"),
            datasets.c.data_id == bindparam("data_id"),
            datasets.c.name.in_(wanted),
        )
    )


#: The most names one IN list of :meth:`Registry.lock_targets` asks for.
_NAMES_PER_QUERY = 512
_NAME_KEYS = tuple(f"n{i}" for i in range(_NAMES_PER_QUERY))


class Current(NamedTuple):
    """The row a write replaces: what a writer needs of it."""

    id: int
    location: str | None
    version: int
    created: float


def _rows_of(txn: Txn, run: int, data_id: str, names: Sequence[str]) -> list[tuple[Any, ...]]:
    """(name, id, location, version, created) of those of ``names`` that run ``run`` has with ``data_id``."""
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(names), _NAMES_PER_QUERY):
        chunk = names[start : start + _NAMES_PER_QUERY]
        size = 1 << (len(chunk) - 1).bit_length()
        params: dict[str, Any] = dict(zip(_NAME_KEYS, chunk, strict=False))  # fewer names than keys
        for key in _NAME_KEYS[len(chunk) : size]:
            params[key] = chunk[-1]  # padded with the last name: the same rows
        params["run"], params["data_id"] = run, data_id
        out += txn.tuples(_rows_named(size), params)
    return out


def _check_status(status: str | None, run: int, derived: bool) -> None:
    """RunNotFound / RunNotWritable unless a run of this ``status`` may be written (``derived``: ended ones too)."""
    if status is None:
        raise RunNotFound(f"no run {run} in this shelf")
    if status != "running" and not derived:
        raise RunNotWritable(
            f"run {run} has ended ({status}); datasets of an ended run cannot change. "
            "Start a new run with shelf.new_run()"
        )


def _taken(name: str) -> InvalidName:
    return InvalidName(
        f"dataset name {name.partition('.')[0]!r} is taken by a user column of the run table (made with annotate); "
        "choose another dataset name"
    )

_NEWEST = Statement(
    select(*_DATASET_COLUMNS)
    .where((datasets.c.name == bindparam("name")) & (datasets.c.data_id == bindparam("data_id")))
    .order_by(datasets.c.run.desc())
    .limit(1)
)
_RUN = Statement(select(runs).where(runs.c.number == bindparam("number")))
_LAST_RUN = Statement(select(func.max(runs.c.number)))
_RUN_START_COLUMNS = ("number", "experiment", "params", "status", "started", "ended", "host", "user", "pid", "error")
_ADD_RUN = Statement(insert(runs).values({k: bindparam(k) for k in _RUN_START_COLUMNS}))
_END_RUN = Statement(
    update(runs)
    .where(runs.c.number == bindparam("_number"))
    .values(status=bindparam("status"), ended=bindparam("ended"), error=bindparam("error"))
)
_CHANGE_COLUMNS = ("time", "kind", "run", "name", "data_id", "version", "payload")
_ADD_CHANGE = Statement(insert(changes).values({k: bindparam(k) for k in _CHANGE_COLUMNS}))
_ADD_DATASET = Statement(
    insert(datasets).values({k: bindparam(k) for k in _WRITABLE_COLUMNS}).returning(datasets.c.id)
)
_ADD_DATASET_MANY = Statement(insert(datasets).values({k: bindparam(k) for k in _WRITABLE_COLUMNS}))
_UPDATE_DATASET = Statement(
    update(datasets)
    .where(datasets.c.id == bindparam("_id"))
    .values({k: bindparam(k) for k in _WRITABLE_COLUMNS if k not in ("run", "name", "data_id", "created")})
)
_DERIVED_COLUMNS = ("run", "variable", "source_hash", "inputs", "status", "error", "updated")
_DERIVED_OF_RUN = Statement(select(derived).where(derived.c.run == bindparam("run")).order_by(derived.c.variable))
_DROP_DERIVED = Statement(
    derived.delete().where((derived.c.run == bindparam("run")) & (derived.c.variable == bindparam("variable")))
)
_ADD_DERIVED = Statement(insert(derived).values({k: bindparam(k) for k in _DERIVED_COLUMNS}))
# Only the version that was computed gets the summary: a newer put of the
# same name by another writer keeps its own.
_SET_SUMMARY = Statement(
    update(datasets)
    .where(
        (datasets.c.run == bindparam("run"))
        & (datasets.c.name == bindparam("name"))
        & (datasets.c.data_id == "{}")
        & (datasets.c.version == bindparam("version"))
    )
    .values(summary_value=bindparam("summary_value"))
)

#: Wakes a shelf's live subscribers on PostgreSQL; the channel is named after the schema.
NOTIFY_SQL = "SELECT pg_notify('labshelf_' || current_schema(), '')"

#: The ``shelf_info`` key of the context file (derived variables) recorded for a shelf.
CONTEXT_PATH_KEY = "context_path"


def _dumps(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def usable_time(column: Any) -> ColumnElement[Any]:
    """A time column in a query, NULL where a damaged row holds no usable time.

    The same test as :func:`records.is_time`, in SQL: text SQLite kept in the
    REAL column and PostgreSQL's NaN would otherwise compare as later than
    every time, so one edited row would be selected by ``start > ...``.
    """
    return case((and_(column > -MAX_SECONDS, column < MAX_SECONDS), column), else_=null())


def usable_number(column: Any, dialect: str) -> ColumnElement[Any]:
    """A numeric column in a query, NULL where a damaged row holds text (SQLite) or NaN (PostgreSQL)."""
    if dialect == "sqlite":
        return case((func.typeof(column).in_(("integer", "real")), column), else_=null())
    return case((column != literal(math.nan), column), else_=null())


def ref_from_row(row: Any, repository: str = "", found_in: tuple[str, ...] = ()) -> DatasetRef:
    """Build the public, frozen DatasetRef from a ``datasets`` row.

    A row whose JSON or summary columns cannot be read (edited or damaged)
    still gives a ref, with ``damage`` saying what is wrong: lists of
    datasets keep working and reading that one raises CorruptDataset.
    """
    try:
        return DatasetRef(
            id=row.id,
            run=row.run,
            name=row.name,
            data_id=MappingProxyType(json.loads(row.data_id)),
            kind=row.kind,
            shape=None if row.shape is None else tuple(json_list(row.shape)),
            dtype=row.dtype,
            nbytes=row.nbytes,
            summary=public_summary(row.summary_kind, row.summary_value, row.summary_text, row.thumbnail),
            version=row.version,
            created=row.created,
            updated=row.updated,
            storage=Storage(
                inline=row.inline,
                files=tuple(json_list(row.location)) if row.location else (),
                options=MappingProxyType(json.loads(row.options) if row.options else {}),
            ),
            repository=repository,
            found_in=found_in,
        )
    except (TypeError, ValueError, OverflowError):  # JSONDecodeError is a ValueError
        # Rare: parse each field alone, to say which ones are damaged.
        return _damaged_ref(row, repository, found_in)


def _damaged_ref(row: Any, repository: str, found_in: tuple[str, ...]) -> DatasetRef:
    problems: list[str] = []

    def parsed(column: str, parse: Any, default: Any) -> Any:
        text = getattr(row, column)
        try:
            return parse(text)
        except (TypeError, ValueError, OverflowError) as exc:
            problems.append(f"datasets.{column} {_why(exc)}: {str(text)[:60]!r}")
            return default

    data_id = parsed("data_id", json_mapping, {})
    shape = parsed("shape", lambda t: None if t is None else tuple(json_list(t)), None)
    files = parsed("location", lambda t: tuple(json_list(t)) if t else (), ())
    options = parsed("options", lambda t: json_mapping(t) if t else {}, {})
    summary = None
    try:
        summary = public_summary(row.summary_kind, row.summary_value, row.summary_text, row.thumbnail)
    except (TypeError, ValueError, OverflowError):
        value = row.summary_value if row.summary_kind in _NUMERIC_SUMMARIES else row.summary_text
        problems.append(f"the {row.summary_kind} summary is damaged: {str(value)[:60]!r}")
    return DamagedRef.made(
        "; ".join(problems) or "the registry row cannot be read",
        id=row.id,
        run=row.run,
        name=row.name,
        data_id=MappingProxyType(dict(data_id)),
        kind=row.kind,
        shape=shape,
        dtype=row.dtype,
        nbytes=row.nbytes,
        summary=summary,
        version=row.version,
        created=row.created,
        updated=row.updated,
        storage=Storage(inline=row.inline, files=files, options=MappingProxyType(dict(options))),
        repository=repository,
        found_in=found_in,
    )


def _why(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return "is not JSON"
    return str(exc) if str(exc).startswith("is not") else f"cannot be read ({exc})"


_NUMERIC_SUMMARIES = ("float", "array", "bool")
_TEXTUAL = (str, bytes)


def public_summary(kind: str, value: float | None, text: str | None, thumbnail: bytes | None) -> Any:
    """The one value a summary shows, from its registry columns.

    See :class:`labshelf.datastore.formatter.Summary` for the meaning of
    each summary kind.  A value of the wrong type (SQLite keeps whatever it
    is given) raises ValueError.
    """
    if kind == "image":
        return thumbnail
    if kind in _NUMERIC_SUMMARIES:
        if value is not None and type(value) is not float and isinstance(value, _TEXTUAL):
            # What SQLite's type affinity lets into a REAL column.
            raise ValueError(f"a {kind} summary is a number, not {value!r}")
        return value if kind != "bool" or value is None else bool(value)
    if kind == "int":
        return int(text) if text is not None else None
    if kind == "complex":
        return complex(text) if text is not None else None
    if kind == "none":
        return None
    return text


class Registry:
    """Runs, dataset refs and changes of one shelf, in SQL."""

    def __init__(self, db: Database):
        self.db = db

    # -- shelf info ----------------------------------------------------------

    def info(self) -> dict[str, str]:
        with self.db.read() as txn:
            return {row.key: row.value for row in txn.all(select(shelf_info))}

    def set_info(self, txn: Txn, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            txn.execute(shelf_info.delete().where(shelf_info.c.key == key))
            txn.execute(insert(shelf_info).values(key=key, value=value))

    # -- runs ----------------------------------------------------------------

    def create_run(
        self,
        *,
        number: int | None,
        experiment: str,
        params: Mapping[str, Any],
        host: str,
        user: str,
        pid: int,
        started: float | None = None,
    ) -> RunRecord:
        """A new running run; ``started`` (seconds since the epoch) is for importers only, which
        bring a start time recorded elsewhere; everything else starts a run now."""
        now = time.time() if started is None else started
        with self.db.write() as txn:
            if number is None:
                # Safe without a race: writers are serialised (see Database.write).
                number = (txn.scalar(_LAST_RUN) or 0) + 1
                if number > MAX_RUN:
                    raise InvalidValue(f"run {MAX_RUN} exists: no run number is left (they go up to {MAX_RUN})")
            elif txn.first(_RUN, {"number": number}) is not None:
                raise ShelfError(f"run {number} exists already; leave number=None for the next free one")
            row = {
                "number": number,
                "experiment": experiment,
                "params": _dumps(dict(params)),
                "status": "running",
                "started": now,
                "ended": None,
                "host": host,
                "user": user,
                "pid": pid,
                "error": None,
            }
            txn.execute(_ADD_RUN, row)
            self._change(txn, "run_start", run=number, payload={"experiment": experiment})
        return RunRecord.from_row(SimpleNamespace(**row))

    def finish_run(self, number: int, status: str, error: str | None = None, *, ended: float | None = None) -> RunRecord:
        """End a running run; ``ended`` (seconds since the epoch) is for importers only (see create_run)."""
        if status not in RUN_STATES[1:]:
            raise InvalidValue(f"a run ends as one of {RUN_STATES[1:]}, not {status!r}")
        with self.db.write() as txn:
            row = txn.first(_RUN, {"number": number})
            if row is None:
                raise RunNotFound(f"no run {number} in this shelf")
            if row.status != "running":
                raise RunNotWritable(f"run {number} has ended already ({row.status})")
            txn.execute(_END_RUN, {"_number": number, "status": status, "ended": time.time() if ended is None else ended, "error": error})
            self._change(txn, "run_end", run=number, payload={"status": status})
            row = txn.first(_RUN, {"number": number})
        return RunRecord.from_row(row)

    def run(self, number: int) -> RunRecord | None:
        with self.db.read() as txn:
            row = txn.first(_RUN, {"number": number})
        return None if row is None else RunRecord.from_row(row)

    def runs(self) -> list[RunRecord]:
        with self.db.read() as txn:
            return [RunRecord.from_row(r) for r in txn.all(select(runs).order_by(runs.c.number))]

    def run_numbers(self) -> list[int]:
        with self.db.read() as txn:
            return txn.scalars(select(runs.c.number).order_by(runs.c.number))

    def count_runs(self) -> int:
        with self.db.read() as txn:
            return int(txn.scalar(select(func.count()).select_from(runs)))

    # -- datasets ------------------------------------------------------------

    def find(self, run: int, name: str, data_id: str) -> DatasetRef | None:
        with self.db.read() as txn:
            row = txn.first(_FIND, {"run": run, "name": name, "data_id": data_id})
        return None if row is None else ref_from_row(row, self.db.where)

    def newest(self, name: str, data_id: str) -> DatasetRef | None:
        """The dataset ``name``/``data_id`` of the newest run that has it."""
        with self.db.read() as txn:
            row = txn.first(_NEWEST, {"name": name, "data_id": data_id})
        return None if row is None else ref_from_row(row, self.db.where, (f"run/{row.run}",))

    def dataset_names(self) -> list[str]:
        """Every dataset name of the shelf (from the name index)."""
        with self.db.read() as txn:
            return txn.scalars(select(datasets.c.name).distinct().order_by(datasets.c.name))

    def datasets(self, run: int) -> list[DatasetRef]:
        query = select(*_DATASET_COLUMNS).where(datasets.c.run == run).order_by(datasets.c.id)
        with self.db.read() as txn:
            return [ref_from_row(r, self.db.where) for r in txn.all(query)]

    def count_datasets(self) -> int:
        with self.db.read() as txn:
            return int(txn.scalar(select(func.count()).select_from(datasets)))

    def all_files(self) -> Iterator[str]:
        """Every data file the registry refers to, relative to the datastore root."""
        query = select(datasets.c.location).where(datasets.c.location.is_not(None))
        with self.db.read() as txn:
            locations = txn.scalars(query)
        for location in locations:
            try:
                files = json_list(location)
            except (TypeError, ValueError):
                # Which files it holds is unknown: counting them as orphans would
                # invite deleting a dataset's data.  Say so instead.
                raise CorruptDataset(
                    f"a dataset of {self.db.where} has a damaged datasets.location ({str(location)[:60]!r}): "
                    "its data files are unknown, so orphans cannot be told apart"
                ) from None
            yield from files

    def lock_target(
        self, txn: Txn, run: int, name: str, data_id: str, *, derived: bool = False, create: bool = True
    ) -> Any:
        """In a write transaction: check the run is writable, return the current row.

        Returns the dataset's (id, location, version) row, or None.  Only
        ``derived`` results (computed from a run's data after the fact) may
        be written into a run that has ended.  Where no row exists yet
        (``create``: the caller would insert one), the name must not be a
        user column's: the run table and queries need one meaning per name
        (annotations.define_column checks the reverse).  Both checks run in
        write transactions, so neither can race the other.
        """
        return self._locked_row(txn.first(_LOCK_TARGET, self._lock_params(run, name, data_id)), run, name, derived, create)

    def lock_target_with_meta(
        self, txn: Txn, run: int, name: str, data_id: str, given: tuple[str, ...], params: Mapping[str, Any],
        *, derived: bool = False,
    ) -> tuple[Any, bool]:
        """:meth:`lock_target`, and whether the name's stored display metadata already say the ``given``
        fields (sorted names; their values in ``params`` as ``meta_<field>``)."""
        values = self._lock_params(run, name, data_id)
        values.update(params)
        values["meta_whole"] = "{}"
        row = txn.first(_lock_target_meta(given), values)
        return self._locked_row(row, run, name, derived, create=True), bool(row is not None and row.meta_same)

    @staticmethod
    def _lock_params(run: int, name: str, data_id: str) -> dict[str, Any]:
        # A composite's part (name.part) is checked by its dataset's name.
        return {"run": run, "name": name, "data_id": data_id, "base": name.partition(".")[0]}

    @staticmethod
    def _locked_row(row: Any, run: int, name: str, derived: bool, create: bool) -> Any:
        _check_status(None if row is None else row.status, run, derived)
        if row.id is None:
            if create and row.taken:
                raise _taken(name)
            return None
        return row

    def lock_targets(
        self, txn: Txn, run: int, names: Sequence[str], data_id: str, *, derived: bool = False
    ) -> dict[str, Current]:
        """:meth:`lock_target` for many names of one run and data ID (a batch of puts).

        Returns the current row of each name that has one; a name missing
        from the result is new.  The checks are :meth:`lock_target`'s: the
        run is writable, and no new name is a user column's.  A few
        statements, whatever the number of names.
        """
        _check_status(txn.scalar(_RUN_STATUS, {"run": run}), run, derived)
        found = {row[0]: Current(*row[1:]) for row in _rows_of(txn, run, data_id, names)}
        new = [name for name in names if name not in found]
        if new:
            taken = set(txn.scalars(_USER_COLUMN_NAMES))
            for name in new:
                if name.partition(".")[0] in taken:
                    raise _taken(name)
        return found

    def write_datasets(
        self, txn: Txn, run: int, data_id: str, rows: Sequence[tuple[str, Current | None, Mapping[str, Any]]],
        *, change: str, now: float | None = None,
    ) -> list[tuple[int, int, float]]:
        """Insert or replace many dataset rows of one run and data ID, and record one change each.

        ``rows`` are (name, current row from :meth:`lock_targets` or None,
        fields as for :meth:`write_dataset`).  Returns (dataset id, version,
        created) per row, in order.  Runs in a write transaction, after :meth:`lock_targets`.
        ``now`` is the rows' created/updated time (default: now).
        """
        now = time.time() if now is None else now
        added: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        logged: list[dict[str, Any]] = []
        new_row = {"run": run, "data_id": data_id, "version": 1, "created": now, "updated": now}
        change_row = {"time": now, "kind": change, "run": run, "data_id": data_id, "payload": None}
        for name, current, fields in rows:
            if current is None:
                added.append({**fields, **new_row, "name": name})
                logged.append({**change_row, "name": name, "version": 1})
            else:
                version = current.version + 1
                updated.append({**fields, "_id": current.id, "version": version, "updated": now})
                logged.append({**change_row, "name": name, "version": version})
        txn.execute_many(_ADD_DATASET_MANY, added)
        txn.execute_many(_UPDATE_DATASET, updated)
        # executemany gives no ids back: the unique index finds them, a few names per statement.
        ids = {row[0]: int(row[1]) for row in _rows_of(txn, run, data_id, [row["name"] for row in added])}
        txn.execute_many(_ADD_CHANGE, logged)
        if self.db.dialect.name == "postgresql" and logged:
            txn.execute_sql(NOTIFY_SQL)  # once: delivered at commit, once per transaction anyway
        return [
            (ids[name], 1, now) if current is None else (int(current.id), current.version + 1, current.created)
            for name, current, _fields in rows
        ]

    def read_for_update(self, txn: Txn, dataset_id: int) -> DatasetRef:
        ref = ref_from_row(txn.first(select(*_DATASET_COLUMNS).where(datasets.c.id == dataset_id)), self.db.where)
        if ref.damage is not None:
            raise CorruptDataset(
                f"dataset {ref.name!r} of run {ref.run} cannot change: its registry row is damaged ({ref.damage}); "
                "put it anew under another name, or delete it"
            )
        return ref

    def write_dataset(
        self,
        txn: Txn,
        *,
        existing_id: int | None,
        version: int,
        run: int,
        name: str,
        data_id: str,
        fields: Mapping[str, Any],
        change: str,
        payload: Any = None,
    ) -> int:
        """Insert or replace a dataset row and record its change; return its id.

        Runs in ``txn``, a write transaction, after :meth:`lock_target`.

        ``fields`` are the ``datasets`` columns the formatter decided (kind,
        shape, dtype, nbytes, summary_*, thumbnail, inline, location,
        options); JSON-valued ones already as text.
        """
        now = time.time()
        if existing_id is None:
            dataset_id = txn.scalar(
                _ADD_DATASET,
                {
                    **fields,
                    "run": run,
                    "name": name,
                    "data_id": data_id,
                    "version": version,
                    "created": now,
                    "updated": now,
                },
            )
        else:
            txn.execute(_UPDATE_DATASET, {**fields, "_id": existing_id, "version": version, "updated": now})
            dataset_id = existing_id
        self._change(txn, change, run=run, name=name, data_id=data_id, version=version, payload=payload)
        return int(dataset_id)

    def delete_dataset(self, txn: Txn, *, dataset_id: int, run: int, name: str, data_id: str, version: int) -> list[str]:
        """Remove a dataset row, and the rows of its parts if it is a composite (``name.part``);
        tag memberships go with them.  Record the change; return the data files to remove
        once the transaction committed."""
        rows = txn.all(
            select(datasets.c.id, datasets.c.location).where(
                (datasets.c.run == run)
                & (datasets.c.data_id == data_id)
                & ((datasets.c.id == dataset_id) | datasets.c.name.startswith(name + ".", autoescape=True))
            )
        )
        files: list[str] = []
        for row in rows:
            txn.execute(datasets.delete().where(datasets.c.id == row.id))
            try:
                files.extend(json_list(row.location) if row.location else [])
            except (TypeError, ValueError):
                pass  # a damaged location: its files stay, as orphans, rather than guessed at
        self._change(txn, "delete", run=run, name=name, data_id=data_id, version=version + 1)
        return files

    # -- broadcasts (persist=False) ------------------------------------------

    def broadcast(
        self, run: int, name: str, data_id: str, kind: str, inline: str | None,
        also: Callable[[Txn], Any] | None = None,
    ) -> None:
        """Record a value that is only broadcast; ``also`` writes more in the same transaction
        (display metadata the put carries), once the run is known to be writable."""
        with self.db.write() as txn:
            self.lock_target(txn, run, name, data_id, create=False)  # a broadcast stores no dataset
            if also is not None:
                also(txn)
            key = (
                (broadcasts.c.run == run)
                & (broadcasts.c.name == name)
                & (broadcasts.c.data_id == data_id)
            )
            txn.execute(broadcasts.delete().where(key))
            txn.execute(
                insert(broadcasts).values(
                    run=run, name=name, data_id=data_id, kind=kind, inline=inline, updated=time.time()
                )
            )
            self._change(txn, "broadcast", run=run, name=name, data_id=data_id)

    def was_broadcast(self, run: int, name: str, data_id: str) -> bool:
        query = select(broadcasts.c.kind).where(
            (broadcasts.c.run == run) & (broadcasts.c.name == name) & (broadcasts.c.data_id == data_id)
        )
        with self.db.read() as txn:
            return txn.first(query) is not None

    # -- change feed -----------------------------------------------------------

    def _change(
        self,
        txn: Txn,
        kind: str,
        *,
        run: int | None = None,
        name: str | None = None,
        data_id: str | None = None,
        version: int | None = None,
        payload: Any = None,
    ) -> None:
        txn.execute(
            _ADD_CHANGE,
            {
                "time": time.time(),
                "kind": kind,
                "run": run,
                "name": name,
                "data_id": data_id,
                "version": version,
                "payload": None if payload is None else _dumps(payload),
            },
        )
        if self.db.dialect.name == "postgresql":
            # Delivered at commit, once per transaction and channel: wakes
            # subscribers (live/feed.py), which then read the new rows.
            txn.execute_sql(NOTIFY_SQL)

    def last_seq(self) -> int:
        """The newest change sequence number (0 for none)."""
        with self.db.read() as txn:
            return int(txn.scalar(select(func.max(changes.c.seq))) or 0)

    def broadcast_value(self, run: int, name: str, data_id: str) -> tuple[str, str | None] | None:
        """(kind, inline JSON or None) of the latest broadcast of a name, or None."""
        query = select(broadcasts.c.kind, broadcasts.c.inline).where(
            (broadcasts.c.run == run) & (broadcasts.c.name == name) & (broadcasts.c.data_id == data_id)
        )
        with self.db.read() as txn:
            row = txn.first(query)
        return None if row is None else (row.kind, row.inline)

    def changes_since(self, seq: int = 0, limit: int = 10_000) -> list[dict[str, Any]]:
        query = select(changes).where(changes.c.seq > seq).order_by(changes.c.seq).limit(limit)
        with self.db.read() as txn:
            return [r._asdict() for r in txn.all(query)]

    # -- derived variables -----------------------------------------------------

    def context_path(self) -> str | None:
        """The context file recorded for this shelf (as given to :meth:`set_context_path`), or None."""
        with self.db.read() as txn:
            return txn.scalar(select(shelf_info.c.value).where(shelf_info.c.key == CONTEXT_PATH_KEY))

    def set_context_path(self, path: str | None) -> None:
        """Record the context file of this shelf (None forgets it)."""
        with self.db.write() as txn:
            if path is None:
                txn.execute(shelf_info.delete().where(shelf_info.c.key == CONTEXT_PATH_KEY))
            else:
                self.set_info(txn, {CONTEXT_PATH_KEY: path})

    def derived_rows(self, run: int | None = None) -> list[dict[str, Any]]:
        """Bookkeeping rows of derived variables (of one run, or all), by run and variable.

        Each row is a dict of the ``derived`` columns, ``inputs`` parsed from JSON.
        """
        with self.db.read() as txn:
            if run is not None:
                rows = txn.all(_DERIVED_OF_RUN, {"run": run})
            else:
                rows = txn.all(select(derived).order_by(derived.c.run, derived.c.variable))
        return [_derived_record(row) for row in rows]

    def derived_inputs(
        self, run: int, wanted: Sequence[tuple[str, str]]
    ) -> tuple[RunRecord, list[dict[str, Any]], dict[tuple[str, str], DatasetRef]] | None:
        """What computing the derived variables of a run starts from, read in one snapshot.

        Returns the run's record, its bookkeeping rows (as :meth:`derived_rows`)
        and the refs of the ``wanted`` (name, data ID key) datasets it has;
        None if there is no such run.
        """
        with self.db.read(snapshot=True) as txn:
            row = txn.first(_RUN, {"number": run})
            if row is None:
                return None
            rows = txn.all(_DERIVED_OF_RUN, {"run": run})
            refs = {}
            for name, data_id in wanted:
                found = txn.first(_FIND, {"run": run, "name": name, "data_id": data_id})
                if found is not None:
                    refs[(name, data_id)] = ref_from_row(found, self.db.where)
        records = [_derived_record(r) for r in rows]
        return RunRecord.from_row(row), records, refs

    def record_derived(
        self, rows: Sequence[Mapping[str, Any]], summaries: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        """Replace bookkeeping rows of derived variables, in one transaction.

        ``rows`` have the ``derived`` columns but ``updated`` (``inputs`` as
        a JSON-compatible dict).  ``summaries`` set the summary value of
        result datasets: dicts of run, name, version and summary_value; a
        version that is no longer current is left alone.
        """
        now = time.time()
        with self.db.write() as txn:
            for row in rows:
                txn.execute(_DROP_DERIVED, {"run": row["run"], "variable": row["variable"]})
                txn.execute(_ADD_DERIVED, {**row, "inputs": _dumps(row["inputs"]), "updated": now})
            for summary in summaries:
                txn.execute(_SET_SUMMARY, summary)


def _derived_record(row: Any) -> dict[str, Any]:
    record = row._asdict()
    try:
        record["inputs"] = json_mapping(row.inputs)
    except (TypeError, ValueError):
        # Damaged bookkeeping: the result counts as stale (no inputs match).
        record["inputs"] = {}
        record["damage"] = f"derived.inputs is not JSON: {str(row.inputs)[:60]!r}"
    return record
