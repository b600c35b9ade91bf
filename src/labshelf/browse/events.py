"""What changed on a shelf, as a screen needs to know it: the change feed turned into events.

A front end that shows a shelf (the sidebar's run table and tree) does not
want every row of the change feed: it wants to know that a run appeared,
that a dataset was put, that a run ended or was annotated, that a column's
display metadata or tags changed ("metadata": redraw the headers), that the
logbook changed ("logbook": fetch the rows between runs again), and then
asks browse again for what it shows.  :func:`watch` registers a listener on the
shelf's feed (one thread per shelf, shared by every listener; it stops when
the last one leaves) and hands it, per batch the feed reads, the events of
that batch: one per (kind, run, name), in the order they happened, each
with the shelf's version after the batch.  Broadcasts (values shown live,
never stored) change nothing a table shows and are left out.

The listener runs on the feed's thread: it must be quick and must not
block (a server hands the events to its event loop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .records import Event

if TYPE_CHECKING:
    from ..live import Change
    from .browser import Browser

#: The change kinds of the feed and the events they are.
KINDS = {
    "run_start": "run",
    "run_end": "finished",
    "put": "dataset",
    "append": "dataset",
    "mutate": "dataset",
    "delete": "dataset",
    "annotate": "annotation",
    # What the columns mean (headers to redraw) and the logbook (rows between runs to fetch again).
    "describe": "metadata",
    "column_tags": "metadata",
    "log": "logbook",
}
#: Changes nothing a table or a tree shows.
IGNORED = frozenset({"broadcast"})

Listener = Callable[[list[Event]], None]


def events(changes: Sequence[Change], version: str) -> list[Event]:
    """The events of a batch of changes: one per (kind, run, name), first occurrence first."""
    seen: dict[tuple[str, int | None, str | None], Event] = {}
    for change in changes:
        if change.kind in IGNORED:
            continue
        kind = KINDS.get(change.kind, "changed")
        # The dataset, the field annotated, the column described or tagged.
        name = change.name if kind in ("dataset", "annotation", "metadata") else None
        key = (kind, change.run, name)
        if key not in seen:
            seen[key] = Event(kind, change.run, name, version)
    return list(seen.values())


def watch(browser: Browser, listener: Listener) -> Callable[[], None]:
    """Call ``listener(events)`` (on the feed's thread) for each batch of the shelf's changes.

    Returns the function that stops it; the feed's thread stops with the
    last listener of the shelf.  Stopping twice is harmless.
    """
    feed = browser.shelf._feed(None)

    def on_changes(found: list[Change]) -> None:
        try:
            version = browser.version()
        except Exception:  # a registry gone away between the read and now: the events still say what changed
            version = ""
        batch = events(found, version)
        if batch:
            listener(batch)

    feed.add(on_changes)
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            feed.remove(on_changes)

    return stop
