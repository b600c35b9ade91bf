"""One damaged registry row costs its own values, never the listing of the others.

Issue 10: ``runs.started = 'yesterday'``, ``datasets.data_id = '{bad'`` or
``datasets.location = 'xx'`` broke the whole run table and ``labshelf ls``
with raw errors naming nothing.  Each damage below is made with raw SQL, the
way an edited or half-restored registry would hold it: SQLite keeps any text
in a REAL column (type affinity), PostgreSQL only lets through bad JSON text,
NaN/Infinity times and values in the wrong column.  Afterwards the run table
lists every run and says which cells it could not read (``attrs``), the
datasets of the run all list, the other datasets read, and reading the
damaged one raises CorruptDataset naming the run, the dataset and the field.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

import labshelf

TEMPERATURES = [300.0, 301.0, 302.0, 303.0]


@pytest.fixture
def filled(shelf: labshelf.Shelf) -> labshelf.Shelf:
    for i, temperature in enumerate(TEMPERATURES):
        with shelf.new_run("scan", {"i": i}) as run:
            run.put("temperature", temperature)
            run.put("label", f"l{i}")
            run.put("count", 10 + i)
            run.put("z", complex(i, 1))
            run.put("trace", np.arange(5000.0) + i)  # a data file
            run.put("pmt", float(i), data_id={"channel": 2})
    shelf.annotate(1, comment="c", tags=["good"], quality=1, note="n", checked=True, weight=0.5)
    shelf.annotate(2, quality=2, note="m", checked=False, weight=1.5)
    return shelf


def damage(shelf: labshelf.Shelf, *statements: str) -> None:
    with shelf._registry.db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


@dataclass(frozen=True)
class Damage:
    """A raw edit of run 2's rows, and where it shows."""

    sql: str
    #: Which registries can hold it: "both", "sqlite" (type affinity) or "postgres".
    on: str
    #: The dataset whose registry row it damages (None: the run's row or an annotation).
    dataset: str | None
    #: The key of ``attrs["errors"]`` for it (None: the table does not show it), and a phrase of what is wrong.
    column: str | None
    phrase: str
    #: The cell that goes missing, when it is not ``column`` (a data ID that cannot be read has no label).
    cell: str | None = None


DAMAGES = {
    "started text": Damage("UPDATE runs SET started = 'yesterday' WHERE number = 2", "sqlite", None, "start", "runs.started"),
    "started NaN": Damage("UPDATE runs SET started = 'NaN' WHERE number = 2", "postgres", None, "start", "runs.started"),
    "started infinite": Damage("UPDATE runs SET started = 'Infinity' WHERE number = 2", "postgres", None, "start",
                               "runs.started"),
    "started far away": Damage("UPDATE runs SET started = 1e300 WHERE number = 2", "both", None, "start", "runs.started"),
    "ended text": Damage("UPDATE runs SET ended = 'soon' WHERE number = 2", "sqlite", None, "end", "runs.ended"),
    "ended NaN": Damage("UPDATE runs SET ended = 'NaN' WHERE number = 2", "postgres", None, "end", "runs.ended"),
    "params not JSON": Damage("UPDATE runs SET params = '{bad' WHERE number = 2", "both", None, None, "runs.params"),
    "params a list": Damage("UPDATE runs SET params = '[1, 2]' WHERE number = 2", "both", None, None, "runs.params"),
    "data_id not JSON": Damage("UPDATE datasets SET data_id = '{bad' WHERE run = 2 AND name = 'pmt'", "both", "pmt",
                               "pmt", "datasets.data_id", "pmt[channel=2]"),
    "data_id a list": Damage("UPDATE datasets SET data_id = '[2]' WHERE run = 2 AND name = 'pmt'", "both", "pmt",
                             "pmt", "datasets.data_id", "pmt[channel=2]"),
    "location not JSON": Damage("UPDATE datasets SET location = 'xx' WHERE run = 2 AND name = 'trace'", "both",
                                "trace", None, "datasets.location"),
    "location a string": Damage("""UPDATE datasets SET location = '"abc"' WHERE run = 2 AND name = 'trace'""", "both",
                                "trace", None, "datasets.location"),
    "shape not JSON": Damage("UPDATE datasets SET shape = 'x' WHERE run = 2 AND name = 'trace'", "both", "trace", None,
                             "datasets.shape"),
    "options not JSON": Damage("UPDATE datasets SET options = '{bad' WHERE run = 2 AND name = 'trace'", "both",
                               "trace", None, "datasets.options"),
    "summary value text": Damage("UPDATE datasets SET summary_value = 'abc' WHERE run = 2 AND name = 'temperature'",
                                 "sqlite", "temperature", "temperature", "summary"),
    "int summary text": Damage("UPDATE datasets SET summary_text = 'zz' WHERE run = 2 AND name = 'count'", "both",
                               "count", None, "int summary"),
    "complex summary text": Damage("UPDATE datasets SET summary_text = 'zz' WHERE run = 2 AND name = 'z'", "both",
                                   "z", "z", "complex summary"),
    "int user value in the float slot": Damage(
        """UPDATE user_values SET value_int = NULL, value_num = 1.5 WHERE run = 2 AND "column" = 'quality'""",
        "both", None, "quality", "user_values of 'quality'"),
    "int user value text": Damage(
        """UPDATE user_values SET value_int = 'abc' WHERE run = 2 AND "column" = 'quality'""",
        "sqlite", None, "quality", "user_values of 'quality'"),
    "float user value text": Damage(
        """UPDATE user_values SET value_num = 'abc' WHERE run = 2 AND "column" = 'weight'""",
        "sqlite", None, "weight", "user_values of 'weight'"),
    "bool user value missing": Damage(
        """UPDATE user_values SET value_num = NULL, value_text = 'yes' WHERE run = 2 AND "column" = 'checked'""",
        "both", None, "checked", "user_values of 'checked'"),
}


