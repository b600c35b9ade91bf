"""A safe reader of PYON, the text ARTIQ writes its ``expid`` in (never ``eval``).

PYON (sipyco's serialiser) writes Python literals that ``eval`` reads back:
JSON for dicts, lists, numbers and double-quoted strings, plus ``null``,
``true``, ``false``, ``nan``, ``inf``, tuples ``(1, 2)``, sets ``{1, 2}``,
bytes ``b"..."``, complex numbers ``1j`` / ``(1+2j)``, and a few calls:
``nparray(shape, dtype, b"<base64>")``, ``npscalar(dtype, b"<base64>")``,
``Fraction(n, d)``, ``OrderedDict([(k, v), ...])`` and ``slice(a, b, c)``.

ARTIQ decodes it with ``eval``; a results file is untrusted input, so this
module parses that grammar by hand and builds only the values above:
anything else (a name, an attribute, an operator, a call of another
function) is a :class:`PyonError` naming the position.  Depth and array
sizes are bounded, so a hostile file cannot exhaust the stack or memory.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import OrderedDict
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["PyonError", "decode"]

#: Nesting deeper than this is refused (a real expid nests a few levels).
MAX_DEPTH = 100
#: Elements of one ``nparray`` (ARTIQ arguments are small; this keeps a hostile shape cheap).
MAX_ARRAY_ITEMS = 10_000_000

_NUMBER = re.compile(
    r"""
    (?:\d+(?:_\d+)*)?\.?\d*(?:_\d+)*   # digits, a point, digits (some may be empty)
    (?:[eE][+-]?\d+)?                  # exponent
    [jJ]?                              # imaginary
    """,
    re.VERBOSE,
)
_INT_PREFIX = re.compile(r"0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = re.compile(r"\s*")
_SIMPLE_ESCAPES = {
    "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
}
_CONSTANTS: dict[str, Any] = {
    "null": None, "None": None, "true": True, "True": True, "false": False, "False": False,
    "nan": math.nan, "inf": math.inf,
}


class PyonError(ValueError):
    """Text that is not PYON; ``position`` is the offset where reading stopped."""

    def __init__(self, message: str, position: int):
        super().__init__(f"{message} (at character {position})")
        self.position = position


def decode(text: str) -> Any:
    """The value PYON ``text`` stands for, built without evaluating anything.

    Raises
    ------
    PyonError
        If ``text`` is not PYON (or is, but goes beyond the bounds above).
    """
    if not isinstance(text, str):
        raise TypeError(f"PYON is text (a str), not {type(text).__name__}")
    parser = _Parser(text)
    value = parser.value(0)
    parser.skip()
    if parser.pos != len(text):
        raise PyonError(f"unexpected {text[parser.pos:parser.pos + 10]!r} after the value", parser.pos)
    return value


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    # -- low level ---------------------------------------------------------------

    def skip(self) -> None:
        match = _SPACE.match(self.text, self.pos)
        assert match is not None  # \s* always matches
        self.pos = match.end()

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos:self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            found = self.text[self.pos:self.pos + 1] or "the end"
            raise PyonError(f"expected {char!r}, found {found!r}", self.pos)
        self.pos += 1

    def fail(self, message: str) -> PyonError:
        return PyonError(message, self.pos)

    # -- values ---------------------------------------------------------------------

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} levels deep")
        char = self.peek()
        if not char:
            raise self.fail("the text ends where a value was expected")
        if char == "{":
            return self.braces(depth)
        if char == "[":
            self.pos += 1
            return self.items("]", depth)
        if char == "(":
            return self.parenthesis(depth)
        if char in "\"'":
            return self.string()
        if char in "bB" and self.text[self.pos + 1:self.pos + 2] in ("'", '"'):
            self.pos += 1
            start = self.pos
            text = self.string()
            try:
                return text.encode("latin-1")
            except UnicodeEncodeError:
                raise PyonError("bytes hold only characters up to \\xff", start) from None
        if char in "+-" or char.isdigit() or char == ".":
            return self.number()
        name = _NAME.match(self.text, self.pos)
        if name is None:
            raise self.fail(f"unexpected {char!r}")
        self.pos = name.end()
        word = name.group()
        if word in _CONSTANTS:
            return _CONSTANTS[word]
        if self.peek() == "(":
            return self.call(word, depth)
        raise PyonError(f"unknown name {word!r}: PYON has only null, true, false, nan, inf and its own calls", name.start())

    def items(self, close: str, depth: int) -> list[Any]:
        """Comma-separated values up to ``close`` (a trailing comma allowed); the opener is read."""
        out: list[Any] = []
        while True:
            if self.peek() == close:
                self.pos += 1
                return out
            out.append(self.value(depth + 1))
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != close:
                raise self.fail(f"expected ',' or {close!r}")

    def braces(self, depth: int) -> dict[Any, Any] | set[Any]:
        self.expect("{")
        if self.peek() == "}":
            self.pos += 1
            return {}
        start = self.pos
        first = self.value(depth + 1)
        if self.peek() != ":":
            members = [first]
            if self.peek() == ",":
                self.pos += 1
                members += self.items("}", depth)
            else:
                self.expect("}")
            try:
                return set(members)
            except TypeError:
                raise PyonError("a set member is not hashable", start) from None
        out: dict[Any, Any] = {}
        key = first
        while True:
            self.expect(":")
            try:
                out[key] = self.value(depth + 1)
            except TypeError:
                raise PyonError("a dict key is not hashable", start) from None
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise self.fail("expected ',' or '}'")
            if self.peek() == "}":
                self.pos += 1
                return out
            start = self.pos
            key = self.value(depth + 1)

    def parenthesis(self, depth: int) -> Any:
        self.expect("(")
        if self.peek() == ")":
            self.pos += 1
            return ()
        first = self.value(depth + 1)
        char = self.peek()
        if char == ")":  # (x): a parenthesised value, as Python reads it
            self.pos += 1
            return first
        if char in "+-" and _is_real(first):  # (1+2j), as repr writes a complex
            second = self.number()
            if not isinstance(second, complex) or second.real != 0:
                raise self.fail("expected the imaginary part of a complex number, e.g. (1+2j)")
            self.expect(")")
            return complex(first, 0) + second
        self.expect(",")
        return (first, *self.items(")", depth))

    def number(self) -> int | float | complex:
        self.skip()
        start = self.pos
        sign = 1
        while self.text[self.pos:self.pos + 1] in ("+", "-"):
            if self.text[self.pos] == "-":
                sign = -sign
            self.pos += 1
            self.skip()
        word = _NAME.match(self.text, self.pos)
        if word is not None and word.group() in ("inf", "nan"):
            self.pos = word.end()
            return sign * _CONSTANTS[word.group()]
        prefixed = _INT_PREFIX.match(self.text, self.pos)
        if prefixed is not None:
            self.pos = prefixed.end()
            return sign * int(prefixed.group(), 0)
        match = _NUMBER.match(self.text, self.pos)
        assert match is not None  # every part is optional
        literal = match.group()
        if not any(c.isdigit() for c in literal):
            raise PyonError("expected a number", start)
        self.pos = match.end()
        try:
            if literal[-1] in "jJ":
                return sign * complex(0, float(literal[:-1] or "1"))
            if any(c in literal for c in ".eE"):
                return sign * float(literal)
            if len(literal) > 1 and literal.startswith("0") and literal.strip("0_"):
                raise PyonError(f"{literal!r}: leading zeros are not allowed in an integer", start)
            return sign * int(literal)
        except ValueError:
            raise PyonError(f"{literal!r} is not a number", start) from None

    def string(self) -> str:
        quote = self.text[self.pos]
        start = self.pos
        self.pos += 1
        text = self.text
        parts: list[str] = []
        while True:
            end = self.pos
            while end < len(text) and text[end] not in (quote, "\\", "\n"):
                end += 1
            parts.append(text[self.pos:end])
            self.pos = end
            if end >= len(text) or text[end] == "\n":
                raise PyonError("a string is not closed", start)
            if text[end] == quote:
                self.pos = end + 1
                return "".join(parts)
            parts.append(self.escape())

    def escape(self) -> str:
        text = self.text
        code = text[self.pos + 1:self.pos + 2]
        self.pos += 2
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        if code == "\n":
            return ""
        size = {"x": 2, "u": 4, "U": 8}.get(code)
        if size is not None:
            digits = text[self.pos:self.pos + size]
            if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise self.fail(f"\\{code} takes {size} hexadecimal digits")
            self.pos += size
            point = int(digits, 16)
            if point > 0x10FFFF:
                raise self.fail(f"\\{code}{digits} is beyond the last character (U+10FFFF)")
            return chr(point)
        if code and code in "01234567":
            end = self.pos
            while end < len(text) and end - self.pos < 2 and text[end] in "01234567":
                end += 1
            digits = code + text[self.pos:end]
            self.pos = end
            return chr(int(digits, 8))
        return "\\" + code  # Python keeps an unknown escape as it is

    # -- the calls PYON writes ---------------------------------------------------------

    def call(self, name: str, depth: int) -> Any:
        start = self.pos
        self.expect("(")
        args = self.items(")", depth)
        try:
            if name == "nparray":
                return _nparray(*args)
            if name == "npscalar":
                return _npscalar(*args)
            if name == "Fraction":
                return Fraction(*args)
            if name == "OrderedDict":
                return OrderedDict(*args)
            if name == "slice":
                return slice(*args)
        except PyonError:
            raise
        except (TypeError, ValueError, ZeroDivisionError, binascii.Error) as exc:
            raise PyonError(f"{name}(...) with these arguments does not make a value: {exc}", start) from None
        raise PyonError(
            f"unknown call {name}(...): PYON calls are nparray, npscalar, Fraction, OrderedDict and slice", start
        )


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _dtype(text: Any) -> np.dtype[Any]:
    if not isinstance(text, str):
        raise TypeError(f"a dtype is given as text, not {type(text).__name__}")
    dtype = np.dtype(text)
    if dtype.hasobject:
        raise ValueError(f"dtype {text!r} holds Python objects")
    return dtype


def _payload(data: Any) -> bytes:
    if isinstance(data, str):
        data = data.encode("ascii")
    if not isinstance(data, bytes):
        raise TypeError(f"the data are base64 bytes, not {type(data).__name__}")
    return base64.b64decode(data, validate=True)


def _nparray(shape: Any, dtype_text: Any, data: Any) -> np.ndarray:
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(_is_real(n) and isinstance(n, int) and n >= 0 for n in shape):
        raise TypeError(f"the shape is a tuple of counts, not {shape!r}")
    count = math.prod(shape)
    if count > MAX_ARRAY_ITEMS:
        raise ValueError(f"{count} elements is more than {MAX_ARRAY_ITEMS}")
    array = np.frombuffer(_payload(data), dtype=_dtype(dtype_text))
    if array.size != count:
        raise ValueError(f"{array.size} elements in the data, {count} in shape {tuple(shape)}")
    return array.reshape(tuple(shape)).copy()


def _npscalar(dtype_text: Any, data: Any) -> np.generic:
    array = np.frombuffer(_payload(data), dtype=_dtype(dtype_text))
    if array.size != 1:
        raise ValueError(f"{array.size} elements in the data of a scalar")
    scalar: np.generic = array[0]
    return scalar
