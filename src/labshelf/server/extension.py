"""LabShelf: the server's configuration (``c.LabShelf.*``) and the shelves it has opened.

One LabShelf lives in a Jupyter server.  It resolves what a request names
(a path under root_dir, checked by :mod:`labshelf.server.places`, or a
configured name), opens each shelf once, lazily, and keeps one
:class:`~labshelf.browse.Browser` per shelf for every request and socket
(Browsers are thread-safe).  labshelf calls block (SQL, HDF5), so handlers
run them on its small thread pool, never on the event loop.  ``stop()``
(at server shutdown) stops every change feed and closes every shelf.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from traitlets import Bool, Dict, Float, Int, TraitError, validate
from traitlets.config import Configurable

from ..browse import Browser
from ..errors import ShelfError
from . import places

#: Keys of a configured shelf given as a dict.
CONFIG_KEYS = ("registry", "root", "schema", "mode")


@dataclass(frozen=True, slots=True)
class Target:
    """What a ``shelf`` parameter names: a folder under root_dir, or a configured shelf."""

    #: The id a client passes back: the relative path, or the configured name.
    id: str
    #: The shelf folder, or a postgresql:// URL.
    path: str
    root: str | None = None
    schema: str | None = None
    #: "r" to open read-only whatever the folder allows; None: as the folder allows.
    mode: str | None = None
    configured: bool = False

    @property
    def key(self) -> tuple[str, ...]:
        """What identifies the shelf opened (two paths through an inside link are one shelf)."""
        return (self.path, self.root or "", self.schema or "", self.mode or "")


@dataclass(frozen=True, slots=True)
class Entry:
    """An opened shelf: its Browser, and what named it."""

    target: Target
    browser: Browser


class LabShelf(Configurable):
    """The JupyterLab sidebar's server: which shelves it serves and what it allows.

    Configure it as ``c.LabShelf.<name>`` in ``jupyter_server_config.py``
    (or ``--LabShelf.<name>=`` on the command line).
    """

    shelves = Dict(
        default_value={},
        help="""Shelves served by name besides those under root_dir: {name: where}.  ``where`` is a shelf
        folder, a postgresql:// URL whose query may give ``root`` (its data folder) and ``schema``, or a dict
        {"registry": folder or URL, "root": data folder, "schema": schema, "mode": "r" or "rw"}.""",
    ).tag(config=True)
    allow_annotate = Bool(
        True, help="Whether people may edit comments, tags and user columns from the sidebar (False opens every shelf read-only)."
    ).tag(config=True)
    scan_depth = Int(4, help="How many folders deep under root_dir shelves are looked for.").tag(config=True)
    scan_folders = Int(2000, help="At most this many folders are read when looking for shelves under root_dir.").tag(config=True)
    scan_seconds = Float(10.0, help="How long the shelves found under root_dir are remembered (seconds).").tag(config=True)
    workers = Int(4, help="Threads that run labshelf calls (reads, previews), so the event loop never waits.").tag(config=True)

    @validate("shelves")
    def _check_shelves(self, proposal: Any) -> dict[str, Any]:
        value = proposal["value"]
        for name, where in value.items():
            _configured(name, where, Path("."))  # raises TraitError
        return dict(value)

    @validate("scan_depth", "scan_folders", "workers")
    def _check_positive(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise TraitError(f"LabShelf.{proposal['trait'].name} is at least 1, not {proposal['value']}")
        return int(proposal["value"])

    def __init__(self, root_dir: str | os.PathLike[str], *, allow_hidden: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.root = Path(os.path.realpath(root_dir))
        self.allow_hidden = allow_hidden
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="labshelf-server")
        self._lock = threading.Lock()
        self._open: dict[tuple[str, ...], Entry] = {}
        self._opening: dict[tuple[str, ...], threading.Lock] = {}
        self._found: tuple[float, places.Found] | None = None
        self._stops: set[Callable[[], None]] = set()
        self._closers: set[Callable[[], None]] = set()
        self._stopped = False

    # -- naming and opening ----------------------------------------------------------------

    def target(self, shelf: Any) -> Target:
        """What the ``shelf`` parameter names (a configured name, else a path under root_dir, checked)."""
        if isinstance(shelf, str) and shelf in self.shelves:
            return _configured(shelf, self.shelves[shelf], self.root)
        folder = places.shelf_folder(self.root, shelf, allow_hidden=self.allow_hidden)
        return Target(str(shelf), str(folder))

    def entry(self, shelf: Any) -> Entry:
        """The opened shelf the parameter names: opened on first use, then shared (blocking: call off the loop)."""
        target = self.target(shelf)
        key = target.key
        with self._lock:
            self._check_running()
            found = self._open.get(key)
            if found is not None:
                return Entry(target, found.browser)
            opening = self._opening.setdefault(key, threading.Lock())
        with opening:  # one open per shelf at a time; other shelves open meanwhile
            with self._lock:
                found = self._open.get(key)
            if found is not None:
                return Entry(target, found.browser)
            opened = self._open_shelf(target)
            with self._lock:
                if self._stopped:
                    opened.close()
                    self._check_running()
                self._open[key] = Entry(target, Browser(opened))
                return self._open[key]

    def _open_shelf(self, target: Target) -> Any:
        from ..opening import open_alone

        mode = "r" if not self.allow_annotate or target.mode == "r" else target.mode
        # Alone: the parents a registry records are untrusted rows that may name any folder.
        return open_alone(target.path, mode=mode, root=target.root, schema=target.schema)

    def _check_running(self) -> None:
        if self._stopped:
            raise ShelfError("the server is stopping")

    # -- the list of shelves ------------------------------------------------------------------

    def found(self) -> places.Found:
        """The shelves under root_dir, from a bounded walk remembered for ``scan_seconds``."""
        now = time.monotonic()
        with self._lock:
            if self._found is not None and now - self._found[0] < self.scan_seconds:
                return self._found[1]
        walked = places.find_shelves(self.root, depth=self.scan_depth, folders=self.scan_folders, allow_hidden=self.allow_hidden)
        with self._lock:
            self._found = (time.monotonic(), walked)
        return walked

    def describe(self, shelf: Any) -> dict[str, Any]:
        """What a list of shelves shows of one (opening it if need be): runs, newest change, writable, version."""
        facts = self.entry(shelf).browser.summary().to_json()
        facts["writable"] = facts["writable"] and self.allow_annotate
        return {**self._names(shelf), **facts}

    def _names(self, shelf: str) -> dict[str, Any]:
        configured = shelf in self.shelves
        name = shelf if configured else shelf.rsplit("/", 1)[-1].removesuffix(places.SUFFIX)
        return {"shelf": shelf, "name": name, "configured": configured}

    def list_shelves(self) -> dict[str, Any]:
        """The configured shelves, then those under root_dir; one that cannot be opened shows its ``error``."""
        walked = self.found()
        listed = []
        for shelf in [*self.shelves, *(s for s in walked.shelves if s not in self.shelves)]:
            try:
                listed.append(self.describe(shelf))
            except Exception as exc:  # one shelf that cannot be opened is a line of the list, not a failed list
                listed.append({**self._names(shelf), "backend": None, "runs": None, "last_change": None,
                               "writable": False, "error": one_line(exc)})
        return {"shelves": listed, "root": shown_path(self.root), "truncated": walked.truncated}

    # -- lifecycle ----------------------------------------------------------------------------

    def watching(self, stop: Callable[[], None], add: bool = True) -> None:
        """Remember (or forget) a change-feed listener, so that ``stop()`` can end it."""
        with self._lock:
            if add:
                self._stops.add(stop)
            else:
                self._stops.discard(stop)

    def closing(self, close: Callable[[], None], add: bool = True) -> None:
        """Remember (or forget) an open event socket's close, for ``stop()``."""
        with self._lock:
            if add:
                self._closers.add(close)
            else:
                self._closers.discard(close)

    def stop(self) -> None:
        """Close every event socket, stop every feed listener and close every shelf opened (server shutdown)."""
        with self._lock:
            self._stopped = True
            closers, self._closers = list(self._closers), set()
            stops, self._stops = list(self._stops), set()
            entries, self._open = list(self._open.values()), {}
        for close in closers:
            _quietly(close)
        for stop in stops:
            _quietly(stop)
        for entry in entries:
            _quietly(entry.browser.shelf.close)  # stops its feed thread too
        self.pool.shutdown(wait=False, cancel_futures=True)


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # shutting down: one stuck shelf must not keep the others open
        pass


