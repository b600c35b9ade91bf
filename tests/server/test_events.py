"""The events WebSocket: changes made by another process arrive; sockets and the server stop their feeds.

The server runs in this process (pytest-jupyter), so the feed threads it
starts are this process's threads named ``labshelf-feed``: counting them
shows when a feed runs and that it stops.  Writers are separate Python
processes using labshelf, as an experiment would be.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from _serving import SHELF
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

import labshelf

SOURCE = str(Path(labshelf.__file__).resolve().parents[1])
WRITER = """
import sys, labshelf
with labshelf.open(sys.argv[1]) as shelf:
    with shelf.new_run("from-outside") as run:
        run.put("temperature", 999.0)
    shelf.annotate(run.number, comment="seen from afar")
print(run.number)
"""


def feed_threads() -> int:
    return sum(t.name == "labshelf-feed" for t in threading.enumerate())


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def messages(ws: WebSocketClientConnection, enough: Callable[[list[dict[str, Any]]], bool],
                   timeout: float = 15.0) -> list[dict[str, Any]]:
    """Messages until ``enough(messages)`` (or the socket closes, or the time is up)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not enough(got):
        try:
            text = await asyncio.wait_for(ws.read_message(), max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        if text is None:
            break
        got.append(json.loads(text))
    return got


async def write_elsewhere(shelf: Path) -> int:
    """A run with a dataset and an annotation, written by another process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(shelf), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return int(out.decode().split()[-1])


@pytest.fixture
def events_socket(http_server_client: Any, jp_http_port: int, jp_base_url: str, jp_auth_header: dict[str, str]) -> Any:
    """``await events_socket([SHELF, ...], headers=...)``: a socket on ``events?shelf=...&shelf=...``."""

    async def connect(shelves: list[str], headers: dict[str, str] | None = None) -> WebSocketClientConnection:
        query = urlencode([("shelf", s) for s in shelves])
        request = HTTPRequest(f"ws://127.0.0.1:{jp_http_port}{jp_base_url}labshelf/api/events?{query}",
                              headers={**jp_auth_header, **(headers or {})}, connect_timeout=30)
        return await websocket_connect(request)

    return connect


async def test_a_run_written_by_another_process_arrives(lab: Path, events_socket: Any) -> None:
    ws = await events_socket([SHELF])
    number = await write_elsewhere(lab)
    got = await messages(ws, lambda m: any(e["kind"] == "annotation" for e in m))
    ws.close()
    kinds = [(m["kind"], m["run"], m.get("name")) for m in got]
    assert kinds == [("run", number, None), ("dataset", number, "temperature"), ("finished", number, None),
                     ("annotation", number, "comment")], got
    assert all(m["shelf"] == SHELF and m["version"] for m in got)
    assert got[-1]["version"].startswith(f"{number}:")


DESCRIBER = """
import sys, labshelf
with labshelf.open(sys.argv[1]) as shelf:
    shelf.describe("temperature", unit="K")
    shelf.tag_columns("temperature", ["cryo"])
    shelf.log("compressor restarted")
"""


async def test_metadata_and_logbook_changes_arrive_as_their_own_kinds(lab: Path, events_socket: Any) -> None:
    ws = await events_socket([SHELF])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")])}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", DESCRIBER, str(lab), env=env,
                                                stderr=asyncio.subprocess.PIPE)
    _out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    got = await messages(ws, lambda m: any(e["kind"] == "logbook" for e in m))
    ws.close()
    kinds = [(m["kind"], m["run"], m.get("name")) for m in got]
    # describe and tag_columns may come in one batch (one message: same kind, run and name) or two.
    assert kinds in ([("metadata", None, "temperature"), ("logbook", None, None)],
                     [("metadata", None, "temperature"), ("metadata", None, "temperature"), ("logbook", None, None)]), got


async def test_closing_the_socket_stops_the_feed_thread(lab: Path, events_socket: Any, jp_root_dir: Path) -> None:
    before = feed_threads()
    first = await events_socket([SHELF])
    second = await events_socket([SHELF])
    assert await until(lambda: feed_threads() == before + 1)  # one feed per shelf, shared by the sockets
    first.close()
    await asyncio.sleep(0.5)
    assert feed_threads() == before + 1  # the other socket still listens
    await write_elsewhere(lab)
    assert [m["kind"] for m in await messages(second, lambda m: len(m) >= 1)][:1] == ["run"]
    second.close()
    assert await until(lambda: feed_threads() == before), "the feed thread kept running after its sockets closed"


async def test_stopping_the_server_stops_feeds_and_closes_shelves(lab: Path, events_socket: Any, jp_serverapp: Any) -> None:
    before = feed_threads()
    ws = await events_socket([SHELF])
    assert await until(lambda: feed_threads() == before + 1)
    opened = [entry.browser.shelf for entry in jp_serverapp.web_app.settings["labshelf"]._open.values()]
    assert len(opened) == 1
    await jp_serverapp.cleanup_extensions()  # what every shutdown of the server runs
    assert await until(lambda: feed_threads() == before)
    assert all(repr(shelf).endswith("closed>") for shelf in opened)
    assert await asyncio.wait_for(ws.read_message(), 5) is None  # the socket was closed by the server
    ws.close()


async def test_an_unauthenticated_socket_is_refused(lab: Path, events_socket: Any) -> None:
    before = feed_threads()
    for headers in ({"Authorization": ""}, {"Authorization": "token wrong"}):
        with pytest.raises(HTTPClientError) as caught:
            await events_socket([SHELF], headers)
        assert caught.value.code == 403
    assert feed_threads() == before


@pytest.mark.parametrize(
    ("shelves", "status"),
    [(["../outside.shelf"], 403), (["data/none.shelf"], 404), ([SHELF, "/etc/x.shelf"], 403), ([], 400)],
)
async def test_a_socket_for_a_bad_shelf_is_refused_before_it_opens(
    lab: Path, events_socket: Any, shelves: list[str], status: int
) -> None:
    before = feed_threads()
    with pytest.raises(HTTPClientError) as caught:
        await events_socket(shelves)
    assert caught.value.code == status
    await asyncio.sleep(0.2)
    assert feed_threads() == before
