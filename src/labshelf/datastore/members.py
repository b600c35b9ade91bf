"""What is inside a stored value: its members, and bounded looks at them.

A front end browsing a shelf shows what a dataset holds without loading it:
the groups, datasets and attributes of an array's HDF5 file(s), the
variables and coordinates of an xarray value, the columns of a table.  The
formatters that keep values in files offer this through two methods of the
:class:`~labshelf.datastore.formatter.Formatter` contract:

- ``members(paths, ref, member, offset, limit)``: a page of what lies under
  ``member`` (``""`` for the value itself), read from file metadata alone
  (HDF5 headers, the Parquet footer), never from the values;
- ``peek(paths, ref, member, limit)``: a bounded look at the value or at one
  member, reading at most ``limit`` values (a table: its first
  :data:`TABLE_ROWS` rows), so a preview of a 100 GB array reads a few MB.

Member paths, as front ends write them after the dataset's label and ``#``:

====================  =========================================================
``camera/image``      the HDF5 object ``/camera/image`` of the value's file
``camera/image@CLASS``  an attribute of it (``@CLASS`` alone: of the root group)
``seg.h5``            one segment file of an appended array (several files)
``seg.h5/grown``      an object inside it (``seg.h5/@a``: an attribute of its root)
``energy``            a variable or coordinate of an xarray value; a column of a table
====================  =========================================================

Data files are untrusted input: links that leave the file (HDF5 external
links) and datasets whose bytes live in other files (external storage,
virtual datasets) are listed as "refers outside the file (not read)", and a
look at one raises :class:`~labshelf.datastore.formatter.RefersOutside`, as
reading it does: every way into a file goes through :func:`hdf5.member`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptDataset
from . import checksum
from .formatter import RefersOutside, no_member
from .hdf5 import DTYPE_ATTR, decode, member, open_file

#: Values a peek reads at most (of an array, a variable, a column).
BOUNDED_READ = 1_000_000
#: Rows of a table a peek reads.
TABLE_ROWS = 5
#: Member names a peek at an HDF5 group lists.
GROUP_NAMES = 200
#: How a member that leads outside its file is listed.
OUTSIDE = "refers outside the file (not read)"
# Bookkeeping attributes that mean nothing to a reader of the data: h5netcdf's
# object references and ids, and the checksum labshelf records with an array.
INTERNAL_ATTRS = frozenset(
    {"DIMENSION_LIST", "REFERENCE_LIST", "_Netcdf4Dimid", "_Netcdf4Coordinates", "_NCProperties", checksum.ATTR}
)


@dataclass(frozen=True, slots=True)
class Member:
    """One thing inside a stored value, as its file's metadata describe it.

    ``path`` is the member path (see the module docstring) that names it to
    ``members`` and ``peek``; ``component`` the name ``Formatter.read_component``
    reads it by, when it is a component too (``coords.energy``).
    """

    path: str
    name: str
    #: group, dataset, attr, link, file, coord, variable or column.
    kind: str
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    nbytes: int | None = None
    #: Whether ``members`` lists something under it.
    expandable: bool = False
    #: Members of a group.
    count: int | None = None
    #: An attribute's value (decoded), or where a link points.
    value: Any = None
    component: str | None = None


@dataclass(frozen=True, slots=True)
class Peek:
    """A bounded look at a stored value or one of its members.

    ``kind`` says what was looked at: ``array`` (a whole array value),
    ``table`` (a whole table: ``values`` is a DataFrame of its first rows),
    ``xarray`` (a whole xarray value: ``text`` is its repr, values not
    loaded), ``group``, ``dataset``, ``attr``, ``file`` (HDF5), ``variable``
    (of an xarray value) or ``column`` (of a table).
    """

    kind: str
    #: At most the peek's limit of values (numpy, in C order, first rows
    #: first); a table's first rows; an attribute's value.
    values: Any = None
    #: How many values the whole thing holds (``values.size`` when all were read).
    total: int | None = None
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    nbytes: int | None = None
    #: Dimension names and lengths (xarray variables).
    dims: tuple[tuple[str, int], ...] = ()
    chunks: tuple[int, ...] | None = None
    compression: str | None = None
    #: Members of a group, rows of a table.
    count: int | None = None
    #: The first member names of a group or a file; the columns of a table.
    names: tuple[str, ...] = ()
    #: Attributes of a group.
    attributes: int | None = None
    text: str | None = None
    #: Which of the value's data files it is in (an index into ``ref.storage.files``).
    file: int | None = None
    #: The HDF5 object's path in that file; the attribute's name.
    path: str | None = None
    attr: str | None = None
    component: str | None = None
    #: Why the values were not read (external storage, ...), if they were not.
    note: str | None = None


# -- HDF5 --------------------------------------------------------------------------------------------


def hdf5_members(paths: Sequence[Path], ref: Any, member: str, offset: int, limit: int) -> tuple[list[Member], bool]:
    """A page of the HDF5 members under ``member`` of an array's data file(s)."""
    import h5py

    if not paths:
        return [], False
    if member == "" and len(paths) > 1:
        # Segments of an appended array: one file each, in order.
        page = paths[offset : offset + limit]
        members = [Member(p.name, p.name, "file", nbytes=_file_size(p), expandable=True) for p in page]
        return members, len(paths) > offset + limit
    with _h5_object(paths, ref, member) as (obj, attr, obj_member, _index):
        if attr is not None:
            return [], False
        # Names only until the page is known: a group may hold 10,000 members.
        keys = list(obj) if isinstance(obj, h5py.Group) else []
        attrs = [a for a in obj.attrs if a not in INTERNAL_ATTRS]
        names = [(k, False) for k in keys] + [(a, True) for a in attrs]
        found = []
        for name, is_attr in names[offset : offset + limit]:
            if is_attr:
                # The root of one of several files is "seg.h5": its attributes are "seg.h5/@name".
                separator = "/" if len(paths) > 1 and "/" not in obj_member else ""
                found.append(Member(f"{obj_member}{separator}@{name}", f"@{name}", "attr", value=attr_value(obj, name)))
                continue
            child_path = f"{obj_member}{'/' if obj_member else ''}{name}"
            child = _child(obj, name)
            if isinstance(child, RefersOutside):
                found.append(Member(child_path, name, "link", value=OUTSIDE))
            elif isinstance(child, h5py.Dataset):
                found.append(Member(child_path, name, "dataset", tuple(child.shape or ()), str(child.dtype),
                                    _stored_bytes(child), expandable=any(a not in INTERNAL_ATTRS for a in child.attrs)))
            elif isinstance(child, h5py.Group):
                found.append(Member(child_path, name, "group", expandable=True, count=len(child)))
            else:  # a soft link to nowhere (or round in circles)
                found.append(Member(child_path, name, "link", value="broken link"))
    return found, len(names) > offset + limit


