"""What display metadata cost: the run table with metadata on every column, and puts that carry them.

1. ``shelf.runs.to_pandas()`` over 10,000 runs x 30 scalars (the shelf of
   bench_run_table.py, built the same validated way), on a copy of that shelf
   where every one of the 30 columns has a unit, scale, precision, title and
   description.  The limit is the same table on the shelf without metadata;
   both are timed alternately on freshly opened shelves.
2. ``run.put(name, x, unit=..., scale=..., precision=...)`` where the stored
   metadata already say exactly that (the common case: a loop that repeats
   them on every put).  The limit is a plain ``run.put(name, x)`` into the
   same run, alternately.  A put whose metadata change every time is shown
   for information (it writes a metadata row, a history row and a change).

Targets: both ratios <= 1.05.
"""

from __future__ import annotations

import shutil

from _common import Target, interleaved, main, median, note, report, scratch, spread
from bench_run_table import NAMES, Values, fill, fresh_openers, validate

import labshelf

BENCH = "metadata"
RUNS = 10_000
REPEATS = 7
PUTS = 3_000
PUT_BLOCK = 100


def describe_every_column(folder: object) -> int:
    with labshelf.open(folder) as shelf:
        for i, name in enumerate(NAMES):
            shelf.describe(name, unit="mV", scale=1e-3, precision=2, title=f"Group {i % 4}/{name}",
                           description=f"what {name} means")
        return len(shelf.metadata())


def table_figures(tmp: object) -> None:
    values = Values(RUNS)
    bare = tmp / "bare"  # type: ignore[operator]
    problems, _learned, fixed = validate(bare, values)
    if problems:
        note("VALIDATION FAILED: the fast builder does not write what a public put writes: " + "; ".join(problems))
    fill(bare, values, fixed)
    described = tmp / "described"  # type: ignore[operator]
    shutil.copytree(bare, described)
    count = describe_every_column(described)
    note(f"{RUNS:,} runs x {len(NAMES)} columns; {count} columns described (unit, scale, precision, title, description)")
    opened_bare, open_bare, _ = fresh_openers(bare)
    opened_described, open_described, _ = fresh_openers(described)
    frames = {}

    def table(key: str):  # noqa: ANN202
        def run(_i: int, shelf: labshelf.Shelf) -> None:
            frames[key] = shelf.runs.to_pandas()

        return run

    try:
        times = interleaved({"described": table("described"), "bare": table("bare")}, REPEATS, 1,
                            prepare={"described": open_described, "bare": open_bare})
    finally:
        for shelf in [*opened_bare, *opened_described]:
            shelf.close()
    said = frames["described"].attrs["labshelf"]["metadata"]
    note(f"metadata in the frame's attrs: {len(said)} columns; same values: "
         f"{frames['described'].drop(columns=['start', 'end']).equals(frames['bare'].drop(columns=['start', 'end']))}")
    report(BENCH, "to_pandas, every column described", median(times["described"]), "s",
           limit=("same table, no metadata", median(times["bare"])),
           targets=[Target("ratio", "<=", 1.05)],
           labshelf_range=spread(times["described"]), limit_range=spread(times["bare"]), repeats=REPEATS)


def put_figures(tmp: object) -> None:
    with labshelf.create(tmp / "puts") as shelf, shelf.new_run("puts") as run:  # type: ignore[operator]
        run.put("described", 0.0, unit="mV", scale=1e-3, precision=2)
        counter = iter(range(10**9))

        def with_meta(_i: int) -> None:
            for _ in range(PUT_BLOCK):
                run.put("described", next(counter) * 1e-3, unit="mV", scale=1e-3, precision=2)

        def plain(_i: int) -> None:
            for _ in range(PUT_BLOCK):
                run.put("plain", next(counter) * 1e-3)

        def changing(_i: int) -> None:
            for _ in range(PUT_BLOCK):
                n = next(counter)
                run.put("changing", n * 1e-3, precision=n % 2 + 1)

        blocks = PUTS // PUT_BLOCK
        times = interleaved({"meta": with_meta, "plain": plain, "changing": changing}, blocks, 2)
        history = len(shelf.history())
    per_put = {key: median(found) / PUT_BLOCK for key, found in times.items()}
    note(f"{blocks} blocks of {PUT_BLOCK} puts per side, interleaved; shelf-wide history entries: {history} "
         f"(1 for 'described', 1 per changing put)")
    report(BENCH, "put, metadata unchanged", 1 / per_put["meta"], "puts/s",
           limit=("plain put", 1 / per_put["plain"]), targets=[Target("ratio", "<=", 1.05)])
    report(BENCH, "put, metadata changed each time", 1 / per_put["changing"], "puts/s",
           limit=("plain put", 1 / per_put["plain"]))


def body() -> None:
    with scratch(BENCH) as tmp:
        table_figures(tmp)
        put_figures(tmp)


if __name__ == "__main__":
    main(BENCH, body)
