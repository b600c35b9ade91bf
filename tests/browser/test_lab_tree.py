"""The dataset tree (``%browse``) in a real JupyterLab: expanding a run, previews, the copy-code call."""

from __future__ import annotations

import re
from typing import Any

import pytest
from _lab import Lab, output_text
from playwright.sync_api import expect

import labshelf

pytestmark = pytest.mark.browser

RUN = 3


def toggle(node: Any) -> Any:
    return node.locator(":scope > .ls-row > .ls-toggle")


def label(node: Any) -> Any:
    return node.locator(":scope > .ls-row > .ls-label")


def test_browse_expands_a_run_and_previews_its_datasets(lab: Lab, page: Any) -> None:
    lab.open_notebook(page, "browse.ipynb", ["%load_ext labshelf\n%shelf demo.shelf", "%browse"])
    with labshelf.open(lab.shelf_path, mode="r") as shelf:
        names = [ref.name for ref in shelf.datasets(RUN)]
        temperature = shelf.get("temperature", run=RUN)
    top = sorted({name.split("/")[0] for name in names})  # "scan/x" sits under the group "scan"
    assert {"camera", "scan", "temperature"} <= set(top)

    tree = page.locator(".labshelf-widget.labshelf-tree")
    expect(tree).to_be_visible()
    run = tree.locator(f'[data-node="run/{RUN}"]')
    expect(run).to_be_visible()
    toggle(run).click()
    children = run.locator(":scope > .ls-children > [data-node]")
    expect(children).to_have_count(len(top))
    assert sorted(c.removeprefix(f"run/{RUN}/") for c in children.evaluate_all(
        "(nodes) => nodes.map((n) => n.dataset.node)")) == top

    # A scalar: its value in the preview, and the exact call that loads it.
    leaf = tree.locator(f'[data-node="run/{RUN}/temperature"]')
    expect(leaf.locator(".ls-meta")).not_to_be_empty()
    label(leaf).click()
    expect(leaf).to_have_class(re.compile(r"\bls-selected\b"))
    preview = tree.locator(".ls-preview")
    expect(preview).to_contain_text(str(temperature))
    code = preview.locator(".ls-code")
    expect(code).to_have_text(re.compile(rf"temperature.*run={RUN}"))
    expect(tree.locator("button.ls-copy")).to_be_visible()
    # Run that call in the kernel: it gives the value the preview showed.
    assert output_text(lab.run_cell(page, code.inner_text())).strip() == repr(temperature)

    # An image inside a group: expanding the group, then a decoded thumbnail in the preview.
    group = tree.locator(f'[data-node="run/{RUN}/camera"]')
    toggle(group).click()
    image = tree.locator(f'[data-node="run/{RUN}/camera/image"]')
    expect(image).to_be_visible()
    expect(image.locator(".ls-meta")).to_contain_text("512")
    label(image).click()
    thumb = preview.locator("img")
    expect(thumb).to_be_visible()
    assert thumb.evaluate("(img) => img.complete && img.naturalWidth > 0")
    expect(tree.locator(".ls-error")).to_be_hidden()
