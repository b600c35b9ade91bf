"""The Shelves panel (labextension/) in a real JupyterLab: no kernel between the page and the shelf.

The sidebar lists the shelves under the server root; a shelf opens in a tab
whose run table and tree are the notebook widgets' views on the REST API of
labshelf.server.  Everything the page shows is checked against the shelf,
read from this process; ``panel.shelf`` (made here) takes the writes, so the
session's ``demo.shelf`` stays as the other browser tests expect it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from _lab import KERNEL_TIMEOUT_MS, Lab, notebook_json
from playwright.sync_api import expect

import labshelf
import labshelf.demo
from labshelf.browse import Browser

pytestmark = pytest.mark.browser

#: A page of JupyterLab with the panel: its sidebar tab appears once the extension loaded.
PANEL_TIMEOUT_MS = 60_000
#: New runs come through the server's events socket; leave room for a busy machine.
LIVE_TIMEOUT_MS = 15_000
PANEL_RUNS = 12
REPO = Path(__file__).resolve().parents[2]
DEMO_SETTINGS = REPO / "labextension" / "demo-settings"


@pytest.fixture(scope="module")
def panel_shelf(lab: Lab) -> Path:
    """``panel.shelf`` under the server root: the shelf these tests write to."""
    path = lab.root / "panel.shelf"
    with labshelf.create(path) as shelf:
        labshelf.demo.build(shelf, runs=PANEL_RUNS, seed=11)
    return path


# -- helpers -------------------------------------------------------------------------------------


def open_lab(lab: Lab, page: Any, path: str = "") -> None:
    page.goto(f"{lab.server.url}/lab{'/tree/' + path if path else ''}?reset")
    try:
        page.wait_for_selector('.jp-SideBar [data-id="labshelf-shelves"]', timeout=PANEL_TIMEOUT_MS)
    except Exception:
        pytest.fail("the Shelves panel's sidebar tab did not appear: is the labextension built (make labextension)? "
                    f"server log:\n{lab.server.log_tail()}")


def open_shelf(page: Any, shelf: str) -> Any:
    """Open ``shelf`` with the panel's command; its tab once the first rows are painted."""
    page.evaluate("(shelf) => window.jupyterapp.commands.execute('labshelf:open', {shelf})", shelf)
    view = page.locator(f'[id="labshelf-view-{shelf}"]')
    expect(view.locator("tbody tr[data-run]").first).to_be_visible()
    return view


def api(lab: Lab, endpoint: str, **params: Any) -> tuple[int, Any]:
    url = f"{lab.server.url}/labshelf/api/{endpoint}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def header(view: Any) -> list[str]:
    return [str(c) for c in view.locator("thead th[data-column]").evaluate_all(
        "(cells) => cells.map((c) => c.dataset.column)")]


def shown_runs(view: Any) -> list[int]:
    return [int(n) for n in view.locator("tbody tr[data-run]").evaluate_all("(rows) => rows.map((r) => r.dataset.run)")]


