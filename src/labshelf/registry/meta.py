"""What numbers mean and what people note beside runs: display metadata, column tags, the logbook.

Display metadata (unit, scale, precision, title, description) belong to a
dataset *name*, the same for every run, like a column's header; a data ID
may have its own, which wins over the name's field by field.  Column tags
group run-table columns (they are not run tags).  The logbook holds
time-stamped comments not tied to a run.

Every change lands in the ``history`` table (without a run: ``field`` is
``meta:<name>``, ``column_tags:<name>`` or ``log:<id>``) and in the change
feed (kinds ``describe``, ``column_tags``, ``log``), in the transaction that
makes it.  Metadata are written only when they change: a put that repeats
what is stored writes nothing more (see ``Registry.lock_target``).
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from ..errors import InvalidValue, ShelfError
from ..names import check_name, check_text, format_data_id, label
from .engine import Statement, Txn
from .records import is_time
from .registry import META_FIELDS as FIELDS
from .registry import Registry
from .schema import column_tags, dataset_meta, history, logbook, user_columns

MAX_UNIT = 64
MAX_TITLE = 255
MAX_DESCRIPTION = 10_000
MAX_PRECISION = 15
MAX_LOG = 100_000
_MAX_TAG = 255
#: The data ID key of metadata that describe a name as a whole.
WHOLE = "{}"

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DisplayMeta:
    """How the values of a dataset name are shown: unit, scale, precision, title, description.

    ``scale`` has ARTIQ's meaning: values are stored in base units and shown
    as ``value / scale`` (unit ``"us"`` with scale ``1e-6``).  ``precision``
    is the number of digits shown after the point.  A ``/`` in the title
    groups columns (``"Beam/XGM mean"``).  A field that is None is unsaid.
    Equal records compare equal whoever wrote them and when.
    """

    name: str
    data_id: Mapping[str, Any] = field(default_factory=dict)
    unit: str | None = None
    scale: float | None = None
    precision: int | None = None
    title: str | None = None
    description: str | None = None
    updated: float | None = field(default=None, compare=False)
    user: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.data_id, MappingProxyType):
            object.__setattr__(self, "data_id", MappingProxyType(dict(self.data_id)))

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.data_id.items()), self.unit, self.scale, self.precision, self.title))

    @property
    def label(self) -> str:
        """What a heading calls the values: the title, else the name (with its data ID)."""
        return self.title or label(self.name, self.data_id)

    @property
    def group(self) -> str | None:
        """The column group a title names before its last ``/`` (``"Beam"`` of ``"Beam/XGM mean"``)."""
        if self.title and "/" in self.title.strip("/"):
            return self.title.strip("/").rpartition("/")[0]
        return None

    @property
    def heading(self) -> str:
        """``XGM mean [uJ]``: the title's last part (or the name) and the unit."""
        return self.header(label(self.name, self.data_id))

    def header(self, column: str) -> str:
        """What a table's header shows for ``column``: the title's last part (else the column) and the unit."""
        text = self.title.strip("/").rpartition("/")[2] if self.title else column
        return f"{text} [{self.unit}]" if self.unit else text

    @property
    def empty(self) -> bool:
        """Whether nothing is said."""
        return all(getattr(self, name) is None for name in FIELDS)

    def fields(self) -> dict[str, Any]:
        """The fields that are said, by name (what JSON and ``attrs`` carry)."""
        return {name: getattr(self, name) for name in FIELDS if getattr(self, name) is not None}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, **self.fields()}
        if self.data_id:
            out["data_id"] = dict(self.data_id)
        return out

    def shown(self, value: Any) -> Any:
        """``value`` as shown: divided by the scale (numbers and numeric arrays; anything else as it is)."""
        if self.scale is None or self.scale == 1 or isinstance(value, (bool, str, bytes)):
            return value
        kind = getattr(getattr(value, "dtype", None), "kind", None)
        if isinstance(value, numbers.Real) or kind in ("i", "u", "f"):
            return value / self.scale
        if isinstance(value, numbers.Complex) or kind == "c":
            return value / self.scale
        return value

    def format(self, value: Any, *, unit: bool = False) -> str:
        """One number (or other scalar) as shown: scaled, ``precision`` digits after the point.

        Without a precision a number shows with 6 significant digits (as every
        labshelf table does); ``unit=True`` appends the unit.
        """
        text = format_number(self.shown(value), self.precision)
        return f"{text} {self.unit}" if unit and self.unit and text else text

    def __repr__(self) -> str:
        said = ", ".join(f"{k}={v!r}" for k, v in self.fields().items())
        did = f"[{format_data_id(self.data_id)}]" if self.data_id else ""
        return f"<DisplayMeta {self.name}{did}{': ' + said if said else ''}>"


