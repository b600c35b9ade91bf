"""Scalars: bool, int, float, complex, str, bytes, None and numpy scalars.

They live inline in the registry as JSON, tagged with their type so each one
comes back exactly (``1`` stays int, ``1.0`` float, ``np.float32(1)``
float32).  Floats are written with ``repr`` precision; NaN and the
infinities as strings, since JSON has no literal for them.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

from ..errors import UnsupportedValue
from .formatter import Description, Formatter, Summary, invalid_text, is_valid_text

#: How much of a string the run table shows.
TEXT_SUMMARY_CHARS = 200

_PLAIN = (bool, int, float, complex, str, bytes, type(None))
_PLAIN_TYPES = frozenset(_PLAIN)
#: Tags whose value JSON holds as is, and the one type each must have.
_JSON_TYPES: dict[str, type] = {"bool": bool, "int": int, "str": str}


_FLOAT = Description(shape=None, dtype="float", nbytes=8)
_INT = Description(shape=None, dtype="int", nbytes=8)
#: The encoder of inline scalars, made once: json.dumps with options builds a new one per call.
_INLINE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
#: A str as JSON text, non-ASCII kept (what json.dumps(ensure_ascii=False) writes).
_json_text = json.encoder.encode_basestring


def _float_out(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)


def _float_in(x: float | str) -> float:
    return float(x)


class ScalarFormatter(Formatter):
    kind = "scalar"
    priority = 30
    describes = "bool, int, float, complex, str, bytes, None and numpy scalars"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, _PLAIN):
            return True
        np = _numpy_if_loaded()
        # Void and structured scalars are refused like their arrays: their raw
        # bytes would come back without the field names and types.
        return np is not None and isinstance(value, np.generic) and value.dtype.kind not in "OV"

    def prepare(self, value: Any) -> Any:
        kind = type(value)
        np = _numpy_if_loaded() if kind not in _PLAIN_TYPES else None
        if kind not in _PLAIN_TYPES and (np is None or not isinstance(value, np.generic)):
            # An IntEnum, a str subclass...: stored as its base type, it would come back as one.
            base = next(t for t in _PLAIN if isinstance(value, t))
            raise UnsupportedValue(
                f"a {kind.__module__}.{kind.__qualname__} is a subclass of {base.__name__} and would come back "
                f"as a plain {base.__name__}; store {base.__name__}(value) (or the value's .value)"
            )
        # np.str_ is a str too: both would fail later, in the registry's UTF-8.
        if isinstance(value, str) and not is_valid_text(value):
            raise invalid_text("this str")
        return value

    def describe(self, value: Any) -> Description:
        kind = type(value)
        if kind is float or kind is int:  # frozen: one record serves every value of the kind
            return _FLOAT if kind is float else _INT
        if isinstance(value, (str, bytes)):
            return Description(shape=None, dtype=type(value).__name__, nbytes=len(value))
        if hasattr(value, "dtype"):
            return Description(shape=None, dtype=str(value.dtype), nbytes=value.dtype.itemsize)
        return Description(shape=None, dtype=type(value).__name__, nbytes=8 if value is not None else 0)

    def summarise(self, value: Any) -> Summary:
        kind = type(value)
        if kind is float:  # the common case first (a batch of puts summarises thousands)
            return Summary("float", value=value if value == value else None)
        if kind is int and abs(value) < 2**1023:
            return Summary("int", value=float(value), text=str(value))
        if hasattr(value, "dtype"):
            value = value.item() if value.dtype.kind in "biufc" else str(value)
        if value is None:
            return Summary("none")
        if isinstance(value, bool):
            return Summary("bool", value=float(value))
        if isinstance(value, int):
            return Summary("int", value=float(value) if abs(value) < 2**1023 else None, text=str(value))
        if isinstance(value, float):
            return Summary("float", value=value if not math.isnan(value) else None)
        if isinstance(value, complex):
            return Summary("complex", text=repr(value))
        if isinstance(value, bytes):
            return Summary("text", text=_truncate(repr(value)))
        # PostgreSQL text cannot hold NUL: the summary shows U+2400 (the
        # "symbol for null") in its place; the value itself is kept exactly.
        return Summary("text", text=_truncate(str(value).replace("\x00", "\u2400")))

    def to_inline(self, value: Any, options: Mapping[str, Any]) -> str:
        # The common kinds written directly (the text json gives, at a fifth of the cost).
        kind = type(value)
        if kind is float and math.isfinite(value):
            return f'{{"t":"float","v":{float.__repr__(value)}}}'
        if kind is int:
            return f'{{"t":"int","v":{int.__repr__(value)}}}'
        if kind is str:
            return f'{{"t":"str","v":{_json_text(value)}}}'
        return _INLINE.encode(encode_scalar(value))

    def from_inline(self, text: str) -> Any:
        # The registry row may have been edited by hand: malformed documents
        # are a ValueError, never a value of some other type.
        try:
            return decode_scalar(json.loads(text))
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"inline scalar is damaged: {exc!r}") from exc


def _truncate(text: str) -> str:
    if len(text) <= TEXT_SUMMARY_CHARS:
        return text
    return text[: TEXT_SUMMARY_CHARS - 1] + "\u2026"


def encode_scalar(value: Any) -> dict[str, Any]:
    """A JSON document that ``decode_scalar`` turns back into exactly ``value`` (type included)."""
    # numpy scalars first: np.float64, np.complex128, np.str_ and np.bytes_
    # subclass the Python types below and would come back as those.
    np = _numpy_if_loaded()
    if np is not None and isinstance(value, np.generic):
        return {"t": "numpy", "dtype": value.dtype.str, "v": base64.b64encode(value.tobytes()).decode("ascii")}
    if value is None:
        return {"t": "none"}
    if isinstance(value, bool):
        return {"t": "bool", "v": value}
    if isinstance(value, int):
        return {"t": "int", "v": int(value)}
    if isinstance(value, float):
        return {"t": "float", "v": _float_out(float(value))}
    if isinstance(value, complex):
        return {"t": "complex", "v": [_float_out(value.real), _float_out(value.imag)]}
    if isinstance(value, str):
        return {"t": "str", "v": str(value)}
    return {"t": "bytes", "v": base64.b64encode(value).decode("ascii")}


def decode_scalar(doc: dict[str, Any]) -> Any:
    """The scalar of an ``encode_scalar`` document; ValueError/KeyError/TypeError if malformed."""
    tag = doc["t"]
    if tag == "none":
        return None
    if tag in _JSON_TYPES:
        value = doc["v"]
        if type(value) is not _JSON_TYPES[tag]:
            raise ValueError(f"inline scalar tagged {tag!r} holds a {type(value).__name__}")
        return value
    if tag == "float":
        return _float_in(doc["v"])
    if tag == "complex":
        return complex(_float_in(doc["v"][0]), _float_in(doc["v"][1]))
    if tag == "bytes":
        return base64.b64decode(doc["v"])
    if tag == "numpy":
        import numpy as np

        dtype = np.dtype(doc["dtype"])
        if dtype.hasobject:
            raise ValueError("object dtypes are never stored")
        # tobytes() of np.str_("") / np.bytes_(b"") gives one NUL item: cut to size.
        raw = base64.b64decode(doc["v"])[: dtype.itemsize]
        # Strings are rebuilt from their bytes: frombuffer would drop trailing
        # NULs (which a np.bytes_ / np.str_ scalar keeps) and refuses "" outright.
        if dtype.kind == "S":
            return np.bytes_(raw)
        if dtype.kind == "U":
            return np.str_(raw.decode("utf-32-be" if dtype.str[0] == ">" else "utf-32-le"))
        return np.frombuffer(raw, dtype=dtype)[0]
    raise ValueError(f"unknown scalar tag {tag!r}")


def _numpy_if_loaded() -> Any:
    import sys

    return sys.modules.get("numpy")
