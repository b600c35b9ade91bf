"""Line magics of the IPython extension, and the active shelf they work on.

=========================================  ======================================================
``%shelf [PATH_OR_URL] [--mode r|rw]``     open a shelf and make it the active one; alone: show it
``%runs [QUERY]``                          the run table widget; returns the RunView
``%browse [RUN]``                          the dataset tree of the shelf, or of one run
``%gallery [--labels A,B] NAME [QUERY]``   thumbnails of one image dataset across runs
``%ds NAME [--run N] [--data-id K=V ...]``  the value of a dataset (newest run that has it by default)
``%subscribe NAME [--run latest|N] ...``   a live plot, image or big number of a dataset being written
=========================================  ======================================================

A user's mistake (a bad query, an unknown name or run, no shelf, bad
arguments) prints one red line on stderr and returns None: no traceback.
Anything else is a bug and raises as usual.

The active shelf is, in this order: the one ``%shelf`` opened, the one the
``LABSHELF`` environment variable names, or the only ``*.shelf`` folder in
the working directory.  It is also put in the user's namespace as ``shelf``
(or ``labshelf_shelf`` if ``shelf`` is already one of the user's own
variables, which is never overwritten).
"""

from __future__ import annotations

import os
import shlex
import sys
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_magic, magics_class

from ..errors import DatasetNotFound, ShelfError

if TYPE_CHECKING:
    from ..runview import RunView
    from ..shelf import Shelf

#: The environment variable naming the shelf to use when none was opened.
ENV_VAR = "LABSHELF"
#: Names the active shelf is published under in the user namespace, in order of preference.
NAMES = ("shelf", "labshelf_shelf")

_USAGE = {
    "shelf": "%shelf [PATH_OR_URL] [--mode r|rw] [--schema NAME] [--root FOLDER]",
    "runs": "%runs [QUERY]",
    "browse": "%browse [RUN]",
    "gallery": "%gallery [--labels COLUMN,COLUMN] NAME [QUERY]",
    "ds": "%ds NAME [--run N] [--data-id KEY=VALUE ...]",
    "subscribe": "%subscribe NAME [--run latest|N] [--kind plot|image|number] [--x NAME] [--data-id KEY=VALUE ...]",
}
#: What ``%subscribe --kind`` shows, and the widget that shows it.
LIVE_KINDS = {"plot": "LivePlot", "image": "LiveImage", "number": "BigNumber"}


class UsageProblem(Exception):
    """Bad arguments to a magic; printed like a ShelfError."""


class _HelpShown(Exception):
    """``--help`` printed the usage; the magic has nothing else to do."""


# -- the active shelf ----------------------------------------------------------------------


class ActiveShelf:
    """The shelf the magics of one IPython shell work on, and where it was published."""

    def __init__(self, ip: Any):
        self._ip = weakref.ref(ip)
        self.shelf: Shelf | None = None
        self.source = ""
        #: The name the active shelf has in the user namespace (None: not published yet).
        self.name: str | None = None
        # What we put under each name: a variable still holding it is ours to
        # replace; anything else there is the user's and is left alone.
        self._ours: dict[str, Any] = {}
        self.last_widget: Any = None

    def open(self, target: str, *, mode: str = "rw", schema: str | None = None, root: str | None = None) -> Shelf:
        """Open ``target`` and make it the active shelf."""
        import labshelf

        shelf = labshelf.open(target, mode=mode, schema=schema, root=root)
        self._adopt(shelf, f"opened {target}")
        return shelf

    def _adopt(self, shelf: Shelf, source: str) -> None:
        previous = self.shelf
        self.shelf, self.source, self.name = shelf, source, None
        self.publish()
        ip = self._ip()
        if previous is not None and previous is not shelf and ip is not None:
            # We opened it; once no variable holds it any more, give back its
            # connections now rather than whenever it is collected.
            if not any(value is previous for value in list(ip.user_ns.values())):
                previous.close()

    def peek(self) -> Shelf | None:
        """The active shelf if there is or can be one, else None; prints nothing (for completion)."""
        if self.shelf is None:
            try:
                self.shelf, self.source = discover()
            except ShelfError:
                return None
        return self.shelf

    def require(self) -> Shelf:
        """The active shelf, found and announced if need be (ShelfError if there is none)."""
        if self.shelf is None:
            self.shelf, self.source = discover()
        if self.name is None:
            self.publish()
        return self.shelf

    def publish(self) -> None:
        """Put the shelf in the user namespace, never over a variable of the user's, and say where."""
        ip = self._ip()
        shelf = self.shelf
        if ip is None or shelf is None:
            return
        namespace = ip.user_ns
        taken = []
        for name in NAMES:
            missing = name not in namespace
            if missing or namespace[name] is self._ours.get(name, _NOTHING):
                namespace[name] = self._ours[name] = shelf
                self.name = name
                break
            taken.append(name)
        else:
            self.name = ""
        if not taken:
            print(f"labshelf: {self.source}; it is `{self.name}` in your namespace: {shelf!r}")
        elif self.name:
            print(
                f"labshelf: {self.source}; `{taken[0]}` is one of your variables and was left as it is, "
                f"so the shelf is `{self.name}`: {shelf!r}"
            )
        else:
            print(
                f"labshelf: {self.source}; `{'` and `'.join(taken)}` are your variables and were left as they "
                f"are: get the shelf with labshelf.kernel_ext.active_shelf(): {shelf!r}"
            )