def _configured(name: Any, where: Any, root: Path) -> Target:
    """A configured shelf, checked (TraitError says what is wrong)."""
    if not isinstance(name, str) or not name or name.endswith(places.SUFFIX) or "/" in name:
        raise TraitError(
            f"LabShelf.shelves: a shelf name is a non-empty str without '/' that does not end in "
            f"{places.SUFFIX!r} (those name folders under root_dir), not {name!r}"
        )
    if isinstance(where, str):
        if where.startswith("postgresql://"):
            parts = urlsplit(where)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            root_given, schema = query.pop("root", None), query.pop("schema", None)
            url = urlunsplit(parts._replace(query=urlencode(query)))
            where = {"registry": url, "root": root_given, "schema": schema}
        else:
            where = {"registry": where}
    if not isinstance(where, dict) or set(where) - set(CONFIG_KEYS) or not isinstance(where.get("registry"), str):
        raise TraitError(
            f"LabShelf.shelves[{name!r}] is a shelf folder, a postgresql:// URL (with root= and schema= in its "
            f"query), or a dict with keys {', '.join(CONFIG_KEYS)} ('registry' required), not {where!r}"
        )
    if any(where.get(k) is not None and not isinstance(where[k], str) for k in CONFIG_KEYS):
        raise TraitError(f"LabShelf.shelves[{name!r}]: every value is a str, not {where!r}")
    if where.get("mode") not in (None, "r", "rw"):
        raise TraitError(f"LabShelf.shelves[{name!r}]: mode is 'r' or 'rw', not {where['mode']!r}")
    path = where["registry"]
    if not path.startswith("postgresql://"):
        path = str(root / Path(path).expanduser())
    root_given = where.get("root")
    if root_given is not None:
        root_given = str(root / Path(root_given).expanduser())
    return Target(name, path, root_given, where.get("schema"), where.get("mode"), configured=True)


def shown_path(path: Path) -> str:
    """A path as a person reads it: under the home folder as ``~/...``."""
    home = Path(os.path.realpath(Path.home()))
    if places.inside(home, path):
        return "~" if path == home else "~/" + path.relative_to(home).as_posix()
    return str(path)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

