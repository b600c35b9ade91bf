"""Collections in SQL: TAGGED and CHAINED definitions, tag membership, lookups in leaves.

A RUN collection (``run/12``) needs no row: every run is one.  A row in
``collections`` exists for TAGGED and CHAINED collections, and for a RUN
collection only once someone gives it documentation or a stage.

The definitions of one repository are small (tens to thousands of rows) and
read on every search through a chain, so they are cached in memory and
checked against a generation number in ``shelf_info`` that every change of a
definition increments in its own transaction: one indexed read per search
instead of one query per chain level, and never stale across processes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from ..errors import CollectionError, CollectionNotFound, close_matches
from ..names import MAX_RUN
from .engine import Statement, Txn
from .registry import _DATASET_COLUMNS, Registry
from .schema import collection_chains, collection_members, collections, datasets, runs, shelf_info

KINDS = ("run", "tagged", "chained")
_GENERATION_KEY = "collections_generation"
_RUN_NAME = re.compile(r"run/([1-9][0-9]*)\Z")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-+=@,#%()/.]*\Z")
_STAGE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")
MAX_NAME = 255

_GENERATION = Statement(select(shelf_info.c.value).where(shelf_info.c.key == _GENERATION_KEY))
_BUMP = Statement(update(shelf_info).where(shelf_info.c.key == _GENERATION_KEY).values(value=bindparam("value")))
_SEED = Statement(insert(shelf_info).values(key=_GENERATION_KEY, value=bindparam("value")))


def run_number(name: str) -> int | None:
    """The run number of a RUN collection name (``run/12`` -> 12), else None."""
    match = _RUN_NAME.match(name)
    if match is None or len(match.group(1)) > 10 or int(match.group(1)) > MAX_RUN:
        return None  # beyond the run numbers: a name like any other, found nowhere
    return int(match.group(1))


def check_collection_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or not _NAME.match(name):
        raise CollectionError(
            f"a collection name is a str of up to {MAX_NAME} characters: letters, digits and "
            f"_ - + = @ , # % ( ) / . (not starting with a punctuation mark), not {name!r}"
        )
    return name


def check_stage(stage: Any) -> str:
    if not isinstance(stage, str) or len(stage) > 64 or not _STAGE.match(stage):
        raise CollectionError(
            f"a processing stage is an identifier of up to 64 characters (letters, digits, _ and -), not {stage!r}"
        )
    return stage


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    """One collection as a repository defines it."""

    name: str
    kind: str
    doc: str = ""
    stage: str | None = None
    #: The children of a CHAINED collection, in search order.
    children: tuple[str, ...] = ()


class Collections:
    """The collections of one repository's registry."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self._cached: tuple[str | None, dict[str, CollectionRecord]] | None = None
        self._lookups: dict[tuple[int, int], Statement] = {}

    # -- definitions -----------------------------------------------------------

    def defined(self) -> dict[str, CollectionRecord]:
        """Name -> record of every collection with a row (cached by generation)."""
        with self.registry.db.read() as txn:
            generation = txn.scalar(_GENERATION)
            cached = self._cached
            if cached is not None and cached[0] == generation:
                return cached[1]
            rows = txn.all(select(collections))
            chains = txn.all(select(collection_chains).order_by(collection_chains.c.chain, collection_chains.c.position))
        children: dict[str, list[str]] = {}
        for row in chains:
            children.setdefault(row.chain, []).append(row.child)
        found = {
            row.name: CollectionRecord(
                name=row.name,
                kind=row.kind,
                doc=row.doc or "",
                stage=row.stage,
                children=tuple(children.get(row.name, ())),
            )
            for row in rows
        }
        self._cached = (generation, found)
        return found

    @property
    def generation(self) -> str | None:
        """The generation number the cached definitions were read at."""
        cached = self._cached
        return None if cached is None else cached[0]

    def get(self, name: str) -> CollectionRecord | None:
        """The collection ``name`` of this repository, or None (RUN collections included)."""
        record = self.defined().get(name)
        if record is not None:
            return record
        number = run_number(name)
        if number is not None and self.registry.run(number) is not None:
            return CollectionRecord(name=name, kind="run")
        return None

    def names(self) -> list[str]:
        """Every collection name: the defined ones, then the runs'."""
        defined = self.defined()
        with self.registry.db.read() as txn:
            numbers = txn.scalars(select(runs.c.number).order_by(runs.c.number))
        run_names = [f"run/{n}" for n in numbers if f"run/{n}" not in defined]
        return [*sorted(defined), *run_names]

    def _bump(self, txn: Txn, kind: str, name: str) -> None:
        current = txn.scalar(_GENERATION)
        if current is None:
            txn.execute(_SEED, {"value": "1"})
        else:
            # Any new value tells cached readers to read the definitions again,
            # so a damaged (non-numeric) generation restarts the count.
            txn.execute(_BUMP, {"value": str(int(current) + 1) if str(current).isdigit() else "1"})
        self.registry._change(txn, "collection", name=name, payload={"kind": kind})

    def _existing(self, txn: Txn, name: str) -> Any:
        return txn.first(select(collections).where(collections.c.name == name))

    def define(
        self,
        name: str,
        kind: str,
        *,
        doc: str | None = None,
        stage: str | None = None,
        children: Sequence[str] | None = None,
    ) -> CollectionRecord:
        """Create or redefine a collection in one transaction.

        For a chain, ``children`` replaces the old list atomically; callers
        check the children exist and make no cycle before calling (the
        search spans repositories, which this registry cannot see).
        """
        number = run_number(name)
        if (number is None) != (kind != "run"):
            raise CollectionError(
                f"{name!r}: names run/<number> belong to RUN collections; give a TAGGED or CHAINED "
                "collection another name" if number is not None else f"{name!r} is not a run's collection"
            )
        with self.registry.db.write() as txn:
            if kind == "run" and txn.first(select(runs.c.number).where(runs.c.number == number)) is None:
                raise CollectionNotFound(f"no run {number} in this shelf, so no collection {name!r}")
            row = self._existing(txn, name)
            if row is not None and row.kind != kind:
                raise CollectionError(f"{name!r} is a {row.kind.upper()} collection, not {kind.upper()}")
            values = {
                "doc": doc if doc is not None else (row.doc if row is not None else None),
                "stage": stage if stage is not None else (row.stage if row is not None else None),
            }
            if row is None:
                txn.execute(insert(collections).values(name=name, kind=kind, created=time.time(), **values))
            else:
                txn.execute(update(collections).where(collections.c.name == name).values(**values))
            if children is not None:
                txn.execute(delete(collection_chains).where(collection_chains.c.chain == name))
                for position, child in enumerate(children):
                    txn.execute(insert(collection_chains).values(chain=name, position=position, child=child))
            self._bump(txn, kind, name)
        record = self.get(name)
        assert record is not None
        return record

    def remove(self, name: str, *, referenced_by: Iterable[str] = ()) -> None:
        """Delete a TAGGED or CHAINED collection (its datasets stay in their runs)."""
        with self.registry.db.write() as txn:
            row = self._existing(txn, name)
            if row is None or row.kind == "run":
                raise CollectionNotFound(f"no TAGGED or CHAINED collection {name!r}{close_matches(name, self.defined())}")
            users = txn.scalars(select(collection_chains.c.chain).where(collection_chains.c.child == name))
            users = sorted(set(users) | set(referenced_by))
            if users:
                raise CollectionError(f"{name!r} is in the chains {', '.join(map(repr, users))}; remove it from them first")
            txn.execute(delete(collections).where(collections.c.name == name))
            self._bump(txn, row.kind, name)

    # -- tagged membership --------------------------------------------------------

    def tag(self, name: str, refs: Sequence[Any], *, replace: bool = False) -> int:
        """Add dataset refs (of this repository) to TAGGED collection ``name``; returns how many were new.

        A TAGGED collection holds one dataset per (name, data ID): tagging a
        second one raises unless ``replace`` (then it takes the old one's place).
        """
        with self.registry.db.write() as txn:
            row = self._existing(txn, name)
            if row is None or row.kind != "tagged":
                raise CollectionNotFound(f"no TAGGED collection {name!r}")
            added = 0
            for ref in refs:
                key = _data_id_text(ref.data_id)
                current = txn.first(
                    select(collection_members.c.dataset).where(
                        (collection_members.c.collection == name)
                        & (collection_members.c.name == ref.name)
                        & (collection_members.c.data_id == key)
                    )
                )
                if current is not None and current.dataset == ref.id:
                    continue
                if current is not None:
                    if not replace:
                        raise CollectionError(
                            f"{name!r} already holds a {ref.label!r} (dataset {current.dataset}); a TAGGED "
                            "collection holds one dataset per name and data ID: untag it first or pass replace=True"
                        )
                    txn.execute(
                        delete(collection_members).where(
                            (collection_members.c.collection == name) & (collection_members.c.dataset == current.dataset)
                        )
                    )
                exists = txn.first(select(datasets.c.id).where(datasets.c.id == ref.id))
                if exists is None:
                    raise CollectionError(f"dataset {ref.label!r} of run {ref.run} is not in this shelf")
                txn.execute(insert(collection_members).values(collection=name, dataset=ref.id, name=ref.name, data_id=key))
                added += 1
            self._bump(txn, "tagged", name)
        return added

    def untag(self, name: str, refs: Sequence[Any]) -> int:
        with self.registry.db.write() as txn:
            row = self._existing(txn, name)
            if row is None or row.kind != "tagged":
                raise CollectionNotFound(f"no TAGGED collection {name!r}")
            removed = 0
            for ref in refs:
                cursor = txn.execute(
                    delete(collection_members).where(
                        (collection_members.c.collection == name) & (collection_members.c.dataset == ref.id)
                    )
                )
                removed += max(cursor.rowcount, 0)
            self._bump(txn, "tagged", name)
        return removed

    # -- lookups ---------------------------------------------------------------

    def lookup(self, name: str, data_id: str, run_numbers: Sequence[int], tagged: Sequence[str]) -> list[Any]:
        """Rows of dataset ``name``/``data_id`` in these runs and TAGGED collections.

        Each row has the dataset's columns plus ``found_in``: the TAGGED
        collection it came from, or NULL for a run, and ``generation``: the
        definitions' generation number, so a caller that planned the search
        from cached definitions learns in the same query whether they
        still hold.  The caller picks the
        first in its search order.  The statement is compiled once per
        (number of runs, number of tagged collections).
        """
        stmt = self._lookups.get((len(run_numbers), len(tagged)))
        if stmt is None:
            stmt = self._lookups[(len(run_numbers), len(tagged))] = _lookup_statement(len(run_numbers), len(tagged))
        params: dict[str, Any] = {"name": name, "data_id": data_id}
        params.update({f"r{i}": n for i, n in enumerate(run_numbers)})
        params.update({f"t{i}": t for i, t in enumerate(tagged)})
        with self.registry.db.read() as txn:
            return txn.all(stmt, params)


