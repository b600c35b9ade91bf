"""Live widgets, Python side: LivePlot, LiveImage, BigNumber and the %subscribe magic.

The writer is another process (this file run as a script: ``python
tests/test_widgets_live.py scan PATH N``) or a second Shelf object on the
same shelf, with connections of its own as another process would have.  What
a plot sends to the browser is read from the bokeh document's own change
events (a ``ColumnsStreamedEvent`` carries only the new rows; a
``ColumnDataChangedEvent`` is a full resend); what a LiveImage sends is
kept by overriding ``send`` (the comm), the frame it sends is compared with
the image on the shelf.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import labshelf
from _live import live_threads
from _live import wait_for as _wait_for

if __name__ != "__main__":
    from _children import Spawn, spawn_fixture
    from labshelf.browse.pictures import block_mean
    from labshelf.kernel_ext import magics
    from labshelf.widgets import BigNumber, LiveImage, LivePlot, live

    spawn = spawn_fixture(__file__)

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


# -- the writer process ----------------------------------------------------------------------------


def write_scan(path: str, points: int) -> None:
    """Child: one run appending ``scan/x`` and ``scan/counts`` point by point, as a scan does."""
    shelf = labshelf.open(path)
    with shelf.new_run("scan", {"points": points}) as run:
        print(f"run {run.number}", flush=True)
        for i in range(points):
            run.append("scan/x", 0.5 * i)
            run.append("scan/counts", float(i * i))
            time.sleep(0.02)
    shelf.close()
    print("done", flush=True)


def write_description(path: str, name: str, fields: str) -> None:
    """Child: ``shelf.describe(name, **fields)`` (fields as JSON), as a colleague at another desk would."""
    import json

    shelf = labshelf.open(path)
    shelf.describe(name, **json.loads(fields))
    shelf.close()
    print("done", flush=True)


# -- helpers -----------------------------------------------------------------------------------------


# Widgets take longer than a bare subscription (bokeh documents, comm messages).
wait_for = functools.partial(_wait_for, timeout=20.0)


def other(shelf: labshelf.Shelf) -> labshelf.Shelf:
    """A second Shelf object on the same shelf: a writer with connections of its own."""
    return labshelf.open(shelf.root)


class Events:
    """What a LivePlot's bokeh document sends to the browser: (event type, rows after it, rows it carried)."""

    def __init__(self, plot: Any) -> None:
        self.plot = plot
        self.seen: list[tuple[str, int, int]] = []
        self.lock = threading.Lock()
        plot.source.document.on_change(self)

    def __call__(self, event: Any) -> None:
        kind = type(event).__name__
        if kind not in ("ColumnsStreamedEvent", "ColumnDataChangedEvent", "ColumnsPatchedEvent"):
            return  # title changes
        carried = len(event.data["y"]) if kind == "ColumnsStreamedEvent" else 0
        with self.lock:
            self.seen.append((kind, len(self.plot.source.data["y"]), carried))

    def kinds(self) -> list[str]:
        with self.lock:
            return [kind for kind, _, _ in self.seen]


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """Widgets made by a test, closed after it (their subscriptions with them)."""
    made: list[Any] = []
    yield made
    for widget in made:
        widget.close()


# -- LivePlot -------------------------------------------------------------------------------------------


