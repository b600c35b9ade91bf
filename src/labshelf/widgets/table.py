"""RunTable: the run table as an interactive, virtualised grid in Jupyter.

The browser holds only the rows in view (plus a margin) and asks for pages
of rows as the user scrolls (``rpc_rows``); filtering, sorting and column
choice are traits the browser sets and Python turns into a
:class:`~labshelf.RunView`, so every page is one SQL query over the shelf's
registry, never a whole table.  Comments, tags and user columns are edited
in place (``rpc_edit`` -> :meth:`Shelf.annotate`), and new runs and other
people's edits show up as the change feed reports them (in a kernel; a
cheap poll of ``rpc_version`` otherwise).

Rows travel as JSON, as :mod:`labshelf.browse.runs` encodes a page: the
run numbers of the page and, per row, one value per shown column (times as
seconds since the epoch, NaN and missing values as null, tags as lists);
thumbnails of image columns travel as binary PNG buffers, a cell naming its
buffer as ``{"png": index}``.  Formatting for the eye (local time, number
precision) is the browser's job, in ``static/table.js``: the cells are the
stored values, and the columns' display metadata (``meta``: unit, scale,
precision, title, description, with the ``heading`` and ``group`` a header
shows) travel beside them, so sorting, filtering and editing keep working on
what is stored while the screen shows ``value / scale``.  The logbook's
entries come placed among the rows (``rpc_logbook``) when the ``logbook``
toggle is on.
"""

from __future__ import annotations

import hashlib
import math
import threading
from typing import TYPE_CHECKING, Any

import traitlets

from ..browse import Browser
from ..browse import runs as run_pages
from ..errors import InvalidValue, QuerySyntaxError, ReadOnlyShelf, ShelfError
from ..names import plain_int
from ._base import Reply, ShelfWidget, _one_line, css, esm

if TYPE_CHECKING:

    from ..runview import RunView
    from ..shelf import Shelf

#: The largest page a request may ask for (a screen shows a few dozen rows).
MAX_PAGE = run_pages.MAX_PAGE
_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}


