"""``Shelf.query``: dataset refs by name, data-ID dimensions and run metadata, in SQL.

The expression is the run table's language (``expr.py``: parsed by hand,
never evaluated).  Its names are run columns (``run``, ``experiment``,
``status``, ``start``, ``end``) or data-ID dimensions, read from the JSON
text of ``datasets.data_id``: ``json_extract`` on SQLite, ``jsonb`` on
PostgreSQL, typed by the literal each dimension is compared with (so
``detector > 2`` compares numbers and ``band == 'g'`` text on both; a value
of another JSON type is NULL on both, as a missing dimension is).  ``start``
and ``end`` compare with ISO times or seconds since the epoch; values of
different kinds are never compared (a QuerySyntaxError on both registries).
Data-ID dimensions cannot take the names of run columns or ``name``
(:data:`labshelf.names.RESERVED_DIMENSIONS`): a put refuses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import expr
from .errors import QuerySyntaxError
from .names import RESERVED_DIMENSIONS
from .registry.registry import _DATASET_COLUMNS, ref_from_row, usable_time
from .registry.schema import collection_members, datasets, runs

if TYPE_CHECKING:
    from .collections import Leaf, Repository
    from .registry.records import DatasetRef
    from .shelf import Shelf

_RUN_COLUMNS = {
    "run": runs.c.number,
    "experiment": runs.c.experiment,
    "status": runs.c.status,
    "start": runs.c.started,
    "end": runs.c.ended,
}
_RUN_KINDS = {"run": "number", "experiment": "text", "status": "text", "start": "time", "end": "time"}
# The names a dimension cannot have are exactly those that mean something else here.
assert set(RESERVED_DIMENSIONS) == {*_RUN_COLUMNS, "name"}


def literal_types(node: expr.Node) -> dict[str, set[str]]:
    """For each name compared with literals: the kinds of those literals (number, text, bool)."""
    found: dict[str, set[str]] = {}

    def kind(value: Any) -> str | None:
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, (int, float)):
            return "number"
        if isinstance(value, str):
            return "text"
        return None

    def visit(n: expr.Node) -> None:
        if isinstance(n, (expr.And, expr.Or)):
            for item in n.items:
                visit(item)
        elif isinstance(n, expr.Not):
            visit(n.item)
        elif isinstance(n, expr.Compare):
            for a, b in ((n.left, n.right), (n.right, n.left)):
                if isinstance(a, expr.Name) and isinstance(b, expr.Literal) and kind(b.value):
                    found.setdefault(a.name, set()).add(kind(b.value) or "")
        elif isinstance(n, expr.In) and isinstance(n.item, expr.Name) and isinstance(n.container, expr.Literal):
            values = n.container.value if isinstance(n.container.value, tuple) else ()
            for value in values:
                if kind(value):
                    found.setdefault(n.item.name, set()).add(kind(value) or "")
        elif isinstance(n, expr.Contains) and isinstance(n.operand, expr.Name):
            found.setdefault(n.operand.name, set()).add("text")
        elif isinstance(n, expr.IsNull) and isinstance(n.operand, expr.Name):
            found.setdefault(n.operand.name, set())  # whether it is there, whatever its type

    visit(node)
    return found


# A data ID as labshelf writes it (names.data_id_key): a flat JSON object of
# identifiers to ints, bools and strings.  PostgreSQL casts only text that
# matches to jsonb, so one row edited into bad JSON cannot fail a whole query
# (PostgreSQL 15 has no "is valid JSON" test); it reads as having no dimensions.
_STRING = r'"([^"\\[:cntrl:]]|\\(["\\/bfnrt]|u(?![dD][89a-fA-F])(?!0000)[0-9a-fA-F]{4}))*"'
_PAIR = r'"[A-Za-z_][A-Za-z0-9_]*":(-?(0|[1-9][0-9]*)|true|false|' + _STRING + ")"
DATA_ID_PATTERN = r"^\{(" + _PAIR + "(," + _PAIR + r")*)?\}$"


def _data_id_json(dialect: str) -> sa.ColumnElement[Any]:
    """``datasets.data_id`` as JSON in SQL, NULL where the text is damaged."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        checked = sa.case(
            (datasets.c.data_id.regexp_match(DATA_ID_PATTERN), sa.cast(datasets.c.data_id, JSONB)), else_=sa.null()
        )
        return sa.type_coerce(checked, JSONB)
    # A CASE is evaluated lazily, so json_* never sees malformed text.
    return sa.case((sa.func.json_valid(datasets.c.data_id) == 1, datasets.c.data_id), else_=sa.null())


