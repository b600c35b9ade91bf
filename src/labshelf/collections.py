"""Collections and the search path: which dataset a name and data ID mean.

A dataset is found by name and data ID in an ordered list of collections:

- RUN: every run is one (``run/12``);
- TAGGED: a named set of datasets, at most one per name and data ID;
- CHAINED: an ordered list of other collections, chains nested in chains.

A search walks the list depth-first through chains, and the first
collection holding the dataset supplies it.  A shelf may be a view of
several repositories (an output and its inputs): a collection name then
means the collection of that name in the first repository, in search order,
that has it, and chains may name collections of any repository of the view.

The SQL lives in ``registry/collections.py``; this module resolves names
across repositories, expands chains, applies stages and repository tags, and
picks the first match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import CollectionError, CollectionNotFound, close_matches
from .registry.collections import CollectionRecord, Collections, run_number
from .registry.registry import ref_from_row

if TYPE_CHECKING:
    from .datastore import Datastore
    from .registry.records import DatasetRef
    from .registry.registry import Registry

#: How deep chains may nest (a guard: definitions refuse cycles already).
MAX_DEPTH = 64


@dataclass(eq=False)
class Repository:
    """One repository of a shelf's view: its registry, its data files, how it is open.

    ``tags`` are the tags it was opened with plus those of the repositories
    that brought it in as a parent: a tagged search reaches parents too.
    """

    where: str
    registry: Registry
    datastore: Datastore
    mode: str
    tags: frozenset[str] = frozenset()
    collections: Collections = field(init=False)

    def __post_init__(self) -> None:
        from .registry.collections import Collections

        self.collections = Collections(self.registry)


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """A collection as a shelf lists it (:meth:`Shelf.collections`)."""

    name: str
    #: ``"RUN"``, ``"TAGGED"`` or ``"CHAINED"``.
    kind: str
    doc: str = ""
    stage: str | None = None
    #: A chain's children, in search order.
    children: tuple[str, ...] = ()
    #: Where the repository defining it is.
    repository: str = ""

    def __repr__(self) -> str:
        stage = f" stage={self.stage!r}" if self.stage else ""
        children = f" -> {list(self.children)}" if self.children else ""
        return f"<{self.kind} collection {self.name!r}{stage}{children}>"


@dataclass(frozen=True, slots=True)
class Leaf:
    """A RUN or TAGGED collection the search reaches, with the path that led there."""

    repo: Repository
    name: str
    run: int | None
    path: tuple[str, ...]
    stages: frozenset[str]


def info(record: CollectionRecord, repo: Repository) -> CollectionInfo:
    return CollectionInfo(
        name=record.name,
        kind=record.kind.upper(),
        doc=record.doc,
        stage=record.stage,
        children=record.children,
        repository=repo.where,
    )


class SearchPath:
    """Resolves collection names over the repositories of a view, in search order."""

    def __init__(self, repos: Sequence[Repository], overrides: Mapping[str, tuple[str, ...]] | None = None):
        self.repos = list(repos)
        self._overrides = dict(overrides or {})
        self._runs: dict[tuple[int, int], bool] = {}
        # One read of each repository's definitions per search, not one per chain node.
        self._defined: dict[int, dict[str, CollectionRecord]] = {}

    def defined(self, repo: Repository) -> dict[str, CollectionRecord]:
        found = self._defined.get(id(repo))
        if found is None:
            found = self._defined[id(repo)] = repo.collections.defined()
        return found

    def resolve(self, name: str, *, checked: bool) -> tuple[Repository, CollectionRecord]:
        """The repository and record of collection ``name`` (CollectionNotFound if none).

        ``checked`` names come from a stored chain, whose children were
        checked when it was defined: in a single repository a run's
        collection is then taken on trust instead of costing a query.
        """
        if not isinstance(name, str):
            raise CollectionNotFound(f"a collection is named by a str, not {name!r}")
        number = run_number(name)
        for repo in self.repos:
            record = self.defined(repo).get(name)
            if record is not None:
                if name in self._overrides:
                    record = CollectionRecord(name, "chained", record.doc, record.stage, self._overrides[name])
                return repo, record
            if name in self._overrides and repo is self.repos[0]:
                return repo, CollectionRecord(name, "chained", children=self._overrides[name])
            if number is not None:
                if checked and len(self.repos) == 1:
                    return repo, CollectionRecord(name, "run")
                if self._has_run(repo, number):
                    return repo, CollectionRecord(name, "run")
        raise CollectionNotFound(self._unknown(name))

    def _has_run(self, repo: Repository, number: int) -> bool:
        key = (id(repo), number)
        found = self._runs.get(key)
        if found is None:
            found = self._runs[key] = repo.registry.run(number) is not None
        return found

    def _unknown(self, name: str) -> str:
        names = [n for repo in self.repos for n in self.defined(repo)]
        number = run_number(name)
        if number is not None:
            where = " or ".join(repo.where for repo in self.repos)
            return f"no run {number} in {where}, so no collection {name!r}"
        listed = ", ".join(repr(n) for n in sorted(set(names))[:20]) or "none besides the runs' (run/<number>)"
        return f"no collection {name!r}{close_matches(name, names)}; collections: {listed}"

    def leaves(self, names: Iterable[str], *, stage: str | None = None) -> list[Leaf]:
        """The RUN and TAGGED collections reached from ``names``, depth-first, in search order."""
        out: list[Leaf] = []
        for name in names:
            self._walk(name, (), frozenset(), out, checked=False)
        if stage is not None:
            kept = [leaf for leaf in out if stage in leaf.stages]
            if not kept and not any(stage == r.stage for repo in self.repos for r in self.defined(repo).values()):
                stages = sorted({r.stage for repo in self.repos for r in self.defined(repo).values() if r.stage})
                raise CollectionNotFound(
                    f"no collection carries the stage {stage!r}{close_matches(stage, stages)}; "
                    f"stages: {', '.join(map(repr, stages)) or 'none (give one with shelf.describe_collection)'}"
                )
            out = kept
        return out

    def staged(self, stage: str) -> list[str]:
        """Every collection carrying ``stage``, for a staged search without collections:
        chains and tagged collections by name, then runs, newest first."""
        named: list[str] = []
        runs: list[tuple[int, str]] = []
        for repo in self.repos:
            for record in self.defined(repo).values():
                if record.stage == stage and record.name not in named:
                    number = run_number(record.name)
                    if number is None:
                        named.append(record.name)
                    else:
                        runs.append((number, record.name))
        return sorted(named) + [name for _n, name in sorted(runs, reverse=True)]

    def _walk(self, name: str, path: tuple[str, ...], stages: frozenset[str], out: list[Leaf], *, checked: bool) -> None:
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise CollectionError(f"the chains form a cycle: {cycle}")
        if len(path) >= MAX_DEPTH:
            raise CollectionError(f"chains nest deeper than {MAX_DEPTH} levels at {' -> '.join(path)}")
        repo, record = self.resolve(name, checked=checked)
        path = (*path, name)
        if record.stage:
            stages = stages | {record.stage}
        if record.kind == "chained":
            for child in record.children:
                self._walk(child, path, stages, out, checked=True)
        else:
            out.append(Leaf(repo, name, run_number(name) if record.kind == "run" else None, path, stages))


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive leaves of one repository, asked in one query."""

    repo: Repository
    runs: tuple[int, ...]
    tagged: tuple[str, ...]
    #: run number or ("tagged", name) -> the first leaf (in order) that is it
    order: Mapping[Any, Leaf]
    rank: Mapping[Any, int]


