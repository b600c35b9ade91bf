"""Frozen records: the only objects that leave the registry.

They are immutable (frozen dataclasses whose mappings are read-only views), so
a caller can keep and share them without copying; a newer state of the same
run or dataset is a new record.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import CorruptDataset
from ..names import label

_EMPTY: Mapping[str, Any] = MappingProxyType({})

#: Times a run table can show: pandas' nanosecond timestamps reach 1677 to 2262.
MAX_SECONDS = 9.2e9


def json_list(text: str) -> list[Any]:
    """A JSON list from the registry (ValueError for anything else)."""
    value = json.loads(text)
    if type(value) is not list:
        raise ValueError("is not a JSON list")
    return value


def json_mapping(text: str) -> dict[str, Any]:
    """A JSON object from the registry (ValueError for anything else)."""
    value = json.loads(text)
    if type(value) is not dict:
        raise ValueError("is not a JSON object")
    return value


def is_time(seconds: Any) -> bool:
    """Whether a registry time column holds a usable time (SQLite keeps any text there)."""
    return type(seconds) is float and -MAX_SECONDS < seconds < MAX_SECONDS


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
    #: What is wrong with the run's registry row (None: nothing).  A damaged
    #: field reads as NaN (times) or empty (params); ``start``/``end`` raise.
    damage: str | None = field(default=None, compare=False)

    @property
    def start(self) -> _dt.datetime:
        """When the run started (timezone-aware, UTC)."""
        if math.isnan(self.started):
            raise CorruptDataset(f"run {self.number} has no readable start time: {self.damage}")
        stamp = _timestamp(self.started)
        assert stamp is not None
        return stamp

    @property
    def end(self) -> _dt.datetime | None:
        """When the run ended, or None while it runs."""
        if self.ended is not None and math.isnan(self.ended):
            raise CorruptDataset(f"run {self.number} has no readable end time: {self.damage}")
        return _timestamp(self.ended)

    @property
    def collection(self) -> str:
        """The name of the RUN collection this run is."""
        return f"run/{self.number}"

    @classmethod
    def from_row(cls, row: Any) -> RunRecord:
        """The record of a ``runs`` row; a damaged row still gives one, saying so in ``damage``."""
        try:
            if is_time(row.started) and (row.ended is None or is_time(row.ended)):
                return cls(
                    number=row.number,
                    experiment=row.experiment,
                    params=MappingProxyType(json_mapping(row.params)),
                    status=row.status,
                    started=row.started,
                    ended=row.ended,
                    host=row.host,
                    user=row.user,
                    pid=row.pid,
                    error=row.error,
                )
        except (TypeError, ValueError):  # JSONDecodeError is a ValueError
            pass
        return cls._damaged(row)

    @classmethod
    def _damaged(cls, row: Any) -> RunRecord:
        problems = []
        try:
            params = json_mapping(row.params)
        except (TypeError, ValueError) as exc:
            params = {}
            why = "is not JSON" if isinstance(exc, json.JSONDecodeError) else "is not a JSON object"
            problems.append(f"runs.params {why}: {str(row.params)[:60]!r}")
        started, ended = row.started, row.ended
        if not is_time(started):
            problems.append(f"runs.started is not a time: {str(started)[:60]!r}")
            started = math.nan
        if ended is not None and not is_time(ended):
            problems.append(f"runs.ended is not a time: {str(ended)[:60]!r}")
            ended = math.nan
        return cls(
            number=row.number,
            experiment=row.experiment,
            params=MappingProxyType(params),
            status=row.status,
            started=started,
            ended=ended,
            host=row.host,
            user=row.user,
            pid=row.pid,
            error=row.error,
            damage="; ".join(problems) or None,
        )


@dataclass(frozen=True, slots=True)
class Storage:
    """Where a dataset's bytes are: inline JSON, or data files under the root."""

    inline: str | None = None
    files: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def ingested(self) -> str | None:
        """The path of the file this dataset was ingested from (see ``labshelf.ingest``), as its row says it."""
        record = self.options.get("ingested")
        path = record.get("path") if isinstance(record, Mapping) else None
        return path if isinstance(path, str) else None

    @property
    def in_files(self) -> bool:
        """Whether the value lies in files: data files under the root, or a file ingested in place."""
        return bool(self.files) or "ingested" in self.options

    def file_label(self, index: int = 0) -> str:
        """How screens name the ``index``-th file: relative to the root, or the ingested file's path."""
        record = self.options.get("ingested")
        if isinstance(record, Mapping) and record.get("transfer") != "copy" and self.ingested:
            return self.ingested
        return self.files[index] if index < len(self.files) else ""


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

    @property
    def damage(self) -> str | None:
        """What is wrong with its registry row, e.g. ``datasets.location is not JSON: 'xx'``
        (None: nothing; see :class:`DamagedRef`)."""
        return None

    def __repr__(self) -> str:
        shape = "" if self.shape is None else f" shape={self.shape}"
        dtype = "" if self.dtype is None else f" dtype={self.dtype}"
        return f"<DatasetRef run={self.run} {self.label!r} kind={self.kind}{shape}{dtype}>"

    def _repr_html_(self) -> str | None:
        # By the class's MRO, so that a DamagedRef shows as a DatasetRef does.
        render = next((html_renderers[c] for c in type(self).__mro__ if c in html_renderers), None)
        return None if render is None else render(self)


class DamagedRef(DatasetRef):
    """A DatasetRef whose registry row could not be read whole (edited or damaged).

    The damaged fields read as empty; :attr:`damage` says what is wrong, and
    reading the value raises CorruptDataset.  A subclass rather than a field,
    so that building the refs of every get costs nothing more.
    """

    __slots__ = ("_damage",)

    @property
    def damage(self) -> str | None:
        return getattr(self, "_damage", None)  # None only after a dataclasses.replace

    @classmethod
    def made(cls, damage: str, **fields: Any) -> DamagedRef:
        ref = cls(**fields)
        object.__setattr__(ref, "_damage", damage)
        return ref
