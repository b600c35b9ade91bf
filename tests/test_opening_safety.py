"""Opening a shelf someone gave you never reaches outside it.

Hostile shelves are built the way an attacker would: edited markers, links
in place of the registry, edited registry rows (the recorded data folder,
recorded parents), schema names made to inject SQL.  A sandbox folder
outside the shelf (another shelf and a file) must be byte for byte the same
afterwards, and a PostgreSQL database must hold no new schema or table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, delete, event, insert, text

import labshelf
from _mounts import full_disk, snapshot
from _shelves import POSTGRES_URL, PostgresSchemas, make_shelf, require_postgres
from labshelf.errors import InvalidName, NotAShelf, ShelfError, ShelfExists
from labshelf.registry.schema import SCHEMA_VERSION, shelf_info

MARKER = "labshelf.json"


def labshelf_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labshelf.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Path]:
    """A folder outside every shelf under test: another shelf and a file.  Unchanged at the end."""
    folder = tmp_path / "sandbox"
    with labshelf.create(folder / "victim.shelf") as victim, victim.new_run("private") as run:
        run.put("secret", 42)
        run.put("big", np.arange(5000.0))
    (folder / "notes.txt").write_text("not for labshelf")
    before = snapshot(folder)
    yield folder
    assert snapshot(folder) == before, "something outside the shelf under test changed"


def read_marker(folder: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((folder / MARKER).read_text())
    return doc


def write_marker(folder: Path, doc: dict[str, Any]) -> None:
    (folder / MARKER).write_text(json.dumps(doc))


def edit_info(folder: Path, **values: str | None) -> None:
    """Change ``shelf_info`` rows directly in the registry, as anyone with access to it could (None: delete)."""
    doc = read_marker(folder)
    if doc["registry"] == "registry.sqlite3":
        engine = create_engine(f"sqlite:///{folder / 'registry.sqlite3'}")
    else:
        engine = pg_engine()
        schema = doc["schema"]

        @event.listens_for(engine, "connect")
        def _search_path(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f'SET search_path TO "{schema}"')
            dbapi_connection.commit()

    try:
        with engine.begin() as conn:
            for key, value in values.items():
                conn.execute(delete(shelf_info).where(shelf_info.c.key == key))
                if value is not None:
                    conn.execute(insert(shelf_info).values(key=key, value=value))
    finally:
        engine.dispose()


def opens_refused(folder: Path, error: type[Exception], *phrases: str) -> None:
    """Every way of opening ``folder`` is refused with ``error`` naming ``phrases``."""
    for opening in (
        lambda: labshelf.open(folder),
        lambda: labshelf.open(folder, mode="r"),
        lambda: labshelf.open(inputs=[folder]),
    ):
        with pytest.raises(error) as info:
            opening()
        message = str(info.value)
        assert "\n" not in message
        for phrase in phrases:
            assert phrase in message, message


def pg_engine() -> Any:
    return create_engine(require_postgres().replace("postgresql://", "postgresql+psycopg://", 1))


def pwned() -> set[str]:
    """Schemas and tables whose names say an injected statement ran (read on a fresh connection).

    Only these are compared: other test sessions may create schemas in the
    same database at the same time.
    """
    engine = pg_engine()
    try:
        with engine.connect() as conn:
            return set(
                conn.scalars(
                    text(
                        "SELECT nspname FROM pg_namespace WHERE nspname ILIKE '%pwn%' "
                        "UNION SELECT schemaname || '.' || tablename FROM pg_tables WHERE tablename ILIKE '%pwn%'"
                    )
                )
            )
    finally:
        engine.dispose()


def schema_exists(name: str) -> bool:
    engine = pg_engine()
    try:
        with engine.connect() as conn:
            return bool(conn.scalar(text("SELECT count(*) FROM pg_namespace WHERE nspname = :n"), {"n": name}))
    finally:
        engine.dispose()


# -- the marker ----------------------------------------------------------------------------------

REGISTRY_ELSEWHERE = [
    "../sandbox/victim.shelf/registry.sqlite3",
    "{sandbox}/victim.shelf/registry.sqlite3",
    "data/../registry.sqlite3",
    "./registry.sqlite3",
    "registry.sqlite3/",
    "",
    "sqlite:///{sandbox}/victim.shelf/registry.sqlite3",
    "file:{sandbox}/victim.shelf/registry.sqlite3?mode=rw",
    7,
    None,
    ["registry.sqlite3"],
]


@pytest.mark.parametrize("registry", REGISTRY_ELSEWHERE, ids=lambda r: repr(r)[:30])
def test_a_marker_cannot_point_at_another_registry(
    backend: str, registry: Any, tmp_path: Path, request: pytest.FixtureRequest, sandbox: Path
) -> None:
    make_shelf(backend, tmp_path, request).close()
    folder = tmp_path / "test.shelf"
    doc = read_marker(folder)
    doc["registry"] = registry.format(sandbox=sandbox) if isinstance(registry, str) else registry
    write_marker(folder, doc)
    opens_refused(folder, NotAShelf, "not a valid labshelf marker", "'registry'", "'registry.sqlite3'", "postgresql://")


BAD_FIELDS = [
    ("durable", "yes", "true or false"),
    ("durable", 1, "true or false"),
    ("version", "1", "the integer 1"),
    ("version", True, "the integer 1"),
    ("version", 0, "the integer 1"),
    ("version", 1.0, "the integer 1"),
    ("version", 2, "newer labshelf"),
    ("shelf_id", "../../victim", "hexadecimal"),
    ("shelf_id", 12, "hexadecimal"),
]


@pytest.mark.parametrize(("field", "value", "allowed"), BAD_FIELDS, ids=lambda v: repr(v)[:20])
def test_every_marker_field_is_checked(
    backend: str, field: str, value: Any, allowed: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    make_shelf(backend, tmp_path, request).close()
    folder = tmp_path / "test.shelf"
    before = snapshot(folder)
    original = (folder / MARKER).read_text()
    write_marker(folder, {**read_marker(folder), field: value})
    opens_refused(folder, NotAShelf, allowed)
    (folder / MARKER).write_text(original)
    assert snapshot(folder) == before
    with labshelf.open(folder) as shelf:  # the untouched marker still opens
        assert shelf.info()["runs"] == 0


HOSTILE_URLS = [
    ("postgresql://postgres@127.0.0.1:5432/test?passfile=/etc/shadow", "passfile"),
    ("postgresql://postgres@127.0.0.1:5432/test?sslkey=/root/.ssh/id_rsa&sslmode=require", "sslkey"),
    ("postgresql://postgres@127.0.0.1:5432/test?service=victim", "service"),
    ("postgresql+asyncpg://postgres@127.0.0.1:5432/test", "driver"),
    ("postgresql://[::1:5432/test", "not a valid"),
]


@pytest.mark.parametrize(("url", "phrase"), HOSTILE_URLS, ids=lambda v: v[:40])
def test_a_marker_url_cannot_make_the_driver_read_local_files(
    backend: str, url: str, phrase: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    make_shelf(backend, tmp_path, request).close()
    folder = tmp_path / "test.shelf"
    write_marker(folder, {**read_marker(folder), "registry": url, "schema": None})
    opens_refused(folder, NotAShelf, "'registry'", phrase)


def test_a_schema_in_a_marker_is_checked(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    make_shelf(backend, tmp_path, request).close()
    folder = tmp_path / "test.shelf"
    doc = read_marker(folder)
    if backend == "sqlite":
        write_marker(folder, {**doc, "schema": "lab"})
        opens_refused(folder, NotAShelf, "'schema'", "only a shelf with a postgresql:// registry")
        return
    for schema in ('x"; CREATE TABLE pwned_marker (i int); --', "a b", 5, ""):
        write_marker(folder, {**doc, "schema": schema})
        opens_refused(folder, NotAShelf, "'schema'", "plain identifier")
    assert pwned() == set()


@pytest.mark.parametrize("size", [64 * 1024 + 1, 10_000_000])
def test_a_huge_marker_is_not_read_whole(tmp_path: Path, size: int) -> None:
    folder = tmp_path / "test.shelf"
    labshelf.create(folder).close()
    doc = read_marker(folder)
    (folder / MARKER).write_text(json.dumps({**doc, "padding": "x" * size}))
    opens_refused(folder, NotAShelf, "damaged", "larger than")


@pytest.mark.parametrize(
    "name", ["registry.sqlite3", "registry.sqlite3-wal", "registry.sqlite3-shm", "registry.sqlite3-journal", MARKER]
)
def test_links_in_place_of_the_registry_files_are_refused(tmp_path: Path, sandbox: Path, name: str) -> None:
    folder = tmp_path / "test.shelf"
    with labshelf.create(folder) as shelf, shelf.new_run() as run:
        run.put("x", 1)
    victim = sandbox / "victim.shelf"
    link = folder / name
    link.unlink(missing_ok=True)
    if name in ("registry.sqlite3", MARKER):
        link.symlink_to(victim / name)  # the victim's own, perfectly valid files
    else:
        link.symlink_to(sandbox / f"planted{name[-4:]}")  # SQLite would create it there
    opens_refused(folder, NotAShelf, "symbolic link")
    assert not (sandbox / f"planted{name[-4:]}").exists()


def test_a_shelf_reached_through_a_linked_folder_opens(tmp_path: Path) -> None:
    # The folder the user names may be a link (a mounted archive, a
    # convenience link): only links inside the shelf are refused.
    real = tmp_path / "disk" / "real.shelf"
    with labshelf.create(real) as shelf, shelf.new_run() as run:
        run.put("x", np.arange(5000.0))
    (tmp_path / "lab.shelf").symlink_to(real)
    with labshelf.open(tmp_path / "lab.shelf", mode="r") as shelf:
        np.testing.assert_array_equal(shelf.get("x", run=1), np.arange(5000.0))


# -- the data folder ---------------------------------------------------------------------------


def pg_shelf(tmp_path: Path, request: pytest.FixtureRequest, name: str) -> tuple[Path, str]:
    """A closed PostgreSQL shelf: (data folder, schema)."""
    make_shelf("postgres", tmp_path, request, name).close()
    folder = tmp_path / name
    return folder, read_marker(folder)["schema"]


def test_an_embedded_shelf_is_its_own_data_folder(tmp_path: Path, sandbox: Path) -> None:
    folder = tmp_path / "test.shelf"
    labshelf.create(folder).close()
    with pytest.raises(ShelfError, match="its own data folder"):
        labshelf.open(folder, root=sandbox)
    with pytest.raises(ShelfError, match="its own data folder"):
        labshelf.open(inputs=[labshelf.repo(folder, root=sandbox)])
    with pytest.raises(ShelfError, match="only for PostgreSQL"):
        labshelf.open(folder, schema="lab")


@pytest.mark.postgres
def test_a_url_never_takes_the_data_folder_from_the_registry(
    tmp_path: Path, request: pytest.FixtureRequest, sandbox: Path
) -> None:
    folder, schema = pg_shelf(tmp_path, request, "pg.shelf")
    # Someone with access to the shared registry points its root elsewhere.
    edit_info(folder, root=str(sandbox))
    with pytest.raises(ShelfError, match="needs root=") as refused:
        labshelf.open(POSTGRES_URL, schema=schema)
    assert str(sandbox) in str(refused.value)  # shown as a hint, never used
    with pytest.raises(ShelfError, match="needs root="):
        labshelf.open(inputs=[labshelf.repo(POSTGRES_URL, schema=schema)])
    # Upgrading touches the registry only: the URL alone is enough.
    assert labshelf.upgrade(POSTGRES_URL, schema=schema) == (SCHEMA_VERSION, SCHEMA_VERSION)
    for opened in (labshelf.open(folder), labshelf.open(POSTGRES_URL, schema=schema, root=folder)):
        with opened, opened.new_run() as run:
            run.put("big", np.arange(5000.0))
            assert opened.root == folder.resolve()
    assert len(list((folder / "data").rglob("*.h5"))) == 2


@pytest.mark.postgres
def test_the_data_folder_of_another_shelf_is_refused(
    tmp_path: Path, request: pytest.FixtureRequest, sandbox: Path
) -> None:
    mine, my_schema = pg_shelf(tmp_path, request, "mine.shelf")
    theirs, _their_schema = pg_shelf(tmp_path, request, "theirs.shelf")
    with labshelf.open(theirs) as shelf, shelf.new_run() as run:
        run.put("big", np.arange(5000.0))
    their_files = snapshot(theirs)
    for mode in (None, "r"):
        with pytest.raises(NotAShelf, match="is not the data folder") as refused:
            labshelf.open(POSTGRES_URL, schema=my_schema, root=theirs, mode=mode)
        assert "names shelf" in str(refused.value)
    # A folder whose marker was edited to lead to my registry.
    planted = tmp_path / "planted.shelf"
    shutil.copytree(theirs, planted)
    doc = read_marker(planted)
    write_marker(planted, {**doc, "schema": my_schema})
    opens_refused(planted, NotAShelf, "is not the data folder", my_schema)
    write_marker(planted, {k: v for k, v in doc.items() if k != "shelf_id"} | {"schema": my_schema})
    opens_refused(planted, NotAShelf, "is not the data folder", "(none)")
    with labshelf.open(mine) as shelf:
        assert shelf.info()["runs"] == 0  # nothing reached my registry
    assert snapshot(theirs) == their_files


@pytest.mark.postgres
def test_shelves_made_before_shelf_ids_still_open(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    folder, schema = pg_shelf(tmp_path, request, "old.shelf")
    other, _other_schema = pg_shelf(tmp_path, request, "other.shelf")
    for path in (folder, other):
        edit_info(path, shelf_id=None)
        write_marker(path, {k: v for k, v in read_marker(path).items() if k != "shelf_id"})
    with labshelf.open(folder) as shelf, shelf.new_run() as run:
        run.put("big", np.arange(5000.0))
    with labshelf.open(POSTGRES_URL, schema=schema, root=folder, mode="r") as shelf:
        np.testing.assert_array_equal(shelf.get("big", run=1), np.arange(5000.0))
    # Without ids, a data folder is this shelf's only if its marker points here.
    with pytest.raises(NotAShelf, match="points at"):
        labshelf.open(POSTGRES_URL, schema=schema, root=other)
    # An id on one side only is no match.
    edit_info(folder, shelf_id="0" * 32)
    opens_refused(folder, NotAShelf, "is not the data folder")


@pytest.mark.postgres
def test_a_postgresql_root_given_to_the_cli(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    folder, schema = pg_shelf(tmp_path, request, "pg.shelf")
    common = ("--rate", "20", "--image", "0", "--run-length", "0.3", "--runs", "1")
    refused = labshelf_cli("simulate", POSTGRES_URL, "--schema", schema, *common)
    assert refused.returncode == 1 and "root=" in refused.stderr and "Traceback" not in refused.stderr
    ran = labshelf_cli("simulate", POSTGRES_URL, "--schema", schema, "--root", str(folder), *common)
    assert ran.returncode == 0, ran.stderr
    with labshelf.open(folder) as shelf:
        assert shelf.info()["runs"] == 1


# -- recorded parents ----------------------------------------------------------------------------


def test_recorded_parents_are_opened_read_only(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, sandbox: Path
) -> None:
    make_shelf(backend, tmp_path, request, "child.shelf").close()
    child = tmp_path / "child.shelf"
    # A parent names another shelf to read, wherever it is: edited to point
    # at the sandbox's shelf, it is read, and never written.
    edit_info(child, parents=json.dumps([{"path": str(sandbox / "victim.shelf")}]))
    with labshelf.open(child) as view:
        assert view.get("secret") == 42
        assert [repo.mode for repo in view._repos] == ["rw", "r"]
        with view.new_run() as run:
            run.put("mine", np.arange(5000.0))
        assert view.find("mine").repository == view.where


DAMAGED_PARENTS = [
    ("not json", "damaged parents"),
    ('{"path": "x"}', "not a list"),
    ('[{"path": 5}]', "not a repository entry"),
    ('[{"path": "x", "tag": 3}]', "not text"),
    ('[{"path": "x", "code": "import os"}]', "not a repository entry"),
    ('[{"path": "postgresql://postgres@127.0.0.1:5432/test?passfile=/etc/shadow"}]', "passfile"),
    ('[{"path": "postgresql://postgres@127.0.0.1:5432/test", "schema": "x\\"; DROP TABLE runs; --"}]', "schema"),
    ('[{"path": "sqlite:////etc/passwd"}]', "neither a shelf folder path"),
]


@pytest.mark.parametrize(("parents", "phrase"), DAMAGED_PARENTS, ids=lambda v: v[:25])
def test_damaged_recorded_parents_are_refused(
    backend: str, parents: str, phrase: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    make_shelf(backend, tmp_path, request, "child.shelf").close()
    child = tmp_path / "child.shelf"
    edit_info(child, parents=parents)
    with pytest.raises(ShelfError) as refused:
        labshelf.open(child)
    assert phrase in str(refused.value)
    edit_info(child, parents=None)
    with labshelf.open(child) as shelf:  # the shelf itself was never harmed
        assert shelf.info()["runs"] == 0


@pytest.mark.postgres
def test_a_postgresql_parent_needs_its_own_data_folder(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    parent, schema = pg_shelf(tmp_path, request, "parent.shelf")
    other, _other_schema = pg_shelf(tmp_path, request, "other.shelf")
    with labshelf.open(parent) as shelf, shelf.new_run() as run:
        run.put("calib", np.arange(5000.0))
    child = tmp_path / "child.shelf"
    labshelf.create(child).close()
    spec = labshelf.repo(POSTGRES_URL, schema=schema, root=parent)
    with labshelf.open(inputs=[spec], output=child) as view:
        np.testing.assert_array_equal(view.get("calib"), np.arange(5000.0))
    with labshelf.open(child) as alone:  # the recorded parent, with its data folder
        np.testing.assert_array_equal(alone.get("calib"), np.arange(5000.0))
        assert [repo.mode for repo in alone._repos] == ["rw", "r"]
    edit_info(child, parents=json.dumps([{"path": POSTGRES_URL, "schema": schema, "root": str(other)}]))
    with pytest.raises(NotAShelf, match="is not the data folder"):
        labshelf.open(child)
    edit_info(child, parents=json.dumps([{"path": POSTGRES_URL, "schema": schema}]))
    with pytest.raises(ShelfError, match="needs root="):
        labshelf.open(child)


# -- schema names ------------------------------------------------------------------------------

INJECTIONS = [
    'x"; CREATE TABLE pwned_a (i int); --',
    "x'; CREATE TABLE pwned_b (i int); --",
    'x" CASCADE; CREATE SCHEMA pwned_c; --',
    "pwned_d; CREATE TABLE pwned_d (i int)",
    "pwned e",
    "pwned\x00f",
    "1pwned",
    "pwned-g",
    "",
    "pg_pwned",
    "information_schema",
    "p" + "w" * 60,
    "pwnéd",
]


@pytest.mark.postgres
@pytest.mark.parametrize("schema", INJECTIONS, ids=lambda s: repr(s)[:24])
def test_a_schema_name_is_checked_before_any_sql(schema: str, tmp_path: Path) -> None:
    url = require_postgres()
    assert pwned() == set()
    root = tmp_path / "new" / "root"
    attempts = [
        lambda: labshelf.create(url, root=root, schema=schema),
        lambda: labshelf.open(url, schema=schema, root=tmp_path),
        lambda: labshelf.open(url, schema=schema),
        lambda: labshelf.upgrade(url, schema=schema),
        lambda: labshelf.repo(url, schema=schema),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidName, match="not allowed") as refused:
            attempt()
        assert isinstance(refused.value, ValueError)
    assert not (tmp_path / "new").exists()
    assert pwned() == set() and not schema_exists("x")


@pytest.mark.postgres
def test_the_cli_checks_a_schema_name_before_any_sql(tmp_path: Path) -> None:
    url = require_postgres()
    schema = 'x"; CREATE TABLE pwned_cli (i int); --'
    for args in (
        ("create", url, "--root", str(tmp_path / "root"), "--schema", schema),
        ("upgrade", url, "--schema", schema),
        ("simulate", url, "--root", str(tmp_path / "root"), "--schema", schema, "--create", "--runs", "1"),
    ):
        result = labshelf_cli(*args)
        assert result.returncode == 1, result
        assert "not allowed" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "root").exists()
    assert pwned() == set()


@pytest.mark.postgres
def test_a_schema_name_is_quoted(tmp_path: Path, pg_schemas: PostgresSchemas) -> None:
    # Quoted, a mixed-case name keeps its case (unquoted it would fold).
    schema = "Lab_" + pg_schemas.new()
    pg_schemas.made.append(schema)
    with labshelf.create(pg_schemas.url, root=tmp_path / "pg.shelf", schema=schema) as shelf:
        with shelf.new_run() as run:
            run.put("x", np.arange(5000.0))
    with labshelf.open(tmp_path / "pg.shelf", mode="r") as shelf:
        np.testing.assert_array_equal(shelf.get("x", run=1), np.arange(5000.0))
    assert schema_exists(schema) and not schema_exists(schema.lower())


def test_schema_is_only_for_postgresql(tmp_path: Path) -> None:
    with pytest.raises(ShelfError, match="only for PostgreSQL"):
        labshelf.create(tmp_path / "s.shelf", schema="lab")
    assert not (tmp_path / "s.shelf").exists()


# -- refused creates leave nothing -----------------------------------------------------------------


@pytest.mark.parametrize("target", ["sqlite:///{tmp}/x.shelf", "sqlite:x.shelf", "file:x.shelf", "http://x/y", "mysql://u@h/db"])
def test_urls_that_are_not_postgresql_are_refused(tmp_path: Path, target: str) -> None:
    target = target.format(tmp=tmp_path)
    for attempt in (lambda: labshelf.create(target), lambda: labshelf.open(target), lambda: labshelf.upgrade(target)):
        with pytest.raises(ShelfError, match="neither a shelf folder path nor a postgresql:// URL"):
            attempt()
    result = labshelf_cli("create", target, cwd=tmp_path)
    assert result.returncode == 1 and "neither a shelf folder path" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == []


def test_a_create_where_no_folder_can_be_made(tmp_path: Path) -> None:
    for target in ("/proc/labshelf-test.shelf", "/proc/self/x/y.shelf", str(tmp_path / ("a" * 300))):
        with pytest.raises(ShelfError, match="cannot create"):
            labshelf.create(target)
        result = labshelf_cli("create", target)
        assert result.returncode == 1 and "cannot create" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(os.listdir(tmp_path)) == []


def test_a_failed_create_removes_the_folders_it_made(tmp_path: Path) -> None:
    # SQLite refuses paths longer than 512 bytes, after the folders exist.
    existing = tmp_path / "existing"
    existing.mkdir()
    deep = existing / ("a" * 200) / ("b" * 200) / ("c" * 200)
    with pytest.raises(ShelfError, match="cannot create a shelf"):
        labshelf.create(deep)
    assert existing.is_dir() and sorted(os.listdir(existing)) == []
    # A folder that was there (empty) before stays, and stays empty.
    (existing / ("a" * 200)).mkdir()
    with pytest.raises(ShelfError, match="cannot create a shelf"):
        labshelf.create(existing / ("a" * 200) / ("b" * 200) / ("c" * 200))
    assert sorted(os.listdir(existing)) == ["a" * 200]
    assert sorted(os.listdir(existing / ("a" * 200))) == []


def test_a_create_on_a_full_disk_leaves_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    schemas: PostgresSchemas | None = request.getfixturevalue("pg_schemas") if backend == "postgres" else None
    schema = None if schemas is None else schemas.new()
    with full_disk(tmp_path / "disk") as disk:
        before = sorted(os.listdir(disk))
        with pytest.raises(ShelfError, match="cannot create a shelf|registry error"):
            if schemas is None:
                labshelf.create(disk / "new" / "full.shelf")
            else:
                labshelf.create(schemas.url, root=disk / "new" / "full.shelf", schema=schema)
        assert sorted(os.listdir(disk)) == before
    if schema is not None:
        assert not schema_exists(schema)  # the schema it made was dropped again


@pytest.mark.postgres
def test_a_refused_postgresql_create_leaves_nothing(
    tmp_path: Path, request: pytest.FixtureRequest, pg_schemas: PostgresSchemas
) -> None:
    folder, schema = pg_shelf(tmp_path, request, "there.shelf")
    # The schema holds a shelf already: the new data folder goes away, the schema stays.
    with pytest.raises(ShelfExists, match="already holds a labshelf registry"):
        labshelf.create(pg_schemas.url, root=tmp_path / "new" / "again.shelf", schema=schema)
    assert not (tmp_path / "new").exists()
    # No server there: an empty folder that existed stays, empty.
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "empty", tmp_path / "new" / "x.shelf"):
        with pytest.raises(ShelfError, match="cannot create a shelf") as refused:
            labshelf.create("postgresql://postgres@127.0.0.1:1/test", root=root, schema="lab")
        assert "\n" not in str(refused.value)
    assert sorted(os.listdir(tmp_path / "empty")) == [] and not (tmp_path / "new").exists()
    assert schema_exists(schema)
    with labshelf.open(folder) as shelf:
        assert shelf.info()["runs"] == 0


NOT_SHELVES = ["{tmp}/missing", "{tmp}", "{tmp}/notes.txt", "{tmp}/damaged", "{tmp}/binary", "sqlite:///x"]


@pytest.mark.parametrize("target", NOT_SHELVES)
def test_info_on_what_is_not_a_shelf_is_one_line(tmp_path: Path, target: str) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / MARKER).write_text("{not json")
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / MARKER).write_bytes(b"\xff\xfe\x00garbage")
    result = labshelf_cli("info", target.format(tmp=tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("labshelf info: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
