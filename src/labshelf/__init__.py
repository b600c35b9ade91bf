"""labshelf: keep, find and watch the data of experiment runs, from Jupyter.

Importing labshelf is cheap: the registry, datastore and pandas load on the
first call that needs them (a test checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .errors import (
    ContextError,
    CorruptDataset,
    DatasetNotFound,
    InvalidDataId,
    InvalidIndex,
    InvalidName,
    InvalidOptions,
    InvalidValue,
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
    UnsupportedValue,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .datastore.formatter import Formatter
    from .derived import variable
    from .registry.records import DatasetRef, RunRecord
    from .run import Run
    from .runview import RunView
    from .shelf import Shelf

__all__ = [
    # opening shelves
    "create",
    "open",
    "upgrade",
    # the objects they give
    "Shelf",
    "Run",
    "RunRecord",
    "DatasetRef",
    "RunView",
    # derived variables (in a shelf's context file)
    "variable",
    # extending: value kinds
    "Formatter",
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
    "RunNotFound",
    "DatasetNotFound",
    "NotPersisted",
    "CorruptDataset",
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
    "Formatter": "labshelf.datastore.formatter",
    "variable": "labshelf.derived",
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


def open(path: Any, **kwargs: Any) -> Shelf:  # noqa: A001 - the natural name, like h5py's
    """Open a shelf; see :func:`labshelf.opening.open`."""
    from .opening import open as _open

    return _open(path, **kwargs)


def upgrade(path: Any, **kwargs: Any) -> tuple[str | None, str]:
    """Migrate a shelf's registry to this labshelf's schema; see :func:`labshelf.opening.upgrade`."""
    from .opening import upgrade as _upgrade

    return _upgrade(path, **kwargs)
