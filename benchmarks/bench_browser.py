"""Widgets in a real browser: ``%runs`` on 10,000 runs, a tree expand of a run with 10,000 datasets.

A JupyterLab server and Debian's Chromium are started exactly as the browser
tests start them (``tests/browser/_lab.py``).  Times are taken in the page
with ``performance.now()``, so the browser's clock measures both ends:

- **%runs first rows**: from asking JupyterLab to execute a cell ``%runs``
  (the shelf is already open, as after ``%shelf``) to the first
  ``tr[data-run]`` of the new run table laid out with a size, plus one
  animation frame (painted).  That covers the kernel building the widget,
  the widget's JavaScript loading, its request for the first page of rows
  and the rendering.  Median of REPEATS, each a new widget; the very first
  ``%runs`` of the kernel (imports the widget machinery) is printed apart.
- **tree expand**: ``%browse`` on a shelf whose run 1 holds 10,000 datasets;
  from the click on the run's ``.ls-toggle`` to its first child node laid
  out and painted.  Median of REPEATS, each a new widget (so nothing is
  cached in the page).

The limit of each is the same first page done by hand in the same kernel
and browser: a cell that selects it with a hand-written SQL query
(``sqlite3``) and displays it as a static HTML table (100 runs x all columns)
or list (100 datasets with kind, shape, dtype, size), timed from executing
that cell to its first row painted.  Both are timed alternately.

The 10,000-run shelf is filled like ``bench_run_table.py`` (its builder,
validated against the public API); the 10,000 datasets go through
``run.put`` (about a second).

Targets: %runs first rows <= 1 s; tree expand <= 300 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from _common import REPO, Target, main, median, note, now, report, scratch, spread
from bench_run_table import RUNS, Values, fill, validate

# The server and page helpers of the browser tests: one way to start JupyterLab here.
sys.path.insert(0, str(REPO / "tests" / "browser"))
from _lab import CHROMIUM, CHROMIUM_ARGS, Lab, LabServer  # noqa: E402

import labshelf  # noqa: E402

BENCH = "browser"
DATASETS = 10_000
REPEATS = 5
TIMEOUT_MS = 60_000

#: Runs a new cell and resolves when ``selector`` is laid out inside it (and a frame painted).
_TIME_CELL = """async ({source, selector, timeout}) => {
  const app = window.jupyterapp;
  const nb = app.shell.currentWidget.content;
  const index = nb.model.cells.length;
  nb.model.sharedModel.insertCell(index, {cell_type: 'code', source: source});
  while (!nb.widgets[index]) await new Promise((r) => setTimeout(r, 0));
  nb.activeCellIndex = index;
  const node = nb.widgets[index].node;
  const shown = () => {
    const el = node.querySelector(selector);
    if (!el) return false;
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };
  const t0 = performance.now();
  const done = app.commands.execute('notebook:run-cell');
  await new Promise((resolve, reject) => {
    const seen = new MutationObserver(() => { if (shown()) { seen.disconnect(); resolve(); } });
    seen.observe(node, {childList: true, subtree: true, attributes: true});
    setTimeout(() => { seen.disconnect(); reject(new Error('not shown in time: ' + selector)); }, timeout);
  });
  await new Promise((r) => requestAnimationFrame(() => r()));
  const t1 = performance.now();
  await done;
  return {ms: t1 - t0, index: index};
}"""

#: Clicks ``toggle`` in cell ``index`` and resolves when ``child`` is laid out (and a frame painted).
_TIME_CLICK = """async ({index, toggle, child, timeout}) => {
  const node = window.jupyterapp.shell.currentWidget.content.widgets[index].node;
  const shown = () => {
    const el = node.querySelector(child);
    if (!el) return false;
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };
  const button = node.querySelector(toggle);
  if (!button) throw new Error('no ' + toggle);
  const t0 = performance.now();
  button.click();
  await new Promise((resolve, reject) => {
    if (shown()) { resolve(); return; }
    const seen = new MutationObserver(() => { if (shown()) { seen.disconnect(); resolve(); } });
    seen.observe(node, {childList: true, subtree: true, attributes: true});
    setTimeout(() => { seen.disconnect(); reject(new Error('not shown in time: ' + child)); }, timeout);
  });
  await new Promise((r) => requestAnimationFrame(() => r()));
  const ms = performance.now() - t0;
  return {ms: ms, children: node.querySelectorAll(child).length, more: !!node.querySelector('.ls-more')};
}"""

_CLEAR = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  while (nb.model.cells.length > 1) nb.model.sharedModel.deleteCell(nb.model.cells.length - 1);
}"""

