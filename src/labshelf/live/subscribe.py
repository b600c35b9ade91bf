"""Subscriptions: the current value of datasets matching a pattern, kept up to date from deltas.

The feed thread only marks what changed: per (run, name, data ID) a small
:class:`_Pending` summary (kinds seen, how many, newest sequence number and
time, the mutated indices while few) replaces itself, never queues.  The
subscription's own worker then brings its copy of the value up to date with
the least reading it can — the appended rows only, or the mutated region
only, else the whole value — and calls back, serving the pending names in
turn (the one pending longest first).  A slow callback therefore makes
updates coalesce (latest value wins) without starving any name; memory stays
that of the values, and the last value is always delivered.

Display metadata changes (``describe`` in the feed) of watched names reach
an ``on_describe`` callback, coalesced the same way (the newest metadata of
each name and data ID), so widgets can relabel axes and reformat values.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import math
import numbers
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DatasetNotFound, InvalidName, InvalidOptions
from .feed import Change

if TYPE_CHECKING:
    from ..registry.meta import DisplayMeta
    from ..registry.records import DatasetRef
    from ..shelf import Shelf

_PATTERN = re.compile(r"[\w\-+=@,#%()/*?\[\]!]+\Z")
_MAX_INDICES = 16
_DATA_KINDS = {"put", "append", "mutate", "broadcast", "delete"}


def check_patterns(patterns: str | Iterable[str]) -> tuple[str, ...]:
    """Glob patterns of dataset names, checked (InvalidName saying what is wrong)."""
    if isinstance(patterns, str):
        items: tuple[Any, ...] = (patterns,)
    elif isinstance(patterns, Iterable) and not isinstance(patterns, bytes | Mapping):
        items = tuple(patterns)
    else:
        raise InvalidName(
            f"names= takes a dataset name or glob pattern (a str) or a list of them, not {patterns!r}"
        )
    if not items:
        raise InvalidName("subscribe() needs at least one dataset name or pattern")
    for pattern in items:
        if not isinstance(pattern, str) or not pattern or not _PATTERN.match(pattern):
            raise InvalidName(
                f"{pattern!r} is not a dataset name pattern: use name characters, '/', and the globs * ? [...]"
            )
        if pattern.count("[") != pattern.count("]") or re.search(r"\[[^\]]*\[", pattern):
            raise InvalidName(f"pattern {pattern!r} has an unbalanced '[': write a set like [abc] or [0-9]")
    return items


@dataclass(frozen=True, slots=True)
class Update:
    """What a subscription callback receives: the current value of one dataset, and how it changed."""

    name: str
    data_id: dict[str, Any]
    run: int
    #: "value" (first delivery), "put", "append", "mutate", "broadcast" or "delete" (value None).
    kind: str
    value: Any
    #: For "append": the rows appended since the previous callback.
    delta: Any = None
    #: For a lone "mutate": the index that changed.
    index: Any = None
    #: True when ``value`` replaced the previous one wholesale.
    reset: bool = True
    version: int | None = None
    seq: int = 0
    #: Commit time of the newest change in this update (epoch seconds).
    time: float = 0.0
    #: How many changes were merged into this update.  (Changes an earlier
    #: update already covered, having read a newer version, are not counted again.)
    frames: int = 1
    ref: DatasetRef | None = None
    _full: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def latency(self) -> float:
        """Seconds from the commit to now."""
        return time.time() - self.time

    def full(self) -> Any:
        """The value at full resolution (``value`` is a preview when the subscription asked for one)."""
        return self._full() if self._full is not None else self.value


@dataclass
class _Pending:
    kinds: set[str] = field(default_factory=set)
    count: int = 0
    seq: int = 0
    time: float = 0.0
    indices: list[Any] | None = field(default_factory=list)


@dataclass
class _State:
    value: Any = None
    #: Appends land in spare room at the end of this array (``value`` is its
    #: head), so following a long scan costs amortised O(rows), not O(n^2).
    buffer: Any = None
    version: int | None = None
    length: int | None = None
    delivered_at: float = 0.0


def _decode_index(encoded: Any) -> Any:
    if isinstance(encoded, list):
        return tuple(_decode_index(i) for i in encoded)
    if isinstance(encoded, dict) and "slice" in encoded:
        return slice(*encoded["slice"])
    if encoded == "...":
        return Ellipsis
    return encoded


def kernel_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop of the Jupyter kernel this code runs in (on its main thread), else None.

    Only a kernel's loop: other code may keep a loop marked running on the
    main thread while it blocks (Playwright's sync API does), and callbacks
    posted there would never run.
    """
    import sys

    if "ipykernel" not in sys.modules or threading.current_thread() is not threading.main_thread():
        return None
    from IPython import get_ipython

    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        io_loop = getattr(kernel, "io_loop", None)
        loop = getattr(io_loop, "asyncio_loop", None)
        return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