def _dimension(dialect: str, name: str, kind: str) -> sa.ColumnElement[Any]:
    """A data-ID dimension's value in SQL, of ``kind`` (NULL when of another JSON type);
    ``present`` is only for ``is null``: the raw JSON value, NULL when missing."""
    if dialect == "postgresql":
        document = _data_id_json(dialect)
        # Functions rather than -> and ->>: no operator precedence around the CASE.
        value = sa.func.jsonb_extract_path(document, name)
        if kind == "present":
            return value
        json_type = {"number": "number", "text": "string", "bool": "boolean"}[kind]
        # numeric keeps big integers exact, as SQLite's json_extract does.
        sql_type: Any = {"number": sa.Numeric(), "text": sa.Text(), "bool": sa.Boolean()}[kind]
        as_text = sa.func.jsonb_extract_path_text(document, name)
        # A value of another JSON type is NULL here, as a missing dimension is.
        return sa.case((sa.func.jsonb_typeof(value) == json_type, sa.cast(as_text, sql_type)), else_=sa.null())
    path = f"$.{name}"
    valid = sa.func.json_valid(datasets.c.data_id) == 1
    if kind == "present":
        return sa.case((valid, sa.func.json_extract(datasets.c.data_id, path)), else_=sa.null())
    json_types = {"number": ("integer", "real"), "text": ("text",), "bool": ("true", "false")}[kind]
    # As on PostgreSQL: a value of another JSON type is NULL (SQLite would
    # otherwise order numbers before any text, and say 3 < 'a').
    typed = sa.func.json_type(datasets.c.data_id, path).in_(json_types)
    extracted = sa.case(
        (valid, sa.case((typed, sa.func.json_extract(datasets.c.data_id, path)), else_=sa.null())), else_=sa.null()
    )
    coerced: Any = {"number": sa.Float(), "text": sa.Text(), "bool": sa.Boolean()}[kind]
    return sa.type_coerce(extracted, coerced)


def _resolver(dialect: str, node: expr.Node) -> expr.Resolver:
    kinds = literal_types(node)

    def resolve(name: str) -> expr.Resolved:
        column = _RUN_COLUMNS.get(name)
        if column is not None:
            kind = _RUN_KINDS[name]
            # Past damaged rows, as the run table does (registry.usable_time).
            return expr.Typed(usable_time(column) if kind == "time" else column, kind)
        if name == "name":
            return expr.Typed(datasets.c.name, "text")
        if not name.isidentifier():
            raise QuerySyntaxError(
                f"{name!r} is neither a run column ({', '.join(_RUN_COLUMNS)}) nor a data-ID dimension "
                "(dimensions are identifiers)"
            )
        found = kinds.get(name, {"text"})
        if not found:
            # Only tested with `is null`: any JSON value counts as present.
            return expr.Typed(_dimension(dialect, name, "present"), "any")
        if len(found) > 1:
            raise QuerySyntaxError(
                f"the dimension {name!r} is compared with values of different types ({', '.join(sorted(found))}); "
                "compare it with one type"
            )
        return expr.Typed(_dimension(dialect, name, next(iter(found))), "any")

    return resolve


