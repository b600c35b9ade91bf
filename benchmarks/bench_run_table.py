"""The run table: ``shelf.runs.to_pandas()`` over 10,000 runs x 30 scalars.

Building such a shelf through ``run.put`` would take minutes, so the rows are
inserted straight into the registry tables with SQLAlchemy Core
``executemany``, with exactly the column values a public put writes (see
``writer._fields`` and ``ScalarFormatter.summarise`` / ``to_inline``).  That
claim is checked, not assumed: run 1 goes through the public API, and its
``runs``, ``datasets`` and ``changes`` rows are compared with what the fast
builder makes for the same values (ids and timestamps aside).

The limit is a hand-written query on the same database file with the
``sqlite3`` module and a pandas pivot (numbers from ``summary_value``, text
from ``summary_text``) giving a frame of the same shape; both are timed
alternately and the medians compared.

Each timed call is made on a freshly opened shelf (opened untimed), so the
figure stays the cost of building the table even if a Shelf learns to cache
it; the limit likewise gets a fresh sqlite3 connection each time.

Targets: to_pandas <= 0.3 s, and ratio <= 1.5.
"""

from __future__ import annotations

import getpass
import json
import operator
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import Target, interleaved, main, median, note, now, report, scratch, spread
from sqlalchemy import Engine, create_engine, func, insert, select

import labshelf
from labshelf.registry.schema import changes, datasets, metadata, runs

BENCH = "run_table"
RUNS = 10_000
REPEATS = 7
WARMUP = 1
CHUNK = 1_000  # runs per executemany batch
EXPERIMENT = "bench-run-table"

FLOATS = [
    "temperature", "pressure", "humidity", "vacuum", "beam/current", "beam/energy", "beam/x", "beam/y",
    "sample/x", "sample/y", "sample/z", "sample/theta", "detector/exposure", "detector/gain",
    "detector/temperature", "fit/amplitude", "fit/center", "fit/sigma", "fit/background", "fit/chi2",
    "monitor/i0", "monitor/i1", "magnet/field", "laser/power",
]
INTS = ["detector/frames", "scan/points", "counts/total", "detector/saturated"]
BOOLS = ["fit/converged"]
TEXTS = ["sample/name"]
NAMES = FLOATS + INTS + BOOLS + TEXTS  # the order each run puts them in
SAMPLES = ["LaB6", "Si(111)", "CeO2", "empty cell", "water", "kapton"]

_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode  # as scalar.to_inline
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode  # as registry._dumps


class Values:
    """Every run's parameters and dataset values, drawn at once (deterministic)."""

    def __init__(self, n: int, seed: int = 7):
        rng = np.random.default_rng(seed)
        self.floats = rng.normal(1.0, 0.25, (n + 1, len(FLOATS))) * np.logspace(-3, 4, len(FLOATS))
        self.ints = rng.integers(0, 10**6, (n + 1, len(INTS)))
        self.bools = rng.random(n + 1) < 0.8
        self.samples = rng.integers(0, len(SAMPLES), n + 1)
        self.energy = np.round(rng.uniform(8.0, 20.0, n + 1), 3)

    def params(self, r: int) -> dict[str, Any]:
        return {"scan": r, "energy_keV": float(self.energy[r]), "sample": SAMPLES[self.samples[r]]}

    def items(self, r: int) -> list[tuple[str, Any]]:
        """(name, value) in put order, as plain Python scalars."""
        out: list[tuple[str, Any]] = list(zip(FLOATS, self.floats[r].tolist(), strict=True))
        out += zip(INTS, self.ints[r].tolist(), strict=True)
        out.append((BOOLS[0], bool(self.bools[r])))
        out.append((TEXTS[0], f"{SAMPLES[self.samples[r]]} #{r % 97}"))
        return out


_COMMON = {"kind": "scalar", "shape": None, "thumbnail": None, "location": None, "options": None}


