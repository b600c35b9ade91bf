"""The run table widget (RunTable), Python side: answering the browser's page requests.

Over the 10,000 runs x 30 scalars shelf of ``bench_run_table.py`` (same
builder, same validation), three figures:

- **first page**: the browser's first request, ``rows(offset=0, limit=100)``,
  from the message in to the answer handed to the comm (the comm's ``send``
  is captured, and the answer serialised with ``json.dumps`` as the Jupyter
  session would): the view's page query, the pivot of those 100 runs, the
  JSON cells.  The limit is hand-written SQL with the ``sqlite3`` module for
  the same 100 rows (runs row + summaries + tags of those runs), put into
  rows of cells in Python and serialised the same way;
- **deep sorted page**: ``rows(offset=5000, limit=100)`` after sorting by a
  dataset column, descending; the limit is the same page by hand (ORDER BY
  the summary value through a join, OFFSET/LIMIT);
- **open + first page**: a fresh ``RunTable(shelf.runs)`` on a freshly opened
  shelf (column kinds, count, change version) and its first page; the limit
  adds the count and the list of dataset columns to the hand-written page.

Targets: first page <= 30 ms and ratio <= 3 (the widget does more per cell:
typed columns, NaN to null, thumbnails as buffers); open + first page <= 150 ms.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from _common import Target, interleaved, main, median, note, now, report, scratch, spread
from bench_run_table import FLOATS, NAMES, RUNS, Values, fill, fresh_openers, registry_file, validate

import labshelf

BENCH = "table_widget"
REPEATS = 15
WARMUP = 2
PAGE = 100
DEEP = 5_000


def captured(widget: Any) -> list[Any]:
    """What the widget sends to the browser, serialised as the Jupyter session does."""
    sent: list[Any] = []

    def send(data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        sent.append((json.dumps(data, allow_nan=False), buffers))

    widget.comm.send = send
    return sent


def ask(widget: Any, sent: list[Any], offset: int) -> dict[str, Any]:
    """One page request through the widget's message handler; the answer's content."""
    widget._on_request(widget, {"id": "bench", "method": "rows", "params": {"offset": offset, "limit": PAGE}}, [])
    return json.loads(sent[-1][0])["content"]


def hand_page(con: sqlite3.Connection, order: str, offset: int, params: tuple[Any, ...] = ()) -> str:
    """The limit: one page of rows by hand -- the runs, their summaries and tags, as JSON."""
    meta = con.execute(
        "SELECT r.number, r.started, r.ended, r.status, r.experiment, r.comment FROM runs r "
        f"{order} LIMIT {PAGE} OFFSET {offset}",
        params,
    ).fetchall()
    numbers = [m[0] for m in meta]
    marks = ",".join("?" * len(numbers))
    column = {name: 6 + i for i, name in enumerate(NAMES)}
    rows = {m[0]: [m[1], m[2], m[3], m[4], m[5], []] + [None] * len(NAMES) for m in meta}
    for run, tag in con.execute(f"SELECT run, tag FROM run_tags WHERE run IN ({marks}) ORDER BY tag", numbers):
        rows[run][5].append(tag)
    summaries = con.execute(
        f"SELECT run, name, summary_kind, summary_value, summary_text FROM datasets WHERE run IN ({marks})", numbers
    )
    for run, name, kind, value, text in summaries:
        rows[run][column[name]] = text if kind == "text" else (int(value) if kind == "int" else value)
    return json.dumps({"runs": numbers, "cells": [rows[n] for n in numbers]}, allow_nan=False)


def body() -> None:
    note(f"{RUNS:,} finished runs x {len(NAMES)} scalar datasets (the bench_run_table shelf); pages of {PAGE} rows; "
         f"{REPEATS} timed repeats per side, interleaved, median")
    values = Values(RUNS)
    with scratch(BENCH) as tmp:
        folder = tmp / "shelf"
        problems, _learned, fixed = validate(folder, values)
        if problems:
            note("VALIDATION FAILED: the fast builder does not write what a public put writes:")
            for p in problems:
                note(f"  {p}")
        start = now()
        fill(folder, values, fixed)
        note(f"filled in {now() - start:.1f} s")

        from labshelf.widgets import RunTable

        sort_column = FLOATS[0]
        with labshelf.open(folder, mode="r") as shelf, sqlite3.connect(
            f"file:{registry_file(folder)}?mode=ro", uri=True
        ) as con:
            table = RunTable(shelf.runs)
            sent = captured(table)
            answers: dict[str, Any] = {}

            def lab_first(i: int) -> None:
                answers["lab"] = ask(table, sent, 0)

            def hand_first(i: int) -> None:
                answers["hand"] = hand_page(con, "ORDER BY r.number", 0)

            first = interleaved({"labshelf": lab_first, "hand": hand_first}, REPEATS, WARMUP)
            lab, hand = answers["lab"]["result"], json.loads(answers["hand"])
            same_first = lab["runs"] == hand["runs"] == list(range(1, PAGE + 1))
            sizes = (len(sent[-1][0]), len(answers["hand"]))

            sorted_table = RunTable(shelf.runs, sort=[[sort_column, False]])
            sorted_sent = captured(sorted_table)
            order = ("JOIN datasets t ON t.run = r.number AND t.name = ? AND t.data_id = '{}' "
                     "ORDER BY t.summary_value DESC, r.number")

            def lab_deep(i: int) -> None:
                answers["lab_deep"] = ask(sorted_table, sorted_sent, DEEP)

            def hand_deep(i: int) -> None:
                answers["hand_deep"] = hand_page(con, order, DEEP, (sort_column,))

            deep = interleaved({"labshelf": lab_deep, "hand": hand_deep}, REPEATS, WARMUP)
            same_deep = answers["lab_deep"]["result"]["runs"] == json.loads(answers["hand_deep"])["runs"]

        # A notebook showing the table for the first time: a fresh shelf, a new widget.
        opened, open_shelf, open_sqlite = fresh_openers(folder)

        def lab_open(i: int, shelf: Any) -> None:
            widget = RunTable(shelf.runs)
            ask(widget, captured(widget), 0)
            widget.close()

        def hand_open(i: int, con: sqlite3.Connection) -> None:
            con.execute("SELECT count(*) FROM runs").fetchone()
            con.execute("SELECT name, data_id, summary_kind FROM datasets GROUP BY name, data_id, summary_kind").fetchall()
            hand_page(con, "ORDER BY r.number", 0)

        try:
            fresh = interleaved({"labshelf": lab_open, "hand": hand_open}, REPEATS, WARMUP,
                                prepare={"labshelf": open_shelf, "hand": open_sqlite})
        finally:
            for thing in opened:
                thing.close()

    report(BENCH, "table first page", median(first["labshelf"]), "s",
           limit=("SQL by hand", median(first["hand"])),
           targets=[Target("value", "<=", 0.03, "s"), Target("ratio", "<=", 3.0)],
           labshelf_range=spread(first["labshelf"]), limit_range=spread(first["hand"]), repeats=REPEATS,
           validation_problems=problems)
    note(f"same runs as by hand: {same_first}; answer {sizes[0]:,} bytes of JSON (by hand {sizes[1]:,}), "
         f"{len(lab['columns'])} columns")
    report(BENCH, "table deep sorted page", median(deep["labshelf"]), "s",
           limit=("SQL by hand", median(deep["hand"])),
           targets=[Target("value", "<=", 0.1, "s")], repeats=REPEATS)
    note(f"rows {DEEP}..{DEEP + PAGE} sorted by {sort_column} descending; same runs as by hand: {same_deep}")
    report(BENCH, "table open + 1st page", median(fresh["labshelf"]), "s",
           limit=("SQL by hand", median(fresh["hand"])),
           targets=[Target("value", "<=", 0.15, "s")], repeats=REPEATS)


if __name__ == "__main__":
    main(BENCH, body)
