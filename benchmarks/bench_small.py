"""Many small writes and reads: 1,000 runs x 20 scalars, then random small gets.

labshelf side, through the public API only::

    with shelf.new_run(experiment=..., params=...) as run:
        for name in 20 names: run.put(name, a float or an int)
    shelf.get(name, run=n)            # random run and name

Figures: puts/s (only the time inside ``run.put`` counts), runs/s (the whole
``new_run`` ... ``put`` x 20 ... finish cycle), gets/s.

The limit is the same work done by hand with the ``sqlite3`` module on a
minimal schema (runs table, datasets table keyed by (run, name), values
stored natively), with labshelf's settings: WAL, synchronous=NORMAL, one
``BEGIN IMMEDIATE ... COMMIT`` per insert (so a crash loses nothing already
returned, as labshelf promises), one per run start and one per run end; and
the same lookups with one prepared ``SELECT``.  Both sides run alternately in
blocks of runs (and of gets) so machine noise hits both alike.

Then ``run.put_many`` of ``MANY_PER_RUN`` scalars per run (one transaction
per run), beside the same rows inserted by hand with one ``executemany`` in
one ``BEGIN IMMEDIATE ... COMMIT`` per run.

Targets (issue 16): >= 10,000 puts/s and ratio <= 3; >= 25,000 gets/s;
put_many >= 50,000 scalars/s.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import time

from _common import Target, main, note, now, report, scratch

import labshelf

BENCH = "small"
RUNS = 1_000
PER_RUN = 20
BLOCK = 100  # runs per alternation block
GETS = 10_000
GET_BLOCK = 1_000
NAMES = [f"scalar/v{j:02d}" for j in range(PER_RUN)]
MANY_RUNS = 100
MANY_PER_RUN = 500
MANY_BLOCK = 10
MANY_NAMES = [f"many/v{j:03d}" for j in range(MANY_PER_RUN)]


def value(run: int, j: int) -> float | int:
    """Run ``run``'s value of name ``j``: floats for even j, ints for odd j."""
    return run * 0.001 + j * 1.5 if j % 2 == 0 else run * 100 + j


class HandRegistry:
    """The limit: minimal tables, written and read with the sqlite3 module."""

    def __init__(self, path: str):
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE runs (number INTEGER PRIMARY KEY, experiment TEXT NOT NULL, params TEXT NOT NULL, "
            "status TEXT NOT NULL, started REAL NOT NULL, ended REAL, host TEXT, pid INTEGER)"
        )
        # No declared type on value: SQLite keeps ints as ints and floats as floats.
        self.conn.execute(
            "CREATE TABLE datasets (run INTEGER NOT NULL REFERENCES runs(number), name TEXT NOT NULL, "
            "value, PRIMARY KEY (run, name))"
        )
        self.next = 1

    def new_run(self, experiment: str, params: dict) -> int:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        c.execute(
            "INSERT INTO runs VALUES (?, ?, ?, 'running', ?, NULL, ?, ?)",
            (self.next, experiment, json.dumps(params), time.time(), socket.gethostname(), os.getpid()),
        )
        c.execute("COMMIT")
        self.next += 1
        return self.next - 1

    def put(self, run: int, name: str, v: float | int) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO datasets VALUES (?, ?, ?)", (run, name, v))
        c.execute("COMMIT")

    def put_many(self, run: int, values: dict[str, float | int]) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        c.executemany("INSERT INTO datasets VALUES (?, ?, ?)", [(run, n, v) for n, v in values.items()])
        c.execute("COMMIT")

    def finish(self, run: int) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        c.execute("UPDATE runs SET status = 'finished', ended = ? WHERE number = ?", (time.time(), run))
        c.execute("COMMIT")

    def get(self, run: int, name: str) -> float | int:
        row = self.conn.execute("SELECT value FROM datasets WHERE run = ? AND name = ?", (run, name)).fetchone()
        if row is None:
            raise KeyError((run, name))
        return row[0]


