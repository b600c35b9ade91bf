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

- **live plot update**: a LivePlot in the page follows a dataset that a
  writer process appends one point to every 0.2 s, the point being the
  writer's ``time.time()`` taken just before ``run.append``; from that time
  to the animation frame after BokehJS received the point (its
  ``ColumnDataSource`` streamed, so painted), read from the same clock in the
  page (``performance.timeOrigin + performance.now()``).  Median of LIVE
  updates.  Its limit is the bokeh path alone: a ``BokehModel`` in the kernel
  whose source an asyncio task streams ``time.time()`` into, the same way.
  ``python benchmarks/bench_browser.py live`` runs only this one.

The limit of the first two is the same first page done by hand in the same kernel
and browser: a cell that selects it with a hand-written SQL query
(``sqlite3``) and displays it as a static HTML table (100 runs x all columns)
or list (100 datasets with kind, shape, dtype, size), timed from executing
that cell to its first row painted.  Both are timed alternately.

The 10,000-run shelf is filled like ``bench_run_table.py`` (its builder,
validated against the public API); the 10,000 datasets go through
``run.put`` (about a second).

Targets: %runs first rows <= 1 s; tree expand <= 300 ms; live plot update <= 150 ms.
"""

from __future__ import annotations

import subprocess
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
#: Live updates timed on each side (in rounds of LIVE_ROUND, alternating), after LIVE_SKIP of each round.
LIVE = 30
LIVE_ROUND = 10
LIVE_SKIP = 2
LIVE_INTERVAL = 0.2

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
                    measure_live(server, page)
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


# -- live plot: Python change to DOM update -------------------------------------------------------------

#: Resolves with the latency (ms) of the next ``count`` points of the bokeh source named ``name``:
#: from the time stamp each point carries as its y value to the frame painted after it arrived.
_TIME_POINTS = """async ({name, count, skip, timeout}) => {
  let source = null;
  for (const doc of window.Bokeh.documents) { source = doc.get_model_by_name(name) || source; }
  if (!source) throw new Error('no bokeh source ' + name);
  let seen = source.data.y.length;
  const out = [];
  let skipped = 0;
  return await new Promise((resolve, reject) => {
    const onData = () => {
      const y = source.data.y;
      if (y.length === seen) return;
      seen = y.length;
      const stamp = y[y.length - 1] * 1000;
      requestAnimationFrame(() => {
        const painted = performance.timeOrigin + performance.now();
        if (skipped < skip) { skipped += 1; return; }
        out.push(painted - stamp);
        if (out.length === count) { stop(); resolve(out); }
      });
    };
    const stop = () => {
      source.streaming.disconnect(onData);
      source.properties.data.change.disconnect(onData);
      clearTimeout(timer);
    };
    source.streaming.connect(onData);
    source.properties.data.change.connect(onData);
    const timer = setTimeout(() => { stop(); reject(new Error('only ' + out.length + ' points of ' + name)); },
                             timeout);
  });
}"""

#: A writer process: one point every INTERVAL s, its y the time just before the append.
_LIVE_WRITER = """
import sys, time, labshelf
shelf = labshelf.open(sys.argv[1])
count, interval = int(sys.argv[2]), float(sys.argv[3])
with shelf.new_run("latency") as run:
    for i in range(count):
        time.sleep(interval)
        run.append("latency/stamp", time.time())
shelf.close()
"""

#: The limit: the same points streamed into a bokeh source by the kernel itself.
_LIMIT_SETUP = """
import asyncio, time
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from jupyter_bokeh.widgets import BokehModel

limit_source = ColumnDataSource({"x": [], "y": []}, name="limit-source")
limit_figure = figure(width=700, height=240, title="limit: bokeh stream from the kernel")
limit_figure.line("x", "y", source=limit_source)
limit_model = BokehModel(limit_figure)

async def limit_feed(count, interval):
    for i in range(count):
        await asyncio.sleep(interval)
        limit_source.stream({"x": [len(limit_source.data["x"])], "y": [time.time()]})

limit_model
"""


def body_live() -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        note(f"skipped: no Chromium at {CHROMIUM} (apt-get install chromium)")
        return
    with scratch(BENCH) as tmp:
        server = LabServer(tmp)
        server.root.mkdir(parents=True)
        server.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                    measure_live(server, page)
                finally:
                    browser.close()
        finally:
            server.stop()


def measure_live(server: LabServer, page: Any) -> None:
    """Python change to DOM update of a LivePlot, beside a bokeh stream from the kernel itself."""
    path = server.root / "live.shelf"
    labshelf.create(path).close()
    lab = Lab(server, None)
    lab.open_notebook(page, "live.ipynb", [
        "import labshelf\nfrom labshelf.widgets import LivePlot\n"
        "live_shelf = labshelf.open('live.shelf', mode='r')\n"
        "live_plot = LivePlot(live_shelf, 'latency/stamp')\nlive_plot",
        _LIMIT_SETUP,
    ])
    page.wait_for_function(
        "() => window.Bokeh && window.Bokeh.documents.some((d) => d.get_model_by_name('limit-source'))"
        " && window.Bokeh.documents.some((d) => d.get_model_by_name('labshelf-live-source'))",
        timeout=TIMEOUT_MS,
    )
    points = LIVE_ROUND + LIVE_SKIP + 10  # more than timed: the timing starts a moment (~1 s) late
    times: dict[str, list[float]] = {"labshelf": [], "limit": []}
    for i in range(-1, LIVE // LIVE_ROUND):  # one warm-up round
        order = ("labshelf", "limit") if i % 2 == 0 else ("limit", "labshelf")
        for side in order:
            if side == "labshelf":
                writer = subprocess.Popen([sys.executable, "-c", _LIVE_WRITER, str(path), str(points),
                                           str(LIVE_INTERVAL)])
                source = "labshelf-live-source"
            else:
                lab.run_cell(page, f"limit_task = asyncio.ensure_future(limit_feed({points}, {LIVE_INTERVAL}))")
                writer = None
                source = "limit-source"
            try:
                ms = page.evaluate(_TIME_POINTS, {"name": source, "count": LIVE_ROUND, "skip": LIVE_SKIP,
                                                  "timeout": TIMEOUT_MS})
            finally:
                if writer is not None:
                    writer.wait(timeout=60)
            if i >= 0:
                times[side] += [t / 1e3 for t in ms]
            if side == "limit":
                lab.run_cell(page, "await limit_task")
    every = sorted(times["labshelf"])
    report(BENCH, "live plot update", median(times["labshelf"]), "s",
           limit=("bokeh stream from the kernel", median(times["limit"])),
           targets=[Target("value", "<=", 0.15, "s")], labshelf_range=spread(times["labshelf"]),
           limit_range=spread(times["limit"]), p90=every[int(0.9 * (len(every) - 1))], updates=len(every))
    note(f"live plot: {len(every)} points appended by another process every {LIVE_INTERVAL} s; "
         f"p90 {every[int(0.9 * (len(every) - 1))] * 1e3:.0f} ms; the limit streams from an asyncio task "
         "in the kernel (no shelf, no subscription)")
    lab.run_cell(page, "live_plot.close()\nlimit_model.close()\nlive_shelf.close()")


if __name__ == "__main__":
    main(BENCH, body_live if sys.argv[1:] == ["live"] else body)