def _statement(
    repo: Repository, name: str | None, node: expr.Node | None, runs_: Sequence[int] | None, tagged: Sequence[str]
) -> Any:
    dialect = repo.registry.db.dialect.name
    condition = expr.to_sql(node, _resolver(dialect, node)) if node is not None else sa.true()
    named = datasets.c.name == name if name is not None else sa.true()
    parts = []
    if runs_ is None or runs_:
        query = (
            sa.select(*_DATASET_COLUMNS, sa.null().label("found_in"))
            .join(runs, runs.c.number == datasets.c.run)
            .where(named, condition)
        )
        if runs_ is not None:
            query = query.where(datasets.c.run.in_(list(runs_)))
        parts.append(query)
    if tagged:
        parts.append(
            sa.select(*_DATASET_COLUMNS, collection_members.c.collection.label("found_in"))
            .join(collection_members, collection_members.c.dataset == datasets.c.id)
            .join(runs, runs.c.number == datasets.c.run)
            .where(named, condition, collection_members.c.collection.in_(list(tagged)))
        )
    if not parts:
        return None
    statement = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    return sa.select(statement.subquery()).order_by("run", "name", "data_id") if len(parts) > 1 else statement.order_by(
        datasets.c.run, datasets.c.name, datasets.c.data_id
    )


def run_query(
    shelf: Shelf,
    name: str | None,
    where: str | None,
    collections: list[str] | None,
    stage: str | None,
    find_first: bool | None,
) -> list[DatasetRef]:
    if where is not None and not isinstance(where, str):
        raise QuerySyntaxError(f"where= takes an expression (str), not {type(where).__name__}")
    node = expr.parse(where) if where and where.strip() else None
    search = shelf._finder.search()
    if collections is None:
        if stage is not None:
            raise QuerySyntaxError(f"a stage (:{stage}) limits a search through collections; give collections=")
        out: list[DatasetRef] = []
        for repo in search.repos:
            statement = _statement(repo, name, node, None, ())
            with repo.registry.db.read() as txn:
                out.extend(ref_from_row(row, repo.where, (f"run/{row.run}",)) for row in txn.all(statement))
        return out
    leaves = search.leaves(collections, stage=stage)
    return _from_leaves(leaves, name, node, True if find_first is None else find_first)


def _from_leaves(leaves: list[Leaf], name: str | None, node: expr.Node | None, find_first: bool) -> list[DatasetRef]:
    ranked: list[tuple[int, Any, Leaf]] = []
    by_repo: dict[int, list[tuple[int, Leaf]]] = {}
    repos: dict[int, Repository] = {}
    for position, leaf in enumerate(leaves):
        by_repo.setdefault(id(leaf.repo), []).append((position, leaf))
        repos[id(leaf.repo)] = leaf.repo
    for key, members in by_repo.items():
        repo = repos[key]
        order: dict[Any, tuple[int, Leaf]] = {}
        for position, leaf in members:
            order.setdefault(leaf.run if leaf.run is not None else ("tagged", leaf.name), (position, leaf))
        runs_ = [k for k in order if isinstance(k, int)]
        tagged = [k[1] for k in order if isinstance(k, tuple)]
        statement = _statement(repo, name, node, runs_, tagged)
        if statement is None:
            continue
        with repo.registry.db.read() as txn:
            rows = txn.all(statement)
        for row in rows:
            position, leaf = order[row.run if row.found_in is None else ("tagged", row.found_in)]
            ranked.append((position, ref_from_row(row, repo.where, leaf.path), leaf))
    ranked.sort(key=lambda item: item[0])  # stable: SQL order within one collection
    if not find_first:
        return [ref for _, ref, _ in ranked]
    seen: set[tuple[str, str]] = set()
    out = []
    for _position, ref, _leaf in ranked:
        identity = (ref.name, repr(sorted(ref.data_id.items())))
        if identity not in seen:
            seen.add(identity)
            out.append(ref)
    return out