def hdf5_peek(paths: Sequence[Path], ref: Any, member: str, limit: int) -> Peek:
    """A bounded look at the HDF5 member ``member`` (a file, group, dataset or attribute)."""
    import h5py

    if len(paths) > 1 and member in {p.name for p in paths}:
        index = next(i for i, p in enumerate(paths) if p.name == member)
        with open_file(paths[index]) as f:
            names = tuple(list(f)[:GROUP_NAMES])
        return Peek("file", nbytes=_file_size(paths[index]), names=names, file=index, path="/")
    with _h5_object(paths, ref, member) as (obj, attr, _obj_member, index):
        if attr is not None:
            return Peek("attr", values=attr_value(obj, attr), file=index, path=obj.name, attr=attr)
        if isinstance(obj, h5py.Group):
            names = tuple(list(obj)[:GROUP_NAMES])
            return Peek("group", count=len(obj), names=names, attributes=len(obj.attrs), file=index, path=obj.name)
        shape = tuple(obj.shape) if obj.shape is not None else ()
        described = {
            "shape": shape, "dtype": str(obj.dtype), "nbytes": _stored_bytes(obj),
            "chunks": tuple(obj.chunks) if obj.chunks else None,
            "compression": str(obj.compression) if obj.compression else None,
            "file": index, "path": obj.name,
        }
        values = read_bounded(obj, limit) if limit > 0 else None
        return Peek("dataset", values=values, total=int(obj.size or 0), **described)


