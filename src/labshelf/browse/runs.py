"""Pages of the run table: a RunView filtered, sorted and cut to the columns shown, as JSON rows.

Every page is one SQL query for its run numbers (the view's filter, order,
OFFSET and LIMIT) and the summaries of those runs only, pivoted with numpy
(``RunView.page``), so a page costs the same at the top or the bottom of
100,000 runs.  Cells are JSON values column by column (whole numeric
columns at once: a page has thousands of cells): times as ISO 8601 in UTC
(or seconds since the epoch for a front end that formats them itself),
NaN and missing values as null, infinities as ``"inf"``/``"-inf"``,
integers beyond 2**53 (where JavaScript numbers lose digits) as text, tags
as lists, thumbnails as ``{"png": i}`` indexing the page's PNGs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameter, QuerySyntaxError
from .records import LogRow, RunsPage

if TYPE_CHECKING:
    import pandas as pd

    from ..registry.meta import DisplayMeta
    from ..runview import RunView

#: The largest page one request may ask for (a screen shows a few dozen rows).
MAX_PAGE = 1000
#: Numbers beyond this lose digits as JavaScript numbers; they travel as text.
EXACT_INT = 2**53
#: How times travel: ISO 8601 text (UTC), or seconds since the epoch.
TIME_FORMATS = ("iso", "epoch")


#: The run's own columns a first screen leads with, after the run number (the index).
LEADING = ("status", "start", "experiment")
#: What people write, after the data: narrow until used.
NOTES = ("comment", "tags")
#: In the column chooser, not on the first screen (beside ``start`` when chosen).
HIDDEN_AT_FIRST = ("end",)
#: Dataset columns a first screen shows at most (the first put); the others wait in the chooser.
FIRST_SCREEN_DATA = 24


def first_screen(kinds: Mapping[str, str], user_columns: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """Every column of the run table in first-screen order, and the columns a first screen shows.

    A newcomer sees the data first: the run (the index, not a column), its
    status, start and experiment, then the dataset columns (thumbnails
    among them) in the order they were first put, then comment and tags,
    then the user columns.  ``end`` is in the list (after ``start``, where
    the column chooser shows it) but not on the first screen.  The order is
    stable: a new dataset or user column goes to the end of its group.  A
    shelf of thousands of dataset names shows the first FIRST_SCREEN_DATA of
    them at first (a screen holds a few dozen columns; the rest are in the
    chooser), so its table opens as fast as any other.
    """
    user = set(user_columns)
    own = {*LEADING, *NOTES, *HIDDEN_AT_FIRST}
    data = [c for c in kinds if c not in own and c not in user]
    leading = [c for c in LEADING if c in kinds]
    if "end" in kinds:
        leading.insert(leading.index("start") + 1 if "start" in leading else len(leading), "end")
    columns = [*leading, *data, *(c for c in NOTES if c in kinds), *(c for c in kinds if c in user and c not in own)]
    later = set(data[FIRST_SCREEN_DATA:])
    return columns, [c for c in columns if c not in HIDDEN_AT_FIRST and c not in later]


def filtered(base: RunView, filter_text: str = "", sort: Sequence[Any] = ()) -> RunView:
    """``base`` with a query-language filter and a sort ``[[column, ascending], ...]`` applied.

    Raises QuerySyntaxError for a filter that does not parse (its
    ``position`` says where) or names an unknown column, and for a bad
    sort; the view is lazy, so a bad sort column shows when it is read.
    """
    if not isinstance(filter_text, str):
        raise QuerySyntaxError(f"a filter is query-language text, like \"temperature > 300\", not {filter_text!r}")
    view = base
    if filter_text.strip():
        view = view.query(filter_text)
    if sort:
        keys, ascending = sort_keys(sort)
        view = view.sort_values(keys, ascending)
    return view


def page(
    view: RunView,
    columns: Sequence[str],
    offset: int,
    limit: int,
    *,
    times: str = "iso",
    kinds: Mapping[str, str] | None = None,
    total: int | None = None,
    all_columns: Sequence[str] | None = None,
) -> RunsPage:
    """Rows ``offset`` to ``offset + limit`` of ``view``, with the cells of ``columns``.

    ``all_columns`` (the view's columns, if the caller knows them) lets a
    page of most of the columns skip narrowing the view.
    """
    check_page(offset, limit)
    if times not in TIME_FORMATS:
        raise InvalidParameter(f"times are {' or '.join(TIME_FORMATS)}, not {times!r}")
    shown = list(columns)
    narrowed = view
    # Narrowing reads only the shown columns' summaries, through a name filter that costs
    # every probe one more index key: worth it for a few columns of many, not for nearly all
    # (30 of 36 columns: 9 ms narrowed, 7 ms not, on 10,000 runs).
    if all_columns is None or (shown != list(all_columns) and len(shown) * 3 < len(all_columns) * 2):
        try:
            narrowed = view[shown]  # only the shown columns' summaries are read
        except QuerySyntaxError:
            pass  # a label the resolver cannot take, e.g. "status (dataset)": read all
    frame = narrowed.page(offset, limit)
    cells, thumbnails = encode(frame, shown, times)
    failed = frame.attrs.get("errors", {})
    errors = {
        str(run): {c: m for c, m in by_column.items() if c in shown}
        for run, by_column in failed.items()
        if any(c in shown for c in by_column)
    }
    return RunsPage(
        offset=offset,
        columns=tuple(shown),
        kinds={c: kinds.get(c, "text") for c in shown} if kinds is not None else {},
        runs=tuple(int(n) for n in frame.index),
        cells=cells,
        errors=errors,
        thumbnails=tuple(thumbnails),
        total=total,
    )


def check_page(offset: Any, limit: Any) -> None:
    for name, value, top in (("offset", offset, 2**62), ("limit", limit, MAX_PAGE)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise InvalidParameter(f"{name} is an int from 0 to {top}, not {value!r}")


def sort_keys(sort: Sequence[Any]) -> tuple[list[str], list[bool]]:
    """``[[column, ascending], ...]`` as RunView.sort_values takes it."""
    if isinstance(sort, (str, bytes)) or not isinstance(sort, Sequence):
        raise QuerySyntaxError(f"sort is a list of [column, ascending] pairs, like [['temperature', False]], not {sort!r}")
    keys, ascending = [], []
    for item in sort:
        if (
            not isinstance(item, (list, tuple))
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], bool)
        ):
            raise QuerySyntaxError(f"sort is a list of [column, ascending] pairs, like [['temperature', False]], not {item!r}")
        keys.append(item[0])
        ascending.append(item[1])
    return keys, ascending


def cell(value: Any, times: str = "iso") -> Any:
    """A frame value as JSON (no NaN: the Jupyter wire and strict JSON refuse it)."""
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if abs(value) <= EXACT_INT else str(value)
    if isinstance(value, pd.Timestamp):
        return value.timestamp() if times == "epoch" else value.tz_convert("UTC").isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if hasattr(value, "item"):  # a numpy scalar left in an object column
        return cell(value.item(), times)
    return str(value)


def encode(frame: pd.DataFrame, shown: list[str], times: str = "iso") -> tuple[list[list[Any]], list[bytes]]:
    """Rows of cells in ``shown`` order, and the PNG thumbnails they refer to."""
    thumbnails: list[bytes] = []
    columns = [_column(frame[name], thumbnails, times) if name in frame.columns else [None] * len(frame) for name in shown]
    rows = [list(row) for row in zip(*columns, strict=True)] if columns else [[] for _ in range(len(frame))]
    return rows, thumbnails


def _column(series: pd.Series, thumbnails: list[bytes], times: str) -> list[Any]:
    """One frame column as JSON values; whole numeric columns at once."""
    import numpy as np
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        missing = series.isna().to_numpy().tolist()
        stamps = series.to_numpy(dtype="datetime64[ns]")
        if times == "epoch":
            seconds = (stamps.astype("int64") / 1e9).tolist()
            return [None if gone else s for s, gone in zip(seconds, missing, strict=True)]
        texts = np.datetime_as_string(stamps, unit="us", timezone="UTC").tolist()
        return [None if gone else t for t, gone in zip(texts, missing, strict=True)]
    if dtype.kind == "f":
        # Missing floats are NaN already: no mask to compute for the common, all-finite column.
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        if np.isfinite(values).all():
            return values.tolist()
        return [cell(v) for v in values.tolist()]  # inf spelled out, NaN as null
    if dtype.kind in "iub":  # numpy ints and bools, and the nullable Int64/boolean arrays
        missing = series.isna().to_numpy()
        if dtype.kind == "b":
            values = series.to_numpy(dtype=bool, na_value=False)
        else:
            values = series.to_numpy(dtype="int64", na_value=0)
            if (np.abs(values) > EXACT_INT).any():
                return [None if gone else cell(v) for v, gone in zip(values.tolist(), missing.tolist(), strict=True)]
        if missing.any():
            return [None if gone else v for v, gone in zip(values.tolist(), missing.tolist(), strict=True)]
        return values.tolist()
    out = []
    for value in series.tolist():
        if isinstance(value, bytes):  # a thumbnail: its PNG travels beside the cells
            out.append({"png": len(thumbnails)})
            thumbnails.append(value)
        else:
            out.append(cell(value, times))
    return out


# -- what the columns mean: display metadata and column tags ---------------------------------------


def column_meta(
    records: Mapping[str, DisplayMeta], tags: Mapping[str, list[str]], columns: Iterable[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """The display metadata and column tags of each column that has some, as the screens take them.

    ``{column: {"unit"?, "scale"?, "precision"?, "title"?, "description"?, "heading", "group"?}}``:
    the fields said (which column has which: :func:`labshelf.metadata.columns_meta`), the
    ``heading`` a header shows (:meth:`DisplayMeta.header`: ``"delay [ps]"``) and the ``group``
    a title names before its last ``/``; and ``{column: [tags]}``.  Values are not touched: a
    screen divides by ``scale``.
    """
    from ..metadata import columns_meta

    metas, tagged = columns_meta(records, tags, columns)
    out: dict[str, dict[str, Any]] = {}
    for column, found in metas.items():
        said = found.fields()
        said["heading"] = found.header(column)
        if found.group is not None:
            said["group"] = found.group
        out[column] = said
    return out, tagged


# -- the logbook between the runs ------------------------------------------------------------------

#: The sorts that order runs in time, so that log entries have a place among them.
LOG_ORDERS = ("start", "run")


def log_order(sort: Sequence[Any]) -> tuple[str | None, bool]:
    """What places log entries under ``sort`` (checked): its first column if start or run, and
    its direction; (None, True) for any other sort, and ("run", True) for none."""
    if not sort:
        return "run", True
    keys, ascending = sort_keys(sort)
    if keys[0] in LOG_ORDERS:
        return keys[0], ascending[0]
    return None, True


def place_log(view: RunView, sort: Sequence[Any], times: str = "iso") -> tuple[str | None, list[LogRow]]:
    """The logbook entries of ``view``'s time span, each placed before a row of the view.

    ``view`` is the table as shown (filtered and sorted by ``sort``).  When
    its first sort column is ``start`` or ``run`` (or there is no sort and
    the view is in run order, either way), the entries are placed as
    :func:`labshelf.metadata.log_places` says (the rule of
    ``to_pandas(logbook=True)`` too).  Sorted by any other column, time has
    no place among the rows: ``(None, [])``.

    Costs one read of the view's ``start`` column and one of the logbook.
    """
    import pandas as pd

    from ..metadata import log_places

    order, ascending = log_order(sort)
    if order is None:
        return None, []
    frame = view[["start"]].to_pandas(thumbnails=False)
    if not len(frame):
        return order, []
    if not sort:
        # No sort of the table's own: the view's order (a view given sorted, like latest()).
        numbers = pd.Index(frame.index)
        if numbers.is_monotonic_increasing:
            ascending = True
        elif numbers.is_monotonic_decreasing:
            ascending = False
        else:
            return None, []
    entries, rows = log_places(view.shelf, _seconds(frame["start"]), ascending)
    at = entries["time"].to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9
    placed = [
        LogRow(int(entry), _log_time(when, times), str(text), str(user), int(row))
        for entry, when, text, user, row in zip(
            entries.index.tolist(), at.tolist(), entries["text"].tolist(), entries["user"].tolist(), rows.tolist(),
            strict=True,
        )
    ]
    return order, placed


def on_page(placed: Sequence[LogRow], offset: int, count: int, total: int) -> tuple[LogRow, ...]:
    """The placed entries a page of ``count`` rows from ``offset`` shows: those before its rows,
    and on the last page those after the last run."""
    end = offset + count
    last = end >= total
    return tuple(e for e in placed if offset <= e.row < end or (last and e.row == total and offset <= e.row))


def _seconds(series: pd.Series) -> Any:
    """A time column as float seconds since the epoch, NaN where missing."""
    import numpy as np

    stamps = series.to_numpy(dtype="datetime64[ns]")
    seconds = stamps.astype("int64") / 1e9
    seconds[np.isnat(stamps)] = np.nan
    return seconds


def _log_time(seconds: float, times: str) -> str | float:
    import datetime as _dt

    if times == "epoch":
        return seconds
    return _dt.datetime.fromtimestamp(seconds, _dt.UTC).isoformat()