#: The limits: the same first page by hand (sqlite3), shown as static HTML.
SETUP = r'''
import html, json, sqlite3
from pathlib import Path
from IPython.display import HTML

def _connect(folder):
    marker = json.loads((Path(folder) / "labshelf.json").read_text())
    return sqlite3.connect(f"file:{Path(folder) / marker['registry']}?mode=ro", uri=True)

def static_runs_page(folder="runs.shelf", limit=100):
    con = _connect(folder)
    runs = con.execute("SELECT number, experiment, status, started, ended FROM runs ORDER BY number LIMIT ?",
                       (limit,)).fetchall()
    numbers = [r[0] for r in runs]
    cells = con.execute(f"SELECT run, name, summary_value, summary_text FROM datasets WHERE run IN "
                        f"({','.join('?' * len(numbers))})", numbers).fetchall()
    con.close()
    names = sorted({c[1] for c in cells})
    grid = {(c[0], c[1]): c[3] if c[3] is not None else c[2] for c in cells}
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ["run", "experiment", "status", "start", "end", *names])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r)
        + "".join(f"<td>{html.escape(str(grid.get((r[0], n), '')))}</td>" for n in names) + "</tr>"
        for r in runs)
    return HTML(f"<table class='static-page'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

def static_children(folder="tree.shelf", run=1, limit=100):
    con = _connect(folder)
    rows = con.execute("SELECT name, kind, shape, dtype, nbytes FROM datasets WHERE run = ? ORDER BY name LIMIT ?",
                       (run, limit)).fetchall()
    con.close()
    items = "".join(f"<li>{html.escape(name)} <span>{kind} {shape or ''} {dtype} {nbytes} B</span></li>"
                    for name, kind, shape, dtype, nbytes in rows)
    return HTML(f"<ul class='static-children'>{items}</ul>")
'''


def build_shelves(root: Path) -> None:
    values = Values(RUNS)
    start = now()
    problems, _learned, fixed = validate(root / "runs.shelf", values)
    fill(root / "runs.shelf", values, fixed)
    note(f"runs.shelf: {RUNS:,} runs x 30 scalars in {now() - start:.1f} s"
         + (f"; BUILDER VALIDATION FAILED: {problems}" if problems else " (builder validated)"))
    start = now()
    with labshelf.create(root / "tree.shelf") as shelf, shelf.new_run("wide", {}) as run:
        for i in range(DATASETS):
            run.put(f"ch{i:05d}", float(i))
    note(f"tree.shelf: run 1 with {DATASETS:,} scalar datasets (public run.put) in {now() - start:.1f} s")


def body() -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        note(f"skipped: no Chromium at {CHROMIUM} (apt-get install chromium)")
        return
    with scratch(BENCH) as tmp:
        server = LabServer(tmp)
        server.root.mkdir(parents=True)
        build_shelves(server.root)
        start = now()
        server.start()
        note(f"JupyterLab ready in {now() - start:.1f} s")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                    measure(server, page)
                finally:
                    browser.close()
        finally:
            server.stop()


def measure(server: LabServer, page: Any) -> None:
    lab = Lab(server, None)
    lab.open_notebook(page, "bench.ipynb", [SETUP + "\n%load_ext labshelf\n%shelf runs.shelf --mode r"])

    def cell(source: str, selector: str) -> tuple[float, int]:
        answer = page.evaluate(_TIME_CELL, {"source": source, "selector": selector, "timeout": TIMEOUT_MS})
        return answer["ms"] / 1e3, answer["index"]

    def close_widgets() -> None:
        # Each %runs leaves a widget polling for new runs in the kernel: end them between rounds.
        lab.run_cell(page, "import ipywidgets\nipywidgets.Widget.close_all()")
        page.evaluate(_CLEAR)

    first_rows = ".labshelf-runtable tr[data-run]"
    cold, _ = cell("%runs", first_rows)
    close_widgets()
    times: dict[str, list[float]] = {"widget": [], "static": []}
    for i in range(-1, REPEATS):  # one warm-up round
        order = ("widget", "static") if i % 2 == 0 else ("static", "widget")
        for side in order:
            if side == "widget":
                t, _ = cell("%runs", first_rows)
            else:
                t, _ = cell("static_runs_page()", "table.static-page tbody tr")
            if i >= 0:
                times[side].append(t)
        close_widgets()

    lab.run_cell(page, "%shelf tree.shelf --mode r")
    tree: dict[str, list[float]] = {"widget": [], "static": []}
    shown: tuple[int, bool] = (0, False)
    for i in range(-1, REPEATS):
        order = ("widget", "static") if i % 2 == 0 else ("static", "widget")
        for side in order:
            if side == "widget":
                _, index = cell("%browse", '[data-node="run/1"] .ls-toggle')
                answer = page.evaluate(_TIME_CLICK, {"index": index, "toggle": '[data-node="run/1"] .ls-toggle',
                                                     "child": '[data-node^="run/1/"]', "timeout": TIMEOUT_MS})
                t = answer["ms"] / 1e3
                shown = (answer["children"], answer["more"])
            else:
                t, _ = cell("static_children()", "ul.static-children li")
            if i >= 0:
                tree[side].append(t)
        close_widgets()

    report(BENCH, "%runs first rows", median(times["widget"]), "s",
           limit=("static HTML page", median(times["static"])), targets=[Target("value", "<=", 1.0, "s")],
           labshelf_range=spread(times["widget"]), limit_range=spread(times["static"]), repeats=REPEATS,
           runs=RUNS)
    report(BENCH, "first %runs of kernel", cold, "s", limit=("static HTML page", median(times["static"])))
    report(BENCH, "tree expand 10k", median(tree["widget"]), "s",
           limit=("static HTML list", median(tree["static"])), targets=[Target("value", "<=", 0.3, "s")],
           labshelf_range=spread(tree["widget"]), limit_range=spread(tree["static"]), repeats=REPEATS,
           datasets=DATASETS)
    note(f"after the expand: {shown[0]} child nodes in the page of {DATASETS:,}, "
         f"a 'more' button {'shown' if shown[1] else 'MISSING'}")
    note("limits: the same first page (100 rows) selected by hand with sqlite3 and shown as static HTML, "
         "timed from executing its cell; the widget figures go from executing %runs / clicking the toggle "
         "to the first row painted")


if __name__ == "__main__":
    main(BENCH, body)
