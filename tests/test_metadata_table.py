"""Display metadata, column tags and the logbook in the run table (RunView), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest

import labshelf


def _fill(shelf: labshelf.Shelf) -> None:
    for i in range(3):
        with shelf.new_run("scan") as run:
            run.put("delay", 1.2345e-12 * (i + 1), unit="ps", scale=1e-12, precision=2)
            run.put("count", i, title="Beam/XGM count")
            run.put("pmt", 5.5 + i, data_id={"channel": 2})
            run.put("plain", 0.125 * i)


def test_frame_keeps_stored_values_and_carries_metadata(shelf: labshelf.Shelf) -> None:
    _fill(shelf)
    shelf.describe("pmt", data_id={"channel": 2}, unit="V")
    frame = shelf.runs.to_pandas()
    assert frame["delay"].tolist() == [1.2345e-12, 2.469e-12, 1.2345e-12 * 3]
    assert frame["count"].dtype == "Int64"
    said = frame.attrs["labshelf"]["metadata"]
    assert said["delay"] == {"unit": "ps", "scale": 1e-12, "precision": 2}
    assert said["count"] == {"title": "Beam/XGM count"}
    assert said["pmt[channel=2]"] == {"unit": "V"}
    assert "plain" not in said and "start" not in said
    # Plain dicts: a copy of the frame carries them too.
    assert frame.copy().attrs["labshelf"]["metadata"]["delay"]["unit"] == "ps"


def test_display_gives_the_shown_values(shelf: labshelf.Shelf) -> None:
    _fill(shelf)
    shown = shelf.runs.to_pandas(display=True)
    assert shown["delay"].tolist() == [1.23, 2.47, 3.7]
    assert shown["count"].tolist() == [0, 1, 2]  # no scale, no precision: untouched
    assert shown["plain"].tolist() == [0.0, 0.125, 0.25]
    assert shown.attrs["labshelf"]["display"] is True
    # The stored frame is not touched by asking for the shown one.
    assert shelf.runs.to_pandas()["delay"].iloc[0] == 1.2345e-12


def test_a_column_series_carries_its_metadata_as_attrs(shelf: labshelf.Shelf) -> None:
    _fill(shelf)
    shelf.tag_columns("delay", ["laser"])
    series = shelf.runs["delay"]
    assert series.attrs["units"] == "ps"
    assert series.attrs["labshelf"] == {"metadata": {"unit": "ps", "scale": 1e-12, "precision": 2}, "column_tags": ["laser"]}
    assert shelf.runs["count"].attrs["long_name"] == "Beam/XGM count"
    assert "units" not in shelf.runs["plain"].attrs


def test_queries_compare_stored_values(shelf: labshelf.Shelf) -> None:
    _fill(shelf)
    # Shown values are 1.23, 2.47, 3.70 (ps); the query language sees seconds.
    assert shelf.runs.query("delay > 2e-12").numbers() == [2, 3]
    assert shelf.runs.query("delay > 2").numbers() == []
    assert shelf.runs.sort_values("delay", ascending=False).numbers() == [3, 2, 1]


def test_metadata_change_shows_in_the_next_frame(shelf: labshelf.Shelf) -> None:
    _fill(shelf)
    view = shelf.runs
    assert view.to_pandas().attrs["labshelf"]["metadata"]["delay"]["unit"] == "ps"
    shelf.describe("delay", unit="fs", scale=1e-15, precision=None)
    again = view.to_pandas()
    assert again.attrs["labshelf"]["metadata"]["delay"] == {"unit": "fs", "scale": 1e-15}
    assert view.to_pandas(display=True)["delay"].iloc[0] == pytest.approx(1234.5)


def test_columns_tagged_and_select(shelf: labshelf.Shelf) -> None:
    _fill(shelf)
    shelf.annotate(1, quality=2.5)
    shelf.tag_columns("delay", ["beam"])
    shelf.tag_columns("quality", ["beam", "qa"])
    shelf.tag_columns("pmt", ["detector"])
    assert shelf.runs.columns_tagged("beam").columns == ["quality", "delay"]
    assert shelf.runs.columns_tagged("detector").columns == ["pmt[channel=2]"]
    assert shelf.runs.columns_tagged("beam", "detector").columns == ["quality", "delay", "pmt[channel=2]"]
    assert shelf.runs.select("status", tags=["qa"]).columns == ["status", "quality"]
    assert shelf.runs.columns_tagged("nothing").columns == []
    frame = shelf.runs.query("count >= 1").columns_tagged("beam").to_pandas()
    assert list(frame.columns) == ["quality", "delay"] and list(frame.index) == [2, 3]
    # Column tags are not run tags: a query's 'beam' in tags means the run's tags.
    shelf.annotate(3, tags=["good"])
    assert shelf.runs.query("'beam' in tags").numbers() == []
    assert shelf.runs.query("'good' in tags").numbers() == [3]
    with pytest.raises(labshelf.InvalidValue, match="single str"):
        shelf.runs.select(tags="beam")


def test_logbook_rows_interleave_by_time(shelf: labshelf.Shelf) -> None:
    first = shelf.log("cooling down", at=time.time() - 3600)
    _fill(shelf)
    late = shelf.log("beam lost, refill at 14:05")
    table = shelf.runs.to_pandas(logbook=True)
    assert len(table) == 5
    assert table.index.dtype == "Int64"
    assert [None if pd.isna(n) else int(n) for n in table.index] == [None, 1, 2, 3, None]
    assert table["log"].iloc[0] == "cooling down" and table["log_entry"].iloc[0] == first
    assert table["log"].iloc[-1] == "beam lost, refill at 14:05" and table["log_entry"].iloc[-1] == late
    assert table["start"].is_monotonic_increasing
    assert table["count"].dtype == "Int64"  # ints stay ints, missing on log rows
    assert table.loc[2, "count"] == 1
    # Newest first when the view is.
    newest = shelf.runs.latest(10).to_pandas(logbook=True)
    assert newest["log"].iloc[0] == "beam lost, refill at 14:05"
    assert [None if pd.isna(n) else int(n) for n in newest.index] == [None, 3, 2, 1, None]


def test_logbook_of_a_limited_view_keeps_to_its_time_span(shelf: labshelf.Shelf) -> None:
    before = shelf.log("long before", at=time.time() - 3600)
    _fill(shelf)
    two, three = shelf.run(2).record.started, shelf.run(3).record.started
    between = shelf.log("between 2 and 3", at=(two + three) / 2)
    after = shelf.log("after everything")
    # Runs 2 and 3 without run 1: from run 2's start on, and to the end (no later run).
    middle = shelf.runs.where(run=[2, 3]).to_pandas(logbook=True)
    assert middle["log_entry"].dropna().tolist() == [between, after]
    # Run 1 alone: everything before it (it is the first run) up to run 2's start.
    first = shelf.runs.head(1).to_pandas(logbook=True)
    assert first["log_entry"].dropna().tolist() == [before]
    # No run at all: no entry either.
    assert shelf.runs.query("count > 100").to_pandas(logbook=True)["log_entry"].dropna().tolist() == []


def test_html_table_shows_headings_and_formatted_cells(shelf: labshelf.Shelf) -> None:
    _fill(shelf)
    shelf.describe("delay", description="pump-probe delay <b>")
    page = shelf.runs._repr_html_()
    headings = re.findall(r"<th[^>]*>([^<]*)</th>", page)
    assert "delay [ps]" in headings and "XGM count" in headings and "plain" in headings
    assert "pump-probe delay &lt;b&gt;" in page  # the description, escaped, as a tooltip
    cells = re.findall(r"<td>([^<]*)</td>", page)
    assert "1.23" in cells and "2.47" in cells and "3.70" in cells
    assert "1.2345e-12" not in page


def test_a_frame_without_metadata_is_as_before(shelf: labshelf.Shelf) -> None:
    with shelf.new_run("plain") as run:
        run.put("x", 1.5)
    frame = shelf.runs.to_pandas()
    assert frame.attrs["labshelf"] == {"metadata": {}, "column_tags": {}}
    assert frame.loc[1, "x"] == 1.5
    assert re.findall(r"<th>x</th>", shelf.runs._repr_html_())


def test_logbook_rows_and_the_widget_place_entries_alike(shelf: labshelf.Shelf) -> None:
    from labshelf.browse import Browser

    shelf.log("cooling down", at=time.time() - 3600)
    _fill(shelf)
    shelf.log("between", at=(shelf.run(1).record.started + shelf.run(2).record.started) / 2)
    shelf.log("after")
    for view, sort in ((shelf.runs, []), (shelf.runs.sort_values("start", ascending=False), [["start", False]])):
        table = view.to_pandas(logbook=True)
        entries = table["log_entry"].to_numpy()
        # The row each entry goes before, counted in runs: what the browse service says.
        rows, seen = {}, 0
        for entry in entries:
            if pd.isna(entry):
                seen += 1
            else:
                rows[int(entry)] = seen
        _order, placed = Browser(shelf).logbook(sort=sort)
        assert rows == {e.id: e.row for e in placed}


def test_logbook_needs_a_view_in_time_order(shelf: labshelf.Shelf) -> None:
    _fill(shelf)
    shelf.log("noted")
    with pytest.raises(labshelf.QuerySyntaxError, match="sort by 'run' or 'start' first"):
        shelf.runs.sort_values("delay").to_pandas(logbook=True)
    assert len(shelf.runs.sort_values("delay").to_pandas()) == 3
