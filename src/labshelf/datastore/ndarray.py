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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UnsupportedValue
from . import hdf5
from .formatter import Description, Formatter, Summary

if TYPE_CHECKING:
    from ..registry.records import DatasetRef

#: Arrays up to this many bytes (and without storage options) stay in the registry.
INLINE_MAX_BYTES = 16 * 1024

_STORABLE_KINDS = "biufcSUMm"


class NDArrayFormatter(Formatter):
    kind = "ndarray"
    priority = 10
    appendable = True
    describes = "numpy arrays of numeric, bool, bytes, str and datetime dtypes (and lists of numbers)"

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
        parts = [hdf5.read_array(p, name) for p in paths]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


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