class Subscription:
    """A live subscription; close it (or the shelf) to stop its threads.

    ``callback(update)`` receives an :class:`Update` whenever a watched
    dataset of a watched run changes.  ``on_describe(meta)``, if given,
    receives a :class:`~labshelf.registry.meta.DisplayMeta` whenever the
    display metadata of a watched name change (``shelf.describe``, or a put
    that carries new ones), whatever the run: ``meta`` is what is now said
    of the name as a whole (``meta.data_id`` empty) or of one data ID (its
    own fields over the name's), as ``shelf.metadata(name, data_id=...)``
    gives it; an empty record when everything was cleared.  A describe of
    the name as a whole changes what every data ID shows: a subscriber
    following one data ID asks ``shelf.metadata(name, data_id=...)`` again.
    Changes in quick succession are merged (the newest metadata arrive);
    ``on_describe`` runs where ``callback`` does, one call at a time with it.
    """

    def __init__(
        self,
        shelf: Shelf,
        patterns: str | Iterable[str],
        callback: Callable[[Update], Any],
        *,
        run: int | str | None = "latest",
        max_rate: float | None = None,
        preview: Sequence[int] | None = None,
        poll: float | None = None,
        on_describe: Callable[[DisplayMeta], Any] | None = None,
    ):
        # Everything is checked before the feed starts: a refusal leaves no thread behind.
        self.pattern = check_patterns(patterns)
        if not callable(callback):
            raise InvalidOptions(f"subscribe() needs a callable callback (a function of one Update), not {callback!r}")
        if on_describe is not None and not callable(on_describe):
            raise InvalidOptions(
                f"on_describe= takes a callable (a function of one DisplayMeta) or None, not {on_describe!r}"
            )
        run = check_run(run)
        rate = _positive("max_rate", max_rate, "calls per second per dataset")
        seconds = _positive("poll", poll, "seconds between reads when no wake-up arrives")
        self._shelf = shelf
        self._callback = callback
        self._on_describe = on_describe
        #: (name, data ID key) whose metadata changed, not yet delivered, in the order they changed.
        self._described: dict[tuple[str, str], int] = {}
        self._mode = run
        self._interval = 0.0 if rate is None else 1.0 / rate
        self._preview = _check_preview(preview)
        #: Open slots in the order they were opened: the order they are served in (see _next).
        self._pending: dict[tuple[int, str, str], _Pending] = {}
        self._states: dict[tuple[int, str, str], _State] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._loop = kernel_loop()
        self.delivered = 0
        self.errors: list[str] = []
        registry = shelf._registry
        self._latest = max(registry.run_numbers() or [0]) if run == "latest" else None
        feed = shelf._feed(seconds)
        self._feed = feed
        feed.add(self._on_changes)
        self._snapshot()
        self._worker = threading.Thread(target=self._work, name="labshelf-subscription", daemon=True)
        self._worker.start()

    # -- what is watched --------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _matches(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.pattern)

    def _wanted_run(self, run: int | None) -> bool:
        if run is None:
            return False
        if self._mode is None:
            return True
        if self._mode == "latest":
            return run == self._latest
        return run == self._mode

    def _snapshot(self) -> None:
        """Mark the current values of the watched run as to be delivered first."""
        target = self._mode if isinstance(self._mode, int) else self._latest
        if not target:
            return
        for ref in self._shelf._registry.datasets(target):
            if self._matches(ref.name):
                self._mark(Change(0, ref.updated, "value", ref.run, ref.name, _key(ref.data_id), ref.version, None))
        self._wake.set()

    def _on_changes(self, found: list[Change]) -> None:
        """Called on the feed thread: remember what changed; never reads values."""
        for change in found:
            if change.kind == "describe":
                if self._on_describe is not None and change.name is not None and self._matches(change.name):
                    with self._lock:
                        self._described[(change.name, change.data_id or "{}")] = change.seq
                continue
            if change.kind == "run_start" and self._mode == "latest" and change.run is not None:
                with self._lock:
                    self._latest = change.run
                    self._pending = {k: v for k, v in self._pending.items() if k[0] == change.run}
                    self._states = {k: v for k, v in self._states.items() if k[0] == change.run}
                continue
            if change.kind not in _DATA_KINDS or change.name is None or not self._matches(change.name):
                continue
            if not self._wanted_run(change.run):
                continue
            self._mark(change)
        self._wake.set()

    def _mark(self, change: Change) -> None:
        assert change.run is not None and change.name is not None
        key = (change.run, change.name, change.data_id or "{}")
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending()
            pending.kinds.add(change.kind)
            pending.count += 1
            pending.seq = max(pending.seq, change.seq)
            pending.time = max(pending.time, change.time)
            if change.kind == "mutate" and pending.indices is not None:
                try:
                    index = json.loads(change.payload or "{}").get("index")
                except (ValueError, AttributeError):  # a damaged change row: read the whole value
                    index = None
                if len(pending.indices) >= _MAX_INDICES or index is None:
                    pending.indices = None  # too many to patch: read the whole value
                else:
                    pending.indices.append(_decode_index(index))

    # -- the worker --------------------------------------------------------------------

    def _work(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(timeout=1.0)
            if self._closed.is_set():
                return
            self._wake.clear()
            self._deliver_described()
            while not self._closed.is_set():
                key, pending, delay = self._next()
                if key is None:
                    if delay:
                        self._wake.wait(timeout=delay)
                        self._wake.clear()
                        continue
                    break
                assert pending is not None
                try:
                    update = self._build(key, pending)
                except DatasetNotFound:
                    continue
                except Exception as exc:  # a damaged value must not stop the others
                    self.errors.append(f"{key[1]} (run {key[0]}): {exc}")
                    del self.errors[:-20]
                    continue
                if update is not None:
                    self._deliver(update)
                self._deliver_described()

    def _deliver_described(self) -> None:
        """Read and deliver the metadata of the names whose description changed (never throttled: they are rare)."""
        if self._on_describe is None:
            return
        with self._lock:
            described, self._described = self._described, {}
        for name, key in described:
            if self._closed.is_set():
                return
            try:
                meta = self._shelf.metadata(name, data_id=json.loads(key))
            except Exception as exc:  # a damaged row must not stop the others
                self.errors.append(f"metadata of {name}: {exc}")
                del self.errors[:-20]
                continue
            self._deliver(meta, describe=True)

    def _next(self) -> tuple[tuple[int, str, str] | None, _Pending | None, float]:
        """The key pending longest that is due, or the time to wait for one held back by max_rate.

        ``_pending`` is in the order slots were opened (a change merges into
        its open slot without moving it; serving a key closes its slot), so
        taking the first due key serves every pending name in turn: a name
        waits for at most one call per other pending name, however fast any
        of them changes.  Ordering by the newest change instead starved the
        fastest names, whose newest change is always the most recent.
        """
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in self._pending:
                state = self._states.get(key)
                due = (state.delivered_at if state else 0.0) + self._interval
                if due <= now:
                    return key, self._pending.pop(key), 0.0
                wait = min(wait or due - now, due - now)
        return None, None, wait

    def _build(self, key: tuple[int, str, str], pending: _Pending) -> Update | None:
        run, name, data_id = key
        shelf = self._shelf
        state = self._states.get(key)
        did = json.loads(data_id)
        ref = shelf._registry.find(run, name, data_id)
        if ref is None:
            slot = shelf._registry.broadcast_value(run, name, data_id)
            if slot is None:
                if "delete" in pending.kinds and state is not None:
                    del self._states[key]  # gone: a later put starts afresh
                    return Update(name, did, run, "delete", None, seq=pending.seq, time=pending.time, frames=pending.count)
                return None
            from ..datastore import formatters

            kind, inline = slot
            value = None if inline is None else formatters.by_kind(kind).from_inline(inline)
            return Update(name, did, run, "broadcast", value, seq=pending.seq, time=pending.time, frames=pending.count)
        if state is not None and state.version == ref.version:
            return None  # an earlier update already read this version
        kinds = pending.kinds
        first = state is None or state.version is None
        value, delta, index, reset, kind = None, None, None, True, "value" if first else "put"
        if not first and state is not None and kinds <= {"append"} and ref.shape and state.length is not None \
                and ref.shape[0] >= state.length and self._preview is None:
            delta = shelf._read_uncached(ref, {"slice": (slice(state.length, ref.shape[0]),)})
            value = _grow(state, delta)
            reset, kind = False, "append"
        elif not first and state is not None and kinds <= {"mutate"} and pending.indices and self._preview is None \
                and hasattr(state.value, "shape") and ref.shape == tuple(state.value.shape):
            # A copy: earlier updates handed out views of the old array.
            value = state.value.copy()
            for changed in pending.indices:
                region = shelf._read_uncached(ref, {"slice": changed if isinstance(changed, tuple) else (changed,)})
                value[changed] = region
            index = pending.indices[0] if len(pending.indices) == 1 else None
            reset, kind = False, "mutate"
        else:
            value = shelf._read_uncached(ref, self._preview_parameters(ref))
            if not first:
                kind = "put" if "put" in kinds or len(kinds) != 1 else next(iter(kinds))
        if state is None:
            state = self._states[key] = _State()
        if kind != "append":
            state.buffer = None
        state.value, state.version = value, ref.version
        state.length = int(value.shape[0]) if getattr(value, "ndim", 0) >= 1 else None
        state.delivered_at = time.monotonic()
        handed = _read_only(value)
        full = (lambda r=ref: shelf.get(r.name, dict(r.data_id), run=r.run, copy=True)) if self._preview else None
        return Update(
            name, did, run, kind, handed, delta=_read_only(delta), index=index, reset=reset, version=ref.version,
            seq=pending.seq, time=pending.time or ref.updated, frames=pending.count, ref=ref, _full=full,
        )

    def _preview_parameters(self, ref: DatasetRef) -> dict[str, Any]:
        if self._preview is None or ref.kind != "image" or not ref.shape:
            return {}
        factor = max(-(-ref.shape[0] // self._preview[0]), -(-ref.shape[1] // self._preview[1]), 1)
        return {"downsample": factor} if factor > 1 else {}

    def _deliver(self, update: Any, *, describe: bool = False) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._call(update, describe)
            return
        done = threading.Event()

        def on_loop() -> None:
            try:
                self._call(update, describe)
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(on_loop)
        except RuntimeError:  # the loop closed meanwhile
            return
        # One call at a time: while the kernel is busy, updates coalesce here.
        while not done.wait(timeout=0.5):
            if self._closed.is_set() or loop.is_closed():
                return

    def _call(self, update: Any, describe: bool = False) -> None:
        if self._closed.is_set():
            return
        if describe:
            assert self._on_describe is not None
            try:
                self._on_describe(update)
            except Exception as exc:  # the subscriber's bug must not kill the subscription
                self.errors.append(f"on_describe raised {type(exc).__name__}: {exc}")
                del self.errors[:-20]
            return
        try:
            self._callback(update)
        except Exception as exc:  # the subscriber's bug must not kill the subscription
            self.errors.append(f"callback raised {type(exc).__name__}: {exc}")
            del self.errors[:-20]
        finally:
            self.delivered += 1

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop delivering; the worker thread ends and the feed stops when nobody listens."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        self._feed.remove(self._on_changes)
        if self._worker is not threading.current_thread():
            self._worker.join(timeout=5)
        self._shelf._subscriptions.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Subscription {list(self.pattern)} run={self._mode!r} {state}, {self.delivered} delivered>"


def check_run(run: Any) -> int | str | None:
    """``run=`` of subscribe: a run number (numpy integers too), "latest" or None; InvalidOptions otherwise."""
    from ..errors import ShelfError
    from ..names import MAX_RUN, run_number

    if run is None or (isinstance(run, str) and run == "latest"):
        return run
    try:
        return run_number(run)
    except ShelfError:
        raise InvalidOptions(
            f"run= takes a run number (an int from 1 to {MAX_RUN}), 'latest' (follow new runs) or None "
            f"(any run), not {run!r}"
        ) from None


def _positive(option: str, value: Any, meaning: str) -> float | None:
    """A finite number > 0 (or None) as a float; InvalidOptions naming ``option`` otherwise."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and number > 0:
            return number
    raise InvalidOptions(f"{option}= takes {meaning} (a finite number > 0), not {value!r}")


def _check_preview(preview: Any) -> tuple[int, int] | None:
    if preview is None:
        return None
    if isinstance(preview, Sequence) and not isinstance(preview, str | bytes) and len(preview) == 2 and all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and int(n) > 0 for n in preview
    ):
        return int(preview[0]), int(preview[1])
    raise InvalidOptions(f"preview= takes (height, width) in pixels, two ints > 0, not {preview!r}")


def _key(data_id: Any) -> str:
    from ..names import data_id_key

    return data_id_key(dict(data_id))


def _grow(state: _State, rows: Any) -> Any:
    """``state.value`` with ``rows`` appended, in a buffer with room to spare.

    Earlier updates hold views of the buffer's head; appending writes only
    past it, so what they show never changes.
    """
    import numpy as np

    old = state.value
    if old is None or getattr(old, "ndim", 0) == 0:
        return rows
    dtype = np.result_type(old.dtype, rows.dtype)
    n, extra = old.shape[0], rows.shape[0]
    buffer = state.buffer
    reuse = (
        buffer is not None
        and old.base is buffer  # value is still the buffer's head
        and buffer.dtype == dtype
        and buffer.shape[0] >= n + extra
    )
    if not reuse:
        buffer = np.empty((max(2 * (n + extra), 64), *old.shape[1:]), dtype=dtype)
        buffer[:n] = old
    buffer[n : n + extra] = rows
    state.buffer = buffer
    return buffer[: n + extra]


def _read_only(value: Any) -> Any:
    """A read-only view of an array (the subscription keeps patching its own copy)."""
    if value is None or not hasattr(value, "flags") or not hasattr(value, "view"):
        return value
    view = value.view()
    view.flags.writeable = False
    return view


async def changes(shelf: Shelf, names: Sequence[str] | None, since: int | None, run: int | None) -> Any:
    """The async iterator behind :meth:`Shelf.changes`."""
    patterns = check_patterns(names) if names is not None else None
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def on_changes(_found: list[Change]) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(woken.set)

    feed = shelf._feed(None)
    start = feed.add(on_changes)
    last = start if since is None else since
    try:
        while True:
            rows = await loop.run_in_executor(None, shelf._registry.changes_since, last, 1000)
            for row in rows:
                change = Change(**row)
                last = change.seq
                if run is not None and change.run != run:
                    continue
                if patterns is not None and not (change.name and any(fnmatch.fnmatchcase(change.name, p) for p in patterns)):
                    continue
                yield change
            if len(rows) < 1000:
                woken.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=feed.poll)
    finally:
        feed.remove(on_changes)
