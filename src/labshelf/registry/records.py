"""Frozen records: the only objects that leave the registry.

They are immutable (frozen dataclasses whose mappings are read-only views), so
a caller can keep and share them without copying; a newer state of the same
run or dataset is a new record.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..names import label

_EMPTY: Mapping[str, Any] = MappingProxyType({})

#: How records show as HTML in notebooks (``_repr_html_``), by class.  The
#: registry knows no HTML: the layer that draws a record installs its
#: renderer here (``shelf.py`` installs ``display.ref_html`` for DatasetRef,
#: so every ref a shelf hands out has it, with or without ``%load_ext``).
#: A record without a renderer shows as its one-line text repr.
html_renderers: dict[type, Callable[[Any], str]] = {}


def _timestamp(seconds: float | None) -> _dt.datetime | None:
    if seconds is None:
        return None
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as the registry knows it."""

    number: int
    experiment: str
    params: Mapping[str, Any]
    status: str
    started: float
    ended: float | None
    host: str
    user: str
    pid: int
    error: str | None = None

    @property
    def start(self) -> _dt.datetime:
        """When the run started (timezone-aware, UTC)."""
        stamp = _timestamp(self.started)
        assert stamp is not None
        return stamp

    @property
    def end(self) -> _dt.datetime | None:
        """When the run ended, or None while it runs."""
        return _timestamp(self.ended)

    @property
    def collection(self) -> str:
        """The name of the RUN collection this run is."""
        return f"run/{self.number}"

    @classmethod
    def from_row(cls, row: Any) -> RunRecord:
        return cls(
            number=row.number,
            experiment=row.experiment,
            params=MappingProxyType(json.loads(row.params)),
            status=row.status,
            started=row.started,
            ended=row.ended,
            host=row.host,
            user=row.user,
            pid=row.pid,
            error=row.error,
        )


@dataclass(frozen=True, slots=True)
class Storage:
    """Where a dataset's bytes are: inline JSON, or data files under the root."""

    inline: str | None = None
    files: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A dataset of a run, as found in the registry (no data file is opened).

    ``summary`` is what the run table shows: the value itself for scalars, a
    truncated string for text, the mean for numeric arrays, the PNG bytes of
    a thumbnail for images and a short description for tables.
    """

    id: int
    run: int
    name: str
    data_id: Mapping[str, Any]
    kind: str
    shape: tuple[int, ...] | None
    dtype: str | None
    nbytes: int
    summary: Any
    version: int
    created: float
    updated: float
    storage: Storage = field(repr=False, compare=False, default_factory=Storage)
    #: Where the repository holding it is (its folder or URL); set by the shelf.
    repository: str = field(default="", repr=False, compare=False)
    #: The search path that found it: the collection searched down to the one that
    #: supplied it, e.g. ``("calib/current", "calib/2026-11", "run/4")``.
    found_in: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def collection(self) -> str:
        """The RUN collection holding this dataset."""
        return f"run/{self.run}"

    @property
    def label(self) -> str:
        """``name`` or ``name[channel=2]``: how tables and messages name it."""
        return label(self.name, self.data_id)

    def __repr__(self) -> str:
        shape = "" if self.shape is None else f" shape={self.shape}"
        dtype = "" if self.dtype is None else f" dtype={self.dtype}"
        return f"<DatasetRef run={self.run} {self.label!r} kind={self.kind}{shape}{dtype}>"

    def _repr_html_(self) -> str | None:
        render = html_renderers.get(type(self))
        return None if render is None else render(self)