def test_plot_streams_exactly_the_points_another_process_appends(
    shelf: labshelf.Shelf, spawn: Spawn, closing: list[Any]
) -> None:
    points = 40
    # Subscribed before the run or the datasets exist: they start arriving when they appear.
    plot = LivePlot(shelf, "scan/counts", x="scan/x", run="latest", max_rate=20)
    closing.append(plot)
    events = Events(plot)
    assert "waiting" in plot.figure.title.text and plot.points == 0
    child = spawn("scan", shelf.root, points)
    child.expect("done")
    assert child.finish() == 0
    wait_for(lambda: plot.points == points, f"{points} points")
    x = shelf.get("scan/x", run=1)
    counts = shelf.get("scan/counts", run=1)
    np.testing.assert_array_equal(plot.source.data["x"], x)
    np.testing.assert_array_equal(plot.source.data["y"], counts)
    assert plot.figure.title.text == f"run 1 · scan/counts · {points} points"

    kinds = events.kinds()
    streams = [e for e in events.seen if e[0] == "ColumnsStreamedEvent"]
    # Whole-data sends happen only for the first values (x and y each arrive once as "value");
    # every later point travelled in a stream.
    assert kinds.count("ColumnDataChangedEvent") <= 2 and len(streams) >= 3, kinds
    replaced = [i for i, kind in enumerate(kinds) if kind == "ColumnDataChangedEvent"]
    assert all(i < kinds.index("ColumnsStreamedEvent") for i in replaced), kinds
    start = events.seen[replaced[-1]][1] if replaced else 0
    # The streams carried each point exactly once, and the data grew by exactly what they carried.
    assert start + sum(carried for _, _, carried in streams) == points
    lengths = [after for _, after, _ in events.seen]
    assert lengths == sorted(lengths) and lengths[-1] == points
    assert plot.subscription is not None and plot.subscription.errors == []


def test_x_and_y_are_paired_by_index(shelf: labshelf.Shelf, closing: list[Any]) -> None:
    writer = other(shelf)
    try:
        run = writer.new_run("scan")
        run.append("scan/counts", np.array([10.0, 11.0]))
        plot = LivePlot(shelf, "scan/counts", x="scan/x", max_rate=100)
        closing.append(plot)
        wait_for(lambda: plot.subscription is not None and plot.subscription.delivered >= 1, "the first value")
        assert plot.points == 0  # no x yet: nothing to draw
        run.append("scan/x", np.array([0.1, 0.2, 0.3, 0.4, 0.5]))
        wait_for(lambda: plot.points == 2, "2 paired points")
        run.append("scan/counts", np.array([12.0, 13.0, 14.0, 15.0]))
        wait_for(lambda: len(plot.source.data["y"]) == 5, "the y values that have an x")
        assert plot.points == 5
        np.testing.assert_array_equal(plot.source.data["x"], [0.1, 0.2, 0.3, 0.4, 0.5])
        np.testing.assert_array_equal(plot.source.data["y"], [10.0, 11.0, 12.0, 13.0, 14.0])
        run.append("scan/x", 0.6)
        wait_for(lambda: plot.points == 6, "the sixth point")
        assert list(plot.source.data["y"]) == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
        run.finish()
    finally:
        writer.close()


def test_a_put_redraws_a_mutate_patches_and_a_new_run_starts_afresh(shelf: labshelf.Shelf, closing: list[Any]) -> None:
    writer = other(shelf)
    try:
        first = writer.new_run("scan")
        first.put("scan/counts", np.arange(4.0))
        plot = LivePlot(shelf, "scan/counts", max_rate=100)
        closing.append(plot)
        events = Events(plot)
        wait_for(lambda: plot.points == 4, "the first value")
        assert list(plot.source.data["x"]) == [0, 1, 2, 3]  # no x dataset: the index

        before = len(events.kinds())
        first.mutate("scan/counts", 2, 20.0)
        wait_for(lambda: len(events.kinds()) > before, "the mutated point")
        assert events.kinds()[before:] == ["ColumnsPatchedEvent"]
        assert list(plot.source.data["y"]) == [0.0, 1.0, 20.0, 3.0]

        first.put("scan/counts", np.array([5.0, 6.0]))
        wait_for(lambda: plot.points == 2, "the new value")
        assert events.kinds()[-1] == "ColumnDataChangedEvent"
        assert list(plot.source.data["y"]) == [5.0, 6.0]
        first.finish()

        second = writer.new_run("scan")
        second.append("scan/counts", np.array([7.0, 8.0, 9.0]))
        wait_for(lambda: plot.figure.title.text.startswith("run 2 "), "the new run")
        wait_for(lambda: plot.points == 3, "the new run's points")
        assert list(plot.source.data["y"]) == [7.0, 8.0, 9.0]
        assert plot.figure.title.text == "run 2 · scan/counts · 3 points"
        second.finish()
    finally:
        writer.close()


