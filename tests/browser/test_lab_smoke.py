"""The browser test machinery itself: the server, the kernel's Python, a shelf's HTML and a widget round trip."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _lab import Lab, output_text
from playwright.sync_api import expect

import labshelf
from labshelf.runview import HTML_ROWS

pytestmark = pytest.mark.browser

COUNTER = '''
import anywidget, traitlets

class Counter(anywidget.AnyWidget):
    _esm = """
    export default { render({ model, el }) {
      const b = document.createElement("button");
      b.className = "smoke-counter";
      const show = () => { b.textContent = `count ${model.get("value")}`; };
      b.onclick = () => { model.set("value", model.get("value") + 1); model.save_changes(); };
      model.on("change:value", show);
      show();
      el.appendChild(b);
    } }
    """
    value = traitlets.Int(0).tag(sync=True)

counter = Counter()
counter
'''


def test_kernel_shelf_html_and_widget_round_trip(lab: Lab, page: object) -> None:
    outputs = lab.open_notebook(page, "smoke.ipynb", [
        "import sys, labshelf\nprint(sys.executable)",
        "shelf = labshelf.open('demo.shelf', mode='r')\nshelf.runs",
        COUNTER,
    ])
    # The kernel is this venv's Python (the server runs from it), so it imports the labshelf under test.
    assert Path(output_text(outputs[0]).strip()) == Path(sys.executable)

    # The run view's HTML repr: its first rows, with camera thumbnails, and the count of runs.
    with labshelf.open(lab.shelf_path, mode="r") as shelf:
        runs = len(shelf)
    table = lab.cell_output(page, 1).locator("table")
    expect(table).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(min(runs, HTML_ROWS))
    expect(table.locator("tbody img").first).to_be_visible()
    expect(lab.cell_output(page, 1)).to_contain_text(f"{runs} runs")

    # A widget renders, and a click in the browser reaches the kernel.
    button = page.locator("button.smoke-counter")
    expect(button).to_have_text("count 0")
    button.click()
    button.click()
    expect(button).to_have_text("count 2")
    assert output_text(lab.run_cell(page, "print(counter.value)")).strip() == "2"
