"""What the run table's pages say about their columns and what they place between their runs:
display metadata and column tags (RunColumns, RunsPage), the logbook's entries by time.

On SQLite and PostgreSQL, through ``to_json()`` and strict JSON as the REST server sends it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import labshelf
from labshelf.browse import Browser, Event
from labshelf.browse.events import events
from labshelf.browse.runs import column_meta, on_page
from labshelf.errors import InvalidParameter, QuerySyntaxError
from labshelf.live import Change
from labshelf.registry.meta import DisplayMeta


def as_json(record: Any) -> Any:
    return json.loads(json.dumps(record.to_json() if hasattr(record, "to_json") else record, allow_nan=False))


@pytest.fixture
def described(shelf: labshelf.Shelf) -> labshelf.Shelf:
    """Four runs: a delay in seconds shown in ps, a grouped pulse energy, a per-channel pmt, a plain x."""
    for i in range(4):
        with shelf.new_run("scan") as run:
            run.put("delay", 1.2345e-12 * (i + 1), unit="ps", scale=1e-12, precision=2, description="pump-probe delay")
            run.put("xgm", 100.0 + i, unit="uJ", title="Beam/XGM mean")
            run.put("pmt", float(i), data_id={"channel": 1})
            run.put("pmt", float(-i), data_id={"channel": 2})
            run.put("x", float(i))
    shelf.describe("pmt", unit="V")
    shelf.describe("pmt", data_id={"channel": 2}, title="Detectors/PMT 2")
    shelf.tag_columns("xgm", ["beam", "xgm"])
    shelf.tag_columns("x", ["scan"])
    shelf.annotate(1, quality=3)
    shelf.describe("quality", title="Notes/quality")
    return shelf


def starts(shelf: labshelf.Shelf) -> dict[int, float]:
    frame = shelf.runs[["start"]].to_pandas(thumbnails=False)
    return {int(n): t.timestamp() for n, t in frame["start"].items()}


# -- display metadata and column tags ------------------------------------------------------------------


def test_run_columns_carry_metadata_and_tags(described: labshelf.Shelf) -> None:
    answer = as_json(Browser(described).run_columns())
    meta = answer["meta"]
    assert meta["delay"] == {"unit": "ps", "scale": 1e-12, "precision": 2, "description": "pump-probe delay",
                             "heading": "delay [ps]"}
    assert meta["xgm"] == {"unit": "uJ", "title": "Beam/XGM mean", "heading": "XGM mean [uJ]", "group": "Beam"}
    # A data ID's record over its name's, field by field.
    assert meta["pmt[channel=1]"] == {"unit": "V", "heading": "pmt[channel=1] [V]"}
    assert meta["pmt[channel=2]"] == {"unit": "V", "title": "Detectors/PMT 2", "heading": "PMT 2 [V]",
                                      "group": "Detectors"}
    assert meta["quality"]["group"] == "Notes"  # a user column described
    assert "x" not in meta and "start" not in meta and "status" not in meta
    assert answer["column_tags"] == {"xgm": ["beam", "xgm"], "x": ["scan"]}
    # The keys a front end had before are all still there.
    assert {"columns", "default_columns", "kinds", "editable", "user_columns"} <= set(answer)


def test_pages_carry_their_columns_metadata_and_keep_stored_values(described: labshelf.Shelf) -> None:
    browser = Browser(described)
    page = as_json(browser.runs(columns=["delay", "x"], limit=4))
    assert set(page["meta"]) == {"delay"} and page["column_tags"] == {"x": ["scan"]}
    delay = [row[0] for row in page["cells"]]
    assert delay == [1.2345e-12 * (i + 1) for i in range(4)]  # stored, never scaled
    assert "log" not in page and "log_order" not in page  # not asked for
    # The query language compares stored values: 2.5e-12 s, not 2.5 ps.
    assert browser.runs("delay > 2.5e-12", columns=["delay"]).runs == (3, 4)
    assert browser.runs("delay > 2.5", columns=["delay"]).runs == ()


def test_metadata_changes_show_on_the_next_page(described: labshelf.Shelf) -> None:
    browser = Browser(described)
    assert "x" not in browser.runs(columns=["x"]).meta
    described.describe("x", unit="mm", precision=1)
    assert browser.runs(columns=["x"]).meta["x"] == {"unit": "mm", "precision": 1, "heading": "x [mm]"}
    described.tag_columns("x", [])
    assert browser.run_columns().column_tags.get("x") is None


def test_column_meta_of_labels_it_cannot_parse() -> None:
    records = {"status": DisplayMeta("status", unit="K"), "spectrum": DisplayMeta("spectrum", unit="V")}
    # A column of a dataset's mean takes the dataset's metadata; the run's own status column has
    # none (a dataset named status shows as "status (dataset)" and has them); labels the parser
    # refuses have none.
    said, tagged = column_meta(records, {"spectrum": ["beam"]}, ["spectrum.mean", "status", "status (dataset)", "a[b"])
    assert said == {
        "spectrum.mean": {"unit": "V", "heading": "spectrum.mean [V]"},
        "status (dataset)": {"unit": "K", "heading": "status (dataset) [K]"},
    }
    assert tagged == {"spectrum.mean": ["beam"]}


# -- the logbook between the runs ----------------------------------------------------------------------


@pytest.fixture
def logged(described: labshelf.Shelf) -> tuple[labshelf.Shelf, dict[str, int]]:
    """Entries before every run (left out), between runs 1 and 2, twice between 3 and 4, after 4."""
    t = starts(described)
    ids = {
        "before": described.log("cooling down", at=t[1] - 3600),
        "1-2": described.log("beam lost", at=(t[1] + t[2]) / 2),
        "3-4 a": described.log("refill", at=t[3] + (t[4] - t[3]) / 3),
        "3-4 b": described.log("beam back", at=t[3] + 2 * (t[4] - t[3]) / 3),
        "after": described.log("end of shift", at=t[4] + 60),
    }
    return described, ids


def test_entries_sit_between_runs_in_run_order(logged: tuple[labshelf.Shelf, dict[str, int]]) -> None:
    shelf, ids = logged
    page = as_json(Browser(shelf).runs(columns=["x"], logbook=True))
    assert page["log_order"] == "run" and page["runs"] == [1, 2, 3, 4]
    placed = [(e["id"], e["row"], e["before"], e["text"]) for e in page["log"]]
    # A note before the shelf's first run shows before it (nothing earlier claims it).
    assert placed == [
        (ids["before"], 0, 0, "cooling down"),
        (ids["1-2"], 1, 1, "beam lost"),
        (ids["3-4 a"], 3, 3, "refill"),
        (ids["3-4 b"], 3, 3, "beam back"),
        (ids["after"], 4, 4, "end of shift"),
    ]
    entry = page["log"][1]
    assert set(entry) == {"id", "time", "text", "user", "row", "before"}
    assert entry["time"].endswith("+00:00") and entry["user"]
    assert page["cells"] == [[0.0], [1.0], [2.0], [3.0]]  # the rows are the runs, unchanged


def test_entries_follow_a_descending_sort_newest_first(logged: tuple[labshelf.Shelf, dict[str, int]]) -> None:
    shelf, ids = logged
    for column in ("start", "run"):
        page = as_json(Browser(shelf).runs(sort=[[column, False]], columns=["x"], logbook=True))
        assert page["runs"] == [4, 3, 2, 1] and page["log_order"] == column
        assert [(e["id"], e["row"]) for e in page["log"]] == [
            (ids["after"], 0), (ids["3-4 b"], 1), (ids["3-4 a"], 1), (ids["1-2"], 3), (ids["before"], 4),
        ]


def test_pages_hold_the_entries_among_their_runs(logged: tuple[labshelf.Shelf, dict[str, int]]) -> None:
    shelf, ids = logged
    browser = Browser(shelf)
    first = as_json(browser.runs(columns=["x"], offset=0, limit=2, logbook=True))
    second = as_json(browser.runs(columns=["x"], offset=2, limit=2, logbook=True))
    assert [e["id"] for e in first["log"]] == [ids["before"], ids["1-2"]]
    # The last page also has what came after its last run; "before" counts within the page.
    assert [(e["id"], e["row"], e["before"]) for e in second["log"]] == [
        (ids["3-4 a"], 3, 1), (ids["3-4 b"], 3, 1), (ids["after"], 4, 2),
    ]
    order, every = browser.logbook()
    assert order == "run" and [e.id for e in every] == [e["id"] for e in first["log"] + second["log"]]
    # Without the first run, what came before run 3 started (and after run 2 did) is not about it.
    order, later = browser.logbook("run >= 3")
    assert [e.id for e in later] == [ids["3-4 a"], ids["3-4 b"], ids["after"]]


def test_a_filter_places_entries_among_the_runs_it_keeps(logged: tuple[labshelf.Shelf, dict[str, int]]) -> None:
    shelf, ids = logged
    page = as_json(Browser(shelf).runs("run != 2 and run != 3", columns=["x"], logbook=True))
    assert page["runs"] == [1, 4]
    assert [(e["id"], e["row"]) for e in page["log"]] == [
        (ids["before"], 0), (ids["1-2"], 1), (ids["3-4 a"], 1), (ids["3-4 b"], 1), (ids["after"], 2),
    ]
    # Runs 1 and 2 only: up to run 3's start (what came later is about later runs).
    page = as_json(Browser(shelf).runs("run <= 2", columns=["x"], logbook=True))
    assert [(e["id"], e["row"]) for e in page["log"]] == [(ids["before"], 0), (ids["1-2"], 1)]
    # Only run 4 kept: what was noted before it started is not about it.
    page = as_json(Browser(shelf).runs("run == 4", columns=["x"], logbook=True))
    assert [e["id"] for e in page["log"]] == [ids["after"]]


def test_other_sorts_place_no_entry(logged: tuple[labshelf.Shelf, dict[str, int]]) -> None:
    shelf, _ids = logged
    page = as_json(Browser(shelf).runs(sort=[["x", False]], columns=["x"], logbook=True))
    assert page["log"] == [] and page["log_order"] is None and page["runs"] == [4, 3, 2, 1]
    # A second key after start still places by start.
    page = as_json(Browser(shelf).runs(sort=[["start", True], ["x", False]], columns=["x"], logbook=True))
    assert page["log_order"] == "start" and len(page["log"]) == 5


def test_log_changes_show_on_the_next_page_and_times_can_be_seconds(
    logged: tuple[labshelf.Shelf, dict[str, int]],
) -> None:
    shelf, ids = logged
    browser = Browser(shelf)
    assert len(browser.runs(columns=["x"], logbook=True).log or ()) == 5
    shelf.edit_log(ids["after"], text="end of shift (edited)")
    shelf.delete_log(ids["1-2"])
    log = browser.runs(columns=["x"], logbook=True, times="epoch").log or ()
    assert [e.text for e in log] == ["cooling down", "refill", "beam back", "end of shift (edited)"]
    assert all(isinstance(e.time, float) for e in log)


def test_bad_logbook_arguments_are_refused(described: labshelf.Shelf) -> None:
    browser = Browser(described)
    with pytest.raises(InvalidParameter, match="logbook is true or false"):
        browser.runs(logbook="yes")  # type: ignore[arg-type]
    with pytest.raises(QuerySyntaxError, match="sort is a list"):
        browser.logbook(sort="start")
    with pytest.raises(InvalidParameter, match="times are"):
        browser.logbook(times="local")
    with pytest.raises(QuerySyntaxError):
        browser.logbook(sort=[["nonexistent", True]])


def test_on_page_edges() -> None:
    from labshelf.browse import LogRow

    rows = [LogRow(i, 0.0, "t", "u", row) for i, row in enumerate([0, 2, 2, 5])]
    assert [e.id for e in on_page(rows, 0, 2, 5)] == [0]
    assert [e.id for e in on_page(rows, 2, 3, 5)] == [1, 2, 3]  # the last page: after its last run too
    assert on_page(rows, 6, 0, 5) == ()


# -- events --------------------------------------------------------------------------------------------


def change(seq: int, kind: str, run: int | None = None, name: str | None = None) -> Change:
    return Change(seq, 0.0, kind, run, name, None, None, None)


def test_metadata_and_log_changes_are_events_of_their_own() -> None:
    batch = [change(1, "describe", name="delay"), change(2, "column_tags", name="xgm"), change(3, "log"),
             change(4, "log"), change(5, "describe", name="delay")]
    assert events(batch, "v") == [
        Event("metadata", None, "delay", "v"), Event("metadata", None, "xgm", "v"), Event("logbook", None, None, "v"),
    ]
    assert as_json(Event("metadata", None, "delay", "v")) == {"kind": "metadata", "run": None, "name": "delay",
                                                              "version": "v"}