def many_put(shelf: labshelf.Shelf, hand: HandRegistry) -> None:
    """``run.put_many`` of MANY_PER_RUN scalars per run against one executemany per run by hand."""
    lab = by_hand = 0.0
    first = len(shelf) + 1

    def values(r: int) -> dict[str, float | int]:
        return {name: value(r, j) for j, name in enumerate(MANY_NAMES)}

    for b in range(MANY_RUNS // MANY_BLOCK):
        for side in ("lab", "hand") if b % 2 == 0 else ("hand", "lab"):
            for r in range(b * MANY_BLOCK, (b + 1) * MANY_BLOCK):
                batch = values(r)
                if side == "lab":
                    with shelf.new_run(experiment="bench-many") as run:
                        start = now()
                        run.put_many(batch)
                        lab += now() - start
                else:
                    number = hand.new_run("bench-many", {})
                    start = now()
                    hand.put_many(number, batch)
                    by_hand += now() - start
                    hand.finish(number)
    # Correctness (untimed): a few values of the batches read back exactly.
    for r in (0, MANY_RUNS // 2, MANY_RUNS - 1):
        for j in (0, 1, MANY_PER_RUN - 1):
            got, expected = shelf.get(MANY_NAMES[j], run=first + r), value(r, j)
            assert type(got) is type(expected) and got == expected, (r, j, got, expected)
    scalars = MANY_RUNS * MANY_PER_RUN
    report(BENCH, "put_many scalars", scalars / lab, "scalars/s", limit=("sqlite3 by hand", scalars / by_hand),
           targets=[Target("value", ">=", 50_000, "scalars/s")], scalars=scalars, seconds=lab)
    note(f"{MANY_RUNS} runs x put_many of {MANY_PER_RUN} scalars: {lab / MANY_RUNS * 1e3:.1f} ms per batch "
         f"(by hand, one executemany: {by_hand / MANY_RUNS * 1e3:.1f} ms)")


def body() -> None:
    note(f"{RUNS:,} runs x {PER_RUN} scalar puts (floats and ints), then {GETS:,} random gets; "
         f"sides alternate every {BLOCK} runs / {GET_BLOCK} gets")
    with scratch(BENCH) as tmp:
        shelf = labshelf.create(tmp / "shelf")
        hand = HandRegistry(str(tmp / "hand.sqlite3"))
        try:
            lab_put = lab_all = hand_put = hand_all = 0.0

            def labshelf_block(first: int) -> tuple[float, float]:
                in_put = 0.0
                start = now()
                for r in range(first, first + BLOCK):
                    with shelf.new_run(experiment="bench-small", params={"i": r, "gain": 2.5}) as run:
                        for j, name in enumerate(NAMES):
                            v = value(r, j)
                            t = now()
                            run.put(name, v)
                            in_put += now() - t
                return in_put, now() - start

            def hand_block(first: int) -> tuple[float, float]:
                in_put = 0.0
                start = now()
                for r in range(first, first + BLOCK):
                    number = hand.new_run("bench-small", {"i": r, "gain": 2.5})
                    for j, name in enumerate(NAMES):
                        v = value(r, j)
                        t = now()
                        hand.put(number, name, v)
                        in_put += now() - t
                    hand.finish(number)
                return in_put, now() - start

            for b, first in enumerate(range(1, RUNS + 1, BLOCK)):
                sides = [("lab", labshelf_block), ("hand", hand_block)]
                for side, fn in sides if b % 2 == 0 else sides[::-1]:
                    p, a = fn(first)
                    if side == "lab":
                        lab_put, lab_all = lab_put + p, lab_all + a
                    else:
                        hand_put, hand_all = hand_put + p, hand_all + a

            puts = RUNS * PER_RUN
            report(BENCH, "small put", puts / lab_put, "puts/s", limit=("sqlite3 by hand", puts / hand_put),
                   targets=[Target("value", ">=", 10_000, "puts/s"), Target("ratio", "<=", 3)],
                   puts=puts, seconds=lab_put)
            report(BENCH, "run (new+20 puts+end)", RUNS / lab_all, "runs/s",
                   limit=("sqlite3 by hand", RUNS / hand_all), runs=RUNS, seconds=lab_all)
            note(f"per put {lab_put / puts * 1e6:.0f} µs (by hand {hand_put / puts * 1e6:.0f} µs); "
                 f"per run outside the puts {(lab_all - lab_put) / RUNS * 1e3:.2f} ms "
                 f"(by hand {(hand_all - hand_put) / RUNS * 1e3:.2f} ms)")

            many_put(shelf, hand)

            rng = random.Random(42)
            lookups = [(rng.randint(1, RUNS), rng.randrange(PER_RUN)) for _ in range(GETS)]
            # Correctness first (untimed): both sides give back exactly what was put.
            for r, j in lookups[:200]:
                expected = value(r, j)
                got, by_hand = shelf.get(NAMES[j], run=r), hand.get(r, NAMES[j])
                assert type(got) is type(expected) and got == expected, (r, j, got, expected)
                assert type(by_hand) is type(expected) and by_hand == expected, (r, j, by_hand, expected)

            lab_get = hand_get = 0.0
            for b, first in enumerate(range(0, GETS, GET_BLOCK)):
                block = [(r, NAMES[j]) for r, j in lookups[first : first + GET_BLOCK]]
                for side in ("lab", "hand") if b % 2 == 0 else ("hand", "lab"):
                    start = now()
                    if side == "lab":
                        for r, name in block:
                            shelf.get(name, run=r)
                        lab_get += now() - start
                    else:
                        for r, name in block:
                            hand.get(r, name)
                        hand_get += now() - start
            report(BENCH, "small get", GETS / lab_get, "gets/s", limit=("sqlite3 by hand", GETS / hand_get),
                   targets=[Target("value", ">=", 25_000, "gets/s")], gets=GETS, seconds=lab_get)
            note(f"per get {lab_get / GETS * 1e6:.0f} µs (by hand {hand_get / GETS * 1e6:.1f} µs)")
        finally:
            hand.conn.close()
            shelf.close()


if __name__ == "__main__":
    main(BENCH, body)
