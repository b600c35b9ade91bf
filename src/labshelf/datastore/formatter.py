"""Value kinds: the formatter contract and the plugin registry.

A formatter knows one kind of value (scalar, ndarray, image, xarray, pandas,
...): whether it accepts a value, how to describe and summarise it, and how to
write it to and read it from storage.  Built-in kinds and third-party ones are
found the same way, through the entry-point group ``labshelf.formatters``::

    [project.entry-points."labshelf.formatters"]
    mykind = "mypackage.formatters:MyFormatter"

What an implementation must guarantee:

- **No code on read.**  ``read`` and ``from_inline`` only parse data (HDF5,
  NetCDF, Parquet, JSON); they never unpickle or evaluate anything.
- **Exact round trip.**  ``read(write(v))`` equals ``v`` with its type,
  dtype, shape and metadata (coords, attrs, index, column dtypes).
- **Write a whole new file.**  ``write`` is given a path to a file that does
  not exist yet; the datastore makes it visible only once ``write`` returned,
  so a crash inside ``write`` never leaves a half-written dataset visible.
- **Stateless.**  One instance serves every thread of a process.
- **Cheap summaries.**  ``summarise`` must be fast relative to ``write``;
  it runs at put time and its result is all the run table ever shows.
- **Components read alone.**  ``read_component`` reads about the bytes of
  that component only (one variable of a Dataset, one column of a table),
  never the whole value; ``components`` lists them from file headers.
- **Browsing reads little.**  ``members`` lists what is inside a stored
  value from file metadata only; ``peek`` reads at most the values it is
  asked for (see ``datastore/members.py``).
- **Parameters narrow the read.**  A read parameter (``slice``,
  ``downsample``) is applied while reading from storage, not after loading
  everything; ``parameters`` names those a kind takes.
"""

from __future__ import annotations

import errno
import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import (
    ComponentNotFound,
    CorruptDataset,
    InvalidOptions,
    InvalidParameter,
    InvalidValue,
    ShelfError,
    UnsupportedValue,
    close_matches,
)

if TYPE_CHECKING:
    from ..registry.records import DatasetRef
    from .members import Member, Peek

GROUP = "labshelf.formatters"

# Built-ins are registered through the entry points in pyproject.toml, like
# any plugin; this copy only serves a source tree run without installing.
_BUILTINS = {
    "scalar": "labshelf.datastore.scalar:ScalarFormatter",
    "ndarray": "labshelf.datastore.ndarray:NDArrayFormatter",
    "image": "labshelf.datastore.image:ImageFormatter",
    "xarray": "labshelf.datastore.netcdf:XarrayFormatter",
    "pandas": "labshelf.datastore.parquet:PandasFormatter",
    "composite": "labshelf.datastore.composite:CompositeFormatter",
}


@dataclass(frozen=True, slots=True)
class Summary:
    """What the run table shows for a dataset, stored in the registry.

    ``kind`` is one of ``none``, ``bool``, ``int`` (exact digits in
    ``text``), ``float``, ``complex`` (``text`` holds ``repr``), ``text``,
    ``array`` (``value`` is the mean, ``text`` the shape and dtype),
    ``image`` (``thumbnail`` is a PNG, ``value`` the mean) or ``table``
    (``text`` describes it).
    """

    kind: str
    value: float | None = None
    text: str | None = None
    thumbnail: bytes | None = None


@dataclass(frozen=True, slots=True)
class Description:
    """Shape, dtype and size of a value, as the registry lists them."""

    shape: tuple[int, ...] | None
    dtype: str | None
    nbytes: int