def scalar_fields(v: Any) -> dict[str, Any]:
    """The ``datasets`` columns a public put of scalar ``v`` writes (writer._fields).

    Numbers are spelled as ``json.dumps`` spells them (``repr`` for finite
    floats), without calling it: 300,000 calls of it would be seconds.
    """
    if v is True or v is False:
        return {**_COMMON, "dtype": "bool", "nbytes": 8, "summary_kind": "bool", "summary_value": float(v),
                "summary_text": None, "inline": '{"t":"bool","v":true}' if v else '{"t":"bool","v":false}'}
    if type(v) is int:
        text = str(v)
        return {**_COMMON, "dtype": "int", "nbytes": 8, "summary_kind": "int", "summary_value": float(v),
                "summary_text": text, "inline": '{"t":"int","v":' + text + "}"}
    if type(v) is float:
        assert v == v and abs(v) != float("inf")
        return {**_COMMON, "dtype": "float", "nbytes": 8, "summary_kind": "float", "summary_value": v,
                "summary_text": None, "inline": '{"t":"float","v":' + repr(v) + "}"}
    assert isinstance(v, str) and len(v) <= 200
    return {**_COMMON, "dtype": "str", "nbytes": len(v), "summary_kind": "text", "summary_value": None,
            "summary_text": v, "inline": _json({"t": "str", "v": v})}


Fixed = dict[str, dict[str, Any]]  # table -> columns every row of it gets as they are


def build_rows(values: Values, r: int, fixed: Fixed, t0: float) -> tuple[dict, list[dict], list[dict]]:
    """The runs row, datasets rows and changes rows one finished run leaves.

    ``fixed`` adds columns taken from the public run: host, user and pid,
    and any column a newer schema added that this builder does not know yet.
    """
    started = t0 + r * 60.0
    run_row = {"number": r, "experiment": EXPERIMENT, "params": _dumps(values.params(r)), "status": "finished",
               "started": started, "ended": started + 45.0, "error": None, **fixed.get("runs", {})}
    fixed_ds, fixed_ch = fixed.get("datasets", {}), fixed.get("changes", {})
    ds_rows, change_rows = [], [{"time": started, "kind": "run_start", "run": r, "name": None, "data_id": None,
                                 "version": None, "payload": _RUN_START, **fixed_ch}]
    for k, (name, v) in enumerate(values.items(r)):
        t = started + 1.0 + k
        row = scalar_fields(v)
        row.update(run=r, name=name, data_id="{}", version=1, created=t, updated=t, **fixed_ds)
        ds_rows.append(row)
        change_rows.append({"time": t, "kind": "put", "run": r, "name": name, "data_id": "{}", "version": 1,
                            "payload": None, **fixed_ch})
    change_rows.append({"time": started + 45.0, "kind": "run_end", "run": r, "name": None, "data_id": None,
                        "version": None, "payload": _RUN_END, **fixed_ch})
    return run_row, ds_rows, change_rows


_RUN_START = _dumps({"experiment": EXPERIMENT})
_RUN_END = _dumps({"status": "finished"})


def fresh_openers(folder: Path) -> tuple[list[Any], Any, Any]:
    """(everything opened, open a shelf, open a sqlite3 connection): ``prepare`` callables
    of ``interleaved`` that give each timed call a fresh, untimed handle; close ``opened`` after."""
    opened: list[Any] = []

    def open_shelf(_i: int) -> Any:
        opened.append(labshelf.open(folder, mode="r"))
        return opened[-1]

    def open_sqlite(_i: int) -> sqlite3.Connection:
        opened.append(sqlite3.connect(f"file:{registry_file(folder)}?mode=ro", uri=True))
        return opened[-1]

    return opened, open_shelf, open_sqlite


def registry_file(folder: Path) -> Path:
    """The SQLite file of an embedded shelf, as its marker names it."""
    marker = json.loads((folder / "labshelf.json").read_text())
    return folder / marker["registry"]


def sql_engine(folder: Path) -> Engine:
    """A plain SQLAlchemy engine on the shelf's registry: no labshelf internals in the way."""
    return create_engine(f"sqlite:///{registry_file(folder).as_posix()}")