def batches(leaves: Sequence[Leaf]) -> list[Batch]:
    """Group leaves into per-repository batches, keeping the search order."""
    out: list[Batch] = []
    start = 0
    while start < len(leaves):
        repo = leaves[start].repo
        end = start
        while end < len(leaves) and leaves[end].repo is repo:
            end += 1
        order: dict[Any, Leaf] = {}
        rank: dict[Any, int] = {}
        for i, leaf in enumerate(leaves[start:end]):
            key: Any = leaf.run if leaf.run is not None else ("tagged", leaf.name)
            if key not in order:
                order[key], rank[key] = leaf, i
        runs = tuple(k for k in order if isinstance(k, int))
        tagged = tuple(k[1] for k in order if isinstance(k, tuple))
        out.append(Batch(repo, runs, tagged, order, rank))
        start = end
    return out


def first_match(plan: Sequence[Batch], name: str, data_id: str) -> tuple[DatasetRef | None, str | None]:
    """The dataset of the first leaf (in search order) that holds ``name``/``data_id``,
    and the definitions' generation number its repository answered with.

    Each batch is one query; the search stops at the first batch with a match.
    """
    for batch in plan:
        rows = batch.repo.collections.lookup(name, data_id, batch.runs, batch.tagged)
        if rows:
            keys = [(r.run if r.found_in is None else ("tagged", r.found_in), r) for r in rows]
            key, best = min(keys, key=lambda item: batch.rank[item[0]])
            return ref_from_row(best, batch.repo.where, batch.order[key].path), best.generation
    return None, None


def check_chain(search: SearchPath, name: str, children: Sequence[str]) -> tuple[str, ...]:
    """Validate a chain definition: children exist, no cycle (CollectionError/NotFound)."""
    if isinstance(children, str):
        raise CollectionError(f"chain() takes a list of collection names, not a single str; use [{children!r}]")
    children = tuple(children)
    if len(set(children)) != len(children):
        raise CollectionError(f"the chain {name!r} names a collection twice: {list(children)}")
    if name in children:
        raise CollectionError(f"the chains form a cycle: {name} -> {name}")
    trial = SearchPath(search.repos, {name: children})
    for child in children:
        trial.resolve(child, checked=False)
    trial.leaves([name])  # walks every path: raises on a cycle through other chains
    return children
