"""The REST handlers of the Shelves sidebar, under ``{base_url}labshelf/api/`` (the contract: labextension/API.md).

Each handler reads and checks its URL parameters on the event loop (cheap;
a bad one raises a labshelf error that :meth:`ShelfHandler.write_error` answers),
then runs one blocking labshelf call on the LabShelf's thread pool: open
the shelf named (once), ask its Browser.  Answers are the browse records'
JSON; errors are JSON too, ``{"error", "message", "position"?, "matches"?}``,
with a status from the labshelf error (:func:`error_answer`), never a
traceback.  Every method is ``@web.authenticated`` (Jupyter's token or
password; XSRF for POST) and ``@authorized`` on the "contents" resource:
shelves are files under the server's root.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable
from http.client import responses
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..browse import Browser
from ..browse.browser import MAX_PICTURE, MIN_PICTURE
from ..browse.runs import MAX_PAGE
from ..errors import (
    CollectionNotFound,
    CorruptDataset,
    DatasetNotFound,
    InvalidParameter,
    NotAShelf,
    QuerySyntaxError,
    ReadOnlyShelf,
    RunNotFound,
    RunNotWritable,
    SchemaVersionError,
    ShelfBusy,
    ShelfError,
    UnsafePath,
)
from .extension import LabShelf, one_line

#: The status of each labshelf error, most specific first (ShelfError: a bad request).
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (QuerySyntaxError, 400),
    (NotAShelf, 404),
    (RunNotFound, 404),
    (DatasetNotFound, 404),
    (CollectionNotFound, 404),
    (UnsafePath, 403),
    (ReadOnlyShelf, 403),
    (SchemaVersionError, 409),
    (ShelfBusy, 409),
    (RunNotWritable, 409),
    (CorruptDataset, 500),
    (ShelfError, 400),
)
#: Keys of an annotate request's body.
ANNOTATE_KEYS = ("run", "comment", "tags", "columns")
MAX_INT = 2**62
#: How a yes-or-no query parameter may be spelled.
BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
_INTEGER = re.compile(r"-?[0-9]{1,20}")


def error_answer(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of an error: a labshelf error's class and one-line message; else a 500."""
    for kind, status in STATUS:
        if isinstance(exc, kind):
            body: dict[str, Any] = {"error": type(exc).__name__, "message": one_line(exc)}
            position = getattr(exc, "position", None)
            if isinstance(exc, QuerySyntaxError) and isinstance(position, int):
                body["position"] = position
            matches = getattr(exc, "matches", None)
            if matches is not None:
                body["matches"] = list(matches)
            return status, body
    return 500, {"error": type(exc).__name__, "message": "the server met an unexpected error; its log says more"}


def _with_matches(browser: Browser, node: str, work: Callable[[], Any]) -> Any:
    """``work()``, where "no such run or dataset" carries the node ids close to ``node``."""
    try:
        return work()
    except (RunNotFound, DatasetNotFound) as exc:
        exc.matches = browser.matches(node)  # type: ignore[union-attr]  # read by error_answer
        raise


