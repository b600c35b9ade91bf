"""Jupyter widgets of labshelf (anywidget): dataset tree, gallery, run table, live views.

Each widget is a Python class in its own module with its ESM and CSS in
``static/`` beside it (plain JavaScript, no bundler).  Importing
``labshelf.widgets`` is cheap: a widget's module, and anywidget with it, is
imported when the widget is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

_WIDGETS = {
    "DatasetTree": "tree",
    "Gallery": "gallery",
    "RunTable": "table",
    "LivePlot": "live",
    "LiveImage": "live",
    "BigNumber": "live",
}

__all__ = sorted(_WIDGETS)


def __getattr__(name: str) -> Any:
    module = _WIDGETS.get(name)
    if module is None:
        raise AttributeError(f"module 'labshelf.widgets' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WIDGETS))
