"""Reading a dataset's value from where its ref says it is: the registry (inline) or data files.

The formatter of the ref's kind does the reading; this module adds what a
read needs around it: composites assembled from their parts, a second look
when a writer replaced the version between lookup and read, and the one
place where damaged data become :class:`CorruptDataset` naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import (
    ComponentNotFound,
    CorruptDataset,
    IngestedFileChanged,
    InvalidParameter,
    ShelfError,
    UnsafePath,
    close_matches,
)
from .ingest import is_ingested, located
from .names import data_id_key

if TYPE_CHECKING:
    from pathlib import Path

    from .collections import Repository
    from .registry.records import DatasetRef
    from .shelf import Shelf

T = TypeVar("T")


def load(shelf: Shelf, repo: Repository, formatter: Any, ref: DatasetRef, component: str | None, params: dict[str, Any]) -> Any:
    """The value (or ``component``) of ``ref``, read with ``params``; never from the cache."""
    from .datastore import composite

    if ref.damage is not None:
        raise CorruptDataset(
            f"dataset {ref.label!r} of run {ref.run} cannot be read: its registry row is damaged "
            f"({ref.damage}). Other datasets are not affected"
        )
    if ref.kind == composite.KIND:
        return _composite(shelf, repo, ref, component, params)
    for _attempt in range(5):
        if ref.storage.inline is not None:
            if component is not None:
                raise formatter.no_component([], ref, component)
            return formatter.apply_inline(read_inline(formatter, ref), params)
        paths, stored = _located(repo, ref)
        try:
            if component is not None:
                return formatter.read_component(paths, ref, component, params)
            return formatter.read(paths, stored, ref, params)
        except CorruptDataset as exc:  # the datastore names the file; say which dataset it is
            raise type(exc)(f"dataset {ref.label!r} of run {ref.run}: {exc}") from exc
        except ShelfError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            # A writer may have replaced this version (and removed its files)
            # between our lookup and the read; HDF5 then reports a missing
            # file, or a file it could not stat halfway through opening it.
            # Look again and read the newer version.
            fresh = repo.registry.find(ref.run, ref.name, data_id_key(ref.data_id))
            if fresh is not None and fresh.version != ref.version:
                ref = fresh
                continue
            if isinstance(exc, FileNotFoundError) and is_ingested(ref):
                raise IngestedFileChanged(
                    f"dataset {ref.label!r} of run {ref.run}: the ingested file {exc.filename} is gone"
                ) from exc
            if isinstance(exc, FileNotFoundError):
                raise CorruptDataset(
                    f"dataset {ref.label!r} of run {ref.run}: its data file {exc.filename} is missing"
                ) from exc
            raise CorruptDataset(
                f"dataset {ref.label!r} of run {ref.run} cannot be read: data file "
                f"{', '.join(str(p) for p in paths)} is damaged ({exc}). Other datasets are not affected"
            ) from exc
    raise CorruptDataset(f"dataset {ref.label!r} of run {ref.run} kept changing while being read")


def data_paths(repo: Repository, ref: DatasetRef) -> list[Path]:
    """The resolved paths of a dataset's data files, or CorruptDataset naming the row.

    Registry rows may have been edited: a file that is not under ``data/``,
    or reached through a link out of it, is never opened.  An ingested file
    is the one its row records, once checked (:func:`labshelf.ingest.located`).
    """
    return _located(repo, ref)[0]


def _located(repo: Repository, ref: DatasetRef) -> tuple[list[Path], str]:
    """A dataset's data files and the name of its value inside them."""
    if is_ingested(ref):
        return located(repo, ref)
    try:
        return [repo.datastore.path(f) for f in ref.storage.files], ref.name
    except UnsafePath as exc:
        raise CorruptDataset(f"dataset {ref.label!r} of run {ref.run}: {exc}. Other datasets are not affected") from exc


def _composite(shelf: Shelf, repo: Repository, ref: DatasetRef, component: str | None, params: dict[str, Any]) -> Any:
    """Assemble a composite from its part datasets (``name.part``), or read one part (through the cache)."""
    from .datastore import composite

    names = composite.component_names(ref)
    key = data_id_key(dict(ref.data_id))

    def part(name: str) -> DatasetRef:
        found = repo.registry.find(ref.run, f"{ref.name}.{name}", key)
        if found is None:
            raise CorruptDataset(f"component {name!r} of {ref.label!r} (run {ref.run}) is missing from the registry")
        return found

    if component is not None:
        head, _, rest = component.partition(".")
        if head not in names:
            raise ComponentNotFound(
                f"{ref.label!r} of run {ref.run} has no component {head!r}{close_matches(head, names)}; "
                f"its components: {', '.join(names)}"
            )
        return shelf.read(part(head), component=rest or None, parameters=params or None)
    if params:
        raise InvalidParameter("read parameters apply to one component of a composite: get('name.component', parameters=...)")
    return composite.assemble(ref, {name: shelf.read(part(name)) for name in names})


def read_inline(formatter: Any, ref: DatasetRef) -> Any:
    """The value kept in the registry as JSON."""
    try:
        return formatter.from_inline(ref.storage.inline)
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptDataset(
            f"dataset {ref.label!r} of run {ref.run}: its value in the registry is damaged ({exc}). "
            "Other datasets are not affected"
        ) from exc



def inspect(repo: Repository, ref: DatasetRef, look: Callable[[Any, list[Path]], T]) -> T:
    """``look(formatter, paths)``: a listing of, or a bounded look into, a dataset's data files.

    What ``Formatter.members`` and ``Formatter.peek`` do for front ends;
    a damaged or missing file becomes CorruptDataset naming it, as a read would.
    """
    from .datastore import formatters

    formatter = formatters.by_kind(ref.kind)
    paths = located(repo, ref)[0] if is_ingested(ref) else [repo.datastore.path(f) for f in ref.storage.files]
    try:
        return look(formatter, paths)
    except ShelfError:
        raise
    except FileNotFoundError as exc:
        if is_ingested(ref):
            raise IngestedFileChanged(f"dataset {ref.label!r} of run {ref.run}: the ingested file {exc.filename} is gone") from exc
        raise CorruptDataset(f"dataset {ref.label!r} of run {ref.run}: its data file {exc.filename} is missing") from exc
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
        raise CorruptDataset(
            f"dataset {ref.label!r} of run {ref.run} cannot be looked into: data file "
            f"{', '.join(str(p) for p in paths)} is damaged ({exc}). Other datasets are not affected"
        ) from exc
