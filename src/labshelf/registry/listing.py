"""Listings for browsing: pages of runs and datasets, names by prefix, thumbnails.

Every front end (dataset tree, gallery, run table, completion, HTML reprs,
the sidebar's server) reads the registry through these queries, by way of
``labshelf.browse``; none of them builds SQL of its own.  Each query touches
only what it returns, so its cost does not grow with the shelf:

- pages are bounded (``LIMIT``); a run's datasets are listed in name order
  from a *keyset cursor* (the ``(name, data_id)`` the previous page stopped
  at), and a group of names (``scan/...``) is stepped over in one probe, so a
  run of 10,000 datasets opens as fast as a run of ten;
- names by prefix and run numbers by their digits are index ranges;
- thumbnails come from the ``datasets`` rows, never from data files.

Rows of composite parts (``calib.gain``, see ``datastore/composite.py``)
are never listed as datasets of their own: the composite stands for them.

What leaves this module is immutable: named tuples (:class:`RunEntry`,
:class:`DatasetEntry`, :class:`GroupEntry`), DatasetRefs and plain values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, collate, false, func, or_, select, tuple_

from .engine import Statement, Txn
from .records import DatasetRef
from .registry import Registry, ref_from_row
from .schema import changes, datasets, run_tags, runs

#: Where a page of a run's datasets continues: (name, data ID text, exclusive?).
#: ``exclusive`` is False when the cursor is a lower bound that may itself be a
#: name (the first name after a skipped group).
Cursor = tuple[str, str, bool]


class RunEntry(NamedTuple):
    """A run as a listing shows it."""

    number: int
    experiment: str
    status: str
    started: float


class RunOverview(NamedTuple):
    """A run with what a shelf's summary shows of it: times, comment, tags, dataset count."""

    number: int
    experiment: str
    status: str
    started: float
    ended: float | None
    comment: str | None
    tags: tuple[str, ...]
    datasets: int


class DatasetEntry(NamedTuple):
    """A dataset as a listing shows it (no value, no summary)."""

    run: int
    name: str
    data_id: str  # the canonical JSON text (names.data_id_key)
    kind: str
    shape: str | None  # JSON list of ints, e.g. "[512,512]"
    dtype: str | None
    nbytes: int
    in_files: bool


class GroupEntry(NamedTuple):
    """Names sharing a prefix: ``part`` is the next path part under the listed prefix."""

    part: str
    #: A dataset is named exactly ``prefix + part`` too (the group's id then ends in "/").
    shadowed: bool


#: Datasets that are listed: not the parts of a composite (``calexp.psf``).
_WHOLE = datasets.c.name.not_like("%.%")
# Above every character a name can hold: the end of a byte-wise prefix range.
_TOP = "\U0010ffff"

# Built and compiled once per dialect (see engine.Statement): a page then
# costs the database's work, not SQL compilation.
_RUN_COLUMNS = (runs.c.number, runs.c.experiment, runs.c.status, runs.c.started)
_RUN = Statement(select(*_RUN_COLUMNS).where(runs.c.number == bindparam("run")))
_RUN_PAGE = select(*_RUN_COLUMNS).order_by(runs.c.number.desc()).limit(bindparam("limit")).offset(bindparam("offset"))
_RUN_PAGES = {
    False: Statement(_RUN_PAGE),
    True: Statement(
        _RUN_PAGE.where(
            select(datasets.c.id)
            .where(
                datasets.c.run == runs.c.number,
                datasets.c.name.ilike(bindparam("pattern"), escape="\\"),
                _WHOLE,
            )
            .exists()
        )
    ),
}
_NAME_TAKEN = Statement(
    select(datasets.c.id).where(datasets.c.run == bindparam("run"), datasets.c.name == bindparam("name")).limit(1)
)
_ENTRY_COLUMNS = (
    datasets.c.run,
    datasets.c.name,
    datasets.c.data_id,
    datasets.c.kind,
    datasets.c.shape,
    datasets.c.dtype,
    datasets.c.nbytes,
    datasets.c.location.is_not(None).label("in_files"),
)
_COUNT_IN_RUN = Statement(select(func.count()).select_from(datasets).where(datasets.c.run == bindparam("run"), _WHOLE))
_MAX_RUN = Statement(select(func.max(runs.c.number)))
_SUMMARY_VALUE = Statement(select(datasets.c.summary_value).where(datasets.c.id == bindparam("id")))
_VERSION = Statement(
    select(
        select(func.max(runs.c.number)).scalar_subquery(),
        select(func.count()).select_from(runs).scalar_subquery(),
        select(func.max(changes.c.seq)).scalar_subquery(),
    )
)

