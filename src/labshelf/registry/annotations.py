"""Annotations: what people add to runs by hand (comments, tags, user columns).

They live beside a run's data, never in it, so finished runs can be
annotated.  Every change also lands in the ``history`` table (who, when, old
value, new value) and in the change feed, in the same transaction.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from ..errors import InvalidValue, RunNotFound
from ..names import check_text
from .engine import Txn
from .meta import check_tags
from .registry import Registry
from .schema import datasets, history, run_tags, runs, user_columns, user_values

#: The types a user column can have: number is a float64, int an int64.
COLUMN_TYPES = ("number", "int", "text", "bool")
#: Names a user column cannot take: the run table's own columns.
RESERVED_COLUMNS = frozenset({"run", "experiment", "status", "start", "end", "comment", "tags", "params"})
#: How the run table names a dataset column whose label a user column or the
#: run's metadata already has (only on shelves made before names were checked).
DATASET_SUFFIX = " (dataset)"
#: What follows a dataset name in a column label: ``pmt[channel=2]``, ``image.mean``.
_LABEL_ATTRIBUTES = (".mean", ".summary", ".text")
_MAX_TAG = 255
_INT64 = (-(2**63), 2**63 - 1)
_HOLDS = {"number": "numbers (float64)", "int": "integers (int64)", "text": "text", "bool": "bools"}


def column_type_of(value: Any) -> str:
    """The user-column type a Python or numpy value belongs to (what a new column becomes)."""
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", None) == "b":
        return "bool"
    if isinstance(value, numbers.Integral):  # Python and numpy ints
        return "int"
    if isinstance(value, numbers.Real):  # Python and numpy floats
        return "number"
    if isinstance(value, str):
        return "text"
    raise InvalidValue(
        f"a user column holds numbers, text or bools (or None to clear), not {type(value).__name__}"
    )


def stored_value(name: str, column_type: str, value: Any) -> Any:
    """``value`` as user column ``name`` of ``column_type`` keeps it, exactly, or InvalidValue.

    An int goes into a number (float64) column only if the float is exact
    (up to 2**53, or a multiple of a power of two beyond); a float goes into
    an int column only if it is a whole number (``1.0``), within int64.
    Bools, text and numbers never convert into each other.
    """
    given = column_type_of(value)
    if given == "bool" and column_type == "bool":
        return bool(value)
    if given == "text" and column_type == "text":
        return check_text(str(value), f"the value of user column {name!r}")
    if given == "int" and column_type in ("int", "number"):
        whole = int(value)
        if column_type == "int":
            if not _INT64[0] <= whole <= _INT64[1]:
                raise InvalidValue(f"user column {name!r} holds int64 integers; {value!r} is out of their range")
            return whole
        number = float(whole) if abs(whole) < 2**1023 else math.inf
        if not math.isfinite(number) or int(number) != whole:
            raise InvalidValue(
                f"{value!r} cannot be kept exactly in user column {name!r}, which holds numbers (float64); "
                "integers beyond 2**53 are kept exactly in a column first given an int"
            )
        return number
    if given == "number" and column_type in ("int", "number"):
        number = float(value)
        if not math.isfinite(number):
            raise InvalidValue(f"user column {name!r} holds finite numbers, not {value!r}")
        if number != value:  # a longdouble or a Fraction that float64 rounds
            raise InvalidValue(f"{value!r} cannot be kept exactly in user column {name!r} as a float64")
        if column_type == "number":
            return number
        if not number.is_integer():
            raise InvalidValue(f"user column {name!r} holds integers (int64); {value!r} is not a whole number")
        if not _INT64[0] <= number < 2**63:
            raise InvalidValue(f"user column {name!r} holds int64 integers; {value!r} is out of their range")
        return int(number)
    raise InvalidValue(f"user column {name!r} holds {column_type} values ({_HOLDS[column_type]}), not {given}: {value!r}")


def _check_alone(name: str, value: Any) -> None:
    """What can be refused before knowing the column's type (which decides int ranges)."""
    given = column_type_of(value)
    if given == "number":
        stored_value(name, "number", value)  # finite, and exact as a float64
    elif given == "text":
        stored_value(name, "text", value)


