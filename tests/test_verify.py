"""Integrity: damaged values are detected on read, and Shelf.verify / ``labshelf verify`` find what is wrong.

Files are damaged the way disks and people damage them: bytes garbled in the
data region of a file (found with h5py's ``id.get_offset()``), a 4 KiB block
zeroed or two blocks swapped, a file deleted, a Parquet page garbled.  A
registry loses rows the way SQLite loses them: a writer killed with SIGKILL
before its write-ahead log is checkpointed, then ``registry.sqlite3-wal``
deleted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import labshelf
from _tamper import data_file, registry_sql, snapshot
from labshelf.cli import main as cli
from labshelf.datastore import checksum


@dataclasses.dataclass
class Calibration:
    gain: float
    offsets: np.ndarray


def fill(shelf: labshelf.Shelf, runs: int = 2) -> None:
    """Runs holding every kind of value, inline and in files."""
    rng = np.random.default_rng(3)
    for number in range(runs):
        with shelf.new_run(f"run {number}") as run:
            run.put("scalar", 1.5 + number)
            run.put("small", np.arange(10))
            run.put("trace", rng.normal(size=20_000))
            run.put("camera/image", rng.integers(0, 4000, (128, 160)).astype(np.uint16))
            run.put("names", np.array(["a", "bé", "c"] * 3000, dtype=object))
            run.put("spectrum", xr.Dataset({"signal": ("energy", rng.normal(size=3000))}, coords={"energy": np.arange(3000.0)}))
            run.put("peaks", pd.DataFrame({"height": rng.normal(size=3000), "name": ["p"] * 3000}))
            run.put("calib", Calibration(2.5, np.arange(3000.0)))
            run.put("grown", np.zeros((3000, 2)))
            run.append("grown", np.ones((3000, 2)))


def garble(path: Path, name: str, at: int = 800, data: bytes = b"\x13\x37\xbe\xef") -> None:
    """Overwrite bytes in the data region of dataset ``name`` of an HDF5 file."""
    with h5py.File(path, "r") as f:
        offset = f[name].id.get_offset()
    assert offset is not None, "the dataset is not stored contiguously"
    with open(path, "r+b") as fh:
        fh.seek(offset + at)
        fh.write(data)


# -- detection on read ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    ["garbled bytes", "one bit flipped", "a block zeroed", "two blocks swapped"],
)
def test_damaged_array_values_are_refused_on_read(shelf: labshelf.Shelf, damage: str) -> None:
    values = np.random.default_rng(1).normal(size=(64, 512))  # 256 KiB: 64 blocks of 4 KiB
    with shelf.new_run() as run:
        run.put("x", values)
        run.put("keep", values + 1)
    path = data_file(shelf, "x")
    if damage == "garbled bytes":
        garble(path, "x")
    elif damage == "one bit flipped":
        with h5py.File(path, "r") as f:
            offset = f["x"].id.get_offset()
        with open(path, "r+b") as fh:
            fh.seek(offset + 12345)
            byte = fh.read(1)[0]
            fh.seek(offset + 12345)
            fh.write(bytes([byte ^ 0x10]))
    elif damage == "a block zeroed":
        garble(path, "x", at=8192, data=bytes(4096))
    else:
        raw = bytearray(values.tobytes())
        raw[4096:8192], raw[16384:20480] = raw[16384:20480], raw[4096:8192]
        garble(path, "x", at=0, data=bytes(raw))
    with h5py.File(path, "r") as f:  # the damage is really there, and HDF5 alone does not see it
        assert not np.array_equal(f["x"][()], values)
    with pytest.raises(labshelf.CorruptDataset, match=r"dataset 'x' of run 1: .*do not match the checksum"):
        shelf.get("x", run=1)
    with pytest.raises(labshelf.CorruptDataset, match="do not match the checksum"):
        shelf.get("x", run=1, parameters={"slice": np.s_[:, :]})  # a slice of everything is a whole read
    np.testing.assert_array_equal(shelf.get("keep", run=1), values + 1)
    report = shelf.verify()
    assert [(p.kind, p.run, p.dataset, p.file) for p in report.problems] == [
        ("damaged", 1, "x", shelf.find("x", run=1).storage.files[0])
    ]
    assert "do not match the checksum" in str(report)


def test_a_damaged_segment_of_an_appended_array_is_refused(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("grown", np.zeros((3000, 2)))
        run.append("grown", np.ones((3000, 2)))
    assert len(shelf.find("grown", run=1).storage.files) == 2
    garble(data_file(shelf, "grown", index=1), "grown")
    with pytest.raises(labshelf.CorruptDataset, match="do not match the checksum"):
        shelf.get("grown", run=1)
    with pytest.raises(labshelf.CorruptDataset, match="do not match the checksum"):
        shelf.get("grown", run=1, parameters={"slice": np.s_[3000:]})  # the whole second segment
    np.testing.assert_array_equal(shelf.get("grown", run=1, parameters={"slice": np.s_[:3000]}), np.zeros((3000, 2)))
    assert [(p.kind, p.file) for p in shelf.verify().problems] == [("damaged", shelf.find("grown", run=1).storage.files[1])]


def test_damaged_images_strings_and_images_with_options_are_refused(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("camera/image", np.arange(128 * 160, dtype=np.uint16).reshape(128, 160))
        run.put("names", np.array(["first", "second"] * 2000, dtype=object))
        run.put("packed", np.arange(100_000.0).reshape(1000, 100), hdf5_options={"chunks": (100, 100), "compression": "gzip"})
    garble(data_file(shelf, "camera/image"), "camera/image")
    with pytest.raises(labshelf.CorruptDataset, match="do not match the checksum"):
        shelf.get("camera/image", run=1)
    with pytest.raises(labshelf.CorruptDataset, match="do not match the checksum"):
        shelf.get("camera/image", run=1, parameters={"downsample": 4})  # what a live preview reads
    with h5py.File(data_file(shelf, "names"), "r+") as f:  # variable-length strings live in the heap
        f["names"][0] = b"forged"
    with pytest.raises(labshelf.CorruptDataset, match="do not match the checksum"):
        shelf.get("names", run=1)
    with h5py.File(data_file(shelf, "packed"), "r+") as f:  # rewritten through HDF5: gzip cannot hide it
        f["packed"][5, 5] = -1.0
    with pytest.raises(labshelf.CorruptDataset, match="do not match the checksum"):
        shelf.get("packed", run=1)
    assert sorted(p.dataset for p in shelf.verify().problems) == ["camera/image", "names", "packed"]


def test_damaged_netcdf_and_parquet_values_are_refused(shelf: labshelf.Shelf) -> None:
    spectrum = xr.Dataset({"signal": ("energy", np.arange(5000.0))}, coords={"energy": np.arange(5000.0) / 10})
    frame = pd.DataFrame({"height": np.arange(5000.0)})
    with shelf.new_run() as run:
        run.put("spectrum", spectrum)
        run.put("peaks", frame, hdf5_options={"compression": "none"})
    with h5py.File(data_file(shelf, "spectrum"), "r") as f:
        signal = f["spectrum/signal"]
        assert signal.fletcher32
        offset, size = signal.id.get_chunk_info(0).byte_offset, signal.id.get_chunk_info(0).size
    with open(data_file(shelf, "spectrum"), "r+b") as fh:
        fh.seek(offset + size // 2)
        fh.write(b"\x13\x37")
    for target in ("spectrum", "spectrum.signal"):
        with pytest.raises(labshelf.CorruptDataset, match="spectrum"):
            shelf.get(target, run=1)
    path = data_file(shelf, "peaks")
    import pyarrow.parquet as pq

    column = pq.read_metadata(path).row_group(0).column(0)
    with open(path, "r+b") as fh:
        fh.seek(column.data_page_offset + column.total_compressed_size - 100)
        fh.write(b"\x13\x37\xbe\xef")
    for target in ("peaks", "peaks.columns.height"):
        with pytest.raises(labshelf.CorruptDataset, match="peaks"):
            shelf.get(target, run=1)
    assert sorted((p.kind, p.dataset) for p in shelf.verify().problems) == [("damaged", "peaks"), ("damaged", "spectrum")]


def test_files_written_without_checksums_still_read(shelf: labshelf.Shelf) -> None:
    """Shelves written before checksums existed: no attribute, no check, same values."""
    values = np.arange(5000.0)
    with shelf.new_run() as run:
        run.put("x", values)
    with h5py.File(data_file(shelf, "x"), "r+") as f:
        del f["x"].attrs[checksum.ATTR]
    np.testing.assert_array_equal(shelf.get("x", run=1), values)
    assert shelf.verify().ok


def test_a_damaged_checksum_record_is_a_damaged_file(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("x", np.arange(5000.0))
    with h5py.File(data_file(shelf, "x"), "r+") as f:
        f["x"].attrs[checksum.ATTR] = "not a number"
    with pytest.raises(labshelf.CorruptDataset, match="checksum record"):
        shelf.get("x", run=1)


def test_checksums_survive_the_values_put_returns(shelf: labshelf.Shelf) -> None:
    """Every stored dtype reads back unchanged with its checksum checked."""
    rng = np.random.default_rng(7)
    values = {
        "f8": rng.normal(size=(100, 33)),
        "big-endian": rng.normal(size=5000).astype(">f4"),
        "bool": rng.integers(0, 2, 20_000).astype(bool),
        "bytes": np.array([b"ab", b"c"] * 5000),
        "str": np.array(["ab", "ç"] * 5000),
        "datetime": np.arange(5000).astype("datetime64[s]"),
        "complex": rng.normal(size=3000) + 1j,
        "odd size": np.arange(4097, dtype=np.uint8),
        "empty": np.zeros((0, 5000)),
    }
    with shelf.new_run() as run:
        for name, value in values.items():
            run.put(name.replace(" ", "_"), value, hdf5_options={"compression": "gzip"} if name == "empty" else None)
    shelf.cache.clear()
    for name, value in values.items():
        np.testing.assert_array_equal(shelf.get(name.replace(" ", "_"), run=1), value)
    assert shelf.verify().ok


# -- Shelf.verify ---------------------------------------------------------------------------------------


def test_a_healthy_shelf_verifies_without_touching_a_file(shelf: labshelf.Shelf) -> None:
    fill(shelf)
    shelf.close()
    before = {name: snapshot(shelf.root / name) for name in ("data", "tmp")}
    marker = (shelf.root / "labshelf.json").read_bytes()
    with labshelf.open(shelf.root, mode="r") as again:
        report = again.verify()
        assert report.ok, str(report)
        assert (report.runs, report.datasets) == (2, 2 * 11)
        assert report.files == 2 * 8 and report.nbytes > 2 * 400_000
        assert str(report).startswith(f"verified {again.where}: 2 runs, 22 datasets, 16 files")
        assert str(report).endswith("no problems")
    assert {name: snapshot(shelf.root / name) for name in ("data", "tmp")} == before
    assert (shelf.root / "labshelf.json").read_bytes() == marker


def test_missing_files_and_damaged_rows_are_reported(shelf: labshelf.Shelf) -> None:
    fill(shelf)
    os.remove(data_file(shelf, "peaks", run=2))
    registry_sql(shelf, "UPDATE datasets SET inline = :inline WHERE run = 1 AND name = 'small'", {"inline": "{bad"})
    registry_sql(shelf, "UPDATE datasets SET location = :location WHERE run = 1 AND name = 'trace'", {"location": "xx"})
    registry_sql(shelf, "DELETE FROM datasets WHERE run = 2 AND name = 'calib.offsets'", {})
    report = shelf.verify()
    found = sorted((p.kind, p.run, p.dataset) for p in report.problems)
    assert found == [
        ("damaged", 1, "small"), ("damaged", 1, "trace"),
        ("missing", 2, "calib"), ("missing", 2, "peaks"),
        ("orphan", 1, None), ("orphan", 2, None),
    ], str(report)
    text = str(report)
    assert "dataset 'peaks' of run 2: its data file data/000002/peaks." in text and "is missing" in text
    assert "its component 'offsets' has no registry row" in text
    assert "no dataset refers to them" in text  # trace's and calib.offsets' files, now unreferenced
    assert not report.ok


def test_verify_limits_itself_to_some_runs(shelf: labshelf.Shelf) -> None:
    fill(shelf, runs=3)
    os.remove(data_file(shelf, "trace", run=1))
    os.remove(data_file(shelf, "trace", run=3))
    assert [p.run for p in shelf.verify().problems] == [1, 3]
    for runs in (2, [2], range(2, 3), "2", "2-2"):
        report = shelf.verify(runs)
        assert report.ok and report.runs == 1 and report.datasets == 11, runs
    assert [p.run for p in shelf.verify("1-2").problems] == [1]
    with pytest.raises(labshelf.InvalidOptions, match="runs"):
        shelf.verify("two")


def test_orphans_and_links_in_data_are_reported(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    with shelf.new_run() as run:
        run.put("x", np.arange(5000.0))
    (shelf.root / "tmp").mkdir(exist_ok=True)
    (shelf.root / "tmp" / "0123456789ab.h5").write_bytes(b"half written")
    (shelf.root / "tmp" / "ba9876543210.h5").write_bytes(b"being written now")  # fresh: not reported
    (shelf.root / "data" / "000001" / "stray.0123456789ab.h5").write_bytes(b"never committed")
    (shelf.root / "data" / "000001" / "elsewhere").symlink_to(tmp_path)
    old = 1_000_000_000.0  # long before the registry's last change: a crash, not a lost row
    os.utime(shelf.root / "data" / "000001" / "stray.0123456789ab.h5", (old, old))
    os.utime(shelf.root / "tmp" / "0123456789ab.h5", (old, old))
    report = shelf.verify()
    assert sorted((p.kind, p.file) for p in report.problems) == [
        ("link", "data/000001/elsewhere"),
        ("orphan", "data/000001/stray.0123456789ab.h5"),
        ("orphan", "tmp"),
    ], str(report)
    assert "crashed" in str(report)


_BUSY_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import labshelf

    shelf = labshelf.open(sys.argv[1])
    run = shelf.run(1)
    deadline = time.monotonic() + float(sys.argv[2])
    i = 0
    while time.monotonic() < deadline:
        run.put("x", np.arange(5000.0) + i)         # replaces: the old file goes
        run.put(f"new/{i}", np.arange(5000.0) - i)  # a new file, renamed then committed
        run.append("grown", np.ones((100, 2)))      # segments, merged now and then
        i += 1
    print(i, flush=True)
    """
)


