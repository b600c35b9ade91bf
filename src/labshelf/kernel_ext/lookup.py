"""Small registry queries for the magics and tab completion.

Completion runs on every Tab press, so each query here touches only what it
returns: names by prefix and run numbers come from index ranges with a
LIMIT, never from reading every dataset row.  They run through the
registry's one read door (``shelf._registry.db.read()``) like any other
registry read.

On SQLite the distinct names under a prefix are found by a *loose index
scan*: one ``min(name) > previous`` probe of the ``(name, ...)`` index per
name, so a name held by 10,000 runs costs one B-tree seek, not 10,000 rows.
SQLite compares TEXT bytewise, so the names starting with a prefix are
exactly the range ``[prefix, prefix + U+10FFFF)``.  PostgreSQL may compare
by a locale's rules, where that range is not the prefix set, so it gets a
plain ``LIKE 'prefix%'`` with DISTINCT and LIMIT instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, false, func, or_, select

from ..errors import DatasetNotFound
from ..names import data_id_key, format_data_id, label, normalize_data_id
from ..registry.engine import Statement
from ..registry.schema import datasets, runs

if TYPE_CHECKING:
    from ..shelf import Shelf

#: How many completions one Tab press offers at most.
LIMIT = 50

# Above every character a name can hold: the end of a bytewise prefix range.
_TOP = "\U0010ffff"

_name, _run = datasets.c.name, datasets.c.run
_RANGE = and_(_name >= bindparam("low"), _name < bindparam("high"))
_FIRST_NAME = Statement(select(func.min(_name)).where(_RANGE))
_NEXT_NAME = Statement(select(func.min(_name)).where(_name > bindparam("after"), _name < bindparam("high")))
_FIRST_NAME_IN_RUN = Statement(select(func.min(_name)).where(_run == bindparam("run"), _RANGE))
_NEXT_NAME_IN_RUN = Statement(
    select(func.min(_name)).where(_run == bindparam("run"), _name > bindparam("after"), _name < bindparam("high"))
)
_LIKE = _name.like(bindparam("pattern"), escape="\\")
_NAMES_LIKE = Statement(select(_name).distinct().where(_LIKE).order_by(_name).limit(LIMIT))
_NAMES_LIKE_IN_RUN = Statement(
    select(_name).distinct().where(_run == bindparam("run"), _LIKE).order_by(_name).limit(LIMIT)
)
_SOME_DATA_IDS = Statement(
    select(datasets.c.data_id).distinct().where(_name == bindparam("name")).order_by(datasets.c.data_id).limit(10)
)
_MAX_RUN = Statement(select(func.max(runs.c.number)))


def dataset_names(shelf: Shelf, prefix: str = "", *, run: int | None = None, limit: int = LIMIT) -> list[str]:
    """Distinct dataset names starting with ``prefix`` (of one run, or of all), sorted, at most ``limit``."""
    db = shelf._registry.db
    with db.read() as txn:
        if not db.is_sqlite:
            pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params: dict[str, Any] = {"pattern": pattern, "run": run}
            found = txn.scalars(_NAMES_LIKE if run is None else _NAMES_LIKE_IN_RUN, params)
            return found[:limit]
        first, following = (_FIRST_NAME, _NEXT_NAME) if run is None else (_FIRST_NAME_IN_RUN, _NEXT_NAME_IN_RUN)
        high = prefix + _TOP
        names: list[str] = []
        name = txn.scalar(first, {"low": prefix, "high": high, "run": run})
        while name is not None and len(names) < limit:
            names.append(name)
            name = txn.scalar(following, {"after": name, "high": high, "run": run})
        return names


def run_numbers(shelf: Shelf, prefix: str = "", *, name: str | None = None, limit: int = LIMIT) -> list[int]:
    """Run numbers whose digits start with ``prefix``, newest first, at most ``limit``.

    With ``name``, only runs that have a dataset of that name.
    """
    if prefix and (not prefix.isdigit() or prefix.startswith("0")):
        return []  # run numbers are positive and written without leading zeros
    column = runs.c.number if name is None else _run
    db = shelf._registry.db
    with db.read() as txn:
        top = txn.scalar(_MAX_RUN)
        if top is None:
            return []
        # The numbers written with a prefix p are the ranges [p, p], [p0, p9],
        # [p00, p99], ... up to the largest run: each one an index range.
        condition: Any = false() if prefix else column >= 0
        if prefix:
            low, high = int(prefix), int(prefix)
            while low <= top:
                condition = or_(condition, and_(column >= low, column <= high))
                low, high = low * 10, high * 10 + 9
        query = select(column).where(condition)
        if name is not None:
            query = query.where(_name == name).distinct()
        return list(txn.scalars(query.order_by(column.desc()).limit(limit)))


def explain_missing(shelf: Shelf, name: str, data_id: dict[str, Any] | None = None) -> DatasetNotFound | None:
    """A clearer error than "not found" when dataset ``name`` exists only with other data IDs.

    None when there is nothing better to say.
    """
    with shelf._registry.db.read() as txn:
        others = txn.scalars(_SOME_DATA_IDS, {"name": name})
    key = data_id_key(normalize_data_id(data_id))
    if not others or key in others:
        return None
    import json

    shown = ", ".join(label(name, json.loads(o)) for o in others)
    wanted = format_data_id(normalize_data_id(data_id)) or "no data ID"
    return DatasetNotFound(f"no dataset {name!r} with {wanted} was found; it exists as {shown}: choose one with --data-id")
