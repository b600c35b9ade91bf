"""The shelf's side of display metadata, column tags and the logbook (``Shelf.describe`` and friends).

The records, checks and SQL are in ``registry/meta.py``; here they meet a
shelf's view: writes go to its own repository, reads look through the whole
search path (the view's own repository first, then its inputs in order, the
first that says something about a name winning).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import InvalidValue, LogEntryNotFound, ShelfError
from .names import data_id_key, label, normalize_data_id
from .registry.meta import (
    FIELDS,
    WHOLE,
    DisplayMeta,
    Meta,
    check_column_name,
    check_fields,
    check_log_text,
    check_tags,
    check_time,
    merged,
    os_user,
)

if TYPE_CHECKING:
    import pandas as pd

    from .shelf import Shelf

#: "Not given" for ``describe`` (where None clears a field).
UNSAID: Any = type("Unsaid", (), {"__repr__": lambda self: "UNSAID"})()


def _metas(shelf: Shelf) -> list[Meta]:
    """The view's repositories' metadata stores, the own one (where writes go) first."""
    own = shelf._writer.meta
    return [own, *(Meta(repo.registry) for repo in shelf._repos[1:])]


def describe(shelf: Shelf, name: str, data_id: Mapping[str, Any] | None, given: Mapping[str, Any]) -> DisplayMeta:
    shelf._check_writable()
    meta = shelf._writer.meta
    name = check_column_name(name, meta)
    fields = check_fields({k: v for k, v in given.items() if v is not UNSAID}, clearing=True)
    key = data_id_key(normalize_data_id(data_id))
    meta.describe(name, key, fields, user=os_user())
    return metadata_of(shelf, name, data_id)


def metadata_of(shelf: Shelf, name: str, data_id: Mapping[str, Any] | None = None) -> DisplayMeta:
    """What is said of ``name`` (and its data ID, over the name's), as an empty record if nothing is."""
    did = normalize_data_id(data_id)
    key = data_id_key(did)
    found = None
    for meta in reversed(_metas(shelf)):  # the first repository in search order wins
        whole = meta.get(name, WHOLE)
        own = meta.get(name, key) if key != WHOLE else None
        found = merged(found, merged(whole, own)) if (whole or own) else found
    if found is None:
        return DisplayMeta(name, did)
    return DisplayMeta(name, did, **{f: getattr(found, f) for f in FIELDS}, updated=found.updated, user=found.user)


def all_metadata(shelf: Shelf) -> dict[str, DisplayMeta]:
    """Every record of the view, keyed by label (``name`` or ``name[channel=2]``), sorted."""
    out: dict[str, DisplayMeta] = {}
    for meta in reversed(_metas(shelf)):
        for record in meta.all():
            key = label(record.name, record.data_id)
            out[key] = merged(out.get(key), record) or record
    return dict(sorted(out.items()))


def for_label(records: Mapping[str, DisplayMeta], name: str, data_id: Mapping[str, Any]) -> DisplayMeta | None:
    """The metadata of a column: its data ID's over its name's (None where nothing is said)."""
    whole = records.get(name)
    if not data_id:
        return whole
    return merged(whole, records.get(label(name, data_id)))


def tag_columns(shelf: Shelf, name: str, tags: Iterable[str]) -> list[str]:
    shelf._check_writable()
    meta = shelf._writer.meta
    name = check_column_name(name, meta)
    checked = check_tags(tags)
    meta.tag_columns(name, checked, user=os_user())
    return checked


def column_tags(shelf: Shelf) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for meta in reversed(_metas(shelf)):
        out.update(meta.column_tags())
    return dict(sorted(out.items()))


# -- the logbook -------------------------------------------------------------------


def log(shelf: Shelf, text: Any, at: Any) -> int:
    shelf._check_writable()
    checked = check_log_text(text)
    return shelf._writer.meta.log(checked, time.time() if at is None else check_time(at), user=os_user())


def edit_log(shelf: Shelf, entry: Any, text: Any, at: Any) -> bool:
    shelf._check_writable()
    number = _entry(entry)
    checked = None if text is None else check_log_text(text)
    seconds = None if at is None else check_time(at)
    try:
        return shelf._writer.meta.edit_log(number, text=checked, at=seconds, user=os_user())
    except LookupError:
        raise _no_entry(number) from None


def delete_log(shelf: Shelf, entry: Any) -> None:
    shelf._check_writable()
    number = _entry(entry)
    try:
        shelf._writer.meta.delete_log(number, user=os_user())
    except LookupError:
        raise _no_entry(number) from None


def _entry(entry: Any) -> int:
    import numbers

    if isinstance(entry, bool) or not isinstance(entry, numbers.Integral) or not 1 <= int(entry) < 2**63:
        raise InvalidValue(f"a log entry is given by its number (an int from shelf.log or the logbook's index), not {entry!r}")
    return int(entry)


def _no_entry(number: int) -> ShelfError:
    return LogEntryNotFound(f"the logbook has no entry {number}; shelf.logbook() lists them")


def logbook(shelf: Shelf, since: Any, until: Any) -> pd.DataFrame:
    """The entries of the view's repositories from ``since`` to ``until``, by time."""
    import pandas as pd

    low = None if since is None else check_time(since, "since=")
    high = None if until is None else check_time(until, "until=")
    rows = []
    for repo, meta in zip(shelf._repos, _metas(shelf), strict=True):
        for entry, at, text, who, created, updated in meta.entries(low, high):
            rows.append((entry, at, text, who, created, updated, repo.where))
    rows.sort(key=lambda row: (row[1], row[0]))
    index = pd.Index([r[0] for r in rows], dtype="int64", name="entry")
    # Arrays, not Series: a Series on a default index would be aligned to the entry
    # numbers, shifting the texts by one row (entries count from 1).
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime([r[1] for r in rows], unit="s", utc=True),
            "text": pd.array([r[2] for r in rows], dtype=object),
            "user": pd.array([r[3] for r in rows], dtype=object),
            "written": pd.to_datetime([r[4] for r in rows], unit="s", utc=True),
            "edited": pd.to_datetime([r[5] if r[5] != r[4] else None for r in rows], unit="s", utc=True),
        },
        index=index,
    )
    if len(shelf._repos) > 1:
        frame["repository"] = [r[6] for r in rows]
    return frame


