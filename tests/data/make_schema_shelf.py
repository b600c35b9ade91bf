"""Make tests/data/schema-<version>.shelf with the labshelf of this checkout.

Run it before adding a schema revision, with the labshelf that still writes
the old schema, and commit the folder: tests/test_migrate.py upgrades and reads it.  Only inline
values, so the shelf is a few KB and holds no data files.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import labshelf
from labshelf.registry.schema import SCHEMA_VERSION

target = Path(__file__).with_name(f"schema-{SCHEMA_VERSION}.shelf")
if target.exists() and "--force" not in sys.argv:
    sys.exit(f"{target} exists; pass --force to remake it")
shutil.rmtree(target, ignore_errors=True)
with labshelf.create(target) as shelf, shelf.new_run("released", {"schema": SCHEMA_VERSION}) as run:
    run.put("temperature", 301.25)
    run.put("label", f"schema {SCHEMA_VERSION}")
if hasattr(shelf, "annotate"):  # schema 0002 on: annotations, kept across upgrades
    with labshelf.open(target) as shelf:
        shelf.annotate(1, comment="kept", tags=["good"], quality=2.5, count=3, note="n", checked=True)
# Leave a single self-contained file: fold the WAL into the database.
import sqlite3  # noqa: E402

with sqlite3.connect(target / "registry.sqlite3") as db:
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA journal_mode=DELETE")
for leftover in ("tmp",):
    shutil.rmtree(target / leftover, ignore_errors=True)
print(f"made {target}")
