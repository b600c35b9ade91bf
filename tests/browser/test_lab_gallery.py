"""The gallery (``%gallery camera/image``) in a real JupyterLab: one tile per run with the image, the viewer."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from _lab import Lab
from playwright.sync_api import expect

import labshelf
from labshelf.errors import DatasetNotFound

pytestmark = pytest.mark.browser


def runs_with(shelf: Any, name: str) -> list[int]:
    found = []
    for number in shelf.runs.numbers():
        try:
            shelf.find(name, run=number)
        except DatasetNotFound:
            continue
        found.append(number)
    return found


def test_gallery_shows_a_tile_per_run_and_opens_the_viewer(lab: Lab, page: Any) -> None:
    lab.open_notebook(page, "gallery.ipynb", ["%load_ext labshelf\n%shelf demo.shelf", "%gallery camera/image"])
    with labshelf.open(lab.shelf_path, mode="r") as shelf:
        expected = runs_with(shelf, "camera/image")
    assert expected

    gallery = page.locator(".labshelf-widget.labshelf-gallery")
    expect(gallery).to_be_visible()
    tiles = gallery.locator(".ls-tile[data-run]")
    expect(tiles.first).to_be_visible()
    # Tiles load while scrolling: go to the bottom until no more come.
    deadline = time.monotonic() + 20
    while tiles.count() < len(expected) and time.monotonic() < deadline:
        gallery.locator(".ls-scroll").evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
        time.sleep(0.2)
    shown = [int(n) for n in tiles.evaluate_all("(tiles) => tiles.map((t) => t.dataset.run)")]
    assert sorted(shown) == sorted(expected)

    first = gallery.locator(f'.ls-tile[data-run="{expected[0]}"]')
    first.scroll_into_view_if_needed()
    expect(first.locator(".ls-caption")).to_contain_text(f"run {expected[0]}")
    img = first.locator("img")
    expect(img).to_be_visible()
    assert img.evaluate("(img) => img.complete && img.naturalWidth > 0")

    first.click()
    viewer = gallery.locator(".ls-viewer")
    canvas = viewer.locator("canvas")
    expect(canvas).to_be_visible()
    expect(viewer.locator(".ls-colorbar")).to_be_visible()
    # The image arrives after the viewer opens; then the pixel under the mouse is shown.
    expect(viewer.locator(".ls-viewer-note")).to_contain_text("512")
    pixel = viewer.locator(".ls-pixel")
    for step in range(20):
        canvas.hover(position={"x": 20 + step, "y": 30})
        if pixel.inner_text().strip():
            break
        time.sleep(0.1)
    expect(pixel).to_have_text(re.compile(r"^\s*\d+, \d+: \S+"))
    x, y, value = re.match(r"\s*(\d+), (\d+): (.*)", pixel.inner_text()).groups()  # type: ignore[union-attr]
    if not value.startswith("≈"):  # shown at full resolution: the exact pixel of the stored image
        with labshelf.open(lab.shelf_path, mode="r") as shelf:
            image = shelf.get("camera/image", run=expected[0])
        assert float(value) == float(image[int(y), int(x)])
    viewer.locator("button.ls-close").click()
    expect(canvas).to_be_hidden()
    expect(gallery.locator(".ls-error")).to_be_hidden()