def format_number(value: Any, precision: int | None = None) -> str:
    """A scalar as tables show it: ints whole, floats with ``precision`` digits after the point or 6 significant."""
    if value is None:
        return ""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value)) if precision is None else f"{int(value):.{precision}f}"
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            return str(number)
        return f"{number:.{precision}f}" if precision is not None else f"{number:.6g}"
    if isinstance(value, numbers.Complex):
        return format(complex(value), f".{precision}f" if precision is not None else ".6g")
    return str(value)


def merged(whole: DisplayMeta | None, own: DisplayMeta | None) -> DisplayMeta | None:
    """A data ID's metadata over its name's, field by field (None where neither says anything)."""
    if own is None:
        return whole
    if whole is None:
        return own
    values = {name: getattr(own, name) if getattr(own, name) is not None else getattr(whole, name) for name in FIELDS}
    return DisplayMeta(own.name, own.data_id, **values, updated=own.updated, user=own.user)


@functools.lru_cache(maxsize=1)
def os_user() -> str:
    """The OS user name, recorded with runs, annotations, metadata and log entries (asked once per process)."""
    import getpass
    import os

    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return str(os.getuid())


# -- checking ------------------------------------------------------------------


def check_fields(given: Mapping[str, Any], *, clearing: bool) -> dict[str, Any]:
    """The fields of ``given`` as stored, or InvalidValue naming the field and what is allowed.

    ``clearing=True`` (``describe``) lets None clear a field; otherwise
    (a put) None means "not given" and is dropped.
    """
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise InvalidValue(f"display metadata are {', '.join(FIELDS)}; not {', '.join(map(repr, unknown))}")
    out: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            if clearing:
                out[name] = None
            continue
        out[name] = _CHECKS[name](value)
    return out


class PutMeta:
    """Display metadata a put carries, checked: the given fields, the defaults a value brings
    (an xarray ``units``), and the parameters of the put's first statement (see
    ``Registry.lock_target_with_meta``).  Shared and never changed."""

    __slots__ = ("defaults", "fields", "given", "params", "user")

    def __init__(self, fields: Mapping[str, Any], defaults: Mapping[str, Any] | None = None):
        self.fields = MappingProxyType(dict(fields))
        self.defaults = MappingProxyType(dict(defaults or {}))
        self.given = tuple(sorted(self.fields))
        self.params = {f"meta_{f}": v for f, v in self.fields.items()}
        self.user = os_user()


def put_fields(unit: Any, scale: Any, precision: Any, title: Any, description: Any) -> PutMeta:
    """The checked metadata of a put's arguments, remembered: a loop that repeats them checks them once."""
    key = tuple((type(v), v) for v in (unit, scale, precision, title, description))
    try:
        return _put_fields(key)
    except TypeError:  # an unhashable argument: check it to say what is wrong
        fields = {"unit": unit, "scale": scale, "precision": precision, "title": title, "description": description}
        return PutMeta(check_fields(fields, clearing=False))


@functools.lru_cache(maxsize=256)
def _put_fields(key: tuple[tuple[type, Any], ...]) -> PutMeta:
    return PutMeta(check_fields(dict(zip(FIELDS, (v for _t, v in key), strict=True)), clearing=False))


