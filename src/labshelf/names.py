"""Dataset names and data IDs: the rules, checked in one place.

A dataset name is a path of parts joined by ``/`` (``camera/image``).  Each
part starts with a letter, digit or underscore and goes on with letters,
digits and ``_ - + = @ , # % ( )``.  Some characters are reserved because later
layers give them a meaning: ``.`` separates a component (``calexp.psf``),
``:`` a processing stage (``calexp:jointcal``) and ``* ? [ ]`` are glob
patterns for subscriptions.  Since names also become file paths inside the
datastore, the rules are what keeps a name from escaping the shelf root.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InvalidDataId, InvalidName, InvalidValue, RunNotFound

MAX_NAME_LENGTH = 255

#: Run numbers go from 1 to this, on every registry: ``runs.number`` is a 32-bit
#: INTEGER, which PostgreSQL enforces and SQLite would not (it takes 64 bits).
MAX_RUN = 2**31 - 1

#: Data-ID dimensions ``Shelf.query(where=...)`` could not address: these names
#: mean the run's number and metadata, and the dataset's name, there.
RESERVED_DIMENSIONS = ("end", "experiment", "name", "run", "start", "status")

_PART = re.compile(r"\w[\w\-+=@,#%()]*\Z")
_DIMENSION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED = {".": "components (name.component)", ":": "processing stages (name:stage)"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ALLOWED = "letters, digits and _ - + = @ , # % ( ), parts joined by '/'"


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid dataset name, else raise InvalidName."""
    # The type is checked before the cache, which would raise a bare
    # "unhashable type" TypeError for a list.
    if not isinstance(name, str):
        raise InvalidName(f"a dataset name must be a str, not {type(name).__name__}")
    return _check_str(name)