def test_a_fixed_run_ignores_newer_runs_and_max_points_keeps_the_newest(
    shelf: labshelf.Shelf, closing: list[Any]
) -> None:
    writer = other(shelf)
    try:
        first = writer.new_run("scan")
        first.append("scan/counts", np.arange(3.0))
        plot = LivePlot(shelf, "scan/counts", run=1, max_rate=100, max_points=4)
        closing.append(plot)
        wait_for(lambda: plot.points == 3, "run 1")
        with writer.new_run("scan") as second:
            second.append("scan/counts", np.arange(100.0, 110.0))
        for value in (3.0, 4.0, 5.0):
            first.append("scan/counts", value)
        wait_for(lambda: plot.points == 6, "run 1's new points")
        # Only the newest 4 are kept in the plot; run 2 never showed.
        assert list(plot.source.data["y"]) == [2.0, 3.0, 4.0, 5.0]
        assert list(plot.source.data["x"]) == [2, 3, 4, 5]
        assert plot.figure.title.text.startswith("run 1 ")
        first.finish()
    finally:
        writer.close()


def test_a_plot_of_something_not_1d_says_so_in_its_title(shelf: labshelf.Shelf, closing: list[Any]) -> None:
    with shelf.new_run("x") as run:
        run.put("grid", np.zeros((3, 4)), kind="ndarray")
        plot = LivePlot(shelf, "grid", max_rate=100)
        closing.append(plot)
        wait_for(lambda: "LivePlot plots 1-D" in plot.figure.title.text, "the problem in the title")
        assert plot.figure.title.text == "grid is of shape (3, 4): LivePlot plots 1-D datasets (BigNumber shows a scalar)"
        assert plot.points == 0


# -- LiveImage -------------------------------------------------------------------------------------------


def frame(n: int) -> np.ndarray:
    """Frame n: 256x192 uint16, different in every frame and pixel."""
    rows, columns = np.mgrid[0:256, 0:192]
    return (n * 1000 + rows * 3 + columns).astype(np.uint16)


def test_image_frames_are_previews_and_never_pile_up(
    shelf: labshelf.Shelf, closing: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No browser answers here: a loaded machine must not make the "nobody answered" reset kick in.
    monkeypatch.setattr(live, "IN_FLIGHT_TIMEOUT", 600.0)
    sent: list[tuple[dict[str, Any], list[bytes]]] = []

    class Captured(LiveImage):
        def send(self, content: Any, buffers: Any = None) -> None:
            sent.append((content, list(buffers or [])))

    image = Captured(shelf, "camera/image", size=(64, 64), max_rate=100)
    closing.append(image)
    assert image.frames == 0 and image.status == "waiting for camera/image in the latest run"
    assert image.rpc_last().result is None
    writer = other(shelf)
    try:
        with writer.new_run("camera") as run:
            for n in range(1, 6):
                run.put("camera/image", frame(n))
                wait_for(lambda n=n: image.frames == n, f"frame {n}")
    finally:
        writer.close()
    assert image.run == 1 and image.status == ""
    # Two frames went out; the browser answered none, so frames 3 and 4 were
    # dropped for the newest, which waits.
    frames = [content["frame"]["frame"] for content, _ in sent if content.get("type") == "frame"]
    assert frames == [1, 2]
    image._handle_custom_msg({"type": "drawn"}, [])  # what the view sends once it drew a frame
    frames = [content["frame"]["frame"] for content, _ in sent if content.get("type") == "frame"]
    assert frames == [1, 2, 5]
    image._handle_custom_msg({"type": "drawn"}, [])
    image._handle_custom_msg({"type": "drawn"}, [])
    assert len(sent) == 3

    info, buffers = sent[-1][0]["frame"], sent[-1][1]
    # 256x192 fits 64x64 by means of 4x4 blocks: 64x48 float32 values.
    assert info["shape"] == [256, 192] and info["factor"] == 4 and info["approx"] is True
    assert (info["height"], info["width"], info["dtype"]) == (64, 48, "float32")
    assert info["run"] == 1 and info["title"] == "run 1 · camera/image"
    pixels = np.frombuffer(buffers[0], dtype="<f4").reshape(64, 48)
    np.testing.assert_allclose(pixels, block_mean(frame(5), 4), rtol=1e-6)
    assert info["vmin"] < info["vmax"] and info["min"] == pytest.approx(float(pixels.min()))
    # A view that opens now starts with the newest frame.
    last = image.rpc_last()
    assert last.result["frame"] == 5 and last.buffers[0] == buffers[0]


def test_image_with_a_fixed_colour_scale_and_a_small_frame(shelf: labshelf.Shelf, closing: list[Any]) -> None:
    with shelf.new_run("camera") as run:
        small = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30)
        run.put("camera/image", small)
        image = LiveImage(shelf, "camera/image", size=(512, 512), vmin=0.0, vmax=100.0, max_rate=100)
        closing.append(image)
        wait_for(lambda: image._last is not None, "the first frame")
    info, pixels = image.rpc_last().result, image.rpc_last().buffers[0]
    # Small enough to go as it is: the exact uint16 values, no averaging.
    assert info["factor"] == 1 and info["approx"] is False and info["dtype"] == "uint16"
    assert (info["vmin"], info["vmax"]) == (0.0, 100.0)
    np.testing.assert_array_equal(np.frombuffer(pixels, dtype="<u2").reshape(40, 30), small)