class RunTable(ShelfWidget):
    """An interactive run table: scroll, sort, filter, choose columns, edit, select.

    Parameters
    ----------
    view
        The runs to show: a :class:`~labshelf.RunView` (``shelf.runs``,
        ``shelf.runs.query(...)``, ...) or a :class:`~labshelf.Shelf` for
        all of its runs.  The table's filter and sort apply on top of it.
    page_size
        Rows per request from the browser (1 to 1000).
    poll
        Seconds between checks for new runs and edits (0 turns them off).

    Attributes
    ----------
    filter : str
        A query-language filter (``temperature > 300 and 'good' in tags``);
        a bad one sets :attr:`error` and keeps the rows shown before.
    sort : list of [str, bool]
        ``[[column, ascending], ...]``, the first pair sorting first.
    columns : list of str
        The columns shown after the run number (a subset of ``all_columns``),
        in the order shown.  At first the first screen's (``default_columns``):
        status, start, experiment, the dataset columns and thumbnails, comment
        and tags; ``end`` is in the column chooser.  A view with chosen columns
        (``shelf.runs[["a", "b"]]``) shows those, in their order.
    all_columns : list of str
        Every column, in first-screen order (:func:`labshelf.browse.runs.first_screen`).
    count : int
        How many runs match the filter.
    selected_runs : list of int
        Run numbers selected in the browser; :attr:`selected` is their RunView.
    error : str
        The last filter or sort problem, one line; empty when there is none.
    error_position : int or None
        Where in :attr:`filter` the filter in :attr:`error` stops parsing.
    layout_key : str
        Under which key the browser remembers the columns' order and choice
        (per shelf; a hash of its location, so no URL lands in the browser's
        storage); empty for a view with chosen columns, which is not remembered.
    meta : dict
        Display metadata of the columns that have some, as
        :func:`labshelf.browse.runs.column_meta` gives them (``heading``,
        ``unit``, ``scale``, ``precision``, ``group``, ...); looked up again
        when the shelf changes (``Shelf.describe``, a put with metadata).
    column_tags : dict
        Tags of the columns that have some (``Shelf.tag_columns``): the
        column chooser filters by them.
    logbook : bool
        Show the logbook's entries as rows between the runs, by time (when
        the table is sorted by run or start; see
        :func:`labshelf.browse.runs.place_log`).
    """

    _esm = esm("table.js")
    _css = css("table.css")

    filter = traitlets.Unicode("").tag(sync=True)
    sort = traitlets.List(traitlets.List()).tag(sync=True)
    columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    all_columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    default_columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    kinds = traitlets.Dict(traitlets.Unicode()).tag(sync=True)
    editable = traitlets.List(traitlets.Unicode()).tag(sync=True)
    count = traitlets.Int(0).tag(sync=True)
    selected_runs = traitlets.List(traitlets.Int()).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    error_position = traitlets.Int(None, allow_none=True).tag(sync=True)
    layout_key = traitlets.Unicode("").tag(sync=True)
    meta = traitlets.Dict().tag(sync=True)
    column_tags = traitlets.Dict().tag(sync=True)
    logbook = traitlets.Bool(False).tag(sync=True)
    page_size = traitlets.Int(100).tag(sync=True)
    poll = traitlets.Float(2.0).tag(sync=True)
    # Bumped whenever the rows a page request returns may differ (filter,
    # sort, columns, new runs, edits): the browser drops its cached pages.
    generation = traitlets.Int(0).tag(sync=True)

    _reverting = False  # undoing a sort that failed: not a change to apply
    _applied: tuple[str, list[Any]] = ("", [])  # the filter and sort the rows follow
    _filter_error = ""  # why the filter in the box is not the one applied
    _filter_position: int | None = None  # and where in it

    def __init__(self, view: RunView | Shelf, page_size: int = 100, poll: float = 2.0, **kwargs: Any) -> None:
        from ..runview import RunView
        from ..shelf import Shelf

        if isinstance(view, Shelf):
            view = view.runs
        if not isinstance(view, RunView):
            raise TypeError(f"RunTable shows a RunView (shelf.runs, shelf.runs.query(...)) or a Shelf, not {view!r}")
        self._base = view
        self._view = view
        self._browser = Browser(view.shelf)
        self._version = self._current_version()
        kinds = view.column_kinds()
        all_columns, default = _first_screen(view, kinds)
        meta, column_tags = self._browser.column_meta(all_columns)
        super().__init__(
            meta=meta,
            column_tags=column_tags,
            page_size=plain_int(page_size),
            poll=poll,
            kinds=kinds,
            all_columns=all_columns,
            default_columns=default,
            columns=default,
            editable=self._editable(view),
            count=len(view),
            layout_key=_layout_key(view),
            **kwargs,
        )
        self._follow_feed()

    def _follow_feed(self) -> None:
        """In a Jupyter kernel, react to the shelf's change feed (the browser's poll stays as a fallback)."""
        from ..live.subscribe import kernel_loop

        loop = kernel_loop()
        if loop is None:
            return
        feed = self.shelf._feed(None)
        due = threading.Event()  # one refresh waiting at a time, however many changes arrive

        def on_changes(_found: list[Any]) -> None:
            if not due.is_set():
                due.set()
                loop.call_soon_threadsafe(refresh)

        def refresh() -> None:
            due.clear()
            if self.comm is not None:  # widget-touching work stays on the kernel's loop
                self.rpc_version()

        feed.add(on_changes)
        self._feed_listener: tuple[Any, Any] | None = (feed, on_changes)

    def close(self) -> None:
        listener = getattr(self, "_feed_listener", None)
        if listener is not None:
            listener[0].remove(listener[1])
            self._feed_listener = None
        super().close()

    # -- what Python users see ---------------------------------------------------------

    @property
    def shelf(self) -> Shelf:
        """The shelf whose runs the table shows."""
        return self._base.shelf

    @property
    def view(self) -> RunView:
        """The RunView the table shows now: the given view with the filter and sort applied."""
        return self._view

    @property
    def selected(self) -> RunView:
        """The runs selected in the table, as a RunView (in run-number order)."""
        return self.shelf.runs.where(run=sorted(set(self.selected_runs)))

    def fallback_html(self) -> str:
        return self._view._repr_html_()

    def __repr__(self) -> str:
        return f"<RunTable {self.count} runs of {self.shelf.where}>"

    # -- traits --------------------------------------------------------------------------------

    @traitlets.validate("page_size")
    def _check_page_size(self, proposal: Any) -> int:
        value = proposal["value"]
        if isinstance(value, bool) or not 1 <= value <= MAX_PAGE:
            raise traitlets.TraitError(f"page_size is between 1 and {MAX_PAGE}, not {value}")
        return int(value)

    @traitlets.validate("poll")
    def _check_poll(self, proposal: Any) -> float:
        value = proposal["value"]
        if not value >= 0 or math.isinf(value):
            raise traitlets.TraitError(f"poll is a number of seconds >= 0 (0: no polling), not {value}")
        return float(value)

    @traitlets.validate("columns")
    def _check_columns(self, proposal: Any) -> list[str]:
        known = set(self.all_columns)
        unknown = [c for c in proposal["value"] if c not in known]
        if unknown:
            raise traitlets.TraitError(
                f"unknown column {unknown[0]!r}; the table has {', '.join(self.all_columns[:20])}"
                + (", ..." if len(self.all_columns) > 20 else "")
            )
        return list(dict.fromkeys(proposal["value"]))  # each once, in the order given

    @traitlets.observe("filter", "sort")
    def _on_query_change(self, change: Any) -> None:
        if self._reverting:
            return
        # The other half stays as last applied: a bad filter left in its box
        # must not make every later sort fail too.
        filter_text = self.filter if change["name"] == "filter" else self._applied[0]
        sort = self.sort if change["name"] == "sort" else self._applied[1]
        applied = self._apply(filter_text, sort)
        if not applied and change["name"] == "filter":
            self._filter_error = self.error
            self._filter_position = self.error_position
        if not applied and change["name"] == "sort":
            # A sort that failed is undone, so the headers show the real order
            # (the error stays); a bad filter stays in its box for the user to fix.
            self._reverting = True
            try:
                self.sort = change["old"]
            finally:
                self._reverting = False

    @traitlets.observe("columns")
    def _on_columns_change(self, _change: Any) -> None:
        self.generation += 1

    def _apply(self, filter_text: str, sort: list[Any]) -> bool:
        """Put a filter and sort on the base view; on a problem set ``error`` and keep the old view."""
        try:
            view = run_pages.filtered(self._base, filter_text, sort)
            count = len(view)  # also where a bad sort column shows up
        except (ShelfError, ValueError, TypeError) as exc:
            position = getattr(exc, "position", None) if isinstance(exc, QuerySyntaxError) else None
            with self.hold_sync():
                self.error = _one_line(exc)
                # Only a filter's problem has a place in the filter box.
                self.error_position = position if isinstance(position, int) and filter_text == self.filter else None
            return False
        self._view = view
        self._applied = (filter_text, list(sort))
        with self.hold_sync():
            # A bad filter still in its box keeps its message up.
            fixed = self.filter.strip() == filter_text.strip()
            self.error = "" if fixed else self._filter_error
            self.error_position = None if fixed else self._filter_position
            self.count = count
            self.generation += 1
        return True

    # -- requests from the browser -------------------------------------------------------

    def rpc_rows(self, offset: int = 0, limit: int | None = None) -> Reply:
        """One page of rows of the current view: JSON values, thumbnails as PNG buffers."""
        limit = self.page_size if limit is None else limit
        for name, value in (("offset", offset), ("limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise QuerySyntaxError(f"rows: {name} is an int >= 0, not {value!r}")
        limit = min(limit, MAX_PAGE)
        # Times as seconds since the epoch: static/table.js formats them in local time.
        page = run_pages.page(self._view, self.columns, offset, limit, times="epoch", all_columns=self.all_columns)
        result = {
            "generation": self.generation,
            "offset": offset,
            "columns": list(page.columns),
            "runs": list(page.runs),
            "cells": page.cells,
            "errors": page.errors,
        }
        return Reply(result, list(page.thumbnails))

    def rpc_logbook(self) -> dict[str, Any]:
        """Every logbook entry placed among the rows of the current view, times in seconds.

        ``{"generation", "order": "start" | "run" | None, "entries": [{"id", "time", "text",
        "user", "row"}]}``: ``row`` is the row of the view an entry shows before (the count of
        runs: after the last).  ``order`` None when the table is sorted by another column
        (no entry has a place then); see :func:`labshelf.browse.runs.place_log`.
        """
        order, placed = run_pages.place_log(self._view, self._applied[1], "epoch")
        entries = [{k: v for k, v in e.to_json().items() if k != "before"} for e in placed]
        return {"generation": self.generation, "order": order, "entries": entries}

    def rpc_numbers(self, offset: int = 0, limit: int = MAX_PAGE) -> list[int]:
        """Run numbers of rows ``offset`` to ``offset + limit`` (for shift-click ranges)."""
        for name, value in (("offset", offset), ("limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise QuerySyntaxError(f"numbers: {name} is an int >= 0, not {value!r}")
        return self._view.numbers()[offset : offset + limit]

    def rpc_edit(self, run: int, column: str, value: Any) -> dict[str, Any]:
        """Set one editable cell (comment, tags, a user column) through :meth:`Shelf.annotate`.

        ``value`` is what the user typed: tags as comma-separated text,
        numbers and bools as text (empty text clears the cell).  Returns the
        value now stored, as a row cell.
        """
        if isinstance(run, bool) or not isinstance(run, int):
            raise InvalidValue(f"edit: run is a run number, not {run!r}")
        shelf = self.shelf
        if shelf.readonly:
            raise ReadOnlyShelf(f"the shelf {shelf.where} is open read-only; open it with mode='rw' to edit the table")
        # Looked up afresh: another viewer may have added a user column.
        user_types = self._browser.user_columns()
        if column not in ("comment", "tags") and column not in user_types:
            raise InvalidValue(
                f"column {column!r} cannot be edited; editable are comment, tags and the user columns"
                + (f" ({', '.join(user_types)})" if user_types else "")
            )
        parsed = _parse_edit(column, value, user_types.get(column))
        if column == "comment":
            shelf.annotate(run, comment=parsed)
        elif column == "tags":
            shelf.annotate(run, tags=parsed)
        else:
            shelf.annotate(run, **{column: parsed})
        # Answer with what the registry now holds (tags sorted and without
        # repeats, numbers as floats), as a page would show it.
        stored = shelf.runs.where(run=[run])[[column]].page(0, 1)
        value = stored[column].iloc[0] if len(stored) else None
        return {"run": run, "column": column, "value": run_pages.cell(value, "epoch")}

    def rpc_version(self) -> dict[str, Any]:
        """Check whether the shelf changed; if so refresh columns and count and bump ``generation``.

        The one place that decides "something changed": called when the
        change feed reports writes (in a kernel), and by the browser every
        ``poll`` seconds as a fallback.
        """
        version = self._current_version()
        if version != self._version:
            self._version = version
            self._refresh()
        return {"version": version, "generation": self.generation}

    # -- helpers ----------------------------------------------------------------------------

    def _current_version(self) -> str:
        return self._browser.version()

    def _refresh(self) -> None:
        """Look up columns afresh and re-run the view (new runs, new columns, edits)."""
        base = self._base.refreshed()
        kinds = base.column_kinds()
        self._base = base
        all_columns, default = _first_screen(base, kinds)
        new = [c for c in all_columns if c not in self.all_columns]
        meta, column_tags = self._browser.column_meta(all_columns)
        with self.hold_sync():
            self.meta = meta
            self.column_tags = column_tags
            self.kinds = kinds
            self.all_columns = all_columns
            self.default_columns = default
            if new:  # columns nobody has seen yet are shown; hidden ones stay hidden
                self.columns = [*self.columns, *new]
            self.editable = self._editable(base)
            self._apply(*self._applied)

    @staticmethod
    def _editable(view: RunView) -> list[str]:
        return [] if view.shelf.readonly else view.editable_columns


def _first_screen(view: RunView, kinds: dict[str, str]) -> tuple[list[str], list[str]]:
    """Every column in first-screen order and those shown at first; a view's chosen columns as chosen."""
    if view.columns_chosen:
        return list(kinds), list(kinds)
    user = [c for c in view.editable_columns if c not in ("comment", "tags")]
    return run_pages.first_screen(kinds, user)


def _layout_key(view: RunView) -> str:
    """The key the browser remembers a shelf's column layout under: a hash of where the shelf is."""
    if view.columns_chosen:
        return ""
    return "widget:" + hashlib.sha256(view.shelf.where.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _parse_edit(column: str, value: Any, user_type: str | None) -> Any:
    """What the user typed into a cell, as the value ``annotate`` takes."""
    if value is None:
        return [] if column == "tags" else None
    if column == "tags":
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        if isinstance(value, list) and all(isinstance(t, str) for t in value):
            return value
        raise InvalidValue(f"tags are comma-separated text, like 'good, focus', not {value!r}")
    if isinstance(value, str) and not value.strip():
        return None  # an emptied cell clears the value
    if user_type == "number":
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise InvalidValue(f"{column} holds numbers: {value!r} is not a number (empty clears it)") from None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            raise InvalidValue(f"{column} holds numbers, not {value!r}")
        if not math.isfinite(number):
            raise InvalidValue(f"{column} holds finite numbers, not {value!r}")
        return number
    if user_type == "bool":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise InvalidValue(f"{column} holds true or false (yes/no, 1/0), not {value!r}; empty clears it")
    if not isinstance(value, str):
        raise InvalidValue(f"{column} holds text, not {value!r}")
    return value


__all__ = ["RunTable"]
