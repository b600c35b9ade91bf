"""The sidebar's live updates: a WebSocket that streams the change events of the shelves a panel shows.

``GET {base_url}labshelf/api/events?shelf=S&shelf=S2`` upgrades to a
WebSocket once the user is authenticated (Jupyter's own login, as its
kernel and event sockets: no user, 403) and authorised to read contents,
and every shelf named opens.  Then each shelf's Browser is watched
(:mod:`labshelf.browse.events`): the feed's thread hands a batch of events
to the event loop (``IOLoop.add_callback``, the one thread-safe door), which
sends one message per event::

    {"shelf": S, "kind": "run"|"dataset"|"finished"|"annotation"|"metadata"|"logbook"|"changed",
     "run": int|null, "name"?: str, "version": str}

The listeners are registered before the upgrade completes (what happens
meanwhile is sent once the socket opens), so a panel that asks for its
pages once the socket is open misses no change.  Closing the socket stops
its listeners, off the loop (a feed thread is joined when its last
listener leaves); the server's shutdown closes every socket
(LabShelf.stop).  The client sends nothing; what it sends is ignored.
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
        self._stops: list[Callable[[], None]] = []
        self._loop: IOLoop | None = None
        #: Events that came before the socket opened, sent when it does.
        self._pending: list[str] | None = []
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
        loop = asyncio.get_running_loop()
        try:
            if not shelves or len(shelves) > MAX_SHELVES:
                raise InvalidParameter(f"events follow 1 to {MAX_SHELVES} shelves (shelf=S&shelf=S2...), not {len(shelves)}")
            entries = await loop.run_in_executor(labshelf.pool, lambda: [labshelf.entry(s) for s in dict.fromkeys(shelves)])
        except Exception as exc:  # refused before the upgrade, with the JSON error of the REST handlers
            status, body = error_answer(exc)
            self.set_status(status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(body))
            return
        self._loop = IOLoop.current()
        labshelf.closing(self.close)
        try:
            # Listening before the upgrade: a panel that asks for pages once its socket is open
            # misses no change made in between (events of the meantime wait in _pending).
            self._stops = await loop.run_in_executor(labshelf.pool, self._listen, entries)
            await super().get(*args, **kwargs)  # returns when the socket closes (or was never opened)
        finally:
            self.on_close()

    def _listen(self, entries: list[Entry]) -> list[Callable[[], None]]:
        stops = []
        for entry in entries:
            stop = entry.browser.watch(functools.partial(self._deliver, entry.target.id))
            self.labshelf.watching(stop)
            stops.append(stop)
        return stops

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)  # WebSocketMixin's keep-alive pings
        pending, self._pending = self._pending or [], None
        self._write(pending)

    def _deliver(self, shelf: str, events: list[Event]) -> None:
        """On a feed thread: hand the events to the loop."""
        if self._loop is not None and not self._closed:
            self._loop.add_callback(self._send, [json.dumps({"shelf": shelf, **e.to_json()}) for e in events])

    def _send(self, messages: list[str]) -> None:
        if self._closed:
            return
        if self._pending is not None:
            self._pending.extend(messages)
        else:
            self._write(messages)

    def _write(self, messages: list[str]) -> None:
        try:
            for message in messages:
                self.write_message(message)
        except WebSocketClosedError:
            self.on_close()  # the peer went away without a close handshake

    def on_message(self, message: str | bytes) -> None:
        """Nothing to receive: the panel only listens."""

    def on_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending = None
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
