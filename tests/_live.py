"""What the live tests share: waiting for an update, collecting updates, the live threads."""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable

from labshelf.live import Update

#: The threads a subscription starts (the writer's summary pool is process-wide by design).
LIVE_THREADS = ("labshelf-feed", "labshelf-subscription")


def live_threads() -> list[str]:
    """Names of the live threads still running."""
    return sorted(t.name for t in threading.enumerate() if t.name in LIVE_THREADS and t.is_alive())


def live_stacks() -> str:
    """Where the live threads are: what a hung subscription was doing when a wait timed out."""
    frames = sys._current_frames()
    return "\n".join(
        f"--- {t.name}\n" + "".join(traceback.format_stack(frames[t.ident]))
        for t in threading.enumerate()
        if t.name in LIVE_THREADS and t.ident in frames
    )


def wait_for(condition: Callable[[], bool], what: str = "a live update", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; live threads:\n{live_stacks()}")
        time.sleep(0.005)


class Collector:
    """A callback keeping every update (thread-safe: it runs on the subscription's worker)."""

    def __init__(self) -> None:
        self.updates: list[Update] = []
        self.lock = threading.Lock()

    def __call__(self, update: Update) -> None:
        with self.lock:
            self.updates.append(update)

    def of(self, name: str, run: int | None = None) -> list[Update]:
        with self.lock:
            return [u for u in self.updates if u.name == name and (run is None or u.run == run)]

    def last(self, name: str, run: int | None = None) -> Update | None:
        found = self.of(name, run)
        return found[-1] if found else None