@functools.lru_cache(maxsize=4096)
def _check_str(name: str) -> str:
    if not name:
        raise InvalidName("a dataset name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"dataset name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    for ch, meaning in _RESERVED.items():
        if ch in name:
            raise InvalidName(
                f"dataset name {name!r} contains {ch!r}, which is reserved for {meaning}; "
                f"use {_ALLOWED}"
            )
    if _CONTROL.search(name):
        raise InvalidName(f"dataset name {name!r} contains a control character; use {_ALLOWED}")
    for part in name.split("/"):
        if not part:
            raise InvalidName(
                f"dataset name {name!r} has an empty part (leading, trailing or double '/')"
            )
        if not _PART.match(part):
            raise InvalidName(f"dataset name {name!r}: part {part!r} is not allowed; use {_ALLOWED}")
    return name


def plain_int(value: Any) -> Any:
    """A numpy integer as the Python int it holds; anything else (a bool, numpy's too) as it is.

    The index of a DataFrame from ``to_pandas()`` holds numpy ``int64``: run
    numbers, counts and offsets taken from it must pass the checks written
    ``isinstance(value, int)``, which this lets stay as they are.
    """
    return int(value) if isinstance(value, np.integer) else value


def run_number(value: Any, *, new: bool = False) -> int:
    """``value`` as a run number: an int or numpy integer (not a bool) from 1 to :data:`MAX_RUN`.

    A lookup (``new=False``) raises :class:`RunNotFound` for anything else,
    since no such run can exist; a number given to a new run
    (``new=True``) raises :class:`InvalidValue`.
    """
    if type(value) is not int:  # the common case costs one test
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            error = InvalidValue if new else RunNotFound
            raise error(f"a run number is an int from 1 to {MAX_RUN}, not {value!r}")
        value = int(value)
    if not 1 <= value <= MAX_RUN:
        if new:
            raise InvalidValue(f"run number {value} is out of range: run numbers go from 1 to {MAX_RUN}")
        raise RunNotFound(f"no run {value}: run numbers go from 1 to {MAX_RUN}")
    return value


def check_text(value: str, what: str, error: type[Exception] = InvalidValue) -> str:
    """Return ``value`` if every registry can store it: no NUL, no lone surrogate.

    PostgreSQL refuses NUL in text, and a lone surrogate (``"\\ud800"``, from
    a bad decode) cannot be written as UTF-8 by either registry.
    """
    if "\x00" in value:
        raise error(f"{what} cannot contain the NUL character (\\x00), not {value!r}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise error(f"{what} contains a lone surrogate (not a character), in {value!r}") from None
    return value


DataIdValue = int | str | bool


def normalize_data_id(data_id: Mapping[str, Any] | None, *, new: bool = False) -> dict[str, DataIdValue]:
    """A plain, sorted dict of dimension -> int/str/bool, or InvalidDataId.

    ``new=True`` (a put) also refuses the dimensions queries could not
    address (:data:`RESERVED_DIMENSIONS`); looking up keeps finding them.
    """
    if data_id is None:
        return {}
    if not isinstance(data_id, Mapping):
        raise InvalidDataId(
            f"a data ID must be a dict of dimension -> value, not {type(data_id).__name__}"
        )
    out: dict[str, DataIdValue] = {}
    for key in sorted(data_id, key=str):
        value = data_id[key]
        if not isinstance(key, str) or not _DIMENSION.match(key):
            raise InvalidDataId(
                f"data ID dimension {key!r} is not an identifier (letters, digits, _; "
                "not starting with a digit)"
            )
        if new and key in RESERVED_DIMENSIONS:
            raise InvalidDataId(
                f"data ID dimension {key!r} is reserved: queries read {', '.join(RESERVED_DIMENSIONS)} as the "
                "run's number and metadata and the dataset's name; choose another dimension name"
            )
        if isinstance(value, (bool, np.bool_)):
            out[key] = bool(value)
        elif isinstance(value, (int, np.integer)):
            number = int(value)
            if new and not -(2**63) <= number < 2**63:
                # Queries compare data-ID numbers as 64-bit integers on both registries.
                raise InvalidDataId(f"data ID value for {key!r} is out of the 64-bit integer range: {number}")
            out[key] = number
        elif isinstance(value, str):
            out[key] = check_text(str(value), f"data ID value for {key!r}", InvalidDataId)
        else:
            raise InvalidDataId(
                f"data ID value for {key!r} is a {type(value).__name__}; "
                "allowed are int, str and bool"
            )
    return out


def data_id_from_text(items: list[str]) -> dict[str, DataIdValue]:
    """``["channel=2", "det=a"]`` (what a command line gives) -> ``{"channel": 2, "det": "a"}``.

    Ints and true/false (any case) become such, the rest stays text.  A
    pair without ``=`` or without a key raises ValueError naming it.
    """
    data_id: dict[str, DataIdValue] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(item)
        value: DataIdValue = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                pass
        data_id[key] = value
    return data_id


def data_id_key(data_id: Mapping[str, DataIdValue]) -> str:
    """Canonical text of a normalized data ID: the registry's lookup key."""
    if not data_id:
        return "{}"
    return json.dumps(data_id, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def format_data_id(data_id: Mapping[str, Any]) -> str:
    """``channel=2, detector=3`` for messages and column labels."""
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in data_id.items())


def label(name: str, data_id: Mapping[str, Any]) -> str:
    """``name`` or ``name[channel=2]``: how tables and messages name a dataset."""
    return f"{name}[{format_data_id(data_id)}]" if data_id else name


class DataId(dict[str, Any]):
    """A data ID that may carry a repository tag: ``DataId({"detector": 3}, tag="old")``.

    It is a dict, so it goes everywhere a data ID does; with a tag, a
    search looks only in repositories opened with that tag
    (``labshelf.repo(path, tag="old")``) and their parents.
    """

    __slots__ = ("tag",)

    def __init__(self, values: Mapping[str, Any] | None = None, /, *, tag: str | None = None, **dimensions: Any):
        super().__init__(values or {}, **dimensions)
        if tag is not None and (not isinstance(tag, str) or not tag):
            raise InvalidDataId(f"a data ID's tag is a non-empty str, not {tag!r}")
        self.tag = tag

    def __repr__(self) -> str:
        tag = f", tag={self.tag!r}" if self.tag is not None else ""
        return f"DataId({dict.__repr__(self)}{tag})"

    def __reduce__(self) -> Any:
        return (DataId, (dict(self),), {"tag": self.tag})

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.tag = state.get("tag")


def data_id_tag(data_id: Any) -> str | None:
    """The repository tag a data ID carries (None for a plain dict)."""
    return getattr(data_id, "tag", None)


def split_target(target: str) -> tuple[str, str | None, str | None]:
    """``name[.component][:stage]`` -> (name, component or None, stage or None)."""
    if not isinstance(target, str):
        raise InvalidName(f"a dataset name must be a str, not {type(target).__name__}")
    rest, colon, stage = target.partition(":")
    if colon and not stage:
        raise InvalidName(f"{target!r} ends with ':'; write name:stage, e.g. 'calexp:jointcal'")
    name, dot, component = rest.partition(".")
    if dot and not name:
        raise InvalidName(f"dataset name {target!r} starts with '.'; '.' only separates a component (name.component)")
    if dot and not component:
        raise InvalidName(f"{target!r} ends with '.'; write name.component, e.g. 'spectrum.coords.energy'")
    try:
        check_name(name)
    except InvalidName as exc:
        if not (dot or colon):
            raise
        raise InvalidName(f"{exc}; in {target!r} the name ends at '.' (a component) or ':' (a stage)") from None
    return name, component or None, stage or None
