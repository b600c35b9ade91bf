"""N-dimensional numpy arrays (numeric, bool, bytes, unicode, datetime).

Small arrays without storage options live inline in the registry (raw bytes
in base64 with their dtype and shape: exact, and no pickle); larger ones in
HDF5 files.  A file-backed array may be made of several *segments*, one file
each, concatenated along the first axis: that is how ``run.append`` grows a
big array without rewriting (or risking) what was committed before.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidIndex, InvalidParameter, InvalidValue, UnsupportedValue
from . import hdf5
from .formatter import Description, Formatter, Summary

if TYPE_CHECKING:
    from ..registry.records import DatasetRef
    from .members import Member, Peek

#: Arrays up to this many bytes (and without storage options) stay in the registry.
INLINE_MAX_BYTES = 16 * 1024

_STORABLE_KINDS = "biufcSUMm"


class NDArrayFormatter(Formatter):
    kind = "ndarray"
    priority = 10
    appendable = True
    describes = "numpy arrays of numeric, bool, bytes, str and datetime dtypes (and lists of numbers)"
    parameters = {"slice": "a region to read, as numpy.s_[...] (ints and slices): only it is read from the file"}

    def accepts(self, value: Any) -> bool:
        return isinstance(value, (np.ndarray, list, tuple))

    def prepare(self, value: Any) -> np.ndarray:
        return as_storable(value)

    def check_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        return hdf5.check_options(options)

    def describe(self, value: np.ndarray) -> Description:
        return Description(shape=tuple(int(n) for n in value.shape), dtype=dtype_name(value.dtype), nbytes=int(value.nbytes))

    def summarise(self, value: np.ndarray) -> Summary:
        return Summary("array", value=array_mean(value), text=shape_text(value))

    def to_inline(self, value: np.ndarray, options: Mapping[str, Any]) -> str | None:
        if options or value.nbytes > INLINE_MAX_BYTES:
            return None
        return encode_inline(value)

    def from_inline(self, text: str) -> np.ndarray:
        return decode_inline(text)

    def write(self, path: Path, name: str, value: np.ndarray, options: Mapping[str, Any]) -> None:
        hdf5.write_array(path, name, value, options)

    def read(
        self, paths: Sequence[Path], name: str, ref: DatasetRef, parameters: Mapping[str, Any]
    ) -> np.ndarray:
        if "slice" in parameters:
            shape = ref.shape or hdf5.array_shape(paths[0], name)
            return read_region(paths, name, check_selection(parameters["slice"], shape), shape)
        parts = [hdf5.read_array(p, name) for p in paths]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def apply_inline(self, value: np.ndarray, parameters: Mapping[str, Any]) -> np.ndarray:
        """Read parameters applied to a value kept in the registry."""
        if "slice" in parameters:
            return np.asarray(value[check_selection(parameters["slice"], value.shape)])
        return value

    def members(
        self, paths: Sequence[Path], ref: DatasetRef, member: str, offset: int, limit: int
    ) -> tuple[list[Member], bool]:
        """The HDF5 structure of the data file(s): segment files, groups, datasets, attributes."""
        from .members import hdf5_members

        if not paths:
            return super().members(paths, ref, member, offset, limit)
        return hdf5_members(paths, ref, member, offset, limit)

    def peek(self, paths: Sequence[Path], ref: DatasetRef, member: str, limit: int) -> Peek:
        """The first ``limit`` values of the array (across segments), or an HDF5 member of its files."""
        from .members import array_peek, hdf5_peek

        if not paths:
            return super().peek(paths, ref, member, limit)
        if member == "":
            return array_peek(paths, ref.name, limit)
        return hdf5_peek(paths, ref, member, limit)


def check_selection(selection: Any, shape: tuple[int, ...] | None) -> tuple[Any, ...]:
    """A ``slice`` parameter as a tuple of ints, slices and at most one Ellipsis, or InvalidParameter."""
    items = selection if isinstance(selection, tuple) else (selection,)
    ndim = len(shape) if shape is not None else None
    for item in items:
        if not (item is Ellipsis or isinstance(item, slice) or (isinstance(item, (int, np.integer)) and not isinstance(item, bool))):
            raise InvalidParameter(
                f"the slice parameter takes ints, slices and ... (as numpy.s_[100:200, :]), not {item!r}"
            )
    if sum(item is Ellipsis for item in items) > 1:
        raise InvalidParameter("the slice parameter takes at most one ...")
    if ndim is not None and len([i for i in items if i is not Ellipsis]) > ndim:
        raise InvalidParameter(f"the slice {selection!r} has more indices than the array's {ndim} dimensions")
    return tuple(int(i) if isinstance(i, np.integer) else i for i in items)


def read_region(paths: Sequence[Path], name: str, selection: tuple[Any, ...], shape: Sequence[int]) -> np.ndarray:
    """Read only ``selection`` of an array of ``shape`` made of segments joined along axis 0.

    Segment lengths come from their HDF5 headers, opened only as far as
    needed: from the end for rows in the second half (what a live
    subscriber asks for after each append), else from the start.
    """
    if len(paths) == 1:
        return hdf5.read_array(paths[0], name, selection)
    if Ellipsis in selection:  # spell it out, so the first item is about rows
        at = selection.index(Ellipsis)
        selection = selection[:at] + (slice(None),) * (len(shape) - len(selection) + 1) + selection[at + 1 :]
    first, rest = (selection[0], selection[1:]) if selection else (slice(None), ())
    total = int(shape[0])
    if isinstance(first, int):
        index = first + total if first < 0 else first
        if not 0 <= index < total:
            raise InvalidParameter(f"index {first} is out of range for an array of {total} rows")
        first = slice(index, index + 1)
        picked = read_region(paths, name, (first, *rest), shape)
        return picked[0]
    start, stop, step = first.indices(total)
    rows = range(start, stop, step)
    if not rows:
        return hdf5.read_array(paths[0], name, (slice(0, 0), *rest))
    if step < 0:  # rare: read the rows forward, then walk them backwards in memory
        forward = read_region(paths, name, (slice(rows[-1], rows[0] + 1), *rest), shape)
        return forward[::-1][::-step]
    parts = []
    backwards = start > total // 2
    for path, lo, hi in _segments(paths, name, total, from_end=backwards):
        if (backwards and hi <= start) or (not backwards and lo >= stop):
            break  # past the rows asked for: no more headers to open
        if hi <= start or lo >= stop:
            continue
        # The first row of this segment that the step lands on.
        first_row = start if start >= lo else start + -(-(lo - start) // step) * step
        if first_row < min(hi, stop):
            parts.append((lo, hdf5.read_array(path, name, (slice(first_row - lo, min(hi, stop) - lo, step), *rest))))
    return np.concatenate([part for _lo, part in sorted(parts, key=lambda p: p[0])], axis=0)


def _segments(paths: Sequence[Path], name: str, total: int, *, from_end: bool) -> Iterator[tuple[Path, int, int]]:
    """(path, first row, end row) of each segment, reading headers from one end."""
    if from_end:
        end = total
        for path in reversed(paths):
            length = hdf5.array_shape(path, name)[0]
            yield path, end - length, end
            end -= length
    else:
        start = 0
        for path in paths:
            length = hdf5.array_shape(path, name)[0]
            yield path, start, start + length
            start += length


def as_storable(value: Any) -> np.ndarray:
    """``value`` as an ndarray labshelf can store exactly, or UnsupportedValue."""
    if isinstance(value, np.ma.MaskedArray):
        raise UnsupportedValue(
            "masked arrays are not stored (the mask would be lost); store "
            "value.filled(...) and the mask (value.mask) as two datasets"
        )
    if isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except ValueError as exc:
            raise UnsupportedValue(f"this {type(value).__name__} is not a regular array: {exc}") from exc
        # numpy turns every element into str (or bytes) as soon as one is: check
        # the original elements, since those of ``array`` are strings already.
        wanted = {"U": str, "S": bytes}.get(array.dtype.kind)
        if wanted is not None and not all(isinstance(x, wanted) for x in np.asarray(value, dtype=object).flat):
            raise UnsupportedValue(
                f"this {type(value).__name__} mixes strings with other values; numpy would turn "
                "them all into strings. Store an array of one dtype"
            )
    else:
        array = np.asarray(value)
    kind = array.dtype.kind
    if kind == "O":
        if all(isinstance(x, str) for x in array.flat):
            return array
        raise UnsupportedValue(
            "object arrays are stored only when every element is a str; "
            "use a numeric, bool, bytes, str or datetime dtype"
        )
    if kind not in _STORABLE_KINDS or array.dtype.fields is not None:
        raise UnsupportedValue(
            f"arrays of dtype {array.dtype} are not supported; use a numeric, bool, "
            "bytes (S), str (U) or datetime64/timedelta64 dtype"
        )
    return array


def dtype_name(dtype: np.dtype) -> str:
    return "str" if dtype.kind == "O" else str(dtype)


def shape_text(value: np.ndarray) -> str:
    return f"{'x'.join(str(n) for n in value.shape) or 'scalar'} {dtype_name(value.dtype)}"


def array_mean(value: np.ndarray) -> float | None:
    """Mean of a numeric array as a float (None for empty or non-numeric)."""
    if value.size == 0 or value.dtype.kind not in "biuf":
        return None
    if value.dtype.kind == "u" and value.dtype.itemsize <= 2 and value.ndim >= 1 and 0 < value.shape[-1] <= 65536:
        # Camera frames: rows summed in uint32 (exact for rows up to 65,536
        # pixels) then totalled in uint64, about 40% faster than one uint64 pass.
        mean = float(value.sum(axis=-1, dtype=np.uint32).sum(dtype=np.uint64)) / value.size
    elif value.dtype.kind == "u" and value.dtype.itemsize <= 4 and value.size < 2**32:
        # Exact and fastest for counts; the size limit keeps the uint64 sum from
        # wrapping around (uint64 values themselves could, so they take np.mean).
        mean = float(value.sum(dtype=np.uint64)) / value.size
    else:
        mean = float(np.mean(value, dtype=np.float64))
    return mean if mean == mean else None  # NaN is "no summary": SQLite stores it as NULL anyway


def encode_inline(value: np.ndarray) -> str:
    if value.dtype.kind == "O":
        return json.dumps({"dtype": "str", "shape": list(value.shape), "items": value.ravel().tolist()})
    raw = np.ascontiguousarray(value).tobytes()
    return json.dumps(
        {"dtype": value.dtype.str, "shape": list(value.shape), "b64": base64.b64encode(raw).decode("ascii")}
    )


def decode_inline(text: str) -> np.ndarray:
    # The registry row may have been edited by hand: anything but what
    # encode_inline writes is a ValueError, and object arrays hold only str.
    try:
        doc = json.loads(text)
        shape = tuple(int(n) for n in doc["shape"])
        if doc["dtype"] == "str":
            items = doc["items"]
            if not all(isinstance(x, str) for x in items):
                raise ValueError("a str array holds something else than str")
            out = np.empty(len(items), dtype=object)
            out[:] = items
            return out.reshape(shape)
        dtype = np.dtype(doc["dtype"])
        if dtype.hasobject:
            raise ValueError("object dtypes are never stored")
        raw = base64.b64decode(doc["b64"])
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"inline array is damaged: {exc!r}") from exc


# -- growing and changing stored arrays (run.append, run.mutate) ---------------------


def stored_dtype(ref: DatasetRef) -> Any:
    """The numpy dtype the registry lists for an array dataset."""
    return np.dtype(object) if ref.dtype == "str" else np.dtype(ref.dtype)


def fit_rows(ref: DatasetRef, shape: tuple[int, ...], dtype: Any, rows: np.ndarray) -> tuple[np.ndarray, Any]:
    """Shape and cast ``rows`` to extend an array of ``shape`` and ``dtype``.

    Returns the rows and the dtype of the result (strings widen to fit).
    """
    trailing = tuple(shape[1:])
    if rows.shape == trailing:
        rows = rows.reshape((1, *trailing))
    elif rows.shape[1:] != trailing:
        raise InvalidValue(
            f"cannot append values of shape {rows.shape} to {ref.label!r} of shape {tuple(shape)}: "
            f"give one row of shape {trailing} or a block of shape (k, {', '.join(map(str, trailing))})"
            if trailing else
            f"cannot append values of shape {rows.shape} to the 1-D {ref.label!r}: give a scalar or a 1-D array"
        )
    return cast_for(ref, dtype, rows), _widened(dtype, rows.dtype)


def _widened(dtype: Any, other: Any) -> Any:
    if dtype.kind in "US" and other.kind == dtype.kind:
        return np.result_type(dtype, other)
    return dtype


#: Numeric kinds by how much they hold: a value may move up, never down.
_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def cast_for(ref: DatasetRef, dtype: Any, values: np.ndarray) -> np.ndarray:
    """``values`` as ``dtype``, refusing any cast that would change them.

    numpy's own "same_kind" rule lets an int become a one-character string
    and 1e300 become a float32 inf; a dataset must never silently hold
    something other than what was given.
    """
    target = _widened(dtype, values.dtype)
    source = values.dtype
    if source == target:
        return values
    refuse = InvalidValue(
        f"cannot store {source} values in the {target} dataset {ref.label!r} without "
        "changing them; convert them first"
    )
    if target.kind == "O" or source.kind in "OUS" or target.kind in "US":
        if target.kind == "O" and source.kind in "UO":
            return values.astype(object)
        if source.kind == target.kind and target.kind in "US":
            return values.astype(target)
        raise refuse
    if source.kind in "Mm" or target.kind in "Mm":
        if source.kind != target.kind:
            raise refuse
        converted = values.astype(target)
        if not np.array_equal(converted.astype(source), values, equal_nan=True):
            raise refuse
        return converted
    if _KIND_RANK[target.kind] < _KIND_RANK[source.kind]:
        raise refuse
    with np.errstate(all="ignore"):
        converted = values.astype(target)
    if target.kind in "iu" and not np.array_equal(converted, values):
        raise InvalidValue(f"values do not fit the {target} dataset {ref.label!r} (out of range)")
    if target.kind in "fc" and source.kind in "fc" and not np.array_equal(
        np.isfinite(converted), np.isfinite(values)
    ):
        raise InvalidValue(f"values overflow the {target} dataset {ref.label!r}")
    return converted


def assign(ref: DatasetRef, array: np.ndarray, index: Any, value: Any) -> np.ndarray:
    """``array`` with ``array[index] = value``, checked like numpy but clearer."""
    new = cast_for(ref, array.dtype, as_storable(value))
    target = _widened(array.dtype, new.dtype)
    out = array.astype(target, copy=True)
    try:
        out[index] = new
    except IndexError as exc:
        raise InvalidIndex(f"index {index!r} is outside {ref.label!r} of shape {array.shape}: {exc}") from exc
    except ValueError as exc:
        raise InvalidValue(f"cannot set {ref.label!r}[{index!r}] to a value of shape {np.shape(new)}: {exc}") from exc
    return out


def encode_index(index: Any) -> Any:
    """A mutate index as JSON (int, slice, Ellipsis or a tuple of them)."""
    if isinstance(index, tuple):
        return [encode_index(i) for i in index]
    if isinstance(index, bool):
        raise InvalidIndex("a mutate index cannot be a bool")
    if isinstance(index, int) or type(index).__name__ in ("int64", "int32", "intp"):
        return int(index)
    if isinstance(index, slice):
        for part in (index.start, index.stop, index.step):
            if part is not None and not isinstance(part, int):
                raise InvalidIndex(f"slice bounds must be ints, not {part!r}")
        return {"slice": [index.start, index.stop, index.step]}
    if index is Ellipsis:
        return "..."
    raise InvalidIndex(
        f"mutate takes an int, a slice, ... or a tuple of them as index, not {type(index).__name__}"
    )
