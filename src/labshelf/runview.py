"""RunView: the run table, one row per run, built from the registry alone.

The table never opens a data file: each dataset contributes its summary (a
number, a short text or a PNG thumbnail) kept in the registry since put time.
A RunView is lazy and immutable: ``query``, ``where``, ``sort_values``,
``head``/``tail``/``latest`` and column selection each return a new view,
and become the WHERE, ORDER BY and LIMIT of one SQL query when the view is
finally read (``to_pandas`` and friends).  Building the frame is then two or
three queries pivoted with numpy, with no per-cell Python loop.

Columns, in this order: ``start end status experiment comment tags``, the
user columns (editable by hand), then one per dataset, named ``name`` or
``name[dim=value]`` (see :attr:`DatasetRef.label`).  In expressions a
dataset column is its summary; ``name.mean`` is its mean explicitly (images
and arrays), and names with ``/`` go in backticks: `` `camera/image.mean` > 3 ``.

One name, one column: the run's metadata (and ``run``) and the user columns
keep their names; a dataset column whose label one of them has (a dataset
named ``status``, or one put before a user column of its name was refused)
is shown and queried as ``label (dataset)``.

Values of different kinds are never compared (``label > 3`` on a text
column is a QuerySyntaxError, the same on SQLite and PostgreSQL); ``start``
and ``end`` compare with ISO times (``start > '2024-05-01'``, naive = UTC)
or seconds since the epoch.  A damaged registry row costs its own cells,
not the table: they read as missing, and ``attrs["errors"]`` (by run and
column) and ``attrs["damaged"]`` (one line each) say what is wrong.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, and_, case, exists, false, func, literal, select, true
from sqlalchemy.sql.elements import ColumnElement

from . import expr
from .errors import QuerySyntaxError, RunNotFound, close_matches
from .names import MAX_RUN, data_id_key, label, normalize_data_id, plain_int
from .registry.annotations import DATASET_SUFFIX
from .registry.records import MAX_SECONDS, is_time
from .registry.registry import usable_number, usable_time
from .registry.schema import datasets, derived, run_tags, runs, user_columns, user_values
from .writer import DERIVED_PREFIX

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from .run import Run
    from .shelf import Shelf

#: Metadata columns, before the user and dataset columns.
META_COLUMNS = ("start", "end", "status", "experiment", "comment", "tags")
_RUN_COLUMNS = {
    "run": runs.c.number,
    "experiment": runs.c.experiment,
    "status": runs.c.status,
    "comment": runs.c.comment,
    "start": runs.c.started,
    "end": runs.c.ended,
}
#: What each run column holds, for the type checks of expressions (expr.KINDS).
_RUN_KINDS = {"run": "number", "experiment": "text", "status": "text", "comment": "text", "start": "time", "end": "time"}
#: Names a dataset column cannot have in the table: the run's own columns.
_RUN_NAMES = frozenset({"run", *META_COLUMNS})
_USER_KINDS = {"number": "number", "int": "number", "bool": "bool", "text": "text"}
_NUMERIC = {"float", "array", "int", "bool", "none", "image"}
_LABEL = re.compile(r"(?P<name>[^\[\].]+)(?:\[(?P<dims>[^\]]*)\])?(?:\.(?P<attr>mean|summary|text))?\Z")
#: Datasets that are columns: not the parts of a composite (``calexp.psf``, see
#: datastore/composite.py), which the composite's own column stands for.
_WHOLE = datasets.c.name.not_like("%.%")
HTML_ROWS = 20
TEXT_ROWS = 10


def parse_label(label: str) -> tuple[str, dict[str, Any], str | None]:
    """``pmt[channel=2].mean`` -> ("pmt", {"channel": 2}, "mean")."""
    match = _LABEL.match(label)
    if match is None:
        raise QuerySyntaxError(f"{label!r} is not a column label")
    data_id: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in (match["dims"] or "").split(","))):
        key, _, raw = part.partition("=")
        raw = raw.strip()
        if raw[:1] in "'\"" and raw[-1:] == raw[:1] and len(raw) >= 2:
            value: Any = raw[1:-1]
        elif raw in ("True", "False"):
            value = raw == "True"
        else:
            try:
                value = int(raw)
            except ValueError:
                raise QuerySyntaxError(f"data ID value {raw!r} in {label!r} is not an int, 'text' or a bool") from None
        data_id[key.strip()] = value
    return match["name"], normalize_data_id(data_id), match["attr"]


def column_source(column: str) -> tuple[str, dict[str, Any]] | None:
    """The dataset (or user column) name and data ID a column label stands for; None for the run's own."""
    if column in META_COLUMNS:
        return None
    column = column.removesuffix(DATASET_SUFFIX)
    if _LABEL.match(column):
        try:
            name, data_id, _attr = parse_label(column)
            return name, data_id
        except QuerySyntaxError:
            pass
    return column, {}


@dataclasses.dataclass(frozen=True)
class _Spec:
    """What a view selects; every operation returns a copy with one change."""

    filters: tuple[Any, ...] = ()  # parsed expressions (expr.Node) or SQL conditions
    order: tuple[tuple[str, bool], ...] = ()
    limit: int | None = None
    reverse_after_limit: bool = False  # tail(): take the last rows, show them in order
    columns: tuple[str, ...] | None = None
    # Exactly these runs, in this order (what a limited view turns into when
    # it is filtered, sorted or limited again: pandas applies those to the
    # rows already chosen, SQL would apply them before the LIMIT).
    pinned: tuple[int, ...] | None = None


