"""labshelf: keep, find and watch the data of experiment runs, from Jupyter.

Importing labshelf is cheap: the registry, datastore and pandas load on the
first call that needs them (a test checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .errors import (
    CollectionError,
    CollectionNotFound,
    ComponentNotFound,
    ContextError,
    CorruptDataset,
    DatasetNotFound,
    IngestedFileChanged,
    IngestError,
    InvalidDataId,
    InvalidIndex,
    InvalidName,
    InvalidOptions,
    InvalidParameter,
    InvalidValue,
    LogEntryNotFound,
    NotAShelf,
    NotPersisted,
    QuerySyntaxError,
    ReadOnlyShelf,
    RunNotFound,
    RunNotWritable,
    SchemaVersionError,
    ShelfBusy,
    ShelfError,
    ShelfExists,
    UnconfirmedFile,
    UnsafePath,
    UnsupportedValue,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pathlib import Path

    from .collections import CollectionInfo
    from .datastore.composite import register_composite
    from .datastore.formatter import Formatter
    from .derived import variable
    from .exporting import export
    from .names import DataId
    from .opening import RepoSpec
    from .registry.meta import DisplayMeta
    from .registry.records import DatasetRef, RunRecord
    from .run import Run
    from .runview import RunView
    from .shelf import Shelf

__all__ = [
    # opening shelves and views of several repositories
    "create",
    "open",
    "upgrade",
    "repo",
    "RepoSpec",
    # files kept in place (ingest): the folders this user lets a shelf read
    "trust_data",
    # the objects they give
    "Shelf",
    "Run",
    "RunRecord",
    "DatasetRef",
    "RunView",
    "DisplayMeta",
    # finding datasets: data IDs with tags, collections
    "DataId",
    "CollectionInfo",
    # derived variables (in a shelf's context file)
    "variable",
    # extending: value kinds and composites
    "Formatter",
    "register_composite",
    "export",
    # errors
    "errors",
    "ShelfError",
    "NotAShelf",
    "ShelfExists",
    "SchemaVersionError",
    "ReadOnlyShelf",
    "RunNotWritable",
    "InvalidName",
    "InvalidDataId",
    "InvalidOptions",
    "InvalidValue",
    "InvalidIndex",
    "UnsupportedValue",
    "InvalidParameter",
    "CollectionError",
    "RunNotFound",
    "CollectionNotFound",
    "LogEntryNotFound",
    "DatasetNotFound",
    "NotPersisted",
    "ComponentNotFound",
    "CorruptDataset",
    "IngestedFileChanged",
    "UnsafePath",
    "UnconfirmedFile",
    "IngestError",
    "ShelfBusy",
    "QuerySyntaxError",
    "ContextError",
    "__version__",
]

_LAZY = {
    "Shelf": "labshelf.shelf",
    "Run": "labshelf.run",
    "RunRecord": "labshelf.registry.records",
    "DatasetRef": "labshelf.registry.records",
    "RunView": "labshelf.runview",
    "DisplayMeta": "labshelf.registry.meta",
    "Formatter": "labshelf.datastore.formatter",
    "variable": "labshelf.derived",
    "DataId": "labshelf.names",
    "CollectionInfo": "labshelf.collections",
    "RepoSpec": "labshelf.opening",
    "register_composite": "labshelf.datastore.composite",
    "export": "labshelf.exporting",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'labshelf' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def create(path: Any, **kwargs: Any) -> Shelf:
    """Create a new shelf; see :func:`labshelf.opening.create`."""
    from .opening import create as _create

    return _create(path, **kwargs)


def open(path: Any = None, **kwargs: Any) -> Shelf:  # noqa: A001 - the natural name, like h5py's
    """Open a shelf; see :func:`labshelf.opening.open`."""
    from .opening import open as _open

    return _open(path, **kwargs)


def repo(path: Any, **kwargs: Any) -> RepoSpec:
    """Name a repository (with a tag) for ``open(inputs=[...])``; see :func:`labshelf.opening.repo`."""
    from .opening import repo as _repo

    return _repo(path, **kwargs)


def upgrade(path: Any, **kwargs: Any) -> tuple[str | None, str]:
    """Migrate a shelf's registry to this labshelf's schema; see :func:`labshelf.opening.upgrade`."""
    from .opening import upgrade as _upgrade

    return _upgrade(path, **kwargs)


def trust_data(shelf: Any, path: Any) -> Path:
    """Let the shelf read an ingested file (or every file under a folder) for this user; see :func:`labshelf.ingest.trust_data`."""
    from .ingest import trust_data as _trust_data

    return _trust_data(shelf, path)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The jupyter-server extension of the Shelves sidebar (see :mod:`labshelf.server`)."""
    return [{"module": "labshelf.server"}]


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext labshelf``: magics, completion and display (see :mod:`labshelf.kernel_ext`)."""
    from .kernel_ext import load_ipython_extension as _load

    _load(ip)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext labshelf``: remove what loading registered."""
    from .kernel_ext import unload_ipython_extension as _unload

    _unload(ip)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt Shelves panel (built from ``labextension/`` into ``labshelf/labextension``)."""
    return [{"src": "labextension", "dest": "labshelf"}]
