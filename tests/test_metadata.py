"""Display metadata, column tags and the logbook (registry/meta.py, metadata.py), on SQLite and PostgreSQL.

Every write is checked three ways where it matters: what ``shelf.metadata``
(or ``column_tags``, ``logbook``) reads back, the shelf-wide ``history()``,
and the change feed's rows (``Registry.changes_since``).  Every refusal is
checked to change nothing: neither the metadata, nor the history, nor the
dataset of the put that carried bad metadata, nor the datastore's files.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

import labshelf
from labshelf.errors import (
    ContextError,
    InvalidName,
    InvalidValue,
    LogEntryNotFound,
    ReadOnlyShelf,
    RunNotWritable,
)
from labshelf.registry.meta import MAX_DESCRIPTION, MAX_TITLE, MAX_UNIT, DisplayMeta, check_fields, check_time
from labshelf.registry.schema import dataset_meta

DATA = Path(__file__).with_name("data")


def feed_kinds(shelf: labshelf.Shelf, since: int) -> list[str]:
    return [row["kind"] for row in shelf._registry.changes_since(since)]


def last_seq(shelf: labshelf.Shelf) -> int:
    rows = shelf._registry.changes_since(0, limit=1_000_000)
    return rows[-1]["seq"] if rows else 0


def data_files(shelf: labshelf.Shelf) -> list[str]:
    """Every data file of the datastore (the registry's own files and the tmp folder aside)."""
    return sorted(
        str(p.relative_to(shelf.root))
        for p in shelf.root.rglob("*")
        if p.is_file() and not p.name.startswith(("registry.sqlite3", "labshelf.json")) and "tmp" not in p.parts
    )


# -- put-time metadata ----------------------------------------------------------------------------


def test_put_stores_metadata_and_reads_them_back(shelf: labshelf.Shelf) -> None:
    before = time.time()
    with shelf.new_run() as run:
        run.put("delay", 1.2e-12, unit="ps", scale=1e-12, precision=2, title="Pump/Delay", description="pump-probe")
    meta = shelf.metadata("delay")
    assert isinstance(meta, DisplayMeta)
    assert (meta.unit, meta.scale, meta.precision, meta.title, meta.description) == (
        "ps", 1e-12, 2, "Pump/Delay", "pump-probe",
    )
    assert meta.user and before <= meta.updated <= time.time()
    assert meta.group == "Pump" and meta.heading == "Delay [ps]"
    assert meta.format(1.2345e-12, unit=True) == "1.23 ps"
    assert shelf.metadata() == {"delay": meta}
    [entry] = shelf.history()
    assert entry["field"] == "meta:delay" and entry["old"] is None
    assert entry["new"] == {"unit": "ps", "scale": 1e-12, "precision": 2, "title": "Pump/Delay", "description": "pump-probe"}
    assert shelf.get("delay", run=1) == 1.2e-12  # the stored value is the base-unit one


def test_a_put_repeating_the_metadata_writes_nothing_more(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("delay", 1.0, unit="ps", precision=2)
        written = shelf.metadata("delay")
        seq = last_seq(shelf)
        for value in (2.0, 3.0):
            run.put("delay", value, unit="ps", precision=2)
        run.put("delay", 4.0, unit="ps")  # a subset of what is stored: no change either
        run.put("delay", 5.0)
    assert len(shelf.history()) == 1
    kinds = feed_kinds(shelf, seq)
    assert "describe" not in kinds and kinds.count("put") == 4
    again = shelf.metadata("delay")
    assert again == written and again.updated == written.updated
    assert shelf.get("delay", run=1) == 5.0


def test_a_put_with_other_metadata_updates_only_the_given_fields(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("delay", 1.0, unit="ps", precision=2, title="Delay")
        seq = last_seq(shelf)
        before = time.time()
        run.put("delay", 2.0, unit="ns")
    meta = shelf.metadata("delay")
    assert (meta.unit, meta.precision, meta.title) == ("ns", 2, "Delay")
    first, second = shelf.history()
    assert second["field"] == "meta:delay"
    assert second["old"] == {"unit": "ps", "precision": 2, "title": "Delay"}
    assert second["new"] == {"unit": "ns", "precision": 2, "title": "Delay"}
    assert second["user"] == first["user"] and before <= second["time"] <= time.time()
    describes = [row for row in shelf._registry.changes_since(seq) if row["kind"] == "describe"]
    assert len(describes) == 1 and describes[0]["name"] == "delay"
    assert json.loads(describes[0]["payload"])["new"]["unit"] == "ns"


def test_metadata_of_a_put_belong_to_the_name_in_every_run(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("pressure", 1e-9, data_id={"gauge": 1}, unit="mbar")
    with shelf.new_run() as run:
        run.put("pressure", 2e-9, data_id={"gauge": 2})
    assert shelf.metadata("pressure").unit == "mbar"
    assert shelf.metadata("pressure", data_id={"gauge": 2}).unit == "mbar"
    assert list(shelf.metadata()) == ["pressure"]


def test_broadcast_only_puts_carry_metadata_too(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("pmt/live", 12.0, persist=False, unit="counts/s")
    assert shelf.metadata("pmt/live").unit == "counts/s"
    # A broadcast refused (the run ended) describes nothing.
    with pytest.raises(RunNotWritable):
        run.put("pmt/other", 1.0, persist=False, unit="V")
    assert shelf.metadata("pmt/other").empty and "pmt/other" not in shelf.metadata()


def test_a_refused_put_changes_no_metadata(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("x", 1.0)
    with pytest.raises(RunNotWritable):
        run.put("x", 2.0, unit="V")
    shelf.annotate(1, quality=2.5)
    with shelf.new_run() as run, pytest.raises(InvalidName, match="taken by a user column"):
        run.put("quality", 1.0, unit="V")
    assert shelf.metadata() == {} and shelf.history() == []


# -- describe -------------------------------------------------------------------------------------


def test_describe_sets_keeps_and_clears_fields(shelf: labshelf.Shelf) -> None:
    meta = shelf.describe("delay", unit="ps", scale=1e-12)  # a name need not have datasets yet
    assert (meta.unit, meta.scale, meta.title) == ("ps", 1e-12, None)
    meta = shelf.describe("delay", title="Delay")
    assert (meta.unit, meta.scale, meta.title) == ("ps", 1e-12, "Delay")
    meta = shelf.describe("delay", unit=None)
    assert (meta.unit, meta.scale, meta.title) == (None, 1e-12, "Delay")
    seq = last_seq(shelf)
    assert shelf.describe("delay", title="Delay") == meta  # the same again: nothing written
    assert feed_kinds(shelf, seq) == [] and len(shelf.history()) == 3
    cleared = shelf.describe("delay", scale=None, title=None)
    assert cleared.empty and cleared == DisplayMeta("delay")
    assert shelf.metadata() == {}
    with shelf._registry.db.read() as txn:
        assert txn.scalar(select(func.count()).select_from(dataset_meta)) == 0
    last = shelf.history()[-1]
    assert last["old"] == {"scale": 1e-12, "title": "Delay"} and last["new"] is None
    assert feed_kinds(shelf, seq) == ["describe"]


def test_a_data_id_overrides_the_name_field_by_field(shelf: labshelf.Shelf) -> None:
    shelf.describe("signal", unit="V", precision=3, title="Signal")
    shelf.describe("signal", data_id={"channel": 2}, unit="mV", title="Signal 2")
    two = shelf.metadata("signal", data_id={"channel": 2})
    assert (two.unit, two.precision, two.title) == ("mV", 3, "Signal 2")
    assert dict(two.data_id) == {"channel": 2}
    one = shelf.metadata("signal", data_id={"channel": 1})
    assert (one.unit, one.precision, one.title) == ("V", 3, "Signal")
    assert set(shelf.metadata()) == {"signal", "signal[channel=2]"}
    assert shelf.metadata()["signal[channel=2]"].precision is None  # the record as stored
    assert shelf.history()[-1]["field"] == "meta:signal[channel=2]"
    shelf.describe("signal", unit="uV")
    assert shelf.metadata("signal", data_id={"channel": 2}).unit == "mV"  # still its own
    shelf.describe("signal", data_id={"channel": 2}, unit=None, title=None)
    assert shelf.metadata("signal", data_id={"channel": 2}).unit == "uV"
    assert set(shelf.metadata()) == {"signal"}
    with pytest.raises(InvalidValue, match="needs the dataset name"):
        shelf.metadata(data_id={"channel": 2})


def test_xarray_units_are_used_only_when_nothing_else_says(shelf: labshelf.Shelf) -> None:
    xr = pytest.importorskip("xarray")

    def spectrum(units: Any) -> Any:
        return xr.DataArray(np.arange(4.0), dims="energy", attrs={"units": units})

    with shelf.new_run() as run:
        run.put("a", spectrum("counts"))
        run.put("b", spectrum("counts"), unit="Hz")  # said at the put: wins
        shelf.describe("c", title="C", unit="V")
        run.put("c", spectrum("counts"))  # said before: kept
        shelf.describe("d", title="D")
        run.put("d", spectrum("counts"))  # only the unsaid field is filled
        run.put("e", spectrum(" bad\tunit"))  # not a usable unit: ignored
        run.put("f", spectrum(3))
        run.put("a", spectrum("photons"))  # a unit is stored now: the value's no longer counts
    got = {name: shelf.metadata(name) for name in "abcdef"}
    assert got["a"].unit == "counts" and got["b"].unit == "Hz"
    assert (got["c"].unit, got["c"].title) == ("V", "C") and (got["d"].unit, got["d"].title) == ("counts", "D")
    assert got["e"].empty and got["f"].empty
    assert shelf.get("e", run=1).attrs["units"] == " bad\tunit"  # the value itself is untouched


# -- validation: a clear error, nothing changed ---------------------------------------------------

BAD_FIELDS = [
    ({"unit": ""}, "unit= takes short text"),
    ({"unit": " ps"}, "no surrounding spaces"),
    ({"unit": "ps "}, "no surrounding spaces"),
    ({"unit": "p\ts"}, "control characters"),
    ({"unit": "p\x00s"}, "control characters"),
    ({"unit": "p\x85s"}, "control characters"),
    ({"unit": "u" * (MAX_UNIT + 1)}, f"1 to {MAX_UNIT} characters"),
    ({"unit": 3}, "unit= takes short text"),
    ({"unit": b"ps"}, "unit= takes short text"),
    ({"scale": 0}, "finite, non-zero number"),
    ({"scale": 0.0}, "finite, non-zero number"),
    ({"scale": float("nan")}, "finite, non-zero number"),
    ({"scale": float("inf")}, "finite, non-zero number"),
    ({"scale": -float("inf")}, "finite, non-zero number"),
    ({"scale": True}, "finite, non-zero number"),
    ({"scale": np.bool_(True)}, "finite, non-zero number"),
    ({"scale": "1e-6"}, "finite, non-zero number"),
    ({"scale": 1j}, "finite, non-zero number"),
    ({"precision": -1}, "int from 0 to 15"),
    ({"precision": 16}, "int from 0 to 15"),
    ({"precision": 2.0}, "int from 0 to 15"),
    ({"precision": True}, "int from 0 to 15"),
    ({"precision": "2"}, "int from 0 to 15"),
    ({"title": ""}, "non-empty text"),
    ({"title": "   "}, "non-empty text"),
    ({"title": "two\nlines"}, "one line"),
    ({"title": "tab\there"}, "one line"),
    ({"title": "t" * (MAX_TITLE + 1)}, f"at most {MAX_TITLE} characters"),
    ({"title": 5}, "non-empty text"),
    ({"description": "d" * (MAX_DESCRIPTION + 1)}, f"at most {MAX_DESCRIPTION} characters"),
    ({"description": 5}, "description= takes text"),
    ({"unit": "ps", "precision": 99}, "int from 0 to 15"),  # one bad field refuses the good ones too
]


@pytest.mark.parametrize(("fields", "phrase"), BAD_FIELDS, ids=[repr(f)[:40] for f, _ in BAD_FIELDS])
def test_bad_metadata_are_refused_and_change_nothing(shelf: labshelf.Shelf, fields: dict[str, Any], phrase: str) -> None:
    with shelf.new_run() as run:
        run.put("delay", 1.0, unit="ps", precision=1)
        history = shelf.history()
        seq = last_seq(shelf)
        files = data_files(shelf)
        with pytest.raises(InvalidValue, match=phrase):
            shelf.describe("delay", **fields)
        with pytest.raises(InvalidValue, match=phrase):
            shelf.describe("delay", data_id={"channel": 1}, **fields)
        with pytest.raises(InvalidValue, match=phrase):
            run.put("delay", 2.0, **fields)  # replacing: the old value stays
        with pytest.raises(InvalidValue, match=phrase):
            run.put("image", np.ones((256, 256)), **fields)  # a data file's worth: none written
        with pytest.raises(InvalidValue, match=phrase):
            run.put("live", 3.0, persist=False, **fields)
    assert shelf.get("delay", run=1) == 1.0
    assert [ref.name for ref in shelf.datasets(run=1)] == ["delay"]
    assert not shelf._registry.was_broadcast(1, "live", "{}")
    assert data_files(shelf) == files
    assert shelf.metadata() == {"delay": DisplayMeta("delay", unit="ps", precision=1)}
    assert shelf.history() == history and feed_kinds(shelf, seq) == ["run_end"]


def test_unknown_field_names_are_refused() -> None:
    with pytest.raises(InvalidValue, match="display metadata are unit, scale, precision, title, description; not 'units'"):
        check_fields({"units": "ps"}, clearing=True)


def test_unknown_keywords_of_describe_and_put_are_refused(shelf: labshelf.Shelf) -> None:
    with pytest.raises(TypeError, match="units"):
        shelf.describe("delay", units="ps")  # type: ignore[call-arg]
    with shelf.new_run() as run, pytest.raises(TypeError, match="units"):
        run.put("delay", 1.0, units="ps")  # type: ignore[call-arg]
    assert shelf.metadata() == {} and shelf.datasets(run=1) == []


def test_good_edge_values_are_taken(shelf: labshelf.Shelf) -> None:
    meta = shelf.describe(
        "x", unit="u" * MAX_UNIT, scale=np.float32(-0.5), precision=np.int64(15), title="µ/σ (ω)", description=""
    )
    assert meta.unit == "u" * MAX_UNIT and meta.scale == -0.5 and type(meta.scale) is float
    assert meta.precision == 15 and type(meta.precision) is int
    assert meta.title == "µ/σ (ω)" and meta.description == ""
    assert shelf.describe("y", unit="counts / s", precision=0).format(2.6) == "3"
    stored = shelf.metadata("x")
    assert stored == meta


def test_names_that_no_dataset_can_have_are_refused(shelf: labshelf.Shelf) -> None:
    for name in ("", "../up", "a b", "x.y", 3, None):
        with pytest.raises(InvalidValue, match="a column is named by its dataset name or a user column's name"):
            shelf.describe(name, unit="V")  # type: ignore[arg-type]
    assert shelf.metadata() == {} and shelf.history() == []


# -- read-only shelves ----------------------------------------------------------------------------


def test_read_only_shelves_refuse_every_write(shelf: labshelf.Shelf) -> None:
    shelf.describe("x", unit="V")
    entry = shelf.log("kept")
    shelf.tag_columns("x", ["beam"])
    with labshelf.open(shelf.root, mode="r") as frozen:
        assert frozen.metadata("x").unit == "V" and frozen.column_tags() == {"x": ["beam"]}
        assert list(frozen.logbook()["text"]) == ["kept"]
        for write in (
            lambda: frozen.describe("x", unit="mV"),
            lambda: frozen.describe("x", unit=None),
            lambda: frozen.tag_columns("x", []),
            lambda: frozen.log("no"),
            lambda: frozen.edit_log(entry, text="no"),
            lambda: frozen.delete_log(entry),
        ):
            with pytest.raises(ReadOnlyShelf):
                write()
    assert shelf.metadata("x").unit == "V" and shelf.column_tags() == {"x": ["beam"]}
    assert list(shelf.logbook()["text"]) == ["kept"] and len(shelf.history()) == 3


# -- column tags ----------------------------------------------------------------------------------


def test_column_tags_set_replace_and_clear(shelf: labshelf.Shelf) -> None:
    assert shelf.column_tags() == {}
    assert shelf.tag_columns("xgm/mean", ["xgm", "beam", "beam"]) == ["beam", "xgm"]
    assert shelf.tag_columns("delay", ("pump",)) == ["pump"]
    assert shelf.column_tags() == {"delay": ["pump"], "xgm/mean": ["beam", "xgm"]}
    seq = last_seq(shelf)
    shelf.tag_columns("xgm/mean", {"xgm", "beam"})  # the same: nothing written
    assert feed_kinds(shelf, seq) == []
    shelf.tag_columns("xgm/mean", ["detector"])
    assert shelf.column_tags()["xgm/mean"] == ["detector"]
    shelf.tag_columns("xgm/mean", [])
    assert shelf.column_tags() == {"delay": ["pump"]}
    assert feed_kinds(shelf, seq) == ["column_tags", "column_tags"]
    fields = [(e["field"], e["old"], e["new"]) for e in shelf.history()]
    assert fields == [
        ("column_tags:xgm/mean", [], ["beam", "xgm"]),
        ("column_tags:delay", [], ["pump"]),
        ("column_tags:xgm/mean", ["beam", "xgm"], ["detector"]),
        ("column_tags:xgm/mean", ["detector"], []),
    ]


@pytest.mark.parametrize(
    ("name", "tags", "phrase"),
    [
        ("x", "beam", "not a single str; use tags=\\['beam'\\]"),
        ("x", b"beam", "takes a list, tuple or set of str"),
        ("x", {"beam": 1}, "takes a list, tuple or set of str"),
        ("x", 5, "takes a list, tuple or set of str"),
        ("x", ["beam", ""], "a tag is a non-empty str"),
        ("x", ["beam", 3], "a tag is a non-empty str"),
        ("x", ["t" * 256], "at most 255 characters"),
        ("a b", ["beam"], "a column is named by its dataset name or a user column's name"),
        ("../x", ["beam"], "a column is named by"),
        ("x.y", ["beam"], "a column is named by"),
        ("", ["beam"], "a column is named by"),
    ],
)
def test_bad_column_tags_are_refused(shelf: labshelf.Shelf, name: str, tags: Any, phrase: str) -> None:
    shelf.tag_columns("x", ["kept"])
    with pytest.raises(InvalidValue, match=phrase):
        shelf.tag_columns(name, tags)
    assert shelf.column_tags() == {"x": ["kept"]} and len(shelf.history()) == 1


def test_user_columns_take_tags_and_metadata(shelf: labshelf.Shelf) -> None:
    with shelf.new_run():
        pass
    shelf.annotate(1, **{"beam quality": 2.5})
    assert shelf.tag_columns("beam quality", ["beam"]) == ["beam"]
    assert shelf.describe("beam quality", precision=1).precision == 1
    assert shelf.column_tags() == {"beam quality": ["beam"]}


# -- the logbook ----------------------------------------------------------------------------------


def test_log_edit_delete_with_history(shelf: labshelf.Shelf) -> None:
    before = time.time()
    seq = last_seq(shelf)
    first = shelf.log("beam lost, refill at 14:05")
    second = shelf.log("refill done", at=before + 60)
    assert isinstance(first, int) and second > first
    book = shelf.logbook()
    assert list(book.index) == [first, second] and book.index.name == "entry"
    assert list(book["text"]) == ["beam lost, refill at 14:05", "refill done"]
    assert before <= book.loc[first, "time"].timestamp() <= time.time()
    assert book.loc[second, "time"] == pd.Timestamp(before + 60, unit="s", tz="UTC")
    assert book["user"].notna().all() and book["edited"].isna().all()
    assert shelf.edit_log(np.int64(first), text="beam lost") is True  # a number from the index
    assert shelf.edit_log(first, text="beam lost") is False  # the same: nothing written
    assert shelf.edit_log(first, at=before + 120) is True  # now after the second
    book = shelf.logbook()
    assert list(book.index) == [second, first] and book.loc[first, "text"] == "beam lost"
    assert book.loc[first, "edited"] >= book.loc[first, "written"]
    shelf.delete_log(second)
    assert list(shelf.logbook().index) == [first]
    history = [(e["field"], e["old"], e["new"]) for e in shelf.history()]
    assert history[0][1] is None and history[0][2]["text"] == "beam lost, refill at 14:05"
    assert before <= history[0][2]["time"] <= time.time()
    assert [h[0] for h in history] == [f"log:{first}", f"log:{second}", f"log:{first}", f"log:{first}", f"log:{second}"]
    assert history[2][1]["text"] == "beam lost, refill at 14:05" and history[2][2]["text"] == "beam lost"
    assert history[3][1]["time"] == history[2][2]["time"] and history[3][2]["time"] == before + 120
    assert history[4][1] == {"time": before + 60, "text": "refill done"} and history[4][2] is None
    assert feed_kinds(shelf, seq) == ["log"] * 5


def test_logbook_since_and_until(shelf: labshelf.Shelf) -> None:
    for hour in range(6):
        shelf.log(f"hour {hour}", at=dt.datetime(2026, 12, 5, hour, tzinfo=dt.UTC))

    def texts(**bounds: Any) -> list[str]:
        return list(shelf.logbook(**bounds)["text"])

    assert texts() == [f"hour {h}" for h in range(6)]
    assert texts(since="2026-12-05T02:00+00:00") == ["hour 2", "hour 3", "hour 4", "hour 5"]
    assert texts(until=pd.Timestamp("2026-12-05 01:00", tz="UTC")) == ["hour 0", "hour 1"]  # inclusive
    start = dt.datetime(2026, 12, 5, 1, 30, tzinfo=dt.UTC)
    assert texts(since=start, until=start.timestamp() + 7200) == ["hour 2", "hour 3"]
    assert texts(since="2027-01-01T00:00+00:00") == []
    empty = shelf.logbook(since="2027-01-01T00:00+00:00")
    assert list(empty.columns) == ["time", "text", "user", "written", "edited"] and len(empty) == 0
    with pytest.raises(InvalidValue, match="since= 'yesterday' is not an ISO 8601 time"):
        shelf.logbook(since="yesterday")
    with pytest.raises(InvalidValue, match="until= takes a datetime"):
        shelf.logbook(until=[1])


@pytest.mark.parametrize(
    "at",
    [
        dt.datetime(2026, 12, 5, 14, 5, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 5, 15, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        "2026-12-05T14:05:00+00:00",
        "2026-12-05T14:05Z",
        1796479500,
        1796479500.0,
        np.int64(1796479500),
        np.float64(1796479500.0),
        pd.Timestamp("2026-12-05 14:05", tz="UTC"),
    ],
    ids=repr,
)
def test_at_takes_every_way_of_saying_a_time(shelf: labshelf.Shelf, at: Any) -> None:
    entry = shelf.log("refill", at=at)
    assert shelf.logbook().loc[entry, "time"] == pd.Timestamp("2026-12-05 14:05", tz="UTC")


def test_a_naive_time_is_local(shelf: labshelf.Shelf) -> None:
    naive = dt.datetime(2026, 12, 5, 14, 5)
    entry = shelf.log("local", at=naive)
    assert shelf.logbook().loc[entry, "time"].timestamp() == naive.timestamp()
    assert check_time("2026-12-05T14:05") == naive.timestamp()


@pytest.mark.parametrize(
    ("at", "phrase"),
    [
        ("yesterday", "is not an ISO 8601 time"),
        ("", "is not an ISO 8601 time"),
        (True, "takes a datetime, an ISO 8601 string or seconds"),
        ([2026], "takes a datetime, an ISO 8601 string or seconds since the epoch, not list"),
        (dt.date(2026, 12, 5), "not date"),
        (float("nan"), "outside the times a run table can show"),
        (float("inf"), "outside the times"),
        (10**400, "outside the times"),
        (1e300, "outside the times"),
        ("9999-12-31", "outside the times"),
        (dt.datetime(1, 1, 1), "outside the times"),
        (pd.NaT, "outside the times"),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_a_bad_at_is_refused(shelf: labshelf.Shelf, at: Any, phrase: str) -> None:
    entry = shelf.log("kept", at=100.0)
    with pytest.raises(InvalidValue, match=phrase):
        shelf.log("refused", at=at)
    with pytest.raises(InvalidValue, match=phrase):
        shelf.edit_log(entry, at=at)
    book = shelf.logbook()
    assert list(book["text"]) == ["kept"] and book.loc[entry, "time"].timestamp() == 100.0
    assert len(shelf.history()) == 1


@pytest.mark.parametrize("text", ["", "   ", None, 5, "x" * 100_001])
def test_bad_log_text_is_refused(shelf: labshelf.Shelf, text: Any) -> None:
    entry = shelf.log("kept")
    with pytest.raises(InvalidValue, match="a log entry is non-empty text"):
        shelf.log(text)
    if text is not None:  # None keeps the text of an entry
        with pytest.raises(InvalidValue, match="a log entry is non-empty text"):
            shelf.edit_log(entry, text=text)
    assert list(shelf.logbook()["text"]) == ["kept"] and len(shelf.history()) == 1


def test_unknown_entries(shelf: labshelf.Shelf) -> None:
    entry = shelf.log("kept")
    for missing in (entry + 1, 10**12):
        with pytest.raises(LogEntryNotFound, match=f"the logbook has no entry {missing}; shelf.logbook"):
            shelf.edit_log(missing, text="x")
        with pytest.raises(KeyError):
            shelf.delete_log(missing)
    for bad in (0, -1, True, 1.0, "1", None, 2**63):
        with pytest.raises(InvalidValue, match="a log entry is given by its number"):
            shelf.delete_log(bad)
    shelf.delete_log(entry)
    with pytest.raises(LogEntryNotFound):
        shelf.delete_log(entry)
    assert len(shelf.logbook()) == 0 and len(shelf.history()) == 2


# -- derived variables ----------------------------------------------------------------------------


def write_context(shelf: labshelf.Shelf, body: str) -> Path:
    path = shelf.root / "context.py"
    path.write_text("from labshelf.derived import variable\n" + textwrap.dedent(body))
    return path


def test_variable_options_describe_the_derived_result(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("x", 2.0)
    write_context(
        shelf,
        """
        @variable(title="Beam/Twice x", unit="mV", description="2 x")
        def twice(run, x="x"):
            return 2 * x

        @variable()
        def plain(run, x="x"):
            return x
        """,
    )
    assert shelf.reprocess(progress=False).computed == 2
    meta = shelf.metadata("derived/twice")
    assert (meta.title, meta.unit, meta.description, meta.group) == ("Beam/Twice x", "mV", "2 x", "Beam")
    assert shelf.metadata("derived/plain").empty
    assert shelf.get("derived/twice", run=1) == 4.0
    # Reprocessing again writes no metadata; a changed option is an update.
    count = len(shelf.history())
    shelf.reprocess(progress=False, force=True)
    assert len(shelf.history()) == count
    path = shelf.root / "context.py"
    path.write_text(path.read_text().replace('unit="mV"', 'unit="V"'))
    shelf.reprocess(progress=False, force=True)
    assert shelf.metadata("derived/twice").unit == "V"
    assert shelf.history()[-1]["old"]["unit"] == "mV"


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        ('unit=" mV"', "unit= takes short text"),
        ('unit="m\\nV"', "control characters"),
        ('title="a\\nb"', "one line"),
        (f'description="{"d" * (MAX_DESCRIPTION + 1)}"', "description= takes text"),
    ],
)
def test_bad_variable_metadata_are_a_context_error_at_load(shelf: labshelf.Shelf, options: str, phrase: str) -> None:
    with shelf.new_run() as run:
        run.put("x", 2.0)
    path = write_context(
        shelf,
        f"""

        @variable({options})
        def twice(run, x="x"):
            return 2 * x
        """,
    )
    with pytest.raises(ContextError, match=rf"{path}, line \d+: variable 'twice': @variable\(\.\.\.\): .*{phrase}"):
        shelf.reprocess(progress=False)
    assert "derived/twice" not in shelf.run(1) and shelf.metadata() == {}


# -- several repositories -------------------------------------------------------------------------


def test_a_view_reads_its_inputs_metadata_and_its_output_wins(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    source = tmp_path / "raw.shelf"
    with labshelf.create(source) as raw:
        with raw.new_run() as run:
            run.put("x", 1.0, unit="V", title="X", precision=1)
        raw.describe("x", data_id={"channel": 2}, unit="kV")
        raw.describe("only_raw", description="raw's")
        raw.tag_columns("x", ["raw"])
        raw.log("from raw", at=100.0)
    shelf.describe("x", unit="mV")
    shelf.tag_columns("only_mine", ["mine"])
    shelf.log("from mine", at=200.0)
    with labshelf.open(inputs=[source], output=shelf.root) as view:
        x = view.metadata("x")
        assert (x.unit, x.title, x.precision) == ("mV", "X", 1)  # the output's unit, the input's others
        assert view.metadata("x", data_id={"channel": 2}).unit == "mV"  # the output's name wins over the input
        assert view.metadata("only_raw").description == "raw's"
        assert set(view.metadata()) == {"only_raw", "x", "x[channel=2]"}
        assert view.metadata()["x"] == x
        assert view.column_tags() == {"only_mine": ["mine"], "x": ["raw"]}
        book = view.logbook()
        assert list(book["text"]) == ["from raw", "from mine"]
        assert [Path(w).resolve() for w in book["repository"]][0] == source.resolve()
        # Writes go to the output only.
        view.describe("only_raw", description="mine")
        view.tag_columns("x", ["mine"])
        assert view.metadata("only_raw").description == "mine" and view.column_tags()["x"] == ["mine"]
    with labshelf.open(source, mode="r") as raw:
        assert raw.metadata("only_raw").description == "raw's" and raw.metadata("x").unit == "V"
        assert raw.column_tags() == {"x": ["raw"]} and list(raw.logbook()["text"]) == ["from raw"]
    with labshelf.open(inputs=[source]) as reader:
        assert reader.metadata("x").unit == "V"
        with pytest.raises(ReadOnlyShelf):
            reader.describe("x", unit="A")


# -- several processes at once --------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import os, sys, time
    import labshelf

    folder, k, go, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    with labshelf.open(folder) as shelf, shelf.new_run(f"writer{k}") as run:
        open(f"{go}.{k}", "w").close()
        while not os.path.exists(go):
            time.sleep(0.001)
        for i in range(count):
            shelf.describe(f"d{k}_{i}", unit="V", precision=i % 16)
            run.put(f"p{k}_{i}", float(i), unit="mV", title=f"P {k} {i}")
            # Both writers change the shared name: each its own field, so both stay.
            shelf.describe("shared", **({"unit": f"u{i}"} if k == 0 else {"title": f"t{i}"}))
            run.put("both", float(i), precision=k)
            shelf.log(f"writer {k} step {i}", at=float(i))
            shelf.tag_columns(f"p{k}_{i}", [f"w{k}"])
    print("ok")
    """
)


def test_two_processes_describing_and_putting_at_once_lose_nothing(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    count = 25
    go = str(tmp_path / "go")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(shelf.root), str(k), go, str(count)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for k in range(2)
    ]
    deadline = time.monotonic() + 120
    while not all(Path(f"{go}.{k}").exists() for k in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    Path(go).touch()
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all(out.strip() == "ok" and "locked" not in err for out, err in outputs), outputs
    meta = shelf.metadata()
    for k in range(2):
        for i in range(count):
            assert meta[f"d{k}_{i}"] == DisplayMeta(f"d{k}_{i}", unit="V", precision=i % 16)
            assert meta[f"p{k}_{i}"] == DisplayMeta(f"p{k}_{i}", unit="mV", title=f"P {k} {i}")
    assert (meta["shared"].unit, meta["shared"].title) == (f"u{count - 1}", f"t{count - 1}")
    assert meta["both"].precision in (0, 1)
    assert len(meta) == 4 * count + 2
    tags = shelf.column_tags()
    assert len(tags) == 2 * count and all(tags[f"p{k}_{i}"] == [f"w{k}"] for k in range(2) for i in range(count))
    book = shelf.logbook()
    assert sorted(book["text"]) == sorted(f"writer {k} step {i}" for k in range(2) for i in range(count))
    assert book.index.is_unique
    history = shelf.history()
    fields = [e["field"] for e in history]
    assert sum(f.startswith("log:") for f in fields) == 2 * count
    assert sum(f.startswith("column_tags:") for f in fields) == 2 * count
    assert sum(f == "meta:shared" for f in fields) == 2 * count
    # "both" changes whenever the writers alternate, never more than once per put.
    assert 1 <= sum(f == "meta:both" for f in fields) <= 2 * count
    assert sum(f.startswith(("meta:d", "meta:p")) for f in fields) == 4 * count
    for k in range(2):
        run = shelf.run(k + 1)
        assert sorted(shelf.get(f"p{run.experiment[-1]}_{i}", run=run.number) for i in range(count)) == [
            float(i) for i in range(count)
        ]


# -- the upgrade from schema 0004 -----------------------------------------------------------------


def test_a_schema_0004_shelf_upgrades_and_takes_metadata(tmp_path: Path) -> None:
    path = tmp_path / "old.shelf"
    shutil.copytree(DATA / "schema-0004.shelf", path)
    registry = path / "registry.sqlite3"
    with sqlite3.connect(registry) as db:
        old_rows = db.execute("SELECT * FROM history ORDER BY id").fetchall()
    assert len(old_rows) == 6 and all(row[1] == 1 for row in old_rows)
    assert labshelf.upgrade(path) == ("0004", "0005")
    with sqlite3.connect(registry) as db:
        assert db.execute("SELECT * FROM history ORDER BY id").fetchall() == old_rows
        columns = {row[1]: row for row in db.execute("PRAGMA table_info(history)")}
        assert columns["run"][3] == 0  # notnull: no longer
        assert db.execute("PRAGMA foreign_key_list(history)").fetchall() == [
            (0, 0, "runs", "run", "number", "NO ACTION", "CASCADE", "NONE")
        ]
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"ix_history_run", "ix_column_tags_tag", "ix_logbook_time"} <= indexes
    with labshelf.open(path) as shelf:
        old_history = shelf.history(1)
        assert [e["field"] for e in old_history] == [
            "comment", "tags", "column:quality", "column:count", "column:note", "column:checked",
        ]
        assert old_history[0]["new"] == "kept" and old_history[2]["new"] == 2.5
        assert shelf.history() == []
        assert shelf.metadata() == {} and shelf.column_tags() == {} and len(shelf.logbook()) == 0
        shelf.describe("temperature", unit="K", precision=2)
        shelf.tag_columns("quality", ["checks"])  # a user column of the old shelf
        entry = shelf.log("after the upgrade")
        with shelf.new_run() as run:
            run.put("pressure", 1e-9, unit="mbar")
        assert shelf.metadata("temperature").format(301.25, unit=True) == "301.25 K"
        assert shelf.metadata("pressure").unit == "mbar"
        assert shelf.column_tags() == {"quality": ["checks"]}
        assert [e["field"] for e in shelf.history()] == [
            "meta:temperature", "column_tags:quality", f"log:{entry}", "meta:pressure",
        ]
        assert len(shelf.history(1)) == 6
    # Deleting a run still cascades to its history (the foreign key survived the copy).
    with sqlite3.connect(registry) as db:
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("DELETE FROM runs WHERE number = 1")
        kept = [row[2] for row in db.execute("SELECT * FROM history ORDER BY id")]
    assert kept == ["meta:temperature", "column_tags:quality", f"log:{entry}", "meta:pressure"]


def test_history_of_the_whole_shelf_has_no_run(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("x", 1.0)
    shelf.annotate(1, comment="c")
    shelf.describe("x", unit="V")
    assert [e["field"] for e in shelf.history(1)] == ["comment"]
    assert [e["field"] for e in shelf.history()] == ["meta:x"]
    assert [e["field"] for e in shelf.history(np.int64(1))] == ["comment"]


def test_format_and_shown_follow_scale_and_precision() -> None:
    meta = DisplayMeta("delay", unit="us", scale=1e-6, precision=3)
    assert meta.shown(2.5e-6) == pytest.approx(2.5)
    assert meta.format(2.5e-6) == "2.500" and meta.format(2.5e-6, unit=True) == "2.500 us"
    assert meta.shown("text") == "text" and meta.shown(True) is True
    assert np.allclose(meta.shown(np.array([1e-6, 2e-6])), [1.0, 2.0])
    assert DisplayMeta("n").format(1234567.0) == "1.23457e+06" and DisplayMeta("n").format(3) == "3"
    assert math.isnan(float(DisplayMeta("n").format(float("nan"))))
