"""RunTable, the run table widget: pages of rows, filter/sort/columns, edits, selection, polling.

The Python half is driven the way the browser drives it: requests through
``_on_request`` (and whole comm messages through ``_handle_msg``), with the
comm's ``send`` captured -- the transport only -- and every message checked
to be JSON the Jupyter wire accepts (no NaN).  The JavaScript half is
checked by node: it parses, and its cell formatting does what the table
promises (local ISO times, six significant digits, empty for missing).
Browser tests of the DOM are in ``tests/browser/``.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import traitlets
from PIL import Image
from sqlalchemy import insert, select

import labshelf
from labshelf.registry.schema import datasets, runs
from labshelf.widgets import RunTable
from labshelf.widgets._base import esm

Messages = list[tuple[dict[str, Any], list[bytes]]]


def _capture(widget: RunTable) -> Messages:
    """Record what the widget sends to the browser (replaces the comm's send only)."""
    sent: Messages = []

    def send(data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        json.dumps(data, allow_nan=False)  # as jupyter_client's session packs it
        sent.append((data, [bytes(b) for b in buffers or []]))

    widget.comm.send = send  # type: ignore[method-assign]
    return sent


def _request(widget: RunTable, sent: Messages, method: str, **params: Any) -> tuple[dict[str, Any], list[bytes]]:
    """One request as the browser makes it; returns the answer's content and buffers."""
    before = len(sent)
    widget._on_request(widget, {"id": f"r{before}", "method": method, "params": params}, [])
    # One answer, after any state updates the request caused (a poll that found news).
    answers = [(data, buffers) for data, buffers in sent[before:] if data["method"] == "custom"]
    assert len(answers) == 1 and sent[-1] == answers[0]
    data, buffers = answers[0]
    assert data["content"]["id"] == f"r{before}"
    return data["content"], buffers


def _rows(widget: RunTable, sent: Messages, offset: int = 0, limit: int = 100) -> dict[str, Any]:
    content, buffers = _request(widget, sent, "rows", offset=offset, limit=limit)
    assert "error" not in content, content
    result = content["result"]
    result["buffers"] = buffers
    return result


def _column(result: dict[str, Any], name: str) -> list[Any]:
    i = result["columns"].index(name)
    return [row[i] for row in result["cells"]]


def _browser_sets(widget: RunTable, **state: Any) -> None:
    """A state update from the browser, as the comm delivers it."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []})


def _fill(shelf: labshelf.Shelf, n: int) -> None:
    """``n`` runs through the public API; every 25th has a camera image."""
    for i in range(n):
        with shelf.new_run("rabi_scan" if i % 2 else "beam_profile", {"i": i}) as run:
            run.put("temperature", 295.0 + i / 10)
            run.put("count", i)
            run.put("note", f"run {i}")
            if i % 25 == 0:
                run.put("camera/image", np.full((16, 24), i % 256, dtype="u1"))


def _bulk(shelf: labshelf.Shelf, n: int) -> None:
    """Runs 1..n with temperature = i / 10 and count = i, written in one go.

    Run 1 goes through the public API; the others are copies of its registry
    rows with their own numbers and values, inserted in one transaction
    (10,000 runs through ``new_run`` would take a minute).
    """
    with shelf.new_run("bulk", {"i": 1}) as run:
        run.put("temperature", 0.1)
        run.put("count", 1)
    engine = shelf._registry.db.engine
    with engine.begin() as conn:
        first = dict(conn.execute(select(runs).where(runs.c.number == 1)).one()._mapping)
        rows = [dict(r._mapping) for r in conn.execute(select(datasets).where(datasets.c.run == 1))]
        new_runs, new_datasets = [], []
        for i in range(2, n + 1):
            new_runs.append({**first, "number": i, "params": json.dumps({"i": i}), "started": first["started"] + i})
            for row in rows:
                copy = {k: v for k, v in row.items() if k != "id"}
                inline = json.loads(row["inline"])
                value: Any = i / 10 if row["name"] == "temperature" else i
                inline["v"] = value
                copy.update(run=i, inline=json.dumps(inline), summary_value=float(value))
                if row["summary_text"] is not None:
                    copy["summary_text"] = str(value)
                new_datasets.append(copy)
        conn.execute(insert(runs), new_runs)
        conn.execute(insert(datasets), new_datasets)
        if conn.dialect.name == "postgresql":
            # Autovacuum would analyze the new rows within a minute; until then
            # the planner, knowing nothing of 20,000 rows, scans an index by
            # name for each run's sort key (15 s instead of 30 ms).  Only this
            # shelf's tables: a bare ANALYZE locks every table of every test
            # schema in one transaction and runs out of lock slots.
            conn.exec_driver_sql("ANALYZE runs")
            conn.exec_driver_sql("ANALYZE datasets")
    # The copies are runs the public API reads like any other.
    assert len(shelf) == n and shelf.get("temperature", run=n) == n / 10 and shelf.get("count", run=7) == 7


@pytest.fixture
def filled(shelf: labshelf.Shelf) -> labshelf.Shelf:
    _fill(shelf, 60)
    return shelf


@pytest.fixture
def table(filled: labshelf.Shelf) -> Iterator[RunTable]:
    widget = RunTable(filled.runs, poll=0.5)
    yield widget
    widget.close()


def test_rows_come_in_pages_with_json_values_and_png_buffers(shelf: labshelf.Shelf) -> None:
    _fill(shelf, 300)
    table = RunTable(shelf.runs)
    sent = _capture(table)
    assert table.count == 300 and table.kinds["temperature"] == "number" and table.kinds["camera/image"] == "image"
    # The first screen (issue 11, section 4): status, start, experiment, the data and thumbnails,
    # then comment and tags; every column in the chooser (all_columns), `end` there only.
    assert table.all_columns == ["status", "start", "end", "experiment", "temperature", "count", "note",
                                 "camera/image", "comment", "tags"]
    assert sorted(table.all_columns) == sorted(table.view.columns)
    assert table.columns == table.default_columns == [c for c in table.all_columns if c != "end"]
    first = _rows(table, sent, 0, 100)
    assert first["runs"] == list(range(1, 101)) and first["offset"] == 0
    assert first["generation"] == table.generation
    assert first["columns"] == table.columns and all(len(row) == len(table.columns) for row in first["cells"])
    assert _column(first, "temperature")[:3] == [295.0, 295.1, 295.2]
    assert _column(first, "count")[:3] == [0, 1, 2]
    assert _column(first, "note")[99] == "run 99"
    assert _column(first, "tags")[0] == [] and _column(first, "comment")[0] is None
    assert _column(first, "start")[4] == pytest.approx(table.shelf.run(5).start.timestamp())
    # Thumbnails: PNG buffers, referred to by index from their cells.
    images = _column(first, "camera/image")
    assert [i for i, v in enumerate(images) if v is not None] == [0, 25, 50, 75]
    assert [images[i] for i in (0, 25, 50, 75)] == [{"png": k} for k in range(4)]
    assert len(first["buffers"]) == 4
    assert Image.open(io.BytesIO(first["buffers"][1])).size == (24, 16)
    last = _rows(table, sent, 200, 100)
    assert last["runs"] == list(range(201, 301))
    assert _column(last, "camera/image")[0] == {"png": 0}  # indices count from each answer's own buffers
    assert _rows(table, sent, 290, 100)["runs"] == list(range(291, 301))
    beyond = _rows(table, sent, 300, 100)
    assert beyond["runs"] == [] and beyond["cells"] == []
    # The page size the browser asks for by default.
    table.page_size = 7
    content, _ = _request(table, sent, "rows", offset=7)
    assert content["result"]["runs"] == list(range(8, 15))
    table.close()


def test_missing_and_odd_values_travel_as_json(shelf: labshelf.Shelf) -> None:
    with shelf.new_run("x") as run:
        run.put("x", 1.5)
        run.put("big", 2**60)
        run.put("z", 1 + 2j)
    with shelf.new_run("x") as run:
        run.put("x", float("nan"))
        run.put("flag", True)
    with shelf.new_run("x") as run:
        run.put("x", float("inf"))
    running = shelf.new_run("x")  # no end time yet
    running.put("count", 3)
    table = RunTable(shelf)  # a Shelf shows all of its runs
    table.columns = table.all_columns  # `end` too (the first screen leaves it in the column chooser)
    sent = _capture(table)
    result = _rows(table, sent)  # _capture refuses NaN, as the Jupyter wire does
    assert _column(result, "x") == [1.5, None, "inf", None]
    assert _column(result, "big") == [str(2**60), None, None, None]  # beyond 2**53: exact as text
    assert _column(result, "z") == ["(1+2j)", None, None, None]
    assert _column(result, "flag") == [None, True, None, None]
    assert _column(result, "count") == [None, None, None, 3]
    assert _column(result, "status") == ["finished"] * 3 + ["running"]
    assert _column(result, "end")[3] is None and _column(result, "start")[3] == pytest.approx(running.start.timestamp())
    assert _column(result, "end")[0] > _column(result, "start")[0]
    assert table.kinds["big"] == "int" and table.kinds["flag"] == "bool" and table.kinds["z"] == "complex"
    running.finish()
    # A dataset named like a table column gets its own label, and still shows when columns are chosen.
    with shelf.new_run("x") as run:
        run.put("comment", "from the experiment")
    table.rpc_version()
    table.columns = ["comment (dataset)", "x"]
    assert _rows(table, sent, 4)["cells"] == [["from the experiment", None]]
    table.close()


def test_sort_and_filter_traits_change_the_rows(table: RunTable) -> None:
    sent = _capture(table)
    generation = table.generation
    table.sort = [["temperature", False]]
    assert table.generation > generation and table.error == ""
    assert _rows(table, sent, 0, 3)["runs"] == [60, 59, 58]
    table.filter = "temperature > 298 and experiment == 'rabi_scan'"
    assert table.count == len(table.view) == 15
    result = _rows(table, sent, 0, 5)
    assert result["runs"] == [60, 58, 56, 54, 52]
    assert table.view.numbers()[:5] == result["runs"]
    # The same through the comm, as the browser sends it.
    _browser_sets(table, sort=[["count", True]], filter="count < 10 and 'good' in tags")
    assert table.count == 0 and _rows(table, sent)["runs"] == []
    table.shelf.annotate([3, 5], tags=["good"])
    _browser_sets(table, filter="'good' in tags")
    assert table.count == 2 and _rows(table, sent)["runs"] == [3, 5]
    # The browser heard of the new count.
    assert any(d.get("method") == "update" and d["state"].get("count") == 2 for d, _ in sent)
    # Fewer columns: pages carry only those (and read only their summaries).
    table.columns = ["count", "camera/image"]
    narrow = _rows(table, sent)
    assert narrow["columns"] == ["count", "camera/image"] and narrow["cells"] == [[2, None], [4, None]]
    with pytest.raises(traitlets.TraitError, match="unknown column 'nope'"):
        table.columns = ["nope"]


def test_a_bad_filter_sets_error_and_keeps_the_rows(table: RunTable) -> None:
    sent = _capture(table)
    table.filter = "count < 50"
    generation, rows = table.generation, _rows(table, sent)
    _browser_sets(table, filter="tempreature > 300")
    with pytest.raises(labshelf.errors.QuerySyntaxError) as raised:
        table.shelf.runs.query("tempreature > 300")
    assert table.error == str(raised.value) and "did you mean 'temperature'" in table.error
    assert table.generation == generation and table.count == 50 and _rows(table, sent) == rows
    assert table.view.numbers() == list(range(1, 51))
    # The error reached the browser; a later sort keeps the shown filter and its message.
    assert any(d.get("method") == "update" and d["state"].get("error") == table.error for d, _ in sent)
    table.sort = [["count", False]]
    assert _rows(table, sent, 0, 2)["runs"] == [50, 49] and "tempreature" in table.error
    table.filter = "temperature >"
    assert "position" in table.error or "end" in table.error
    # A bad sort is undone (the headers show the real order) and says why.
    table.filter = "count < 50"
    table.sort = [["tags", True]]
    assert table.sort == [["count", False]] and "tags is a list" in table.error
    table.sort = [["nope", True]]
    assert table.sort == [["count", False]] and "unknown column 'nope'" in table.error
    table.sort = [["count"]]
    assert "[column, ascending] pairs" in table.error
    table.filter = ""
    assert table.error == "" and table.count == 60


def test_a_filter_error_says_where(table: RunTable) -> None:
    _browser_sets(table, filter="count >> 3")
    assert table.error_position == 7 and "position 7" in table.error
    # A sort's problem has no place in the filter box; the filter's stays while it is in the box.
    table.sort = [["nope", True]]
    assert "unknown column 'nope'" in table.error and table.error_position is None
    table.sort = [["count", True]]
    assert table.error_position == 7
    table.filter = "count > 3"
    assert table.error == "" and table.error_position is None


def test_first_screen_and_remembered_layout(filled: labshelf.Shelf) -> None:
    table = RunTable(filled)
    # Remembered per shelf in the browser, under a key that names no path or URL.
    assert table.layout_key.startswith("widget:") and str(filled.root) not in table.layout_key
    assert RunTable(filled.runs.query("count > 3")).layout_key == table.layout_key
    # Chosen columns are shown as chosen, and not remembered.
    chosen = RunTable(filled.runs[["count", "status"]])
    assert chosen.columns == chosen.all_columns == ["count", "status"] and chosen.layout_key == ""
    # The user's order stays: a column shown again from the chooser comes in where they put it.
    table.columns = ["count", "status", "start"]
    assert table.columns == ["count", "status", "start"]
    for widget in (table, chosen):
        widget.close()


def test_edits_are_written_through_annotate(table: RunTable, backend: str) -> None:
    sent = _capture(table)
    shelf = table.shelf
    shelf.annotate(1, quality=1.0, checked=False, operator="ana")
    table.rpc_version()  # the new user columns are editable once seen
    assert table.editable == ["comment", "tags", "quality", "checked", "operator"]
    for column, typed, stored in [
        ("comment", "focus drifted", "focus drifted"),
        ("tags", " good, focus,,good ", ["focus", "good"]),
        ("quality", "3.25", 3.25),
        ("checked", "yes", True),
        ("operator", "bo", "bo"),
    ]:
        content, _ = _request(table, sent, "edit", run=7, column=column, value=typed)
        assert content["result"] == {"run": 7, "column": column, "value": stored}
    content, _ = _request(table, sent, "edit", run=7, column="quality", value="")  # empty clears
    assert content["result"]["value"] is None
    # Another shelf object on the same registry sees the edits (nothing is cached in the widget).
    other = labshelf.open(shelf.root, mode="r")
    try:
        row = other.runs.where(run=[7]).to_pandas().loc[7]
        assert row["comment"] == "focus drifted" and row["tags"] == ["focus", "good"]
        assert np.isnan(row["quality"]) and row["checked"] == True and row["operator"] == "bo"  # noqa: E712
        assert [h["new"] for h in other.history(7) if h["field"] == "column:quality"] == [3.25, None]
    finally:
        other.close()
    # The next page shows them too.
    shown = _rows(table, sent, 6, 1)
    assert _column(shown, "comment") == ["focus drifted"] and _column(shown, "tags") == [["focus", "good"]]


@pytest.mark.parametrize(
    ("column", "value", "phrase"),
    [
        ("quality", "abc", "quality holds numbers: 'abc' is not a number"),
        ("quality", "nan", "finite numbers"),
        ("checked", "maybe", "checked holds true or false"),
        ("temperature", "3", "column 'temperature' cannot be edited; editable are comment, tags"),
        ("start", "now", "cannot be edited"),
        ("tags", 5, "comma-separated text"),
        ("comment", "a\x00b", "NUL"),
    ],
)
def test_bad_edits_are_refused_and_change_nothing(table: RunTable, column: str, value: Any, phrase: str) -> None:
    sent = _capture(table)
    shelf = table.shelf
    shelf.annotate(7, quality=1.0, checked=False, comment="before")
    history = shelf.history(7)
    content, _ = _request(table, sent, "edit", run=7, column=column, value=value)
    assert phrase in content["error"] and "result" not in content
    assert "\n" not in content["error"]
    assert shelf.history(7) == history
    assert shelf.runs.where(run=[7]).to_pandas().loc[7, "comment"] == "before"


def test_edit_of_a_missing_run_or_on_a_read_only_shelf(table: RunTable) -> None:
    sent = _capture(table)
    content, _ = _request(table, sent, "edit", run=999, column="comment", value="x")
    assert "no run 999" in content["error"]
    content, _ = _request(table, sent, "edit", run="7", column="comment", value="x")
    assert "run is a run number" in content["error"]
    with labshelf.open(table.shelf.root, mode="r") as readonly:
        viewer = RunTable(readonly.runs)
        assert viewer.editable == []
        sent = _capture(viewer)
        content, _ = _request(viewer, sent, "edit", run=1, column="comment", value="x")
        assert "read-only" in content["error"] and "mode='rw'" in content["error"]
        viewer.close()
    assert table.shelf.runs.where(run=[1]).to_pandas().loc[1, "comment"] is None


def test_selection_is_a_run_view(table: RunTable) -> None:
    sent = _capture(table)
    assert table.selected.numbers() == []
    _browser_sets(table, selected_runs=[9, 2, 5])
    selected = table.selected
    assert isinstance(selected, labshelf.RunView) and selected.numbers() == [2, 5, 9]
    assert list(selected.to_pandas()["count"]) == [1, 4, 8]
    # Shift-click over rows the browser never loaded: it asks for their numbers.
    table.sort = [["count", False]]
    content, _ = _request(table, sent, "numbers", offset=10, limit=3)
    assert content["result"] == [50, 49, 48]


def _add_run_elsewhere(shelf: labshelf.Shelf) -> None:
    """A run written by another process, as an experiment would."""
    code = textwrap.dedent(
        f"""
        import labshelf
        with labshelf.open({str(shelf.root)!r}) as shelf:
            with shelf.new_run("elsewhere") as run:
                run.put("temperature", 999.0)
                run.put("pressure", 1.5)
            print(run.number)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_version_changes_when_another_process_adds_a_run(table: RunTable) -> None:
    sent = _capture(table)
    table.columns = [c for c in table.columns if c != "note"]  # hidden by the user
    before = table.rpc_version()
    generation = table.generation
    assert table.rpc_version() == before and table.generation == generation  # nothing changed
    _add_run_elsewhere(table.shelf)
    content, _ = _request(table, sent, "version")
    after = content["result"]
    assert after["version"] != before["version"] and after["generation"] > generation
    assert table.count == 61
    assert "pressure" in table.all_columns and "pressure" in table.columns  # a new column shows
    assert "note" not in table.columns  # a hidden one stays hidden
    last = _rows(table, sent, 60, 100)
    assert last["runs"] == [61] and _column(last, "temperature") == [999.0] and _column(last, "pressure") == [1.5]
    # Edits count as changes too (other viewers see them on their next poll).
    version = table.rpc_version()["version"]
    with labshelf.open(table.shelf.root) as other:
        other.annotate(3, comment="seen elsewhere")
    assert table.rpc_version()["version"] != version
    assert _column(_rows(table, sent, 2, 1), "comment") == ["seen elsewhere"]


def test_ten_thousand_runs(shelf: labshelf.Shelf) -> None:
    _bulk(shelf, 10_000)
    table = RunTable(shelf.runs)
    sent = _capture(table)
    assert table.count == 10_000
    assert _rows(table, sent, 9_900, 100)["runs"] == list(range(9_901, 10_001))
    table.sort = [["temperature", False]]
    page = _rows(table, sent, 5_000, 100)
    assert page["runs"] == list(range(5_000, 4_900, -1))
    assert _column(page, "temperature")[:2] == [500.0, 499.9]
    table.filter = "temperature > 999.55"
    assert table.count == 5 and _rows(table, sent)["runs"] == [10_000, 9_999, 9_998, 9_997, 9_996]
    table.close()


def test_protocol_errors_are_one_line_answers(table: RunTable) -> None:
    sent = _capture(table)
    content, _ = _request(table, sent, "nope")
    assert content == {"id": content["id"], "error": "RunTable has no request 'nope'"}
    content, _ = _request(table, sent, "rows", offset=-1)
    assert "offset is an int >= 0" in content["error"]
    content, _ = _request(table, sent, "rows", offset=0, limit=10, extra=1)
    assert "unexpected keyword argument 'extra'" in content["error"]
    # A whole custom message through the comm, as the browser sends it.
    table._handle_msg(
        {"content": {"data": {"method": "custom", "content": {"id": "c1", "method": "rows", "params": {"limit": 2}}}}, "buffers": []}
    )
    data, _ = sent[-1]
    assert data["content"]["id"] == "c1" and data["content"]["result"]["runs"] == [1, 2]


def test_construction_checks_its_arguments(filled: labshelf.Shelf) -> None:
    with pytest.raises(TypeError, match="RunTable shows a RunView"):
        RunTable([1, 2])  # type: ignore[arg-type]
    with pytest.raises(traitlets.TraitError, match="page_size is between 1 and 1000"):
        RunTable(filled.runs, page_size=0)
    with pytest.raises(traitlets.TraitError, match="poll is a number of seconds >= 0"):
        RunTable(filled.runs, poll=-1)
    table = RunTable(filled.runs.query("count < 10"), filter="count > 5", sort=[["count", False]])
    assert table.count == 4 and table.view.numbers() == [10, 9, 8, 7]
    assert repr(table) == f"<RunTable 4 runs of {filled.where}>"
    table.close()


def test_fallback_html_is_the_run_view_repr(table: RunTable) -> None:
    table.filter = "count < 3"
    bundle = table._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert data["text/html"] == table.view._repr_html_()
    assert "3 runs x" in data["text/html"] and "<img src='data:image/png;base64," in data["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in data


# -- what the columns mean, and the logbook ----------------------------------------------------------


def test_metadata_and_tags_travel_beside_stored_values(filled: labshelf.Shelf) -> None:
    filled.describe("temperature", unit="K", precision=1, title="Cryo/temperature", description="cold finger")
    filled.tag_columns("count", ["counters"])
    widget = RunTable(filled.runs, poll=0)
    try:
        sent = _capture(widget)
        assert widget.meta["temperature"] == {"unit": "K", "precision": 1, "title": "Cryo/temperature",
                                              "description": "cold finger", "heading": "temperature [K]", "group": "Cryo"}
        assert widget.column_tags == {"count": ["counters"]}
        rows = _rows(widget, sent, 0, 3)
        assert _column(rows, "temperature") == [295.0, 295.1, 295.2]  # stored values; table.js rounds them
        # The query language compares stored values too.
        widget.filter = "temperature > 295.05"
        assert widget.count == 59 and widget.error == ""
    finally:
        widget.close()


def test_a_describe_refreshes_the_headers_on_the_next_version_check(table: RunTable) -> None:
    sent = _capture(table)
    assert "count" not in table.meta
    table.shelf.describe("count", unit="Hz", scale=1e3, title="Rates/count")
    table.shelf.tag_columns("count", ["rates"])
    generation = table.generation
    content, _ = _request(table, sent, "version")
    assert table.meta["count"] == {"unit": "Hz", "scale": 1000.0, "title": "Rates/count", "heading": "count [Hz]",
                                   "group": "Rates"}
    assert table.column_tags == {"count": ["rates"]} and content["result"]["generation"] == table.generation > generation
    # The new traits reached the browser as a state update.
    updates = [d["state"] for d, _ in sent if d["method"] == "update"]
    assert any("meta" in state for state in updates) and any("column_tags" in state for state in updates)


def test_logbook_entries_are_placed_among_the_views_rows(table: RunTable) -> None:
    sent = _capture(table)
    shelf = table.shelf
    frame = shelf.runs[["start"]].to_pandas(thumbnails=False)
    t = {int(n): stamp.timestamp() for n, stamp in frame["start"].items()}
    between = shelf.log("refill", at=(t[10] + t[11]) / 2)
    last = shelf.log("end of shift", at=t[60] + 5)
    _request(table, sent, "version")
    answer, _ = _request(table, sent, "logbook")
    result = answer["result"]
    assert result["order"] == "run" and result["generation"] == table.generation
    assert [(e["id"], e["row"], e["text"]) for e in result["entries"]] == [(between, 10, "refill"), (last, 60, "end of shift")]
    assert isinstance(result["entries"][0]["time"], float) and result["entries"][0]["user"]
    # Newest first: the places turn round with the sort.
    table.sort = [["run", False]]
    result = _request(table, sent, "logbook")[0]["result"]
    assert [(e["id"], e["row"]) for e in result["entries"]] == [(last, 0), (between, 50)]
    # Sorted by another column, entries have no place.
    table.sort = [["temperature", True]]
    result = _request(table, sent, "logbook")[0]["result"]
    assert result == {"generation": table.generation, "order": None, "entries": []}
    # The toggle is a trait the browser sets.
    assert table.logbook is False
    _browser_sets(table, logbook=True)
    assert table.logbook is True


# -- the JavaScript half -------------------------------------------------------------------------

NODE = shutil.which("node")


@pytest.fixture
def table_module(tmp_path: Path) -> Path:
    if NODE is None:
        pytest.fail("node is needed to check the widgets' JavaScript (apt-get install nodejs)")
    path = tmp_path / "table.mjs"
    path.write_text(esm("table.js"), encoding="utf-8")
    return path


def _node(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(NODE), *args], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_javascript_parses(table_module: Path) -> None:
    _node("--check", str(table_module))
    source = table_module.read_text()
    assert "export default" in source and "makeRequester(model)" in source
    # The selectors of the DOM contract the browser tests rely on.
    for selector in ("ls-count", "ls-filter", "ls-error", "ls-scroll", "ls-thumb", "ls-edit", "ls-selected",
                     "ls-columns", "columnToggle", "aria-sort", "labshelf-runtable", "labshelf-widget",
                     "ls-logbook-toggle", "ls-log", "ls-groups", "ls-tag-filter"):
        assert selector in source, selector


def test_javascript_column_layout_and_short_times(table_module: Path) -> None:
    script = textwrap.dedent(
        f"""
        import {{ layoutColumns, moveColumn, shortTime }} from {table_module.as_uri()!r};
        const now = new Date(2023, 10, 20, 9, 0, 0);
        const out = {{
          // remembered: hidden "b", moved "d" first; "e" is new since, "x" is gone
          layout: layoutColumns({{columns: ["d", "a", "c", "x"], known: ["a", "b", "c", "d", "x"]}}, ["a", "b", "c", "d", "e"]),
          moved: [moveColumn(["a", "b", "c"], "c", "a"), moveColumn(["a", "b", "c"], "a", null), moveColumn(["a", "b", "c"], "a", "c")],
          times: [shortTime(1700000000.5, now), shortTime(1600000000, now)],
        }};
        console.log(JSON.stringify(out));
        """
    )
    out = json.loads(_node("--input-type=module", "-e", script, env={"TZ": "Europe/Berlin", "PATH": "/usr/bin:/bin"}))
    assert out["layout"] == ["d", "a", "c", "e"]
    assert out["moved"] == [["c", "a", "b"], ["b", "c", "a"], ["b", "a", "c"]]
    assert out["times"] == ["11-14 23:13", "2020-09-13"]


def test_javascript_formats_cells(table_module: Path) -> None:
    script = textwrap.dedent(
        f"""
        import {{ formatCell, formatNumber, editText }} from {table_module.as_uri()!r};
        const out = {{
          numbers: [295, 295.5, 1 / 3, 1234567.89, 1e-7, 0.00012345678, 0, "inf"].map(formatNumber),
          time: formatCell("time", 1700000000.5),
          cells: [formatCell("number", null), formatCell("tags", ["a", "b"]), formatCell("bool", false),
                  formatCell("int", 12), formatCell("text", "x")],
          edits: [editText(["a", "b"]), editText(0.1 + 0.2), editText(null), editText(true)],
        }};
        console.log(JSON.stringify(out));
        """
    )
    out = json.loads(_node("--input-type=module", "-e", script, env={"TZ": "Europe/Berlin", "PATH": "/usr/bin:/bin"}))
    assert out["numbers"] == ["295", "295.5", "0.333333", "1.23457e+6", "1e-7", "0.000123457", "0", "inf"]
    assert out["time"] == "2023-11-14 23:13:20"  # local time: Berlin is UTC+1 in November
    assert out["cells"] == ["", "a, b", "False", "12", "x"]
    assert out["edits"] == ["a, b", "0.30000000000000004", "", "true"]


def test_javascript_scales_headings_groups_and_slots(table_module: Path) -> None:
    script = textwrap.dedent(
        f"""
        import {{ formatCell, scaledText, headingOf, columnGroups, slotMap }} from {table_module.as_uri()!r};
        const delay = {{unit: "ps", scale: 1e-12, precision: 2, heading: "delay [ps]"}};
        const meta = {{delay, a: {{heading: "A", group: "Beam"}}, b: {{heading: "B", group: "Beam"}},
                       c: {{heading: "C [V]", unit: "V"}}, d: {{group: "Det", heading: "d"}}}};
        const slots = slotMap([0, 0, 2], 3);
        const out = {{
          shown: [formatCell("number", 1.2345e-12, delay), scaledText(1.2345e-12, {{scale: 1e-12}}),
                  scaledText(3, {{precision: 3}}), formatCell("int", 1500, {{scale: 1000}}),
                  scaledText(3, {{unit: "V"}}), formatCell("number", "inf", delay), formatCell("number", null, delay),
                  formatCell("number", 0.5, {{scale: 0, precision: 1}})],
          headings: [headingOf("delay", meta), headingOf("x", meta)],
          groups: columnGroups(["x", "a", "b", "c", "d"], meta),
          slots: [slots.total, ...[0, 1, 2, 3, 4, 5].map((s) => slots.find(s))],
          clamped: slotMap([7], 2).find(2),
        }};
        console.log(JSON.stringify(out));
        """
    )
    out = json.loads(_node("--input-type=module", "-e", script, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"}))
    assert out["shown"] == ["1.23", "1.2345", "3.000", "1.5", None, "inf", "", "0.5"]
    assert out["headings"] == ["delay [ps]", "x"]
    assert out["groups"] == [{"group": None, "span": 1}, {"group": "Beam", "span": 2}, {"group": None, "span": 1},
                             {"group": "Det", "span": 1}]
    # Entries before run 0 (two) and before run 2: log, log, run 0, run 1, log, run 2.
    assert out["slots"] == [6, {"log": 0, "index": -1}, {"log": 1, "index": -1}, {"log": -1, "index": 0},
                            {"log": -1, "index": 1}, {"log": 2, "index": -1}, {"log": -1, "index": 2}]
    assert out["clamped"] == {"log": 0, "index": -1}  # a place beyond the runs: after the last


def test_in_a_kernel_new_runs_arrive_through_the_change_feed(tmp_path: Path) -> None:
    # poll=0: no browser polling at all; only the change feed can tell the
    # table that another process added a run.
    import nbformat
    from nbclient import NotebookClient

    path = tmp_path / "feed.shelf"
    with labshelf.create(path) as shelf, shelf.new_run("first") as run:
        run.put("temperature", 300.0)
    writer = (
        "import subprocess, sys\n"
        "code = 'import labshelf, sys\\ns = labshelf.open(sys.argv[1])\\nwith s.new_run(\"second\") as r: r.put(\"temperature\", 301.0)'\n"
        f"subprocess.run([sys.executable, '-c', code, {str(path)!r}], check=True)"
    )
    cells = [
        f"import labshelf\nfrom labshelf.widgets import RunTable\nshelf = labshelf.open({str(path)!r})\n"
        "table = RunTable(shelf, poll=0)\nprint('BEFORE', table.count, table.generation)",
        writer,
        "import asyncio\nfor _ in range(300):\n    if table.count == 2:\n        break\n    await asyncio.sleep(0.02)\n"
        "print('AFTER', table.count, table.generation)\ntable.close(); shelf.close()",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    text = "".join(o.get("text", "") for cell in notebook.cells for o in cell.outputs)
    before = re.search(r"BEFORE (\d+) (\d+)", text)
    after = re.search(r"AFTER (\d+) (\d+)", text)
    assert before and after, text
    assert int(before[1]) == 1 and int(after[1]) == 2, text
    assert int(after[2]) > int(before[2]), text  # the browser is told to re-fetch
