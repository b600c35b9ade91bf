"""The records browse answers with: what every front end shows, and the REST API's payloads.

Each is a frozen dataclass with ``to_json()``, which gives plain JSON
values (dicts, lists, str, numbers, bools, None; no NaN) that a REST
handler returns as they are and a widget sends over its comm.  Binary
parts (PNG pictures) stay bytes on the record, beside the JSON: a widget
sends them as binary buffers, a REST API serves them as ``image/png``.
The shapes are listed in ``labshelf/browse/__init__.py``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Node:
    """One entry of a tree listing or a search: a run, a group, a dataset, a member."""

    id: str
    name: str
    #: run, group, a value kind (scalar, ndarray, image, xarray, pandas, composite, ...),
    #: or what is inside a dataset: file, dataset, group, attr, link, coord, variable, column, component.
    kind: str
    #: One line about it: ``"ndarray · 512×512 · float64 · 2 MiB"``.
    meta: str
    #: Whether it has children to list.
    expandable: bool
    #: Open it at once (the first runs holding a search's matches).
    expand: bool = False
    #: A dataset's display metadata, where said: the unit of its values, its human title, its description.
    unit: str | None = None
    title: str | None = None
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "kind": self.kind, "meta": self.meta, "expandable": self.expandable}
        if self.expand:
            out["expand"] = True
        if self.unit is not None:
            out["unit"] = self.unit
        if self.title is not None:
            out["title"] = self.title
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class NodePage:
    """A page of nodes: the children of a node, or the matches of a search."""

    nodes: tuple[Node, ...]
    #: Whether more follow (ask again at ``offset + len(nodes)``).
    more: bool
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {"nodes": [n.to_json() for n in self.nodes], "more": self.more, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class Table:
    """The head of a table: column names, their dtypes, rows of short texts (the index first)."""

    columns: tuple[str, ...]
    dtypes: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def to_json(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "dtypes": list(self.dtypes), "rows": [list(r) for r in self.rows]}


@dataclass(frozen=True, slots=True)
class Picture:
    """A PNG preview and what it shows."""

    png: bytes = field(repr=False)
    width: int
    height: int
    #: The value's own shape, and the whole factor it was shrunk by.
    shape: tuple[int, ...] = ()
    factor: int = 1
    #: The values the colour map spans (grey pictures made from data).
    vmin: float | None = None
    vmax: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"width": self.width, "height": self.height, "bytes": len(self.png)}
        if self.shape:
            out.update(shape=list(self.shape), factor=self.factor)
        if self.vmin is not None and self.vmax is not None:
            out.update(vmin=self.vmin, vmax=self.vmax)
        return out


@dataclass(frozen=True, slots=True)
class Preview:
    """What a preview pane shows of a node."""

    node: str
    title: str
    #: run, group, shelf, a value kind, or what a member is (dataset, attr, variable, column, ...).
    kind: str
    #: (label, text) facts, in order.
    fields: tuple[tuple[str, str], ...]
    #: The exact Python that loads what is shown, for a notebook where the shelf is ``shelf``.
    code: str = ""
    #: The value itself when it is short, or its repr (capped).
    text: str | None = None
    #: Why the facts are partial (a bounded read), if they are.
    note: str | None = None
    table: Table | None = None
    picture: Picture | None = None
    #: The dataset's display metadata said (unit, scale, precision, title, description), if any:
    #: how a front end formats values it shows itself (a colour scale's ends).
    display: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.node, "title": self.title, "kind": self.kind, "fields": list(self.fields), "code": self.code}
        if self.display:
            out["display"] = dict(self.display)
        if self.text is not None:
            out["text"] = self.text
        if self.note is not None:
            out["note"] = self.note
        if self.table is not None:
            out["table"] = self.table.to_json()
        if self.picture is not None:
            out["picture"] = self.picture.to_json()
        return out


@dataclass(frozen=True, slots=True)
class Snippet:
    """The code that loads a node: ``code`` uses ``shelf``; ``setup`` opens it."""

    node: str
    code: str
    setup: str

    @property
    def text(self) -> str:
        """Both, as one cell."""
        return f"{self.setup}\n{self.code}"

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "code": self.code, "setup": self.setup}


@dataclass(frozen=True, slots=True)
class RunsPage:
    """A page of the run table.

    ``cells`` has one row per run of ``runs``, one JSON value per column of
    ``columns``: times as ISO 8601 text in UTC (or seconds since the epoch,
    if asked for), missing values and NaN as null, infinities as ``"inf"``,
    tags as lists, integers beyond 2**53 as text, and thumbnails as
    ``{"png": i}``, the index of a PNG in ``thumbnails``.
    """

    offset: int
    columns: tuple[str, ...]
    #: What each column holds: time, text, tags, number, int, bool, complex, image.
    kinds: Mapping[str, str]
    runs: tuple[int, ...]
    cells: Sequence[Sequence[Any]]
    #: Derived variables that failed: {run: {column: message}}.
    errors: Mapping[str, Mapping[str, str]]
    thumbnails: tuple[bytes, ...] = field(default=(), repr=False)
    #: How many runs the filter keeps (None when not counted).
    total: int | None = None
    #: Display metadata of the shown columns that have some: {column: ColumnMeta JSON}.
    meta: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Column tags of the shown columns that have some.
    column_tags: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: The logbook entries placed on this page (None: not asked for).
    log: tuple[LogRow, ...] | None = None
    #: What placed them: "start" or "run" (the sort's first column), or None when the table is
    #: sorted by another column and no entry is placed.
    log_order: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The page with the thumbnails as base64 text (REST); ``{"png": i}`` cells index them."""
        out: dict[str, Any] = {
            "offset": self.offset,
            "total": self.total,
            "columns": list(self.columns),
            "kinds": dict(self.kinds),
            "runs": list(self.runs),
            "cells": [list(row) for row in self.cells],
            "errors": {run: dict(by_column) for run, by_column in self.errors.items()},
            "thumbnails": [base64.b64encode(png).decode("ascii") for png in self.thumbnails],
            "meta": {column: dict(said) for column, said in self.meta.items()},
            "column_tags": {column: list(tags) for column, tags in self.column_tags.items()},
        }
        if self.log is not None:
            out["log"] = [entry.to_json(self.offset) for entry in self.log]
            out["log_order"] = self.log_order
        return out