__all__ = [
    "UNSAID", "all_metadata", "column_tags", "delete_log", "describe", "edit_log", "for_label", "log", "logbook",
    "metadata_of", "tag_columns",
]


# -- the run table's side ------------------------------------------------------------


def columns_meta(
    records: Mapping[str, DisplayMeta], tags: Mapping[str, list[str]], columns: Iterable[str]
) -> tuple[dict[str, DisplayMeta], dict[str, list[str]]]:
    """The display metadata and column tags of run-table columns, by label (only those that have some).

    ``records`` and ``tags`` are what :func:`all_metadata` and
    :func:`column_tags` give; a column ``pmt[channel=2].mean`` has the
    metadata of ``pmt[channel=2]`` over those of ``pmt``, and the tags of
    ``pmt``; the run's own columns (start, status, ...) have none.
    """
    from .runview import column_source

    metas: dict[str, DisplayMeta] = {}
    tagged: dict[str, list[str]] = {}
    if not records and not tags:
        return metas, tagged
    for column in columns:
        named = column_source(column)
        if named is None:
            continue
        found = for_label(records, *named)
        if found is not None and not found.empty:
            metas[column] = found
        if named[0] in tags:
            tagged[column] = list(tags[named[0]])
    return metas, tagged


def annotate_frame(frame: pd.DataFrame, metas: Mapping[str, DisplayMeta], tags: Mapping[str, list[str]]) -> None:
    """Put the columns' metadata and tags in ``frame.attrs["labshelf"]`` (plain dicts: pandas copies attrs)."""
    frame.attrs["labshelf"] = {
        "metadata": {column: meta.fields() for column, meta in metas.items()},
        "column_tags": {column: list(found) for column, found in tags.items()},
    }


def column_attrs(frame: pd.DataFrame, column: str) -> dict[str, Any]:
    """A column's Series.attrs: its metadata and tags under ``labshelf``, and ``units`` (the CF name xarray keeps)."""
    said = frame.attrs.get("labshelf", {})
    fields = dict(said.get("metadata", {}).get(column, {}))
    attrs: dict[str, Any] = {"labshelf": {"metadata": fields, "column_tags": list(said.get("column_tags", {}).get(column, []))}}
    if "unit" in fields:
        attrs["units"] = fields["unit"]
    if "title" in fields:
        attrs["long_name"] = fields["title"]
    if "description" in fields:
        attrs["description"] = fields["description"]
    return attrs


def shown_frame(frame: pd.DataFrame, metas: Mapping[str, DisplayMeta]) -> pd.DataFrame:
    """The frame with numeric columns as shown: divided by their scale, rounded to their precision."""
    import numpy as np

    out = frame.copy()
    for column, meta in metas.items():
        if column not in out.columns or (meta.scale is None and meta.precision is None):
            continue
        values = out[column]
        if values.dtype.kind not in "iuf":
            continue
        shown = values.to_numpy(dtype=np.float64, na_value=np.nan) / (meta.scale or 1.0)
        if meta.precision is not None:
            shown = np.round(shown, meta.precision)
        out[column] = shown
    out.attrs["labshelf"] = {**out.attrs.get("labshelf", {}), "display": True}
    return out


