"""Schema versions: Alembic migrations match schema.py, old shelves upgrade, new ones refuse."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import labshelf
from labshelf.registry import migrate
from labshelf.registry.schema import SCHEMA_VERSION, metadata

DATA = Path(__file__).with_name("data")


def test_schema_version_is_the_alembic_head() -> None:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert heads == [SCHEMA_VERSION]
    assert migrate.KNOWN_VERSIONS[-1] == SCHEMA_VERSION


def test_migrated_database_matches_schema_py(shelf: labshelf.Shelf) -> None:
    # Whatever the migrations built must be exactly what schema.py declares,
    # on both dialects, or the code and the database drift apart.
    with shelf._registry.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_a_newer_schema_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "new.shelf"
    labshelf.create(path).close()
    with sqlite3.connect(path / "registry.sqlite3") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(labshelf.SchemaVersionError, match="newer labshelf"):
        labshelf.open(path)
    with pytest.raises(labshelf.SchemaVersionError, match="newer labshelf"):
        labshelf.upgrade(path)


# The current schema needs no saved shelf: every other test makes one.
@pytest.mark.parametrize("version", migrate.KNOWN_VERSIONS[:-1])
def test_shelf_of_each_released_schema_opens_after_upgrade(tmp_path: Path, version: str) -> None:
    source = DATA / f"schema-{version}.shelf"
    path = tmp_path / source.name
    shutil.copytree(source, path)
    old, new = labshelf.upgrade(path)
    assert (old, new) == (version, SCHEMA_VERSION)
    with labshelf.open(path) as shelf:
        run = shelf.run(1)
        assert run.experiment == "released" and run.status == "finished"
        assert shelf.get("temperature", run=1) == 301.25
        assert shelf.get("label", run=1) == "schema " + version
        with shelf.new_run("after-upgrade") as new_run:
            new_run.put("x", 1)
        assert shelf.get("x", run=new_run.number) == 1