# Names by prefix (completion).  On SQLite a *loose index scan*: one
# ``min(name) > previous`` probe of the (name, ...) index per distinct name,
# so a name held by 10,000 runs costs one B-tree seek, not 10,000 rows.
# SQLite compares TEXT byte-wise, so the names starting with a prefix are
# exactly the range [prefix, prefix + U+10FFFF).  PostgreSQL may compare by a
# locale's rules, where that range is not the prefix set: it gets LIKE.
_name, _run = datasets.c.name, datasets.c.run
_RANGE = and_(_name >= bindparam("low"), _name < bindparam("high"))
_FIRST_NAME = Statement(select(func.min(_name)).where(_RANGE))
_NEXT_NAME = Statement(select(func.min(_name)).where(_name > bindparam("after"), _name < bindparam("high")))
_FIRST_NAME_IN_RUN = Statement(select(func.min(_name)).where(_run == bindparam("run"), _RANGE))
_NEXT_NAME_IN_RUN = Statement(
    select(func.min(_name)).where(_run == bindparam("run"), _name > bindparam("after"), _name < bindparam("high"))
)
_LIKE = _name.like(bindparam("pattern"), escape="\\")
_NAMES_LIKE = Statement(select(_name).distinct().where(_LIKE).order_by(_name).limit(bindparam("limit")))
_NAMES_LIKE_IN_RUN = Statement(
    select(_name).distinct().where(_run == bindparam("run"), _LIKE).order_by(_name).limit(bindparam("limit"))
)
_SOME_DATA_IDS = Statement(
    select(datasets.c.data_id).distinct().where(_name == bindparam("name")).order_by(datasets.c.data_id).limit(bindparam("limit"))
)

# Images across runs (the gallery): the (name, data_id, summary_kind) index answers.
_IMAGE_WHERE = and_(_name == bindparam("name"), datasets.c.data_id == bindparam("data_id"), datasets.c.summary_kind == "image")
_IMAGE_RUNS = Statement(select(_run).where(_IMAGE_WHERE).order_by(_run.desc()))
_KIND_OF = Statement(select(datasets.c.kind).where(_name == bindparam("name"), datasets.c.data_id == bindparam("data_id")).limit(1))
_IMAGE_NAMES = Statement(select(_name).where(datasets.c.summary_kind == "image").distinct().order_by(_name).limit(bindparam("limit")))
_ALL_NAMES = Statement(select(_name).distinct())

#: Statements listing a run's datasets, by (byte-order name column?, prefix?, cursor kind, search?).
_LISTINGS: dict[tuple[bool, bool, bool | None, bool], Statement] = {}


def like_containing(text: str) -> str:
    """A LIKE pattern for names containing ``text`` (its own ``%``, ``_`` and ``\\`` taken literally)."""
    return f"%{_escape_like(text)}%"