class Formatter(ABC):
    """One value kind.  See the module docstring for the guarantees."""

    #: Name of the kind, stored with every dataset (``DatasetRef.kind``).
    kind: ClassVar[str]
    #: Higher priorities are asked first (an image before a plain array).
    priority: ClassVar[int] = 0
    #: File name ending of the data files this kind writes.
    suffix: ClassVar[str] = ".h5"
    #: True if ``run.append`` / ``run.mutate`` work on this kind.
    appendable: ClassVar[bool] = False
    #: Python types this kind stores, for error messages.
    describes: ClassVar[str] = ""
    #: Read parameters this kind takes: name -> what it does (errors list them).
    parameters: ClassVar[Mapping[str, str]] = {}

    @abstractmethod
    def accepts(self, value: Any) -> bool:
        """True if this kind stores ``value``.  Must not import heavy modules."""

    def prepare(self, value: Any) -> Any:
        """Normalise an accepted value (or raise UnsupportedValue saying why)."""
        return value

    def check_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate storage options; the default kind takes none."""
        if options:
            raise InvalidOptions(
                f"hdf5_options do not apply to {self.kind} values; "
                "they are for arrays and images stored in HDF5"
            )
        return {}

    @abstractmethod
    def describe(self, value: Any) -> Description: ...

    @abstractmethod
    def summarise(self, value: Any) -> Summary: ...

    def to_inline(self, value: Any, options: Mapping[str, Any]) -> str | None:
        """JSON text to keep ``value`` in the registry, or None for a data file."""
        return None

    def from_inline(self, text: str) -> Any:
        raise ShelfError(f"{self.kind} values are never stored inline")

    def write(self, path: Path, name: str, value: Any, options: Mapping[str, Any]) -> None:
        raise ShelfError(f"{self.kind} values are never stored in data files")

    def read(
        self,
        paths: Sequence[Path],
        name: str,
        ref: DatasetRef,
        parameters: Mapping[str, Any],
    ) -> Any:
        raise ShelfError(f"{self.kind} values are never stored in data files")


    def check_parameters(self, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate read parameters; unknown ones raise InvalidParameter listing those the kind takes."""
        if not parameters:
            return {}
        if not isinstance(parameters, Mapping):
            raise InvalidParameter(f"parameters= takes a dict, not {type(parameters).__name__}")
        for key in parameters:
            if key not in self.parameters:
                takes = "; ".join(f"{k}: {v}" for k, v in self.parameters.items()) or "none"
                raise InvalidParameter(
                    f"{self.kind} values take no read parameter {key!r}{close_matches(str(key), self.parameters)}. "
                    f"Parameters of {self.kind}: {takes}"
                )
        return dict(parameters)

    def apply_inline(self, value: Any, parameters: Mapping[str, Any]) -> Any:
        """Read parameters applied to a value kept inline in the registry."""
        return value

    def components(self, paths: Sequence[Path], ref: DatasetRef) -> list[str]:
        """Names of the components ``read_component`` reads alone (from headers, never data)."""
        return []

    def read_component(
        self, paths: Sequence[Path], ref: DatasetRef, component: str, parameters: Mapping[str, Any]
    ) -> Any:
        raise self.no_component(paths, ref, component)

    def no_component(self, paths: Sequence[Path], ref: DatasetRef, component: str) -> ComponentNotFound:
        """The error for a component this value does not have, listing those it has."""
        known = self.components(paths, ref)
        listed = ", ".join(known) if known else "none"
        return ComponentNotFound(
            f"{ref.label!r} of run {ref.run} ({self.kind}) has no component {component!r}"
            f"{close_matches(component, known)}. Its components: {listed}"
        )


    # -- browsing: what is inside a stored value (see datastore/members.py) --------------

    def members(
        self, paths: Sequence[Path], ref: DatasetRef, member: str, offset: int, limit: int
    ) -> tuple[list[Member], bool]:
        """A page of what is inside the stored value under ``member`` (``""``: the value itself).

        Returns the members and whether more follow.  Read from file
        metadata alone (HDF5 headers, NetCDF variables, a Parquet footer),
        never from the values, so a listing costs the same for a small and
        a huge value.  Unknown members raise ComponentNotFound.  The
        default: a value has no members.
        """
        if member:
            raise no_member(ref, member)
        return [], False

    def peek(self, paths: Sequence[Path], ref: DatasetRef, member: str, limit: int) -> Peek:
        """A bounded look at the stored value (``member == ""``) or at one of its members.

        Reads at most ``limit`` values (a table: its first rows), whatever
        the size of the value; what it holds beyond that is described, not
        read.  Kinds whose values are kept inline have nothing to peek at in
        files (the caller reads the value instead): the default raises
        ComponentNotFound.
        """
        raise no_member(ref, member)


