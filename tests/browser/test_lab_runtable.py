"""The run table (``%runs``) in a real JupyterLab: rows, thumbnails, sorting, filtering, editing, new runs.

Selectors follow the DOM contract (/work/briefs/dom.md); what the page shows
is checked against the registry, read from this process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
from _lab import Lab
from playwright.sync_api import expect

import labshelf

pytestmark = pytest.mark.browser

OPEN = ["%load_ext labshelf\n%shelf demo.shelf", "view = %runs"]
#: The table polls for new runs every 2 s by default; leave room for a busy machine.
NEW_RUN_TIMEOUT_MS = 15_000


def runtable(page: Any) -> Any:
    table = page.locator(".labshelf-widget.labshelf-runtable")
    expect(table).to_be_visible()
    return table


def visible_runs(table: Any) -> list[int]:
    return [int(n) for n in table.locator("tbody tr[data-run]").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.run)")]


def expect_runs(table: Any, expected: list[int], timeout: float = 10.0) -> list[int]:
    """Wait until the rows in the DOM are the first runs of ``expected`` (a window of it: virtualised)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = visible_runs(table)
        if shown and shown == expected[: len(shown)]:
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"rows in the page {shown} are not the first of {expected} after {timeout:.0f} s")
        time.sleep(0.1)


def column_values(table: Any, column: str) -> list[str]:
    return table.locator(f'tbody tr[data-run] td[data-column="{column}"]').all_inner_texts()


def test_runs_shows_rows_and_thumbnails(lab: Lab, page: Any) -> None:
    lab.open_notebook(page, "runs.ipynb", OPEN)
    with labshelf.open(lab.shelf_path, mode="r") as shelf:
        total = len(shelf)
        first = shelf.runs.numbers()[:5]
    table = runtable(page)
    expect(table.locator(".ls-count")).to_have_text(f"{total} runs")
    expect(table.locator("tbody tr[data-run]").first).to_be_visible()
    assert visible_runs(table)[:5] == first
    # The demo's camera images show as PNG thumbnails that the browser decoded.
    thumb = table.locator("img.ls-thumb").first
    expect(thumb).to_be_visible()
    assert thumb.evaluate("(img) => img.complete && img.naturalWidth > 0")
    expect(table.locator(".ls-error")).to_be_hidden()


def test_clicking_a_header_sorts(lab: Lab, page: Any) -> None:
    lab.open_notebook(page, "sort.ipynb", OPEN)
    table = runtable(page)
    with labshelf.open(lab.shelf_path, mode="r") as shelf:
        ascending = shelf.runs.sort_values("temperature").numbers()
        descending = shelf.runs.sort_values("temperature", ascending=False).numbers()
    header = table.locator('th[data-column="temperature"]')

    header.click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    expect_runs(table, ascending)
    temps = [float(t) for t in column_values(table, "temperature")]
    assert temps == sorted(temps)

    header.click()
    expect(header).to_have_attribute("aria-sort", "descending")
    expect_runs(table, descending)


def test_filter_reduces_the_count_and_a_bad_filter_shows_an_error(lab: Lab, page: Any) -> None:
    lab.open_notebook(page, "filter.ipynb", OPEN)
    table = runtable(page)
    query = "temperature > 301 and experiment == 'rabi_scan'"
    with labshelf.open(lab.shelf_path, mode="r") as shelf:
        total = len(shelf)
        matching = shelf.runs.query(query).numbers()
    assert 0 < len(matching) < total  # the demo data makes this a real filter
    count = table.locator(".ls-count")
    expect(count).to_have_text(f"{total} runs")

    box = table.locator("input.ls-filter")
    box.fill(query)
    box.press("Enter")
    expect(count).to_have_text(f"{len(matching)} runs")
    assert expect_runs(table, matching) == matching

    # A query that does not parse: a message, and the rows stay as they were.
    box.fill("temperature >> 301")
    box.press("Enter")
    error = table.locator(".ls-error")
    expect(error).to_be_visible()
    assert error.inner_text().strip()
    expect(count).to_have_text(f"{len(matching)} runs")
    assert visible_runs(table) == matching


def test_editing_a_comment_writes_the_registry(lab: Lab, page: Any) -> None:
    lab.open_notebook(page, "edit.ipynb", OPEN)
    table = runtable(page)
    run = 3
    text = f"focus drifted (browser test {time.time():.0f})"
    cell = table.locator(f'tbody tr[data-run="{run}"] td[data-column="comment"]')
    cell.dblclick()
    editor = cell.locator("input.ls-edit")
    expect(editor).to_be_visible()
    editor.fill(text)
    editor.press("Enter")
    expect(editor).to_have_count(0)
    expect(cell).to_have_text(text)

    def comment() -> Any:
        with labshelf.open(lab.shelf_path, mode="r") as shelf:
            return shelf.runs.where(run=run).to_pandas(thumbnails=False)["comment"].iloc[0]

    deadline = time.monotonic() + 10
    while comment() != text and time.monotonic() < deadline:
        time.sleep(0.2)
    assert comment() == text

    # Escape cancels: the registry keeps the saved text.
    cell.dblclick()
    editor = cell.locator("input.ls-edit")
    expect(editor).to_be_visible()
    editor.fill("not saved")
    editor.press("Escape")
    expect(editor).to_have_count(0)
    expect(cell).to_have_text(text)
    assert comment() == text


WRITER = """
import sys
import numpy as np
import labshelf

with labshelf.open(sys.argv[1]) as shelf, shelf.new_run("rabi_scan", {"detuning": 0.0}) as run:
    run.put("temperature", 299.5)
    run.put("camera/image", np.full((64, 64), 400, dtype=np.uint16))
    print(run.number)
"""


def test_a_run_written_by_another_process_appears(lab: Lab, page: Any) -> None:
    lab.open_notebook(page, "live.ipynb", OPEN)
    table = runtable(page)
    with labshelf.open(lab.shelf_path, mode="r") as shelf:
        before = len(shelf)
    count = table.locator(".ls-count")
    expect(count).to_have_text(f"{before} runs")

    written = subprocess.run([sys.executable, "-c", WRITER, str(lab.shelf_path)], capture_output=True, text=True,
                             timeout=60, check=True)
    number = int(written.stdout.strip())
    started = time.monotonic()
    expect(count).to_have_text(f"{before + 1} runs", timeout=NEW_RUN_TIMEOUT_MS)
    # The new run is the last row: scroll there (rows out of view are not in the DOM).
    table.locator(".ls-scroll").evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
    expect(table.locator(f'tbody tr[data-run="{number}"]')).to_be_visible(timeout=NEW_RUN_TIMEOUT_MS)
    print(f"new run {number} shown {time.monotonic() - started:.1f} s after its writer ended")
