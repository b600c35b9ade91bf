"""Composite values: objects made of named components, each stored as its own dataset.

``run.put("calexp", exposure)`` of a dataclass (or of a class registered
with :func:`register_composite`) is *disassembled*: each component is put as
the dataset ``calexp.<component>`` with the formatter of its own kind, then
the composite's row records the class and its component names.  A get
*assembles* it again; ``get("calexp.psf")`` reads that one component only.

Reading never imports code named in stored data: a class is rebuilt only if
it was registered in the reading process (putting a dataclass registers it);
otherwise the composite comes back as a dict of its components.

xarray Datasets and pandas DataFrames are composites too, kept whole in one
NetCDF or Parquet file that other tools read; their components (variables,
columns) are read alone from that file by their own formatters.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidValue, ShelfError
from .formatter import Description, Formatter, Summary

if TYPE_CHECKING:
    from ..registry.records import DatasetRef

KIND = "composite"
_COMPONENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclasses.dataclass(frozen=True)
class _Handler:
    disassemble: Callable[[Any], Mapping[str, Any]]
    assemble: Callable[[dict[str, Any]], Any]


_HANDLERS: dict[str, _Handler] = {}


def class_key(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def register_composite(
    cls: type,
    disassemble: Callable[[Any], Mapping[str, Any]] | None = None,
    assemble: Callable[[dict[str, Any]], Any] | None = None,
) -> None:
    """Store instances of ``cls`` as composites, component by component.

    Parameters
    ----------
    cls
        The class.  A dataclass needs neither function: its fields are its
        components and it is rebuilt with ``cls(**components)``.
    disassemble
        ``disassemble(obj) -> {component name: value}``; names are identifiers.
    assemble
        ``assemble({component name: value}) -> obj``.
    """
    if not isinstance(cls, type):
        raise ShelfError(f"register_composite takes a class, not {cls!r}")
    if disassemble is None or assemble is None:
        if not dataclasses.is_dataclass(cls):
            raise ShelfError(
                f"{cls.__qualname__} is not a dataclass: give disassemble(obj) -> dict and assemble(dict) -> obj"
            )
        disassemble = disassemble or (lambda obj: {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
        assemble = assemble or (lambda parts: cls(**parts))
    _HANDLERS[class_key(cls)] = _Handler(disassemble, assemble)


def _handler(value: Any) -> _Handler | None:
    key = class_key(type(value))
    found = _HANDLERS.get(key)
    if found is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        register_composite(type(value))
        found = _HANDLERS[key]
    return found


def disassemble(value: Any) -> dict[str, Any]:
    """The components of a composite value, checked."""
    handler = _handler(value)
    assert handler is not None
    parts = dict(handler.disassemble(value))
    if not parts:
        raise InvalidValue(f"a {type(value).__qualname__} with no components cannot be stored as a composite")
    for name in parts:
        if not isinstance(name, str) or not _COMPONENT.match(name):
            raise InvalidValue(f"component names are identifiers; {type(value).__qualname__} gives {name!r}")
    return parts


@dataclasses.dataclass(frozen=True)
class Disassembled:
    """A composite taken apart once (``prepare``), so a user's disassembler runs once per put."""

    cls: type
    parts: dict[str, Any]


class CompositeFormatter(Formatter):
    """The registry row of a composite: its class and component names (the parts are datasets)."""

    kind = KIND
    priority = 5
    describes = "dataclasses and classes registered with labshelf.register_composite (stored component by component)"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, type):
            return False
        return class_key(type(value)) in _HANDLERS or dataclasses.is_dataclass(value)

    def prepare(self, value: Any) -> Disassembled:
        if isinstance(value, Disassembled):  # taken apart already (an import rebuilding a stored composite)
            return value
        return Disassembled(type(value), disassemble(value))

    def describe(self, value: Disassembled) -> Description:
        # The registry's dtype column holds 64 characters; the full name is in the row's JSON.
        return Description(shape=None, dtype=value.cls.__name__[:64], nbytes=0)

    def summarise(self, value: Disassembled) -> Summary:
        return Summary("table", text=f"{value.cls.__qualname__} ({', '.join(value.parts)})")

    def to_inline(self, value: Disassembled, options: Mapping[str, Any]) -> str | None:
        return json.dumps({"class": class_key(value.cls), "components": list(value.parts)})

    def from_inline(self, text: str) -> Any:
        return json.loads(text)

    def components(self, paths: Sequence[Path], ref: DatasetRef) -> list[str]:
        return component_names(ref)


def component_names(ref: DatasetRef) -> list[str]:
    """The component names a composite's registry row records."""
    return list(json.loads(ref.storage.inline or "{}").get("components", []))


def assemble(ref: DatasetRef, parts: dict[str, Any]) -> Any:
    """A composite from its parts: an instance of its class if registered in this process, else the dict."""
    handler = _HANDLERS.get(json.loads(ref.storage.inline or "{}").get("class", ""))
    return handler.assemble(parts) if handler is not None else parts
