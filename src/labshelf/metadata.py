"""The shelf's side of display metadata, column tags and the logbook (``Shelf.describe`` and friends).

The records, checks and SQL are in ``registry/meta.py``; here they meet a
shelf's view: writes go to its own repository, reads look through the whole
search path (the view's own repository first, then its inputs in order, the
first that says something about a name winning).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import InvalidValue, LogEntryNotFound, ShelfError
from .names import data_id_key, label, normalize_data_id
from .registry.meta import (
    FIELDS,
    WHOLE,
    DisplayMeta,
    Meta,
    check_column_name,
    check_fields,
    check_log_text,
    check_tags,
    check_time,
    merged,
    os_user,
)

if TYPE_CHECKING:
    import pandas as pd

    from .shelf import Shelf

#: "Not given" for ``describe`` (where None clears a field).
UNSAID: Any = type("Unsaid", (), {"__repr__": lambda self: "UNSAID"})()


def _metas(shelf: Shelf) -> list[Meta]:
    """The view's repositories' metadata stores, the own one (where writes go) first."""
    own = shelf._writer.meta
    return [own, *(Meta(repo.registry) for repo in shelf._repos[1:])]


def describe(shelf: Shelf, name: str, data_id: Mapping[str, Any] | None, given: Mapping[str, Any]) -> DisplayMeta:
    shelf._check_writable()
    meta = shelf._writer.meta
    name = check_column_name(name, meta)
    fields = check_fields({k: v for k, v in given.items() if v is not UNSAID}, clearing=True)
    key = data_id_key(normalize_data_id(data_id))
    meta.describe(name, key, fields, user=os_user())
    return metadata_of(shelf, name, data_id)


def metadata_of(shelf: Shelf, name: str, data_id: Mapping[str, Any] | None = None) -> DisplayMeta:
    """What is said of ``name`` (and its data ID, over the name's), as an empty record if nothing is."""
    did = normalize_data_id(data_id)
    key = data_id_key(did)
    found = None
    for meta in reversed(_metas(shelf)):  # the first repository in search order wins
        whole = meta.get(name, WHOLE)
        own = meta.get(name, key) if key != WHOLE else None
        found = merged(found, merged(whole, own)) if (whole or own) else found
    if found is None:
        return DisplayMeta(name, did)
    return DisplayMeta(name, did, **{f: getattr(found, f) for f in FIELDS}, updated=found.updated, user=found.user)


def all_metadata(shelf: Shelf) -> dict[str, DisplayMeta]:
    """Every record of the view, keyed by label (``name`` or ``name[channel=2]``), sorted."""
    out: dict[str, DisplayMeta] = {}
    for meta in reversed(_metas(shelf)):
        for record in meta.all():
            key = label(record.name, record.data_id)
            out[key] = merged(out.get(key), record) or record
    return dict(sorted(out.items()))


def for_label(records: Mapping[str, DisplayMeta], name: str, data_id: Mapping[str, Any]) -> DisplayMeta | None:
    """The metadata of a column: its data ID's over its name's (None where nothing is said)."""
    whole = records.get(name)
    if not data_id:
        return whole
    return merged(whole, records.get(label(name, data_id)))


def tag_columns(shelf: Shelf, name: str, tags: Iterable[str]) -> list[str]:
    shelf._check_writable()
    meta = shelf._writer.meta
    name = check_column_name(name, meta)
    checked = check_tags(tags)
    meta.tag_columns(name, checked, user=os_user())
    return checked


def column_tags(shelf: Shelf) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for meta in reversed(_metas(shelf)):
        out.update(meta.column_tags())
    return dict(sorted(out.items()))


# -- the logbook -------------------------------------------------------------------


def log(shelf: Shelf, text: Any, at: Any) -> int:
    shelf._check_writable()
    checked = check_log_text(text)
    return shelf._writer.meta.log(checked, time.time() if at is None else check_time(at), user=os_user())


def edit_log(shelf: Shelf, entry: Any, text: Any, at: Any) -> bool:
    shelf._check_writable()
    number = _entry(entry)
    checked = None if text is None else check_log_text(text)
    seconds = None if at is None else check_time(at)
    try:
        return shelf._writer.meta.edit_log(number, text=checked, at=seconds, user=os_user())
    except LookupError:
        raise _no_entry(number) from None


def delete_log(shelf: Shelf, entry: Any) -> None:
    shelf._check_writable()
    number = _entry(entry)
    try:
        shelf._writer.meta.delete_log(number, user=os_user())
    except LookupError:
        raise _no_entry(number) from None


def _entry(entry: Any) -> int:
    import numbers

    if isinstance(entry, bool) or not isinstance(entry, numbers.Integral) or not 1 <= int(entry) < 2**63:
        raise InvalidValue(f"a log entry is given by its number (an int from shelf.log or the logbook's index), not {entry!r}")
    return int(entry)


def _no_entry(number: int) -> ShelfError:
    return LogEntryNotFound(f"the logbook has no entry {number}; shelf.logbook() lists them")


def logbook(shelf: Shelf, since: Any, until: Any) -> pd.DataFrame:
    """The entries of the view's repositories from ``since`` to ``until``, by time."""
    import numpy as np
    import pandas as pd

    low = None if since is None else check_time(since, "since=")
    high = None if until is None else check_time(until, "until=")
    rows = []
    for repo, meta in zip(shelf._repos, _metas(shelf), strict=True):
        for entry, at, text, who, created, updated in meta.entries(low, high):
            rows.append((entry, at, text, who, created, updated, repo.where))
    rows.sort(key=lambda row: (row[1], row[0]))
    # Columns as arrays, not Series: a Series of its own (index 0, 1, ...) would be
    # aligned on the entry numbers, giving each entry another entry's text.
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime([r[1] for r in rows], unit="s", utc=True),
            "text": np.array([r[2] for r in rows], dtype=object),
            "user": np.array([r[3] for r in rows], dtype=object),
            "written": pd.to_datetime([r[4] for r in rows], unit="s", utc=True),
            "edited": pd.to_datetime([r[5] if r[5] != r[4] else None for r in rows], unit="s", utc=True),
        },
        index=pd.Index([r[0] for r in rows], dtype="int64", name="entry"),
    )
    if len(shelf._repos) > 1:
        frame["repository"] = [r[6] for r in rows]
    return frame


__all__ = [
    "UNSAID", "all_metadata", "column_tags", "delete_log", "describe", "edit_log", "for_label", "log", "logbook",
    "metadata_of", "tag_columns",
]
