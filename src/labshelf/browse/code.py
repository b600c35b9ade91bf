"""Code snippets: the exact Python that loads what a node shows.

Every snippet is written for a notebook where the shelf is ``shelf``, and
is valid Python whatever the names hold: every string in it is a ``repr``
(dataset names, data ID values, file paths and HDF5 paths come from the
shelf, and a shelf may have been written by someone else), and numbers are
ints, so a name cannot close a string and add code of its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..shelf import Shelf


def open_code(shelf: Shelf) -> str:
    """``import labshelf`` and ``shelf = labshelf.open(...)`` for this shelf.

    It names the shelf by its folder (the root, which holds the marker for
    PostgreSQL shelves too), so a registry URL, and any password in it,
    never lands in a notebook.
    """
    mode = ", mode='r'" if shelf.readonly else ""
    return f"import labshelf\nshelf = labshelf.open({os.path.abspath(shelf.root)!r}{mode})"


def get_code(name: str, run: int, data_id: Mapping[str, Any] | None = None) -> str:
    """``shelf.get('name', run=12, data_id={...})``: ``name`` may name a component (``spectrum.coords.energy``)."""
    extra = f", data_id={dict(data_id)!r}" if data_id else ""
    return f"shelf.get({name!r}, run={int(run)}{extra})"


def run_code(run: int) -> str:
    return f"shelf.run({int(run)})"


def group_code(run: int, prefix: str) -> str:
    """The datasets of a run whose names start with ``prefix`` (ending in "/")."""
    return f"[ref for ref in shelf.datasets({int(run)}) if ref.name.startswith({prefix!r})]"


def hdf5_code(relative: str, path: str, attr: str | None = None, *, listing: bool = False) -> str:
    """Read an HDF5 object (or list a group, or read an attribute) of a data file with h5py."""
    where = f"f[{path!r}]" if path not in ("", "/") else "f"
    if attr is not None:
        expression = f"{where}.attrs[{attr!r}]"
    elif listing:
        expression = f"list({where})"
    else:
        expression = f"{where}[()]"
    # An ingested file is named by its own (absolute) path, the shelf's files relative to its root.
    opened = repr(relative) if relative.startswith("/") else f"shelf.root / {relative!r}"
    return f"import h5py\nwith h5py.File({opened}, 'r') as f:\n    value = {expression}"