_NOTHING = object()


def discover() -> tuple[Shelf, str]:
    """The shelf named by $LABSHELF, else the only ``*.shelf`` folder in the working directory."""
    import labshelf

    target = os.environ.get(ENV_VAR, "").strip()
    if target:
        return labshelf.open(target), f"opened {target} (from ${ENV_VAR})"
    here = Path.cwd()
    found = sorted(p.name for p in here.glob("*.shelf") if p.is_dir())
    if len(found) == 1:
        return labshelf.open(here / found[0]), f"opened {found[0]} (the only *.shelf folder in {here})"
    if found:
        raise ShelfError(
            f"several shelves in {here}: {', '.join(found)}; choose one with %shelf PATH (or set ${ENV_VAR})"
        )
    raise ShelfError(
        f"no active shelf: open one with %shelf PATH_OR_URL, set ${ENV_VAR}, "
        f"or work in a folder holding one *.shelf folder (there is none in {here})"
    )


_STATES: weakref.WeakKeyDictionary[Any, ActiveShelf] = weakref.WeakKeyDictionary()


def state(ip: Any) -> ActiveShelf:
    """The active-shelf state of shell ``ip`` (kept across %unload_ext / %reload_ext)."""
    found = _STATES.get(ip)
    if found is None:
        found = _STATES[ip] = ActiveShelf(ip)
    return found


# -- errors and arguments -----------------------------------------------------------------


def report(exc: BaseException) -> None:
    """Print a user's mistake as one red line on stderr."""
    lines = [line.strip() for line in str(exc).splitlines()]
    # Query errors echo the expression with a caret under the fault; on one
    # line the echo is quoted and the position it names says the rest.
    parts = []
    for i, line in enumerate(lines):
        if not line or set(line) == {"^"}:
            continue
        echoed = i + 1 < len(lines) and lines[i + 1] and set(lines[i + 1]) == {"^"}
        parts.append(f"`{line}`" if echoed else line)
    text = parts[0] if parts else type(exc).__name__
    for part in parts[1:]:
        text += (" " if text.endswith(":") else "; ") + part
    red, plain = ("\x1b[31m", "\x1b[0m") if _colour() else ("", "")
    print(f"{red}labshelf: {text}{plain}", file=sys.stderr, flush=True)


def _colour() -> bool:
    return os.environ.get("NO_COLOR", "") == ""