def log_places(shelf: Shelf, starts: Any, ascending: bool) -> tuple[pd.DataFrame, Any]:
    """The logbook entries among runs shown in time order, and the row each goes before.

    ``starts`` are the shown runs' starts in seconds (NaN where unknown), in
    the order shown, which is by start or by run number, ``ascending`` or
    not.  An entry goes after every run that started at or before it and
    before the first that started later (the other way round descending), as
    DAMNIT's table shows comments between runs; a run that started out of
    number order does not pull entries back (places follow the latest start
    so far), so each entry has one place.  Which entries: those from the
    earliest shown start up to the start of the shelf's next run after the
    latest shown one, unbounded on a side where the shelf has no run beyond
    the shown ones (notes before the first run, and after the last, show).
    Rows count from 0; ``len(starts)`` is after the last run.  Entries come
    oldest first ascending, newest first descending, their rows in order.
    """
    import numpy as np

    known = starts[~np.isnan(starts)]
    if not len(known):
        return logbook(shelf, 0.0, 0.0), np.zeros(0, dtype=np.int64)
    since, until = _span(shelf, float(known.min()), float(known.max()))
    entries = logbook(shelf, since, until)
    at = entries["time"].to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9
    if ascending:
        latest = np.fmax.accumulate(starts)  # ignores NaN after the first start
        rows = np.searchsorted(np.nan_to_num(latest, nan=-np.inf), at, side="right")
    else:
        earliest = np.fmin.accumulate(starts)
        rows = np.searchsorted(-np.nan_to_num(earliest, nan=np.inf), -at, side="left")
        # Oldest first, their rows fall; reversed, they rise, and entries sharing a place
        # show newest first, as the runs around them do.
        entries, rows = entries.iloc[::-1], rows[::-1]
    return entries, rows


def with_logbook(shelf: Shelf, frame: pd.DataFrame, ascending: bool) -> pd.DataFrame:
    """The run table (in time order: by run or start) with the logbook's entries between its rows.

    Entries are placed by :func:`log_places`; a log entry's row has no run
    number (``<NA>`` in the nullable index), its time in ``start`` and its
    text, writer and number in ``log``, ``log_user`` and ``log_entry``
    (``<NA>`` for runs).  Int and bool columns become nullable.
    """
    import numpy as np
    import pandas as pd

    if "start" not in frame.columns:
        raise ShelfError("to_pandas(logbook=True) places entries by the runs' start: keep the 'start' column in the view")
    starts = frame["start"].to_numpy(dtype="datetime64[ns]")
    seconds = starts.astype("int64") / 1e9
    seconds[np.isnat(starts)] = np.nan
    entries, rows = log_places(shelf, seconds, ascending)
    runs_part = frame.copy()
    runs_part.index = pd.Index(runs_part.index.to_numpy(), dtype="Int64", name="run")
    # Log rows have no value in the run columns: ints and bools become nullable, not floats.
    nullable = {c: "Int64" if t.kind in "iu" else "boolean" for c, t in runs_part.dtypes.items() if t.kind in "iub"}
    runs_part = runs_part.astype(nullable)
    runs_part["log"] = pd.Series(pd.NA, index=runs_part.index, dtype="string")
    runs_part["log_user"] = pd.Series(pd.NA, index=runs_part.index, dtype="string")
    runs_part["log_entry"] = pd.Series(pd.NA, index=runs_part.index, dtype="Int64")
    if not len(entries):
        return runs_part
    log_part = pd.DataFrame(
        {
            "start": entries["time"].to_numpy(),
            "log": pd.array(entries["text"].tolist(), dtype="string"),
            "log_user": pd.array(entries["user"].tolist(), dtype="string"),
            "log_entry": pd.array(entries.index.to_numpy(), dtype="Int64"),
        },
        index=pd.Index([pd.NA] * len(entries), dtype="Int64", name="run"),
    ).astype({"start": runs_part["start"].dtype})
    combined = pd.concat([runs_part, log_part], sort=False)
    # Each entry just before the run row it was placed before (a stable sort on that row).
    keys = np.concatenate([np.arange(len(runs_part)) * 2 + 1, np.asarray(rows, dtype=np.int64) * 2])
    out = combined.iloc[np.argsort(keys, kind="stable")]
    out.attrs = dict(frame.attrs)
    return out


def _span(shelf: Shelf, first: float, last: float) -> tuple[float | None, float | None]:
    """The logbook times belonging to runs started from ``first`` to ``last``: up to the next run's start."""
    from sqlalchemy import func, select

    from .registry.registry import usable_time
    from .registry.schema import runs

    # The frame's times went through pandas' nanoseconds: a run's own start may
    # differ from the registry's float by a fraction of a microsecond.
    slack = 1e-6
    started = usable_time(runs.c.started)
    with shelf._registry.db.read() as txn:
        earlier = txn.scalar(select(func.count()).select_from(runs).where(started < first - slack))
        following = txn.scalar(select(func.min(started)).where(started > last + slack))
    return (first - slack if earlier else None), (None if following is None else float(following) - slack)