def test_an_image_widget_on_a_scalar_says_so(shelf: labshelf.Shelf, closing: list[Any]) -> None:
    with shelf.new_run("x") as run:
        run.put("camera/image", 3.5)
        image = LiveImage(shelf, "camera/image", max_rate=100)
        closing.append(image)
        wait_for(lambda: "not an image" in image.status, "the problem")
    assert image.status == "camera/image is of shape (), not an image: LiveImage shows 2-D or HxWx3/4 arrays"
    assert image.frames == 0


# -- BigNumber --------------------------------------------------------------------------------------------


def test_big_number_shows_the_newest_value_its_unit_and_when(shelf: labshelf.Shelf, closing: list[Any]) -> None:
    number = BigNumber(shelf, "pmt/rate", unit="Hz", max_rate=100)
    closing.append(number)
    assert number.text == "–" and number.unit == "Hz" and number.updated == 0.0
    writer = other(shelf)
    try:
        with writer.new_run("count") as run:
            run.put("pmt/rate", 1234.5678)
            wait_for(lambda: number.text == "1234.57", "the first value")
            before = time.time()
            run.put("pmt/rate", 2.0)
            wait_for(lambda: number.text == "2", "the second value")
            assert number.value == 2.0 and number.run == 1 and number.count == 2
            assert before - 1 <= number.updated <= time.time()
            run.put("pmt/rate", 17)
            wait_for(lambda: number.text == "17", "an int")
            run.put("pmt/rate", np.array([1.0, 2.0, 3.25]))
            wait_for(lambda: number.text == "3.25", "the last element of an array")
    finally:
        writer.close()
    assert repr(number).endswith(": 3.25 Hz>")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "–"),
        (True, "True"),
        (1234567, "1,234,567"),
        (np.int64(42), "42"),
        (0.000123456789, "0.000123457"),
        (float("nan"), "NaN"),
        (float("-inf"), "−∞"),
        (1 + 2j, "1+2j"),
        ("ready", "ready"),
        ("x" * 200, "x" * 79 + "…"),
    ],
)
def test_number_formatting(value: Any, text: str) -> None:
    assert live.format_number(value) == text


# -- closing and arguments ------------------------------------------------------------------------------


