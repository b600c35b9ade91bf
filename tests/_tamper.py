"""What the hostile-shelf tests share: a sandbox to watch, raw SQL on a registry, planted files.

An attacker edits a shelf with ordinary tools: symbolic links, an SQL
client on the registry, h5py.  These helpers do the same, never through
labshelf's own code paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

import labshelf
from _shelves import POSTGRES_URL

#: What the sandbox's secret file holds: values no test ever stores on a shelf.
SECRET = np.arange(1, 5001, dtype="<f8") * 7.25 + 0.125


def make_sandbox(tmp_path: Path) -> Path:
    """A folder outside the shelf with a secret file, a secret HDF5 file and a sub-folder."""
    import h5py

    sandbox = tmp_path / "sandbox"
    (sandbox / "inner").mkdir(parents=True)
    (sandbox / "secret.bin").write_bytes(SECRET.tobytes())
    (sandbox / "inner" / "notes.txt").write_text("do not touch\n")
    with h5py.File(sandbox / "secret.h5", "w") as f:
        f["x"] = SECRET
        f["camera/image"] = SECRET.reshape(50, 100)
    return sandbox


def snapshot(folder: Path) -> dict[str, Any]:
    """Everything about a folder's contents: names, kinds, sizes, mtimes and a hash of the bytes."""
    found: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else None
            found[str(path.relative_to(folder))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return found


def holds_secret(value: Any) -> bool:
    """Whether a value read back carries any of the secret's values."""
    try:
        array = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        return False
    return bool(np.isin(array, SECRET).any())


def registry_sql(shelf: labshelf.Shelf, statement: str, params: dict[str, Any]) -> int:
    """Run ``statement`` (``:name`` parameters) on the shelf's registry with a client of its own.

    SQLite: the registry file in the shelf folder; PostgreSQL: the shelf's
    schema.  Returns the number of rows changed.
    """
    if shelf._registry.db.is_sqlite:
        db = sqlite3.connect(shelf.root / "registry.sqlite3")
        try:
            with db:
                return db.execute(statement, params).rowcount
        finally:
            db.close()
    from sqlalchemy import create_engine, text

    with shelf._registry.db.read() as txn:
        schema = txn.execute_sql("SELECT current_schema()").fetchone()[0]
    engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(text(f'SET search_path TO "{schema}"'))
            return int(conn.execute(text(statement), params).rowcount)
    finally:
        engine.dispose()


def set_location(shelf: labshelf.Shelf, run: int, name: str, files: list[str]) -> None:
    """Make a dataset's row name ``files`` as its data files."""
    changed = registry_sql(
        shelf, "UPDATE datasets SET location = :location WHERE run = :run AND name = :name",
        {"location": json.dumps(files), "run": run, "name": name},
    )
    assert changed == 1


def data_file(shelf: labshelf.Shelf, name: str, run: int = 1, index: int = 0) -> Path:
    """The path of a dataset's data file, as a writer left it."""
    return shelf.root / shelf.find(name, run=run).storage.files[index]
