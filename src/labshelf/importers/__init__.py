"""Bringing existing data in: importers of other programs' files as labshelf runs.

``labshelf.importers.artiq(shelf, "results")`` imports an ARTIQ results
folder (``labshelf import artiq RESULTS_DIR SHELF`` on the command line);
``labshelf.importers.labshelf_export(shelf, "out")`` a folder ``labshelf.export``
wrote (``labshelf import labshelf OUT_DIR SHELF``).
``labshelf.importers.damnit(shelf, "damnit_folder")`` a DAMNIT database
(``labshelf import damnit DAMNIT_DIR SHELF``).
Every importer returns an :class:`ImportReport`, records each run's source
(``params["source"]``, ``params["source_sha256"]``) and can be run again:
it imports only what is new and finishes what an interrupted import began
(``_common.py`` says how).
"""

from __future__ import annotations

from ._common import ImportReport, Skipped
from .artiq import artiq
from .damnit import damnit
from .labshelf_export import labshelf_export

__all__ = ["ImportReport", "Skipped", "artiq", "damnit", "labshelf_export"]
