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
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidIndex, InvalidParameter, InvalidValue, UnsupportedValue
from . import hdf5
from .formatter import Description, Formatter, Summary, invalid_text, is_valid_text

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
    parameters = {
        "slice": "a region to read, as numpy.s_[...] (ints, slices with any step but 0, ... and None): "
        "only it is read from the file; the result is value[slice]"
    }

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
    ) -> Any:
        if "slice" in parameters:
            shape = ref.shape if ref.shape is not None else hdf5.array_shape(paths[0], name)
            return read_selection(paths, name, parameters["slice"], shape)
        parts = [hdf5.read_array(p, name) for p in paths]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def apply_inline(self, value: np.ndarray, parameters: Mapping[str, Any]) -> Any:
        """Read parameters applied to a value kept in the registry."""
        if "slice" in parameters:
            where = region(parameters["slice"], value.shape)
            return where.finish(value[where.forward])
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
        from .ingested import stored_name
        from .members import array_peek, hdf5_peek

        if not paths:
            return super().peek(paths, ref, member, limit)
        if member == "":
            return array_peek(paths, stored_name(ref), limit)
        return hdf5_peek(paths, ref, member, limit)


#: What the slice parameter takes, for its errors.
_SLICE_RULE = (
    "the slice parameter takes what numpy's basic indexing takes: ints, slices with int bounds "
    "(any step but 0), one ... and None (numpy.newaxis), e.g. numpy.s_[100:200, ::-1]"
)


@dataclass(frozen=True, slots=True)
class Region:
    """A ``slice`` parameter resolved against an array's shape.

    Files are read ``forward`` (what HDF5 hyperslabs take: one int or one
    slice with step >= 1 per axis, in bounds); ``finish`` then reverses the
    axes a negative step walks backwards and adds the ``None`` axes, so the
    result is exactly ``value[selection]``.
    """

    forward: tuple[int | slice, ...]
    #: Axes of the forward read to reverse.
    flipped: tuple[int, ...]
    #: Positions of the axes ``None`` adds to the result.
    new_axes: tuple[int, ...]
    #: An int for every axis (and no ... or None): numpy gives a scalar, not a 0-d array.
    scalar: bool = False

    def finish(self, data: Any) -> Any:
        if self.scalar:
            return np.asarray(data)[()]
        data = np.asarray(data)
        if self.flipped:
            data = np.flip(data, self.flipped)
        if self.new_axes:
            data = np.expand_dims(data, self.new_axes)
        return data


def region(selection: Any, shape: Sequence[int]) -> Region:
    """The :class:`Region` of ``selection`` in an array of ``shape``, or InvalidParameter."""
    items = selection if isinstance(selection, tuple) else (selection,)
    for item in items:
        if not (item is None or item is Ellipsis or isinstance(item, slice) or _is_int(item)):
            raise InvalidParameter(f"{_SLICE_RULE}; not {_shown(item)} (fancy and boolean indexing are not regions)")
    ellipses = sum(item is Ellipsis for item in items)
    if ellipses > 1:
        raise InvalidParameter(f"the slice {_shown(selection)} has more than one ...; {_SLICE_RULE}")
    indexing = len(items) - ellipses - sum(item is None for item in items)
    if indexing > len(shape):
        raise InvalidParameter(
            f"the slice {_shown(selection)} has {indexing} indices but the array has {len(shape)} "
            f"dimension{'' if len(shape) == 1 else 's'} (shape {tuple(shape)})"
        )
    if ellipses:
        at = items.index(Ellipsis)
        items = (*items[:at], *(slice(None),) * (len(shape) - indexing), *items[at + 1 :])
    else:
        items = (*items, *(slice(None),) * (len(shape) - indexing))
    forward: list[int | slice] = []
    flipped: list[int] = []
    new_axes: list[int] = []
    out = 0  # the axis of the result that the next slice or None makes
    for item in items:
        if item is None:
            new_axes.append(out)
            out += 1
            continue
        axis = len(forward)
        length = int(shape[axis])
        if isinstance(item, slice):
            try:
                rows = range(*item.indices(length))
            except (TypeError, ValueError) as exc:  # float bounds, step 0
                raise InvalidParameter(f"bad slice {_shown(item)} in the slice parameter ({exc}); {_SLICE_RULE}") from exc
            if not rows:
                forward.append(slice(0, 0, 1))
            elif rows.step > 0:
                forward.append(slice(rows[0], rows[-1] + 1, rows.step))
            else:  # read the same rows forward, then reverse them
                forward.append(slice(rows[-1], rows[0] + 1, -rows.step))
                flipped.append(out - len(new_axes))
            out += 1
        else:
            index = operator.index(item)
            if not -length <= index < length:
                raise InvalidParameter(
                    f"the slice's index {index} is out of range for axis {axis} of length {length} (shape {tuple(shape)})"
                )
            forward.append(index + length if index < 0 else index)
    scalar = not ellipses and not new_axes and all(isinstance(item, int) for item in forward)
    return Region(tuple(forward), tuple(flipped), tuple(new_axes), scalar)


