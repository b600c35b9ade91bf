"""Bytes on disk: data files under the shelf root, one per dataset version.

See :mod:`labshelf.datastore.store` for the file layout and the atomic-write
protocol, and :mod:`labshelf.datastore.formatter` for value kinds.
"""

from __future__ import annotations

from .formatter import Description, Formatter, Formatters, Summary, formatters
from .store import Datastore

__all__ = ["Datastore", "Description", "Formatter", "Formatters", "Summary", "formatters"]
