"""The read cache: values already read, bounded in bytes, safe to share.

Keys name one version of one dataset of one repository, plus the component
and read parameters, so a put, append or mutate (each makes a new version)
is never answered from the cache: the next get looks the dataset up in the
registry, finds the new version and misses.  Older versions of a dataset are
dropped when a newer one is cached.

What the cache hands out cannot change what another caller gets: numpy
arrays (also inside xarray objects) are made read-only, pandas objects and
dicts are handed out as shallow copies (pandas copies on write).  Values it
cannot protect are not cached.
"""

from __future__ import annotations

import copy as _copy
import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

#: Default size of a shelf's read cache.
DEFAULT_CACHE_BYTES = 512 * 2**20

#: What ``ReadCache.get`` returns for a key it does not hold (None is a value a dataset can have).
MISS = object()


def check_limit(limit: Any) -> int:
    """``cache_bytes``: an int >= 0 (numpy integers too), or ShelfError."""
    from .names import plain_int

    limit = plain_int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        from .errors import ShelfError

        raise ShelfError(f"cache_bytes takes an int >= 0 (0 turns the cache off), not {limit!r}")
    return limit


class ReadCache:
    """A least-recently-used map of read values, bounded by their size in bytes."""

    def __init__(self, limit: int = DEFAULT_CACHE_BYTES):
        self.limit = check_limit(limit)
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._versions: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ReadCache {self.nbytes}/{self.limit} bytes, {len(self._entries)} values, {self.hits} hits, {self.misses} misses>"

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, *, copy: bool = False) -> Any:
        """The value cached under ``key`` (as handed out), or ``MISS``."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return MISS
            self._entries.move_to_end(key)
            self.hits += 1
        return private_copy(found[0]) if copy else hand_out(found[0])

    def put(self, key: tuple[str, int, int, Any, Any], value: Any, *, copy: bool = False) -> Any:
        """Keep ``value`` if it can be shared; return what the caller should get."""
        size = _size(value)
        if size is None or size > self.limit // 2 or not _freeze(value):
            return value  # too big to be worth evicting everything else, or not shareable
        repository, dataset, version = key[0], key[1], key[2]
        with self._lock:
            older = self._versions.get((repository, dataset))
            if older is not None and older != version:
                self._drop(lambda k: k[0] == repository and k[1] == dataset and k[2] != version)
            self._versions[(repository, dataset)] = max(version, older or 0)
            if key not in self._entries:
                self._entries[key] = (value, size)
                self.nbytes += size
            while self.nbytes > self.limit and self._entries:
                _key, (_value, dropped) = self._entries.popitem(last=False)
                self.nbytes -= dropped
        return private_copy(value) if copy else hand_out(value)

    def _drop(self, predicate: Any) -> None:
        for k in [k for k in self._entries if predicate(k)]:
            self.nbytes -= self._entries.pop(k)[1]

    def clear(self) -> None:
        """Forget every cached value."""
        with self._lock:
            self._entries.clear()
            self._versions.clear()
            self.nbytes = 0


def _kind(value: Any) -> str:
    module = type(value).__module__.partition(".")[0]
    return module if module in ("numpy", "xarray", "pandas") else type(value).__name__


def _size(value: Any) -> int | None:
    kind = _kind(value)
    if kind == "numpy":
        return int(getattr(value, "nbytes", 16))
    if kind == "xarray":
        return int(value.nbytes)
    if kind == "pandas":
        usage = value.memory_usage(deep=False)
        return int(usage.sum() if hasattr(usage, "sum") else usage)
    if isinstance(value, (str, bytes, int, float, complex, bool, type(None), dict)):
        return sys.getsizeof(value)
    return None


def _freeze(value: Any) -> bool:
    """Make ``value`` safe to share; False if it cannot be."""
    kind = _kind(value)
    if kind == "numpy":
        if isinstance(value, _ndarray()):  # numpy scalars are immutable already
            value.flags.writeable = False
        return True
    if kind == "xarray":
        variables = value.variables.values() if hasattr(value, "data_vars") else [value.variable, *value.coords.values()]
        for variable in variables:
            data: Any = getattr(variable, "_data", None)
            if hasattr(data, "flags"):
                data.flags.writeable = False
        return True
    if kind == "pandas":
        import pandas as pd

        # Without copy-on-write (pandas < 3) a shallow copy shares writable blocks.
        return bool(int(pd.__version__.split(".")[0]) >= 3)
    return isinstance(value, (str, bytes, int, float, complex, bool, type(None), dict))


def _ndarray() -> Any:
    import numpy as np

    return np.ndarray


def hand_out(value: Any) -> Any:
    """What a caller gets of a cached value: itself if read-only, else a shallow copy."""
    if _kind(value) == "pandas":
        return value.copy(deep=False)
    if isinstance(value, dict):
        return dict(value)
    return value


def private_copy(value: Any) -> Any:
    """A writable copy nobody else holds (``get(..., copy=True)``)."""
    kind = _kind(value)
    if kind == "numpy" and hasattr(value, "copy"):
        return value.copy()
    if kind in ("xarray", "pandas"):
        return value.copy(deep=True)
    return _copy.deepcopy(value)