def _is_int(item: Any) -> bool:
    # A bool (Python or numpy) is a mask to numpy, not the index 0 or 1.
    return isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_))


def _shown(item: Any) -> str:
    text = " ".join(repr(item).split())  # one line, even for an array
    return text if len(text) <= 80 else text[:77] + "..."


def read_selection(paths: Sequence[Path], name: str, selection: Any, shape: Sequence[int]) -> Any:
    """``value[selection]`` of the array of ``shape`` stored in ``paths``, reading only that region."""
    where = region(selection, shape)
    return where.finish(read_region(paths, name, where.forward, shape))


def read_region(paths: Sequence[Path], name: str, forward: tuple[int | slice, ...], shape: Sequence[int]) -> np.ndarray:
    """Read the ``forward`` items of a :class:`Region` from segments joined along axis 0.

    Segment lengths come from their HDF5 headers, opened only as far as
    needed: from the end for rows in the second half (what a live
    subscriber asks for after each append), else from the start.
    """
    if len(paths) == 1 or not forward:
        return hdf5.read_array(paths[0], name, forward)
    first, rest = forward[0], forward[1:]
    total = int(shape[0])
    if isinstance(first, int):
        picked = read_region(paths, name, (slice(first, first + 1, 1), *rest), shape)
        return picked[0]
    start, stop, step = first.start, first.stop, first.step
    if start >= stop:
        return hdf5.read_array(paths[0], name, (slice(0, 0, 1), *rest))
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
    """``value`` as an ndarray labshelf can store exactly, or UnsupportedValue / InvalidValue."""
    if isinstance(value, np.ndarray) and type(value) is not np.ndarray and not isinstance(value, np.memmap):
        # np.asarray would drop what the subclass adds (a mask, matrix
        # semantics, units) and the value would come back a plain array.
        what = "masked arrays" if isinstance(value, np.ma.MaskedArray) else f"{type(value).__module__}.{type(value).__qualname__} values"
        how = (
            "store value.filled(...) and the mask (value.mask) as two datasets"
            if isinstance(value, np.ma.MaskedArray)
            else "store np.asarray(value) if the plain array is what you want back"
        )
        raise UnsupportedValue(f"{what} are not stored (only plain numpy.ndarray: this subclass would come back as one); {how}")
    if isinstance(value, (list, tuple)):
        array = _list_as_array(value)
    else:
        array = np.asarray(value)
    kind = array.dtype.kind
    if kind == "O":
        for x in array.flat:
            if not isinstance(x, str):
                if isinstance(x, int) and not -(2**63) <= x < 2**64:
                    digits = str(x)
                    shown = digits if len(digits) <= 24 else f"{digits[:12]}... ({len(digits)} digits)"
                    raise UnsupportedValue(
                        f"the integer {shown} is outside the 64-bit range numpy arrays hold; "
                        "store it alone as a scalar (Python ints of any size are exact) or as str"
                    )
                raise UnsupportedValue(
                    "object arrays are stored only when every element is a str, not "
                    f"{type(x).__name__}; use a numeric, bool, bytes, str or datetime dtype"
                )
            if not is_valid_text(x):
                raise invalid_text("a str in this array")
        return array
    if kind not in _STORABLE_KINDS or array.dtype.fields is not None:
        raise UnsupportedValue(
            f"arrays of dtype {array.dtype} are not supported; use a numeric, bool, "
            "bytes (S), str (U) or datetime64/timedelta64 dtype"
        )
    if kind == "U" and array.size and not valid_code_points(array):
        raise invalid_text("a str in this array")
    return array


