"""User columns keep exactly what was given, and never share a name with a dataset.

Issue 10: ``annotate(1, big=2**53 + 1)`` read back ``9007199254740992.0`` and
integer columns came back as floats; ``annotate(1, temperature=-5.0)`` made a
user column beside the dataset ``temperature``, so a query and the table
disagreed.  Both registries, every reader: the run table, the history, the
change feed, queries.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

import labshelf
from labshelf.registry.schema import SCHEMA_VERSION

INT64_MAX = 2**63 - 1
BIG = [2**53 + 1, -(2**53) - 3, INT64_MAX, -(2**63), 12345678901234567]


@pytest.fixture
def runs3(shelf: labshelf.Shelf) -> labshelf.Shelf:
    for i in range(3):
        with shelf.new_run("scan") as run:
            run.put("temperature", 300.0 + i)
            run.put("label", f"l{i}")
    return shelf


def test_integers_come_back_exactly_everywhere(runs3: labshelf.Shelf) -> None:
    shelf = runs3
    for run, value in zip((1, 2, 3), (BIG[0], np.int64(BIG[2]), np.uint32(7)), strict=True):
        assert shelf.annotate(run, big=value) == 1
    table = shelf.runs.to_pandas()
    assert table["big"].dtype == pd.Int64Dtype()
    assert table["big"].tolist() == [2**53 + 1, INT64_MAX, 7]
    assert all(type(v) is int for v in table["big"].tolist())
    assert shelf.runs.column_kinds()["big"] == "int"
    # The history and the change feed carry the same ints.
    assert shelf.history(1)[-1]["new"] == 2**53 + 1 and type(shelf.history(1)[-1]["new"]) is int
    payloads = [json.loads(c["payload"]) for c in shelf._registry.changes_since(0) if c["kind"] == "annotate"]
    assert [p["new"] for p in payloads] == [2**53 + 1, INT64_MAX, 7]
    # Queries compare exactly: 2**53 + 1 is not 2**53.
    assert shelf.runs.query("big == 9007199254740993").numbers() == [1]
    assert shelf.runs.query("big == 9007199254740992").numbers() == []
    assert shelf.runs.query(f"big >= {INT64_MAX}").numbers() == [2]
    assert shelf.runs.query("big < 9007199254740993").numbers() == [3]
    assert shelf.runs.sort_values("big", ascending=False).numbers() == [2, 1, 3]


@pytest.mark.parametrize("value", BIG)
def test_each_extreme_int_round_trips(runs3: labshelf.Shelf, value: int) -> None:
    runs3.annotate(2, count=value)
    assert runs3.runs.to_pandas().loc[2, "count"] == value
    assert runs3.history(2)[-1]["new"] == value
    if abs(value) < 2**63:  # -(2**63) cannot be written as a literal of the query language
        assert runs3.runs.query(f"count == {value}").numbers() == [2]
        neighbours = [n for n in (value - 1, value + 1) if abs(n) < 2**63]
        assert runs3.runs.query(" or ".join(f"count == {n}" for n in neighbours)).numbers() == []
    # Unchanged when set again: no history entry for nothing.
    assert runs3.annotate(2, count=value) == 0


def test_int_column_rules(runs3: labshelf.Shelf) -> None:
    shelf = runs3
    shelf.annotate(1, n=5)
    # A float that is a whole number is that int, exactly; the column stays int.
    assert shelf.annotate(2, n=6.0) == 1
    assert shelf.annotate(3, n=np.float32(2.0)) == 1
    assert shelf.runs.to_pandas()["n"].tolist() == [5, 6, 2]
    refused: list[tuple[Any, str]] = [
        (1.5, "not a whole number"),
        (float("nan"), "finite"),
        (math.inf, "finite"),
        (2**63, "out of their range"),
        (-(2**63) - 1, "out of their range"),
        (np.uint64(2**64 - 1), "out of their range"),
        (1e19, "out of their range"),
        (True, "holds int values"),
        ("5", "holds int values"),
    ]
    for value, phrase in refused:
        with pytest.raises(labshelf.InvalidValue, match=phrase):
            shelf.annotate(1, n=value)
    assert shelf.runs.to_pandas()["n"].tolist() == [5, 6, 2]  # nothing changed


def test_float_column_rules(runs3: labshelf.Shelf) -> None:
    shelf = runs3
    shelf.annotate(1, x=0.5)
    assert shelf._annotations.columns()["x"] == "number"
    # An int a float64 holds exactly is that float; one it would round is refused.
    assert shelf.annotate(2, x=3) == 1 and shelf.annotate(3, x=2**64) == 1
    assert shelf.runs.to_pandas()["x"].tolist() == [0.5, 3.0, float(2**64)]
    for value in (2**53 + 1, 10**400, np.longdouble(1) / 3, Fraction(1, 3)):
        with pytest.raises(labshelf.InvalidValue, match="exactly"):
            shelf.annotate(1, x=value)
    with pytest.raises(labshelf.InvalidValue, match="finite"):
        shelf.annotate(1, x=math.nan)
    with pytest.raises(labshelf.InvalidValue, match="holds number values"):
        shelf.annotate(1, x="3")
    assert shelf.runs.to_pandas()["x"].tolist() == [0.5, 3.0, float(2**64)]


def test_a_new_int_beyond_int64_is_refused_before_anything_is_written(runs3: labshelf.Shelf) -> None:
    with pytest.raises(labshelf.InvalidValue, match="out of their range"):
        runs3.annotate(1, comment="never", huge=2**64)
    assert "huge" not in runs3._annotations.columns()
    assert runs3.history(1) == []


def test_user_column_named_like_a_dataset_is_refused(runs3: labshelf.Shelf) -> None:
    shelf = runs3
    with shelf.new_run() as run:
        run.put("pmt", 1.0, data_id={"channel": 2})
        run.put("camera/image", np.zeros((8, 8), dtype=np.uint8))
    for name in ("temperature", "label", "pmt", "pmt[channel=2]", "temperature.mean", "camera/image", "camera/image.text"):
        with pytest.raises(labshelf.InvalidValue, match="name of the dataset|column of the dataset"):
            shelf.annotate(1, **{name: -5.0})
    assert shelf._annotations.columns() == {}
    assert shelf.runs.query("temperature < 0").numbers() == []
    # Names that only look alike are fine.
    shelf.annotate(1, temperature_note="ok", **{"temperature2": 1.0})
    assert set(shelf._annotations.columns()) == {"temperature_note", "temperature2"}


# (comment and tags are annotate's own arguments, never column names.)
@pytest.mark.parametrize("name", ["run", "status", "start", "end", "experiment", "params", "x (dataset)"])
def test_user_column_named_like_a_run_column_is_refused(runs3: labshelf.Shelf, name: str) -> None:
    with pytest.raises(labshelf.InvalidValue, match="run table's own columns"):
        runs3.annotate(1, **{name: 1})


def test_dataset_named_like_a_user_column_is_refused(runs3: labshelf.Shelf) -> None:
    shelf = runs3
    shelf.annotate(1, quality=3, operator="ana")
    with shelf.new_run() as run:
        for name, value in (("quality", 1.0), ("operator", np.arange(5000.0))):  # inline and file-backed
            with pytest.raises(labshelf.InvalidName, match="taken by a user column"):
                run.put(name, value)
        with pytest.raises(labshelf.InvalidName, match="taken by a user column"):
            run.put("quality", 1.0, data_id={"detector": 1})
        with pytest.raises(labshelf.InvalidName, match="taken by a user column"):
            run.append("quality", [1.0, 2.0])
        run.put("quality_raw", 2.0)
    assert [r.name for r in shelf.datasets(run.number)] == ["quality_raw"]
    assert shelf.orphans(older_than=0) == []  # the refused big put left no file behind


def test_the_two_checks_are_serialised(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    """Processes racing to annotate and to put the same new names: exactly one of them wins each."""
    with shelf.new_run() as run:
        run.put("seed", 1.0)
    numbers = run.number
    script = textwrap.dedent(
        """
        import os, sys, time, labshelf
        where, role, names, go, target = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4], int(sys.argv[5])
        shelf = labshelf.open(where)
        won = []
        run = shelf.new_run() if role == "put" else None
        open(go + "." + role, "w").close()
        while not os.path.exists(go):  # both start together, once both are ready
            time.sleep(0.001)
        for name in names:
            try:
                if run is not None:
                    run.put(name, 1.0)
                else:
                    shelf.annotate(target, **{name: 1.0})
                won.append(name)
            except (labshelf.InvalidName, labshelf.InvalidValue):
                pass
        if run is not None:
            run.finish()
        print(",".join(won))
        """
    )
    names = ",".join(f"race{i}" for i in range(40))
    folder = str(shelf.root)
    go = str(tmp_path / "go")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, folder, role, names, go, str(numbers)], stdout=subprocess.PIPE, text=True
        )
        for role in ("put", "annotate")
    ]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{role}").exists() for role in ("put", "annotate")) and time.monotonic() < deadline:
        time.sleep(0.01)
    Path(go).touch()
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    put_won = set(filter(None, outputs[0].split(",")))
    annotate_won = set(filter(None, outputs[1].split(",")))
    assert put_won | annotate_won == {f"race{i}" for i in range(40)}
    assert not put_won & annotate_won
    assert set(shelf._annotations.columns()) == annotate_won
    assert set(shelf._registry.dataset_names()) - {"seed"} == put_won


def test_an_old_collision_reads_the_same_in_the_table_and_in_queries(runs3: labshelf.Shelf) -> None:
    """A shelf made before the check has a user column and a dataset of one name: the user column
    keeps the name everywhere, the dataset is ``name (dataset)`` everywhere."""
    shelf = runs3
    with shelf._registry.db.engine.begin() as conn:
        conn.execute(text("INSERT INTO user_columns (name, type, created) VALUES ('temperature', 'number', 0)"))
        conn.execute(text('INSERT INTO user_values (run, "column", value_num) VALUES (1, \'temperature\', -5.0)'))
    view = shelf.runs
    table = view.to_pandas()
    assert table.loc[1, "temperature"] == -5.0 and math.isnan(table.loc[2, "temperature"])
    assert table["temperature (dataset)"].tolist() == [300.0, 301.0, 302.0]
    assert view.query("temperature < 0").numbers() == [1]
    assert view.query("`temperature (dataset)` > 300.5").numbers() == [2, 3]
    assert view.sort_values("temperature (dataset)", ascending=False).numbers() == [3, 2, 1]
    assert view.columns.count("temperature") == 1 and "temperature (dataset)" in view.columns
    kinds = view.column_kinds()
    assert kinds["temperature"] == "number" and kinds["temperature (dataset)"] == "number"
    narrow = view[["temperature", "temperature (dataset)"]].to_pandas()
    assert narrow.loc[1].tolist() == [-5.0, 300.0]
    assert shelf.get("temperature", run=1) == 300.0  # get reads datasets only


def test_a_dataset_named_like_run_metadata_is_addressed_with_its_suffix(shelf: labshelf.Shelf) -> None:
    for i in range(2):
        with shelf.new_run("x") as run:
            run.put("status", f"s{i}")
            run.put("run", 10 + i)
    view = shelf.runs
    table = view.to_pandas()
    assert table["status"].tolist() == ["finished", "finished"]
    assert table["status (dataset)"].tolist() == ["s0", "s1"]
    assert table["run (dataset)"].tolist() == [10, 11]
    assert view.query("`status (dataset)` == 's1'").numbers() == [2]
    assert view.query("`run (dataset)` > 10 and run >= 1").numbers() == [2]
    assert view.query("status == 'finished'").numbers() == [1, 2]


def test_old_float_columns_keep_their_values_after_upgrade(tmp_path: Path) -> None:
    import shutil

    path = tmp_path / "old.shelf"
    shutil.copytree(Path(__file__).with_name("data") / "schema-0003.shelf", path)
    labshelf.upgrade(path)
    with labshelf.open(path) as shelf:
        assert shelf._annotations.columns() == {"quality": "number", "count": "number", "note": "text", "checked": "bool"}
        table = shelf.runs.to_pandas()
        row = table.loc[1]
        assert (row["quality"], row["count"], row["note"], row["checked"]) == (2.5, 3.0, "n", True)
        assert table["count"].dtype == np.float64  # made a float column, it stays one
        assert row["comment"] == "kept" and row["tags"] == ["good"]
        shelf.annotate(1, count=4, fresh=2**53 + 1)
        again = shelf.runs.to_pandas()
        assert again.loc[1, "count"] == 4.0 and again.loc[1, "fresh"] == 2**53 + 1
    with sqlite3.connect(path / "registry.sqlite3") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (SCHEMA_VERSION,)


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"comment": "a\x00b"}, "NUL"),
        ({"comment": "a\ud800b"}, "lone surrogate"),
        ({"tags": ["ok", "a\x00"]}, "NUL"),
        ({"tags": ["\udcff"]}, "lone surrogate"),
        ({"tags": {"k": "v"}}, "list, tuple or set of str, not dict"),
        ({"tags": 5}, "list, tuple or set of str, not int"),
        ({"tags": b"ab"}, "not bytes"),
        ({"tags": "good"}, "list of tags"),
        ({"tags": [1]}, "a tag is a non-empty str"),
        ({"note": "x\x00"}, "NUL"),
        ({"note": "\ud83d"}, "lone surrogate"),
        ({"a\x00b": 1}, "NUL"),
        ({"\ud800": 1}, "lone surrogate"),
        ({" padded": 1}, "without surrounding spaces"),
        ({"weird": [1, 2]}, "numbers, text or bools"),
    ],
)
def test_text_every_registry_can_store(runs3: labshelf.Shelf, kwargs: dict[str, Any], phrase: str) -> None:
    with pytest.raises(labshelf.InvalidValue, match=phrase):
        runs3.annotate(1, **kwargs)
    assert runs3.history(1) == [] and runs3._annotations.columns() == {}
    assert isinstance(pytest.raises(ValueError, runs3.annotate, 1, **kwargs).value, labshelf.ShelfError)
    # The shelf is untouched and still takes annotations.
    assert runs3.annotate(1, comment="fine \u2400", tags=["ok"], note="\U0001f600") == 3
    assert runs3.runs.to_pandas().loc[1, "note"] == "\U0001f600"