@dataclass(frozen=True, slots=True)
class LogRow:
    """A logbook entry placed in the run table: shown before the run at ``row`` of the view.

    ``row`` counts the view's rows from 0 (the run table's order); ``row``
    equal to the number of runs places the entry after the last one.
    """

    id: int
    #: ISO 8601 text (UTC), or seconds since the epoch, as the page's times are.
    time: str | float
    text: str
    user: str
    row: int

    def to_json(self, offset: int = 0) -> dict[str, Any]:
        """The entry; ``before`` is its place among a page's runs (``row - offset``)."""
        return {"id": self.id, "time": self.time, "text": self.text, "user": self.user, "row": self.row,
                "before": self.row - offset}


@dataclass(frozen=True, slots=True)
class RunColumns:
    """The run table's columns: every one in first-screen order, and those a first screen shows.

    The run number is the table's index (``RunsPage.runs``), shown first,
    never one of the columns.
    """

    #: Every column, in first-screen order (see :func:`labshelf.browse.runs.first_screen`).
    columns: tuple[str, ...]
    #: The columns a first screen shows (all but ``end``).
    default: tuple[str, ...]
    kinds: Mapping[str, str]
    #: What people may edit: comment, tags, the user columns.
    editable: tuple[str, ...]
    #: User columns and their types (number, int, bool, text).
    user: Mapping[str, str]
    #: Display metadata of the columns that have some: {column: ColumnMeta JSON}.
    meta: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Column tags of the columns that have some: {column: [tag, ...]} (tags sorted).
    column_tags: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "default_columns": list(self.default),
            "kinds": dict(self.kinds),
            "editable": list(self.editable),
            "user_columns": dict(self.user),
            "meta": {column: dict(said) for column, said in self.meta.items()},
            "column_tags": {column: list(tags) for column, tags in self.column_tags.items()},
        }


@dataclass(frozen=True, slots=True)
class Pixel:
    """One pixel of an image or a 2-D array at full resolution: column ``x``, row ``y``."""

    x: int
    y: int
    #: A number, or one per channel (RGB); JSON-encoded as run table cells are.
    value: Any
    shape: tuple[int, ...]
    #: The value as the dataset's display metadata show it (scaled, precision, unit); None when nothing is said.
    text: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"x": self.x, "y": self.y, "value": self.value, "shape": list(self.shape)}
        if self.text is not None:
            out["text"] = self.text
        return out


@dataclass(frozen=True, slots=True)
class ShelfSummary:
    """What a list of shelves shows of one: its runs, its newest change, whether it can be annotated."""

    runs: int
    #: ISO 8601 (UTC) time of the newest change, or None for a shelf without any.
    last_change: str | None
    #: sqlite or postgresql.
    backend: str
    writable: bool
    version: str

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "last_change": self.last_change, "backend": self.backend,
                "writable": self.writable, "version": self.version}


@dataclass(frozen=True, slots=True)
class Event:
    """Something that changed on a shelf, as a screen needs to know it (see :mod:`labshelf.browse.events`)."""

    #: run (a new run), dataset (a dataset put, appended to or changed), finished (a run ended),
    #: annotation (comment, tags, user columns), metadata (a column's display metadata or tags),
    #: logbook (an entry written, edited or deleted), changed (anything else a table may show).
    kind: str
    run: int | None
    name: str | None
    #: The shelf's version after the change (:meth:`Browser.version`).
    version: str

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "run": self.run, "version": self.version}
        if self.name is not None:
            out["name"] = self.name
        return out
