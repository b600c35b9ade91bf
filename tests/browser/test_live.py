"""Live widgets in a real JupyterLab while ``labshelf simulate`` writes the shelf from another process.

The notebook shows a LivePlot of the scan (``scan/counts`` against
``scan/x``), the camera through ``%subscribe camera/image --kind image`` and
the counter through ``%subscribe pmt/rate``.  Checked in the page: the
plot's data source in BokehJS (``Bokeh.documents``) gains points and its
canvas is drawn, the image's frame counter goes up with frames/s above zero,
the pixel value shows under the mouse, the big number changes.  A screenshot
of the running widgets lands in ``tests/artifacts/live_running.png``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _lab import Lab
from playwright.sync_api import expect

import labshelf

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

#: The plot's ColumnDataSource has this name (labshelf/widgets/live.py).
SOURCE = "labshelf-live-source"

#: Points of the first labshelf live source in the page and its title ({points: -1} before BokehJS has it).
POINTS = """(name) => {
  const bokeh = window.Bokeh;
  if (!bokeh || !bokeh.documents) return {points: -1, title: ""};
  for (const doc of bokeh.documents) {
    const source = doc.get_model_by_name(name);
    if (source) {
      const root = doc.roots()[0];
      return {points: source.data.y.length, title: root && root.title ? root.title.text : ""};
    }
  }
  return {points: -1, title: ""};
}"""


@pytest.fixture
def simulator(lab: Lab) -> Iterator[subprocess.Popen[bytes]]:
    """``labshelf simulate`` writing ``simulated.shelf`` in the server's root, stopped (SIGTERM) after the test.

    (Not ``live.shelf``: the quickstart notebook, run by another scenario in
    the same server root, makes that one.)
    """
    path = lab.root / "simulated.shelf"
    labshelf.create(path).close()
    log = (lab.server.base / "simulate.log").open("wb")
    script = Path(sys.executable).parent / "labshelf"
    proc = subprocess.Popen(
        [str(script), "simulate", str(path), "--rate", "20", "--image", "1024", "--frame-rate", "4",
         "--run-length", "30", "--duration", "120", "--seed", "1"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    log.close()
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def frame_number(page: Any) -> int:
    text = page.locator(".labshelf-liveimage .ls-frames").inner_text()
    match = re.fullmatch(r"frame (\d+)", text.strip())
    assert match, text
    return int(match.group(1))


def test_live_plot_and_image_follow_a_simulated_experiment(
    lab: Lab, page: Any, simulator: subprocess.Popen[bytes]
) -> None:
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    lab.open_notebook(page, "live.ipynb", [
        "%load_ext labshelf\n%shelf simulated.shelf --mode r",
        "from labshelf.widgets import LivePlot\n"
        "plot = LivePlot(shelf, 'scan/counts', x='scan/x', run='latest', max_rate=20)\nplot",
        "%subscribe camera/image --kind image",
        "%subscribe pmt/rate --kind number",
    ])
    assert simulator.poll() is None, "labshelf simulate stopped early; see simulate.log"

    # The plot: BokehJS holds the source, and it gains points while the scan runs.
    page.wait_for_function(f"() => ({POINTS})('{SOURCE}').points > 0", timeout=30_000)
    first = page.evaluate(POINTS, SOURCE)
    assert re.fullmatch(r"run \d+ · scan/counts · [\d,]+ points?", first["title"]), first
    page.wait_for_function(
        f"""(before) => {{
          const now = ({POINTS})('{SOURCE}');
          return now.points > before.points || now.title.split(' · ')[0] !== before.title.split(' · ')[0];
        }}""",
        arg=first, timeout=20_000,
    )
    later = page.evaluate(POINTS, SOURCE)
    assert later["points"] > first["points"] or later["title"] != first["title"]
    canvas = page.locator(".labshelf-liveplot canvas").first
    canvas.scroll_into_view_if_needed()
    expect(canvas).to_be_visible()
    assert canvas.evaluate("(c) => c.width > 0 && c.height > 0")

    # The image: frames arrive, the counter goes up, frames/s is above zero.
    image = page.locator(".labshelf-liveimage")
    expect(image.locator(".ls-frames")).to_have_text(re.compile(r"frame [1-9]\d*"), timeout=30_000)
    seen = frame_number(page)
    page.wait_for_function(
        """(seen) => {
          const text = document.querySelector('.labshelf-liveimage .ls-frames').textContent;
          return Number(text.replace('frame ', '')) > seen;
        }""",
        arg=seen, timeout=20_000,
    )
    assert frame_number(page) > seen
    expect(image.locator(".ls-fps")).to_have_text(re.compile(r"^(?!0 )[\d.]+ frames/s$"), timeout=10_000)
    expect(image.locator(".ls-run")).to_have_text(re.compile(r"run \d+"))
    expect(image.locator(".ls-status")).to_be_hidden()
    # A 1024x1024 frame in a 512x512 preview: the value under the mouse is a block mean.
    picture = image.locator("canvas")
    picture.scroll_into_view_if_needed()
    picture.hover()
    expect(image.locator(".ls-pixel")).to_have_text(re.compile(r"^\d+, \d+: ≈ [-\d.e+]+$"))
    expect(image.locator(".ls-scale-low")).not_to_have_text("–")

    # The big number: a value with its time, and it changes.
    number = page.locator(".labshelf-bignumber")
    expect(number.locator(".ls-value")).not_to_have_text("–", timeout=20_000)
    expect(number.locator(".ls-updated")).to_have_text(re.compile(r"updated \d\d:\d\d:\d\d"))
    shown = number.locator(".ls-value").inner_text()
    expect(number.locator(".ls-value")).not_to_have_text(shown, timeout=20_000)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator(".labshelf-liveplot").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "live_running.png"))
    bokeh = [p for p in problems if "bokeh" in p.lower()]
    assert not bokeh, bokeh
    assert simulator.poll() is None, "labshelf simulate stopped early; see simulate.log"
