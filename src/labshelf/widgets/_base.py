"""What every labshelf widget shares: static files and requests from the browser.

A widget's front end asks the kernel for what it shows, a page at a time
(``request("rows", {offset: 0, limit: 100})`` in JavaScript), and Python
answers from the method ``rpc_rows(offset=0, limit=100)``.  Only what the
user looks at crosses the wire: a run table of 100,000 runs or a run of
10,000 datasets opens at once.

Requests travel as anywidget custom messages ``{id, method, params}``; the
answer is ``{id, result}`` or ``{id, error}`` with the error's one-line
message, plus binary buffers (PNG thumbnails travel as bytes, not base64).
The JavaScript half is ``static/rpc.js``; it and ``static/common.js``
(elements, number formatting, the colour map) are ES modules that each
widget's own module imports (``import { h } from "./common.js"``).  The
JupyterLab Shelves panel bundles them as they are; for a notebook widget
:func:`esm` puts them in front of the widget's module and drops those
import lines, since anywidget loads one module per widget.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import anywidget

STATIC = Path(__file__).parent / "static"


@cache
def static_text(name: str) -> str:
    """A file of ``static/`` as text (read once per process)."""
    return (STATIC / name).read_text(encoding="utf-8")


#: The shared modules every widget's ESM starts with, in this order.
SHARED_MODULES = ("rpc.js", "common.js")
_OWN_IMPORT = re.compile(r'^import \{[^}]*\} from "\./([\w.-]+)";[ \t]*\n', re.MULTILINE)


def esm(name: str) -> str:
    """The ESM of a widget: the shared helpers (requests, elements, colour map) and ``static/<name>``.

    Plain concatenation stands in for a bundler: anywidget loads one module
    per widget, and relative imports between our files would not resolve,
    so the shared modules come first and the lines importing them go.  A
    widget module importing any other file of ours is a mistake said here.
    """
    parts = []
    for part in (*SHARED_MODULES, name):
        text = static_text(part)
        for imported in _OWN_IMPORT.findall(text):
            if imported not in SHARED_MODULES:
                raise ValueError(f"static/{part} imports ./{imported}, which is not one of {', '.join(SHARED_MODULES)}")
        parts.append(_OWN_IMPORT.sub("", text))
    return "\n".join(parts)


def css(name: str) -> str:
    """The CSS of a widget: the shared rules (``static/common.css``) and ``static/<name>``."""
    return static_text("common.css") + "\n" + static_text(name)


@dataclass
class Reply:
    """An answer with binary buffers (``result`` refers to them by index)."""

    result: Any
    buffers: Sequence[bytes] = field(default_factory=list)


class ShelfWidget(anywidget.AnyWidget):
    """Base of labshelf widgets: answers ``rpc_<method>`` requests from the browser.

    A request names a method and its keyword parameters; an exception becomes
    an ``error`` answer with a one-line message that the front end shows, so
    a bad filter typed into a widget never produces a traceback.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_msg(self._on_request)

    def _on_request(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or "method" not in content:
            return
        request_id = content.get("id")
        method = getattr(self, f"rpc_{content['method']}", None)
        try:
            if method is None:
                raise ValueError(f"{type(self).__name__} has no request {content['method']!r}")
            params = content.get("params") or {}
            if not isinstance(params, dict):
                raise ValueError("request params must be an object")
            answer = method(**params)
        except Exception as exc:  # every failure goes back to the view as one line
            self.send({"id": request_id, "error": _one_line(exc)})
            return
        if isinstance(answer, Reply):
            self.send({"id": request_id, "result": answer.result}, list(answer.buffers))
        else:
            self.send({"id": request_id, "result": answer})

    def fallback_html(self) -> str:
        """What nbconvert output and other widget-less front ends show."""
        return f"<pre>{html.escape(repr(self))}</pre>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            data.setdefault("text/html", self.fallback_html())
        return bundle


def _one_line(exc: BaseException) -> str:
    from ..errors import ShelfError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # Our own errors are written for users; anything else gets its type named.
    return text if isinstance(exc, ShelfError | ValueError | KeyError) else f"{type(exc).__name__}: {text}"