def _lookup_statement(n_runs: int, n_tagged: int) -> Statement:
    from sqlalchemy import literal, null, union_all

    generation = select(shelf_info.c.value).where(shelf_info.c.key == _GENERATION_KEY).scalar_subquery()
    parts = []
    if n_runs:
        parts.append(
            select(*_DATASET_COLUMNS, null().label("found_in"), generation.label("generation")).where(
                (datasets.c.name == bindparam("name"))
                & (datasets.c.data_id == bindparam("data_id"))
                & datasets.c.run.in_([bindparam(f"r{i}") for i in range(n_runs)])
            )
        )
    if n_tagged:
        parts.append(
            select(*_DATASET_COLUMNS, collection_members.c.collection.label("found_in"), generation.label("generation"))
            .join(collection_members, collection_members.c.dataset == datasets.c.id)
            .where(
                (collection_members.c.name == bindparam("name"))
                & (collection_members.c.data_id == bindparam("data_id"))
                & collection_members.c.collection.in_([bindparam(f"t{i}") for i in range(n_tagged)])
            )
        )
    if not parts:
        return Statement(
            select(*_DATASET_COLUMNS, null().label("found_in"), generation.label("generation")).where(literal(False))
        )
    return Statement(parts[0] if len(parts) == 1 else union_all(*parts))


def _data_id_text(data_id: Mapping[str, Any]) -> str:
    from ..names import data_id_key

    return data_id_key(dict(data_id))
