"""Reading never writes, and shelves in read-only places can be read.

Read-only places are real (a read-only mount as root, missing write bits
otherwise: see ``_mounts``).  "Unchanged" means the same entries with the
same bytes (``_mounts.snapshot``), checked after every shelf is closed.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import labshelf
from _live import Collector, wait_for
from _mounts import make_read_only, snapshot, writable_place
from _shelves import make_shelf
from labshelf.registry import migrate

DATA = Path(__file__).with_name("data")
#: What an embedded shelf holds once every connection is closed.
CLOSED_SHELF = {"labshelf.json", "registry.sqlite3", "data", "tmp"}


def labshelf_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labshelf.cli", *args], capture_output=True, text=True, timeout=300)


def fill(shelf: labshelf.Shelf) -> None:
    """Two runs: inline values, a file-backed array, a string; then close the shelf."""
    with shelf:
        with shelf.new_run("first") as run:
            run.put("temperature", 301.5)
            run.put("scan", np.arange(5000.0))  # large enough for a data file
        with shelf.new_run("second") as run:
            run.put("temperature", 302.0)
            run.put("label", "second")


def top_level(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# -- read-only places ----------------------------------------------------------------------------


def test_a_shelf_in_a_read_only_place_is_read(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with writable_place(tmp_path / "place") as place:
        fill(make_shelf(backend, place, request, "archive.shelf"))
        path = place / "archive.shelf"
        make_read_only(place)
        before = snapshot(place)
        # Without a mode, a shelf that cannot be written opens read-only.
        with labshelf.open(path) as shelf:
            assert shelf.mode == "r"
            assert shelf.get("temperature", run=1) == 301.5
            np.testing.assert_array_equal(shelf.get("scan", run=1), np.arange(5000.0))
            table = shelf.runs.to_pandas()
            assert list(table.index) == [1, 2]
            assert list(table["temperature"]) == [301.5, 302.0]
            with pytest.raises(labshelf.ReadOnlyShelf):
                shelf.new_run()
        with labshelf.open(path, mode="r") as shelf:
            assert shelf.get("label", run=2) == "second"
            assert shelf.runs.query("temperature > 301.7").numbers() == [2]
        with pytest.raises(labshelf.ReadOnlyShelf, match="mode='r'"):
            labshelf.open(path, mode="rw")
        info = labshelf_cli("info", str(path))
        assert info.returncode == 0, info.stderr
        assert "runs: 2" in info.stdout and "mode: r" in info.stdout
        listing = labshelf_cli("ls", str(path))
        assert listing.returncode == 0, listing.stderr
        assert "301.5" in listing.stdout and "[2 runs" in listing.stdout
        datasets = labshelf_cli("ls", str(path), "--run", "1")
        assert datasets.returncode == 0 and "scan" in datasets.stdout and "5000" in datasets.stdout
        upgraded = labshelf_cli("upgrade", str(path))
        assert upgraded.returncode == 0 and "up to date" in upgraded.stdout, upgraded.stderr
        assert snapshot(place) == before


def test_an_output_in_a_read_only_place_is_refused(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = tmp_path / "source.shelf"
    fill(labshelf.create(source))
    with writable_place(tmp_path / "place") as place:
        fill(make_shelf(backend, place, request, "archive.shelf"))
        make_read_only(place)
        before = snapshot(place)
        with pytest.raises(labshelf.ReadOnlyShelf, match="an output"):
            labshelf.open(inputs=[source], output=place / "archive.shelf")
        # As an input it is read like any other.
        with labshelf.open(inputs=[place / "archive.shelf", source]) as view:
            assert view.get("label") == "second"
        assert snapshot(place) == before


def test_a_read_only_copy_of_a_shelf_in_use(tmp_path: Path) -> None:
    # An archive copied while a writer was connected: its last transactions
    # are still in registry.sqlite3-wal.
    source = labshelf.create(tmp_path / "live.shelf")
    for value in (1.0, 2.0, 3.0):
        with source.new_run() as run:
            run.put("x", value)
    wal = source.root / "registry.sqlite3-wal"
    assert wal.stat().st_size > 0
    with writable_place(tmp_path / "place") as place:
        for name, files in (
            ("with-shm", ("registry.sqlite3", "registry.sqlite3-wal", "registry.sqlite3-shm")),
            ("wal-only", ("registry.sqlite3", "registry.sqlite3-wal")),
        ):
            (place / name).mkdir()
            for file in ("labshelf.json", *files):
                shutil.copy(source.root / file, place / name / file)
        source.close()
        make_read_only(place)
        before = snapshot(place)
        with labshelf.open(place / "with-shm") as copy:
            assert copy.mode == "r"
            # Every committed run, those still in the -wal included.
            assert [copy.get("x", run=n) for n in (1, 2, 3)] == [1.0, 2.0, 3.0]
        # Without the -shm SQLite cannot read the -wal, and skipping it would
        # silently lose committed runs: a clear refusal instead.
        with pytest.raises(labshelf.NotAShelf, match="copy the shelf to a writable place"):
            labshelf.open(place / "wal-only", mode="r")
        assert snapshot(place) == before


# -- reading leaves no trace ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["mode_r", "configured_read_only", "input", "inputs_only_view"])
def test_reading_leaves_the_shelf_as_it_was(
    backend: str, how: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fill(make_shelf(backend, tmp_path, request, "read.shelf"))
    folder = tmp_path / "read.shelf"
    if how == "configured_read_only":
        with labshelf.open(folder) as shelf:
            shelf.set_repo_mode("r")
    output = tmp_path / "out.shelf"
    labshelf.create(output).close()
    before = snapshot(folder)
    got = Collector()
    if how in ("mode_r", "configured_read_only"):
        reading = labshelf.open(folder, mode="r" if how == "mode_r" else None)
        assert reading.mode == "r"
    elif how == "input":
        reading = labshelf.open(inputs=[folder], output=output)
    else:
        reading = labshelf.open(inputs=[folder, output])
    with reading:
        assert reading.get("label") == "second"
        np.testing.assert_array_equal(reading.get("scan", run=1), np.arange(5000.0))
        if how != "input":  # a view's own runs are the output's
            assert list(reading.runs.to_pandas()["temperature"]) == [301.5, 302.0]
            with reading.subscribe("temperature", got, run=2):
                wait_for(lambda: got.last("temperature") is not None)
    assert snapshot(folder) == before


def test_a_reader_follows_writes_of_other_processes(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Reading without a trace must not cost live updates: a mode="r" shelf
    # still sees what another process commits after it opened.
    fill(make_shelf(backend, tmp_path, request, "live.shelf"))
    folder = tmp_path / "live.shelf"
    names = top_level(folder)
    got = Collector()
    code = "import sys, labshelf\nwith labshelf.open(sys.argv[1]) as s, s.new_run() as r:\n    r.put('temperature', 400.0)\n"
    with labshelf.open(folder, mode="r") as reader, reader.subscribe("temperature", got, run="latest"):
        wait_for(lambda: got.last("temperature") is not None)
        subprocess.run([sys.executable, "-c", code, str(folder)], check=True, timeout=120)
        wait_for(lambda: (u := got.last("temperature")) is not None and u.value == 400.0)
        assert reader.get("temperature", run=3) == 400.0
        assert reader.info()["runs"] == 3
    assert top_level(folder) == names


# -- a refused open changes nothing --------------------------------------------------------------


@pytest.mark.parametrize("mode", [None, "rw", "r"])
@pytest.mark.parametrize("version", migrate.KNOWN_VERSIONS[:-1])
def test_opening_an_old_schema_changes_nothing(tmp_path: Path, version: str, mode: str | None) -> None:
    path = tmp_path / f"schema-{version}.shelf"
    shutil.copytree(DATA / path.name, path)
    before = snapshot(path)
    with pytest.raises(labshelf.SchemaVersionError, match="labshelf upgrade"):
        labshelf.open(path, mode=mode)
    with pytest.raises(labshelf.SchemaVersionError):
        labshelf.open(inputs=[path])
    assert snapshot(path) == before
    # Still in its rollback-journal mode: refusing did not switch it to WAL.
    assert (path / "registry.sqlite3").read_bytes()[18:20] == b"\x01\x01"


@pytest.mark.parametrize("mode", [None, "rw", "r"])
def test_opening_a_newer_schema_changes_nothing(tmp_path: Path, mode: str | None) -> None:
    path = tmp_path / "new.shelf"
    fill(labshelf.create(path))
    with sqlite3.connect(path / "registry.sqlite3") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    db.close()
    before = snapshot(path)
    assert top_level(path) == CLOSED_SHELF
    with pytest.raises(labshelf.SchemaVersionError, match="newer labshelf"):
        labshelf.open(path, mode=mode)
    assert snapshot(path) == before


def test_a_refused_repository_mode_changes_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fill(make_shelf(backend, tmp_path, request, "frozen.shelf"))
    fill(make_shelf(backend, tmp_path, request, "drop.shelf"))
    frozen, drop = tmp_path / "frozen.shelf", tmp_path / "drop.shelf"
    with labshelf.open(frozen) as shelf:
        shelf.set_repo_mode("r")
    with labshelf.open(drop) as shelf:
        shelf.set_repo_mode("w")
    before = {path: snapshot(path) for path in (frozen, drop)}
    with pytest.raises(labshelf.ReadOnlyShelf, match="read-only by its configuration"):
        labshelf.open(frozen, mode="rw")
    with pytest.raises(labshelf.ShelfError, match="cannot be an input"):
        labshelf.open(inputs=[drop])
    assert {path: snapshot(path) for path in (frozen, drop)} == before