def validate(folder: Path, values: Values) -> tuple[list[str], list[str], Fixed]:
    """Put run 1 through the public API; compare its rows with the builder's.

    Returns the differences (the builder is wrong), notes (columns it
    learned from the public run) and the fixed columns for the other runs.
    """
    with labshelf.create(folder) as shelf:
        with shelf.new_run(experiment=EXPERIMENT, params=values.params(1)) as run:
            for name, v in values.items(1):
                run.put(name, v)
        assert run.number == 1
    engine = sql_engine(folder)
    with engine.connect() as conn:
        real = {
            "runs": [dict(conn.execute(select(runs).where(runs.c.number == 1)).one()._mapping)],
            "datasets": [dict(r._mapping) for r in conn.execute(
                select(datasets).where(datasets.c.run == 1).order_by(datasets.c.id))],
            "changes": [dict(r._mapping) for r in conn.execute(select(changes).order_by(changes.c.seq))],
        }
        # Rows the public API wrote anywhere else (a table the builder would leave empty).
        elsewhere = {
            table.name: n for table in metadata.sorted_tables
            if table.name not in (*real, "shelf_info")
            and (n := conn.execute(select(func.count()).select_from(table)).scalar_one())
        }
    engine.dispose()
    problems = [f"{table}: the public put wrote {n} rows there, the builder writes none"
                for table, n in elsewhere.items()]
    notes = []
    fixed: Fixed = {"runs": {k: real["runs"][0][k] for k in ("host", "user", "pid")}}
    assert fixed["runs"]["host"] == socket.gethostname()
    assert fixed["runs"]["user"] in (getpass.getuser(), str(os.getuid()))

    # Columns of a newer schema: taken from the public run when every row has the same value.
    made = dict(zip(("runs", "datasets", "changes"), build_rows(values, 1, fixed, 0.0), strict=True))
    made["runs"] = [made["runs"]]
    for table, rows in real.items():
        for column in sorted(set(rows[0]) - set(made[table][0]) - {"id", "seq"}):
            seen = {repr(row[column]) for row in rows}
            if len(seen) == 1:
                fixed.setdefault(table, {})[column] = rows[0][column]
                notes.append(f"{table}.{column} = {rows[0][column]!r} (a column the builder does not know; "
                             "copied from the public put)")
    run_row, ds_rows, ch_rows = build_rows(values, 1, fixed, 0.0)

    def compare(what: str, real_row: dict, made_row: dict, skip: set[str]) -> None:
        for key in sorted((set(real_row) | set(made_row)) - skip):
            a, b = real_row.get(key, "<missing>"), made_row.get(key, "<missing>")
            if a != b or type(a) is not type(b):
                problems.append(f"{what}.{key}: public put wrote {a!r}, the builder {b!r}")

    compare("runs", real["runs"][0], run_row, {"started", "ended"})
    for table, made_rows, skip in (("datasets", ds_rows, {"id", "created", "updated"}),
                                   ("changes", ch_rows, {"seq", "time"})):
        if len(real[table]) != len(made_rows):
            problems.append(f"{table}: the public put wrote {len(real[table])} rows, the builder {len(made_rows)}")
        for real_row, made_row in zip(real[table], made_rows, strict=False):
            compare(f"{table}[{real_row['kind']} {real_row['name']}]", real_row, made_row, skip)
    return problems, notes, fixed


def fill(folder: Path, values: Values, fixed: Fixed) -> None:
    """Runs 2..RUNS straight into the tables, a batch of CHUNK runs per executemany.

    Each table's Core ``insert()`` is compiled once for SQLite and run as one
    DBAPI executemany per batch (``exec_driver_sql``): SQLAlchemy's own
    per-row parameter handling would take most of the fill time.
    """
    t0 = 1.7e9
    engine = sql_engine(folder)
    forms = {}
    for table in (runs, datasets, changes):
        # Every column but the autoincrementing ids (runs.number is given).
        keys = [c.name for c in table.c if table is runs or not c.primary_key]
        compiled = insert(table).compile(dialect=engine.dialect, column_keys=keys)
        forms[table.name] = (str(compiled), operator.itemgetter(*compiled.positiontup))
    with engine.begin() as conn:
        # A big page cache: the name and (run, name, data_id) indexes take
        # keys in no order, which thrashes SQLite's default 2 MB cache.
        conn.exec_driver_sql("PRAGMA cache_size=-262144")
        for first in range(2, RUNS + 1, CHUNK):
            batch: dict[str, list[dict[str, Any]]] = {"runs": [], "datasets": [], "changes": []}
            for r in range(first, min(first + CHUNK, RUNS + 1)):
                a, b, c = build_rows(values, r, fixed, t0)
                batch["runs"].append(a)
                batch["datasets"] += b
                batch["changes"] += c
            for table, rows in batch.items():
                sql, as_tuple = forms[table]
                conn.exec_driver_sql(sql, [as_tuple(row) for row in rows])
    engine.dispose()


