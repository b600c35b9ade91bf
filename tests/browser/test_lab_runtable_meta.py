"""The run table in a real JupyterLab shows what numbers mean: headings with units, column groups,
cells scaled and rounded, the column chooser's tag filter, and the logbook between the runs.

The shelf is this test's own (the session's demo shelf stays as the other tests expect it);
what the page shows is checked against what this process wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from _lab import Lab, output_text
from playwright.sync_api import expect

import labshelf

pytestmark = pytest.mark.browser

SHELF = "meta.shelf"


def make_shelf(root: Path) -> Path:
    """Three runs with a delay stored in seconds (shown in ps), a plain x, and one log entry between runs 1 and 2."""
    path = root / SHELF
    with labshelf.create(path) as shelf:
        for i in range(3):
            with shelf.new_run("scan") as run:
                run.put("delay", 1.2345e-12 * (i + 1), unit="ps", scale=1e-12, precision=2, title="Timing/delay",
                        description="pump-probe delay")
                run.put("x", float(i))
        shelf.tag_columns("delay", ["timing"])
        frame = shelf.runs[["start"]].to_pandas(thumbnails=False)
        t = [stamp.timestamp() for stamp in frame["start"]]
        shelf.log("beam lost, refill", at=(t[0] + t[1]) / 2)
    return path


def row_order(table: Any) -> list[str]:
    """The tbody rows in order: "run N" and "log: text"."""
    return table.locator("tbody tr[data-run], tbody tr[data-log]").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.run ? `run ${r.dataset.run}` : `log: ${r.querySelector('.ls-log-text').textContent}`)"
    )


def test_units_scaled_cells_groups_tags_and_the_logbook(lab: Lab, page: Any) -> None:
    path = make_shelf(lab.root)
    outputs = lab.open_notebook(page, "meta.ipynb", [
        "import labshelf\nprint(labshelf.__file__)",
        f"from labshelf.widgets import RunTable\nshelf = labshelf.open({SHELF!r})\ntable = RunTable(shelf)\ntable",
    ])
    # The kernel imports the labshelf under test (the worktree's, when PYTHONPATH points there).
    assert Path(output_text(outputs[0]).strip()).resolve() == Path(labshelf.__file__).resolve(), sys.path[:3]

    table = page.locator(".labshelf-widget.labshelf-runtable")
    expect(table).to_be_visible()
    header = table.locator('thead th[data-column="delay"]')
    expect(header).to_have_text("delay [ps]")
    assert header.get_attribute("title").startswith("pump-probe delay")
    expect(table.locator("thead tr.ls-groups th", has_text="Timing")).to_be_visible()
    # Stored 1.2345e-12 (seconds), scale 1e-12, precision 2: "1.23" under "delay [ps]".
    cell = table.locator('tbody tr[data-run="1"] td[data-column="delay"]')
    expect(cell).to_have_text("1.23")
    assert "stored 1.2345e-12" in cell.get_attribute("title")
    expect(table.locator('tbody tr[data-run="3"] td[data-column="delay"]')).to_have_text("3.70")
    expect(table.locator('thead th[data-column="x"]')).to_have_text("x")  # nothing said: the name

    # The chooser lists the columns of a tag.
    table.locator("button.ls-columns").click()
    table.locator("select.ls-tag-filter").select_option("timing")
    expect(table.locator(".ls-columns-panel .ls-column-item")).to_have_count(1)
    expect(table.locator(".ls-columns-panel .ls-column-item")).to_contain_text("delay")
    table.locator("button.ls-columns").click()

    # The logbook toggle: the entry shows as a full-width row between runs 1 and 2.
    expect(table.locator("tr.ls-log")).to_have_count(0)
    table.locator("input.ls-logbook-toggle").check()
    log_row = table.locator("tr.ls-log")
    expect(log_row).to_have_count(1)
    expect(log_row).to_contain_text("beam lost, refill")
    assert row_order(table) == ["run 1", "log: beam lost, refill", "run 2", "run 3"]
    assert output_text(lab.run_cell(page, "print(table.logbook)")).strip() == "True"

    # Newest first, the entry stays between the same runs.
    table.locator('thead th[data-column="run"]').click()
    table.locator('thead th[data-column="run"]').click()
    expect(table.locator('thead th[data-column="run"]')).to_have_attribute("aria-sort", "descending")
    expect(table.locator("tbody tr").nth(1)).to_have_attribute("data-run", "3")
    assert row_order(table) == ["run 3", "run 2", "log: beam lost, refill", "run 1"]

    # Written elsewhere: a new title and a new log entry reach the open table through the change feed.
    with labshelf.open(path) as shelf:
        shelf.describe("delay", title="Timing/pump delay")
        shelf.log("shift ends")
    expect(header).to_have_text("pump delay [ps]", timeout=15_000)
    expect(table.locator("tr.ls-log", has_text="shift ends")).to_have_count(1, timeout=15_000)
    assert row_order(table)[0] == "log: shift ends"  # after the newest run: on top, newest first
