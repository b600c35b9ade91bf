"""Every error labshelf raises on purpose.

::

    ShelfError
    ├── NotAShelf            (FileNotFoundError)  a path or URL that holds no shelf
    ├── ShelfExists          (FileExistsError)    create() over an existing shelf
    ├── SchemaVersionError   (RuntimeError)       registry schema older/newer than this labshelf
    ├── ReadOnlyShelf        (PermissionError)    a write to a shelf opened with mode="r"
    ├── RunNotWritable       (RuntimeError)       a write to a run that is no longer running
    ├── InvalidName          (ValueError)         a dataset name that breaks the naming rules
    ├── InvalidDataId        (ValueError)         a data ID that is not a flat dict of simple values
    ├── InvalidOptions       (ValueError)         bad HDF5 storage options or put arguments
    ├── UnsupportedValue     (TypeError)          a value no formatter (value kind) accepts
    ├── InvalidValue         (ValueError)         a value that does not fit (append/mutate shape, dtype)
    ├── InvalidIndex         (IndexError)         a mutate index outside the dataset or of a wrong type
    ├── QuerySyntaxError     (ValueError)         a query expression that does not parse or fit the columns
    ├── ContextError         (ValueError)         a context file of derived variables that cannot be used
    ├── CollectionError      (ValueError)         a chain with a cycle, a tag that conflicts, a wrong kind
    ├── InvalidParameter     (ValueError)         a read parameter a value kind does not take
    ├── ImportConflict       (ValueError)         an import whose run numbers are runs from elsewhere
    ├── IngestError          (ValueError)         a file that cannot be ingested (missing, no dataset, a shelf's own)
    ├── RunNotFound          (KeyError)
    ├── CollectionNotFound   (KeyError)           a collection, stage or repository tag that does not exist
    ├── LogEntryNotFound     (KeyError)           a logbook entry that does not exist
    ├── DatasetNotFound      (KeyError)
    │   ├── NotPersisted                          the dataset was put with persist=False
    │   └── ComponentNotFound                     a component the dataset's kind does not have
    ├── CorruptDataset       (OSError)            a data file that cannot be read; names the file
    │   └── IngestedFileChanged                   an ingested file changed, moved or disappeared since its ingest
    ├── UnsafePath           (PermissionError)    a link or registry row that would lead outside the shelf
    │   └── UnconfirmedFile                       an ingested file outside the shelf this user has not confirmed
    └── ShelfBusy            (TimeoutError)       the registry stayed locked past the timeout

Each class also subclasses the builtin whose meaning it has, so ``except
KeyError`` keeps working for code that knows nothing of labshelf.  Errors from
SQLAlchemy and h5py are translated at one boundary each (``registry.engine``
and ``datastore``), never leaked raw.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ShelfError",
    "NotAShelf",
    "ShelfExists",
    "SchemaVersionError",
    "ReadOnlyShelf",
    "RunNotWritable",
    "InvalidName",
    "InvalidDataId",
    "InvalidOptions",
    "UnsupportedValue",
    "InvalidValue",
    "InvalidIndex",
    "QuerySyntaxError",
    "ContextError",
    "CollectionError",
    "InvalidParameter",
    "ImportConflict",
    "IngestError",
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
    "ShelfBusy",
    "close_matches",
]


class ShelfError(Exception):
    """Base class of every error labshelf raises on purpose."""

    def __str__(self) -> str:
        # KeyError.__str__ quotes its argument; our messages are sentences.
        return str(self.args[0]) if self.args else self.__class__.__name__


class NotAShelf(ShelfError, FileNotFoundError):
    pass


class ShelfExists(ShelfError, FileExistsError):
    pass


class SchemaVersionError(ShelfError, RuntimeError):
    pass


class ReadOnlyShelf(ShelfError, PermissionError):
    pass


class RunNotWritable(ShelfError, RuntimeError):
    pass


class InvalidName(ShelfError, ValueError):
    pass


class InvalidDataId(ShelfError, ValueError):
    pass


class InvalidOptions(ShelfError, ValueError):
    pass


class UnsupportedValue(ShelfError, TypeError):
    pass


class InvalidValue(ShelfError, ValueError):
    pass


class InvalidIndex(ShelfError, IndexError):
    pass


class QuerySyntaxError(ShelfError, ValueError):
    """A query expression that cannot be parsed or applied.

    ``expression`` and ``position`` (0-based, or None) say where, for callers
    that want to highlight the error themselves.
    """

    def __init__(self, message: str, *, expression: str | None = None, position: int | None = None):
        super().__init__(message)
        self.expression = expression
        self.position = position


class ContextError(ShelfError, ValueError):
    """A context file (derived variables) that cannot be used, or a bad reference to it.

    The message names the file and line; ``path`` and ``line`` (1-based) say
    it again for callers that want to open the file there.  Either may be
    None when the error is not about one place in a file.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        super().__init__(message)
        # Instance attributes travel with the exception between processes
        # (BaseException.__reduce__ keeps __dict__), args stay (message,).
        self.path = path
        self.line = line


class CollectionError(ShelfError, ValueError):
    pass


class InvalidParameter(ShelfError, ValueError):
    pass


class ImportConflict(ShelfError, ValueError):
    """An import would give runs numbers that runs of the shelf from elsewhere have; nothing was written."""


class IngestError(ShelfError, ValueError):
    """A file ``ingest`` cannot register: missing, unreadable, of a format labshelf does not read,
    a member that is no dataset, a file inside a shelf's ``data/``; nothing was stored."""


class RunNotFound(ShelfError, KeyError):
    pass


class CollectionNotFound(ShelfError, KeyError):
    pass


class LogEntryNotFound(ShelfError, KeyError):
    """No logbook entry has this number."""


class DatasetNotFound(ShelfError, KeyError):
    pass


class NotPersisted(DatasetNotFound):
    pass


class ComponentNotFound(DatasetNotFound):
    pass


class CorruptDataset(ShelfError, OSError):
    pass


class IngestedFileChanged(CorruptDataset):
    """A file kept in place by ``ingest`` is no longer the file that was ingested: changed
    (size, modification time or checksum), replaced by a link, or gone.  Names the file."""


class UnsafePath(ShelfError, PermissionError):
    """A path the shelf holds (a symbolic link in ``data/`` or ``tmp/``, a file a
    registry row names) that would make labshelf read, write or delete outside
    the shelf; labshelf refuses to follow it."""


class UnconfirmedFile(UnsafePath):
    """An ingested file outside the shelf that this user has not confirmed the shelf may read
    (``labshelf trust-data SHELF PATH``, ``labshelf.trust_data``); names the file."""


class ShelfBusy(ShelfError, TimeoutError):
    pass


def close_matches(word: str, candidates: Iterable[str], n: int = 5) -> str:
    """A sentence tail like ``"; did you mean 'temp'?"`` or ``""``."""
    found = difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.6)
    if not found:
        return ""
    return "; did you mean " + ", ".join(repr(f) for f in found) + "?"