def check_column_name(name: Any) -> str:
    """Return ``name`` if a new user column may take it, else InvalidValue."""
    if not isinstance(name, str) or not name or len(name) > 255 or name.strip() != name:
        raise InvalidValue(f"a user column name is a non-empty str without surrounding spaces, not {name!r}")
    check_text(name, "a user column name")
    if name in RESERVED_COLUMNS or name.endswith(DATASET_SUFFIX):
        raise InvalidValue(
            f"{name!r} is one of the run table's own columns ({', '.join(sorted(RESERVED_COLUMNS))}, "
            f"'...{DATASET_SUFFIX}'); choose another name for a user column"
        )
    return name


def dataset_of_label(label: str) -> str:
    """The dataset name a column label starts with: ``pmt[channel=2].mean`` -> ``pmt``."""
    base = label.partition("[")[0]
    for attribute in _LABEL_ATTRIBUTES:
        if base.endswith(attribute):
            return base[: -len(attribute)]
    return base


class Annotations:
    """Comments, tags and user columns of the runs of one shelf."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.db = registry.db

    def define_column(self, txn: Txn, name: str, column_type: str) -> str:
        """Create a user column if new; return its type (the existing one, if it exists).

        Runs in a write transaction, so the check that no dataset has the
        name and the insert are one step: a put of a new dataset name checks
        the reverse in its own write transaction (``Registry.lock_target``).
        """
        existing = txn.scalar(select(user_columns.c.type).where(user_columns.c.name == name))
        if existing is not None:
            return str(existing)
        check_column_name(name)
        if column_type not in COLUMN_TYPES:
            raise InvalidValue(f"a user column type is one of {COLUMN_TYPES}, not {column_type!r}")
        clash = txn.scalar(
            select(datasets.c.name).where(datasets.c.name.in_(sorted({name, dataset_of_label(name)}))).limit(1)
        )
        if clash is not None:
            what = "the dataset" if clash == name else "a column of the dataset"
            raise InvalidValue(
                f"cannot make user column {name!r}: it is the name of {what} {clash!r}, and the run table "
                "and queries need one meaning per name; choose another name"
            )
        txn.execute(insert(user_columns).values(name=name, type=column_type, created=time.time()))
        return column_type

    def columns(self) -> dict[str, str]:
        """User columns and their types, in the order they were created."""
        with self.db.read() as txn:
            rows = txn.tuples(select(user_columns.c.name, user_columns.c.type).order_by(user_columns.c.created))
        return dict(rows)

    def annotate(
        self,
        numbers: Sequence[int],
        *,
        comment: Any = ...,
        tags: Iterable[str] | None = None,
        columns: Mapping[str, Any] | None = None,
        user: str,
    ) -> int:
        """Set the comment, tags and user columns of runs; return how many changes were made.

        ``comment=...`` (the default) leaves the comment alone; ``None``
        clears it.  ``tags`` replaces the tag list.  A user column set to
        ``None`` is cleared.  A new column takes the type of its first value
        (see :data:`COLUMN_TYPES`); later values must fit it exactly
        (:func:`stored_value`).
        """
        if comment is not ... and comment is not None:
            if not isinstance(comment, str):
                raise InvalidValue(f"comment= takes a str (or None to clear it), not {type(comment).__name__}")
            check_text(comment, "a comment")
        new_tags = None if tags is None else check_tags(tags)
        columns = dict(columns or {})
        for name, value in columns.items():
            if not isinstance(name, str):
                raise InvalidValue(f"a user column name is a str, not {name!r}")
            check_text(name, "a user column name")
            if value is not None:
                _check_alone(name, value)
        changed = 0
        now = time.time()
        with self.db.write() as txn:
            known = set(txn.scalars(select(runs.c.number).where(runs.c.number.in_(list(numbers)))))
            missing = [n for n in numbers if n not in known]
            if missing:
                raise RunNotFound(f"cannot annotate: no run {', '.join(map(str, missing[:10]))} in this shelf")
            values: dict[str, tuple[str, Any]] = {}
            for name, value in columns.items():
                if value is None:
                    found = txn.scalar(select(user_columns.c.type).where(user_columns.c.name == name))
                    if found is None:
                        raise InvalidValue(f"cannot clear user column {name!r}: there is no such column")
                    values[name] = (str(found), None)
                else:
                    column_type = self.define_column(txn, name, column_type_of(value))
                    values[name] = (column_type, stored_value(name, column_type, value))
            for number in numbers:
                if comment is not ...:
                    old = txn.scalar(select(runs.c.comment).where(runs.c.number == number))
                    if old != comment:
                        txn.execute(update(runs).where(runs.c.number == number).values(comment=comment))
                        changed += self._record(txn, number, "comment", old, comment, user, now)
                if new_tags is not None:
                    old_tags = sorted(txn.scalars(select(run_tags.c.tag).where(run_tags.c.run == number)))
                    if old_tags != new_tags:
                        txn.execute(delete(run_tags).where(run_tags.c.run == number))
                        for tag in new_tags:
                            txn.execute(insert(run_tags).values(run=number, tag=tag))
                        changed += self._record(txn, number, "tags", old_tags, new_tags, user, now)
                for name, (column_type, value) in values.items():
                    changed += self._set_value(txn, number, name, column_type, value, user, now)
        return changed

    def _set_value(self, txn: Txn, number: int, name: str, column_type: str, value: Any, user: str, now: float) -> int:
        key = (user_values.c.run == number) & (user_values.c.column == name)
        row = txn.first(select(user_values.c.value_num, user_values.c.value_int, user_values.c.value_text).where(key))
        old = None if row is None else decode(column_type, row.value_num, row.value_int, row.value_text)
        if old == value and type(old) is type(value):
            return 0
        txn.execute(delete(user_values).where(key))
        if value is not None:
            txn.execute(
                insert(user_values).values(
                    run=number,
                    column=name,
                    value_num=float(value) if column_type in ("number", "bool") else None,
                    value_int=value if column_type == "int" else None,
                    value_text=value if column_type == "text" else None,
                )
            )
        return self._record(txn, number, f"column:{name}", old, value, user, now)

    def _record(self, txn: Txn, number: int, field: str, old: Any, new: Any, user: str, now: float) -> int:
        old_json, new_json = json.dumps(old), json.dumps(new)
        txn.execute(
            insert(history).values(run=number, field=field, old=old_json, new=new_json, user=user, time=now)
        )
        self.registry._change(txn, "annotate", run=number, name=field, payload={"old": old, "new": new})
        return 1

    def history(self, number: int | None) -> list[dict[str, Any]]:
        """Every annotation change of a run (None: of the shelf as a whole), oldest first.

        An entry whose old or new value is not readable JSON in the registry
        (a damaged row) has that value None and says so under ``"damaged"``.
        """
        query = (
            select(history.c.field, history.c.old, history.c.new, history.c.user, history.c.time)
            .where(history.c.run.is_(None) if number is None else history.c.run == bindparam("run"))
            .order_by(history.c.id)
        )
        with self.db.read() as txn:
            rows = txn.tuples(query, {} if number is None else {"run": number})
        out = []
        for field, old, new, who, when in rows:
            entry: dict[str, Any] = {"field": field, "old": None, "new": None, "user": who, "time": when}
            for key, text in (("old", old), ("new", new)):
                try:
                    entry[key] = json.loads(text) if text else None
                except (TypeError, ValueError):
                    entry["damaged"] = f"history.{key} of {'the shelf' if number is None else f'run {number}'} ({field}) is not JSON: {str(text)[:40]!r}"
            out.append(entry)
        return out

    def tags(self, txn: Txn, numbers: Any = None) -> dict[int, list[str]]:
        query = select(run_tags.c.run, run_tags.c.tag).order_by(run_tags.c.run, run_tags.c.tag)
        if numbers is not None:
            query = query.where(run_tags.c.run.in_(numbers))
        out: dict[int, list[str]] = {}
        for run, tag in txn.tuples(query):
            out.setdefault(run, []).append(tag)
        return out

    def values(self, txn: Txn, numbers: Any = None) -> list[tuple[Any, ...]]:
        """(run, column, type, value_num, value_int, value_text) of every user value."""
        query = select(
            user_values.c.run, user_values.c.column, user_columns.c.type,
            user_values.c.value_num, user_values.c.value_int, user_values.c.value_text,
        ).select_from(user_values.join(user_columns, user_columns.c.name == user_values.c.column))
        if numbers is not None:
            query = query.where(user_values.c.run.in_(numbers))
        return txn.tuples(query)


def decode(column_type: str | None, num: Any, whole: Any, text: Any) -> Any:
    """A user value from its registry columns, by the column's type."""
    if column_type == "text":
        return text
    if column_type == "int":
        return whole
    if num is None:
        return None
    return bool(num) if column_type == "bool" else num


__all__ = [
    "COLUMN_TYPES", "DATASET_SUFFIX", "RESERVED_COLUMNS", "Annotations", "check_column_name",
    "column_type_of", "dataset_of_label", "decode", "stored_value",
]
