"""notebooks/quickstart.ipynb, as `make demo` opens it, runs in a real JupyterLab and shows everything.

Beyond nbclient (tests/test_notebooks.py), this checks what only a browser
sees: every widget renders, and the bokeh plot draws with inline resources
(no CDN is reachable here; with the CDN default it fails silently).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from _lab import Lab
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def test_quickstart_renders_its_widgets_and_plot(lab: Lab, page: Any) -> None:
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    shutil.copy(QUICKSTART, lab.root / "quickstart.ipynb")
    lab.open_notebook(page, "quickstart.ipynb")

    # Two run tables (all runs, then the query), the tree and the gallery.
    expect(page.locator(".labshelf-runtable")).to_have_count(2)
    for widget in page.locator(".labshelf-runtable").all():
        expect(widget.locator("tbody tr[data-run]").first).to_be_attached()
        expect(widget.locator(".ls-count")).to_have_text(re.compile(r"^\d+ runs$"))
    expect(page.locator(".labshelf-tree [data-node]").first).to_be_attached()
    expect(page.locator(".labshelf-gallery .ls-tile").first).to_be_attached()

    # Bokeh draws into a canvas inside its shadow root (Playwright's CSS reaches into it).
    plot = page.locator(".jp-Cell").last.locator(".jp-OutputArea-output canvas").first
    plot.scroll_into_view_if_needed()
    expect(plot).to_be_visible()
    assert plot.evaluate("(c) => c.width > 0 && c.height > 0")
    bokeh = [p for p in problems if "bokeh" in p.lower() or "could not create a view" in p.lower()]
    assert not bokeh, bokeh