def like_glob(pattern: str) -> str:
    """A LIKE pattern for a glob: ``*`` any run of characters, ``?`` one; the rest literal."""
    return _escape_like(pattern).replace("*", "%").replace("?", "_")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def after_prefix(prefix: str) -> str:
    """The smallest string after every string that starts with ``prefix`` (which ends in "/")."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Listing:
    """The browsing queries of one registry (see the module docstring).

    Thread-safe: each call is one read transaction of its own (or a
    snapshot where several statements must agree), and the only state is
    the PostgreSQL collation learned on first use.
    """

    def __init__(self, registry: Registry):
        self._registry = registry
        self._db = registry.db
        self._name_order: Any = None

    # -- runs -------------------------------------------------------------------------

    def run(self, number: int) -> RunEntry | None:
        """One run, or None."""
        with self._db.read() as txn:
            row = txn.tuples(_RUN, {"run": number})
        return RunEntry._make(row[0]) if row else None

    def runs(self, offset: int, limit: int, containing: str = "") -> list[RunEntry]:
        """Runs newest first; with ``containing``, those holding a dataset whose name contains it (any case)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if containing:
            params["pattern"] = like_containing(containing)
        with self._db.read() as txn:
            return [RunEntry._make(r) for r in txn.tuples(_RUN_PAGES[bool(containing)], params)]

    def count_runs(self) -> int:
        return self._registry.count_runs()

    def latest_runs(self, limit: int) -> tuple[list[RunOverview], int]:
        """The newest ``limit`` runs with their comment, tags and dataset count; and how many runs there are."""
        latest = (
            select(runs.c.number, runs.c.experiment, runs.c.status, runs.c.started, runs.c.ended, runs.c.comment)
            .order_by(runs.c.number.desc())
            .limit(limit)
        )
        with self._db.read(snapshot=True) as txn:
            rows = txn.tuples(latest)
            total = int(txn.scalar(select(func.count()).select_from(runs)))
            numbers = [r[0] for r in rows]
            counts: dict[int, int] = {}
            tags: dict[int, list[str]] = {}
            if numbers:
                counts = dict(
                    txn.tuples(select(datasets.c.run, func.count()).where(datasets.c.run.in_(numbers)).group_by(datasets.c.run))
                )
                tag_query = select(run_tags.c.run, run_tags.c.tag).where(run_tags.c.run.in_(numbers)).order_by(run_tags.c.tag)
                for run, tag in txn.tuples(tag_query):
                    tags.setdefault(run, []).append(tag)
        found = [
            RunOverview(number, experiment, status, started, ended, comment, tuple(tags.get(number, ())), counts.get(number, 0))
            for number, experiment, status, started, ended, comment in rows
        ]
        return found, total

    def overview(self) -> tuple[int, float | None, str]:
        """(how many runs, the time of the newest change or None, the database: sqlite or postgresql)."""
        with self._db.read(snapshot=True) as txn:
            count = int(txn.scalar(select(func.count()).select_from(runs)))
            newest = txn.scalar(select(changes.c.time).order_by(changes.c.seq.desc()).limit(1))
        return count, newest, self._db.dialect.name

    def nearest_runs(self, number: int, limit: int) -> list[int]:
        """The ``limit`` run numbers closest to ``number`` (for "no run 99; did you mean ..."), closest first."""
        below = select(runs.c.number).where(runs.c.number < number).order_by(runs.c.number.desc()).limit(limit)
        above = select(runs.c.number).where(runs.c.number > number).order_by(runs.c.number).limit(limit)
        with self._db.read(snapshot=True) as txn:
            found = [*txn.scalars(below), *txn.scalars(above)]
        return sorted(found, key=lambda n: (abs(n - number), n))[:limit]

    def version(self) -> str:
        """Changes whenever the shelf does: newest run, number of runs, newest change."""
        # A new run, a put into a running one, an annotation or a run's end each move one of them.
        with self._db.read() as txn:
            row = txn.tuples(_VERSION)[0]
        return ":".join("" if v is None else str(v) for v in row)

    def run_numbers(self, prefix: str = "", *, name: str | None = None, limit: int = 50) -> list[int]:
        """Run numbers whose digits start with ``prefix``, newest first; with ``name``, runs that have it."""
        if prefix and (not prefix.isascii() or not prefix.isdigit() or prefix.startswith("0")):
            return []  # run numbers are positive and written without leading zeros
        column = runs.c.number if name is None else _run
        with self._db.read() as txn:
            top = txn.scalar(_MAX_RUN)
            if top is None:
                return []
            # The numbers written with a prefix p are the ranges [p, p], [p0, p9],
            # [p00, p99], ... up to the largest run: each one an index range.
            condition: Any = false() if prefix else column >= 0
            if prefix:
                low, high = int(prefix), int(prefix)
                while low <= top:
                    condition = or_(condition, and_(column >= low, column <= high))
                    low, high = low * 10, high * 10 + 9
            query = select(column).where(condition)
            if name is not None:
                query = query.where(_name == name).distinct()
            return list(txn.scalars(query.order_by(column.desc()).limit(limit)))

    # -- the datasets of a run ----------------------------------------------------------

    def dataset(self, run: int, name: str, data_id: str) -> DatasetRef | None:
        """The dataset ``name`` with data ID text ``data_id`` of ``run`` (one probe of the unique index)."""
        return self._registry.find(run, name, data_id)

    def summary_value(self, dataset_id: int) -> float | None:
        """The number a dataset's summary keeps (an image's or an array's mean), or None."""
        with self._db.read() as txn:
            return txn.scalar(_SUMMARY_VALUE, {"id": dataset_id})

    def has_prefix(self, run: int, prefix: str) -> bool:
        """Whether ``run`` has a dataset whose name starts with ``prefix`` (which ends in "/")."""
        query = select(datasets.c.id).where(datasets.c.run == run, _name >= prefix, _name < after_prefix(prefix))
        with self._db.read() as txn:
            return txn.first(query.limit(1)) is not None

    def count_datasets(self, run: int) -> int:
        """How many datasets ``run`` has (composite parts not counted)."""
        with self._db.read() as txn:
            return int(txn.scalar(_COUNT_IN_RUN, {"run": run}))

    def group_size(self, run: int, prefix: str) -> tuple[int, int]:
        """(datasets, bytes) of the names of ``run`` starting with ``prefix``."""
        query = (
            select(func.count(), func.sum(datasets.c.nbytes))
            .select_from(datasets)
            .where(datasets.c.run == run, _name >= prefix, _name < after_prefix(prefix))
        )
        with self._db.read() as txn:
            count, nbytes = txn.tuples(query)[0]
        return int(count), int(nbytes or 0)

    def first_datasets(self, run: int, limit: int) -> tuple[list[DatasetRef], int]:
        """The first ``limit`` datasets of ``run`` in the order they were put, and how many it has."""
        first = select(datasets).where(datasets.c.run == run).order_by(datasets.c.id).limit(limit)
        count = select(func.count()).select_from(datasets).where(datasets.c.run == run)
        with self._db.read(snapshot=True) as txn:
            refs = [ref_from_row(row, self._db.where) for row in txn.all(first)]
            total = int(txn.scalar(count))
        return refs, total

    def labels(self, run: int, limit: int) -> list[tuple[str, str]]:
        """(name, data ID text) of the first ``limit`` datasets of ``run`` in name order."""
        query = select(_name, datasets.c.data_id).where(datasets.c.run == run, _WHOLE).order_by(_name, datasets.c.data_id)
        with self._db.read() as txn:
            return [(n, d) for n, d in txn.tuples(query.limit(limit))]

    def children(
        self, run: int, prefix: str, search: str, cursor: Cursor | None, wanted: int
    ) -> list[tuple[DatasetEntry | GroupEntry, Cursor]]:
        """Up to ``wanted`` entries under a name prefix of ``run``, in name order, from ``cursor`` on.

        Each entry comes with the cursor after it.  A group (names sharing
        ``prefix + part + "/"``) is one entry, skipped over in one step: the
        next query starts after every name beginning with it (names compare
        byte-wise, and "0" is the character after "/"), so a page costs one
        query plus one per group on it, whatever the run holds.  ``search``
        keeps the names containing it (any case).
        """
        out: list[tuple[DatasetEntry | GroupEntry, Cursor]] = []
        with self._db.read() as txn:
            for entry, after in self._scan(txn, run, prefix, search, cursor, wanted):
                if isinstance(entry, str):
                    # A dataset of the group's own name takes the plain id; the group's ends in "/".
                    taken = txn.first(_NAME_TAKEN, {"run": run, "name": prefix + entry}) is not None
                    out.append((GroupEntry(entry, taken), after))
                else:
                    out.append((entry, after))
        return out

    def _scan(
        self, txn: Txn, run: int, prefix: str, search: str, cursor: Cursor | None, wanted: int
    ) -> Iterator[tuple[str | DatasetEntry, Cursor]]:
        given = 0
        while given < wanted:
            batch = wanted - given
            rows = txn.tuples(self._list_query(txn, prefix, cursor, search), _list_params(run, prefix, cursor, search, batch))
            for row in rows:
                entry = DatasetEntry._make(row)
                part, slash, _ = entry.name[len(prefix) :].partition("/")
                if slash:
                    cursor = (after_prefix(prefix + part + "/"), "", False)
                    yield part, cursor
                    given += 1
                    break
                cursor = (entry.name, entry.data_id, True)
                yield entry, cursor
                given += 1
                if given == wanted:
                    return
            else:
                if len(rows) < batch:
                    return

    def _list_query(self, txn: Txn, prefix: str, cursor: Cursor | None, search: str) -> Statement:
        name = self._ordered_name(txn)
        key = (name is _name, bool(prefix), None if cursor is None else cursor[2], bool(search))
        found = _LISTINGS.get(key)
        if found is not None:
            return found
        query = select(*_ENTRY_COLUMNS).where(datasets.c.run == bindparam("run"), _WHOLE)
        if prefix:
            query = query.where(name >= bindparam("low"), name < bindparam("high"))
        if cursor is not None:
            position = tuple_(name, datasets.c.data_id)
            after = tuple_(bindparam("after_name"), bindparam("after_data_id"))
            query = query.where(position > after if cursor[2] else position >= after)
        if search:
            query = query.where(_name.ilike(bindparam("pattern"), escape="\\"))
        found = _LISTINGS[key] = Statement(query.order_by(name, datasets.c.data_id).limit(bindparam("limit")))
        return found

    def _ordered_name(self, txn: Txn) -> Any:
        """``datasets.name`` in byte order, which the group skipping relies on.

        SQLite compares text byte-wise already; PostgreSQL by the database's
        collation, which sorts "a/b" and "a0" by language rules unless it is
        C.  Forcing COLLATE "C" costs the index order, so it is only done when
        the database's own collation is not byte order.
        """
        if self._name_order is None:
            order: Any = _name
            if not self._db.is_sqlite:
                collation = txn.execute_sql(
                    "SELECT datcollate FROM pg_database WHERE datname = current_database()"
                ).fetchone()[0]
                if str(collation).split(".")[0] not in ("C", "POSIX"):
                    order = collate(_name, "C")
            self._name_order = order
        return self._name_order

    # -- datasets across runs ------------------------------------------------------------

    def search(self, pattern: str, offset: int, limit: int) -> list[DatasetEntry]:
        """Datasets whose names match, newest run first, then by name.

        ``pattern`` is text a name contains (any case), or a glob when it
        holds ``*`` or ``?``, matched against the whole name (any case).
        This reads the names of every dataset (no index serves a pattern in
        the middle of a name); the page is what a screen shows.
        """
        like = like_glob(pattern) if ("*" in pattern or "?" in pattern) else like_containing(pattern)
        query = (
            select(*_ENTRY_COLUMNS)
            .where(_name.ilike(like, escape="\\"), _WHOLE)
            .order_by(_run.desc(), _name, datasets.c.data_id)
            .limit(limit)
            .offset(offset)
        )
        with self._db.read() as txn:
            return [DatasetEntry._make(r) for r in txn.tuples(query)]

    def names(self, prefix: str = "", *, run: int | None = None, limit: int = 50) -> list[str]:
        """Distinct dataset names starting with ``prefix`` (of one run, or of all), sorted, at most ``limit``."""
        with self._db.read() as txn:
            if not self._db.is_sqlite:
                params: dict[str, Any] = {"pattern": _escape_like(prefix) + "%", "run": run, "limit": limit}
                return list(txn.scalars(_NAMES_LIKE if run is None else _NAMES_LIKE_IN_RUN, params))
            first, following = (_FIRST_NAME, _NEXT_NAME) if run is None else (_FIRST_NAME_IN_RUN, _NEXT_NAME_IN_RUN)
            high = prefix + _TOP
            found: list[str] = []
            name = txn.scalar(first, {"low": prefix, "high": high, "run": run})
            while name is not None and len(found) < limit:
                found.append(name)
                name = txn.scalar(following, {"after": name, "high": high, "run": run})
            return found

    def all_names(self) -> list[str]:
        """Every distinct dataset name (for "did you mean" hints)."""
        with self._db.read() as txn:
            return list(txn.scalars(_ALL_NAMES))

    def data_ids(self, name: str, limit: int = 10) -> list[str]:
        """Some data ID texts the dataset ``name`` has, in order."""
        with self._db.read() as txn:
            return list(txn.scalars(_SOME_DATA_IDS, {"name": name, "limit": limit}))

    # -- images across runs --------------------------------------------------------------

    def image_runs(self, name: str, data_id: str) -> list[int]:
        """The runs holding ``name``/``data_id`` as an image (with a thumbnail), newest first."""
        with self._db.read() as txn:
            return list(txn.scalars(_IMAGE_RUNS, {"name": name, "data_id": data_id}))

    def kind_of(self, name: str, data_id: str) -> str | None:
        """The value kind of ``name``/``data_id`` in some run, or None if no run has it."""
        with self._db.read() as txn:
            return txn.scalar(_KIND_OF, {"name": name, "data_id": data_id})

    def image_names(self, limit: int = 10) -> list[str]:
        """Names of image datasets, sorted, at most ``limit``."""
        with self._db.read() as txn:
            return list(txn.scalars(_IMAGE_NAMES, {"limit": limit}))

    def thumbnails(self, name: str, data_id: str, numbers: Sequence[int]) -> dict[int, bytes]:
        """The PNG thumbnails of ``name``/``data_id`` in these runs (runs without one left out)."""
        if not numbers:
            return {}
        query = select(datasets.c.run, datasets.c.thumbnail).where(
            _name == name, datasets.c.data_id == data_id, _run.in_(list(numbers))
        )
        with self._db.read() as txn:
            return {run: bytes(png) for run, png in txn.tuples(query) if png}


def _list_params(run: int, prefix: str, cursor: Cursor | None, search: str, limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {"run": run, "limit": limit}
    if prefix:
        params.update(low=prefix, high=after_prefix(prefix))
    if cursor is not None:
        params.update(after_name=cursor[0], after_data_id=cursor[1])
    if search:
        params["pattern"] = like_containing(search)
    return params