# Each damage on each registry that can hold it (a column type refusing the value is no case).
PAIRS = [
    pytest.param(backend, name, id=f"{backend}-{name}", marks=[pytest.mark.postgres] if backend == "postgres" else [])
    for name, case in DAMAGES.items()
    for backend in ("sqlite", "postgres")
    if case.on in ("both", backend)
]


@pytest.mark.parametrize(("backend", "name"), PAIRS, indirect=["backend"])
def test_the_run_table_lists_every_run_and_names_the_damage(filled: labshelf.Shelf, backend: str, name: str) -> None:
    case = DAMAGES[name]
    before = filled.runs.to_pandas()
    damage(filled, case.sql)
    table = filled.runs.to_pandas()
    assert list(table.index) == [1, 2, 3, 4] and list(table.columns) == list(before.columns)
    # Every cell of the other runs is as before.
    pd.testing.assert_frame_equal(table.drop(index=2), before.drop(index=2))
    errors, damaged = table.attrs["errors"], table.attrs["damaged"]
    if case.column is None:  # a field the table does not show
        assert errors == {} and damaged == []
        pd.testing.assert_frame_equal(table, before)
        return
    assert list(errors) == [2] and list(errors[2]) == [case.column]
    assert case.phrase in errors[2][case.column]
    assert damaged == [f"run 2, {case.column}: {errors[2][case.column].removeprefix('damaged registry row: ')}"]
    cell = case.cell or case.column
    assert pd.isna(table.loc[2, cell])
    others = table.drop(columns=[cell])
    pd.testing.assert_frame_equal(others.loc[[2]], before.drop(columns=[cell]).loc[[2]])
    # The view's other ways of reading the table hold up too.
    assert len(filled.runs.page(0, 10)) == 4 and "4 runs" in filled.runs._repr_html_()
    assert filled.runs.query("temperature > 302.5").numbers() == [4]
    # A damaged value is never selected by a comparison (SQLite orders text after numbers).
    if cell in ("start", "end", "temperature", "quality", "weight"):
        assert 2 not in filled.runs.query(f"`{cell}` > 0").numbers() + filled.runs.query(f"`{cell}` < 0").numbers()
        assert 2 in filled.runs.query(f"`{cell}` is null").numbers()


@pytest.mark.parametrize(("backend", "name"), PAIRS, indirect=["backend"])
def test_the_datasets_of_the_run_list_and_the_others_read(filled: labshelf.Shelf, backend: str, name: str) -> None:
    case = DAMAGES[name]
    damage(filled, case.sql)
    run = filled.run(2)
    refs = run.datasets
    assert [r.name for r in refs] == ["temperature", "label", "count", "z", "trace", "pmt"]
    assert filled.datasets(2) == refs and filled.datasets(np.int64(2)) == refs
    for ref in refs:
        if ref.name == case.dataset:
            assert ref.damage is not None and case.phrase in ref.damage
            with pytest.raises(labshelf.CorruptDataset) as caught:
                filled.read(ref)
            message = str(caught.value)
            assert "run 2" in message and repr(ref.name) in message and case.phrase in message
        else:
            assert ref.damage is None
            assert filled.read(ref) is not None
    assert filled.get("temperature", run=3) == TEMPERATURES[2]
    if case.dataset not in (None, "pmt"):
        with pytest.raises(labshelf.CorruptDataset, match=f"'{case.dataset}' of run 2"):
            filled.get(case.dataset, run=2)
    if case.dataset != "label":
        assert filled.get("label", run=2) == "l1"