def no_member(ref: DatasetRef, member: str, known: Sequence[str] = (), *, what: str = "member") -> ComponentNotFound:
    """The error for a member path (see ``Formatter.members``) a value does not have."""
    tail = f"{close_matches(member, known)}; it has {', '.join(known)}" if known else ""
    return ComponentNotFound(f"{ref.label!r} of run {ref.run} has no {what} {member!r}{tail}")


def missing_file(path: Path) -> FileNotFoundError:
    """The error ``read`` raises for a missing data file.

    h5py and pyarrow leave ``filename`` unset on theirs; the shelf names the
    missing file in its error from that attribute.
    """
    return FileNotFoundError(errno.ENOENT, "data file is missing", str(path))


def is_valid_text(text: str) -> bool:
    """Whether ``text`` can be stored: encodable as UTF-8, so no lone surrogate.

    Python strings may hold lone surrogates (``"\\ud800"``, e.g. from
    ``os.fsdecode`` of undecodable bytes); the registry, HDF5, NetCDF and
    Parquet all keep text as UTF-8, which cannot encode them.
    """
    if text.isascii():  # a flag of the str object in CPython: no scan
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def invalid_text(where: str) -> InvalidValue:
    """The error for a string that is not valid Unicode, found in ``where``."""
    return InvalidValue(
        f"{where} is not valid Unicode (it holds a lone surrogate such as '\\ud800'): strings must be "
        "encodable as UTF-8. Store such data as bytes, or decode it with errors='replace'"
    )

class RefersOutside(CorruptDataset):
    """A data file that would make its reader read another file: an HDF5
    external link, external raw storage or virtual dataset, a Parquet column
    chunk in another file.  labshelf's own files never do."""


class Formatters:
    """The formatters of this process, found through entry points once."""

    def __init__(self) -> None:
        self._ordered: list[Formatter] | None = None
        self._by_kind: dict[str, Formatter] = {}

    def _load(self) -> list[Formatter]:
        if self._ordered is not None:
            return self._ordered
        specs = dict(_BUILTINS)
        for ep in entry_points(group=GROUP):
            specs[ep.name] = ep.value
        found: list[Formatter] = []
        for name, spec in specs.items():
            module, _, attr = spec.partition(":")
            try:
                cls = getattr(importlib.import_module(module), attr)
            except Exception as exc:  # a broken plugin must not break the shelf
                import warnings

                warnings.warn(f"labshelf formatter {name!r} ({spec}) failed to load: {exc}", stacklevel=2)
                continue
            instance = cls()
            if instance.kind != name:
                raise ShelfError(f"formatter entry point {name!r} gives kind {instance.kind!r}")
            found.append(instance)
        found.sort(key=lambda f: -f.priority)
        self._by_kind = {f.kind: f for f in found}
        self._ordered = found
        return found

    def pick(self, value: Any, kind: str | None = None) -> Formatter:
        """The formatter for ``value`` (or the one named ``kind``)."""
        ordered = self._load()
        if kind is not None:
            if kind not in self._by_kind:
                # A kind the caller names is a put argument (InvalidOptions); by_kind's
                # ShelfError is for kinds found in the registry but not installed.
                known = ", ".join(sorted(self._by_kind))
                raise InvalidOptions(f"kind={kind!r} is not a value kind; known: {known}")
            formatter = self.by_kind(kind)
            if not formatter.accepts(value):
                raise UnsupportedValue(
                    f"a {type(value).__name__} cannot be stored as kind {kind!r} "
                    f"({formatter.describes})"
                )
            return formatter
        for formatter in ordered:
            if formatter.accepts(value):
                return formatter
        supported = "; ".join(f"{f.kind}: {f.describes}" for f in ordered)
        raise UnsupportedValue(
            f"cannot store a value of type {type(value).__module__}.{type(value).__qualname__}. "
            f"Supported kinds are {supported}"
        )

    def by_kind(self, kind: str) -> Formatter:
        self._load()
        try:
            return self._by_kind[kind]
        except KeyError:
            raise ShelfError(
                f"no formatter for value kind {kind!r} in this Python environment "
                f"(known: {', '.join(sorted(self._by_kind))}); install the package that provides it"
            ) from None


#: The process-wide formatter registry.
formatters = Formatters()