def test_verify_while_another_process_writes(shelf: labshelf.Shelf) -> None:
    """Files replaced, added and merged meanwhile are not reported as problems."""
    run = shelf.new_run()
    run.put("grown", np.zeros((3000, 2)))
    writer = subprocess.Popen(
        [sys.executable, "-c", _BUSY_WRITER, str(shelf.root), "6"], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        reports = []
        while writer.poll() is None:
            reports.append(shelf.verify())
    finally:
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0 and int(out) > 10 and len(reports) >= 3
    assert all(r.ok for r in reports), "\n".join(str(r) for r in reports if not r.ok)
    assert shelf.verify().ok


def test_the_registry_check_runs_on_sqlite(sqlite_shelf: labshelf.Shelf) -> None:
    fill(sqlite_shelf, runs=1)
    assert sqlite_shelf.verify().registry_check == "quick_check ok"
    assert sqlite_shelf.verify(integrity_check=True).registry_check == "integrity_check ok"


def test_a_damaged_registry_page_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "damaged.shelf"
    with labshelf.create(path) as shelf:
        for _ in range(40):
            with shelf.new_run("x" * 200) as run:
                run.put("scalar", 1.0)
    database = path / "registry.sqlite3"
    raw = bytearray(database.read_bytes())
    page = int.from_bytes(raw[16:18], "big")
    # The last page belongs to a table or index written last, never read to open the shelf:
    # an invalid b-tree page type there.
    raw[len(raw) - page] = 0xFF
    database.write_bytes(bytes(raw))
    with labshelf.open(path, mode="r") as shelf:
        report = shelf.verify()
    assert report.registry_check == "quick_check failed" and not report.ok
    assert report.problems[0].kind == "registry" and "quick_check" in report.problems[0].message


# -- a lost write-ahead log ----------------------------------------------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import labshelf

    shelf = labshelf.open(sys.argv[1])
    run = shelf.run(1)
    run.put("late", np.arange(5000.0))
    with shelf.new_run("lost") as lost:
        lost.put("frame", np.arange(5000.0))
        lost.put("value", 3)
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_deleted_wal_is_reported_as_lost_rows(tmp_path: Path) -> None:
    path = tmp_path / "wal.shelf"
    with labshelf.create(path) as shelf:
        run = shelf.new_run("kept")
        run.put("early", np.arange(5000.0))
    # Closing checkpointed everything so far; the writer's commits stay in the WAL when it is killed.
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(path)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == -signal.SIGKILL and "committed" in done.stdout, done.stderr
    wal = path / "registry.sqlite3-wal"
    assert wal.stat().st_size > 0
    wal.unlink()
    with labshelf.open(path, mode="r") as shelf:
        assert [r.number for r in shelf] == [1] and [r.name for r in shelf.datasets(1)] == ["early"]
        report = shelf.verify()
    assert sorted((p.kind, p.run) for p in report.problems) == [("lost", 1), ("lost", 2)], str(report)
    text = str(report)
    assert "data/000002/ holds 1 file (data/000002/frame." in text and "which the registry does not know" in text
    assert "written after the registry's last recorded change" in text and "data/000001/late." in text
    assert text.count("registry.sqlite3-wal deleted") == 2


# -- labshelf verify ----------------------------------------------------------------------------------


def test_the_verify_command(sqlite_shelf: labshelf.Shelf, capsys: pytest.CaptureFixture[str]) -> None:
    fill(sqlite_shelf, runs=2)
    path = str(sqlite_shelf.root)
    assert cli(["verify", path]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"verified {path}: 2 runs, 22 datasets") and out.rstrip().endswith("no problems")
    os.remove(data_file(sqlite_shelf, "trace", run=2))
    assert cli(["verify", path]) == 1
    out = capsys.readouterr().out
    assert "1 problem\n  missing: dataset 'trace' of run 2" in out
    assert cli(["verify", path, "--runs", "1"]) == 0
    assert cli(["verify", path, "--runs", "1-2", "--full"]) == 1
    capsys.readouterr()
    for bad in (["verify"], ["verify", path, "--runs", "two"]):
        with pytest.raises(SystemExit) as exit_:
            cli(bad)
        assert exit_.value.code == 2
    assert "--runs" in capsys.readouterr().err
    assert cli(["verify", str(sqlite_shelf.root.parent / "nothing")]) == 1
    assert "labshelf verify: error:" in capsys.readouterr().err


def test_the_command_prints_json_free_text(sqlite_shelf: labshelf.Shelf, capsys: pytest.CaptureFixture[str]) -> None:
    """One line per problem, no traceback, whatever the damage."""
    fill(sqlite_shelf, runs=1)
    registry_sql(sqlite_shelf, "UPDATE datasets SET location = :l WHERE name = 'trace'", {"l": json.dumps(["labshelf.json"])})
    assert cli(["verify", str(sqlite_shelf.root)]) == 1
    out = capsys.readouterr().out
    assert "outside: dataset 'trace' of run 1:" in out and "Traceback" not in out
    assert all(line.startswith(("verified", "  ")) for line in out.splitlines())