def test_get_of_a_dataset_whose_data_id_is_damaged_says_so(filled: labshelf.Shelf) -> None:
    damage(filled, DAMAGES["data_id not JSON"].sql)
    with pytest.raises(labshelf.CorruptDataset, match=r"'pmt' of run 2 .*datasets\.data_id is not JSON"):
        filled.get("pmt", run=2, data_id={"channel": 2})
    assert filled.get("pmt", run=3, data_id={"channel": 2}) == 2.0
    # Without a run, the newest run that has it supplies it.
    assert filled.get("pmt", data_id={"channel": 2}) == 3.0
    assert [r.run for r in filled.query("pmt", where="channel == 2")] == [1, 3, 4]


@pytest.mark.parametrize("name", ["params not JSON", "params a list", "started far away"])
def test_a_damaged_run_row_still_gives_its_run(filled: labshelf.Shelf, backend: str, name: str) -> None:
    case = DAMAGES[name]
    damage(filled, case.sql)
    run = filled.run(2)
    assert run.record.damage is not None and case.phrase in run.record.damage
    assert [r.number for r in filled] == [1, 2, 3, 4] and 2 in filled
    if "params" in name:
        assert dict(run.params) == {} and run.start <= run.end  # type: ignore[operator]
    else:
        assert run.params == {"i": 1}
        with pytest.raises(labshelf.CorruptDataset, match="run 2 has no readable start time"):
            run.start  # noqa: B018 - the property raises
    assert filled.get("temperature", run=2) == TEMPERATURES[1]


def test_writes_over_a_damaged_row_refuse_to_guess(filled: labshelf.Shelf) -> None:
    with filled.new_run() as run:
        run.append("growing", np.arange(3.0))
        damage(filled, f"UPDATE datasets SET shape = 'x' WHERE run = {run.number} AND name = 'growing'")
        with pytest.raises(labshelf.CorruptDataset, match="'growing' of run 5 cannot change"):
            run.append("growing", np.arange(3.0))
        run.put("growing", np.arange(2.0))  # a new version replaces the damaged row
        assert filled.get("growing", run=run.number).tolist() == [0.0, 1.0]
        run.put("doomed", 1.0)
        damage(filled, f"UPDATE datasets SET location = 'xx' WHERE run = {run.number} AND name = 'doomed'")
        run.delete("doomed")  # its files, if any, stay as orphans rather than being guessed at
    assert "doomed" not in filled.run(5)


def test_orphans_refuse_to_guess_with_a_damaged_location(filled: labshelf.Shelf) -> None:
    assert filled.orphans(older_than=0) == []
    damage(filled, DAMAGES["location not JSON"].sql)
    with pytest.raises(labshelf.CorruptDataset, match=r"damaged datasets\.location \('xx'\)"):
        filled.orphans(older_than=0)


def test_damaged_user_column_type_and_history(filled: labshelf.Shelf) -> None:
    damage(
        filled,
        "UPDATE user_columns SET type = 'xyz' WHERE name = 'note'",
        "UPDATE history SET old = '{bad' WHERE run = 1 AND field = 'comment'",
    )
    table = filled.runs.to_pandas()
    assert table["note"].tolist()[:2] == ["n", "m"] and table["note"].isna().tolist() == [False, False, True, True]
    assert any("user_columns.type is 'xyz'" in line for line in table.attrs["damaged"])
    history = filled.history(1)
    comment = next(h for h in history if h["field"] == "comment")
    assert comment["old"] is None and comment["new"] == "c" and "history.old" in comment["damaged"]
    assert all("damaged" not in h for h in history if h["field"] != "comment")