class ShelfHandler(APIHandler):
    """What every labshelf handler shares: parameters, the thread pool, JSON answers and errors."""

    auth_resource = "contents"

    @property
    def labshelf(self) -> LabShelf:
        return self.settings["labshelf"]

    # -- parameters (read on the loop: cheap, and a bad one never reaches labshelf) -----------------

    def text(self, name: str, default: str | None = None) -> str:
        value = self.get_argument(name, default, strip=False)
        if value is None:
            raise InvalidParameter(f"the parameter {name} is required")
        return value

    def integer(self, name: str, default: int | None, low: int, high: int) -> int | None:
        text = self.get_argument(name, None, strip=False)
        if text is None or text == "":
            return default
        value = int(text) if _INTEGER.fullmatch(text) else None
        if value is None or not low <= value <= high:
            raise InvalidParameter(f"{name} is an integer from {low} to {high}, not {text[:40]!r}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        text = self.get_argument(name, None, strip=False)
        if text is None or text == "":
            return default
        if text.lower() in BOOLEANS:
            return BOOLEANS[text.lower()]
        raise InvalidParameter(f"{name} is true or false (1 or 0), not {text[:40]!r}")

    def json_list(self, name: str, example: str) -> list[Any] | None:
        text = self.get_argument(name, None, strip=False)
        if text is None or text == "":
            return None
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, list):
            raise InvalidParameter(f"{name} is a JSON list, like {example}, not {text[:60]!r}")
        return value

    # -- answers ---------------------------------------------------------------------------------

    async def off_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the LabShelf's threads: labshelf calls block, the event loop must not."""
        return await asyncio.get_running_loop().run_in_executor(self.labshelf.pool, functools.partial(fn, *args))

    async def answer(self, work: Callable[[], Any]) -> None:
        """Run ``work`` off the loop; finish with its JSON, or with the JSON of its error."""
        try:
            result = await self.off_loop(work)
        except Exception as exc:
            self.fail(exc)
            return
        self.finish(json.dumps(result, allow_nan=False))

    def fail(self, exc: BaseException) -> None:
        status, body = error_answer(exc)
        if status >= 500:
            self.log.error("labshelf: %s %s failed", self.request.method, self.request.uri, exc_info=exc)
        else:
            self.log.info("labshelf: %s %s: %s", self.request.method, self.request.path, body["message"])
        self.set_status(status)
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A bad parameter a handler raised, and errors before a handler runs (no login, a refused
        XSRF check), as JSON too."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ShelfError):
            status, body = error_answer(exc)
            self.set_status(status)
            self.finish(json.dumps(body))
            return
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else None
        body = {"error": "HTTPError", "message": message or responses.get(status_code, "error")}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """A labshelf error a handler raised is the client's mistake: one line, not a traceback."""
        if isinstance(value, ShelfError):
            self.log.info("labshelf: %s %s: %s", self.request.method, self.request.path, one_line(value))
        else:
            super().log_exception(typ, value, tb)

    def browse(self, shelf: str, ask: Callable[[Browser], Any], node: str | None = None) -> Callable[[], Any]:
        """The work of a request: open ``shelf`` (once), ``ask`` its Browser; close matches for ``node``."""

        def work() -> Any:
            browser = self.labshelf.entry(shelf).browser
            if node is None:
                return ask(browser)
            return _with_matches(browser, node, lambda: ask(browser))

        return work