def _check_unit(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_UNIT or value.strip() != value:
        raise InvalidValue(
            f"unit= takes short text (1 to {MAX_UNIT} characters, no surrounding spaces) such as 'ps' or "
            f"'counts/s', not {value!r}"
        )
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        raise InvalidValue(f"unit= cannot contain control characters (tabs, newlines...), not {value!r}")
    return check_text(value, "a unit")


def _check_scale(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidValue(f"scale= takes a finite, non-zero number (shown value = stored value / scale), not {value!r}")
    number = float(value)
    if not math.isfinite(number) or number == 0:
        raise InvalidValue(f"scale= takes a finite, non-zero number (shown value = stored value / scale), not {value!r}")
    return number


def _check_precision(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) <= MAX_PRECISION:
        raise InvalidValue(f"precision= takes an int from 0 to {MAX_PRECISION} (digits after the point), not {value!r}")
    return int(value)


def _check_title(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TITLE:
        raise InvalidValue(f"title= takes non-empty text of at most {MAX_TITLE} characters, not {value!r}")
    if any(ord(c) < 32 for c in value):
        raise InvalidValue(f"title= is one line: no control characters (tabs, newlines...), not {value!r}")
    return check_text(value, "a title")


def _check_description(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise InvalidValue(f"description= takes text of at most {MAX_DESCRIPTION} characters, not {value!r:.80}")
    return check_text(value, "a description")


_CHECKS = {
    "unit": _check_unit,
    "scale": _check_scale,
    "precision": _check_precision,
    "title": _check_title,
    "description": _check_description,
}


def check_tags(tags: Any, what: str = "tags=") -> list[str]:
    """A sorted list of distinct tags, or InvalidValue (a single str is refused: it would be its letters)."""
    if isinstance(tags, str):
        raise InvalidValue(f"{what} takes a list of tags, not a single str; use {what}[{tags!r}]")
    if isinstance(tags, (bytes, Mapping)) or not isinstance(tags, Iterable):
        raise InvalidValue(f"{what} takes a list, tuple or set of str, not {type(tags).__name__}")
    out: set[str] = set()
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or len(tag) > _MAX_TAG:
            raise InvalidValue(f"a tag is a non-empty str of at most {_MAX_TAG} characters, not {tag!r}")
        out.add(check_text(tag, "a tag"))
    return sorted(out)


def check_log_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_LOG:
        raise InvalidValue(f"a log entry is non-empty text of at most {MAX_LOG} characters, not {text!r:.80}")
    return check_text(text, "a log entry")


def check_time(at: Any, what: str = "at=") -> float:
    """Seconds since the epoch from a datetime (naive: local time), a pandas Timestamp, an ISO string or a number."""
    import datetime as _dt

    if isinstance(at, bool):
        raise InvalidValue(f"{what} takes a datetime, an ISO 8601 string or seconds since the epoch, not {at!r}")
    # Times no calendar or float holds (10**400 seconds, year 1, pandas' NaT)
    # raise OverflowError or ValueError in the conversions: one clear error.
    outside = InvalidValue(f"{what} {at!r:.60} is outside the times a run table can show (years 1677 to 2262)")
    try:
        if isinstance(at, numbers.Real):
            seconds = float(at)
        elif isinstance(at, _dt.datetime):
            seconds = at.timestamp()
        elif isinstance(at, str):
            try:
                parsed = _dt.datetime.fromisoformat(at)
            except ValueError:
                raise InvalidValue(f"{what} {at!r} is not an ISO 8601 time such as '2026-12-05T14:05'") from None
            seconds = parsed.timestamp()
        elif hasattr(at, "to_pydatetime"):  # a pandas Timestamp that is no datetime subclass
            seconds = at.to_pydatetime().timestamp()
        else:
            raise InvalidValue(
                f"{what} takes a datetime, an ISO 8601 string or seconds since the epoch, not {type(at).__name__}"
            )
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, ShelfError):
            raise
        raise outside from None
    if not is_time(seconds):
        raise outside
    return seconds


# -- the registry's side --------------------------------------------------------

_META_COLUMNS = (dataset_meta.c.name, dataset_meta.c.data_id, *(dataset_meta.c[f] for f in FIELDS),
                 dataset_meta.c.updated, dataset_meta.c.user)
_ALL_META = Statement(select(*_META_COLUMNS).order_by(dataset_meta.c.name, dataset_meta.c.data_id))
_META_OF = Statement(
    select(*_META_COLUMNS).where(dataset_meta.c.name == bindparam("name"), dataset_meta.c.data_id == bindparam("data_id"))
)


_ROW_COLUMNS = ("name", "data_id", *FIELDS, "updated", "user")
_INSERT_META = Statement(insert(dataset_meta).values({k: bindparam(k) for k in _ROW_COLUMNS}))
_META_KEY = (dataset_meta.c.name == bindparam("_name")) & (dataset_meta.c.data_id == bindparam("_data_id"))
_UPDATE_META = Statement(
    update(dataset_meta).where(_META_KEY).values({k: bindparam(k) for k in (*FIELDS, "updated", "user")})
)
_DELETE_META = Statement(delete(dataset_meta).where(_META_KEY))
_HISTORY_COLUMNS = ("run", "field", "old", "new", "user", "time")
_ADD_HISTORY = Statement(insert(history).values({k: bindparam(k) for k in _HISTORY_COLUMNS}))


def meta_from_row(row: Any) -> DisplayMeta | None:
    """A record from a ``dataset_meta`` row; None for a row whose fields do not check (edited by hand)."""
    try:
        data_id = json.loads(row.data_id)
        if type(data_id) is not dict:
            return None
        values = check_fields({f: getattr(row, f) for f in FIELDS}, clearing=False)
    except (ValueError, TypeError, ShelfError):
        return None
    return DisplayMeta(row.name, data_id, **values, updated=row.updated, user=row.user)


class Meta:
    """Display metadata, column tags and the logbook of one shelf."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.db = registry.db

    # -- display metadata ----------------------------------------------------------

    def describe(
        self, name: str, key: str, fields: Mapping[str, Any], *, user: str, defaults: Mapping[str, Any] | None = None
    ) -> bool:
        """Set fields of a name's (or a data ID's) metadata in a transaction of its own."""
        with self.db.write() as txn:
            return self.update(txn, name, key, fields, user=user, defaults=defaults)

    def update(
        self,
        txn: Txn,
        name: str,
        key: str,
        fields: Mapping[str, Any],
        *,
        user: str,
        defaults: Mapping[str, Any] | None = None,
    ) -> bool:
        """In a write transaction: read the stored row and :meth:`apply` ``fields`` over it."""
        current = txn.first(_META_OF, {"name": name, "data_id": key})
        return self.apply(txn, name, key, fields, user=user, defaults=defaults, current=current)

    def apply(
        self,
        txn: Txn,
        name: str,
        key: str,
        fields: Mapping[str, Any],
        *,
        user: str,
        current: Any,
        defaults: Mapping[str, Any] | None = None,
    ) -> bool:
        """In a write transaction: set ``fields`` (checked) over ``current`` (its row, or None); whether it changed.

        ``defaults`` fill only fields neither stored nor given (an xarray
        value's ``units``).  Nothing is written when nothing changes.
        """
        old = {f: (getattr(current, f) if current is not None else None) for f in FIELDS}
        new = dict(old)
        new.update(fields)
        for f, value in (defaults or {}).items():
            if new.get(f) is None:
                new[f] = value
        if new == old:
            return False
        now = time.time()
        if all(v is None for v in new.values()):
            txn.execute(_DELETE_META, {"_name": name, "_data_id": key})
        elif current is None:
            txn.execute(_INSERT_META, {"name": name, "data_id": key, **new, "updated": now, "user": user})
        else:
            txn.execute(_UPDATE_META, {"_name": name, "_data_id": key, **new, "updated": now, "user": user})
        said_old = {k: v for k, v in old.items() if v is not None}
        said_new = {k: v for k, v in new.items() if v is not None}
        field_name = f"meta:{name}" if key == WHOLE else f"meta:{label(name, json.loads(key))}"
        self.record(txn, field_name, said_old or None, said_new or None, user, now)
        self.registry._change(txn, "describe", name=name, data_id=key, payload={"old": said_old, "new": said_new})
        return True

    def get(self, name: str, key: str) -> DisplayMeta | None:
        with self.db.read() as txn:
            row = txn.first(_META_OF, {"name": name, "data_id": key})
        return None if row is None else meta_from_row(row)

    def all(self) -> list[DisplayMeta]:
        """Every record (rows that do not check are left out), by name and data ID."""
        with self.db.read() as txn:
            rows = txn.all(_ALL_META)
        return [meta for meta in map(meta_from_row, rows) if meta is not None]

    # -- column tags -----------------------------------------------------------------

    def tag_columns(self, name: str, tags: list[str], *, user: str) -> bool:
        """Replace the tags of column ``name``; whether they changed."""
        with self.db.write() as txn:
            old = sorted(txn.scalars(select(column_tags.c.tag).where(column_tags.c.name == name)))
            if old == tags:
                return False
            txn.execute(delete(column_tags).where(column_tags.c.name == name))
            for tag in tags:
                txn.execute(insert(column_tags).values(name=name, tag=tag))
            now = time.time()
            self.record(txn, f"column_tags:{name}", old, tags, user, now)
            self.registry._change(txn, "column_tags", name=name, payload={"old": old, "new": tags})
        return True

    def column_tags(self) -> dict[str, list[str]]:
        """Tags by column name, both sorted."""
        with self.db.read() as txn:
            rows = txn.tuples(select(column_tags.c.name, column_tags.c.tag).order_by(column_tags.c.name, column_tags.c.tag))
        out: dict[str, list[str]] = {}
        for name, tag in rows:
            out.setdefault(name, []).append(tag)
        return out

    def is_user_column(self, name: str) -> bool:
        with self.db.read() as txn:
            return txn.scalar(select(user_columns.c.name).where(user_columns.c.name == name)) is not None

    # -- the logbook -----------------------------------------------------------------

    def log(self, text: str, at: float, *, user: str) -> int:
        now = time.time()
        with self.db.write() as txn:
            entry = txn.scalar(
                insert(logbook).values(time=at, text=text, user=user, created=now, updated=now).returning(logbook.c.id)
            )
            self.record(txn, f"log:{entry}", None, {"time": at, "text": text}, user, now)
            self.registry._change(txn, "log", payload={"id": entry, "time": at})
        return int(entry)

    def edit_log(self, entry: int, *, text: str | None, at: float | None, user: str) -> bool:
        """Change an entry's text or time (None keeps it); whether it changed.  LookupError if there is none."""
        now = time.time()
        with self.db.write() as txn:
            row = txn.first(select(logbook.c.time, logbook.c.text).where(logbook.c.id == entry))
            if row is None:
                raise LookupError(entry)
            old = {"time": row.time, "text": row.text}
            new = {"time": row.time if at is None else at, "text": row.text if text is None else text}
            if new == old:
                return False
            txn.execute(update(logbook).where(logbook.c.id == entry).values(**new, updated=now))
            self.record(txn, f"log:{entry}", old, new, user, now)
            self.registry._change(txn, "log", payload={"id": entry, "time": new["time"]})
        return True

    def delete_log(self, entry: int, *, user: str) -> None:
        now = time.time()
        with self.db.write() as txn:
            row = txn.first(select(logbook.c.time, logbook.c.text).where(logbook.c.id == entry))
            if row is None:
                raise LookupError(entry)
            txn.execute(delete(logbook).where(logbook.c.id == entry))
            self.record(txn, f"log:{entry}", {"time": row.time, "text": row.text}, None, user, now)
            self.registry._change(txn, "log", payload={"id": entry, "time": row.time, "deleted": True})

    def entries(self, since: float | None, until: float | None) -> list[tuple[Any, ...]]:
        """(id, time, text, user, created, updated) of the entries from ``since`` up to ``until``, by time."""
        query = select(logbook.c.id, logbook.c.time, logbook.c.text, logbook.c.user, logbook.c.created, logbook.c.updated)
        if since is not None:
            query = query.where(logbook.c.time >= since)
        if until is not None:
            query = query.where(logbook.c.time <= until)
        with self.db.read() as txn:
            return txn.tuples(query.order_by(logbook.c.time, logbook.c.id))

    # -- history -----------------------------------------------------------------------

    @staticmethod
    def record(txn: Txn, field_name: str, old: Any, new: Any, user: str, now: float) -> None:
        txn.execute(
            _ADD_HISTORY, {"run": None, "field": field_name, "old": json.dumps(old), "new": json.dumps(new), "user": user, "time": now}
        )


def check_column_name(name: Any, meta: Meta) -> str:
    """A name columns can have: a dataset name, or an existing user column's name."""
    if isinstance(name, str) and meta.is_user_column(name):
        return name
    try:
        return check_name(name)
    except ShelfError as exc:
        raise InvalidValue(f"{exc}; a column is named by its dataset name or a user column's name") from None


__all__ = [
    "FIELDS", "WHOLE", "DisplayMeta", "Meta", "check_column_name", "check_fields", "check_log_text", "check_tags",
    "check_time",
    "PutMeta", "format_number", "meta_from_row", "merged", "os_user", "put_fields",
]