def annotation_columns(con: sqlite3.Connection) -> tuple[bool, bool]:
    """Whether this registry has the run comment and tags (schema 0002 and later)."""
    has_comment = "comment" in {row[1] for row in con.execute("PRAGMA table_info(runs)")}
    has_tags = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'run_tags'").fetchone()
    return has_comment, has_tags is not None


def hand_table(con: sqlite3.Connection, has_comment: bool, has_tags: bool) -> pd.DataFrame:
    """The limit: one query per table and a pandas pivot, written for this shelf."""
    extra = ", comment" if has_comment else ""
    meta = pd.DataFrame(
        con.execute(f"SELECT number, experiment, status, started, ended{extra} FROM runs ORDER BY number").fetchall(),
        columns=["run", "experiment", "status", "start", "end", *(["comment"] if has_comment else [])],
    ).set_index("run")
    meta["start"] = pd.to_datetime(meta["start"], unit="s", utc=True)
    meta["end"] = pd.to_datetime(meta["end"], unit="s", utc=True)
    if has_tags:
        tags: dict[int, list[str]] = {}
        for run, tag in con.execute("SELECT run, tag FROM run_tags ORDER BY run, tag"):
            tags.setdefault(run, []).append(tag)
        meta["tags"] = pd.Series([tags.get(n, []) for n in meta.index], index=meta.index, dtype=object)
    cells = pd.DataFrame(
        con.execute("SELECT run, name, summary_kind, summary_value, summary_text FROM datasets").fetchall(),
        columns=["run", "name", "kind", "value", "text"],
    )
    is_text = cells["kind"] == "text"
    numbers = cells[~is_text].pivot(index="run", columns="name", values="value")
    texts = cells[is_text].pivot(index="run", columns="name", values="text")
    return meta.join([numbers, texts])


def compare_frames(lab: pd.DataFrame, hand: pd.DataFrame) -> str:
    common = [c for c in lab.columns if c in hand.columns]
    only_lab = [c for c in lab.columns if c not in hand.columns]
    only_hand = [c for c in hand.columns if c not in lab.columns]
    same_index = lab.index.equals(hand.index)
    differing = []
    if same_index:
        for col in common:
            a, b = lab[col], hand[col]
            if col in ("start", "end"):
                equal = a.equals(b)
            elif col in TEXTS or a.dtype == object or b.dtype == object or str(a.dtype) == "str":
                equal = all(x == y or (x is None and y != y) or (y is None and x != x)
                            for x, y in zip(a.tolist(), b.tolist(), strict=True))
            else:
                equal = np.array_equal(a.astype("float64").to_numpy(), b.astype("float64").to_numpy(), equal_nan=True)
            if not equal:
                differing.append(col)
    dtypes = lab.dtypes.astype(str).value_counts().to_dict()
    return (f"frames: labshelf {lab.shape}, by hand {hand.shape}; same index {same_index}; "
            f"{len(common)} common columns, with different values: {differing or 'none'}; "
            f"only in labshelf's: {only_lab or 'none'}; only by hand: {only_hand or 'none'}; "
            f"labshelf dtypes {dtypes}")