def _split(magic: str, line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:  # an unclosed quote
        raise UsageProblem(f"%{magic}: {exc}; usage: {_USAGE[magic]}") from None


def _parser(magic: str) -> Any:
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # noqa: D102 - argparse's hook
            raise UsageProblem(f"%{magic}: {message}; usage: {_USAGE[magic]}")

        def exit(self, status: int = 0, message: str | None = None) -> Any:  # noqa: A003, D102
            raise _HelpShown

    # argparse %-formats the usage text, and every magic's name starts with %.
    return Parser(prog=f"%{magic}", usage=_USAGE[magic].replace("%", "%%"), add_help=True, allow_abbrev=False)


def parse_data_id(items: list[str], magic: str = "ds") -> dict[str, Any] | None:
    """``["channel=2", "det=a"]`` -> ``{"channel": 2, "det": "a"}`` (see :func:`names.data_id_from_text`)."""
    from ..names import data_id_from_text

    if not items:
        return None
    try:
        return dict(data_id_from_text(items))
    except ValueError as exc:
        raise UsageProblem(f"%{magic}: --data-id takes KEY=VALUE pairs, not {str(exc)!r}; usage: {_USAGE[magic]}") from None


def _run_number(magic: str, text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise UsageProblem(f"%{magic}: a run is given by its number, not {text!r}; usage: {_USAGE[magic]}") from None
    return number


# -- the magics -------------------------------------------------------------------------------


def _guarded(method: Any) -> Any:
    """Turn a user's mistake in a magic into one printed line (and None)."""
    import functools

    @functools.wraps(method)
    def magic(self: LabshelfMagics, line: str = "") -> Any:
        try:
            return method(self, line)
        except _HelpShown:
            return None
        except (ShelfError, UsageProblem) as exc:
            report(exc)
            return None

    return magic


@magics_class
class LabshelfMagics(Magics):
    """labshelf's line magics; see the module docstring."""

    @property
    def state(self) -> ActiveShelf:
        return state(self.shell)

    @line_magic("shelf")
    @_guarded
    def shelf_magic(self, line: str) -> None:
        """Open a shelf and make it the active one; alone, show the active shelf.

        Usage: ``%shelf [PATH_OR_URL] [--mode r|rw] [--schema NAME] [--root FOLDER]``

        PATH_OR_URL is a shelf folder or a ``postgresql://`` URL; ``--mode r``
        opens it read-only (default ``rw``); ``--schema`` names the
        PostgreSQL schema of a URL and ``--root`` its data folder (a URL
        alone never takes the folder from the registry; opening the data
        folder itself needs neither).  The shelf becomes ``shelf`` in the
        namespace (``labshelf_shelf`` if ``shelf`` is your own variable).
        Without arguments: the active shelf (from ``%shelf``, ``$LABSHELF``
        or the only ``*.shelf`` folder here) and its facts.
        """
        parser = _parser("shelf")
        parser.add_argument("target", nargs="?", metavar="PATH_OR_URL", help="a shelf folder or a postgresql:// URL")
        parser.add_argument("--mode", choices=("r", "rw"), default="rw", help="r: read-only; rw (default): read and write")
        parser.add_argument("--schema", default=None, metavar="NAME", help="the PostgreSQL schema of a URL's shelf")
        parser.add_argument("--root", default=None, metavar="FOLDER", help="the data folder of a URL's shelf")
        args = parser.parse_args(_split("shelf", line))
        if args.target is not None:
            root = None if args.root is None else os.path.expanduser(args.root)
            self.state.open(os.path.expanduser(args.target), mode=args.mode, schema=args.schema, root=root)
            return None
        shelf = self.state.require()
        print(repr(shelf))
        for key, value in shelf.info().items():
            print(f"  {key}: {value}")
        if self.state.name:
            print(f"  (in your namespace as `{self.state.name}`; {self.state.source})")
        return None

    @line_magic("runs")
    @_guarded
    def runs_magic(self, line: str) -> RunView | None:
        """Show the run table widget of the active shelf; return its RunView.

        Usage: ``%runs [QUERY]``, e.g. ``%runs temperature > 300 and 'good' in tags``
        (the query language of ``shelf.runs.query``; names with ``/`` in
        backticks).  ``t = %runs ...`` keeps the view.
        """
        shelf = self.state.require()
        query = line.strip()
        view = shelf.runs.query(query) if query else shelf.runs
        from ..widgets import RunTable

        self._show(RunTable(view))
        return _shown(view, self.shell)

    @line_magic("browse")
    @_guarded
    def browse_magic(self, line: str) -> None:
        """Show the dataset tree of the active shelf, or of one run.

        Usage: ``%browse [RUN]``
        """
        words = _split("browse", line)
        if len(words) > 1:
            raise UsageProblem(f"%browse takes at most one run number; usage: {_USAGE['browse']}")
        shelf = self.state.require()
        target: Any = shelf.run(_run_number("browse", words[0])) if words else shelf
        from ..widgets import DatasetTree

        self._show(DatasetTree(target))
        return None

    @line_magic("gallery")
    @_guarded
    def gallery_magic(self, line: str) -> None:
        """Show the thumbnails of one image dataset across runs.

        Usage: ``%gallery [--labels COLUMN,COLUMN] NAME [QUERY]``, e.g.
        ``%gallery --labels temperature camera/image experiment == 'rabi_scan'``.
        QUERY picks the runs (as in ``%runs``); ``--labels`` the run-table
        columns shown under each thumbnail.
        """
        rest = line.strip()
        labels: list[str] | None = None
        while rest.startswith("-"):
            option, _, rest = rest.partition(" ")
            option, eq, value = option.partition("=")
            if option in ("-h", "--help"):
                print(f"usage: {_USAGE['gallery']}\n\n{self.gallery_magic.__doc__}")
                return None
            if option != "--labels":
                raise UsageProblem(f"%gallery: unknown option {option!r}; usage: {_USAGE['gallery']}")
            if not eq:
                value, _, rest = rest.strip().partition(" ")
            labels = [c.strip() for c in value.split(",") if c.strip()]
            if not labels:
                raise UsageProblem(f"%gallery: --labels needs column names; usage: {_USAGE['gallery']}")
            rest = rest.strip()
        name, _, query = rest.partition(" ")
        if not name:
            raise UsageProblem(f"%gallery needs the name of an image dataset; usage: {_USAGE['gallery']}")
        shelf = self.state.require()
        # Newest first, as the gallery shows a whole shelf.
        view = shelf.runs.query(query.strip()).sort_values("run", ascending=False) if query.strip() else None
        from ..widgets import Gallery

        kwargs: dict[str, Any] = {"runs": view}
        if labels is not None:
            kwargs["labels"] = labels
        self._show(Gallery(shelf, name, **kwargs))
        return None

    @line_magic("ds")
    @_guarded
    def ds_magic(self, line: str) -> Any:
        """Load the value of a dataset of the active shelf.

        Usage: ``%ds NAME [--run N] [--data-id KEY=VALUE ...]``, e.g.
        ``x = %ds camera/image --run 12``.  Without ``--run``, the dataset is
        found as ``shelf.get`` finds it: in the shelf's default collections if
        it has some, else in the newest run that has it (with that data ID).
        NAME may name a component (``spectrum.coords.energy``).  Data ID
        values that are integers or True/False are taken as such, others as text.
        """
        parser = _parser("ds")
        parser.add_argument("name", metavar="NAME", help="the dataset name, e.g. camera/image")
        parser.add_argument("--run", default=None, metavar="N", help="the run (default: the newest that has it)")
        parser.add_argument(
            "--data-id", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="data ID values, e.g. channel=2"
        )
        args = parser.parse_args(_split("ds", line))
        data_id = parse_data_id(args.data_id)
        run = None if args.run is None else _run_number("ds", args.run)
        shelf = self.state.require()
        try:
            # Without a run, shelf.get searches as it always does: the shelf's
            # default collections, else the newest run that has the dataset.
            return shelf.get(args.name, data_id, run=run)
        except DatasetNotFound as exc:
            if run is not None:  # shelf.get already names the data IDs that run has
                raise
            from ..names import split_target

            better = explain_missing(shelf, split_target(args.name)[0], data_id)
            if better is None:
                raise
            raise better from exc

    @line_magic("subscribe")
    @_guarded
    def subscribe_magic(self, line: str) -> Any:
        """Show a live view of a dataset while it is being written; return the widget.

        Usage: ``%subscribe NAME [--run latest|N] [--kind plot|image|number] [--x NAME] [--data-id KEY=VALUE ...]``,
        e.g. ``%subscribe scan/counts --x scan/x``.  The view follows the
        newest run (``--run latest``, the default) or stays on run N.  It
        is chosen from the dataset's kind: an image shows as a LiveImage,
        a 1-D array as a LivePlot (``--x`` names the dataset of its x
        values), a scalar as a BigNumber.  A dataset that does not exist yet
        needs ``--kind``.  ``w = %subscribe ...`` keeps the widget;
        ``w.close()`` stops it.
        """
        parser = _parser("subscribe")
        parser.add_argument("name", metavar="NAME", help="the dataset name, e.g. scan/counts")
        parser.add_argument("--run", default="latest", metavar="latest|N", help="latest (default: follow new runs) or a run number")
        parser.add_argument("--kind", choices=tuple(LIVE_KINDS), default=None, help="the view (default: from the dataset's kind)")
        parser.add_argument("--x", default=None, metavar="NAME", help="the dataset of the x values of a plot")
        parser.add_argument(
            "--data-id", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="data ID values, e.g. channel=2"
        )
        args = parser.parse_args(_split("subscribe", line))
        run: int | str = "latest"
        if args.run != "latest":
            try:
                run = int(args.run)
            except ValueError:
                raise UsageProblem(
                    f"%subscribe: --run takes latest or a run number, not {args.run!r}; usage: {_USAGE['subscribe']}"
                ) from None
        data_id = parse_data_id(args.data_id, "subscribe")
        if args.x is not None and args.kind not in (None, "plot"):
            raise UsageProblem(f"%subscribe: --x goes with --kind plot, not --kind {args.kind}; usage: {_USAGE['subscribe']}")
        shelf = self.state.require()
        kind = args.kind or _live_kind(shelf, args.name, data_id, run)
        if kind != "plot" and args.x is not None:
            shows = "an image" if kind == "image" else "a number"
            raise UsageProblem(f"%subscribe: --x is for a plot, and {args.name!r} shows as {shows}; usage: {_USAGE['subscribe']}")
        from .. import widgets

        cls = getattr(widgets, LIVE_KINDS[kind])
        options: dict[str, Any] = {"run": run, "data_id": data_id}
        if args.x is not None:
            options["x"] = args.x
        widget = cls(shelf, args.name, **options)
        self._show(widget)
        # As a cell's last line the returned widget would show a second time.
        widget._shown_in = getattr(self.shell, "execution_count", None)
        return widget

    def _show(self, widget: Any) -> None:
        from IPython.display import display

        self.state.last_widget = widget
        display(widget)


def explain_missing(shelf: Shelf, name: str, data_id: dict[str, Any] | None = None) -> DatasetNotFound | None:
    """A clearer error than "not found" when dataset ``name`` exists only with other data IDs.

    None when there is nothing better to say.
    """
    from ..browse import Browser
    from ..names import data_id_key, format_data_id, label, normalize_data_id

    try:
        others = Browser(shelf).data_ids(name)
    except ShelfError:  # not a dataset name at all: the first error says it
        return None
    wanted = normalize_data_id(data_id)
    if not others or data_id_key(wanted) in {data_id_key(o) for o in others}:
        return None
    shown = ", ".join(label(name, other) for other in others)
    return DatasetNotFound(
        f"no dataset {name!r} with {format_data_id(wanted) or 'no data ID'} was found; it exists as {shown}: "
        "choose one with --data-id"
    )


def _live_kind(shelf: Shelf, name: str, data_id: dict[str, Any] | None, run: int | str) -> str:
    """The view ``%subscribe`` picks for an existing dataset: plot, image or number."""
    try:
        ref = shelf.find(name, data_id, run=run if isinstance(run, int) else None)
    except DatasetNotFound as exc:
        from ..names import split_target

        better = explain_missing(shelf, split_target(name)[0], data_id)
        if better is not None:
            raise better from exc
        raise DatasetNotFound(
            f"{str(exc).rstrip('.')}; to watch for a dataset that does not exist yet, say how to show it "
            f"with --kind plot|image|number"
        ) from exc
    shape = tuple(ref.shape or ())
    if ref.kind == "image":
        return "image"
    if ref.kind == "scalar" or (ref.kind in ("ndarray", "xarray") and len(shape) == 0):
        return "number"
    if ref.kind in ("ndarray", "xarray") and len(shape) == 1:
        return "plot"
    what = f"a dataset of kind {ref.kind}" + (f" and shape {shape}" if shape else "")
    raise UsageProblem(
        f"%subscribe: {name!r} is {what}; live views show images, 1-D arrays (plot) and scalars (number)"
    )


# -- the view %runs returns ---------------------------------------------------------------------


def _shown(view: RunView, ip: Any) -> RunView:
    """``view`` as a RunView whose echo by the same cell is skipped once (the widget shows it already)."""
    shown = _shown_class()(view._shelf, view._spec, view._resolver_cache)
    shown._shown_in = getattr(ip, "execution_count", None)
    return shown


_SHOWN_CLASS: list[type] = []


def _shown_class() -> type:
    if not _SHOWN_CLASS:
        from ..runview import RunView

        class ShownRunView(RunView):
            """The RunView ``%runs`` returns: a RunView, which the cell that made it does not show twice.

            ``%runs q`` as a cell's last line would show the widget and then
            the returned view's table below it; the first display of the view
            in that cell is skipped.  Everywhere else it displays as any RunView.
            """

            _shown_in: int | None = None

            def _ipython_display_(self) -> None:
                from IPython import get_ipython
                from IPython.display import display

                ip = get_ipython()
                if self._shown_in is not None and ip is not None and ip.execution_count == self._shown_in:
                    self._shown_in = None
                    return
                display(RunView(self._shelf, self._spec, self._resolver_cache))

        _SHOWN_CLASS.append(ShownRunView)
    return _SHOWN_CLASS[0]


# -- registration ------------------------------------------------------------------------------------


def register(ip: Any) -> Any:
    """Register the magics on ``ip``; returns the undo."""
    magics = LabshelfMagics(shell=ip)
    ip.register_magics(magics)

    def undo() -> None:
        manager = ip.magics_manager
        for kind, table in magics.magics.items():
            for name in table:
                registered = manager.magics[kind].get(name)
                if getattr(registered, "__self__", None) is magics:
                    del manager.magics[kind][name]
        if manager.registry.get(type(magics).__name__) is magics:
            del manager.registry[type(magics).__name__]

    return undo