def test_a_damaged_change_payload_does_not_stop_a_subscription(filled: labshelf.Shelf) -> None:
    import threading
    import time

    from labshelf.live.feed import Change

    got: list[Any] = []
    arrived = threading.Event()

    def callback(update: Any) -> None:
        got.append(np.array(update.value))
        if got[-1][0] == 9.0:
            arrived.set()

    with filled.new_run() as run:
        run.put("live", np.zeros(4))
        subscription = filled.subscribe("live", callback, run=np.int64(run.number))
        try:
            # What the feed thread hands over when a mutate's change row is damaged:
            # the listener must take it (and read the whole value), not raise.
            version = filled.find("live", run=run.number).version
            bad = Change(seq=filled.last_seq(), time=time.time(), kind="mutate", run=run.number, name="live",
                         data_id="{}", version=version, payload="{bad")
            subscription._on_changes([bad])
            run.mutate("live", 0, 9.0)
            assert arrived.wait(30), got
        finally:
            subscription.close()
    assert got[-1].tolist() == [9.0, 0.0, 0.0, 0.0]
    damage(filled, "UPDATE changes SET payload = '{bad' WHERE kind = 'mutate'")

    async def first_mutate() -> Any:
        async for change in filled.changes(["live"], since=0, run=np.int64(run.number)):
            if change.kind == "mutate":
                return change

    assert asyncio.run(first_mutate()).payload == "{bad"  # handed on as stored


def test_damaged_bookkeeping_keeps_collections_and_derived_status_working(filled: labshelf.Shelf) -> None:
    filled.tag("calib", filled.find("temperature", run=1))
    damage(filled, "UPDATE shelf_info SET value = 'abc' WHERE key = 'collections_generation'")
    filled.tag("calib2", filled.find("temperature", run=2))
    assert filled.get("temperature", collections="calib2") == TEMPERATURES[1]
    filled._registry.record_derived(
        [{"run": 1, "variable": "v", "source_hash": "h", "inputs": {"temperature": 1}, "status": "ok", "error": None}]
    )
    damage(filled, "UPDATE derived SET inputs = '{bad'")
    (row,) = filled.derived_status(1)
    assert row["inputs"] == {} and "derived.inputs" in row["damage"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labshelf.cli", *args], capture_output=True, text=True, timeout=120)


def test_labshelf_ls_lists_every_run_and_says_what_is_damaged(filled: labshelf.Shelf, backend: str) -> None:
    statements = [c.sql for c in DAMAGES.values() if c.on in ("both", backend) and "started" not in c.sql
                  and "user value" not in c.sql and "'quality'" not in c.sql]
    statements.append(DAMAGES["started text" if backend == "sqlite" else "started NaN"].sql)
    statements.append("UPDATE datasets SET location = 'xx' WHERE run = 3 AND name = 'trace'")
    damage(filled, *statements)
    folder = str(filled.root)
    listing = cli("ls", folder)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:6]] == ["1", "2", "3", "4"] and "[4 runs x" in lines[-1]
    assert "could not be read from damaged registry rows" in listing.stderr
    assert "run 2, start: runs.started is not a time" in listing.stderr and "Traceback" not in listing.stderr
    one = cli("ls", folder, "--run", "2")
    assert one.returncode == 0, one.stderr
    rows = {line.split()[0]: line for line in one.stdout.splitlines()[1:]}
    assert list(rows) == ["temperature", "label", "count", "z", "trace", "pmt"]
    assert "DAMAGED: datasets.location is not JSON" in rows["trace"] or "DAMAGED" in rows["trace"]
    assert "DAMAGED" not in rows["label"]
    other = cli("ls", folder, "--run", "4")
    assert other.returncode == 0 and "DAMAGED" not in other.stdout


def test_nothing_warns_or_leaks_raw_errors(filled: labshelf.Shelf, backend: str) -> None:
    """Every damage at once: the table, the listings and the reads still work (warnings are errors here)."""
    damage(filled, *[c.sql for c in DAMAGES.values() if c.on in ("both", backend) and "'quality'" not in c.sql])
    table = filled.runs.to_pandas()
    assert list(table.index) == [1, 2, 3, 4]
    assert table.loc[4, "temperature"] == TEMPERATURES[3] and table.loc[1, "label"] == "l0"
    assert all(line.startswith("run 2, ") for line in table.attrs["damaged"])
    assert math.isnan(table.loc[2, "temperature"]) == (backend == "sqlite")
    for number in (1, 2, 3, 4):
        refs = filled.datasets(number)
        assert len(refs) == 6
        readable: list[Callable[[], Any]] = [lambda r=r: filled.read(r) for r in refs if r.damage is None]
        assert all(read() is not None for read in readable)
    repr(filled.runs)
