"""The IPython extension: ``%load_ext labshelf``.

Loading registers, on the shell it is loaded into:

- the line magics ``%shelf``, ``%runs``, ``%browse``, ``%gallery``, ``%ds``
  and ``%subscribe`` (:mod:`labshelf.kernel_ext.magics`);
- a completer (:mod:`labshelf.kernel_ext.completion`) for dataset names and
  run numbers in those magics and in ``shelf.get("...`` strings;
- an HTML display formatter for lists of :class:`~labshelf.DatasetRef`
  (``shelf.datasets(12)`` shows as a table).

Loading is cheap: it imports nothing beyond labshelf's own small modules and
what IPython has loaded already.  The registry, pandas and the widgets load
when a magic first needs them (``tests/test_kernel_ext.py`` checks it, and
``benchmarks/bench_load_ext.py`` times it).

``%unload_ext labshelf`` removes all of it again.  The active shelf is kept
(and so is the ``shelf`` variable the extension made), so that
``%reload_ext labshelf`` goes on with the same shelf.
"""

from __future__ import annotations

import weakref
from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension", "active_shelf"]

#: What each shell got from us, to take back on unload: shell -> undo callables.
_UNDO: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


def load_ipython_extension(ip: Any) -> None:
    """Register labshelf's magics, completer and display formatter on ``ip``.

    Loading twice is harmless: the second load replaces the first.
    """
    from . import completion, magics

    if ip in _UNDO:
        unload_ipython_extension(ip)
    undo: list[Any] = []
    undo.append(magics.register(ip))
    undo.append(completion.register(ip))
    undo.append(_register_formatters(ip))
    _UNDO[ip] = undo


def unload_ipython_extension(ip: Any) -> None:
    """Remove what :func:`load_ipython_extension` registered on ``ip``."""
    for undo in reversed(_UNDO.pop(ip, [])):
        undo()


def active_shelf(ip: Any = None) -> Any:
    """The shelf the magics work on (opening it from ``$LABSHELF`` or the working folder if needed).

    Parameters
    ----------
    ip
        The IPython shell; by default the running one.

    Raises
    ------
    ShelfError
        No shelf is active and none can be found (the message says how to
        choose one), or several ``*.shelf`` folders make the choice ambiguous.
    """
    from . import magics

    if ip is None:
        from IPython import get_ipython

        ip = get_ipython()
        if ip is None:
            from ..errors import ShelfError

            raise ShelfError("active_shelf() needs a running IPython (a notebook or the ipython shell)")
    return magics.state(ip).require()


def _register_formatters(ip: Any) -> Any:
    """The HTML formatter for lists of DatasetRefs; returns the undo."""
    html = ip.display_formatter.formatters["text/html"]
    previous = html.type_printers.get(list)

    def refs_list_html(obj: Any) -> str | None:
        # Called for every list a cell shows: decide cheaply, by type name
        # first, so other lists cost one check and no import.
        if obj and type(obj[0]).__name__ == "DatasetRef":
            from ..registry.records import DatasetRef

            if all(isinstance(x, DatasetRef) for x in obj):
                from ..display import refs_html

                return refs_html(obj)
        return previous(obj) if previous is not None else None

    html.for_type(list, refs_list_html)

    def undo() -> None:
        if html.type_printers.get(list) is refs_list_html:
            if previous is None:
                html.type_printers.pop(list, None)
            else:
                html.for_type(list, previous)

    return undo
