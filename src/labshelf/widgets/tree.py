"""DatasetTree: browse a shelf's runs, their datasets and what is inside the data files.

The tree is lazy all the way down.  The browser asks for the children of a
node a page at a time (``rpc_children``) and for a node's preview
(``rpc_preview``); both are answered by :class:`labshelf.browse.Browser`,
which keeps each page bounded (a run of 10,000 datasets or a shelf of
100,000 runs opens as fast as a run of ten) and owns the node ids (also the
``data-node`` attribute in the page, see the DOM contract):

====================================  ===================================================
``run/12``                            run 12
``run/12/scan``                       the group of datasets named ``scan/...``
                                      (``run/12/scan/`` when a dataset ``scan`` exists too)
``run/12/scan/x``                     dataset ``scan/x``; ``run/12/image[detector=3]`` with a data ID
``run/12/spectrum#energy``            component ``energy`` of a composite (xarray, pandas)
``run/12/image#camera/image``         an HDF5 member; ``...#camera/image@CLASS`` an attribute
====================================  ===================================================
"""

from __future__ import annotations

import html
from typing import Any

import traitlets

from ..browse import Browser, parse_node
from ..browse.browser import page_args
from ..browse.tree import MAX_PAGE
from ..errors import InvalidParameter, RunNotFound
from ..names import plain_int
from ._base import Reply, ShelfWidget, css, esm


class DatasetTree(ShelfWidget):
    """A lazy tree of a shelf's runs and datasets, with previews and the code to load each.

    Parameters
    ----------
    shelf_or_run
        A :class:`~labshelf.Shelf` (every run, newest first) or a
        :class:`~labshelf.Run` (that run only, opened).
    page_size
        How many children one page shows; more come with a "more" button.

    Notes
    -----
    Datasets are grouped by the ``/`` in their names and listed in name
    order.  Selecting a node shows a preview and the exact ``shelf.get(...)``
    call that loads it; the selected node's id is the ``selected`` trait,
    which a notebook can observe (``tree.observe(fn, "selected")``).
    """

    _esm = esm("tree.js")
    _css = css("tree.css")

    #: Id of the selected node ("" when none); settable from Python too.
    selected = traitlets.Unicode("").tag(sync=True)
    page_size = traitlets.Int(100).tag(sync=True)
    #: What the tree shows: "" (the whole shelf) or "run/12".
    scope = traitlets.Unicode("", read_only=True).tag(sync=True)

    def __init__(self, shelf_or_run: Any, page_size: int = 100, **kwargs: Any) -> None:
        shelf, run = _shelf_and_run(shelf_or_run)
        page_size = plain_int(page_size)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size is an int from 1 to {MAX_PAGE}, not {page_size!r}")
        self._shelf = shelf
        self._run = run
        self._browser = Browser(shelf)
        super().__init__(page_size=page_size, **kwargs)
        self.set_trait("scope", "" if run is None else f"run/{run}")

    def __repr__(self) -> str:
        shown = "every run" if self._run is None else f"run {self._run}"
        return f"<DatasetTree of {self._shelf.where}: {shown}>"

    # -- requests from the browser ----------------------------------------------------

    def rpc_children(self, node: str = "", offset: int = 0, limit: int | None = None, search: str = "") -> dict[str, Any]:
        """One page of a node's children: ``{"nodes": [...], "more": bool, "offset": int}``.

        ``search`` keeps the datasets whose names contain it (any case) and
        the runs and groups that hold such datasets.
        """
        limit = self.page_size if limit is None else limit
        if self._run is not None and node == "":
            # A tree of one run shows that run, opened.
            offset, limit, search = page_args(offset, limit, search)
            nodes = [{**self._browser.run_node(self._run).to_json(), "expand": True}] if offset == 0 else []
            return {"nodes": nodes, "more": False, "offset": offset}
        self._check_scope(node)
        return self._browser.children(node, offset, limit, search).to_json()

    def rpc_preview(self, node: str) -> Reply:
        """What the preview pane shows for a node, with a PNG buffer for pictures."""
        if node == "":
            raise InvalidParameter("select a run or a dataset to preview it")
        self._check_scope(node)
        preview = self._browser.preview(node)
        result = preview.to_json()
        if preview.picture is None:
            return Reply(result)
        result["image"] = 0  # the index of the PNG among the answer's buffers
        return Reply(result, [preview.picture.png])

    def rpc_pixel(self, node: str, x: int, y: int) -> dict[str, Any]:
        """The value of one pixel of an image (column ``x``, row ``y`` at full resolution), read from the data."""
        self._check_scope(node)
        return self._browser.pixel(node, x, y).to_json()

    def _check_scope(self, node: Any) -> None:
        if self._run is None:
            return
        run = parse_node(node).run
        if run is not None and run != self._run:
            raise RunNotFound(f"this tree shows run {self._run} only, not run {run}")

    # -- without a widget front end ---------------------------------------------------------------

    def fallback_html(self) -> str:
        """A short static list of runs and dataset names, for nbconvert and other static views."""
        shown_runs = 10
        shown_names = 12 if self._run is None else 50
        if self._run is None:
            run_nodes = list(self._browser.children("", 0, shown_runs).nodes)
            total = len(self._shelf)
        else:
            run_nodes = [self._browser.run_node(self._run)]
            total = 1
        items = []
        for node in run_nodes:
            labels = self._browser.labels(int(node.id.removeprefix("run/")), shown_names + 1)
            names = "".join(f"<li>{html.escape(x)}</li>" for x in labels[:shown_names])
            if len(labels) > shown_names:
                names += "<li>…</li>"
            title = html.escape(f"{node.name} · {node.meta}")
            items.append(f"<li>{title}<ul>{names}</ul></li>")
        more = f"<p>… {total - len(run_nodes):,} more runs</p>" if total > len(run_nodes) else ""
        return (
            f"<div class='labshelf-tree-static'><p>{html.escape(self._shelf.where)}</p>"
            f"<ul>{''.join(items)}</ul>{more}</div>"
        )


def _shelf_and_run(shelf_or_run: Any) -> tuple[Any, int | None]:
    from ..run import Run
    from ..shelf import Shelf

    if isinstance(shelf_or_run, Shelf):
        return shelf_or_run, None
    if isinstance(shelf_or_run, Run):
        return shelf_or_run._shelf, shelf_or_run.number
    raise TypeError(f"DatasetTree shows a Shelf or a Run, not {type(shelf_or_run).__name__}")


__all__ = ["DatasetTree"]
