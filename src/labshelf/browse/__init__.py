"""Browse a shelf: what every front end shows, as JSON-able records, through the Shelf only.

The notebook widgets (dataset tree, gallery, run table), the magics'
completion, the HTML reprs and the sidebar's REST server all ask a
:class:`Browser` and show what it answers.  None of them builds SQL or
opens a data file: the queries are in ``registry/listing.py``, the looks
into data files in the formatters (``datastore/members.py``), both reached
through the Shelf.

Modules: ``browser`` (the Browser), ``nodes`` (node ids), ``tree`` (what an
id means; children), ``previews``, ``code`` (snippets), ``runs`` (run table
pages, the first screen's column order), ``pictures`` (PNGs for screens),
``events`` (the change feed as events for screens), ``records`` (what is
answered).

Node ids (they travel in URLs; see :mod:`labshelf.browse.nodes`)::

    ""                          the shelf
    run/12                      a run
    run/12/scan                 the group of names scan/... (run/12/scan/ if a dataset "scan" exists too)
    run/12/scan/x               a dataset; run/12/image[detector=3] with a data ID
    run/12/spectrum#energy      a variable, column or component of a dataset
    run/12/image#camera/image   an HDF5 member of its file; ...#camera/image@CLASS an attribute

Records, as ``to_json()`` gives them (the REST API's payloads)::

    NodePage   children(node, offset, limit, search), search(pattern, offset, limit)
      {"nodes": [Node, ...], "more": bool, "offset": int}
    Node
      {"id": str, "name": str, "kind": str, "meta": str, "expandable": bool, "expand"?: true,
       "unit"?: str, "title"?: str, "description"?: str}
        kind: run, group, a value kind (scalar, ndarray, image, xarray, pandas, composite, ...),
        or inside a dataset: file, dataset, group, attr, link, coord, variable, column, component
        unit, title, description: a dataset's display metadata (shelf.describe), only those said
    Preview    preview(node, size)
      {"node": str, "title": str, "kind": str, "fields": [[label, text], ...], "code": str,
       "text"?: str, "note"?: str,
       "table"?: {"columns": [str], "dtypes": [str], "rows": [[str, ...], ...]},
       "picture"?: {"width": int, "height": int, "bytes": int, "shape"?: [int], "factor"?: int,
                    "vmin"?: float, "vmax"?: float},
       "display"?: {"unit"?: str, "scale"?: float, "precision"?: int, "title"?: str, "description"?: str}}
        the picture's PNG is ``Preview.picture.png`` (bytes): served as image/png beside the JSON
        a described dataset (display): its metadata are also among the fields (unit, scale, display
        precision, title, description), the texts are formatted by them (DisplayMeta.format: a scalar
        scaled with its precision and unit, its "stored value" beside it; min/max/mean with the unit;
        listed values scaled, which the note says); picture vmin/vmax stay stored values, for the front
        end to format with display as the text is
    Snippet    code(node)
      {"node": str, "code": str, "setup": str}
        code uses ``shelf``; setup is ``import labshelf`` + ``shelf = labshelf.open('<folder>')``
    RunsPage   runs(query, sort, columns, offset, limit, times, logbook)
      {"offset": int, "total": int, "columns": [str], "kinds": {column: kind}, "runs": [int],
       "cells": [[value per column], ...], "errors": {"<run>": {column: message}},
       "thumbnails": [base64 PNG, ...], "meta": {column: ColumnMeta}, "column_tags": {column: [str]},
       "log"?: [LogRow, ...], "log_order"?: "start" | "run" | null}
        cells: times ISO 8601 (UTC), null for missing/NaN, "inf"/"-inf", tags as lists,
        ints beyond 2**53 as text, {"png": i} for the i-th thumbnail; the stored values, never scaled
        meta, column_tags: only the page's columns that have some
        log, log_order: with logbook=True; the entries among the page's runs (runs.place_log), on the
        last page also those after its last run; log_order null (and log empty) under a sort whose
        first column is not start or run
    ColumnMeta (runs.column_meta)
      {"unit"?: str, "scale"?: float, "precision"?: int, "title"?: str, "description"?: str,
       "heading": str, "group"?: str}
        heading: the title's last part (else the column) and the unit, "delay [ps]"; group: the title
        before its last "/"; a screen shows value / scale with precision digits after the point
    LogRow     (logbook(query, sort, times) gives every one of a table: (log_order, [LogRow]))
      {"id": int, "time": ISO 8601 | seconds, "text": str, "user": str, "row": int, "before": int}
        row: the row of the whole table it goes before (= total: after the last run);
        before: the same within its page (row - offset)

    RunColumns run_columns()
      {"columns": [str], "default_columns": [str], "kinds": {column: kind}, "editable": [str],
       "user_columns": {name: type}, "meta": {column: ColumnMeta}, "column_tags": {column: [str]}}
        columns in first-screen order (runs.first_screen): status, start, end, experiment, the dataset
        columns, comment, tags, the user columns; default_columns the same without end
    Pixel      pixel(node, x, y)
      {"x": int, "y": int, "value": number | [number, ...], "shape": [int], "text"?: str}
        value as stored; text, for a described dataset, as its display metadata show it ("1.20 ps")
    ShelfSummary summary()
      {"runs": int, "last_change": ISO 8601 | null, "backend": "sqlite" | "postgresql", "writable": bool,
       "version": str}
    Event      watch(listener): listener([Event, ...]) on the feed's thread
      {"kind": "run" | "dataset" | "finished" | "annotation" | "metadata" | "logbook" | "changed",
       "run": int | null, "name"?: str, "version": str}
        name: the dataset (dataset), the field annotated (annotation), the column described or tagged (metadata)
    annotate(run, comment=, tags=, columns=) -> {column: cell} for comment, tags and the user columns

Errors are labshelf errors with one-line messages: InvalidName (a node id,
a search text), InvalidParameter (offset, limit, size), QuerySyntaxError
(a filter, with ``position``; a sort; a column), RunNotFound,
DatasetNotFound (ComponentNotFound for a member), CorruptDataset (a
damaged data file).
"""

from __future__ import annotations

from .browser import Browser
from .nodes import NodeId, node_id, parse_node
from .records import (
    Event,
    LogRow,
    Node,
    NodePage,
    Picture,
    Pixel,
    Preview,
    RunColumns,
    RunsPage,
    ShelfSummary,
    Snippet,
    Table,
)

__all__ = [
    "Browser",
    "NodeId",
    "node_id",
    "parse_node",
    "Event",
    "LogRow",
    "Node",
    "NodePage",
    "Picture",
    "Pixel",
    "Preview",
    "RunColumns",
    "RunsPage",
    "ShelfSummary",
    "Snippet",
    "Table",
]
