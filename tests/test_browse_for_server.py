"""What browse answers for the sidebar's server beyond pages and previews: the first screen's
column order, pixel values, annotations, shelf summaries, close matches and change events.

On SQLite and PostgreSQL, through ``to_json()`` and strict JSON as a front end receives them.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
import pytest

import labshelf
from labshelf.browse import Browser, Event
from labshelf.browse.events import events
from labshelf.browse.runs import first_screen
from labshelf.errors import InvalidParameter, InvalidValue, ReadOnlyShelf, RunNotFound
from labshelf.live import Change


def as_json(record: Any) -> Any:
    return json.loads(json.dumps(record.to_json() if hasattr(record, "to_json") else record, allow_nan=False))


@pytest.fixture
def lab(shelf: labshelf.Shelf) -> labshelf.Shelf:
    with shelf.new_run("scan", {"gain": 2}) as run:
        run.put("temperature", 301.25)
        run.put("camera/image", np.arange(48 * 64, dtype=np.uint16).reshape(48, 64))
        run.put("colour", np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3))
        run.put("map", np.arange(300 * 200, dtype=np.float64).reshape(300, 200))  # a data file
        run.put("small", np.arange(6.0).reshape(2, 3))  # inline
        run.put("trace", np.arange(10.0))
    shelf.annotate(1, comment="aligned", quality=3)
    with shelf.new_run("scan") as run:
        run.put("temperature", 302.0)
    return shelf


# -- the first screen -----------------------------------------------------------------------------------


def test_first_screen_order_leads_with_the_data() -> None:
    kinds = {"start": "time", "end": "time", "status": "text", "experiment": "text", "comment": "text", "tags": "tags",
             "quality": "int", "temperature": "number", "camera/image": "image", "status (dataset)": "number"}
    columns, default = first_screen(kinds, ["quality"])
    assert columns == ["status", "start", "end", "experiment", "temperature", "camera/image", "status (dataset)",
                       "comment", "tags", "quality"]
    assert default == [c for c in columns if c != "end"]
    assert first_screen({}, []) == ([], [])
    # Thousands of dataset names: the first ones put on the first screen, every one in the chooser.
    many = {"status": "text", "start": "time", **{f"ch{i:05d}": "number" for i in range(10_000)}, "comment": "text"}
    columns, default = first_screen(many)
    assert len(columns) == 10_003 and default == ["status", "start", *[f"ch{i:05d}" for i in range(24)], "comment"]


def test_run_columns_of_a_shelf(lab: labshelf.Shelf) -> None:
    answer = as_json(Browser(lab).run_columns())
    assert answer["columns"][:4] == ["status", "start", "end", "experiment"]
    assert answer["columns"][4:9] == ["temperature", "camera/image", "colour", "map", "small"]
    assert answer["columns"][-3:] == ["comment", "tags", "quality"]
    assert "end" not in answer["default_columns"] and "end" in answer["columns"]
    assert answer["kinds"]["camera/image"] == "image" and answer["kinds"]["start"] == "time"
    assert answer["editable"] == ["comment", "tags", "quality"]
    assert answer["user_columns"] == {"quality": "int"}
    assert set(answer["columns"]) == set(Browser(lab).column_kinds())


# -- pixels --------------------------------------------------------------------------------------------


def test_pixel_values_at_full_resolution(lab: labshelf.Shelf) -> None:
    browser = Browser(lab)
    assert as_json(browser.pixel("run/1/camera/image", 5, 2)) == {"x": 5, "y": 2, "value": 2 * 64 + 5, "shape": [48, 64]}
    assert as_json(browser.pixel("run/1/colour", 29, 19))["value"] == [((19 * 30 + 29) * 3 + c) % 256 for c in range(3)]
    assert browser.pixel("run/1/map", 199, 299).value == 299 * 200 + 199.0
    assert browser.pixel("run/1/small", 2, 1).value == 5.0


@pytest.mark.parametrize(
    ("node", "x", "y", "says"),
    [
        ("run/1/map", 200, 0, "columns x from 0 to 199 and rows y from 0 to 299"),
        ("run/1/map", 0, -1, "(0, -1) is outside"),
        ("run/1/map", "3", 0, "x is a pixel index"),
        ("run/1/map", 0, True, "y is a pixel index"),
        ("run/1/temperature", 0, 0, "is a scalar"),
        ("run/1/trace", 0, 0, "is a ndarray of shape 10"),
        ("run/1", 0, 0, "is a run"),
    ],
)
def test_pixel_arguments_are_checked(lab: labshelf.Shelf, node: str, x: Any, y: Any, says: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        Browser(lab).pixel(node, x, y)
    assert says in str(caught.value)


# -- annotations ------------------------------------------------------------------------------------------


def test_annotate_answers_the_runs_annotation_cells(lab: labshelf.Shelf) -> None:
    browser = Browser(lab)
    cells = as_json(browser.annotate(2, comment="focus moved", tags=["good", "beam"], columns={"quality": 5, "runs": 1.5}))
    assert cells == {"comment": "focus moved", "tags": ["beam", "good"], "quality": 5, "runs": 1.5}
    page = browser.runs("run == 2", columns=["comment", "tags", "quality", "runs"])
    assert page.cells == [["focus moved", ["beam", "good"], 5, 1.5]]
    assert as_json(browser.annotate(2, comment=None)) == {"comment": None, "tags": ["beam", "good"], "quality": 5, "runs": 1.5}


@pytest.mark.parametrize(
    ("run", "kwargs", "error"),
    [
        (99, {"comment": "x"}, RunNotFound),
        ("2", {"comment": "x"}, InvalidParameter),
        (2, {"tags": "good"}, InvalidValue),
        (2, {"comment": 3}, InvalidValue),
        (2, {"columns": {"quality": "high"}}, InvalidValue),
        (2, {"columns": {"start": 1}}, InvalidValue),
        (2, {"columns": {"bad\x00name": 1}}, InvalidValue),
        (2, {"columns": ["quality"]}, InvalidParameter),
    ],
)
def test_annotate_refuses_what_does_not_fit(lab: labshelf.Shelf, run: Any, kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        Browser(lab).annotate(run, **kwargs)


def test_a_read_only_shelf_refuses_annotate(lab: labshelf.Shelf) -> None:
    with labshelf.open(lab.root, mode="r") as reader, pytest.raises(ReadOnlyShelf):
        Browser(reader).annotate(1, comment="no")
    assert Browser(lab).runs("run == 1", columns=["comment"]).cells == [["aligned"]]


# -- summaries and close matches ---------------------------------------------------------------------------


def test_summary_of_a_shelf(lab: labshelf.Shelf, backend: str) -> None:
    summary = as_json(Browser(lab).summary())
    assert summary["runs"] == 2 and summary["writable"] is True
    assert summary["backend"] == ("sqlite" if backend == "sqlite" else "postgresql")
    assert summary["last_change"].endswith("+00:00") and summary["version"] == Browser(lab).version()


def test_close_matches_of_what_names_nothing(lab: labshelf.Shelf) -> None:
    browser = Browser(lab)
    assert browser.matches("run/7") == ["run/2", "run/1"]
    assert browser.matches("run/1/temprature") == ["run/1/temperature"]
    assert browser.matches("run/1/camera/imag") == ["run/1/camera/image"]
    assert browser.matches("run/1/zzzz") == []
    assert browser.matches("not a node") == [] and browser.matches("") == []


# -- events ----------------------------------------------------------------------------------------------


def change(seq: int, kind: str, run: int | None = 1, name: str | None = None) -> Change:
    return Change(seq, 0.0, kind, run, name, None, None, None)


def test_events_of_a_batch_are_one_per_kind_run_and_name() -> None:
    batch = [change(1, "run_start"), change(2, "put", name="x"), change(3, "append", name="x"), change(4, "put", name="y"),
             change(5, "broadcast", name="live"), change(6, "annotate", name="comment"), change(7, "collection", None, "c"),
             change(8, "run_end")]
    assert events(batch, "v") == [
        Event("run", 1, None, "v"), Event("dataset", 1, "x", "v"), Event("dataset", 1, "y", "v"),
        Event("annotation", 1, "comment", "v"), Event("changed", None, None, "v"), Event("finished", 1, None, "v"),
    ]
    assert as_json(Event("run", 3, None, "v")) == {"kind": "run", "run": 3, "version": "v"}


def feed_threads() -> int:
    return sum(t.name == "labshelf-feed" for t in threading.enumerate())


def test_watch_delivers_events_and_stops_the_feed(lab: labshelf.Shelf) -> None:
    browser = Browser(lab)
    got: list[Event] = []
    arrived = threading.Event()

    def listener(batch: list[Event]) -> None:
        got.extend(batch)
        if any(e.kind == "finished" for e in got):
            arrived.set()

    before = feed_threads()
    stop = browser.watch(listener)
    assert feed_threads() == before + 1
    with lab.new_run("later") as run:
        run.put("temperature", 1.0)
    assert arrived.wait(10), got
    kinds = [(e.kind, e.run, e.name) for e in got]
    assert kinds[:3] == [("run", 3, None), ("dataset", 3, "temperature"), ("finished", 3, None)]
    assert got[-1].version == browser.version()
    stop()
    stop()  # twice is harmless
    deadline = time.monotonic() + 5
    while feed_threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert feed_threads() == before
