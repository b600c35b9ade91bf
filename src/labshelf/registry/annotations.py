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
from .engine import Txn
from .registry import Registry
from .schema import history, run_tags, runs, user_columns, user_values

#: The types a user column can have.
COLUMN_TYPES = ("number", "text", "bool")
#: Names a user column cannot take: the run table's own columns.
RESERVED_COLUMNS = frozenset({"run", "experiment", "status", "start", "end", "comment", "tags", "params"})
_MAX_TAG = 255


def column_type_of(value: Any) -> str:
    """The user-column type a Python value belongs to."""
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", None) == "b":
        return "bool"
    if isinstance(value, numbers.Real):  # Python and numpy ints and floats
        return "number"
    if isinstance(value, str):
        return "text"
    raise InvalidValue(
        f"a user column holds numbers, text or bools (or None to clear), not {type(value).__name__}"
    )


def _check_tags(tags: Iterable[str]) -> list[str]:
    if isinstance(tags, str):
        raise InvalidValue(f"tags= takes a list of tags, not a single str; use tags=[{tags!r}]")
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or len(tag) > _MAX_TAG or "\x00" in tag:
            raise InvalidValue(f"a tag is a non-empty str of at most {_MAX_TAG} characters, not {tag!r}")
        if tag not in out:
            out.append(tag)
    return sorted(out)


class Annotations:
    """Comments, tags and user columns of the runs of one shelf."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.db = registry.db

    def define_column(self, txn: Txn, name: str, column_type: str) -> str:
        """Create a user column if new; return its type (checking it matches)."""
        if not isinstance(name, str) or not name or len(name) > 255 or name.strip() != name:
            raise InvalidValue(f"a user column name is a non-empty str without surrounding spaces, not {name!r}")
        if name in RESERVED_COLUMNS:
            raise InvalidValue(
                f"{name!r} is one of the run table's own columns ({', '.join(sorted(RESERVED_COLUMNS))}); "
                "choose another name for a user column"
            )
        if column_type not in COLUMN_TYPES:
            raise InvalidValue(f"a user column type is one of {COLUMN_TYPES}, not {column_type!r}")
        existing = txn.scalar(select(user_columns.c.type).where(user_columns.c.name == name))
        if existing is None:
            txn.execute(insert(user_columns).values(name=name, type=column_type, created=time.time()))
            return column_type
        if existing != column_type:
            raise InvalidValue(f"user column {name!r} holds {existing} values, not {column_type}")
        return existing

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
        ``None`` is cleared.
        """
        if comment is not ... and comment is not None and not isinstance(comment, str):
            raise InvalidValue(f"comment= takes a str (or None to clear it), not {type(comment).__name__}")
        texts = [comment if isinstance(comment, str) else "", *(v for v in (columns or {}).values() if isinstance(v, str))]
        if any("\x00" in t for t in texts):
            raise InvalidValue("annotations cannot contain the NUL character")
        new_tags = None if tags is None else _check_tags(tags)
        columns = dict(columns or {})
        for value in columns.values():
            if value is not None:
                column_type_of(value)
                if isinstance(value, float) and not math.isfinite(value):
                    raise InvalidValue("user column numbers must be finite")
        changed = 0
        now = time.time()
        with self.db.write() as txn:
            known = set(txn.scalars(select(runs.c.number).where(runs.c.number.in_(list(numbers)))))
            missing = [n for n in numbers if n not in known]
            if missing:
                raise RunNotFound(f"cannot annotate: no run {', '.join(map(str, missing[:10]))} in this shelf")
            types = {name: self.define_column(txn, name, column_type_of(v)) for name, v in columns.items() if v is not None}
            for name in columns:
                if name not in types:
                    found = txn.scalar(select(user_columns.c.type).where(user_columns.c.name == name))
                    if found is None:
                        raise InvalidValue(f"cannot clear user column {name!r}: there is no such column")
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
                for name, value in columns.items():
                    changed += self._set_value(txn, number, name, value, user, now)
        return changed

    def _set_value(self, txn: Txn, number: int, name: str, value: Any, user: str, now: float) -> int:
        key = (user_values.c.run == number) & (user_values.c.column == name)
        row = txn.first(select(user_values.c.value_num, user_values.c.value_text).where(key))
        column_type = txn.scalar(select(user_columns.c.type).where(user_columns.c.name == name))
        old = None if row is None else _decode(column_type, row.value_num, row.value_text)
        if value is not None:
            value = bool(value) if column_type == "bool" else (float(value) if column_type == "number" else value)
        if old == value and (old is None) == (value is None):
            return 0
        txn.execute(delete(user_values).where(key))
        if value is not None:
            num = float(value) if column_type in ("number", "bool") else None
            text = value if column_type == "text" else None
            txn.execute(insert(user_values).values(run=number, column=name, value_num=num, value_text=text))
        return self._record(txn, number, f"column:{name}", old, value, user, now)

    def _record(self, txn: Txn, number: int, field: str, old: Any, new: Any, user: str, now: float) -> int:
        old_json, new_json = json.dumps(old), json.dumps(new)
        txn.execute(
            insert(history).values(run=number, field=field, old=old_json, new=new_json, user=user, time=now)
        )
        self.registry._change(txn, "annotate", run=number, name=field, payload={"old": old, "new": new})
        return 1

    def history(self, number: int) -> list[dict[str, Any]]:
        """Every annotation change of a run, oldest first."""
        query = (
            select(history.c.field, history.c.old, history.c.new, history.c.user, history.c.time)
            .where(history.c.run == bindparam("run"))
            .order_by(history.c.id)
        )
        with self.db.read() as txn:
            rows = txn.tuples(query, {"run": number})
        return [
            {"field": f, "old": json.loads(o) if o else None, "new": json.loads(n) if n else None, "user": u, "time": t}
            for f, o, n, u, t in rows
        ]

    def tags(self, txn: Txn, numbers: Any = None) -> dict[int, list[str]]:
        query = select(run_tags.c.run, run_tags.c.tag).order_by(run_tags.c.run, run_tags.c.tag)
        if numbers is not None:
            query = query.where(run_tags.c.run.in_(numbers))
        out: dict[int, list[str]] = {}
        for run, tag in txn.tuples(query):
            out.setdefault(run, []).append(tag)
        return out

    def values(self, txn: Txn, numbers: Any = None) -> list[tuple[int, str, str, float | None, str | None]]:
        """(run, column, type, value_num, value_text) of every user value."""
        query = select(
            user_values.c.run, user_values.c.column, user_columns.c.type, user_values.c.value_num, user_values.c.value_text
        ).select_from(user_values.join(user_columns, user_columns.c.name == user_values.c.column))
        if numbers is not None:
            query = query.where(user_values.c.run.in_(numbers))
        return txn.tuples(query)


def _decode(column_type: str | None, num: float | None, text: str | None) -> Any:
    if column_type == "text":
        return text
    if num is None:
        return None
    return bool(num) if column_type == "bool" else num


__all__ = ["COLUMN_TYPES", "RESERVED_COLUMNS", "Annotations", "column_type_of"]
