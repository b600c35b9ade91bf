"""The change feed of one shelf, and what wakes its readers.

Every write commits a row of ``changes`` (sequence number, kind, run, name,
data ID, version, small payload) in its own transaction, so "everything
after sequence number S" is exactly what a reader has not seen.  A
:class:`Feed` is one thread per shelf object that waits for a wake-up, reads
the new rows and hands them to its listeners (subscriptions, ``changes()``
iterators):

- SQLite: ``watchfiles`` (inotify and friends) on the registry's files; a
  commit touches the WAL.  The watch also times out every ``poll`` seconds
  and reads anyway, for file systems whose events do not arrive (NFS).
- PostgreSQL: ``LISTEN`` on the shelf's channel; writers ``pg_notify`` it in
  the transaction of each change (delivered at commit), from any machine.

The rows themselves are the truth: a wake-up only says "read again".
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..registry.registry import Registry

#: How often a feed reads the registry when no wake-up came (seconds).
DEFAULT_POLL = 0.5
#: The shortest time between two reads: a writer committing 1,000 times a
#: second then costs the watcher 50 small queries a second, not 1,000.  A
#: change after a quiet spell is read at once; in a burst, within this long.
MIN_INTERVAL = 0.02
_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class Change:
    """One event of the change feed."""

    seq: int
    time: float
    kind: str
    run: int | None
    name: str | None
    data_id: str | None
    version: int | None
    payload: str | None


Listener = Callable[[list[Change]], None]


class Feed:
    """Reads new changes of one registry when woken, and hands them to listeners."""

    def __init__(self, registry: Registry, folder: Path | None, *, poll: float = DEFAULT_POLL):
        self.registry = registry
        self.folder = folder
        self.poll = poll
        self.last = registry.last_seq()
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listen_conn: Any = None
        self._last_read = 0.0

    # -- listeners -----------------------------------------------------------------

    def add(self, listener: Listener) -> int:
        """Register a listener; returns the sequence number it starts after."""
        with self._lock:
            self._listeners.append(listener)
            if self._thread is None:
                # (Re)starting: what happened while nobody listened is not news.
                self.last = self.registry.last_seq()
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="labshelf-feed", daemon=True)
                self._thread.start()
            return self.last

    def remove(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            idle = not self._listeners
        if idle:
            self.stop()

    def stop(self) -> None:
        """Stop the thread (it restarts when a listener is added)."""
        self._stop.set()
        conn = self._listen_conn
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._lock:
            if self._thread is thread:
                self._thread = None

    # -- reading ---------------------------------------------------------------------

    def _paced_read(self) -> None:
        """``read_new``, but never sooner than MIN_INTERVAL after the previous read."""
        wait = self._last_read + MIN_INTERVAL - time.monotonic()
        if wait > 0 and self._stop.wait(wait):
            return
        self._last_read = time.monotonic()
        self.read_new()

    def read_new(self) -> None:
        """Read every change after the last one seen and hand them to the listeners."""
        while not self._stop.is_set():
            rows = self.registry.changes_since(self.last, _BATCH)
            if not rows:
                return
            found = [Change(**row) for row in rows]
            self.last = found[-1].seq
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                listener(found)
            if len(rows) < _BATCH:
                return

    def _run(self) -> None:
        try:
            if self.registry.db.dialect.name == "postgresql":
                self._run_postgres()
            else:
                self._run_files()
        except Exception:  # a broken watch must not kill the process: fall back to polling
            while not self._stop.wait(self.poll):
                with contextlib.suppress(Exception):
                    self.read_new()

    def _run_files(self) -> None:
        import watchfiles

        assert self.folder is not None
        registry_names = {"registry.sqlite3", "registry.sqlite3-wal"}

        def registry_file(_change: Any, path: str) -> bool:
            return Path(path).name in registry_names

        self.read_new()
        for _changes in watchfiles.watch(
            self.folder,
            watch_filter=registry_file,
            # A commit is a burst of writes to the WAL: yield 2 ms after the
            # first, never later than 20 ms.
            step=2,
            debounce=20,
            rust_timeout=max(1, int(self.poll * 1000)),
            yield_on_timeout=True,
            stop_event=self._stop,
            recursive=False,
            raise_interrupt=False,
        ):
            if self._stop.is_set():
                return
            self._paced_read()

    def _run_postgres(self) -> None:
        import psycopg

        engine = self.registry.db.engine
        # A connection of its own, outside the pool: it only listens.
        raw = engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            with driver.cursor() as cursor:
                cursor.execute("SELECT current_schema()")
                schema = cursor.fetchone()[0]
            info = driver.info
            conn = psycopg.connect(
                host=info.host, port=info.port, user=info.user, dbname=info.dbname,
                password=info.password or None, autocommit=True,
            )
        finally:
            raw.close()
        self._listen_conn = conn
        try:
            conn.execute(f'LISTEN "labshelf_{schema}"')
            self.read_new()
            while not self._stop.is_set():
                for _notify in conn.notifies(timeout=self.poll, stop_after=1):
                    break
                if self._stop.is_set():
                    return
                self._paced_read()
                # Notifications that came meanwhile are answered by that read.
                for _notify in conn.notifies(timeout=0):
                    pass
        finally:
            with contextlib.suppress(Exception):
                conn.close()
            self._listen_conn = None
