"""The run table (RunView): lazy, pandas-like, pushed down to SQL, registry only."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import labshelf
from labshelf.runview import parse_label


def _fill(shelf: labshelf.Shelf, n: int = 12) -> None:
    for i in range(n):
        with shelf.new_run("rabi_scan" if i % 2 else "beam_profile", {"i": i}) as run:
            run.put("temperature", 295.0 + i)
            run.put("count", i)
            run.put("ok", i % 3 == 0)
            run.put("note", f"run {i}")
            run.put("camera/image", np.full((32, 32), i * 10, dtype="u1"))
            run.put("pmt", 100 + i, data_id={"channel": 2})


@pytest.fixture
def filled(shelf: labshelf.Shelf) -> labshelf.Shelf:
    _fill(shelf)
    return shelf


@pytest.fixture
def traced(filled: labshelf.Shelf) -> Iterator[list[str]]:
    """Every SQL statement the registry runs while the test runs."""
    statements: list[str] = []
    db = filled._registry.db
    original = db.engine.raw_connection

    def tracing_connection():  # type: ignore[no-untyped-def]
        raw = original()
        cursor_factory = raw.cursor

        class Cursor:
            def __init__(self) -> None:
                self._cursor = cursor_factory()

            def execute(self, sql, params=()):  # type: ignore[no-untyped-def]
                statements.append(sql)
                return self._cursor.execute(sql, params)

            def __getattr__(self, name):  # type: ignore[no-untyped-def]
                return getattr(self._cursor, name)

        raw.cursor = Cursor  # type: ignore[method-assign]
        return raw

    db.engine.raw_connection = tracing_connection  # type: ignore[method-assign]
    db.release_connections()  # the thread's kept connection predates the tracer
    yield statements
    db.engine.raw_connection = original  # type: ignore[method-assign]
    db.release_connections()


def test_to_pandas_columns_types_and_thumbnails(filled: labshelf.Shelf) -> None:
    table = filled.runs.to_pandas()
    assert list(table.index) == list(range(1, 13)) and table.index.name == "run"
    assert list(table.columns) == [
        "start", "end", "status", "experiment", "comment", "tags",
        "temperature", "count", "ok", "note", "camera/image", "pmt[channel=2]",
    ]
    assert table["temperature"].tolist() == [295.0 + i for i in range(12)]
    assert str(table["count"].dtype) == "Int64" and table["count"].tolist() == list(range(12))
    assert str(table["ok"].dtype) == "boolean" and table["ok"].tolist() == [i % 3 == 0 for i in range(12)]
    assert table["note"].tolist() == [f"run {i}" for i in range(12)]
    assert table["pmt[channel=2]"].tolist() == [100 + i for i in range(12)]
    assert isinstance(table["start"].dtype, pd.DatetimeTZDtype)
    png = table.loc[5, "camera/image"]
    assert Image.open(io.BytesIO(png)).size == (32, 32)
    assert filled.runs.to_pandas(thumbnails=False)["camera/image"].tolist() == ["32x32 uint8"] * 12


def test_views_filter_sort_and_limit(filled: labshelf.Shelf) -> None:
    view = filled.runs
    assert len(view) == 12
    assert view.query("temperature > 300 and experiment == 'rabi_scan'").numbers() == [8, 10, 12]
    assert view.query("`camera/image.mean` >= 100").numbers() == [11, 12]
    assert view.query("`pmt[channel=2]` < 102 or note contains 'run 11'").numbers() == [1, 2, 12]
    assert view.query("ok == True").numbers() == [1, 4, 7, 10]
    assert view.where(run=slice(3, 5)).numbers() == [3, 4, 5]
    assert view.where(run=[2, 9]).numbers() == [2, 9]
    assert view.sort_values("temperature", ascending=False).head(3).numbers() == [12, 11, 10]
    assert view.latest(2).numbers() == [12, 11]
    assert view.tail(3).numbers() == [10, 11, 12]
    assert view.tail(5).head(2).numbers() == [8, 9]
    assert list(view.tail(5).head(2).to_pandas().index) == [8, 9]
    assert list(view.head(4).sort_values("temperature", ascending=False).to_pandas().index) == [4, 3, 2, 1]
    # pandas semantics: a filter after a limit filters the rows already chosen.
    assert view.head(4).query("experiment == 'rabi_scan'").numbers() == [2, 4]
    assert view.head(4).sort_values("temperature", ascending=False).numbers() == [4, 3, 2, 1]
    assert len(view.query("temperature > 1000")) == 0
    assert view.query("temperature > 1000").to_pandas().empty


def test_filters_sorts_and_limits_are_pushed_to_sql(filled: labshelf.Shelf, traced: list[str]) -> None:
    frame = filled.runs.query("temperature > 300").sort_values("count", ascending=False).head(2).to_pandas()
    assert list(frame.index) == [12, 11]
    numbers_sql = [s for s in traced if s.lstrip().upper().startswith("SELECT RUNS.NUMBER")]
    assert numbers_sql, traced
    sql = numbers_sql[0].upper()
    assert "WHERE" in sql and "ORDER BY" in sql and "LIMIT" in sql
    # The summaries are fetched for the chosen runs only, by the database.
    summaries = [s for s in traced if s.upper().startswith("SELECT DATASETS.RUN, DATASETS.NAME")]
    assert summaries and all("IN (SELECT" in s.upper() for s in summaries), summaries
    assert filled.runs.query("temperature > 300").head(2).sql().upper().count("LIMIT") == 1


def test_indexing(filled: labshelf.Shelf) -> None:
    view = filled.runs
    run = view[3]
    assert isinstance(run, labshelf.Run) and run.number == 3
    series = view["temperature"]
    assert isinstance(series, pd.Series) and series.index.tolist() == list(range(1, 13))
    narrow = view[["temperature", "camera/image"]]
    assert isinstance(narrow, labshelf.RunView)
    assert list(narrow.to_pandas().columns) == ["temperature", "camera/image"]
    assert [r.number for r in view.where(run=slice(1, 3))] == [1, 2, 3]
    with pytest.raises(KeyError):
        view.where(run=slice(1, 3))[9]
    assert view.columns[:6] == ["start", "end", "status", "experiment", "comment", "tags"]


@pytest.mark.parametrize(
    ("expression", "phrase"),
    [
        ("tempreature > 300", "did you mean 'temperature'"),
        ("temperature >", "position"),
        ("__import__('os').system('x')", None),
    ],
)
def test_bad_queries_are_clear_and_harmless(filled: labshelf.Shelf, expression: str, phrase: str | None) -> None:
    with pytest.raises(labshelf.errors.QuerySyntaxError, match=phrase):
        filled.runs.query(expression)
    assert len(filled.runs) == 12


def test_annotations_show_in_the_table_and_the_history(filled: labshelf.Shelf) -> None:
    assert filled.annotate(3, comment="focus drifted", tags=["bad", "focus"], quality=3.5, checked=True) == 4
    filled.runs.where(run=slice(5, 6)).annotate(tags=["good"], operator="ana")
    table = filled.runs.to_pandas()
    assert table.loc[3, "comment"] == "focus drifted"
    assert table.loc[3, "tags"] == ["bad", "focus"] and table.loc[5, "tags"] == ["good"] and table.loc[1, "tags"] == []
    assert table.loc[3, "quality"] == 3.5 and np.isnan(table.loc[4, "quality"])
    assert table.loc[3, "checked"] == True  # noqa: E712 - a pandas BooleanArray scalar
    assert table.loc[6, "operator"] == "ana"
    assert filled.runs.editable_columns == ["comment", "tags", "quality", "checked", "operator"]
    assert filled.runs.query("'good' in tags").numbers() == [5, 6]
    assert filled.runs.query("quality > 3 and checked == True").numbers() == [3]
    filled.annotate(3, comment="fixed", quality=None)
    history = filled.history(3)
    assert [(h["field"], h["old"], h["new"]) for h in history] == [
        ("comment", None, "focus drifted"),
        ("tags", [], ["bad", "focus"]),
        ("column:quality", None, 3.5),
        ("column:checked", None, True),
        ("comment", "focus drifted", "fixed"),
        ("column:quality", 3.5, None),
    ]
    assert all(h["user"] for h in history)
    # Finished runs can be annotated; their datasets are untouched.
    assert filled.run(3).status == "finished" and filled.get("temperature", run=3) == 297.0
    kinds = [c["kind"] for c in filled._registry.changes_since(0)]
    assert kinds.count("annotate") == len(filled.history(3)) + len(filled.history(5)) + len(filled.history(6))


@pytest.mark.parametrize(
    ("kwargs", "error", "phrase"),
    [
        ({"tags": "bad"}, labshelf.InvalidValue, "list of tags"),
        ({"comment": 5}, labshelf.InvalidValue, "comment= takes a str"),
        ({"status": "x"}, labshelf.InvalidValue, "run table's own columns"),
        ({"weird": [1, 2]}, labshelf.InvalidValue, "numbers, text or bools"),
    ],
)
def test_bad_annotations(filled: labshelf.Shelf, kwargs: dict, error: type, phrase: str) -> None:
    with pytest.raises(error, match=phrase):
        filled.annotate(2, **kwargs)
    with pytest.raises(labshelf.RunNotFound):
        filled.annotate(99, comment="x")
    filled.annotate(2, level=1.0)
    with pytest.raises(labshelf.InvalidValue, match="holds number values"):
        filled.annotate(2, level="high")
    assert filled.history(2)[-1]["new"] == 1.0


def test_exports(filled: labshelf.Shelf, tmp_path: Path) -> None:
    view = filled.runs.query("count < 3")
    arrow = view.to_arrow()
    assert arrow.num_rows == 3 and "temperature" in arrow.column_names
    view.to_csv(tmp_path / "t.csv")
    assert pd.read_csv(tmp_path / "t.csv", index_col="run")["temperature"].tolist() == [295.0, 296.0, 297.0]
    view.to_parquet(tmp_path / "t.parquet")
    assert pd.read_parquet(tmp_path / "t.parquet")["note"].tolist() == ["run 0", "run 1", "run 2"]


def test_reprs(filled: labshelf.Shelf) -> None:
    text = repr(filled.runs)
    assert text.startswith("<RunView 12 runs") and "temperature" in text
    page = filled.runs._repr_html_()
    assert page.count("<img src='data:image/png;base64,") == 12
    assert "12 runs x 12 columns" in page


def test_parse_label() -> None:
    assert parse_label("pmt[channel=2].mean") == ("pmt", {"channel": 2}, "mean")
    assert parse_label("camera/image") == ("camera/image", {}, None)
    assert parse_label("x[det='a', on=True]") == ("x", {"det": "a", "on": True}, None)


def test_page_is_a_slice_of_the_table(filled: labshelf.Shelf) -> None:
    view = filled.runs
    whole = view.to_pandas()
    pd.testing.assert_frame_equal(view.page(3, 4), whole.iloc[3:7])
    assert list(view.page(10, 100).index) == [11, 12]
    assert view.page(12, 5).empty
    assert view.page(0, 0).empty
    # Filters, sorts, limits and column choices are those of the view.
    chosen = view.query("temperature > 297").sort_values("temperature", ascending=False)
    assert list(chosen.page(1, 3).index) == chosen.numbers()[1:4] == [11, 10, 9]
    assert list(view.tail(5).page(1, 2).index) == [9, 10]
    assert list(view.latest(4).page(2, 10).index) == [10, 9]
    narrow = view[["temperature", "camera/image"]].page(0, 2)
    assert list(narrow.columns) == ["temperature", "camera/image"]
    assert isinstance(narrow.loc[1, "camera/image"], bytes)
    assert view.page(0, 2, thumbnails=False)["camera/image"].tolist() == ["32x32 uint8"] * 2
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(labshelf.errors.QuerySyntaxError, match="int >= 0"):
            view.page(bad, 3)  # type: ignore[arg-type]
        with pytest.raises(labshelf.errors.QuerySyntaxError, match="int >= 0"):
            view.page(0, bad)  # type: ignore[arg-type]


def test_page_reads_only_its_runs(filled: labshelf.Shelf, traced: list[str]) -> None:
    page = filled.runs.sort_values("count", ascending=False).page(2, 3)
    assert list(page.index) == [10, 9, 8]
    # One query picks the page's runs (with their metadata): the sort, OFFSET and LIMIT in SQL.
    paging = [s.upper() for s in traced if "OFFSET" in s.upper()]
    assert len(paging) == 1 and paging[0].lstrip().startswith("SELECT RUNS.NUMBER,"), paging
    assert "ORDER BY" in paging[0] and "LIMIT" in paging[0]
    assert not [s for s in traced if re.match(r"\s*SELECT RUNS.NUMBER\s+FROM", s, re.IGNORECASE)]
    # Summaries and thumbnails are fetched for the page's three runs, by number.
    summaries = [s for s in traced if s.upper().startswith("SELECT DATASETS.RUN, DATASETS.NAME")]
    assert summaries and all("IN (" in s.upper() and "SELECT RUNS" not in s.upper() for s in summaries), summaries


def test_column_kinds_and_refreshed(filled: labshelf.Shelf) -> None:
    view = filled.runs
    kinds = view.column_kinds()
    assert list(kinds) == view.columns
    assert kinds == {
        "start": "time", "end": "time", "status": "text", "experiment": "text", "comment": "text", "tags": "tags",
        "temperature": "number", "count": "int", "ok": "bool", "note": "text", "camera/image": "image",
        "pmt[channel=2]": "int",
    }
    assert view[["count", "note"]].column_kinds() == {"count": "int", "note": "text"}
    filled.annotate(1, quality=2.5, operator="ana", checked=True)
    # A view keeps the columns it has seen; refreshed() looks again.
    assert "quality" not in view.columns and view.shelf is filled
    fresh = view.refreshed()
    assert fresh.column_kinds()["quality"] == "number"
    assert {k: fresh.column_kinds()[k] for k in ("operator", "checked")} == {"operator": "text", "checked": "bool"}
    with filled.new_run("x") as run:
        run.put("temperature", "warm")  # the column now holds numbers and text
        run.put("z", 1 + 2j)
    assert filled.runs.column_kinds()["temperature"] == "text"
    assert filled.runs.column_kinds()["z"] == "complex"


def test_a_composite_is_one_column_not_one_per_part(shelf: labshelf.Shelf) -> None:
    import dataclasses

    @dataclasses.dataclass
    class Fit:
        centre: float
        width: float

    with shelf.new_run() as run:
        run.put("fit", Fit(1.5, 0.25))
        run.put("temperature", 300.0)
    frame = shelf.runs.to_pandas()
    assert "fit" in frame.columns and "temperature" in frame.columns
    assert not [c for c in frame.columns if c.startswith("fit.")]
    assert "fit.centre" not in shelf.runs.columns
    assert shelf.get("fit.centre", run=run.number) == 1.5
