"""Collections: a get resolved through a 3-level chain, and a query of 5,000 refs.

The shelf holds 10 runs x 10,000 scalar datasets (100,000): run ``r`` has
``flux[detector=d]`` for ``d`` in ``(r-1)*10000 .. r*10000-1``, so each
detector is in exactly one run and a lookup through the chain can end in any
of its 10 leaves.  The chain has three levels over the 10 RUN collections::

    top -> l2 -> l1/b -> run/10 .. run/6
               -> l1/a -> run/5  .. run/1

Figures:

- ``chain get``: ``shelf.get("flux", {"detector": d}, collections="top")`` on
  random detectors; limit: ``shelf.get("flux", {"detector": d}, run=r)`` of
  the same datasets (the run known).  Target ratio <= 2.
- ``query 5,000 refs``: ``shelf.query("flux", where="detector >= 47500 and
  detector < 52500")`` (runs 5 and 6); limit: the hand-written SELECT of the
  same rows with sqlite3 (``json_extract`` on the data ID).  Target <= 0.2 s.
  The same query through the chain (``collections="top"``) is shown too.

The runs and one dataset each are made through the public API; the other
99,990 rows are copies of that dataset's row made with sqlite3 (only the
data ID differs), as in bench_lookup.py.  The shelf is opened with
``cache_bytes=0`` so that both sides of the get comparison read the registry
each time (otherwise the second side would be served from the cache).
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

from _common import Target, interleaved, main, median, note, report, scratch

import labshelf

BENCH = "collections"
RUNS, PER_RUN = 10, 10_000
LOOKUPS, REPEATS = 1_000, 7
LOW, HIGH = 47_500, 52_500  # detectors of the 5,000-ref query
SQL = (
    "SELECT * FROM datasets WHERE name = 'flux' "
    "AND json_extract(data_id, '$.detector') >= ? AND json_extract(data_id, '$.detector') < ?"
)


def data_id_text(detector: int) -> str:
    return json.dumps({"detector": detector}, separators=(",", ":"))


def build(path: Path) -> None:
    with labshelf.create(path) as shelf:
        for r in range(1, RUNS + 1):
            with shelf.new_run("bench-collections") as run:
                run.put("flux", 1.5, data_id={"detector": (r - 1) * PER_RUN})
        shelf.chain("l1/a", [f"run/{r}" for r in range(5, 0, -1)], doc="runs 5..1")
        shelf.chain("l1/b", [f"run/{r}" for r in range(10, 5, -1)], doc="runs 10..6")
        shelf.chain("l2", ["l1/b", "l1/a"])
        shelf.chain("top", ["l2"], doc="three levels over the 10 runs")
    db = sqlite3.connect(path / "registry.sqlite3")
    try:
        cursor = db.execute("SELECT * FROM datasets WHERE run = 1")
        columns = [c[0] for c in cursor.description]
        (template,) = cursor.fetchall()
        copied = [c for c in columns if c not in ("id", "run", "data_id")]
        values = [template[columns.index(c)] for c in copied]
        sql = (
            f"INSERT INTO datasets (run, data_id, {', '.join(copied)}) "
            f"VALUES (?, ?, {', '.join('?' for _ in copied)})"
        )
        db.executemany(
            sql,
            (
                (r, data_id_text((r - 1) * PER_RUN + i), *values)
                for r in range(1, RUNS + 1)
                for i in range(1, PER_RUN)
            ),
        )
        db.commit()
    finally:
        db.close()


def body() -> None:
    with scratch(BENCH) as tmp:
        path = tmp / "collections.shelf"
        build(path)
        try:
            shelf = labshelf.open(path, cache_bytes=0)
            cache_note = "cache_bytes=0"
        except TypeError:
            shelf = labshelf.open(path)
            cache_note = "default cache (cache_bytes= not accepted): both sides may be served from it"
        db = sqlite3.connect(path / "registry.sqlite3")
        try:
            count = db.execute("SELECT count(*) FROM datasets").fetchone()[0]
            rng = random.Random(11)
            detectors = [rng.randrange(RUNS * PER_RUN) for _ in range(LOOKUPS)]
            keys = [({"detector": d}, d // PER_RUN + 1) for d in detectors]

            # Both sides must find the same dataset, and the chain must explain its pick.
            for data_id, run in keys[:50]:
                through = shelf.find("flux", data_id, collections="top")
                direct = shelf.find("flux", data_id, run=run)
                assert through.id == direct.id, (data_id, through, direct)
                leaf = "l1/a" if run <= 5 else "l1/b"
                assert through.found_in == ("top", "l2", leaf, f"run/{run}"), through.found_in
            assert shelf.get("flux", keys[0][0], collections="top") == 1.5

            def chain_get(_i: int) -> None:
                for data_id, _run in keys:
                    shelf.get("flux", data_id, collections="top")

            def direct_get(_i: int) -> None:
                for data_id, run in keys:
                    shelf.get("flux", data_id, run=run)

            times = interleaved({"chain": chain_get, "direct": direct_get}, REPEATS)
            report(BENCH, "chain get (3 levels)", median(times["chain"]) / LOOKUPS, "s",
                   limit=("direct get run=", median(times["direct"]) / LOOKUPS),
                   targets=[Target("ratio", "<=", 2.0)], datasets=count)

            where = f"detector >= {LOW} and detector < {HIGH}"
            refs = shelf.query("flux", where=where)
            rows = db.execute(SQL, (LOW, HIGH)).fetchall()
            ids = sorted(r.id for r in refs)
            chained = shelf.query("flux", where=where, collections="top")
            if len(refs) != HIGH - LOW or ids != sorted(row[0] for row in rows):
                note(f"VALIDATION FAILED: query gave {len(refs)} refs, SQL {len(rows)} rows")
            if sorted(r.id for r in chained) != ids:
                note(f"VALIDATION FAILED: query through the chain gave {len(chained)} refs, not the same {len(ids)}")

            times = interleaved(
                {
                    "query": lambda _i: shelf.query("flux", where=where),
                    "chained": lambda _i: shelf.query("flux", where=where, collections="top"),
                    "sql": lambda _i: db.execute(SQL, (LOW, HIGH)).fetchall(),
                },
                REPEATS,
            )
            sql = median(times["sql"])
            report(BENCH, "query 5,000 refs", median(times["query"]), "s", limit=("SQL SELECT", sql),
                   targets=[Target("value", "<=", 0.2, "s")], refs=len(refs))
            report(BENCH, "same, through chain", median(times["chained"]), "s", limit=("SQL SELECT", sql),
                   targets=[Target("value", "<=", 0.2, "s")], refs=len(chained))
            note(f"{count:,} datasets in {RUNS} runs; {LOOKUPS:,} random gets per round; {cache_note}")
        finally:
            db.close()
            shelf.close()


if __name__ == "__main__":
    main(BENCH, body)
