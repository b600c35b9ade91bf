"""The Shelves panel in a real JupyterLab: a 10,000-run shelf opened, a run of 10,000 datasets expanded.

JupyterLab (with labshelf.server and the panel of this source tree) and
Debian's Chromium are started as the browser tests start them
(``tests/browser/_lab.py``).  Times are taken in the page with
``performance.now()``, so the browser's clock measures both ends:

- **panel first rows**: from executing the panel's command ``labshelf:open``
  on a shelf of 10,000 runs x 30 scalars (the shelf of
  ``bench_run_table.py``) to the first ``tr[data-run]`` of its run table
  laid out with a size, plus one animation frame (painted).  That covers
  GET shelf (columns), the tab and both views being built, GET runs for the
  first page (100 rows: the default pageSize) and the rendering.  Median of
  REPEATS, each a new tab; the server's very first open of the shelf (it
  opens the shelf and reads its columns) is printed apart.
- **panel tree expand**: a tab on a shelf whose run 1 holds 10,000
  datasets; from the click on the run's ``.ls-toggle`` in the tab's tree to
  its first child node painted (collapsed again between rounds, so every
  round asks the server).  Median of REPEATS.

The limit of each is the REST call it makes, alone, from the same page:
``fetch`` of the same ``runs`` page (the same 100 rows and first-screen
columns) / the same ``children`` page (100 nodes), timed to its JSON parsed.
Both sides are timed alternately.  So the ratio is what the panel adds to
the server's answer: its other request, building the views, painting.

Targets: first rows <= 500 ms; tree expand <= 300 ms.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from _common import REPO, Target, main, median, note, now, report, scratch, spread
from bench_browser import DATASETS, build_shelves  # the same two shelves as the notebook widgets' bench
from bench_run_table import RUNS

# The server and page helpers of the browser tests: one way to start JupyterLab here.
sys.path.insert(0, str(REPO / "tests" / "browser"))
from _lab import CHROMIUM, CHROMIUM_ARGS, LabServer  # noqa: E402

BENCH = "panel"
REPEATS = 7
PAGE = 100
TIMEOUT_MS = 60_000

#: Opens ``shelf`` in the panel and resolves when its first row is laid out (and a frame painted).
_TIME_OPEN = """async ({shelf, timeout}) => {
  const app = window.jupyterapp;
  const id = 'labshelf-view-' + encodeURIComponent(shelf);
  const old = app.shell.widgets('main').find((w) => w.id === id);
  if (old) old.dispose();
  const shown = () => {
    const el = document.querySelector(`[id="${id}"] tbody tr[data-run]`);
    if (!el) return false;
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };
  const t0 = performance.now();
  const opened = app.commands.execute('labshelf:open', {shelf});
  await new Promise((resolve, reject) => {
    const seen = new MutationObserver(() => { if (shown()) { seen.disconnect(); resolve(); } });
    seen.observe(document.body, {childList: true, subtree: true, attributes: true});
    setTimeout(() => { seen.disconnect(); reject(new Error('no row of ' + shelf + ' in time')); }, timeout);
  });
  await new Promise((r) => requestAnimationFrame(() => r()));
  const ms = performance.now() - t0;
  await opened;
  return {ms, rows: document.querySelectorAll(`[id="${id}"] tbody tr[data-run]`).length};
}"""

#: One REST call from the page, timed to its JSON parsed.
_TIME_FETCH = """async ({url}) => {
  const t0 = performance.now();
  const answer = await fetch(url);
  const body = await answer.json();
  const ms = performance.now() - t0;
  if (!answer.ok) throw new Error(body.message || answer.status);
  return {ms, items: (body.runs || body.nodes || []).length};
}"""

#: Collapses run/1 in the tab's tree if open, then clicks its toggle; resolves at its first child painted.
_TIME_EXPAND = """async ({shelf, timeout}) => {
  const tab = document.querySelector(`[id="labshelf-view-${encodeURIComponent(shelf)}"]`);
  const item = () => tab.querySelector('.labshelf-tree [data-node="run/1"]');
  const toggle = () => item().querySelector(':scope > .ls-row > .ls-toggle');
  if (item().classList.contains('ls-open')) toggle().click();
  await new Promise((r) => requestAnimationFrame(() => r()));
  const shown = () => {
    const el = item().querySelector('[data-node^="run/1/"]');
    if (!el) return false;
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };
  const t0 = performance.now();
  toggle().click();
  await new Promise((resolve, reject) => {
    if (shown()) { resolve(); return; }
    const seen = new MutationObserver(() => { if (shown()) { seen.disconnect(); resolve(); } });
    seen.observe(tab, {childList: true, subtree: true, attributes: true});
    setTimeout(() => { seen.disconnect(); reject(new Error('no child of run/1 in time')); }, timeout);
  });
  await new Promise((r) => requestAnimationFrame(() => r()));
  const ms = performance.now() - t0;
  return {ms, children: item().querySelectorAll('[data-node^="run/1/"]').length,
          more: !!item().querySelector('.ls-more')};
}"""


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
    page.goto(f"{server.url}/lab?reset")
    page.wait_for_selector('.jp-SideBar [data-id="labshelf-shelves"]', timeout=TIMEOUT_MS)

    def open_tab(shelf: str) -> tuple[float, int]:
        answer = page.evaluate(_TIME_OPEN, {"shelf": shelf, "timeout": TIMEOUT_MS})
        return answer["ms"] / 1e3, answer["rows"]

    def rest(url: str) -> tuple[float, int]:
        answer = page.evaluate(_TIME_FETCH, {"url": url})
        return answer["ms"] / 1e3, answer["items"]

    # The first-screen columns, as the panel asks for them.
    columns = page.evaluate("async () => (await (await fetch('/labshelf/api/shelf?shelf=runs.shelf')).json())"
                            ".default_columns")
    runs_url = "/labshelf/api/runs?" + urllib.parse.urlencode(
        {"shelf": "runs.shelf", "columns": json.dumps(columns), "offset": 0, "limit": PAGE})
    children_url = "/labshelf/api/children?" + urllib.parse.urlencode(
        {"shelf": "tree.shelf", "node": "run/1", "offset": 0, "limit": PAGE})

    cold, _ = open_tab("runs.shelf")
    times: dict[str, list[float]] = {"panel": [], "rest": []}
    rows = 0
    for i in range(-1, REPEATS):  # one warm-up round
        for side in (("panel", "rest") if i % 2 == 0 else ("rest", "panel")):
            if side == "panel":
                t, rows = open_tab("runs.shelf")
            else:
                t, _ = rest(runs_url)
            if i >= 0:
                times[side].append(t)

    open_tab("tree.shelf")
    tree: dict[str, list[float]] = {"panel": [], "rest": []}
    shown: tuple[int, bool] = (0, False)
    for i in range(-1, REPEATS):
        for side in (("panel", "rest") if i % 2 == 0 else ("rest", "panel")):
            if side == "panel":
                answer = page.evaluate(_TIME_EXPAND, {"shelf": "tree.shelf", "timeout": TIMEOUT_MS})
                t = answer["ms"] / 1e3
                shown = (answer["children"], answer["more"])
            else:
                t, _ = rest(children_url)
            if i >= 0:
                tree[side].append(t)

    report(BENCH, "panel first rows", median(times["panel"]), "s",
           limit=("runs REST call alone", median(times["rest"])), targets=[Target("value", "<=", 0.5, "s")],
           labshelf_range=spread(times["panel"]), limit_range=spread(times["rest"]), repeats=REPEATS, runs=RUNS)
    report(BENCH, "panel first open of shelf", cold, "s", limit=("runs REST call alone", median(times["rest"])))
    report(BENCH, "panel tree expand 10k", median(tree["panel"]), "s",
           limit=("children REST call alone", median(tree["rest"])), targets=[Target("value", "<=", 0.3, "s")],
           labshelf_range=spread(tree["panel"]), limit_range=spread(tree["rest"]), repeats=REPEATS,
           datasets=DATASETS)
    note(f"{rows} rows of {RUNS:,} in the page after the open (virtual scrolling); after the expand "
         f"{shown[0]} child nodes of {DATASETS:,}, a 'more' button {'shown' if shown[1] else 'MISSING'}")
    note(f"limits: the same page ({PAGE} rows, first-screen columns / {PAGE} nodes) fetched alone from the same "
         "page and parsed; the panel figures go from the command / the click to the first row painted")


if __name__ == "__main__":
    main(BENCH, body)
