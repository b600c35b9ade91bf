"""Which dataset a name and data ID mean: the search behind Shelf.find, get and components.

``Finder`` serves one shelf: a run number goes straight to the one indexed
probe of the core; collections go through the search path of
``collections.py`` (names resolved over the shelf's repositories, chains
expanded depth-first, stages, first match), with the expansion of each
collection list remembered while the repository's definitions stay the
same; without either, the newest run that has the dataset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .collections import Batch, Leaf, SearchPath, batches, first_match
from .errors import (
    CollectionError,
    CollectionNotFound,
    CorruptDataset,
    DatasetNotFound,
    NotPersisted,
    ShelfError,
    close_matches,
)
from .names import data_id_key, data_id_tag, format_data_id, normalize_data_id

if TYPE_CHECKING:
    from .collections import Repository
    from .registry.records import DatasetRef
    from .shelf import Shelf

#: How many collection lists a finder remembers the expansion of.
MEMO_SIZE = 256


class Finder:
    """Finds datasets for one shelf (its repositories in search order)."""

    def __init__(self, shelf: Shelf, repos: list[Repository]):
        self.shelf = shelf
        self.repos = repos
        self._memo: dict[tuple[tuple[str, ...], str | None], tuple[Any, list[Leaf], list[Batch], str | None]] = {}

    def find(self, name: str, data_id: Any, run: Any, collections: Any, stage: str | None) -> DatasetRef:
        """The dataset ``name``/``data_id`` a get means (see :meth:`Shelf.find`)."""
        did = normalize_data_id(data_id)
        key = data_id_key(did)
        tag = data_id_tag(data_id)
        if run is not None:
            if collections is not None:
                raise CollectionError("give run= or collections=, not both")
            number = self.shelf._run_number(run)
            if tag is None and stage is None:
                # The common case, one indexed probe: this repository's run.
                ref = self.repos[0].registry.find(number, name, key)
                if ref is not None:
                    return ref
                if len(self.repos) == 1:
                    raise self.not_found(number, name, key, data_id)
            collections = [f"run/{number}"]
        search = self.search(tag)
        names = self.collection_list(collections)
        if names is None and stage is not None:
            names = search.staged(stage)  # every collection that carries the stage
        if names is None:
            return self.newest(search, name, key, data_id)
        remembered = self._memo.get((tuple(names), stage)) if len(search.repos) == 1 else None
        if remembered is not None:
            # Planned from definitions read earlier; the lookup itself says
            # whether they still hold (one query instead of two).
            ref, generation = first_match(remembered[2], name, key)
            if ref is not None and generation == remembered[3]:
                return ref
        leaves, plan = self.plan(search, names, stage)
        ref, _generation = first_match(plan, name, key)
        if ref is None:
            where = f" with stage {stage!r}" if stage else ""
            raise DatasetNotFound(
                f"no dataset {name!r}"
                f"{' with data ID ' + format_data_id(did) if did else ''} in the collections "
                f"{', '.join(map(repr, names))}{where} (searched {len(leaves)} RUN/TAGGED collections"
                f"{', e.g. ' + ', '.join(leaf.name for leaf in leaves[:5]) if leaves else ''})"
            )
        return ref

    def plan(self, search: SearchPath, names: list[str], stage: str | None) -> tuple[list[Leaf], list[Batch]]:
        """``search.leaves`` and their query batches, remembered while the definitions stay the same.

        Only for a shelf of one repository: there a chain's expansion depends
        on its definitions alone (``Collections.defined`` returns the same
        dict until the generation number changes), so one indexed read of
        that number replaces walking the chain on every get.
        """
        if len(search.repos) != 1:
            leaves = search.leaves(names, stage=stage)
            return leaves, batches(leaves)
        repo = search.repos[0]
        defined = search.defined(repo)
        memo_key = (tuple(names), stage)
        found = self._memo.get(memo_key)
        if found is not None and found[0] is defined:
            return found[1], found[2]
        leaves = search.leaves(names, stage=stage)
        plan = batches(leaves)
        if len(self._memo) > MEMO_SIZE:
            self._memo.clear()
        self._memo[memo_key] = (defined, leaves, plan, repo.collections.generation)
        return leaves, plan

    def collection_list(self, collections: Any) -> list[str] | None:
        """``collections=`` as a list of names, or the default ones, or None (every run)."""
        chosen = collections if collections is not None else self.shelf.default_collections
        if chosen is None:
            return None
        names = [chosen] if isinstance(chosen, str) else list(chosen)
        for item in names:
            if not isinstance(item, str):
                raise CollectionNotFound(f"collections= takes names (str), not {item!r}")
        return names

    def search(self, tag: str | None = None) -> SearchPath:
        """The search path over the repositories, or those carrying ``tag`` (and their parents)."""
        if tag is None:
            return SearchPath(self.repos)
        repos = [repo for repo in self.repos if tag in repo.tags]
        if not repos:
            tags = sorted({t for repo in self.repos for t in repo.tags})
            raise CollectionNotFound(
                f"no repository of this shelf carries the tag {tag!r}{close_matches(tag, tags)}; "
                f"tags: {', '.join(map(repr, tags)) or 'none (open inputs with labshelf.repo(path, tag=...))'}"
            )
        return SearchPath(repos)

    def newest(self, search: SearchPath, name: str, key: str, data_id: Any) -> DatasetRef:
        """Without collections: the dataset in the newest run that has it, repository by repository."""
        for repo in search.repos:
            ref = repo.registry.newest(name, key)
            if ref is not None:
                return ref
        did = normalize_data_id(data_id)
        names = sorted({n for repo in search.repos for n in repo.registry.dataset_names()})
        with_id = f" with data ID {format_data_id(did)}" if did else ""
        raise DatasetNotFound(f"no run has a dataset {name!r}{with_id}{close_matches(name, names)}")


    def not_found(self, run: int, name: str, key: str, data_id: Any) -> ShelfError:
        """The error to raise for a dataset that is not there, saying why."""
        registry = self.repos[0].registry
        if registry.run(run) is None:
            self.shelf.run(run)  # raises RunNotFound with a hint
        if registry.was_broadcast(run, name, key):
            return NotPersisted(
                f"dataset {name!r} of run {run} was put with persist=False: it was broadcast to "
                "live subscribers only and never stored"
            )
        refs = registry.datasets(run)
        same_name = [r for r in refs if r.name == name]
        damaged = [r for r in same_name if r.damage is not None and "datasets.data_id" in r.damage]
        if damaged:
            # Its data ID cannot be read, so no data ID finds it: say so rather than "not found".
            return CorruptDataset(
                f"dataset {name!r} of run {run} cannot be read: its registry row is damaged "
                f"({damaged[0].damage}). Other datasets are not affected"
            )
        if same_name:
            ids = "; ".join(format_data_id(r.data_id) or "(no data ID)" for r in same_name[:10])
            return DatasetNotFound(
                f"run {run} has {name!r} only with other data IDs than "
                f"{format_data_id(normalize_data_id(data_id)) or '(none)'}: {ids}"
            )
        names = sorted({r.name for r in refs})
        return DatasetNotFound(f"run {run} has no dataset {name!r}{close_matches(name, names)}")