def array_peek(paths: Sequence[Path], name: str, limit: int) -> Peek:
    """The first ``limit`` values of an array stored in one or more segment files (joined along axis 0)."""
    parts: list[np.ndarray] = []
    total = 0
    room = limit
    complete = True
    shape: list[int] = []
    for path in paths:
        with open_file(path) as f:
            dataset = member(f, name)
            total += int(dataset.size or 0)
            if not shape:
                shape = list(dataset.shape or ())
            elif dataset.shape:
                shape[0] += dataset.shape[0]  # segments join along the first axis
            if room > 0:
                part = read_bounded(dataset, room)
                complete = complete and part.size == dataset.size
                parts.append(part)
                room -= part.size
            else:
                complete = False
    if not parts:
        values = np.zeros(0)
    elif len(parts) == 1:
        values = parts[0]
    elif complete:
        values = np.concatenate(parts, axis=0)
    else:
        values = np.concatenate([p.ravel() for p in parts])
    return Peek("array", values=values, total=total, shape=tuple(shape), dtype=str(values.dtype))


def read_bounded(dataset: Any, limit: int) -> np.ndarray:
    """The first ``limit`` values (in C order, as a block) of an h5py dataset, decoded."""
    if dataset.shape is None:  # an HDF5 null dataspace
        return np.zeros(0)
    if dataset.size <= limit:
        data = dataset[()]
    else:
        selection: list[slice] = []
        shape = dataset.shape
        for axis, length in enumerate(shape):
            trailing = int(np.prod(shape[axis + 1 :], dtype=np.int64))
            if trailing <= limit:
                selection.append(slice(0, max(1, min(length, limit // trailing))))
                selection += [slice(None)] * (len(shape) - axis - 1)
                break
            selection.append(slice(0, 1))
        data = dataset[tuple(selection)]
    original = dataset.attrs.get(DTYPE_ATTR)
    return decode(np.asarray(data), as_text(original) if original is not None else None)


def attr_value(obj: Any, name: str) -> Any:
    """An HDF5 attribute's value, text decoded; a type h5py cannot read becomes a note."""
    try:
        value = obj.attrs[name]
    except (OSError, TypeError, ValueError) as exc:
        return f"(unreadable: {exc})"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def as_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value) if value is not None else ""


@contextmanager
def _h5_object(paths: Sequence[Path], ref: Any, member: str) -> Iterator[tuple[Any, str | None, str, int]]:
    """Open the HDF5 object a member path names: yields (object, attribute or None, its member path, file index)."""
    candidates: list[tuple[str, str | None]] = [(member, None)]
    if "@" in member:
        # Object names may hold "@" too: the whole path is tried first.
        owner, _, name = member.rpartition("@")
        candidates.append((owner.rstrip("/") if len(paths) > 1 else owner, name))
    for obj_member, attr in candidates:
        if len(paths) == 1:
            index, inner = 0, obj_member
        else:
            first, _, inner = obj_member.partition("/")
            index = next((i for i, p in enumerate(paths) if p.name == first), -1)
            if index < 0:
                continue
        with open_file(paths[index]) as f:
            obj = _object(f, inner)
            if obj is None or (attr is not None and attr not in obj.attrs):
                continue
            yield obj, attr, obj_member, index
            return
    raise no_member(ref, member, what="HDF5 member")


def _object(f: Any, inner: str) -> Any:
    """The object at ``inner`` in the open file ``f`` (None if there is none); RefersOutside if it leads outside."""
    try:
        return member(f, inner or "/")
    except KeyError:
        return None


def _child(group: Any, name: str) -> Any:
    """A member of a group for listing: the object, a RefersOutside (not followed), or None (broken, a loop)."""
    try:
        return member(group, name)
    except RefersOutside as exc:
        return exc
    except (KeyError, CorruptDataset):
        return None


def _stored_bytes(dataset: Any) -> int:
    return int((dataset.size or 0) * dataset.dtype.itemsize)


def _file_size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
