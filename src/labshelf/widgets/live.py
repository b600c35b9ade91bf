"""Live views of datasets that another process is writing: a plot, an image, a big number.

Each widget holds one :meth:`Shelf.subscribe <labshelf.Shelf.subscribe>`
subscription and turns its updates into the least that must reach the
browser:

- :class:`LivePlot` streams the appended points of a 1-D dataset into a
  bokeh ``ColumnDataSource`` (``.stream``: only the new rows cross the
  wire) and replaces the data only when the value was replaced (a put, a
  new run, merged mixed changes).
- :class:`LiveImage` sends block-mean previews at screen size as raw
  ``uint16``/``float32`` values (as the gallery's viewer does), at most one
  frame in flight per view: a browser slower than the camera sees the newest
  frame, never a backlog.
- :class:`BigNumber` sends a formatted value, its run and its commit time.

Display metadata (``shelf.describe``) shape what they show, as everywhere
(``DisplayMeta.format``): a plot's axes are labelled ``title [unit]`` and
its values divided by the scale; a BigNumber's value is scaled with the
precision and unit said (``unit=`` given by hand overrides the unit); a
LiveImage's title, colour scale and pixels follow the image's metadata.
When the metadata of a watched name change (``on_describe`` of the
subscription), the widget relabels and redraws what it shows.

The subscription calls back on the kernel's event loop (the live core does
that), so trait changes and messages go out from the thread that owns the
widget.  ``close()`` ends the subscription and the widget; closing the shelf
ends the subscription too (the widget then keeps its last state).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets
import numpy as np
import traitlets

from ..browse.pictures import pixels_for_screen
from ..errors import ShelfError, UnsupportedValue
from ..live.subscribe import check_run
from ..names import check_name, data_id_key, label, normalize_data_id, plain_int
from ._base import Reply, ShelfWidget, css, esm

if TYPE_CHECKING:
    from ..live import Subscription, Update
    from ..registry.meta import DisplayMeta
    from ..shelf import Shelf

#: Largest preview side a LiveImage may ask for (pixels).
MAX_SIZE = 4096
#: Frames a LiveImage sends before the browser says it drew one; newer frames wait (only the newest).
FRAMES_IN_FLIGHT = 2
#: After this long without an answer from the browser (no view, a closed tab), frames are sent again.
IN_FLIGHT_TIMEOUT = 2.0
#: Characters of a text value a BigNumber shows.
MAX_TEXT = 80


def _check_rate(max_rate: Any) -> float:
    if isinstance(max_rate, bool) or not isinstance(max_rate, (int, float)) or not 0 < max_rate <= 1000:
        raise ShelfError(f"max_rate= takes updates per second, a number from 0 to 1000 (not 0), not {max_rate!r}")
    return float(max_rate)


def _run_text(run: int | str | None) -> str:
    return "the latest run" if run == "latest" else "any run" if run is None else f"run {run}"


class _Following:
    """What the three widgets share: one subscription, filtered to one dataset and data ID.

    ``_follow`` subscribes; ``_accept`` decides whether an update is for this
    widget and handles run changes (a new run replaces what is shown, an
    older run's late update is ignored); subclasses implement ``_show``.
    """

    _subscription: Subscription | None = None
    _shown_in: int | None = None

    def _setup(self, shelf: Shelf, name: str, run: Any, data_id: Mapping[str, Any] | None) -> None:
        from ..shelf import Shelf

        if not isinstance(shelf, Shelf):
            raise TypeError(f"{type(self).__name__} watches a dataset of a Shelf, not of a {type(shelf).__name__}")
        check_name(name)
        self._shelf = shelf
        self._name = name
        self._mode = check_run(run)
        self._data_id = normalize_data_id(data_id)
        self._key = data_id_key(self._data_id)
        self._label = label(name, self._data_id)
        self._run: int | None = None
        self._meta = self._metadata(name)

    def _metadata(self, name: str) -> DisplayMeta:
        """What is said of ``name`` with this widget's data ID (an empty record when nothing is)."""
        meta: DisplayMeta = self._shelf.metadata(name, data_id=self._data_id or None)
        return meta

    def _follow(self, names: Sequence[str], max_rate: float, preview: tuple[int, int] | None = None) -> None:
        self._subscription = self._shelf.subscribe(
            list(names), self._on_update, run=self._mode, max_rate=max_rate, preview=preview,
            on_describe=self._on_describe,
        )

    def _on_describe(self, meta: DisplayMeta) -> None:
        """A watched name's metadata changed: read ours again (a name's describe changes every data ID's)."""
        if meta.data_id and data_id_key(dict(meta.data_id)) != self._key:
            return  # another data ID's own metadata
        try:
            self._described(meta.name)
        except Exception as exc:
            self._problem(f"{self._label}: {type(exc).__name__}: {exc}")

    def _described(self, name: str) -> None:
        """Show the new metadata of ``name`` (the watched dataset's, or a LivePlot's x)."""

    def _on_update(self, update: Update) -> None:
        if data_id_key(update.data_id) != self._key:
            return
        if self._run is not None and update.run != self._run:
            if update.run < self._run:
                return  # a late change of a run we already left
            self._new_run(update.run)
        self._run = update.run
        try:
            self._show(update)
        except UnsupportedValue as exc:  # shown in the widget; the subscription goes on
            self._problem(f"{self._label} {exc}")
        except Exception as exc:
            self._problem(f"{self._label}: {type(exc).__name__}: {exc}")

    def _new_run(self, run: int) -> None:
        """A newer run started delivering: forget what the previous one showed."""

    def _show(self, update: Update) -> None:
        raise NotImplementedError

    def _problem(self, text: str) -> None:
        raise NotImplementedError

    @property
    def subscription(self) -> Subscription | None:
        """The live subscription (None once closed)."""
        return self._subscription

    def _stop(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()

    def _ipython_display_(self) -> None:
        """Display the widget, once per cell when ``%subscribe`` already showed it."""
        from IPython import get_ipython
        from IPython.display import publish_display_data

        ip = get_ipython()
        if self._shown_in is not None and ip is not None and ip.execution_count == self._shown_in:
            self._shown_in = None
            return
        self._before_display()
        bundle = self._repr_mimebundle_()  # type: ignore[attr-defined]
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        publish_display_data(data, metadata)

    def _before_display(self) -> None:
        """Whatever the page needs before the widget's view can render."""


# -- LivePlot ---------------------------------------------------------------------------------------


_BOKEH_LOADED: list[bool] = []


def _load_bokeh() -> None:
    """Put BokehJS into the page, inline, once per kernel (the CDN is not always reachable)."""
    if _BOKEH_LOADED:
        return
    from bokeh.io import output_notebook
    from bokeh.io.state import curstate
    from bokeh.resources import INLINE

    # After the user's own output_notebook() BokehJS is in the page already:
    # a second copy would only add a megabyte to the notebook.
    if not curstate().notebook:
        output_notebook(resources=INLINE, hide_banner=True)
    _BOKEH_LOADED.append(True)


@functools.cache
def _bokeh_model() -> type:
    """jupyter_bokeh's widget, closable twice (``Widget.__del__`` closes again; its own close raises then)."""
    from jupyter_bokeh.widgets import BokehModel

    class PlotModel(BokehModel):
        _gone = False

        def close(self) -> None:
            if not self._gone:
                self._gone = True
                super().close()

    return PlotModel


class LivePlot(_Following, ipywidgets.VBox):
    """A bokeh line plot of a 1-D dataset that grows as points are appended to it.

    Appended points are streamed into the plot's ``ColumnDataSource``: only
    the new rows go to the browser.  A put, a new run or merged mixed changes
    redraw the whole line.  The title says the run and the number of points.

    Parameters
    ----------
    shelf
        The shelf to watch (another process may be writing it).
    name
        A 1-D dataset (``"scan/counts"``); it may not exist yet.
    x
        Another 1-D dataset of the same run giving the x value of each point
        (``"scan/x"``), paired by index: a point shows once both have it.
        None: the index.
    run
        ``"latest"`` (follow new runs), a run number, or None (any run).
    max_rate
        At most this many redraws per second; points written in between
        arrive together.
    data_id
        The data ID of the datasets, if they have one.
    max_points
        Most points kept in the plot (the oldest scroll out); None: all.
    width, height
        Size of the plot in pixels.

    Attributes
    ----------
    figure
        The bokeh figure (style it as any bokeh figure).
    source
        Its ``ColumnDataSource``, columns ``x`` and ``y``.
    """

    def __init__(
        self,
        shelf: Shelf,
        name: str,
        x: str | None = None,
        run: int | str | None = "latest",
        max_rate: float = 20,
        *,
        data_id: Mapping[str, Any] | None = None,
        max_points: int | None = None,
        width: int = 700,
        height: int = 320,
        **kwargs: Any,
    ) -> None:
        self._setup(shelf, name, run, data_id)
        if x is not None:
            check_name(x)
            if x == name:
                raise ShelfError(f"x= names another dataset than the plotted one, not {name!r} itself")
        rate = _check_rate(max_rate)
        max_points, width, height = plain_int(max_points), plain_int(width), plain_int(height)
        if max_points is not None and (isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2):
            raise ShelfError(f"max_points= takes an int >= 2 or None (all points), not {max_points!r}")
        for side, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 4000:
                raise ShelfError(f"{side}= takes pixels, an int from 100 to 4000, not {value!r}")
        from bokeh.models import ColumnDataSource
        from bokeh.plotting import figure

        self._x_name = x
        self._max_points = max_points
        #: The newest value of each dataset (y, and x if any) of the run shown.
        self._values: dict[str, np.ndarray] = {}
        self._x_meta = self._metadata(x) if x is not None else None
        #: Points of the datasets shown so far (the first ``_shown`` of both).
        self._shown = 0
        self.source = ColumnDataSource(data={"x": np.zeros(0), "y": np.zeros(0)}, name="labshelf-live-source")
        self.figure = figure(
            width=width, height=height, title=f"{self._label} · waiting for {_run_text(self._mode)}",
            x_axis_label=self._x_meta.heading if self._x_meta is not None else "index", y_axis_label=self._meta.heading,
            tools="pan,wheel_zoom,box_zoom,reset,save",
        )
        #: The figure's Title model (typed loosely by bokeh: a str is turned into one).
        self._heading: Any = self.figure.title
        self.figure.line("x", "y", source=self.source, line_width=1.5)
        self.figure.scatter("x", "y", source=self.source, size=4)
        self._bokeh = _bokeh_model()(self.figure)
        super().__init__(children=[self._bokeh], **kwargs)
        self.add_class("labshelf-widget")
        self.add_class("labshelf-liveplot")
        self._follow([name] if x is None else [name, x], rate)

    def __repr__(self) -> str:
        vs = f" vs {self._x_name}" if self._x_name else ""
        return f"<LivePlot {self._label!r}{vs}, {_run_text(self._mode)} of {self._shelf.where}: {self._shown} points>"

    @property
    def points(self) -> int:
        """The number of points the plot has received."""
        return self._shown

    def _new_run(self, run: int) -> None:
        self._values.clear()

    def _show(self, update: Update) -> None:
        if update.name not in (self._name, self._x_name):
            return
        column = "y" if update.name == self._name else "x"
        value = np.asarray(update.value)
        if value.ndim != 1:
            what = "a scalar" if value.ndim == 0 else f"of shape {value.shape}"
            self._problem(f"{update.name} is {what}: LivePlot plots 1-D datasets (BigNumber shows a scalar)")
            self._values.pop(column, None)
            return
        before = self._values.get(column)
        appended = (
            update.kind == "append" and not update.reset and before is not None
            and len(value) >= len(before)
        )
        self._values[column] = value
        y = self._values.get("y")
        x = self._values.get("x") if self._x_name else None
        count = 0 if y is None or (self._x_name and x is None) else min(len(y), len(x) if x is not None else len(y))
        if appended and count >= self._shown:
            if count > self._shown:
                self._stream(self._shown, count)
        elif update.kind == "mutate" and not update.reset and isinstance(update.index, int) and count == self._shown:
            self._patch(column, update.index)
        else:
            self._replace(count)
        self._title()

    def _columns(self, start: int, stop: int) -> dict[str, Any]:
        # Copies: the subscription patches its own arrays in place, and the
        # plot's columns must change only through events the browser sees.
        # Values are shown divided by their scale (DisplayMeta.shown makes a new array then).
        y = self._meta.shown(np.array(self._values["y"][start:stop]))
        x = np.array(self._values["x"][start:stop]) if self._x_name else np.arange(start, stop)
        if self._x_meta is not None:
            x = self._x_meta.shown(x)
        return {"x": x, "y": y}

    def _stream(self, start: int, stop: int) -> None:
        self.source.stream(self._columns(start, stop), rollover=self._max_points)
        self._shown = stop

    def _patch(self, column: str, index: int) -> None:
        index = index + self._shown if index < 0 else index
        first = self._shown - len(self.source.data["y"])  # the rows rolled out of the plot
        if first <= index < self._shown:
            meta = self._meta if column == "y" else self._x_meta
            value = self._values[column][index].item()
            self.source.patch({column: [(index - first, meta.shown(value) if meta is not None else value)]})

    def _replace(self, count: int) -> None:
        if count == 0 and self._shown == 0 and len(self.source.data["y"]) == 0:
            return  # x arrived before any y: nothing to draw yet, nothing to resend
        start = 0 if self._max_points is None else max(0, count - self._max_points)
        self.source.data = self._columns(start, count) if count else {"x": np.zeros(0), "y": np.zeros(0)}
        self._shown = count

    def _title(self) -> None:
        noun = "point" if self._shown == 1 else "points"
        self._heading.text = f"run {self._run} · {self._label} · {self._shown:,} {noun}"

    def _problem(self, text: str) -> None:
        self._heading.text = text

    def _described(self, name: str) -> None:
        """New metadata of y or x: relabel the axis, and redraw when the scale changed."""
        meta = self._metadata(name)
        if name == self._name:
            rescaled = meta.scale != self._meta.scale
            self._meta = meta
            self.figure.yaxis.axis_label = meta.heading
        elif name == self._x_name:
            rescaled = self._x_meta is None or meta.scale != self._x_meta.scale
            self._x_meta = meta
            self.figure.xaxis.axis_label = meta.heading
        else:
            return
        if rescaled and self._shown:
            self._shown = 0  # every point again, at the new scale
            self._replace(self._count())

    def _count(self) -> int:
        y = self._values.get("y")
        x = self._values.get("x") if self._x_name else None
        if y is None or (self._x_name and x is None):
            return 0
        return min(len(y), len(x) if x is not None else len(y))

    def _before_display(self) -> None:
        _load_bokeh()

    def close(self) -> None:
        """Stop watching the dataset and close the widget."""
        self._stop()
        bokeh = getattr(self, "_bokeh", None)
        if bokeh is not None:
            bokeh.close()
        super().close()


# -- LiveImage -----------------------------------------------------------------------------------------


class LiveImage(_Following, ShelfWidget):
    """The newest frame of an image dataset, as a preview at screen size, with a colour scale.

    Frames arrive as block-mean previews of at most ``size`` pixels (the
    full frame stays on disk); the view shows the pixel value under the
    mouse (of the preview: ``≈`` when it averages several pixels), the frame
    count and the frames per second the browser draws.

    Parameters
    ----------
    shelf
        The shelf to watch.
    name
        An image dataset (``"camera/image"``); it may not exist yet.
    run
        ``"latest"`` (follow new runs), a run number, or None (any run).
    size
        ``(height, width)`` of the preview, in pixels.
    max_rate
        At most this many frames per second; the newest frame always arrives.
    data_id
        The data ID of the image, if it has one.
    vmin, vmax
        A fixed colour scale; None: each frame's 0.5th to 99.5th percentile.
    """

    _esm = esm("live.js")
    _css = css("live.css")

    view = traitlets.Unicode("image", read_only=True).tag(sync=True)
    #: What the title bar says: the image's title (display metadata), else its name.
    name = traitlets.Unicode("", read_only=True).tag(sync=True)
    #: The image's display metadata said (unit, scale, precision, title, description): how the view shows values.
    display = traitlets.Dict(read_only=True).tag(sync=True)
    #: The run of the frame shown (0 before the first frame).
    run = traitlets.Int(0, read_only=True).tag(sync=True)
    #: Frames written since the widget started watching (merged ones included).
    frames = traitlets.Int(0, read_only=True).tag(sync=True)
    #: What is being waited for, or the last problem (one line); empty when all is well.
    status = traitlets.Unicode("", read_only=True).tag(sync=True)

    def __init__(
        self,
        shelf: Shelf,
        name: str,
        run: int | str | None = "latest",
        size: tuple[int, int] = (512, 512),
        max_rate: float = 20,
        *,
        data_id: Mapping[str, Any] | None = None,
        vmin: float | None = None,
        vmax: float | None = None,
        **kwargs: Any,
    ) -> None:
        self._setup(shelf, name, run, data_id)
        if (
            not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(plain_int(n), int) and not isinstance(n, bool) and 16 <= n <= MAX_SIZE for n in size)
        ):
            raise ShelfError(f"size= takes (height, width) in pixels, each from 16 to {MAX_SIZE}, not {size!r}")
        if (vmin is None) != (vmax is None) or (vmin is not None and vmax is not None and not vmax > vmin):
            raise ShelfError(f"vmin= and vmax= go together, with vmax > vmin (or both None), not {vmin!r}, {vmax!r}")
        rate = _check_rate(max_rate)
        self._size = (int(size[0]), int(size[1]))
        self._range = None if vmin is None or vmax is None else (float(vmin), float(vmax))
        self._last: tuple[dict[str, Any], bytes] | None = None
        self._waiting: tuple[dict[str, Any], bytes] | None = None
        self._in_flight = 0
        self._sent_at = 0.0
        super().__init__(**kwargs)
        self._show_meta()
        self.set_trait("status", f"waiting for {self._label} in {_run_text(self._mode)}")
        self.on_msg(self._on_drawn)
        self._follow([name], rate, preview=self._size)

    def __repr__(self) -> str:
        return f"<LiveImage {self._label!r}, {_run_text(self._mode)} of {self._shelf.where}: {self.frames} frames>"

    def _show(self, update: Update) -> None:
        if update.name != self._name:
            return
        value = np.asarray(update.value)
        if value.ndim not in (2, 3) or (value.ndim == 3 and value.shape[2] not in (3, 4)):
            raise UnsupportedValue(f"is of shape {value.shape}, not an image: LiveImage shows 2-D or HxWx3/4 arrays")
        info, pixels = pixels_for_screen(value, self._size[1], self._size[0])
        shape = tuple(update.ref.shape) if update.ref is not None and update.ref.shape else value.shape
        # The preview's block size, from the frame's and the preview's shapes.
        factor = max(info["factor"], math.ceil(shape[0] / value.shape[0]), math.ceil(shape[1] / value.shape[1]))
        if self._range is not None and info["dtype"] != "rgba8":
            info["vmin"], info["vmax"] = self._range
        frame = self.frames + max(1, update.frames)
        info.update(
            shape=[int(n) for n in shape], factor=factor, frame=frame, run=update.run, time=update.time,
            title=f"run {update.run} · {self.name}", approx=factor > 1,
        )
        with self.hold_trait_notifications():
            self.set_trait("frames", frame)
            self.set_trait("run", update.run)
            self.set_trait("status", "")
        self._last = (info, pixels)
        self._offer(info, pixels)

    def _offer(self, info: dict[str, Any], pixels: bytes) -> None:
        """Send a frame now, or keep it (the newest only) until the browser drew one."""
        if self._in_flight >= FRAMES_IN_FLIGHT and time.monotonic() - self._sent_at < IN_FLIGHT_TIMEOUT:
            self._waiting = (info, pixels)
            return
        if self._in_flight >= FRAMES_IN_FLIGHT:
            self._in_flight = 0  # nobody answered: no view is drawing, start afresh
        self._waiting = None
        self._in_flight += 1
        self._sent_at = time.monotonic()
        self.send({"type": "frame", "frame": info}, [pixels])

    def _on_drawn(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "drawn":
            return
        self._in_flight = max(0, self._in_flight - 1)
        if self._waiting is not None:
            self._offer(*self._waiting)

    def rpc_last(self) -> Reply:
        """The newest frame (for a view that starts after frames arrived); None before the first."""
        if self._last is None:
            return Reply(None)
        info, pixels = self._last
        return Reply(info, [pixels])

    def _problem(self, text: str) -> None:
        self.set_trait("status", text)

    def _show_meta(self) -> None:
        with self.hold_trait_notifications():
            self.set_trait("name", self._meta.title or self._label)
            self.set_trait("display", self._meta.fields())

    def _described(self, name: str) -> None:
        self._meta = self._metadata(name)
        self._show_meta()

    def close(self) -> None:
        """Stop watching the dataset and close the widget."""
        self._stop()
        super().close()


# -- BigNumber ---------------------------------------------------------------------------------------


class BigNumber(_Following, ShelfWidget):
    """The newest value of a dataset in large type, with its unit and when it was written.

    The dataset's display metadata say how: its title names it, its value is
    divided by the scale and shown with the precision said (else ``digits``
    significant digits), its unit after it.  They are followed as they change.

    Parameters
    ----------
    shelf
        The shelf to watch.
    name
        A scalar dataset (``"pmt/rate"``); of a 1-D dataset, its last element
        is shown.  It may not exist yet.
    unit
        Text shown after the value (``"Hz"``), over the unit the display
        metadata say; ``""``: theirs.
    run
        ``"latest"`` (follow new runs), a run number, or None (any run).
    digits
        Significant digits of floats, where the display metadata say no precision.
    max_rate
        At most this many updates per second.
    data_id
        The data ID of the dataset, if it has one.
    """

    _esm = esm("live.js")
    _css = css("live.css")

    view = traitlets.Unicode("number", read_only=True).tag(sync=True)
    #: The dataset's title (display metadata), else its name.
    name = traitlets.Unicode("", read_only=True).tag(sync=True)
    #: The unit shown: ``unit=`` given by hand, else the display metadata's.
    unit = traitlets.Unicode("").tag(sync=True)
    #: The display metadata's description (the name's tooltip), "" if none.
    description = traitlets.Unicode("", read_only=True).tag(sync=True)
    #: The value as shown ("–" before the first one).
    text = traitlets.Unicode("–", read_only=True).tag(sync=True)
    run = traitlets.Int(0, read_only=True).tag(sync=True)
    #: Commit time of the value shown, epoch seconds (0 before the first).
    updated = traitlets.Float(0.0, read_only=True).tag(sync=True)
    #: Values received since the widget started (merged ones included).
    count = traitlets.Int(0, read_only=True).tag(sync=True)
    status = traitlets.Unicode("", read_only=True).tag(sync=True)

    def __init__(
        self,
        shelf: Shelf,
        name: str,
        unit: str = "",
        run: int | str | None = "latest",
        *,
        digits: int = 6,
        max_rate: float = 10,
        data_id: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._setup(shelf, name, run, data_id)
        if not isinstance(unit, str):
            raise ShelfError(f"unit= takes text (e.g. 'Hz'), not {unit!r}")
        digits = plain_int(digits)
        if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
            raise ShelfError(f"digits= takes an int from 1 to 17, not {digits!r}")
        rate = _check_rate(max_rate)
        self._digits = digits
        self._unit_given = unit
        #: The value shown, as the shelf gave it (unscaled).
        self.value: Any = None
        super().__init__(unit=unit or self._meta.unit or "", **kwargs)
        self._show_meta()
        self.set_trait("status", f"waiting for {self._label} in {_run_text(self._mode)}")
        self._follow([name], rate)

    def __repr__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"<BigNumber {self._label!r}, {_run_text(self._mode)} of {self._shelf.where}: {self.text}{unit}>"

    def _show(self, update: Update) -> None:
        if update.name != self._name:
            return
        value = update.value
        if getattr(value, "ndim", 0) >= 1:
            array = np.asarray(value)
            if array.ndim != 1:
                raise UnsupportedValue(f"is of shape {array.shape}: BigNumber shows a scalar or a 1-D array's last element")
            value = array[-1] if len(array) else None
        self.value = value
        with self.hold_trait_notifications():
            self.set_trait("text", self._format(value))
            self.set_trait("run", update.run)
            self.set_trait("updated", float(update.time or time.time()))
            self.set_trait("count", self.count + max(1, update.frames))
            self.set_trait("status", "")

    def _problem(self, text: str) -> None:
        self.set_trait("status", text)

    def _format(self, value: Any) -> str:
        """The value as the display metadata say (DisplayMeta.format with a precision; else scaled,
        with ``digits`` significant digits), or as it always was when they say neither."""
        meta = self._meta
        if isinstance(value, np.generic):
            value = value.item()
        number = isinstance(value, (int, float, complex)) and not isinstance(value, bool)
        if not number or (meta.precision is None and meta.scale is None):
            return format_number(value, self._digits)
        if meta.precision is not None and not (isinstance(value, float) and not math.isfinite(value)):
            return meta.format(value)
        return format_number(meta.shown(value), self._digits)

    def _show_meta(self) -> None:
        with self.hold_trait_notifications():
            self.set_trait("name", self._meta.title or self._label)
            self.set_trait("description", self._meta.description or "")
            self.unit = self._unit_given or self._meta.unit or ""

    def _described(self, name: str) -> None:
        self._meta = self._metadata(name)
        with self.hold_trait_notifications():
            self._show_meta()
            if self.count:
                self.set_trait("text", self._format(self.value))

    def close(self) -> None:
        """Stop watching the dataset and close the widget."""
        self._stop()
        super().close()


def format_number(value: Any, digits: int = 6) -> str:
    """A value as a BigNumber shows it: ``12.3457``, ``1,204``, ``True``, short text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.{digits}g}"
    if isinstance(value, complex):
        return f"{value:.{digits}g}"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


__all__ = ["BigNumber", "LiveImage", "LivePlot", "format_number"]