def _list_as_array(value: list[Any] | tuple[Any, ...]) -> np.ndarray:
    """A list's array, refused where numpy would change its elements to make one."""
    try:
        array = np.asarray(value)
    except ValueError as exc:
        raise UnsupportedValue(f"this {type(value).__name__} is not a regular array: {exc}") from exc
    kind = array.dtype.kind
    if kind in "USfc":
        # numpy turns every element into str (or bytes) as soon as one is, and
        # ints into floats as soon as one is a float: check the original
        # elements, since those of ``array`` are converted already.
        items = np.asarray(value, dtype=object).flat
        if kind in "US":
            wanted = str if kind == "U" else bytes
            if not all(isinstance(x, wanted) for x in items):
                raise UnsupportedValue(
                    f"this {type(value).__name__} mixes strings with other values; numpy would turn "
                    "them all into strings. Store an array of one dtype"
                )
        else:
            # Python compares an int with a float or complex exactly.
            for x, y in zip(items, array.ravel().tolist(), strict=True):
                if isinstance(x, (int, np.integer)) and int(x) != y:
                    raise InvalidValue(
                        f"the int {x} in this {type(value).__name__} has no exact {array.dtype} value, which "
                        "numpy would make of it among floats; store the ints and floats apart, or convert first"
                    )
    return array


def valid_code_points(array: np.ndarray) -> bool:
    """Whether a str (U) array holds Unicode scalar values only (no surrogates, none past U+10FFFF)."""
    points = np.ascontiguousarray(array).view(array.dtype.str[0] + "u4")
    surrogate = (points - np.uint32(0xD800)) < 0x800  # wraps around below U+D800
    return not (surrogate.any() or (points > 0x10FFFF).any())


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

    numpy's own "same_kind" rule lets an int become a one-character string,
    1e300 become a float32 inf, 2**53 + 1 become 2**53 in a float64 and a
    long double lose its last digits; a dataset must never silently hold
    something other than what was given.  A cast numpy calls "safe" keeps
    every value; any other is done, then checked value by value.
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
    if _exact_cast(source, target):
        return values.astype(target)
    if target.kind in "iu":
        # Between integer kinds (bools always fit): compare the extremes as
        # Python ints, exact whatever the two dtypes.
        if values.size and source.kind in "iu":
            info = np.iinfo(target)
            if int(values.min()) < info.min or int(values.max()) > info.max:
                raise InvalidValue(
                    f"values do not fit the {target} dataset {ref.label!r} (out of its range "
                    f"{info.min}..{info.max})"
                )
        return values.astype(target)
    with np.errstate(all="ignore"):
        converted = values.astype(target)
        if source.kind in "fc" and not np.array_equal(np.isfinite(converted), np.isfinite(values)):
            raise InvalidValue(f"values overflow the {target} dataset {ref.label!r}")
        # Back to the source dtype: an int, float or complex that came through
        # unchanged is exactly representable in the target.
        back = (converted.real if source.kind != "c" and target.kind == "c" else converted).astype(source)
        if not np.array_equal(back, values, equal_nan=source.kind in "fc"):
            raise InvalidValue(
                f"cannot store these {source} values in the {target} dataset {ref.label!r} exactly "
                f"({target} would round them); convert them first, or store them in a dataset of {source}"
            )
    return converted


def _exact_cast(source: np.dtype, target: np.dtype) -> bool:
    """Whether every value of ``source`` is exactly a value of ``target``.

    numpy's "safe" casting, except that numpy calls int64 to float64 safe
    although a float64 holds integers exactly only up to 2**53.
    """
    if not np.can_cast(source, target, "safe"):
        return False
    if source.kind in "iu" and target.kind in "fc":
        return source.itemsize * 8 - (source.kind == "i") <= np.finfo(target).nmant + 1
    return True


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
