"""Browser: what every front end asks of a shelf, answered with JSON-able records."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import (
    DatasetNotFound,
    InvalidName,
    InvalidParameter,
    QuerySyntaxError,
    RunNotFound,
    UnsupportedValue,
    close_matches,
)
from ..names import check_name, data_id_key, label, normalize_data_id, plain_int
from . import code, events, previews, runs
from .nodes import parse_node
from .records import LogRow, Node, NodePage, Pixel, Preview, RunColumns, RunsPage, ShelfSummary, Snippet
from .tree import MAX_PAGE, Located, Tree, dataset_node, label_of, locate, run_node

if TYPE_CHECKING:
    from ..registry.listing import RunOverview
    from ..registry.meta import DisplayMeta
    from ..registry.records import DatasetRef
    from ..runview import RunView
    from ..shelf import Shelf
    from .records import Event

#: Smallest and largest side (pixels) a preview picture may be asked for.
MIN_PICTURE, MAX_PICTURE = 16, 2048
#: Longest search text or name prefix (a dataset name is at most 255 characters).
MAX_SEARCH = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Browser:
    """Browse one shelf: run pages, tree children, previews, code, name search.

    Every front end (the notebook widgets, the magics' completion, the HTML
    reprs, the sidebar's REST server) asks a Browser and shows what it
    answers; none reads the registry or data files itself.  Answers are
    records with ``to_json()`` (see :mod:`labshelf.browse`), and every bad
    argument -- a node id or a filter typed into a URL -- raises a labshelf
    error saying what is allowed: InvalidName, InvalidParameter,
    QuerySyntaxError, RunNotFound or DatasetNotFound.

    A Browser remembers where the pages it gave end (so the next page of
    a run of 10,000 datasets is one index probe) and the run table's
    columns until the shelf changes.  It is thread-safe and cheap to make.

    Parameters
    ----------
    shelf
        The shelf to browse (its own repository: the runs and datasets
        written there).
    """

    def __init__(self, shelf: Shelf):
        self._shelf = shelf
        self._tree = Tree(shelf)
        self._lock = threading.Lock()
        self._base: tuple[str, RunView, dict[str, str]] | None = None
        self._meta: tuple[str, dict[str, DisplayMeta], dict[str, list[str]]] | None = None
        self._log: tuple[str, tuple[str | None, list[LogRow]]] | None = None

    @property
    def shelf(self) -> Shelf:
        return self._shelf

    def __repr__(self) -> str:
        return f"<Browser of {self._shelf.where}>"

    # -- the tree -------------------------------------------------------------------------

    def locate(self, node: Any) -> Located:
        """What a node id names (see :mod:`labshelf.browse.nodes`)."""
        return locate(self._shelf, node)

    def children(self, node: Any = "", offset: Any = 0, limit: Any = 100, search: Any = "") -> NodePage:
        """One page of a node's children.

        Parameters
        ----------
        node
            ``""`` (the shelf: its runs, newest first), ``run/12``, a group,
            a dataset or a member.
        offset, limit
            The page: ``limit`` from 1 to :data:`~labshelf.browse.tree.MAX_PAGE`.
        search
            Keep the datasets whose names contain this text (any case), and
            the runs and groups that hold such datasets.
        """
        offset, limit, search = page_args(offset, limit, search)
        return self._tree.children(self.locate(node), offset, limit, search)

    def run_node(self, number: int) -> Node:
        """The node of one run, as the shelf's listing shows it (RunNotFound if there is none)."""
        checked = _run_number(number)
        entry = self._shelf._listing.run(checked) if checked is not None else None
        if entry is None:
            self._shelf.run(number)  # RunNotFound with the range of runs
            raise RunNotFound(f"no run {number} in {self._shelf.where}")  # pragma: no cover - shelf.run raised
        return run_node(entry)

    def preview(self, node: Any, size: Any = None) -> Preview:
        """What a preview pane shows of a node, with the code that loads it.

        ``size`` is the longest side, in pixels, of a picture (an image, a
        2-D array), from 16 to 2048; by default an image shows its
        thumbnail from the registry (no data file opened) and an array a
        picture of 256 pixels.
        """
        size = plain_int(size)
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not MIN_PICTURE <= size <= MAX_PICTURE):
            raise InvalidParameter(f"size is an int from {MIN_PICTURE} to {MAX_PICTURE} (pixels), not {size!r}")
        found = self.locate(node)
        shelf = self._shelf
        if found.kind == "shelf":
            return previews.shelf_preview(shelf)
        if found.kind == "run":
            return previews.run_preview(shelf, found.id, found.run)
        if found.kind == "group":
            return previews.group_preview(shelf, found.id, found.run, found.prefix)
        assert found.ref is not None
        if found.kind == "dataset":
            return previews.dataset_preview(shelf, found.id, found.ref, size)
        return previews.member_preview(shelf, found.id, found.ref, found.member, size)

    def pixel(self, node: Any, x: Any, y: Any) -> Pixel:
        """The value of one pixel (column ``x``, row ``y``) of an image or 2-D array dataset, at full resolution.

        Reads that one pixel (a ``slice`` read parameter: one chunk of the
        file), however large the image; a colour image gives one value per
        channel.  InvalidParameter says the shape when ``x``, ``y`` fall outside.
        """
        x, y = plain_int(x), plain_int(y)
        for what, value in (("x", x), ("y", y)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidParameter(f"{what} is a pixel index (an int), not {value!r}")
        found = self.locate(node)
        ref = found.ref
        shape = tuple(int(n) for n in (ref.shape or ())) if ref is not None else ()
        pictured = ref is not None and found.kind == "dataset" and (
            (ref.kind == "image" and len(shape) in (2, 3)) or (ref.kind == "ndarray" and len(shape) == 2)
        )
        if ref is None or not pictured:
            what = ref.kind if ref is not None and found.kind == "dataset" else found.kind
            raise InvalidParameter(
                f"pixel values are read from image datasets and 2-D array datasets; {found.id or 'the shelf'!r} is "
                f"{'a ' + what if what else 'not one'}{' of shape ' + previews.shape_text(shape) if shape else ''}"
            )
        height, width = shape[:2]
        if not (0 <= x < width and 0 <= y < height):
            raise InvalidParameter(
                f"the {previews.shape_text(shape)} value of {found.id!r} has columns x from 0 to {width - 1} and rows "
                f"y from 0 to {height - 1}; ({x}, {y}) is outside"
            )
        import numpy as np

        value = np.asarray(self._shelf.read(ref, parameters={"slice": (y, x)}))
        shown = [runs.cell(v) for v in value.tolist()] if value.ndim else runs.cell(value.item())
        meta = previews.described(self._shelf, ref)
        text = None
        if meta is not None:
            text = (", ".join(meta.format(v) for v in value.tolist()) if value.ndim else meta.format(value.item(), unit=True))
            if value.ndim:
                text = f"({text}){' ' + meta.unit if meta.unit else ''}"
        return Pixel(x, y, shown, shape, text)

    def code(self, node: Any) -> Snippet:
        """The exact code that loads a node: ``shelf.get(...)`` and friends, and ``labshelf.open(...)``."""
        found = self.locate(node)
        shelf = self._shelf
        setup = code.open_code(shelf)
        if found.kind == "shelf":
            return Snippet("", "shelf", setup)
        if found.kind == "run":
            return Snippet(found.id, code.run_code(found.run), setup)
        if found.kind == "group":
            return Snippet(found.id, code.group_code(found.run, found.prefix), setup)
        ref = found.ref
        assert ref is not None
        if found.kind == "dataset":
            return Snippet(found.id, code.get_code(ref.name, ref.run, ref.data_id), setup)
        return Snippet(found.id, previews.member_code(shelf, ref, found.member), setup)

    def search(self, pattern: Any, offset: Any = 0, limit: Any = 100) -> NodePage:
        """Datasets of every run whose names match, newest run first, then by name.

        ``pattern`` is text a name contains (any case), or a glob when it
        holds ``*`` or ``?`` (``camera/*``, ``*/image``), matched against
        the whole name.
        """
        offset, limit, pattern = page_args(offset, limit, pattern, what="pattern")
        if not pattern:
            raise InvalidParameter("a search needs a pattern: text a dataset name contains, or a glob like 'camera/*'")
        entries = self._shelf._listing.search(pattern, offset, limit + 1)
        records = self._shelf.metadata() if entries else {}
        nodes = tuple(dataset_node(e, meta_prefix=f"run {e.run} · ", records=records) for e in entries[:limit])
        return NodePage(nodes, len(entries) > limit, offset)

    # -- the run table ------------------------------------------------------------------------

    def runs(
        self,
        query: Any = "",
        sort: Any = (),
        columns: Any = None,
        offset: Any = 0,
        limit: Any = 50,
        *,
        times: str = "iso",
        logbook: bool = False,
    ) -> RunsPage:
        """A page of the run table, counted, with what its columns mean.

        Parameters
        ----------
        query
            A query-language filter (``temperature > 300 and 'good' in tags``);
            a bad one raises QuerySyntaxError with the ``position`` of the problem.
        sort
            ``[[column, ascending], ...]``, the first pair sorting first.
        columns
            The columns to show, in order (None: every column).
        offset, limit
            The page (``limit`` up to 1000).
        times
            ``"iso"`` (ISO 8601 text, UTC) or ``"epoch"`` (seconds).
        logbook
            Also give the logbook entries that fall among the page's runs
            (``log``, each with the ``row`` it goes before; see
            :func:`labshelf.browse.runs.place_log`): placed by time when the
            first sort column is ``start`` or ``run`` (or there is none),
            newest first when descending; sorted by another column no
            entry has a place and ``log`` is empty (``log_order`` None).

        The page carries the display metadata (``meta``) and column tags of
        its columns; the cells are the stored values, never scaled.
        """
        offset, limit = plain_int(offset), plain_int(limit)
        runs.check_page(offset, limit)
        if not isinstance(logbook, bool):
            raise InvalidParameter(f"logbook is true or false, not {logbook!r}")
        base, kinds = self._base_view()
        view = runs.filtered(base, query, sort)
        total = len(view)  # where a bad sort column shows up, before any page is read
        shown = list(kinds) if columns is None else self._columns(columns, kinds)
        page = runs.page(view, shown, offset, limit, times=times, kinds=kinds, total=total, all_columns=list(kinds))
        meta, tags = self._described()
        said, tagged = runs.column_meta(meta, tags, shown)
        extra: dict[str, Any] = {"meta": said, "column_tags": tagged}
        if logbook:
            order, placed = self._placed(view, query, sort, times)
            extra.update(log=runs.on_page(placed, offset, len(page.runs), total), log_order=order)
        return dataclasses.replace(page, **extra)

    def logbook(self, query: Any = "", sort: Any = (), *, times: str = "iso") -> tuple[str | None, list[LogRow]]:
        """Every logbook entry placed among the rows of the run table filtered by ``query`` and
        sorted by ``sort`` (what a scrolling table that shows them all needs), and what placed
        them: "start", "run" or None (see :func:`labshelf.browse.runs.place_log`)."""
        if times not in runs.TIME_FORMATS:
            raise InvalidParameter(f"times are {' or '.join(runs.TIME_FORMATS)}, not {times!r}")
        view = runs.filtered(self._base_view()[0], query, sort)
        len(view)  # a bad sort column raises here, as it does for a page
        return self._placed(view, query, sort, times)

    def _placed(self, view: RunView, query: Any, sort: Any, times: str) -> tuple[str | None, list[LogRow]]:
        """``runs.place_log``, kept until the shelf changes: every page of one table places alike."""
        key = json.dumps([self.version(), query, [list(s) for s in sort], times])
        with self._lock:
            if self._log is not None and self._log[0] == key:
                return self._log[1]
        placed = runs.place_log(view, sort, times)
        with self._lock:
            self._log = (key, placed)
        return placed

    def _described(self) -> tuple[dict[str, DisplayMeta], dict[str, list[str]]]:
        """The shelf's display metadata and column tags, looked up again only when the shelf changed
        (a describe or a tag is a change of the feed: it moves the version)."""
        version = self.version()
        with self._lock:
            if self._meta is not None and self._meta[0] == version:
                return self._meta[1], self._meta[2]
        meta, tags = self._shelf.metadata(), self._shelf.column_tags()
        with self._lock:
            self._meta = (version, meta, tags)
        return meta, tags

    def run_view(self, query: Any = "", sort: Any = ()) -> RunView:
        """The shelf's runs with a query-language filter and a sort applied (for front ends that keep a view)."""
        return runs.filtered(self._base_view()[0], query, sort)

    def column_kinds(self) -> dict[str, str]:
        """Every column of the run table and what it holds (time, text, tags, number, int, bool, complex, image)."""
        return dict(self._base_view()[1])

    def run_columns(self) -> RunColumns:
        """The run table's columns in first-screen order (:func:`labshelf.browse.runs.first_screen`),
        those a first screen shows, what each holds, and which people may edit."""
        kinds = self.column_kinds()
        user = {name: kind for name, kind in self.user_columns().items() if name in kinds}
        columns, default = runs.first_screen(kinds, user)
        said, tagged = runs.column_meta(*self._described(), columns)
        return RunColumns(
            tuple(columns), tuple(default), {c: kinds[c] for c in columns}, ("comment", "tags", *user), user,
            meta=said, column_tags=tagged,
        )

    def column_meta(self, columns: Iterable[str]) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
        """The display metadata and the column tags of ``columns`` that have some, as JSON
        (:func:`labshelf.browse.runs.column_meta`)."""
        return runs.column_meta(*self._described(), list(columns))

    def annotate(
        self, run: Any, *, comment: Any = ..., tags: Any = None, columns: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Set a run's comment, tags or user columns (see :meth:`Shelf.annotate`); return its annotation cells.

        ``comment=...`` leaves the comment as it is, None clears it; ``tags``
        replaces the list; a user column set to None is cleared, a new name
        makes a column.  The answer is ``{column: cell}`` for comment, tags
        and every user column, encoded as a :class:`RunsPage` encodes cells.
        Raises ReadOnlyShelf, RunNotFound, InvalidValue (a value that does
        not fit), InvalidName.
        """
        number = _run_number(run)
        if number is None:
            raise InvalidParameter("run is a run number (an int), not None")
        if columns is not None and not isinstance(columns, Mapping):
            raise InvalidParameter(f"columns is a mapping of user column names to values, not {columns!r}")
        self._shelf.annotate(number, comment=comment, tags=tags, **dict(columns or {}))
        shown = ["comment", "tags", *self.user_columns()]
        page = self.runs(f"run == {number}", columns=[c for c in shown if c in self.column_kinds()], limit=1)
        return dict(zip(page.columns, page.cells[0], strict=True)) if page.cells else {}

    def summary(self) -> ShelfSummary:
        """How many runs, the time of the newest change, the backend, whether it can be written: for a list of shelves."""
        import datetime as _dt

        count, newest, backend = self._shelf._listing.overview()
        last = None
        if isinstance(newest, (int, float)) and math.isfinite(newest) and 0 <= newest < 2**37:  # a damaged time shows as none
            last = _dt.datetime.fromtimestamp(newest, _dt.UTC).isoformat()
        return ShelfSummary(count, last, backend, not self._shelf.readonly, self.version())

    def matches(self, node: Any) -> list[str]:
        """Node ids close to one that names nothing: the nearest runs, or a run's datasets with close names.

        For "no run 99" or "run 12 has no dataset 'tempreature'" answers;
        empty when ``node`` is not a node id or nothing is close.
        """
        try:
            parsed = parse_node(node)
        except InvalidName:
            return []
        if parsed.run is None:
            return []
        listing = self._shelf._listing
        if listing.run(parsed.run) is None:
            return [f"run/{n}" for n in listing.nearest_runs(parsed.run, 5)]
        name = parsed.path.split("#", 1)[0].split("[", 1)[0].rstrip("/")
        if not name:
            return []
        names = listing.names("", run=parsed.run, limit=MAX_PAGE)
        return [f"run/{parsed.run}/{n}" for n in difflib.get_close_matches(name, names, n=5, cutoff=0.6)]

    def watch(self, listener: Callable[[list[Event]], None]) -> Callable[[], None]:
        """Call ``listener(events)`` on the shelf's feed thread as the shelf changes; returns the function
        that stops it (see :mod:`labshelf.browse.events`)."""
        return events.watch(self, listener)

    def version(self) -> str:
        """Text that changes whenever the shelf does (a run, a put, an annotation, a run's end)."""
        return self._shelf._listing.version()

    def _base_view(self) -> tuple[RunView, dict[str, str]]:
        """``shelf.runs`` and its column kinds, looked up again only when the shelf changed."""
        version = self.version()
        with self._lock:
            if self._base is None or self._base[0] != version:
                view = self._shelf.runs
                self._base = (version, view, view.column_kinds())
            return self._base[1], self._base[2]

    @staticmethod
    def _columns(columns: Any, kinds: Mapping[str, str]) -> list[str]:
        if isinstance(columns, str) or not isinstance(columns, Iterable):
            raise QuerySyntaxError(f"columns is a list of column names, not {columns!r}")
        shown = list(dict.fromkeys(columns))
        for column in shown:
            if not isinstance(column, str) or column not in kinds:
                raise QuerySyntaxError(
                    f"unknown column {column!r}{close_matches(str(column), kinds)}; the table has "
                    f"{', '.join(list(kinds)[:20])}{', ...' if len(kinds) > 20 else ''}"
                )
        return shown

    # -- names (completion, hints) ----------------------------------------------------------------

    def names(self, prefix: Any = "", *, run: int | None = None, limit: int = 50) -> list[str]:
        """Distinct dataset names starting with ``prefix`` (of one run, or of all), sorted, at most ``limit``."""
        prefix = _text("prefix", prefix)
        return self._shelf._listing.names(prefix, run=_run_number(run), limit=_limit(limit))

    def run_numbers(self, prefix: Any = "", *, name: str | None = None, limit: int = 50) -> list[int]:
        """Run numbers whose digits start with ``prefix``, newest first; with ``name``, runs that have it."""
        prefix = _text("prefix", prefix)
        if name is not None:
            name = _text("name", name)
        return self._shelf._listing.run_numbers(prefix, name=name, limit=_limit(limit))

    def user_columns(self) -> dict[str, str]:
        """The run table's user columns and their types (number, text, bool), looked up afresh."""
        return self._shelf._annotations.columns()

    def data_ids(self, name: str, limit: int = 10) -> list[dict[str, Any]]:
        """Some data IDs the dataset ``name`` has, in order."""
        check_name(name)
        found = []
        for text in self._shelf._listing.data_ids(name, _limit(limit)):
            try:
                parsed = json.loads(text)
            except ValueError:
                continue  # a row someone else wrote badly: not a data ID to offer
            if isinstance(parsed, dict):
                found.append(parsed)
        return found

    # -- one image dataset across runs (the gallery) ---------------------------------------------

    def image_runs(self, name: str, data_id: Mapping[str, Any] | None = None) -> list[int]:
        """The runs that hold the image dataset ``name`` (with ``data_id``), newest first.

        Raises DatasetNotFound when no run has it (close names suggested),
        UnsupportedValue when it is not an image.
        """
        check_name(name)
        normalized = normalize_data_id(data_id)
        key = data_id_key(normalized)
        listing = self._shelf._listing
        found = listing.image_runs(name, key)
        if found:
            return found
        shown_label = label(name, normalized)
        kind = listing.kind_of(name, key)
        if kind is not None:
            images = ", ".join(repr(n) for n in listing.image_names(10)) or "none"
            raise UnsupportedValue(
                f"{shown_label!r} is a {kind} dataset, not an image; the gallery shows image datasets "
                f"(2-D or HxWx3/4 arrays). Images on this shelf: {images}"
            )
        names = listing.all_names()
        if name in names:
            raise DatasetNotFound(f"no run has {shown_label!r}: the dataset {name!r} exists only with other data IDs")
        raise DatasetNotFound(f"no run of {self._shelf.where} has a dataset {name!r}{close_matches(name, names)}")

    def thumbnails(self, name: str, data_id: Mapping[str, Any] | None, numbers: Sequence[int]) -> dict[int, bytes]:
        """The PNG thumbnails (from the registry) of ``name`` in these runs; runs without one left out."""
        return self._shelf._listing.thumbnails(name, data_id_key(normalize_data_id(data_id)), [_run_number(n) or 0 for n in numbers])

    # -- summaries for HTML reprs -------------------------------------------------------------------

    def latest_runs(self, limit: int = 10) -> tuple[list[RunOverview], int]:
        """The newest runs (number, experiment, status, started, ended, comment, tags, datasets) and how many there are."""
        return self._shelf._listing.latest_runs(_limit(limit))

    def first_datasets(self, run: int, limit: int = 50) -> tuple[list[DatasetRef], int]:
        """The first datasets of a run in the order they were put, and how many it has."""
        return self._shelf._listing.first_datasets(_run_number(run) or 0, _limit(limit))

    def labels(self, run: int, limit: int = 50) -> list[str]:
        """Labels (``name[data ID]``) of the first datasets of a run, in name order."""
        return [label_of(n, d) for n, d in self._shelf._listing.labels(_run_number(run) or 0, _limit(limit))]


def page_args(offset: Any, limit: Any, search: Any = "", *, what: str = "search") -> tuple[int, int, str]:
    """A page's offset, limit and search text, checked (InvalidParameter, InvalidName); the text stripped."""
    offset, limit = plain_int(offset), plain_int(limit)
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= 2**62:
        raise InvalidParameter(f"offset is an int >= 0, not {offset!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidParameter(f"limit is an int from 1 to {MAX_PAGE}, not {limit!r}")
    return offset, limit, _text(what, search).strip()


def _limit(limit: Any) -> int:
    limit = plain_int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidParameter(f"limit is an int from 1 to {MAX_PAGE}, not {limit!r}")
    return limit


def _text(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidParameter(f"{what} is a string, not {value!r}")
    if len(value) > MAX_SEARCH or _CONTROL.search(value) or not _encodable(value):
        raise InvalidName(
            f"{what} is at most {MAX_SEARCH} characters of text without control characters, not {value[:40]!r}"
        )
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no driver would take it
        return False
    return True


def _run_number(run: Any) -> int | None:
    from .nodes import MAX_RUN

    if run is None:
        return None
    run = plain_int(run)
    if isinstance(run, bool) or not isinstance(run, int) or not 0 <= run <= MAX_RUN:
        raise InvalidParameter(f"run is a run number (an int), not {run!r}")
    return run
