"""Gallery: thumbnails of one image dataset across runs, and a viewer for the full image.

The grid is made of the PNG thumbnails the registry keeps for every image
since put time, so it never opens a data file; pages of tiles are sent as
the user scrolls.  Clicking a tile asks for the image itself: Python reads
it, shrinks it by block means to the size of the screen and sends the raw
values (``uint16`` or ``float32``), which the browser draws with a colour
map, a colour bar and the value under the mouse.

Display metadata (``shelf.describe``) shape what the gallery shows as they
shape every view of a value (``DisplayMeta.format``): the title bar says
the image's title, the viewer's range and pixel values are scaled with the
image's precision and unit (``display``, formatted by ``static/common.js``
with the same rule), and each caption's values are formatted by their own
column's metadata, unit included.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets

from ..browse import Browser
from ..browse.nodes import parse_label
from ..browse.pictures import pixels_for_screen
from ..names import check_name, label, normalize_data_id, plain_int
from ._base import Reply, ShelfWidget, css, esm

if TYPE_CHECKING:
    from ..registry.meta import DisplayMeta

#: Largest page of tiles, and largest screen side (pixels) the viewer may ask for.
MAX_PAGE = 500
MAX_SCREEN = 8192
#: Tiles shown by the static HTML fallback.
FALLBACK_TILES = 12


class Gallery(ShelfWidget):
    """Thumbnails of one image dataset across runs; click one to see the image itself.

    Parameters
    ----------
    shelf
        The shelf.
    name
        An image dataset (e.g. ``"camera/image"``).
    runs
        The runs to show, as a :class:`~labshelf.RunView` in its order
        (``shelf.runs.query("temperature > 300")``); None for every run,
        newest first.  Runs without the image are left out.
    labels
        Run table columns shown in each caption (``["temperature"]``).
    page_size
        Tiles per page; more load as the grid is scrolled.
    data_id
        The data ID of the image dataset, if it has one.

    Raises
    ------
    DatasetNotFound
        No run has a dataset of this name (close names are suggested).
    UnsupportedValue
        The dataset is not an image.
    QuerySyntaxError
        A label is not a column of the run table.
    """

    _esm = esm("gallery.js")
    _css = css("gallery.css")

    name = traitlets.Unicode("", read_only=True).tag(sync=True)
    #: The image's title (its display metadata), else its name.
    title = traitlets.Unicode("", read_only=True).tag(sync=True)
    #: The image's display metadata said (unit, scale, precision, title, description): how the viewer shows values.
    display = traitlets.Dict(read_only=True).tag(sync=True)
    #: Number of runs with the image (the tiles there are to scroll through).
    count = traitlets.Int(0, read_only=True).tag(sync=True)
    #: The run table columns each caption shows.
    labels = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    page_size = traitlets.Int(48).tag(sync=True)

    def __init__(
        self,
        shelf: Any,
        name: str,
        runs: Any = None,
        labels: Iterable[str] = (),
        page_size: int = 48,
        *,
        data_id: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        from ..runview import RunView
        from ..shelf import Shelf

        if not isinstance(shelf, Shelf):
            raise TypeError(f"Gallery shows the images of a Shelf, not of a {type(shelf).__name__}")
        check_name(name)
        if runs is not None and not (isinstance(runs, RunView) and runs._shelf is shelf):
            raise TypeError("runs= takes a RunView of the same shelf (shelf.runs.query(...)) or None for every run")
        if isinstance(labels, str):
            labels = [labels]
        labels = list(labels)
        if not all(isinstance(c, str) for c in labels):
            raise TypeError(f"labels= takes column names (str), not {labels!r}")
        if labels:
            shelf.runs[labels]  # QuerySyntaxError naming an unknown column, with suggestions
        page_size = plain_int(page_size)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size is an int from 1 to {MAX_PAGE}, not {page_size!r}")
        self._shelf = shelf
        self._browser = Browser(shelf)
        self._data_id = normalize_data_id(data_id)
        self._label = label(name, self._data_id)
        self._labels = labels
        self._dataset_name = name
        self._numbers = self._runs_with_image(name, runs)
        self._meta = shelf.metadata(name, data_id=self._data_id or None)
        super().__init__(page_size=page_size, **kwargs)
        self.set_trait("name", self._label)
        self.set_trait("title", self._meta.title or self._label)
        self.set_trait("display", self._meta.fields())
        self.set_trait("count", len(self._numbers))
        self.set_trait("labels", labels)

    def __repr__(self) -> str:
        return f"<Gallery {self._label!r}: {len(self._numbers)} runs of {self._shelf.where}>"

    # -- construction checks ------------------------------------------------------------

    def _runs_with_image(self, name: str, view: Any) -> list[int]:
        """The runs to show, in order: newest first, or the order of ``view``.

        DatasetNotFound or UnsupportedValue when no run has the image.
        """
        having = self._browser.image_runs(name, self._data_id)
        if view is None:
            return having
        kept = set(having)
        return [n for n in view.numbers() if n in kept]

    # -- requests from the browser ------------------------------------------------------

    def rpc_page(self, offset: int = 0, limit: int | None = None) -> Reply:
        """Tiles ``offset`` to ``offset + limit``: run, caption and thumbnail (a PNG buffer)."""
        limit = self.page_size if limit is None else limit
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset is an int >= 0, not {offset!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit is an int from 1 to {MAX_PAGE}, not {limit!r}")
        numbers = self._numbers[offset : offset + limit]
        thumbnails = self._thumbnails(numbers)
        captions = self._captions(numbers)
        tiles: list[dict[str, Any]] = []
        buffers: list[bytes] = []
        for number in numbers:
            png = thumbnails.get(number)
            tiles.append({"run": number, "caption": captions[number], "image": len(buffers) if png else None})
            if png:
                buffers.append(png)
        result = {"tiles": tiles, "more": offset + len(numbers) < len(self._numbers), "total": len(self._numbers)}
        return Reply(result, buffers)

    def rpc_image(self, run: int, width: int = 1024, height: int = 768) -> Reply:
        """The image of ``run`` shrunk to fit ``width`` x ``height`` screen pixels, as raw values.

        The result describes the pixels (see :func:`labshelf.browse.pictures.pixels_for_screen`);
        the one buffer holds them, row by row, little-endian.
        """
        if isinstance(run, bool) or not isinstance(run, int):
            raise ValueError(f"run is a run number (an int), not {run!r}")
        for side, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SCREEN:
                raise ValueError(f"{side} is an int from 1 to {MAX_SCREEN} (screen pixels), not {value!r}")
        image = self._shelf.get(self._dataset_name, run=run, data_id=self._data_id or None)
        info, pixels = pixels_for_screen(image, width, height)
        info.update(run=run, title=f"run {run} · {self.title}", caption=self._captions([run])[run])
        return Reply(info, [pixels])

    # -- what tiles show ----------------------------------------------------------------

    def _thumbnails(self, numbers: Sequence[int]) -> dict[int, bytes]:
        return self._browser.thumbnails(self._dataset_name, self._data_id, numbers)

    def _captions(self, numbers: Sequence[int]) -> dict[int, str]:
        """``run 12 · temperature=301.2 K`` for each run: the label columns of just these runs,
        each value formatted by its column's display metadata."""
        if not self._labels or not numbers:
            return {n: f"run {n}" for n in numbers}
        table = self._shelf.runs.where(run=list(numbers))[self._labels].to_pandas(thumbnails=False)
        metas = self._label_metadata()
        out = {}
        for number in numbers:
            parts = [f"run {number}"]
            if number in table.index:
                row = table.loc[number]
                parts += [f"{column}={_format(row[column], metas.get(column))}" for column in self._labels]
            out[number] = " · ".join(parts)
        return out

    def _label_metadata(self) -> dict[str, DisplayMeta]:
        """The display metadata of the label columns that have some (read afresh: they may change)."""
        from ..metadata import for_label

        records = self._shelf.metadata()
        out = {}
        for column in self._labels if records else ():
            parsed = parse_label(column)
            meta = for_label(records, *parsed) if parsed is not None else None
            if meta is not None and not meta.empty:
                out[column] = meta
        return out

    # -- without a widget front end ----------------------------------------------------------------

    def fallback_html(self) -> str:
        """The first thumbnails with their captions, for nbconvert and other static views."""
        numbers = self._numbers[:FALLBACK_TILES]
        thumbnails = self._thumbnails(numbers)
        captions = self._captions(numbers)
        tiles = []
        for number in numbers:
            png = thumbnails.get(number)
            image = (
                f"<img src='data:image/png;base64,{base64.b64encode(png).decode()}' alt='run {number}'/>" if png else ""
            )
            tiles.append(
                f"<figure style='display:inline-block;margin:4px;text-align:center'>{image}"
                f"<figcaption>{html.escape(captions[number])}</figcaption></figure>"
            )
        more = len(self._numbers) - len(numbers)
        tail = f"<p>… and {more:,} more runs</p>" if more > 0 else ""
        return (
            f"<div class='labshelf-gallery-static'><p>{html.escape(self.title)}: {len(self._numbers):,} runs</p>"
            f"{''.join(tiles)}{tail}</div>"
        )


def _format(value: Any, meta: DisplayMeta | None = None) -> str:
    """A caption value: short numbers (as their display metadata say), plain text, lists joined."""
    if value is None:
        return "–"
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if isinstance(value, bool):
        return str(value)
    if meta is not None and isinstance(value, (int, float, np.integer, np.floating)):
        return meta.format(value, unit=True)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bytes):
        return "(image)"
    if type(value).__name__ in ("NaTType", "NAType"):
        return "–"
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M"))
    if hasattr(value, "item"):  # numpy scalars
        return _format(value.item(), meta)
    return str(value)


__all__ = ["Gallery"]