class ShelvesHandler(ShelfHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(self.labshelf.list_shelves)


class ShelfInfoHandler(ShelfHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        shelf = self.text("shelf")
        labshelf = self.labshelf

        def work() -> dict[str, Any]:
            out = labshelf.describe(shelf)
            out.update(labshelf.entry(shelf).browser.run_columns().to_json())
            return out

        await self.answer(work)


class RunsHandler(ShelfHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        shelf, query = self.text("shelf"), self.text("query", "")
        sort = self.json_list("sort", '[["temperature", false]]') or []
        columns = self.json_list("columns", '["status", "temperature"]')
        offset = self.integer("offset", 0, 0, MAX_INT)
        limit = self.integer("limit", 50, 1, MAX_PAGE)
        logbook = self.boolean("logbook", False)

        def ask(browser: Browser) -> dict[str, Any]:
            shown = columns if columns is not None else list(browser.run_columns().default)
            return browser.runs(query, sort, shown, offset, limit, logbook=logbook).to_json()

        await self.answer(self.browse(shelf, ask))


class LogbookHandler(ShelfHandler):
    """Every logbook entry placed among the rows of a filtered, sorted run table (a scrolling table's
    whole set, where ``runs?logbook=true`` gives one page's)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        shelf, query = self.text("shelf"), self.text("query", "")
        sort = self.json_list("sort", '[["start", false]]') or []

        def ask(browser: Browser) -> dict[str, Any]:
            order, placed = browser.logbook(query, sort)
            return {"log_order": order, "log": [entry.to_json() for entry in placed]}

        await self.answer(self.browse(shelf, ask))


class ChildrenHandler(ShelfHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        shelf, node, search = self.text("shelf"), self.text("node", ""), self.text("search", "")
        offset, limit = self.integer("offset", 0, 0, MAX_INT), self.integer("limit", 100, 1, MAX_PAGE)
        await self.answer(self.browse(shelf, lambda b: b.children(node, offset, limit, search).to_json(), node))


class SearchHandler(ShelfHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        shelf, pattern = self.text("shelf"), self.text("pattern")
        offset, limit = self.integer("offset", 0, 0, MAX_INT), self.integer("limit", 100, 1, MAX_PAGE)
        await self.answer(self.browse(shelf, lambda b: b.search(pattern, offset, limit).to_json()))


class PreviewHandler(ShelfHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        shelf, node = self.text("shelf"), self.text("node", "")
        size = self.integer("size", None, MIN_PICTURE, MAX_PICTURE)
        await self.answer(self.browse(shelf, lambda b: b.preview(node, size).to_json(), node))


class PictureHandler(ShelfHandler):
    """A preview's PNG; its ETag is the shelf's version, so an unchanged shelf answers 304 without drawing."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        shelf, node = self.text("shelf"), self.text("node", "")
        size = self.integer("size", None, MIN_PICTURE, MAX_PICTURE)
        known = self.request.headers.get("If-None-Match", "")

        def ask(browser: Browser) -> tuple[str, bytes | None]:
            etag = json.dumps(browser.version())  # a quoted string, as ETags are
            if etag in (tag.strip() for tag in known.split(",")):
                return etag, None
            preview = browser.preview(node, size)
            if preview.picture is None:
                raise InvalidParameter(
                    f"{node!r} has no picture (it is a {preview.kind}); pictures are of images and 2-D arrays"
                )
            return etag, preview.picture.png

        try:
            etag, png = await self.off_loop(self.browse(shelf, ask, node))
        except Exception as exc:
            self.fail(exc)
            return
        self.set_header("ETag", etag)
        self.set_header("Cache-Control", "private, no-cache")
        if png is None:
            self.set_status(304)
            self.finish()
            return
        self.finish(png, set_content_type="image/png")


class PixelHandler(ShelfHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        shelf, node = self.text("shelf"), self.text("node")
        x, y = self.integer("x", None, 0, MAX_INT), self.integer("y", None, 0, MAX_INT)
        if x is None or y is None:
            raise InvalidParameter("x and y are required: the pixel's column and row at full resolution")
        await self.answer(self.browse(shelf, lambda b: b.pixel(node, x, y).to_json(), node))


class CodeHandler(ShelfHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        shelf, node = self.text("shelf"), self.text("node", "")
        await self.answer(self.browse(shelf, lambda b: b.code(node).to_json(), node))


class AnnotateHandler(ShelfHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        shelf = self.text("shelf")
        body = self._body()
        labshelf = self.labshelf
        run = body["run"]

        def ask(browser: Browser) -> dict[str, Any]:
            if not labshelf.allow_annotate:
                raise ReadOnlyShelf("annotating is turned off on this server (c.LabShelf.allow_annotate = False)")
            if browser.shelf.readonly:
                raise ReadOnlyShelf(
                    f"the shelf {shelf!r} is open read-only on this server (its folder cannot be written by the "
                    "server, or the server's configuration says mode 'r'): it cannot be annotated from here"
                )
            cells = browser.annotate(
                run, comment=body.get("comment", ...), tags=body.get("tags"), columns=body.get("columns")
            )
            return {"run": run, "cells": cells}

        node = f"run/{run}" if isinstance(run, int) and not isinstance(run, bool) else None
        await self.answer(self.browse(shelf, ask, node))

    def _body(self) -> dict[str, Any]:
        example = '{"run": 12, "comment": "aligned", "tags": ["good"], "columns": {"quality": 3}}'
        try:
            body = json.loads(self.request.body or b"", parse_constant=_no_constant)
        except ValueError:
            body = None
        if not isinstance(body, dict) or "run" not in body or set(body) - set(ANNOTATE_KEYS):
            raise InvalidParameter(
                f"the body is a JSON object with keys {', '.join(ANNOTATE_KEYS)} ('run' required; numbers finite), "
                f"like {example}"
            )
        return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")  # NaN, Infinity: Python's json would take them


#: (path under {base_url}labshelf/api/, handler).
HANDLERS: tuple[tuple[str, type[ShelfHandler]], ...] = (
    ("shelves", ShelvesHandler),
    ("shelf", ShelfInfoHandler),
    ("runs", RunsHandler),
    ("logbook", LogbookHandler),
    ("children", ChildrenHandler),
    ("search", SearchHandler),
    ("preview", PreviewHandler),
    ("picture", PictureHandler),
    ("pixel", PixelHandler),
    ("code", CodeHandler),
    ("annotate", AnnotateHandler),
)