def expect_runs(view: Any, expected: list[int], timeout: float = 10.0) -> list[int]:
    """Wait until the rows in the DOM are the first of ``expected`` (a window of them: virtualised)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = shown_runs(view)
        if shown and shown == expected[: len(shown)]:
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"rows {shown} are not the first of {expected} after {timeout:.0f} s")
        time.sleep(0.1)


def settings_text(path: Path) -> Any:
    """A .jupyterlab-settings file (JSON with // comments) as JSON."""
    return json.loads("\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith("//")))


def put_settings(lab: Lab, plugin: str, raw: str) -> None:
    request = urllib.request.Request(f"{lab.server.url}/lab/api/settings/{plugin}", method="PUT",
                                     data=json.dumps({"raw": raw}).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status in (200, 204)


def first_screen(path: Path) -> list[str]:
    with labshelf.open(path, mode="r") as shelf:
        return ["run", *Browser(shelf).run_columns().default]


# -- scenarios -------------------------------------------------------------------------------------


def test_sidebar_lists_the_shelves_and_opens_one(lab: Lab, page: Any) -> None:
    with labshelf.open(lab.shelf_path, mode="r") as shelf:
        total = len(shelf)
        numbers = shelf.runs.numbers()
    open_lab(lab, page)
    page.click('.jp-SideBar [data-id="labshelf-shelves"]')
    item = page.locator('.labshelf-panel [data-shelf="demo.shelf"]')
    expect(item).to_be_visible()
    expect(item.locator(".ls-shelf-meta")).to_contain_text(f"{total} runs")

    item.click()
    view = page.locator('[id="labshelf-view-demo.shelf"]')
    expect(view.locator("tbody tr[data-run]").first).to_be_visible()
    expect(item).to_have_class(re.compile(r"\bls-open\b"))
    # The first screen: the server's first-screen columns in order (end only in the chooser).
    assert header(view) == first_screen(lab.shelf_path) and "end" not in header(view)
    expect(view.locator(".ls-count")).to_have_text(f"{total} runs")
    expect_runs(view, numbers)
    thumb = view.locator("img.ls-thumb").first
    expect(thumb).to_be_visible()
    assert thumb.evaluate("(img) => img.complete && img.naturalWidth > 0")
    expect(view.locator(".labshelf-live")).to_have_attribute("data-state", "live")
    # The status at a glance: the cell knows it.
    assert view.locator('tbody td[data-column="status"]').first.get_attribute("data-status") == "finished"


def test_open_shelf_command_takes_a_path_and_says_the_servers_refusal(lab: Lab, page: Any) -> None:
    open_lab(lab, page)
    # From the command palette: "labshelf: open shelf…" asks for the path.
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette-input")
    expect(palette).to_be_visible()
    palette.fill("labshelf: open shelf")
    page.locator('.lm-CommandPalette-item[data-command="labshelf:open"]').first.click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_be_visible()
    dialog.locator("input").fill("demo.shelf")
    dialog.locator("input").press("Enter")
    expect(page.locator('[id="labshelf-view-demo.shelf"] tbody tr[data-run]').first).to_be_visible()

    # A path outside the root: the server's 403 message reaches the user, not a stack trace.
    status, body = api(lab, "shelf", shelf="../elsewhere.shelf")
    assert status in (403, 404) and body["message"]
    said = page.evaluate("""() => window.jupyterapp.commands.execute('labshelf:open', {shelf: '../elsewhere.shelf'})
        .then(() => 'opened', (e) => e.message)""")
    assert said == body["message"]
    toast = page.locator(".Toastify__toast", has_text=body["message"])
    expect(toast.first).to_be_visible()


def test_sort_filter_and_a_bad_filter(lab: Lab, page: Any) -> None:
    query = "temperature > 301 and experiment == 'rabi_scan'"
    bad = "temperature >> 301"
    with labshelf.open(lab.shelf_path, mode="r") as shelf:
        ascending = shelf.runs.sort_values("temperature").numbers()
        descending = shelf.runs.sort_values("temperature", ascending=False).numbers()
        matching = shelf.runs.query(query).sort_values("temperature", ascending=False).numbers()
        with pytest.raises(labshelf.errors.QuerySyntaxError) as raised:
            shelf.runs.query(bad)
    position = raised.value.position
    assert isinstance(position, int) and 0 < len(matching) < len(ascending)
    open_lab(lab, page)
    view = open_shelf(page, "demo.shelf")

    head = view.locator('th[data-column="temperature"]')
    head.click()
    expect(head).to_have_attribute("aria-sort", "ascending")
    expect_runs(view, ascending)
    head.click()
    expect(head).to_have_attribute("aria-sort", "descending")
    expect_runs(view, descending)

    box = view.locator("input.ls-filter")
    box.fill(query)
    box.press("Enter")
    count = view.locator(".ls-count")
    expect(count).to_have_text(f"{len(matching)} runs")
    expect_runs(view, matching)

    # A filter that does not parse: the server's message and where, inline; the rows stay.
    box.fill(bad)
    box.press("Enter")
    error = view.locator(".labshelf-runtable .ls-error")
    expect(error).to_be_visible()
    status, body = api(lab, "runs", shelf="demo.shelf", query=bad)
    assert status == 400 and body["position"] == position
    expect(error).to_contain_text(body["message"])
    expect(error.locator("pre.ls-error-where")).to_have_text(f"{bad}\n{' ' * position}^")
    expect(count).to_have_text(f"{len(matching)} runs")
    assert shown_runs(view) == matching[: len(shown_runs(view))]


def test_tree_of_the_selected_run_and_an_image_pixel(lab: Lab, page: Any) -> None:
    run = 3
    with labshelf.open(lab.shelf_path, mode="r") as shelf:
        image = shelf.get("camera/image", run=run)
    open_lab(lab, page)
    view = open_shelf(page, "demo.shelf")
    view.locator(f'tbody tr[data-run="{run}"] td[data-column="experiment"]').click()
    tree = view.locator(".labshelf-tree")
    top = tree.locator(f'[data-node="run/{run}"]')
    expect(top).to_have_attribute("aria-expanded", "true")
    expect(tree.locator(f'[data-node="run/{run}/camera"]')).to_be_visible()
    # The run's own preview comes with it: its fields and the code that loads it.
    expect(tree.locator(".ls-preview .ls-title")).to_have_text(f"run {run}")
    expect(tree.locator(".ls-preview .ls-code")).to_have_text(f"shelf.run({run})")

    tree.locator(f'[data-node="run/{run}/camera"] > .ls-row .ls-toggle').click()
    tree.locator(f'[data-node="run/{run}/camera/image"] > .ls-row .ls-label').click()
    picture = tree.locator(".ls-preview .ls-picture")
    img = picture.locator("img")
    expect(img).to_be_visible()
    assert img.evaluate("(img) => img.complete && img.naturalWidth > 0")
    expect(picture.locator(".ls-colorbar")).to_be_visible()

    # Point at the image: the value of that pixel, read at full resolution by the server.
    box = img.bounding_box()
    assert box is not None
    pixel = picture.locator(".ls-pixel")
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.45)
    expect(pixel).to_have_attribute("data-x", re.compile(r"^\d+$"), timeout=10_000)
    x, y = int(pixel.get_attribute("data-x") or -1), int(pixel.get_attribute("data-y") or -1)
    assert abs(x - 0.5 * image.shape[1]) <= 2 and abs(y - 0.45 * image.shape[0]) <= 2
    assert json.loads(pixel.get_attribute("data-value") or "null") == int(image[y, x])
    expect(pixel).to_contain_text(f"x {x}, y {y}: {int(image[y, x])}")
    # A click keeps its value while the mouse moves on over the image.
    page.mouse.click(box["x"] + 3, box["y"] + 3)
    expect(pixel).to_have_attribute("data-y", re.compile(r"^[0-9]$"), timeout=10_000)
    pinned = (pixel.get_attribute("data-x"), pixel.get_attribute("data-y"))
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.9)
    page.wait_for_timeout(300)
    assert (pixel.get_attribute("data-x"), pixel.get_attribute("data-y")) == pinned


def test_editing_comment_and_tags_writes_the_registry(lab: Lab, page: Any, panel_shelf: Path) -> None:
    run = 2
    text = f"checked in the panel ({time.time():.0f})"
    open_lab(lab, page)
    view = open_shelf(page, "panel.shelf")
    for column, typed, shown in [("comment", text, text), ("tags", " good, panel , good", "good, panel")]:
        cell = view.locator(f'tbody tr[data-run="{run}"] td[data-column="{column}"]')
        cell.dblclick()
        editor = cell.locator("input.ls-edit")
        expect(editor).to_be_visible()
        editor.fill(typed)
        editor.press("Enter")
        expect(editor).to_have_count(0)
        expect(cell).to_have_text(shown)
    with labshelf.open(panel_shelf, mode="r") as shelf:
        row = shelf.runs.where(run=run).to_pandas(thumbnails=False).iloc[0]
    assert row["comment"] == text and list(row["tags"]) == ["good", "panel"]
    # The comment column, narrow while empty, is wide now that a row has one.
    assert view.locator('thead th[data-column="comment"]').evaluate("(th) => th.offsetWidth") > 150


def test_insert_into_notebook_and_run_the_cell(lab: Lab, page: Any, panel_shelf: Path) -> None:
    run = 4
    with labshelf.open(panel_shelf, mode="r") as shelf:
        value = shelf.get("temperature", run=run)
    lab.open_notebook(page, "insert.ipynb", ["first = 1", "last = 2"])
    page.evaluate("() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 0; }")
    view = open_shelf(page, "panel.shelf")
    view.locator(f'tbody tr[data-run="{run}"] td[data-column="experiment"]').click()
    tree = view.locator(".labshelf-tree")
    tree.locator(f'[data-node="run/{run}/temperature"] > .ls-row .ls-label').click()
    expect(tree.locator(".ls-preview .ls-code")).to_have_text(f"shelf.get('temperature', run={run})")
    status, snippet = api(lab, "code", shelf="panel.shelf", node=f"run/{run}/temperature")
    assert status == 200
    code = f"{snippet['setup']}\n{snippet['code']}"

    # Copy: the same code on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.server.url)
    tree.locator(".ls-preview button.ls-copy").click()
    expect(tree.locator(".ls-preview button.ls-copy")).to_have_text("copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == code

    tree.locator(".ls-preview button.ls-insert").click()
    expect(tree.locator(".ls-preview button.ls-insert")).to_have_text("inserted")
    cells = page.evaluate("""() => {
        const panel = window.jupyterapp.shell.widgets('main').find((w) => w.context && w.context.path === 'insert.ipynb');
        return panel.content.model.sharedModel.cells.map((c) => [c.cell_type, c.getSource()]);
    }""")
    # Below the current cell (the first), as a code cell with the exact code of GET code.
    assert cells == [["code", "first = 1"], ["code", code], ["code", "last = 2"]]

    outputs = page.evaluate("""async () => {
        const app = window.jupyterapp;
        const panel = app.shell.widgets('main').find((w) => w.context && w.context.path === 'insert.ipynb');
        app.shell.activateById(panel.id);
        panel.content.activeCellIndex = 1;
        await app.commands.execute('notebook:run-cell');
        return panel.content.widgets[1].model.outputs.toJSON();
    }""")
    shown = [o for o in outputs if o.get("output_type") == "execute_result"]
    assert shown and "".join(shown[0]["data"]["text/plain"]) == repr(value), outputs

    # "Insert table": the run table as shown, filter included, below the current cell.
    box = view.locator("input.ls-filter")
    box.fill("temperature > 300 and 'x' not in tags")
    box.press("Enter")
    view.locator(".labshelf-insert-table button, button.labshelf-insert-table").first.click()
    expected = f'{snippet["setup"]}\nview = shelf.runs.query("temperature > 300 and \'x\' not in tags")\nview'
    page.wait_for_function("""(code) => {
        const panel = window.jupyterapp.shell.widgets('main').find((w) => w.context && w.context.path === 'insert.ipynb');
        return panel.content.model.sharedModel.cells.some((c) => c.getSource() === code);
    }""", arg=expected, timeout=10_000)
    compile(expected, "inserted", "exec")


def test_a_run_written_by_another_process_appears_live(lab: Lab, page: Any, panel_shelf: Path) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    open_lab(lab, page)
    view = open_shelf(page, "panel.shelf")
    with labshelf.open(panel_shelf, mode="r") as shelf:
        before = len(shelf)
    count = view.locator(".ls-count")
    expect(count).to_have_text(f"{before} runs")
    expect(view.locator(".labshelf-live")).to_have_attribute("data-state", "live")
    # Nothing polls: while the shelf is quiet the page asks nothing.
    page.wait_for_timeout(1500)
    asked = len([u for u in requests if "/labshelf/api/" in u])
    page.wait_for_timeout(1500)
    assert len([u for u in requests if "/labshelf/api/" in u]) == asked

    writer = (
        "import sys, labshelf\n"
        "with labshelf.open(sys.argv[1]) as shelf, shelf.new_run('rabi_scan') as run:\n"
        "    run.put('temperature', 299.5)\n"
        "    run.put('written_elsewhere', 7)\n"
        "    print(run.number)\n"
    )
    done = subprocess.run([sys.executable, "-c", writer, str(panel_shelf)], capture_output=True, text=True,
                          timeout=60, check=True)
    number = int(done.stdout.strip())
    started = time.monotonic()
    expect(count).to_have_text(f"{before + 1} runs", timeout=LIVE_TIMEOUT_MS)
    view.locator(".labshelf-runtable .ls-scroll").evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
    row = view.locator(f'tbody tr[data-run="{number}"]')
    expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    # Its new dataset is a new column, shown at once.
    expect(row.locator('td[data-column="written_elsewhere"]')).to_have_text("7")
    print(f"new run {number} shown {time.monotonic() - started:.1f} s after its writer ended")
    # The sidebar's count keeps up too.
    page.click('.jp-SideBar [data-id="labshelf-shelves"]')
    expect(page.locator('.labshelf-panel [data-shelf="panel.shelf"] .ls-shelf-meta')).to_contain_text(
        f"{before + 1} runs", timeout=LIVE_TIMEOUT_MS)


def test_columns_reordered_and_hidden_are_remembered_per_shelf(lab: Lab, page: Any, panel_shelf: Path) -> None:
    default = first_screen(panel_shelf)
    open_lab(lab, page)
    view = open_shelf(page, "panel.shelf")
    assert header(view)[:4] == default[:4]
    # Drag "experiment" onto the left edge of "status": it moves before it.
    view.locator('th[data-column="experiment"]').drag_to(view.locator('th[data-column="status"]'),
                                                         target_position={"x": 3, "y": 8})
    expect(view.locator("thead th[data-column]").nth(1)).to_have_attribute("data-column", "experiment")
    # In the chooser: move "temperature" earlier, hide "pressure", show "end" (it comes after start).
    view.locator("button.ls-columns").click()
    chooser = view.locator(".ls-columns-panel")
    chooser.locator('button[data-move="-1"][data-column="temperature"]').click()
    chooser.locator('input[data-column-toggle="pressure"]').uncheck()
    chooser.locator('input[data-column-toggle="end"]').check()
    chosen = header(view)
    assert "pressure" not in chosen and chosen.index("end") == chosen.index("start") + 1
    assert chosen[1:3] == ["experiment", "status"]
    assert chosen.index("temperature") < default.index("temperature")
    with labshelf.open(panel_shelf, mode="r") as shelf:
        expect_runs(view, shelf.runs.numbers())  # the rows came back with the new columns
    expect(view.locator('tbody tr[data-run="1"] td[data-column="end"]')).not_to_have_text("")

    # A new page (the same browser profile): the shelf opens as it was left.
    page.reload()
    page.wait_for_selector('.jp-SideBar [data-id="labshelf-shelves"]', timeout=KERNEL_TIMEOUT_MS)
    view = open_shelf(page, "panel.shelf")
    assert header(view) == chosen
    # Another shelf keeps its own first screen.
    other = open_shelf(page, "demo.shelf")
    assert header(other) == first_screen(lab.shelf_path)
    # Reset: the first screen again, and nothing remembered.
    page.click('.lm-TabBar-tab[data-id="labshelf-view-panel.shelf"]')
    view.locator("button.ls-columns").click()
    view.locator(".ls-columns-panel button.ls-reset-columns").click()
    assert header(view) == first_screen(panel_shelf)
    assert page.evaluate("() => localStorage.getItem('labshelf.columns.shelf:panel.shelf')") is None


def test_make_demo_opens_the_demo_shelf_beside_the_notebook(lab: Lab, page: Any) -> None:
    # The wiring: `make demo` starts JupyterLab on notebooks/ with settings of its own, copied from
    # labextension/demo-settings (shown by a dry run, which runs nothing).
    make = shutil.which("make")
    if make is None:
        pytest.fail("make is needed to check the demo's wiring (apt-get install make)")
    dry = subprocess.run([make, "-n", "demo"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "labshelf demo notebooks/demo.shelf" in dry
    assert "cp -R labextension/demo-settings .demo-lab/user-settings" in dry
    for option in ("--ServerApp.root_dir=notebooks", "--LabApp.default_url=/lab/tree/quickstart.ipynb",
                   "--LabApp.user_settings_dir=.demo-lab/user-settings"):
        assert option in dry, option
    notification = settings_text(DEMO_SETTINGS / "@jupyterlab/apputils-extension/notification.jupyterlab-settings")
    assert notification == {"fetchNews": "false", "checkForUpdates": False}
    panel_settings = DEMO_SETTINGS / "labshelf" / "plugin.jupyterlab-settings"
    assert settings_text(panel_settings) == {"openShelves": ["demo.shelf"]}  # notebooks/demo.shelf below the root

    # In the browser: with those settings, the shelf opens at start, beside the notebook the URL opens.
    (lab.root / "beside.ipynb").write_text(json.dumps(notebook_json(["1 + 1"])))
    put_settings(lab, "labshelf:plugin", panel_settings.read_text())
    try:
        page.goto(f"{lab.server.url}/lab/tree/beside.ipynb?reset")
        view = page.locator('[id="labshelf-view-demo.shelf"]')
        expect(view.locator("tbody tr[data-run]").first).to_be_visible(timeout=PANEL_TIMEOUT_MS)
        notebook = page.locator(".jp-NotebookPanel:visible")
        expect(notebook).to_be_visible()
        left, right = notebook.bounding_box(), view.bounding_box()
        assert left is not None and right is not None
        assert left["x"] + left["width"] <= right["x"] + 2, (left, right)  # side by side, not a tab behind
        expect(page.locator(".labshelf-panel")).to_be_visible()
        expect(page.locator(".jp-Notification-Toast, .Toastify__toast")).to_have_count(0)
    finally:
        put_settings(lab, "labshelf:plugin", "{}")


def test_settings_choose_the_first_columns_and_the_page_size(lab: Lab, page: Any) -> None:
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/labshelf/api/runs?" in request.url else None)
    put_settings(lab, "labshelf:plugin", json.dumps({"defaultColumns": ["temperature", "nonesuch", "status"],
                                                     "pageSize": 10}))
    try:
        open_lab(lab, page)
        view = open_shelf(page, "demo.shelf")
        # The columns the settings name, in their order (one the shelf lacks left out).
        assert header(view) == ["run", "temperature", "status"]
        pages = [urllib.parse.parse_qs(urllib.parse.urlsplit(url).query) for url in asked]
        table_pages = [p for p in pages if "run ==" not in p.get("query", [""])[0]]
        assert table_pages and all(p["limit"] == ["10"] for p in table_pages), pages
        assert json.loads(table_pages[0]["columns"][0]) == ["temperature", "status"]
    finally:
        put_settings(lab, "labshelf:plugin", "{}")


def test_panel_shows_units_scaled_cells_and_logbook_rows(lab: Lab, page: Any, panel_shelf: Path) -> None:
    with labshelf.open(panel_shelf) as shelf:
        stored = shelf.runs.where(run=1).to_pandas(thumbnails=False).loc[1, "temperature"]
        shelf.describe("temperature", unit="mK", scale=1e-3, precision=1, title="Cryo/temperature")
        shelf.log("panel note", at=shelf.run(1).record.started + 1e-3)
    open_lab(lab, page)
    view = open_shelf(page, "panel.shelf")
    head = view.locator('thead th[data-column="temperature"]')
    expect(head).to_have_text("temperature [mK]")
    expect(view.locator("thead tr.ls-groups th", has_text="Cryo")).to_be_visible()
    # The REST page carries stored values; the panel's table.js shows them scaled and rounded.
    expect(view.locator('tbody tr[data-run="1"] td[data-column="temperature"]')).to_have_text(f"{stored / 1e-3:.1f}")
    view.locator("input.ls-logbook-toggle").check()
    expect(view.locator("tr.ls-log", has_text="panel note")).to_have_count(1)
    # A describe from elsewhere reaches the open tab through the server's events.
    with labshelf.open(panel_shelf) as shelf:
        shelf.describe("temperature", unit="uK", scale=1e-6)
    expect(head).to_have_text("temperature [uK]", timeout=15_000)
