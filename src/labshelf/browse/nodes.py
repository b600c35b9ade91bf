"""Node ids: how front ends name what they show, in URLs and in the page.

====================================  ===================================================
``""``                                the shelf
``run/12``                            run 12
``run/12/scan``                       the group of datasets named ``scan/...``
                                      (``run/12/scan/`` when a dataset ``scan`` exists too)
``run/12/scan/x``                     dataset ``scan/x``; ``run/12/image[detector=3]`` with a data ID
``run/12/spectrum#energy``            a member of a dataset: a variable, column or component
``run/12/image#camera/image``         an HDF5 member; ``...#camera/image@CLASS`` an attribute
====================================  ===================================================

A dataset is named by its label (``names.label``: ``name`` or
``name[channel=2, det='x']``), so an id reads like the dataset it names.
:func:`node_id` writes ids, :func:`parse_node` reads them back.  Ids arrive
from browsers and HTTP, so reading one never trusts it: any string gives
either a :class:`NodeId` or InvalidName, is bounded in length, holds no
control characters, and names runs as plain ASCII digits that fit the
registry.  What an id means (a dataset, a group, a member?) is decided
against the registry by the browser (``Browser.locate``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidDataId, InvalidName
from ..names import check_name, label, normalize_data_id

#: Longest node id read (a name is at most 255 characters; data IDs and member paths add some).
MAX_NODE_ID = 4096
#: Largest run number an id may name: ``runs.number`` is an SQL INTEGER, 32 bits on PostgreSQL.
MAX_RUN = 2**31 - 1

_RUN_ID = re.compile(r"run/([1-9][0-9]{0,30})(?:(/)(.*))?\Z", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# One data ID item as names.format_data_id writes it: key=int, key=True/False, key='text' (a repr).
_ITEM = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*)=(-?[0-9]{1,40}|True|False|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")(, |\Z)", re.DOTALL
)


# The escapes repr() writes into a string (anything else fails the canonical check below).
_ESCAPE = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[\\'\"nrt])")
_SIMPLE = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t"}


def _unescape(match: re.Match[str]) -> str:
    code = match[1]
    if code in _SIMPLE:
        return _SIMPLE[code]
    point = int(code[1:], 16)
    # Beyond Unicode, or half a surrogate pair: no dataset has it (and no registry could store it).
    return chr(point) if point <= 0x10FFFF and not 0xD800 <= point <= 0xDFFF else match[0]


@dataclass(frozen=True, slots=True)
class NodeId:
    """A node id read: the shelf (``run`` None), a run (``path`` empty) or what follows ``run/<n>/``."""

    run: int | None = None
    path: str = ""


def parse_node(text: Any) -> NodeId:
    """Read a node id; InvalidName, saying what ids look like, for anything else."""
    if not isinstance(text, str):
        raise InvalidName(f"a node id is a string like 'run/12' or 'run/12/scan/x', not {type(text).__name__}")
    if text == "":
        return NodeId()
    if len(text) > MAX_NODE_ID:
        raise InvalidName(f"a node id is at most {MAX_NODE_ID} characters long, not {len(text)}")
    if _CONTROL.search(text):
        raise InvalidName(f"{text!r} is not a node id: node ids hold no control characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidName(f"{text!r} is not a node id: it is not valid Unicode text (a lone surrogate)") from None
    match = _RUN_ID.match(text)
    if match is None:
        raise InvalidName(f"{text!r} is not a node id: they look like 'run/12' or 'run/12/scan/x'")
    number = int(match[1])
    if number > MAX_RUN:
        raise InvalidName(f"{text!r} is not a node id: run numbers go up to {MAX_RUN}")
    if match[2] and not match[3]:
        raise InvalidName(f"{text!r} is not a node id: nothing follows 'run/{number}/'")
    return NodeId(number, match[3] or "")


def node_id(
    run: int | None = None, label_text: str = "", *, member: str | None = None, group: str | None = None,
    shadowed: bool = False,
) -> str:
    """The id of the shelf, a run, a dataset (by its label), one of its members, or a group.

    ``group`` is a name prefix without the trailing ``/`` (``"scan"``);
    ``shadowed`` says a dataset has that name too, and the group's id then
    ends in ``/``.
    """
    if run is None:
        return ""
    if group is not None:
        return f"run/{run}/{group}{'/' if shadowed else ''}"
    if not label_text:
        return f"run/{run}"
    return f"run/{run}/{label_text}" if member is None else f"run/{run}/{label_text}#{member}"


def parse_label(text: str) -> tuple[str, dict[str, Any]] | None:
    """``name[channel=2, det='x']`` -> (name, data ID); None unless it is a valid name with a data ID
    written as :func:`names.label` writes it (so each dataset has exactly one id)."""
    name, bracket, rest = text.partition("[")
    try:
        check_name(name)
    except InvalidName:
        return None
    if not bracket:
        return name, {}
    if not rest.endswith("]") or len(rest) < 2:
        return None
    inner = rest[:-1]
    data_id: dict[str, Any] = {}
    at = 0
    while at < len(inner):
        match = _ITEM.match(inner, at)
        if match is None or match[1] in data_id or (match[3] == "" and match.end() < len(inner)):
            return None
        raw = match[2]
        if raw in ("True", "False"):
            value: Any = raw == "True"
        elif raw[0] in "'\"":
            value = _ESCAPE.sub(_unescape, raw[1:-1])
        else:
            value = int(raw)
        data_id[match[1]] = value
        at = match.end()
    try:
        normalized = normalize_data_id(data_id)
    except InvalidDataId:
        return None
    # Only the canonical spelling: sorted keys, repr quoting, no leading zeros.
    if label(name, normalized) != text:
        return None
    return name, normalized
