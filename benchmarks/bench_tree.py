"""The dataset tree's pages: what opening a run of 10,000 datasets, or a shelf of 100,000 runs, costs in Python.

Figures (each the median of alternating rounds, in one process):

- ``tree first page``: ``DatasetTree.rpc_children("run/1", 0, 100)`` on a run
  of 10,000 datasets (scalars, put through the public API), i.e. the
  registry query, the grouping by ``/`` and the JSON-ready node dicts;
- ``tree later page``: the page at offset 5,000, asked for after the page
  before it (as the "more" button does: the widget continues from its
  remembered cursor);
- ``tree runs page``: the first page of runs (newest first) of a shelf of
  100,000 runs, whose rows are inserted straight into the ``runs`` table
  (100,000 public runs would take minutes; a run row is all this reads).

Limits: the same pages by hand with the ``sqlite3`` module on the same
file: ``SELECT ... WHERE run=? ORDER BY name, data_id LIMIT 101`` (with a
keyset ``(name, data_id) > (?, ?)`` for the later page) and ``SELECT ...
FROM runs ORDER BY number DESC LIMIT 101``, rows fetched, no node dicts.

Target: every page <= 30 ms, a tenth of the browser target for "expand a
run of 10,000 datasets to visible children" (300 ms in all, see
bench_browser.py).  The ratio is information: the tree also parses the node
id, checks the run and builds 100 node dicts (labels, shape and size text),
which the limit does not.
"""

from __future__ import annotations

import sqlite3

from _common import Target, interleaved, main, median, note, report, scratch

import labshelf
from labshelf.widgets import DatasetTree

BENCH = "tree"
DATASETS = 10_000
RUNS = 100_000
PAGE = 100
REPEATS = 30
_COLUMNS = "name, data_id, kind, shape, dtype, nbytes, location IS NOT NULL"


def body() -> None:
    with scratch(BENCH) as tmp:
        shelf = labshelf.create(tmp / "tree.shelf")
        with shelf.new_run("bench") as run:
            for i in range(DATASETS - 20):
                run.put(f"d{i:05d}", i)
            for i in range(20):  # some groups too, as real runs have
                run.put(f"group{i % 4}/x{i}", float(i))
        db = sqlite3.connect(tmp / "tree.shelf" / "registry.sqlite3")
        tree = DatasetTree(shelf, page_size=PAGE)
        try:
            first = tree.rpc_children("run/1", offset=0, limit=PAGE)
            by_hand = db.execute(
                f"SELECT {_COLUMNS} FROM datasets WHERE run=? ORDER BY name, data_id LIMIT ?", (1, PAGE + 1)
            ).fetchall()
            assert [n["name"] for n in first["nodes"]] == [r[0] for r in by_hand[:PAGE]], "the pages differ"

            def tree_first(_i: int) -> None:
                tree.rpc_children("run/1", offset=0, limit=PAGE)

            def hand_first(_i: int) -> None:
                db.execute(
                    f"SELECT {_COLUMNS} FROM datasets WHERE run=? ORDER BY name, data_id LIMIT ?", (1, PAGE + 1)
                ).fetchall()

            times = interleaved({"tree": tree_first, "hand": hand_first}, REPEATS)
            report(BENCH, "tree first page", median(times["tree"]), "s", limit=("sqlite3 LIMIT", median(times["hand"])),
                   targets=[Target("value", "<=", 0.030, "s")])

            # The page at 5,000, right after the one before it (the cursor is remembered).
            offset = 5_000
            tree.rpc_children("run/1", offset=offset - PAGE, limit=PAGE)
            before = db.execute(
                "SELECT name, data_id FROM datasets WHERE run=? ORDER BY name, data_id LIMIT 1 OFFSET ?", (1, offset - 1)
            ).fetchone()

            def tree_later(_i: int) -> None:
                tree.rpc_children("run/1", offset=offset, limit=PAGE)

            def hand_later(_i: int) -> None:
                db.execute(
                    f"SELECT {_COLUMNS} FROM datasets WHERE run=? AND (name, data_id) > (?, ?) "
                    "ORDER BY name, data_id LIMIT ?",
                    (1, before[0], before[1], PAGE + 1),
                ).fetchall()

            times = interleaved({"tree": tree_later, "hand": hand_later}, REPEATS)
            report(BENCH, "tree later page", median(times["tree"]), "s", limit=("sqlite3 keyset", median(times["hand"])),
                   targets=[Target("value", "<=", 0.030, "s")])
            plan = db.execute(
                f"EXPLAIN QUERY PLAN SELECT {_COLUMNS} FROM datasets WHERE run=? ORDER BY name, data_id LIMIT 101", (1,)
            ).fetchall()
            note(f"{DATASETS:,} datasets in run 1; plan: {plan[0][-1]}")

            # A shelf of 100,000 runs: rows straight into the runs table.
            db.executemany(
                "INSERT INTO runs (number, experiment, params, status, started, ended, host, user, pid) "
                "VALUES (?, 'bench', '{}', 'finished', 1.0, 2.0, 'h', 'u', 1)",
                ((r,) for r in range(2, RUNS + 1)),
            )
            db.commit()
            fresh = DatasetTree(shelf, page_size=PAGE)
            newest = fresh.rpc_children("", offset=0, limit=PAGE)["nodes"]
            assert newest[0]["id"] == f"run/{RUNS}" and len(newest) == PAGE

            def tree_runs(_i: int) -> None:
                fresh.rpc_children("", offset=0, limit=PAGE)

            def hand_runs(_i: int) -> None:
                db.execute(
                    "SELECT number, experiment, status, started FROM runs ORDER BY number DESC LIMIT ? OFFSET ?",
                    (PAGE + 1, 0),
                ).fetchall()

            times = interleaved({"tree": tree_runs, "hand": hand_runs}, REPEATS)
            report(BENCH, "tree runs page", median(times["tree"]), "s", limit=("sqlite3 LIMIT", median(times["hand"])),
                   targets=[Target("value", "<=", 0.030, "s")])
            note(f"{RUNS:,} runs; a page is {PAGE} nodes")
        finally:
            db.close()
            shelf.close()


if __name__ == "__main__":
    main(BENCH, body)
