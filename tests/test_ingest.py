"""Ingest: existing files registered in place, read as they were, and only by users who chose them.

Source files are written with h5py, xarray (h5netcdf) and pyarrow as other
programs would; every test checks the source is never written (bytes and
modification time), and the hostile-shelf tests that nothing outside the
shelf is read for a user who did not confirm it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import labshelf
from _tamper import holds_secret, make_sandbox, registry_sql, snapshot
from labshelf.browse import Browser
from labshelf.datastore import ingested


def fingerprint(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


FRAMES = np.random.default_rng(7).random((12, 40, 48)).astype("f4")
IMAGE = (np.arange(96 * 80, dtype=np.uint16).reshape(96, 80) * 7) % 4096
SPECTRUM = xr.Dataset(
    {
        "signal": (("energy",), np.linspace(0, 1, 300) ** 2),
        "counts": (("energy",), np.arange(300, dtype="i4")),
    },
    coords={"energy": np.linspace(1.0, 30.0, 300)},
    attrs={"beamline": "P11"},
)
TABLE = pd.DataFrame(
    {
        "peak": np.arange(50.0) * 1.5,
        "height": np.arange(50, dtype="i8"),
        "label": [f"p{i}" for i in range(50)],
    }
)


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    """Files written by other programs: a NeXus-like HDF5 file, a NetCDF-4 file, a Parquet table."""
    folder = tmp_path / "beamtime"
    folder.mkdir()
    with h5py.File(folder / "frames.h5", "w") as f:
        f.create_dataset("entry/data/data", data=FRAMES, chunks=(1, 40, 48), compression="gzip")
        f["entry/instrument/detector/image"] = IMAGE
        f["entry/instrument/detector/image"].attrs["units"] = "counts"
        f["entry/title"] = b"a scan"
    SPECTRUM.to_netcdf(folder / "spectrum.nc", engine="h5netcdf")
    TABLE.to_parquet(folder / "peaks.parquet")
    return {
        "hdf5": folder / "frames.h5",
        "netcdf": folder / "spectrum.nc",
        "parquet": folder / "peaks.parquet",
    }


def untouched(sources: dict[str, Path]) -> dict[str, tuple[int, str]]:
    return {k: fingerprint(p) for k, p in sources.items()}


# -- what ingest registers and reads ------------------------------------------------------------------


@pytest.mark.parametrize("transfer", ["direct", "symlink", "copy"])
def test_an_hdf5_member_reads_exactly_as_the_source(
    shelf: labshelf.Shelf, sources: dict[str, Path], transfer: str
) -> None:
    before = untouched(sources)
    with shelf.new_run() as run:
        frames = run.ingest("detector/frames", sources["hdf5"], dataset="/entry/data/data", transfer=transfer)
        image = run.ingest(
            "detector/image", sources["hdf5"], dataset="entry/instrument/detector/image", transfer=transfer
        )
    assert (frames.kind, frames.shape, frames.dtype, frames.nbytes) == (
        "ndarray",
        (12, 40, 48),
        "float32",
        FRAMES.nbytes,
    )
    assert (image.kind, image.shape, image.dtype) == ("image", (96, 80), "uint16")
    for ref in (frames, image):  # a thumbnail (the first frame of a stack), made once from the file
        assert isinstance(ref.summary, bytes) and ref.summary.startswith(b"\x89PNG")
    got = shelf.get("detector/frames", run=1)
    assert got.dtype == FRAMES.dtype and np.array_equal(got, FRAMES)
    for selection in (np.s_[3], np.s_[2:9:3, ::-1, 5], np.s_[..., 7], np.s_[-1, None, 10:20]):
        part = shelf.get("detector/frames", run=1, parameters={"slice": selection})
        np.testing.assert_array_equal(part, FRAMES[selection])
    np.testing.assert_array_equal(shelf.get("detector/image", run=1), IMAGE)
    np.testing.assert_array_equal(
        shelf.get("detector/image", run=1, parameters={"downsample": 4}).shape, (24, 20)
    )
    assert shelf.get("detector/image.attrs", run=1) == {"units": "counts"}
    assert shelf.get("detector/image.thumbnail", run=1).shape[:2] == (96, 80)
    assert shelf.find("detector/frames", run=1).storage.ingested == str(sources["hdf5"].resolve())
    if transfer == "copy":  # an ordinary data file of the shelf, named by labshelf
        (relative,) = shelf.find("detector/frames", run=1).storage.files
        assert (shelf.root / relative).is_file() and not (shelf.root / relative).is_symlink()
    elif transfer == "symlink":
        (relative,) = shelf.find("detector/frames", run=1).storage.files
        assert os.readlink(shelf.root / relative) == str(sources["hdf5"].resolve())
    else:
        assert not (shelf.root / "data").exists() or not any((shelf.root / "data").rglob("*.h5"))
    assert shelf.verify().ok
    assert untouched(sources) == before


def test_a_whole_netcdf_file_and_a_parquet_table(shelf: labshelf.Shelf, sources: dict[str, Path]) -> None:
    before = untouched(sources)
    with shelf.new_run() as run:
        spectrum = run.ingest("spectrum", sources["netcdf"])
        peaks = run.ingest("peaks", sources["parquet"])
    assert (spectrum.kind, spectrum.dtype, spectrum.summary) == (
        "xarray",
        "Dataset",
        "Dataset: signal, counts",
    )
    assert (peaks.kind, peaks.shape, peaks.summary) == ("pandas", (50, 3), "DataFrame 50 rows x 3 columns")
    xr.testing.assert_identical(
        shelf.get("spectrum", run=1), xr.load_dataset(sources["netcdf"], engine="h5netcdf")
    )
    xr.testing.assert_identical(shelf.get("spectrum.signal", run=1), SPECTRUM["signal"])
    assert shelf.components("spectrum", run=1) == ["signal", "counts", "coords.energy", "attrs"]
    assert shelf.get("spectrum.attrs", run=1) == {"beamline": "P11"}
    pd.testing.assert_frame_equal(shelf.get("peaks", run=1), TABLE)
    pd.testing.assert_series_equal(shelf.get("peaks.columns.height", run=1), TABLE["height"])
    assert shelf.verify().ok
    assert untouched(sources) == before


def test_summaries_of_big_arrays_come_from_a_bounded_sample(
    shelf: labshelf.Shelf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingested, "SAMPLE_BYTES", 64 * 1024)
    monkeypatch.setattr(ingested, "THUMBNAIL_BYTES", 16 * 1024)
    values = np.random.default_rng(3).normal(5.0, 1.0, (20000, 10))
    with h5py.File(tmp_path / "big.h5", "w") as f:
        f["big"] = values
        f["picture"] = np.tile(np.arange(512, dtype="f4"), (512, 1))
    read: list[Any] = []
    original = h5py.Dataset.__getitem__

    def counting(self: h5py.Dataset, key: Any) -> Any:
        out = original(self, key)
        read.append(np.asarray(out).nbytes)
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    with shelf.new_run() as run:
        ref = run.ingest("big", tmp_path / "big.h5", dataset="big")
        picture = run.ingest("picture", tmp_path / "big.h5", dataset="picture")
    # Two samples for the means and one strided picture: never the whole 1.6 MB array, nor the 1 MB image.
    assert sum(read) <= 3 * 64 * 1024 < values.nbytes, read
    from sqlalchemy import select

    from labshelf.registry.schema import datasets

    with shelf._registry.db.read() as txn:
        text = txn.scalar(select(datasets.c.summary_text).where(datasets.c.name == "big"))
    assert ref.summary == pytest.approx(5.0, abs=0.1) and text == "20000x10 float64 (mean sampled)"
    assert isinstance(picture.summary, bytes)


# -- never written, never deleted ---------------------------------------------------------------------


@pytest.mark.parametrize("transfer", ["direct", "symlink"])
def test_delete_keeps_the_file_and_append_or_mutate_never_write_it(
    shelf: labshelf.Shelf, sources: dict[str, Path], transfer: str
) -> None:
    before = untouched(sources)
    run = shelf.new_run()
    ref = run.ingest("frames", sources["hdf5"], dataset="/entry/data/data", transfer=transfer)
    for call in (lambda: run.append("frames", FRAMES[:1]), lambda: run.mutate("frames", 0, FRAMES[1])):
        with pytest.raises(labshelf.UnsupportedValue, match="ingested file, which labshelf never writes to"):
            call()
    run.delete("frames")
    assert "frames" not in run
    for relative in ref.storage.files:  # the link goes, never what it points to
        assert not os.path.lexists(shelf.root / relative)
    run.ingest("frames", sources["hdf5"], dataset="/entry/data/data", transfer=transfer)
    run.put("frames", np.zeros(3))  # a put over it replaces the row only
    run.finish()
    assert untouched(sources) == before
    assert sources["hdf5"].exists() and shelf.verify().ok


# -- a file that changed or went ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["rewritten", "appended", "touched", "deleted", "swapped for a link"])
def test_a_changed_or_missing_file_is_a_clear_error_and_verify_lists_it(
    shelf: labshelf.Shelf, sources: dict[str, Path], tmp_path: Path, how: str
) -> None:
    sandbox = make_sandbox(tmp_path)
    with shelf.new_run() as run:
        run.ingest("frames", sources["hdf5"], dataset="/entry/data/data")
        run.put("keep", np.arange(5000.0))
    np.testing.assert_array_equal(
        shelf.get("frames", run=1, parameters={"slice": np.s_[0]}), FRAMES[0]
    )  # cached
    path = sources["hdf5"]
    if how == "rewritten":
        with h5py.File(path, "r+") as f:
            f["entry/data/data"][0] = 0
    elif how == "appended":
        with open(path, "ab") as f:
            f.write(b"\0" * 10)
    elif how == "touched":
        os.utime(path, ns=(0, 10**18))
    elif how == "deleted":
        path.unlink()
    else:
        path.unlink()
        path.symlink_to(sandbox / "secret.h5")
    kept = snapshot(sandbox)
    expected = (
        "is gone"
        if how == "deleted"
        else "symbolic link"
        if how == "swapped for a link"
        else "changed since it was ingested"
    )
    for call in (
        lambda: shelf.get("frames", run=1, parameters={"slice": np.s_[0]}),
        lambda: shelf.get("frames", run=1),
        lambda: Browser(shelf).preview("run/1/frames"),
    ):
        with pytest.raises(
            labshelf.IngestedFileChanged, match=rf"dataset 'frames' of run 1: .*{path}.*{expected}"
        ):
            call()
    report = shelf.verify()
    assert [(p.kind, p.dataset, p.file) for p in report.problems] == [
        ("changed", "frames", str(path.resolve()) if how != "swapped for a link" else str(path))
    ]
    np.testing.assert_array_equal(shelf.get("keep", run=1), np.arange(5000.0))
    assert snapshot(sandbox) == kept


# -- read-only inputs stay read-only ------------------------------------------------------------------------


def test_files_of_a_shelf_are_never_ingested(shelf: labshelf.Shelf, tmp_path: Path) -> None:
    other = labshelf.create(tmp_path / "other.shelf")
    with other.new_run() as run:
        run.put("x", np.arange(5000.0))
    other_file = other.root / other.find("x", run=1).storage.files[0]
    other.close()
    with shelf.new_run() as run:
        run.put("mine", np.arange(5000.0))
    own_file = shelf.root / shelf.find("mine", run=1).storage.files[0]
    link = tmp_path / "innocent.h5"
    link.symlink_to(other_file)
    run = shelf.new_run()
    for path, whose in (
        (other_file, "other.shelf's data/"),
        (link, "other.shelf's data/"),
        (own_file, "this shelf's data/"),
    ):
        with pytest.raises(labshelf.IngestError, match=rf"lies in .*{whose}"):
            run.ingest("taken", path, dataset="x")
    assert "taken" not in run and [r.name for r in shelf.datasets(2)] == []


# -- bad input -------------------------------------------------------------------------------------------


def test_bad_input_is_refused_with_what_is_allowed_and_nothing_stored(
    shelf: labshelf.Shelf, sources: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("not data\n")
    (tmp_path / "classic.nc").write_bytes(b"CDF\x01" + b"\0" * 100)
    run = shelf.new_run()
    run.ingest("taken", sources["parquet"])
    files_before = sorted(p.name for p in (shelf.root).rglob("*") if p.is_file() and "registry" not in p.name)
    cases: list[tuple[Any, type[BaseException], str]] = [
        (
            lambda: run.ingest("a", tmp_path / "missing.h5", dataset="x"),
            labshelf.IngestError,
            "there is no file",
        ),
        (lambda: run.ingest("a", tmp_path, dataset="x"), labshelf.IngestError, "not a regular file"),
        (
            lambda: run.ingest("a", sources["hdf5"], dataset="/entry/data/dat"),
            labshelf.IngestError,
            r"has no dataset '/entry/data/dat'.*top-level members: entry",
        ),
        (
            lambda: run.ingest("a", sources["hdf5"], dataset="/entry/data"),
            labshelf.IngestError,
            r"is a group, not a dataset.*holds: data",
        ),
        (
            lambda: run.ingest("a", sources["hdf5"], dataset="/entry/title"),
            labshelf.IngestError,
            "ingest takes numeric",
        ),
        (lambda: run.ingest("a", sources["hdf5"]), labshelf.IngestError, "cannot be read as a NetCDF-4 file"),
        (
            lambda: run.ingest("a", tmp_path / "notes.txt"),
            labshelf.IngestError,
            "neither HDF5 .* nor Parquet",
        ),
        (lambda: run.ingest("a", tmp_path / "classic.nc"), labshelf.IngestError, "NetCDF-3"),
        (
            lambda: run.ingest("a", sources["parquet"], dataset="x"),
            labshelf.IngestError,
            "leave dataset= out",
        ),
        (
            lambda: run.ingest("a", sources["parquet"], transfer="move"),
            labshelf.InvalidOptions,
            "'direct', 'copy', 'symlink'",
        ),
        (
            lambda: run.ingest("taken", sources["netcdf"]),
            labshelf.IngestError,
            "has a dataset 'taken' already",
        ),
        (lambda: run.ingest("bad//name", sources["netcdf"]), labshelf.InvalidName, "name"),
    ]
    if os.geteuid() != 0:
        locked = tmp_path / "locked.h5"
        locked.write_bytes(sources["hdf5"].read_bytes())
        locked.chmod(0)
        cases.append(
            (
                lambda: run.ingest("a", locked, dataset="/entry/data/data"),
                labshelf.IngestError,
                "cannot be read",
            )
        )
    for call, error, phrase in cases:
        with pytest.raises(error, match=phrase):
            call()
    assert [r.name for r in shelf.datasets(run.number)] == ["taken"]
    assert (
        sorted(p.name for p in (shelf.root).rglob("*") if p.is_file() and "registry" not in p.name)
        == files_before
    )
    run.finish()
    with pytest.raises(labshelf.RunNotWritable):
        run.ingest("late", sources["netcdf"])


# -- trust: a shelf's rows never choose what is read outside it ---------------------------------------------


def plant_ingested(shelf: labshelf.Shelf, run: int, name: str, path: Path, member: str = "x") -> None:
    """Edit a row as an attacker would: it now claims to be the file ``path`` ingested in place."""
    size, mtime_ns, checksum = ingested.fingerprint(path)
    record = {
        "format": "hdf5",
        "member": member,
        "transfer": "direct",
        "path": str(path),
        "size": size,
        "mtime_ns": mtime_ns,
        "checksum": checksum,
    }
    changed = registry_sql(
        shelf,
        "UPDATE datasets SET options = :options, location = '[]', inline = NULL WHERE run = :run AND name = :name",
        {"options": json.dumps({"ingested": record}), "run": run, "name": name},
    )
    assert changed == 1


def test_a_row_naming_an_outside_file_is_never_read_for_a_user_who_did_not_choose_it(
    shelf: labshelf.Shelf, tmp_path: Path
) -> None:
    sandbox = make_sandbox(tmp_path)
    kept = snapshot(sandbox)
    with shelf.new_run() as run:
        run.put("x", np.arange(5000.0))
        run.put("keep", np.arange(5000.0) + 1)
    plant_ingested(shelf, 1, "x", sandbox / "secret.h5")
    browser = Browser(shelf)
    calls = [
        lambda: shelf.get("x", run=1),
        lambda: shelf.get("x", run=1, parameters={"slice": np.s_[:3]}),
        lambda: browser.preview("run/1/x"),
        lambda: browser.children("run/1/x"),
        lambda: browser.preview("run/1/x#x"),
    ]
    for call in calls:
        with pytest.raises(labshelf.UnconfirmedFile, match=r"secret.h5.*not confirmed.*labshelf trust-data"):
            call()
    # (and the file the row named before is an orphan now)
    assert [(p.kind, p.dataset) for p in shelf.verify().problems if p.kind != "orphan"] == [
        ("unconfirmed", "x")
    ]
    # Confirming another file of that folder confirms nothing else.
    (sandbox / "chosen.h5").write_bytes(b"")
    labshelf.trust_data(shelf, sandbox / "chosen.h5")
    with pytest.raises(labshelf.UnconfirmedFile):
        shelf.get("x", run=1)
    np.testing.assert_array_equal(shelf.get("keep", run=1), np.arange(5000.0) + 1)
    (sandbox / "chosen.h5").unlink()
    assert snapshot(sandbox) == kept


def test_the_browse_preview_refuses_an_unconfirmed_file_of_another_user(
    shelf: labshelf.Shelf, sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with shelf.new_run() as run:
        run.ingest("frames", sources["hdf5"], dataset="/entry/data/data")
        run.ingest("spectrum", sources["netcdf"], transfer="symlink")
    np.testing.assert_array_equal(shelf.get("frames", run=1), FRAMES)
    # User B: another configuration folder, the same shelf.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-b"))
    where = shelf.where if shelf._registry.db.is_sqlite else shelf.root
    with labshelf.open(where) as theirs:
        browser = Browser(theirs)
        for call in (
            lambda: theirs.get("frames", run=1),
            lambda: theirs.get("spectrum.signal", run=1),
            lambda: browser.preview("run/1/frames"),
            lambda: browser.preview("run/1/spectrum"),
        ):
            with pytest.raises(
                labshelf.UnconfirmedFile, match=r"you have not confirmed .*labshelf trust-data"
            ):
                call()
        with pytest.raises(labshelf.UnconfirmedFile):
            shelf.get("frames", run=1)  # the cache of user A's shelf object hands nothing out either
        labshelf.trust_data(theirs, sources["hdf5"].parent)  # a folder confirms the files under it
        np.testing.assert_array_equal(theirs.get("frames", run=1), FRAMES)
        xr.testing.assert_identical(theirs.get("spectrum.signal", run=1), SPECTRUM["signal"])
        assert "frames" in json.dumps(browser.preview("run/1/frames").to_json())
    assert (tmp_path / "user-b" / "labshelf" / "trusted-data.json").stat().st_mode & 0o077 == 0


def test_a_list_someone_else_could_write_confirms_nothing(
    shelf: labshelf.Shelf, sources: dict[str, Path]
) -> None:
    from labshelf import trust

    with shelf.new_run() as run:
        run.ingest("frames", sources["hdf5"], dataset="/entry/data/data")
    trust.DATA.path().chmod(0o666)
    with pytest.raises(labshelf.UnconfirmedFile):
        shelf.get("frames", run=1)


@pytest.mark.parametrize("hostile", ["external link", "virtual dataset"])
def test_an_ingested_file_may_not_lead_to_other_files(
    shelf: labshelf.Shelf, tmp_path: Path, hostile: str
) -> None:
    sandbox = make_sandbox(tmp_path)
    path = tmp_path / "innocent.h5"
    with h5py.File(path, "w") as f:
        f["fine"] = np.arange(100.0)
        if hostile == "external link":
            f["leak"] = h5py.ExternalLink(str(sandbox / "secret.h5"), "/x")
        else:
            layout = h5py.VirtualLayout(shape=(5000,), dtype="<f8")
            layout[:] = h5py.VirtualSource(str(sandbox / "secret.h5"), "x", shape=(5000,))
            f.create_virtual_dataset("leak", layout)
    run = shelf.new_run()
    with pytest.raises(labshelf.IngestError, match="never refer outside|external link|virtual"):
        run.ingest("leak", path, dataset="leak")
    with pytest.raises(labshelf.IngestError, match="never refer outside|external link|virtual"):
        run.ingest("whole", path)  # read whole by xarray: refused before it opens the file
    run.ingest("fine", path, dataset="fine")
    plant_row = shelf.find("fine", run=run.number)
    registry_sql(
        shelf,
        "UPDATE datasets SET options = :o WHERE id = :id",
        {
            "o": json.dumps({"ingested": {**dict(plant_row.storage.options["ingested"]), "member": "leak"}}),
            "id": plant_row.id,
        },
    )
    shelf.cache.clear()
    with pytest.raises(labshelf.CorruptDataset, match="never refer outside|refers outside") as caught:
        shelf.get("fine", run=run.number)
    assert not holds_secret(caught.value.args)


def test_a_symlink_ingest_is_known_by_its_row_and_the_confirmation_never_the_link(
    shelf: labshelf.Shelf, sources: dict[str, Path], tmp_path: Path
) -> None:
    sandbox = make_sandbox(tmp_path)
    with shelf.new_run() as run:
        ref = run.ingest("frames", sources["hdf5"], dataset="/entry/data/data", transfer="symlink")
    link = shelf.root / ref.storage.files[0]
    link.unlink()
    link.symlink_to(sandbox / "secret.h5")
    with pytest.raises(labshelf.IngestedFileChanged, match=r"now points at .*secret.h5, not at .*frames.h5"):
        shelf.get("frames", run=1)
    link.unlink()
    with pytest.raises(labshelf.IngestedFileChanged, match="link .* is gone"):
        shelf.get("frames", run=1)
    # A link planted by hand in data/ with an ordinary row stays refused by the path rules.
    with shelf.new_run() as run:
        run.put("plain", np.arange(5000.0))
    plain = shelf.root / shelf.find("plain", run=2).storage.files[0]
    plain.unlink()
    plain.symlink_to(sandbox / "secret.h5")
    with pytest.raises(labshelf.CorruptDataset, match="symbolic link"):
        shelf.get("plain", run=2)


# -- importers: link=True --------------------------------------------------------------------------------


def test_artiq_link_reads_the_same_values_as_a_copy(tmp_path: Path) -> None:
    from labshelf.importers import artiq
    from test_import_artiq import small_tree, write_results_file

    results = tmp_path / "results"
    small_tree(results, 2)
    big = np.random.default_rng(5).random((300, 600))  # 1.4 MB: linked
    write_results_file(
        results, 3, "Camera", {"camera.frames": big, "fit.x": 1.5}, meta={"camera.frames": {"unit": "V"}}
    )
    before = snapshot(results)
    copied = labshelf.create(tmp_path / "copied.shelf")
    linked = labshelf.create(tmp_path / "linked.shelf")
    report_copy = artiq(copied, results, progress=False)
    report_link = artiq(linked, results, link=True, progress=False)
    assert report_copy.ok and report_link.ok and report_copy.runs == report_link.runs == [1, 2, 3]
    for run in copied:
        for ref in copied.datasets(run.number):
            theirs = linked.find(ref.name, run=run.number)
            a, b = copied.read(ref), linked.read(theirs)
            assert type(a) is type(b) and (np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b)
            assert (theirs.storage.ingested is not None) == (ref.name == "camera/frames")
    assert linked.metadata("camera/frames").unit == "V"
    assert not any(p.stat().st_size > 1_000_000 for p in (linked.root / "data").rglob("*") if p.is_file())
    assert artiq(linked, results, link=True, progress=False).already == 3  # idempotent
    assert linked.verify().ok and snapshot(results) == before
    copied.close()
    linked.close()


# -- the command line -------------------------------------------------------------------------------------


def test_the_cli_ingests_and_trusts(
    tmp_path: Path,
    sources: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from labshelf.cli import main

    folder = tmp_path / "cli.shelf"
    labshelf.create(folder).close()
    assert (
        main(
            [
                "ingest",
                str(folder),
                "new",
                "det/frames",
                str(sources["hdf5"]),
                "--dataset",
                "/entry/data/data",
                "--transfer",
                "symlink",
                "--data-id",
                "module=2",
            ]
        )
        == 0
    )
    assert "ingested 'det/frames[module=2]' into run 1: ndarray 12x40x48 float32" in capsys.readouterr().out
    assert main(["ingest", str(folder), "1", "again", str(sources["netcdf"])]) == 1
    assert "run 1 has ended" in capsys.readouterr().err
    assert main(["ingest", str(folder), "new", "x", str(sources["netcdf"]), "--transfer", "move"]) == 1
    assert "'direct', 'copy', 'symlink'" in capsys.readouterr().err
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-b"))
    with labshelf.open(folder) as shelf:
        with pytest.raises(labshelf.UnconfirmedFile):
            shelf.get("det/frames", {"module": 2}, run=1)
    assert main(["trust-data", str(folder), str(sources["hdf5"])]) == 0
    with labshelf.open(folder) as shelf:
        np.testing.assert_array_equal(shelf.get("det/frames", {"module": 2}, run=1), FRAMES)
    assert main(["trust-data", str(folder), str(tmp_path / "nothing")]) == 1
    assert "no file or folder" in capsys.readouterr().err


def test_fingerprint_covers_size_and_both_ends(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    data = bytearray(os.urandom(5 << 20))
    path.write_bytes(data)
    first = ingested.fingerprint(path)[2]
    for offset in (0, (1 << 20) - 1, len(data) - 1):
        changed = bytearray(data)
        changed[offset] ^= 1
        path.write_bytes(changed)
        assert ingested.fingerprint(path)[2] != first
    changed = bytearray(data)
    changed[2 << 20] ^= 1  # the middle is what it does not see (documented)
    path.write_bytes(changed)
    assert ingested.fingerprint(path)[2] == first
    path.write_bytes(data + b"\0")
    assert ingested.fingerprint(path)[2] != first
