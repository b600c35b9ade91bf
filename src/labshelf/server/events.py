"""The sidebar's live updates: a WebSocket that streams the change events of the shelves a panel shows.

``GET {base_url}labshelf/api/events?shelf=S&shelf=S2`` upgrades to a
WebSocket once the user is authenticated (Jupyter's own login, as its
kernel and event sockets: no user, 403) and authorised to read contents,
and every shelf named opens.  Then each shelf's Browser is watched
(:mod:`labshelf.browse.events`): the feed's thread hands a batch of events
to the event loop (``IOLoop.add_callback``, the one thread-safe door), which
sends one message per event::

    {"shelf": S, "kind": "run"|"dataset"|"finished"|"annotation"|"changed", "run": int|null,
     "name"?: str, "version": str}

Closing the socket stops its listeners, off the loop (a feed thread is
joined when its last listener leaves); the server's shutdown closes every
socket (LabShelf.stop).  The client sends nothing; what it sends is ignored.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.ioloop import IOLoop
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..browse import Event
from ..errors import InvalidParameter
from .extension import Entry, LabShelf
from .handlers import error_answer

#: Shelves one socket may follow.
MAX_SHELVES = 32


class EventsHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """One panel's socket: the change events of the shelves it named."""

    auth_resource = "contents"

    def initialize(self) -> None:
        self._entries: list[Entry] = []
        self._stops: list[Callable[[], None]] = []
        self._loop: IOLoop | None = None
        self._closed = False

    @property
    def labshelf(self) -> LabShelf:
        return self.settings["labshelf"]

    def set_default_headers(self) -> None:
        """No page headers (CSP and the like) on a socket, as Jupyter's kernel sockets."""

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        if not await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read", "contents")):
            raise web.HTTPError(403, "not authorized to read contents")
        shelves = self.get_arguments("shelf", strip=False)
        labshelf = self.labshelf
        try:
            if not shelves or len(shelves) > MAX_SHELVES:
                raise InvalidParameter(f"events follow 1 to {MAX_SHELVES} shelves (shelf=S&shelf=S2...), not {len(shelves)}")
            self._entries = await asyncio.get_running_loop().run_in_executor(
                labshelf.pool, lambda: [labshelf.entry(s) for s in dict.fromkeys(shelves)]
            )
        except Exception as exc:  # refused before the upgrade, with the JSON error of the REST handlers
            status, body = error_answer(exc)
            self.set_status(status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(body))
            return
        await super().get(*args, **kwargs)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)  # WebSocketMixin's keep-alive pings
        self._loop = IOLoop.current()
        labshelf = self.labshelf
        labshelf.closing(self.close)
        entries = self._entries

        def listen() -> list[Callable[[], None]]:
            stops = []
            for entry in entries:
                stop = entry.browser.watch(functools.partial(self._deliver, entry.target.id))
                labshelf.watching(stop)
                stops.append(stop)
            return stops

        self._stops = await asyncio.get_running_loop().run_in_executor(labshelf.pool, listen)
        if self._closed:  # closed while the listeners were being added
            self._stop_listening()

    def _deliver(self, shelf: str, events: list[Event]) -> None:
        """On a feed thread: hand the events to the loop."""
        if self._loop is not None and not self._closed:
            self._loop.add_callback(self._send, shelf, events)

    def _send(self, shelf: str, events: list[Event]) -> None:
        if self._closed:
            return
        try:
            for event in events:
                self.write_message(json.dumps({"shelf": shelf, **event.to_json()}))
        except WebSocketClosedError:
            self.on_close()  # the peer went away without a close handshake

    def on_message(self, message: str | bytes) -> None:
        """Nothing to receive: the panel only listens."""

    def on_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.labshelf.closing(self.close, add=False)
        self._stop_listening()

    def _stop_listening(self) -> None:
        stops, self._stops = self._stops, []
        labshelf = self.labshelf
        for stop in stops:
            labshelf.watching(stop, add=False)
        if stops:
            try:  # a feed thread is joined when its last listener leaves: never on the loop
                labshelf.pool.submit(lambda: [stop() for stop in stops])
            except RuntimeError:  # the pool is shut down: the server is stopping, and stops every feed itself
                for stop in stops:
                    stop()