def test_closing_the_widget_or_the_shelf_stops_the_subscription(tmp_path: Path) -> None:
    shelf = labshelf.create(tmp_path / "a.shelf")
    plot = LivePlot(shelf, "scan/counts")
    image = LiveImage(shelf, "camera/image")
    number = BigNumber(shelf, "pmt/rate")
    subscriptions = [w.subscription for w in (plot, image, number)]
    assert live_threads().count("labshelf-subscription") == 3
    plot.close()
    assert subscriptions[0] is not None and subscriptions[0].closed and plot.subscription is None
    assert plot.comm is None and live_threads().count("labshelf-subscription") == 2
    plot.close()  # twice is fine
    shelf.close()
    assert all(s is not None and s.closed for s in subscriptions)
    assert live_threads() == []
    image.close()
    number.close()
    assert image.comm is None and number.comm is None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda s: LivePlot(s, "a", run=0), "run= takes a run number"),
        (lambda s: LivePlot(s, "a", run="newest"), "run= takes a run number"),
        (lambda s: LivePlot(s, "a", x="a"), "x= names another dataset"),
        (lambda s: LivePlot(s, "a", max_rate=0), "max_rate= takes updates per second"),
        (lambda s: LivePlot(s, "a", max_points=1), "max_points= takes an int >= 2"),
        (lambda s: LiveImage(s, "a", size=(8, 8)), "size= takes (height, width)"),
        (lambda s: LiveImage(s, "a", vmin=1.0), "vmin= and vmax= go together"),
        (lambda s: BigNumber(s, "a", unit=3), "unit= takes text"),
        (lambda s: BigNumber(s, "a", digits=0), "digits= takes an int"),
        (lambda s: BigNumber(s, "bad name!"), "not"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(
    sqlite_shelf: labshelf.Shelf, make: Callable[[Any], Any], message: str
) -> None:
    with pytest.raises(labshelf.errors.ShelfError) as caught:
        make(sqlite_shelf)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert live_threads() == []  # nothing was left subscribed


def test_a_widget_needs_a_shelf() -> None:
    with pytest.raises(TypeError, match="LivePlot watches a dataset of a Shelf, not of a str"):
        LivePlot("demo.shelf", "scan/counts")  # type: ignore[arg-type]


# -- %subscribe ----------------------------------------------------------------------------------------


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real IPython shell with labshelf loaded, working on a shelf of one run."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.delenv("LABSHELF", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    with labshelf.create(tmp_path / "lab.shelf") as made, made.new_run("scan") as run:
        run.put("camera/image", frame(1))
        run.put("scan/counts", np.arange(5.0))
        run.put("pmt/rate", 12.5)
        run.put("pmt", 3, data_id={"channel": 2})
        run.put("grid", np.zeros((3, 4)), kind="ndarray")
        run.put("note", "hello")
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    names_before = set(shell.user_ns)
    shell.run_line_magic("load_ext", "labshelf")
    shell.run_line_magic("shelf", str(tmp_path / "lab.shelf"))
    yield shell
    last = magics.state(shell).last_widget
    if last is not None and hasattr(last, "subscription"):
        last.close()
    shell.run_line_magic("unload_ext", "labshelf")
    state = magics._STATES.pop(shell, None)
    for name in set(shell.user_ns) - names_before:
        value = shell.user_ns.pop(name)
        if hasattr(value, "subscription"):
            value.close()
    if state is not None and state.shelf is not None:
        state.shelf.close()


@pytest.mark.parametrize(
    ("line", "widget"),
    [
        ("camera/image", "LiveImage"),
        ("scan/counts", "LivePlot"),
        ("pmt/rate", "BigNumber"),
        ("note", "BigNumber"),
        ("pmt --data-id channel=2", "BigNumber"),
        ("scan/counts --kind number", "BigNumber"),
        ("not/yet --kind image", "LiveImage"),
        ("not/yet --kind plot --x not/x --run 3", "LivePlot"),
    ],
)
def test_subscribe_picks_the_widget_from_the_kind(
    ip: Any, line: str, widget: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.utils.capture import capture_output

    with capture_output() as shown:
        result = ip.run_cell(f"w = %subscribe {line}", store_history=True)
    assert result.success and capsys.readouterr().err == ""
    made = ip.user_ns["w"]
    assert type(made).__name__ == widget and magics.state(ip).last_widget is made
    assert [WIDGET_MIME in o.data for o in shown.outputs][-1:] == [True]
    if "--run 3" in line:
        assert made.subscription._mode == 3 and made._x_name == "not/x"
    if widget == "BigNumber" and "--kind" not in line:
        wait_for(lambda: made.text != "–", "the current value")
        assert made.text in ("12.5", "hello", "3")


def test_subscribe_as_the_last_line_shows_the_widget_once(ip: Any) -> None:
    from IPython.utils.capture import capture_output

    with capture_output() as shown:
        result = ip.run_cell("%subscribe pmt/rate", store_history=True)
    assert result.success and type(result.result).__name__ == "BigNumber"
    assert [WIDGET_MIME in o.data for o in shown.outputs] == [True]
    # In a later cell it shows again, as any widget.
    with capture_output() as later:
        ip.run_cell("_", store_history=True)
    assert [WIDGET_MIME in o.data for o in later.outputs] == [True]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not/yet", "no run has a dataset 'not/yet'"),
        ("not/yet", "say how to show it with --kind plot|image|number"),
        ("scan/count", "did you mean 'scan/counts'?"),
        ("pmt", "choose one with --data-id"),
        ("grid", "'grid' is a dataset of kind ndarray and shape (3, 4); live views show images, 1-D arrays"),
        ("scan/counts --kind chart", "argument --kind: invalid choice: 'chart'"),
        ("scan/counts --run last", "--run takes latest or a run number, not 'last'"),
        ("camera/image --x scan/x", "--x is for a plot, and 'camera/image' shows as an image"),
        ("scan/counts --kind image --x scan/x", "--x goes with --kind plot, not --kind image"),
        ("scan/counts --data-id channel", "--data-id takes KEY=VALUE pairs, not 'channel'"),
        ("", "the following arguments are required: NAME"),
    ],
)
def test_subscribe_mistakes_are_one_line(ip: Any, line: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = ip.run_cell(f"%subscribe {line}", store_history=True)
    err = capsys.readouterr().err
    assert result.success and result.result is None
    assert err.startswith("labshelf: ") and err.count("\n") == 1, err
    assert message in err, err
    assert live_threads() == []


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "scan":
        write_scan(rest[0], int(rest[1]))
    elif command == "describe":
        write_description(rest[0], rest[1], rest[2])
    else:
        raise SystemExit(f"unknown command {command!r}")


# -- display metadata -------------------------------------------------------------------------------------


def describe_elsewhere(spawn: Spawn, shelf: labshelf.Shelf, name: str, **fields: Any) -> None:
    """``shelf.describe(name, **fields)`` in another process."""
    import json

    child = spawn("describe", shelf.root, name, json.dumps(fields))
    child.expect("done")
    assert child.finish() == 0


def test_plot_axes_say_title_and_unit_and_values_are_scaled(shelf: labshelf.Shelf, spawn: Spawn, closing: list[Any]) -> None:
    shelf.describe("scan/delay", unit="ps", scale=1e-12, title="Scan/Pump delay")
    with shelf.new_run("scan") as run:
        run.put("scan/delay", np.array([1e-12, 2e-12, 3e-12]))
        run.put("scan/counts", np.array([10.0, 20.0, 30.0]))
        plot = LivePlot(shelf, "scan/counts", x="scan/delay", max_rate=100)
        closing.append(plot)
        assert plot.figure.xaxis[0].axis_label == "Pump delay [ps]" and plot.figure.yaxis[0].axis_label == "scan/counts"
        wait_for(lambda: plot.points == 3, "3 points")
        np.testing.assert_allclose(plot.source.data["x"], [1.0, 2.0, 3.0])  # shown in ps
        np.testing.assert_array_equal(plot.source.data["y"], [10.0, 20.0, 30.0])
        # Another process describes y: the axis is relabelled and every point redrawn at the new scale.
        describe_elsewhere(spawn, shelf, "scan/counts", unit="kHz", scale=1000)
        wait_for(lambda: plot.figure.yaxis[0].axis_label == "scan/counts [kHz]", "the new y label")
        wait_for(lambda: list(plot.source.data["y"]) == [0.01, 0.02, 0.03], "y at the new scale")
        run.append("scan/delay", 4e-12)
        run.append("scan/counts", 40.0)
        wait_for(lambda: plot.points == 4, "a fourth point")
        assert list(plot.source.data["y"]) == [0.01, 0.02, 0.03, 0.04]  # streamed rows scaled too
        np.testing.assert_allclose(plot.source.data["x"], [1.0, 2.0, 3.0, 4.0])
    assert plot.subscription is not None and plot.subscription.errors == []
    np.testing.assert_array_equal(shelf.get("scan/counts", run=1), [10.0, 20.0, 30.0, 40.0])  # stored as written


def test_a_plot_of_an_undescribed_name_is_labelled_as_before(shelf: labshelf.Shelf, closing: list[Any]) -> None:
    plot = LivePlot(shelf, "scan/counts", x="scan/x")
    closing.append(plot)
    assert (plot.figure.xaxis[0].axis_label, plot.figure.yaxis[0].axis_label) == ("scan/x", "scan/counts")
    alone = LivePlot(shelf, "trace", data_id={"channel": 2})
    closing.append(alone)
    assert (alone.figure.xaxis[0].axis_label, alone.figure.yaxis[0].axis_label) == ("index", "trace[channel=2]")


def test_big_number_takes_unit_and_format_from_the_metadata(shelf: labshelf.Shelf, spawn: Spawn, closing: list[Any]) -> None:
    shelf.describe("pmt/rate", unit="kHz", scale=1e3, precision=2, title="PMT rate", description="counts per second")
    number = BigNumber(shelf, "pmt/rate", max_rate=100)
    by_hand = BigNumber(shelf, "pmt/rate", unit="Hz", max_rate=100)  # unit= given: it wins over the metadata's
    plain = BigNumber(shelf, "pmt/other", max_rate=100)
    closing += [number, by_hand, plain]
    assert (number.name, number.unit, number.description) == ("PMT rate", "kHz", "counts per second")
    assert by_hand.unit == "Hz" and plain.unit == "" and plain.name == "pmt/other"
    with shelf.new_run("count") as run:
        run.put("pmt/rate", 12345.678)
        run.put("pmt/other", 12345.678)
        wait_for(lambda: number.text == "12.35" and plain.text == "12345.7", "the values")
        assert by_hand.text == "12.35" and number.value == 12345.678  # the value as stored
        describe_elsewhere(spawn, shelf, "pmt/rate", unit="MHz", scale=1e6, precision=None)
        # No precision now: scaled, with the widget's significant digits.
        wait_for(lambda: number.text == "0.0123457" and number.unit == "MHz", "the new metadata")
        assert by_hand.unit == "Hz" and by_hand.text == "0.0123457"
        describe_elsewhere(spawn, shelf, "pmt/rate", unit=None, scale=None, title=None, description=None)
        wait_for(lambda: number.text == "12345.7" and number.unit == "" and number.name == "pmt/rate", "cleared")
        assert number.description == "" and by_hand.unit == "Hz"


def test_big_number_of_one_data_id_follows_its_own_metadata(shelf: labshelf.Shelf, closing: list[Any]) -> None:
    shelf.describe("pmt", unit="V", precision=1)
    number = BigNumber(shelf, "pmt", data_id={"channel": 2}, max_rate=100)
    closing.append(number)
    with shelf.new_run("count") as run:
        run.put("pmt", 0.25, data_id={"channel": 2})
        wait_for(lambda: number.text == "0.2", "the value")  # 0.25 with one digit: half to even
        writer = other(shelf)
        try:
            writer.describe("pmt", data_id={"channel": 3}, unit="mV")  # another data ID: nothing changes
            writer.describe("pmt", data_id={"channel": 2}, unit="mV", scale=1e-3, precision=0)
        finally:
            writer.close()
        wait_for(lambda: number.unit == "mV" and number.text == "250", "this data ID's metadata")


def test_live_image_title_and_display_follow_the_metadata(shelf: labshelf.Shelf, closing: list[Any]) -> None:
    with shelf.new_run("camera") as run:
        run.put("camera/image", np.arange(40 * 30, dtype=np.uint16).reshape(40, 30))
        image = LiveImage(shelf, "camera/image", max_rate=100)
        closing.append(image)
        assert image.name == "camera/image" and image.display == {}
        wait_for(lambda: image._last is not None, "the first frame")
        writer = other(shelf)
        try:
            writer.describe("camera/image", unit="ADU", title="Beam profile", scale=2)
        finally:
            writer.close()
        wait_for(lambda: image.name == "Beam profile", "the new title")
        assert image.display == {"unit": "ADU", "scale": 2.0, "title": "Beam profile"}
        run.put("camera/image", np.ones((40, 30), dtype=np.uint16))
        wait_for(lambda: image.frames == 2, "a second frame")
    info = image.rpc_last().result
    assert info["title"] == "run 1 · Beam profile" and info["max"] == 1  # values as stored; the view scales them