class RunView:
    """The run table of a shelf: lazy, pandas-like, backed by the registry."""

    def __init__(self, shelf: Shelf, spec: _Spec | None = None, resolver: _Resolver | None = None):
        self._shelf = shelf
        self._spec = spec or _Spec()
        # Shared by the views derived from this one: what it learned of the
        # columns (their kinds) serves a whole chain like query().head().
        self._resolver_cache = resolver

    @property
    def shelf(self) -> Shelf:
        """The shelf whose runs this view shows."""
        return self._shelf

    def _with(self, **changes: Any) -> RunView:
        return RunView(self._shelf, dataclasses.replace(self._spec, **changes), self._resolver_cache)

    def _pinned(self) -> RunView:
        """This view with its limit turned into an explicit list of runs."""
        if self._spec.limit is None:
            return self
        return RunView(self._shelf, _Spec(pinned=tuple(self.numbers()), columns=self._spec.columns), self._resolver_cache)

    # -- building views ------------------------------------------------------------

    def query(self, expression: str) -> RunView:
        """Keep the runs for which ``expression`` is true (parsed safely, run in SQL).

        ``temperature > 300 and experiment == 'rabi_scan' and 'good' in tags``;
        names with ``/`` in backticks; ``x is null``, ``comment contains 'drift'``.
        """
        node = expr.parse(expression)
        resolver = self._resolver()
        for name in expr.names(node):
            resolver.check(name, expression)
        view = self._pinned()
        return view._with(filters=(*view._spec.filters, node))

    def where(self, **conditions: Any) -> RunView:
        """Keep runs by metadata: ``run=slice(10, 50)`` (inclusive), ``run=[1, 5]``, ``experiment="x"``.

        Run numbers may be numpy integers (from pandas); ``start`` and
        ``end`` take datetimes, pandas Timestamps, numpy datetime64, ISO
        strings (naive times are UTC) or seconds since the epoch, alone or
        as slice bounds: ``start=slice("2024-05-01", None)``.
        """
        view = self._pinned()
        filters = list(view._spec.filters)
        for key, value in conditions.items():
            column = _RUN_COLUMNS.get(key)
            if column is None:
                raise QuerySyntaxError(
                    f"where() takes {', '.join(_RUN_COLUMNS)}; use query() for {key!r}{close_matches(key, _RUN_COLUMNS)}"
                )
            if isinstance(value, slice):
                if value.step not in (None, 1):
                    raise QuerySyntaxError("where() slices take no step")
                if value.start is not None:
                    filters.append(_where_condition(key, column, ">=", value.start))
                if value.stop is not None:
                    filters.append(_where_condition(key, column, "<=", value.stop))
            elif isinstance(value, range) and key == "run":
                filters.append(_run_range(column, value))
            elif isinstance(value, (list, tuple, set, frozenset, range)):
                kept = [v for v in (_where_value(key, v) for v in value) if v is not _NO_RUN]
                filters.append(column.in_(kept) if kept else false())
            else:
                filters.append(_where_condition(key, column, "==", value))
        return view._with(filters=tuple(filters))

    def sort_values(self, by: str | Sequence[str], ascending: bool | Sequence[bool] = True) -> RunView:
        """Order runs by one or more columns (metadata, user or dataset columns)."""
        keys = [by] if isinstance(by, str) else list(by)
        directions = [ascending] * len(keys) if isinstance(ascending, bool) else list(ascending)
        if len(directions) != len(keys):
            raise QuerySyntaxError("sort_values: give one ascending flag per column")
        resolver = self._resolver()
        for key in keys:
            resolver.check(key, key)
        view = self._pinned()
        return view._with(order=tuple(zip(keys, directions, strict=True)) + view._spec.order)

    def head(self, n: int = 5) -> RunView:
        """The first ``n`` runs of this view (in its order)."""
        return self._limited(n, from_end=False)

    def tail(self, n: int = 5) -> RunView:
        """The last ``n`` runs of this view (in its order)."""
        return self._limited(n, from_end=True)

    def latest(self, n: int = 10) -> RunView:
        """The ``n`` newest runs, newest first."""
        return self.sort_values("run", ascending=False).head(n)

    def _limited(self, n: int, *, from_end: bool) -> RunView:
        n = plain_int(n)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise QuerySyntaxError(f"the number of runs is an int >= 0, not {n!r}")
        spec = self._spec
        if spec.limit is not None and spec.reverse_after_limit != from_end:
            # head() of a tail() (or the reverse) keeps the inner limit's runs.
            numbers = self.numbers()
            keep = numbers[-n:] if from_end and n else numbers[:n] if not from_end else []
            return RunView(self._shelf, _Spec(pinned=tuple(keep), columns=spec.columns), self._resolver_cache)
        limit = n if spec.limit is None else min(n, spec.limit)
        return self._with(limit=limit, reverse_after_limit=from_end)

    def __getitem__(self, key: Any) -> Any:
        """``view[12]`` a Run; ``view["temperature"]`` a Series; ``view[["a", "b"]]`` a view."""
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            key = int(key)
            if key not in self.numbers():
                raise RunNotFound(f"run {key} is not in this view")
            return self._shelf.run(key)
        if isinstance(key, str):
            from .metadata import column_attrs

            frame = self[[key]].to_pandas()
            series = frame[key]
            series.attrs = column_attrs(frame, key)
            return series
        if isinstance(key, (list, tuple)):
            resolver = self._resolver()
            for column in key:
                resolver.check(column, column)
            return self._with(columns=tuple(key))
        raise TypeError(f"a run view is indexed by a run number, a column name or a list of names, not {key!r}")

    # -- reading -------------------------------------------------------------------------

    def _numbers_query(self) -> Any:
        spec = self._spec
        resolver = self._resolver()
        query = select(runs.c.number)
        if spec.pinned is not None:
            query = query.where(runs.c.number.in_(spec.pinned) if spec.pinned else false())
        for condition in spec.filters:
            query = query.where(expr.to_sql(condition, resolver) if isinstance(condition, expr.Node) else condition)
        columns = [(resolver.order_column(key), ascending) for key, ascending in spec.order]
        if spec.pinned:
            columns.append((case({n: i for i, n in enumerate(spec.pinned)}, value=runs.c.number), True))
        columns.append((runs.c.number, True))
        for column, ascending in columns:
            if spec.reverse_after_limit:
                ascending = not ascending
            query = query.order_by(column.asc().nulls_last() if ascending else column.desc().nulls_last())
        if spec.limit is not None:
            query = query.limit(spec.limit)
        return query

    def sql(self) -> str:
        """The SQL that selects this view's runs (for the curious and for tests)."""
        db = self._shelf._registry.db
        return str(self._numbers_query().compile(dialect=db.dialect, compile_kwargs={"literal_binds": False}))

    def numbers(self) -> list[int]:
        """Run numbers of this view, in its order."""
        with self._shelf._registry.db.read() as txn:
            found = txn.scalars(self._numbers_query())
        return found[::-1] if self._spec.reverse_after_limit else found

    def __len__(self) -> int:
        with self._shelf._registry.db.read() as txn:
            return int(txn.scalar(select(func.count()).select_from(self._numbers_query().subquery())))

    def __iter__(self) -> Iterator[Run]:
        return (self._shelf.run(n) for n in self.numbers())

    @property
    def columns(self) -> list[str]:
        """Column names of this view's table (without running the whole table)."""
        if self._spec.columns is not None:
            return list(self._spec.columns)
        return [*META_COLUMNS, *self._resolver().user_types, *self._resolver().labels()]

    @property
    def columns_chosen(self) -> bool:
        """Whether this view's columns were chosen (``view[["a", "b"]]``), not every column of the shelf."""
        return self._spec.columns is not None

    @property
    def editable_columns(self) -> list[str]:
        """Columns people edit by hand: the comment, the tags and the user columns."""
        return ["comment", "tags", *self._resolver().user_types]

    def column_kinds(self) -> dict[str, str]:
        """What each column of the table holds, in column order (one registry query).

        For front ends choosing how to show and edit a column: ``time``
        (``start``, ``end``), ``text``, ``tags`` (a list of str), ``number``
        (floats, and array/image means), ``int``, ``bool``, ``complex``,
        ``image`` (PNG thumbnails in :meth:`to_pandas`).  Dataset columns
        holding tables or several kinds of values are ``text``, as the frame
        holds them.
        """
        kinds: dict[str, str] = dict.fromkeys(("start", "end"), "time")
        kinds.update(status="text", experiment="text", comment="text", tags="tags")
        resolver = self._resolver()
        kinds.update(
            {name: {"number": "number", "int": "int", "bool": "bool"}.get(t, "text") for name, t in resolver.user_types.items()}
        )
        query = (
            select(datasets.c.name, datasets.c.data_id, datasets.c.summary_kind, func.min(datasets.c.id))
            .where(_WHOLE)
            .group_by(datasets.c.name, datasets.c.data_id, datasets.c.summary_kind)
        )
        with self._shelf._registry.db.read() as txn:
            rows = txn.tuples(query)
        held: dict[tuple[str, str], set[str]] = {}
        first: dict[tuple[str, str], int] = {}
        for name, key, kind, first_id in rows:
            held.setdefault((name, key), set()).add(kind)
            first[(name, key)] = min(first_id, first.get((name, key), first_id))
        ordered = sorted(held, key=first.__getitem__)
        taken = resolver.taken
        for (name, key), column_label in zip(ordered, _labels([n for n, _ in ordered], [k for _, k in ordered]), strict=True):
            if column_label is not None:  # None: a damaged data ID, shown in no column
                kinds[_shown(column_label, taken)] = _frame_kind(held[(name, key)])
        if self._spec.columns is not None:
            return {c: kinds.get(c, "number") for c in self._spec.columns}
        return kinds

    def refreshed(self) -> RunView:
        """This view with its column names looked up afresh (new user or dataset columns).

        A view remembers the columns it has seen, so that a chain of
        operations asks the registry once; a long-lived viewer (a widget)
        calls this to see the columns added since.
        """
        return RunView(self._shelf, self._spec)

    def annotate(self, *, comment: Any = ..., tags: Sequence[str] | None = None, **columns: Any) -> int:
        """Annotate every run of this view (see :meth:`Shelf.annotate`)."""
        return self._shelf.annotate(self.numbers(), comment=comment, tags=tags, **columns)

    def to_pandas(self, *, thumbnails: bool = True, display: bool = False, logbook: bool = False) -> pd.DataFrame:
        """The table as a DataFrame indexed by run number, in the view's order.

        Image datasets give the PNG bytes of their thumbnail, or their shape
        text with ``thumbnails=False``.  Values are as stored; the columns'
        display metadata (unit, scale, precision, title, description) and
        column tags ride in ``attrs["labshelf"]`` (``{"metadata": {column:
        {...}}, "column_tags": {column: [...]}}``).

        Parameters
        ----------
        thumbnails
            PNG bytes for image columns (else their shape as text).
        display
            Numeric columns as shown: divided by their scale and rounded to
            their precision (for reading, not for computing).
        logbook
            Place the shelf's logbook entries between the runs by time (see
            :func:`labshelf.metadata.log_places`, the rule the run-table
            widget follows too); log rows have no run number.  The view
            must be in time order: unsorted (run order), or sorted by
            ``run`` or ``start`` first.
        """
        import gc

        from .metadata import annotate_frame, columns_meta, shown_frame, with_logbook

        # Hundreds of thousands of row tuples would set off full garbage
        # collections over and over (measured: up to 40% of the call); none
        # of them can form a cycle, so collection waits until the end.
        collecting = gc.isenabled()
        gc.disable()
        try:
            table = self._to_pandas(thumbnails)
        finally:
            if collecting:
                gc.enable()
        metas, tags = columns_meta(self._shelf.metadata(), self._shelf.column_tags(), table.columns)
        annotate_frame(table, metas, tags)
        if display:
            table = shown_frame(table, metas)
        if logbook:
            table = with_logbook(self._shelf, table, self._time_order())
        return table

    def _time_order(self) -> bool:
        """Whether this view's rows are in ascending time order (False: descending); a clear
        error for an order in which log entries have no place."""
        order = self._spec.order
        if not order:
            return True  # run order (tail() too shows its runs in order)
        if order[0][0] in ("run", "start"):
            return order[0][1]
        raise QuerySyntaxError(
            f"to_pandas(logbook=True) places log entries among runs in time order; this view is sorted by "
            f"{order[0][0]!r} first: sort by 'run' or 'start' first, or leave out logbook=True"
        )

    def select(self, *columns: str, tags: Iterable[str] | None = None) -> RunView:
        """A view with these columns, then those tagged with any of ``tags`` (column tags, in table order).

        ``view.select("start", tags=["beam"])``.  Column tags are set with
        :meth:`Shelf.tag_columns`; they are not run tags.
        """
        chosen = list(columns)
        if len(columns) == 1 and isinstance(columns[0], (list, tuple)):
            chosen = list(columns[0])
        if tags is not None:
            from .metadata import check_tags, column_tags

            wanted = set(check_tags(tags))
            tagged = {name for name, found in column_tags(self._shelf).items() if wanted & set(found)}
            for column in self._with(columns=None).columns:
                named = column_source(column)
                if named is not None and named[0] in tagged and column not in chosen:
                    chosen.append(column)
        return self[chosen]

    def columns_tagged(self, *tags: str) -> RunView:
        """A view with the columns tagged with any of ``tags`` (see :meth:`select`)."""
        return self.select(tags=tags)

    def page(self, offset: int, limit: int, *, thumbnails: bool = True) -> pd.DataFrame:
        """Rows ``offset`` to ``offset + limit`` of the table, reading only those runs.

        What a scrolling front end asks for: one query picks the page's run
        numbers (the view's filters and order with OFFSET/LIMIT), and only
        those runs are fetched and pivoted, so a page of 100 costs the same
        at the top or the bottom of 100,000 runs.  The frame is what
        ``to_pandas()`` would give for those rows.

        Parameters
        ----------
        offset
            Index of the first row (0 is the first row of the view).
        limit
            How many rows at most.
        thumbnails
            As in :meth:`to_pandas`.
        """
        offset, limit = plain_int(offset), plain_int(limit)
        for name, value in (("offset", offset), ("limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise QuerySyntaxError(f"page(): {name} is an int >= 0, not {value!r}")
        # A limited view (head/tail) pages over the runs it chose.
        return self._pinned()._to_pandas(thumbnails, window=(offset, limit))

    def _to_pandas(self, thumbnails: bool, window: tuple[int, int] | None = None) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        spec = self._spec
        everything = not spec.filters and spec.limit is None and spec.pinned is None
        db = self._shelf._registry.db
        annotations = self._shelf._annotations
        with db.read(snapshot=True) as txn:
            # ``chosen`` is what the other queries keep to: the view's runs as
            # a subquery, a page's runs as a plain list, or None for all runs.
            chosen: Any
            meta_columns = (runs.c.started, runs.c.ended, runs.c.status, runs.c.experiment, runs.c.comment)
            meta_rows: list[tuple[Any, ...]] | None = None
            if window is not None:
                # A page's runs come with their metadata in the one query.
                offset, limit = window
                meta_rows = txn.tuples(self._numbers_query().add_columns(*meta_columns).offset(offset).limit(limit))
                numbers = [row[0] for row in meta_rows]
                chosen = numbers
            elif everything and not spec.order:
                numbers = txn.scalars(select(runs.c.number).order_by(runs.c.number))
                chosen = None
            else:
                numbers = txn.scalars(self._numbers_query())
                if spec.reverse_after_limit:
                    numbers = numbers[::-1]
                chosen = None if everything else select(self._numbers_query().subquery().c.number)
            in_view = (lambda column: column.in_(chosen)) if chosen is not None else None
            meta_query = select(runs.c.number, *meta_columns)
            summary_query = select(
                datasets.c.run, datasets.c.name, datasets.c.data_id, datasets.c.summary_kind,
                datasets.c.summary_value, datasets.c.summary_text,
            ).where(_WHOLE).order_by(datasets.c.id)
            wanted = self._wanted_names()
            if wanted is not None:
                summary_query = summary_query.where(datasets.c.name.in_(sorted(wanted)))
            if in_view is not None:
                meta_query = meta_query.where(in_view(runs.c.number))
                summary_query = summary_query.where(in_view(datasets.c.run))
            if meta_rows is None:
                meta_rows = txn.tuples(meta_query)
            summary_rows = txn.tuples(summary_query)
            image_rows: list[tuple[Any, ...]] = []
            if thumbnails and any(r[3] == "image" for r in summary_rows):
                image_query = select(datasets.c.run, datasets.c.name, datasets.c.data_id, datasets.c.thumbnail).where(
                    datasets.c.summary_kind == "image"
                )
                if in_view is not None:
                    image_query = image_query.where(in_view(datasets.c.run))
                image_rows = txn.tuples(image_query)
            tags = annotations.tags(txn, chosen)
            user_rows = annotations.values(txn, chosen)
            user_types = dict(txn.tuples(select(user_columns.c.name, user_columns.c.type).order_by(user_columns.c.created)))
            error_query = select(derived.c.run, derived.c.variable, derived.c.error).where(derived.c.status == "error")
            if chosen is not None:
                error_query = error_query.where(derived.c.run.in_(chosen))
            failed = txn.tuples(error_query)

        order = np.asarray(numbers, dtype=np.int64)
        position = _positions(order)
        meta_by_run = {row[0]: row for row in meta_rows}
        meta = [meta_by_run[n] for n in numbers if n in meta_by_run]
        runs_, started, ended, status, experiment, comment = (
            list(c) for c in (zip(*meta, strict=True) if meta else ([],) * 6)
        )
        # A damaged registry row costs its own cells: they read as missing and
        # are listed here, by run and column (what the HTML table marks).
        damage = _Damage()
        frame: dict[str, Any] = {
            "start": pd.to_datetime(_times(runs_, started, "start", damage), unit="s", utc=True),
            "end": pd.to_datetime(_times(runs_, ended, "end", damage), unit="s", utc=True),
            "status": np.asarray(status, dtype=object),
            "experiment": np.asarray(experiment, dtype=object),
            "comment": np.asarray(comment, dtype=object),
            "tags": _object_column([tags.get(n, []) for n in numbers]),
        }
        frame.update(_user_columns(order, position, user_types, user_rows, damage))
        if summary_rows:
            taken = _RUN_NAMES | set(user_types)
            frame.update(_pivot(order, position, summary_rows, image_rows, taken, damage))
        # A derived variable that raised for a run leaves its cell empty; the
        # message stays available (and the HTML table shows a marker).
        errors = damage.cells
        for run, variable, message in failed:
            column = f"{DERIVED_PREFIX}{variable}"
            errors.setdefault(run, {})[column] = message or "error"
            if column not in frame:
                frame[column] = np.full(len(order), np.nan)
        table = pd.DataFrame(frame, index=pd.Index(order, name="run"))
        table.attrs["errors"] = errors
        table.attrs["damaged"] = damage.lines
        if spec.columns is not None:
            table = table[[c for c in spec.columns if c in table.columns] or []]
            missing = [c for c in spec.columns if c not in table.columns]
            for column in missing:  # a dataset column no run of this view has
                table[column] = np.full(len(table), np.nan)
            table = table[list(spec.columns)]
        return table

    def _wanted_names(self) -> set[str] | None:
        if self._spec.columns is None:
            return None
        return {named[0] for named in map(column_source, self._spec.columns) if named is not None}

    def to_arrow(self) -> pa.Table:
        """The table as a pyarrow Table (thumbnails as binary)."""
        import pyarrow as pa

        return pa.Table.from_pandas(self.to_pandas(), preserve_index=True)

    def to_csv(self, path: Any) -> None:
        """Write the table as CSV (images as their shape text)."""
        self.to_pandas(thumbnails=False).to_csv(path)

    def to_parquet(self, path: Any) -> None:
        """Write the table as Parquet (thumbnails as binary)."""
        self.to_pandas().to_parquet(path)

    # -- display ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        total = len(self)
        table = self.head(TEXT_ROWS).to_pandas(thumbnails=False) if total else None
        header = f"<RunView {total} runs of {self._shelf.where}>"
        if table is None or table.empty:
            return header
        # A short text table: the dataset columns matter more than times and notes.
        shown = table.drop(columns=["start", "end", "comment", "tags"])
        return header + "\n" + shown.to_string(max_cols=10, max_colwidth=24) + ("\n..." if total > TEXT_ROWS else "")

    def _repr_html_(self) -> str:
        from importlib.resources import files

        from .registry.meta import DisplayMeta

        total = len(self)
        table = self.head(HTML_ROWS).to_pandas()
        css = (files("labshelf") / "static" / "runview.css").read_text()
        said = table.attrs.get("labshelf", {}).get("metadata", {})
        metas = {c: DisplayMeta(c, **fields) for c, fields in said.items()}
        head = "<th>run</th>" + "".join(_heading_html(c, metas.get(c)) for c in table.columns)
        rows = []
        errors = table.attrs.get("errors", {})
        for number, row in table.iterrows():
            failed = errors.get(number, {})
            cells = [f"<th>{number}</th>"] + [
                f"<td class='labshelf-error' title='{html.escape(failed[c], quote=True)}'>&#9888; error</td>"
                if c in failed
                else f"<td>{_cell_html(v, metas.get(c))}</td>"
                for c, v in row.items()
            ]
            rows.append("<tr>" + "".join(cells) + "</tr>")
        footer = f"{total} runs x {len(table.columns)} columns" + (f" (first {HTML_ROWS} shown)" if total > HTML_ROWS else "")
        return (
            f"<style>{css}</style><div class='labshelf-runview'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table><div class='labshelf-footer'>{footer}</div></div>"
        )

    def _ipython_key_completions_(self) -> list[str]:
        return self.columns[:50]

    # -- name resolution -------------------------------------------------------------------------

    def _resolver(self) -> _Resolver:
        if self._resolver_cache is None:
            self._resolver_cache = _Resolver(self._shelf)
        return self._resolver_cache


def _heading_html(column: str, meta: Any) -> str:
    """A column heading: the title (its last part) and unit, the label and description as tooltip."""
    if meta is None:
        return f"<th>{html.escape(column)}</th>"
    tip = " - ".join(filter(None, (column, meta.title, meta.description)))
    return f"<th title='{html.escape(tip, quote=True)}'>{html.escape(meta.header(column))}</th>"


def _cell_html(value: Any, meta: Any = None) -> str:
    if isinstance(value, bytes) and value.startswith(b"\x89PNG"):
        return f"<img src='data:image/png;base64,{base64.b64encode(value).decode()}' alt='thumbnail'/>"
    if isinstance(value, float):
        if value != value:
            return ""
        return html.escape(meta.format(value)) if meta is not None else f"{value:.6g}"
    if meta is not None and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return html.escape(meta.format(value))
    if value is None or type(value).__name__ in ("NaTType", "NAType"):
        return ""
    if isinstance(value, list):
        return ", ".join(html.escape(str(v)) for v in value)
    return html.escape(str(value))


class _Resolver:
    """Maps column names of expressions and sorts to SQL, with suggestions for typos."""

    def __init__(self, shelf: Shelf):
        self.shelf = shelf
        self._kinds: dict[str, set[str]] = {}
        with shelf._registry.db.read() as txn:
            self.user_types: dict[str, str] = dict(
                txn.tuples(select(user_columns.c.name, user_columns.c.type).order_by(user_columns.c.created))
            )
        #: Names a dataset column gives up (it is then ``label (dataset)``).
        self.taken = _RUN_NAMES | set(self.user_types)

    def labels(self) -> list[str]:
        query = (
            select(datasets.c.name, datasets.c.data_id)
            .where(_WHOLE)
            .group_by(datasets.c.name, datasets.c.data_id)
            .order_by(func.min(datasets.c.id))
        )
        with self.shelf._registry.db.read() as txn:
            pairs = txn.tuples(query)
        found = _labels([n for n, _ in pairs], [d for _, d in pairs])
        return [_shown(found_label, self.taken) for found_label in found if found_label is not None]

    def _dataset_kinds(self, name: str, key: str) -> set[str]:
        cache_key = f"{name}\0{key}"
        if cache_key not in self._kinds:
            query = select(datasets.c.summary_kind).distinct().where(datasets.c.name == name, datasets.c.data_id == key)
            with self.shelf._registry.db.read() as txn:
                self._kinds[cache_key] = set(txn.scalars(query))
        return self._kinds[cache_key]

    def _dataset(self, name: str) -> tuple[str, dict[str, Any], str | None] | None:
        """(dataset, data ID, attribute) a dataset column label means, if there is such a dataset."""
        if name.endswith(DATASET_SUFFIX):
            name = name[: -len(DATASET_SUFFIX)]
        elif name in self.taken:
            return None
        try:
            dataset, data_id, attr = parse_label(name)
        except QuerySyntaxError:
            return None
        return (dataset, data_id, attr) if self._dataset_kinds(dataset, data_id_key(data_id)) else None

    def check(self, name: str, expression: str) -> None:
        if name in _RUN_COLUMNS or name == "tags" or name in self.user_types or self._dataset(name) is not None:
            return
        known = [*_RUN_COLUMNS, "tags", *self.user_types, *self.labels()]
        raise QuerySyntaxError(f"unknown column {name!r} in {expression!r}{close_matches(name, known)}")

    def __call__(self, name: str) -> expr.Resolved:
        if name == "tags":
            return expr.Collection(
                lambda value: exists().where(run_tags.c.run == runs.c.number, run_tags.c.tag == value), kind="text"
            )
        return expr.Typed(*self._column(name))

    def order_column(self, name: str) -> ColumnElement[Any]:
        return self._column(name)[0]

    def _column(self, name: str) -> tuple[ColumnElement[Any], str]:
        """The SQL of a column and what it holds (an expr kind)."""
        # Numbers and times are read past damaged rows (usable_*): text that SQLite
        # kept in a REAL column would otherwise compare as greater than any number.
        dialect = self.shelf._registry.db.dialect.name
        if name in _RUN_COLUMNS:
            kind = _RUN_KINDS[name]
            return (usable_time(_RUN_COLUMNS[name]) if kind == "time" else _RUN_COLUMNS[name]), kind
        if name == "tags":
            raise QuerySyntaxError("tags is a list; test it with 'tag' in tags")
        if name in self.user_types:
            column_type = self.user_types[name]
            value: Any = user_values.c.value_text
            if column_type == "int":
                value = usable_number(user_values.c.value_int, dialect) if dialect == "sqlite" else user_values.c.value_int
            elif column_type in ("number", "bool"):
                value = usable_number(user_values.c.value_num, dialect)
            subquery = (
                select(value)
                .where(user_values.c.run == runs.c.number, user_values.c.column == name)
                .scalar_subquery()
            )
            return subquery, _USER_KINDS.get(column_type, "any")
        self.check(name, name)
        found = self._dataset(name)
        assert found is not None  # check() passed
        dataset, data_id, attr = found
        key = data_id_key(data_id)
        kinds = self._dataset_kinds(dataset, key)
        numeric = attr == "mean" or (attr != "text" and kinds <= _NUMERIC)
        value = usable_number(datasets.c.summary_value, dialect) if numeric else datasets.c.summary_text
        subquery = (
            select(value)
            .where(and_(datasets.c.run == runs.c.number, datasets.c.name == dataset, datasets.c.data_id == literal(key)))
            .scalar_subquery()
        )
        return subquery, "number" if numeric else "text"


def _shown(column_label: str, taken: frozenset[str] | set[str]) -> str:
    """How the table names a dataset column: its label, unless a run or user column has it."""
    return column_label if column_label not in taken else column_label + DATASET_SUFFIX


#: A run number no run can have (outside 1 .. MAX_RUN): a condition on it selects nothing.
_NO_RUN = object()


def _where_condition(key: str, column: Any, op: str, value: Any) -> Any:
    """``column op value`` for ``where(key=...)``; a run number beyond the range decides it alone."""
    converted = _where_value(key, value)
    if converted is _NO_RUN:
        # The database never sees a number it cannot bind: the answer is known.
        number = int(value)
        return {"==": false(), ">=": false() if number > MAX_RUN else true(), "<=": false() if number < 1 else true()}[op]
    if op == "==":
        return column == converted  # IS NULL for None
    if converted is None:
        raise QuerySyntaxError(f"where({key}=slice(...)) bounds are values, not None inside a slice's start/stop")
    return column >= converted if op == ">=" else column <= converted


def _run_range(column: Any, numbers_: range) -> Any:
    """``run in range(...)`` in SQL, however long the range: bounds and a step, never a list."""
    if numbers_.step < 0:
        numbers_ = numbers_[::-1]
    if not numbers_ or numbers_[0] > MAX_RUN or numbers_[-1] < 1:
        return false()
    low, high = max(numbers_[0], 1), min(numbers_[-1], MAX_RUN)
    condition = (column >= low) & (column <= high)
    if numbers_.step != 1:
        # Bound as 64-bit: PostgreSQL would type them as the 32-bit column.
        offset = literal(numbers_[0] % numbers_.step, BigInteger())
        condition &= (column - offset) % literal(numbers_.step, BigInteger()) == 0
    return condition


def _where_value(key: str, value: Any) -> Any:
    """A value of ``where(key=value)`` as the ``runs`` column compares it, or QuerySyntaxError."""
    if value is None:
        return None
    kind = _RUN_KINDS[key]
    if kind == "time":
        return expr.seconds(value, f"where({key}=...)")
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise QuerySyntaxError(f"where(run=...) takes run numbers (ints), not {value!r}")
        number = int(value)
        return number if 1 <= number <= MAX_RUN else _NO_RUN
    if not isinstance(value, str):
        raise QuerySyntaxError(f"where({key}=...) takes text, not {value!r}")
    return value


class _Damage:
    """What a table could not read from damaged registry rows: by run and column, and as lines."""

    def __init__(self) -> None:
        self.cells: dict[int, dict[str, str]] = {}
        self.lines: list[str] = []

    def add(self, run: Any, column: str, what: str) -> None:
        message = f"damaged registry row: {what}"
        self.cells.setdefault(run, {})[column] = message
        self.lines.append(f"run {run}, {column}: {what}")


def _times(runs_: list[Any], values: list[Any], column: str, damage: _Damage) -> Any:
    """Seconds since the epoch as floats (NaN for none), the damaged ones reported."""
    import numpy as np

    try:
        out = np.asarray(values, dtype=float)  # None becomes NaN
        usable = np.abs(out) < MAX_SECONDS  # NaN is not
        if usable.all() or (~usable).sum() == values.count(None):
            return out
    except (TypeError, ValueError):
        pass
    # Rare: a row edited by hand (SQLite keeps any text in a REAL column).
    out = np.full(len(values), np.nan)
    for i, value in enumerate(values):
        if is_time(value):
            out[i] = value
        elif value is not None:
            damage.add(runs_[i], column, f"runs.{'started' if column == 'start' else 'ended'} is not a time: {str(value)[:60]!r}")
    return out


def _positions(order: Any) -> Any:
    """A function mapping run numbers to their row in ``order`` (vectorised)."""
    import numpy as np

    sorter = np.argsort(order, kind="stable")
    sorted_numbers = order[sorter]

    def position(numbers: Any) -> Any:
        found = np.searchsorted(sorted_numbers, numbers)
        return sorter[found]

    return position


def _object_column(values: list[Any]) -> Any:
    import numpy as np

    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _user_columns(
    order: Any, position: Any, types: Mapping[str, str], rows: list[Any], damage: _Damage
) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    out: dict[str, Any] = {}
    by_column: dict[str, list[Any]] = {name: [] for name in types}
    for row in rows:
        by_column.setdefault(row[1], []).append(row)
    for name, column_type in types.items():
        entries = by_column.get(name, [])
        if column_type not in _USER_KINDS:
            damage.lines.append(f"user column {name!r}: user_columns.type is {column_type!r}, not one of number, int, "
                                "text, bool; its values show as text")
            column_type = "text"
        # (run, column, type, value_num, value_int, value_text): the slot of the column's type.
        slot = {"text": 5, "int": 4}.get(column_type, 3)
        runs_ = [e[0] for e in entries]
        values = [e[slot] for e in entries]
        rows_at = position(np.asarray(runs_, dtype=np.int64)) if entries else np.zeros(0, dtype=int)
        if column_type == "text":
            column = np.full(len(order), None, dtype=object)
            column[rows_at] = values
            out[name] = column
            continue
        try:
            if column_type == "int":
                whole = np.zeros(len(order), dtype=np.int64)
                whole[rows_at] = np.asarray(values, dtype=np.int64)  # refuses None, text, floats
                if any(type(v) is not int for v in values):
                    raise TypeError("not all ints")
            else:
                numeric = np.full(len(order), np.nan)
                numeric[rows_at] = np.asarray(values, dtype=float)  # refuses text
            found = np.zeros(len(order), dtype=bool)
            found[rows_at] = True
            if column_type != "int" and np.isnan(numeric[rows_at]).any():
                raise TypeError("a missing value in a row")
        except (TypeError, ValueError, OverflowError):
            # Rare: a row edited by hand, or of another column type.
            whole, numeric, found = _user_values_one_by_one(order, name, column_type, entries, rows_at, slot, damage)
        missing = ~found
        if column_type == "bool":
            out[name] = pd.arrays.BooleanArray(np.where(missing, False, numeric != 0), missing)
        elif column_type == "int":
            out[name] = pd.arrays.IntegerArray(whole, missing)
        else:
            numeric[missing] = np.nan
            out[name] = numeric
    return out


def _user_values_one_by_one(
    order: Any, name: str, column_type: str, entries: list[Any], rows_at: Any, slot: int, damage: _Damage
) -> tuple[Any, Any, Any]:
    import numpy as np

    whole = np.zeros(len(order), dtype=np.int64)
    numeric = np.full(len(order), np.nan)
    found = np.zeros(len(order), dtype=bool)
    for entry, at in zip(entries, rows_at, strict=True):
        value = entry[slot]
        if column_type == "int" and type(value) is int and -(2**63) <= value < 2**63:
            whole[at], found[at] = value, True
        elif column_type != "int" and isinstance(value, float | int) and value == value:
            numeric[at], found[at] = value, True
        else:
            stored = next((v for v in entry[3:] if v is not None), None)
            what = "no value" if stored is None else repr(stored)[:60]
            wanted = {"int": "an int", "number": "a number", "bool": "a bool"}[column_type]
            damage.add(entry[0], name, f"user_values of {name!r} holds {what}, not {wanted}")
    return whole, numeric, found


def _frame_kind(held: set[str]) -> str:
    """The kind of frame column a dataset column holding these summary kinds becomes."""
    if held == {"image"}:
        return "image"
    if held <= _NUMERIC:
        if held <= {"bool", "none"} and "bool" in held:
            return "bool"
        if held <= {"int", "none"} and "int" in held:
            return "int"
        return "number"
    return "complex" if held == {"complex"} else "text"


def _labels(names: list[str], data_ids: list[str]) -> list[str | None]:
    """Column labels of many (name, data ID key) rows, parsing each data ID once.

    None for a data ID that is not JSON (a damaged row): no column shows it.
    """
    if all(d == "{}" for d in data_ids):
        return list(names)
    parsed: dict[str, dict[str, Any] | None] = {}
    out: list[str | None] = []
    for name, key in zip(names, data_ids, strict=True):
        if key not in parsed:
            try:
                parsed[key] = dict(json.loads(key))
            except (TypeError, ValueError):
                parsed[key] = None
        data_id = parsed[key]
        out.append(None if data_id is None else label(name, data_id))
    return out


def _pivot(
    order: Any, position: Any, rows: list[Any], image_rows: list[Any], taken: frozenset[str] | set[str], damage: _Damage
) -> dict[str, Any]:
    """Turn (run, name, data_id, kind, value, text) rows into columns."""
    import numpy as np
    import pandas as pd

    labels = _labels([r[1] for r in rows], [r[2] for r in rows])
    if None in labels:  # rare: damaged data IDs; those rows show in no column
        for row, found in zip(rows, labels, strict=True):
            if found is None:
                damage.add(row[0], row[1], f"datasets.data_id of {row[1]!r} is not a JSON object: {str(row[2])[:60]!r}")
        rows = [row for row, found in zip(rows, labels, strict=True) if found is not None]
        labels = [found for found in labels if found is not None]
        if not rows:
            return {}
    run_col, _names, _data_ids, kinds, values, texts = (list(c) for c in zip(*rows, strict=True))
    codes, columns = pd.factorize(np.asarray(labels, dtype=object))
    row_of = position(np.asarray(run_col, dtype=np.int64))
    kind_codes, kind_names = pd.factorize(np.asarray(kinds, dtype=object))
    shape = (len(order), len(columns))

    number_grid = np.full(shape, np.nan)
    try:
        number_grid[row_of, codes] = np.asarray(values, dtype=float)
    except (TypeError, ValueError):  # rare: a summary value SQLite kept as text
        for i, value in enumerate(values):
            if value is None or isinstance(value, float | int):
                number_grid[row_of[i], codes[i]] = np.nan if value is None else value
            else:
                column_label = _shown(str(columns[codes[i]]), taken)
                damage.add(run_col[i], column_label, f"datasets.summary_value of {labels[i]!r} is not a number: "
                           f"{str(value)[:60]!r}")
    text_grid = np.full(shape, None, dtype=object)
    text_grid[row_of, codes] = np.asarray(texts, dtype=object)
    # Which summary kinds each column holds, without a loop over cells.
    present = np.zeros((len(columns), len(kind_names)), dtype=bool)
    present[codes, kind_codes] = True

    thumbnails = None
    if image_rows:
        thumbnails = np.full(shape, None, dtype=object)
        label_code = {column_label: i for i, column_label in enumerate(columns)}
        in_view = set(order.tolist())
        image_labels = _labels([r[1] for r in image_rows], [r[2] for r in image_rows])
        kept = [(r, lab) for r, lab in zip(image_rows, image_labels, strict=True) if r[0] in in_view and lab in label_code]
        if kept:
            at = position(np.asarray([r[0] for r, _ in kept], dtype=np.int64))
            cols = [label_code[lab] for _, lab in kept]
            thumbnails[at, cols] = _object_column([r[3] for r, _ in kept])

    out: dict[str, Any] = {}
    for j, column_label in enumerate(columns):
        held = {str(kind_names[k]) for k in np.flatnonzero(present[j])}
        key = _shown(str(column_label), taken)
        column: Any
        kind = _frame_kind(held)
        if kind == "image":
            column = thumbnails[:, j] if thumbnails is not None else text_grid[:, j]
        elif kind in ("bool", "int", "number"):
            numeric = number_grid[:, j]
            missing = np.isnan(numeric)
            if kind == "bool":
                column = pd.arrays.BooleanArray(np.where(missing, False, numeric != 0), missing)
            elif kind == "int":
                column = _int_column(numeric, text_grid[:, j], key, order, damage)
            else:
                column = numeric
        elif kind == "complex":
            column = _complex_column(text_grid[:, j], key, order, damage)
        else:
            column = text_grid[:, j]
        out[key] = column
    return out


def _int_column(numeric: Any, texts: Any, key: str, order: Any, damage: _Damage) -> Any:
    """An int dataset column, exact: the summary's float where it is exact, its digits beyond."""
    import numpy as np
    import pandas as pd

    missing = np.isnan(numeric)
    # Floats hold every int up to 2**53 exactly; beyond (or past float range,
    # where the value is NULL) the summary text has the digits.
    with np.errstate(invalid="ignore"):
        beyond = np.abs(numeric) >= 2**53
    inexact = np.flatnonzero(beyond | (missing & texts.astype(bool)))  # texts: None or digits
    # Beyond 2**53 the digits are read from the text below; 0 keeps the cast in int64 range.
    whole = np.where(missing | beyond, 0, numeric).astype(np.int64)
    if not len(inexact):
        return pd.arrays.IntegerArray(whole, missing)
    exact: list[Any] = [None if m else int(w) for m, w in zip(missing, whole, strict=True)]
    for i in inexact:
        try:
            exact[i] = int(texts[i])
        except (TypeError, ValueError):
            exact[i] = None
            damage.add(int(order[i]), key, f"the int summary of {key!r} is not an int: {str(texts[i])[:60]!r}")
    if all(v is None or -(2**63) <= v < 2**63 for v in exact):
        return pd.array(exact, dtype="Int64")
    return _object_column(exact)  # beyond int64: Python ints, never rounded


def _complex_column(texts: Any, key: str, order: Any, damage: _Damage) -> Any:
    import numpy as np

    out = np.full(len(texts), None, dtype=object)
    for i, text in enumerate(texts):
        if text is not None:
            try:
                out[i] = complex(text)
            except (TypeError, ValueError):
                damage.add(int(order[i]), key, f"the complex summary of {key!r} is not a complex: {str(text)[:60]!r}")
    return out
