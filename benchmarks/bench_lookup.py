"""Dataset lookup by (run, name, data ID) in a registry of 1,000,000 datasets.

Figure: ``shelf.find(name, run=r)`` on random keys (the registry part of every
get), median per lookup.  Target < 1 ms.

Limit: the same lookup by hand with the sqlite3 module on the same file
(``SELECT * FROM datasets WHERE run=? AND name=? AND data_id='{}'``).

The 1,000,000 rows are inserted straight into the tables with sqlite3
(10,000 runs x 100 scalars, values as the public put writes them); the query
plan is printed to show the unique index does the work.
"""

from __future__ import annotations

import random
import sqlite3

from _common import Target, main, note, report, scratch, timed

import labshelf

BENCH = "lookup"
RUNS, PER_RUN, LOOKUPS = 10_000, 100, 5_000


def body() -> None:
    with scratch(BENCH) as tmp:
        shelf = labshelf.create(tmp / "lookup.shelf")
        db = sqlite3.connect(tmp / "lookup.shelf" / "registry.sqlite3")
        try:
            db.executemany(
                "INSERT INTO runs (number, experiment, params, status, started, ended, host, user, pid) "
                "VALUES (?, 'bench', '{}', 'finished', 1.0, 2.0, 'h', 'u', 1)",
                ((r,) for r in range(1, RUNS + 1)),
            )
            db.executemany(
                "INSERT INTO datasets (run, name, data_id, kind, dtype, nbytes, summary_kind, summary_value, "
                "inline, version, created, updated) "
                "VALUES (?, ?, '{}', 'scalar', 'float', 8, 'float', 1.5, '{\"t\":\"float\",\"v\":1.5}', 1, 1.0, 1.0)",
                ((r, f"v{i}") for r in range(1, RUNS + 1) for i in range(PER_RUN)),
            )
            db.commit()
            count = db.execute("SELECT count(*) FROM datasets").fetchone()[0]
            plan = db.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM datasets WHERE run=? AND name=? AND data_id='{}'", (1, "v1")
            ).fetchall()
            rng = random.Random(7)
            keys = [(rng.randint(1, RUNS), f"v{rng.randrange(PER_RUN)}") for _ in range(LOOKUPS)]
            assert shelf.get(keys[0][1], run=keys[0][0]) == 1.5

            def by_labshelf() -> None:
                for run, name in keys:
                    shelf.find(name, run=run)

            def by_hand() -> None:
                for run, name in keys:
                    db.execute("SELECT * FROM datasets WHERE run=? AND name=? AND data_id='{}'", (run, name)).fetchone()

            lab = min(timed(by_labshelf) for _ in range(3)) / LOOKUPS
            hand = min(timed(by_hand) for _ in range(3)) / LOOKUPS
            report(BENCH, "lookup in 1M datasets", lab, "s", limit=("sqlite3 by hand", hand),
                   targets=[Target("value", "<=", 1e-3, "s")], datasets=count)
            note(f"{count:,} datasets; plan: {plan[0][-1]}")
        finally:
            db.close()
            shelf.close()


if __name__ == "__main__":
    main(BENCH, body)