def body() -> None:
    note(f"{RUNS:,} finished runs x {len(NAMES)} scalar datasets ({len(FLOATS)} float, {len(INTS)} int, "
         f"{len(BOOLS)} bool, {len(TEXTS)} str); {REPEATS} timed repeats per side, interleaved, median")
    values = Values(RUNS)
    with scratch(BENCH) as tmp:
        folder = tmp / "shelf"
        problems, learned, fixed = validate(folder, values)
        for text in learned:
            note(f"builder: {text}")
        if problems:
            note("VALIDATION FAILED: the fast builder does not write what a public put writes:")
            for p in problems:
                note(f"  {p}")
        else:
            note("builder validated: run 1 put through the public API has the same runs/datasets/changes "
                 "rows as the builder makes (ids and times aside)")
        start = now()
        fill(folder, values, fixed)
        note(f"filled {RUNS - 1:,} runs ({(RUNS - 1) * len(NAMES):,} dataset rows) in {now() - start:.1f} s; "
             f"registry {os.path.getsize(registry_file(folder)) / 2**20:.0f} MiB")

        # Every timed call gets a freshly opened shelf (and the limit a fresh
        # connection), opened untimed: the figure is what a notebook pays the
        # first time it shows the table, whatever a Shelf may cache later.
        frames: dict[str, pd.DataFrame] = {}
        opened, open_shelf, open_sqlite = fresh_openers(folder)

        def lab(i: int, shelf: Any) -> None:
            frames["lab"] = shelf.runs.to_pandas()

        with sqlite3.connect(f"file:{registry_file(folder)}?mode=ro", uri=True) as con:
            has = annotation_columns(con)

        def hand(i: int, con: sqlite3.Connection) -> None:
            frames["hand"] = hand_table(con, *has)

        try:
            times = interleaved({"labshelf": lab, "hand": hand}, REPEATS, WARMUP,
                                prepare={"labshelf": open_shelf, "hand": open_sqlite})
            # A filtered first page, as a notebook shows it: filter and limit
            # go to SQL, only 50 runs are pivoted.  The limit is the same
            # page selected and pivoted by hand.
            column = FLOATS[0]
            threshold = float(np.median(values.floats[1:, 0]))
            with labshelf.open(folder, mode="r") as shelf, sqlite3.connect(
                f"file:{registry_file(folder)}?mode=ro", uri=True
            ) as con:
                page_sql = (
                    "SELECT d.run, d.name, d.summary_value FROM datasets d WHERE d.run IN ("
                    "SELECT r.number FROM runs r JOIN datasets t ON t.run = r.number AND t.name = ? "
                    "AND t.data_id = '{}' WHERE t.summary_value > ? ORDER BY r.number LIMIT 50)"
                )

                def page_lab(i: int) -> None:
                    frames["page"] = shelf.runs.query(f"`{column}` > {threshold!r}").head(50).to_pandas()

                def page_hand(i: int) -> None:
                    rows = con.execute(page_sql, (column, threshold)).fetchall()
                    frames["page_hand"] = pd.DataFrame(rows, columns=["run", "name", "value"]).pivot(
                        index="run", columns="name", values="value"
                    )

                page_times = interleaved({"labshelf": page_lab, "hand": page_hand}, REPEATS, WARMUP)
        finally:
            for thing in opened:
                thing.close()

    report(BENCH, "run table to_pandas", median(times["labshelf"]), "s",
           limit=("SQL + pd pivot", median(times["hand"])),
           targets=[Target("value", "<=", 0.3, "s"), Target("ratio", "<=", 1.5)],
           labshelf_range=spread(times["labshelf"]), limit_range=spread(times["hand"]), repeats=REPEATS,
           validation_problems=problems)
    note(compare_frames(frames["lab"], frames["hand"]))
    report(BENCH, "query + head(50) page", median(page_times["labshelf"]), "s",
           limit=("SQL + pd pivot", median(page_times["hand"])),
           targets=[Target("value", "<=", 0.03, "s")], repeats=REPEATS)
    note(f"page rows: labshelf {len(frames['page'])}, by hand {len(frames['page_hand'])}; "
         f"same runs: {list(frames['page'].index) == list(frames['page_hand'].index)}")


if __name__ == "__main__":
    main(BENCH, body)
