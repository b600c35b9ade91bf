"""Path safety: a shelf someone gave you never makes labshelf read, write or delete outside it.

Hostile shelves are built the way an attacker would build them: symbolic
links in ``data/`` and ``tmp/``, a data file swapped for a link or a FIFO,
registry rows edited with an SQL client, HDF5 files that point elsewhere
(external raw storage, external links, virtual datasets) and a Parquet file
whose column chunks name another file.  Beside each shelf lies a sandbox
holding secrets; every test checks that the sandbox is exactly as it was
(names, sizes, mtimes, bytes), that no secret value comes back through any
reader (get, components, previews and members of the tree, live updates),
and that the shelf keeps working for its other datasets.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import labshelf
from _live import Collector, wait_for
from _tamper import SECRET, data_file, holds_secret, make_sandbox, set_location, snapshot
from labshelf.datastore.store import labshelf_named


class Sandbox:
    """A folder outside the shelf whose contents must never change once frozen."""

    def __init__(self, path: Path):
        self.path = path
        self.freeze()

    def freeze(self) -> None:
        """Take the state to keep (after an attacker's own changes to the sandbox)."""
        self.before = snapshot(self.path)

    def check(self) -> None:
        assert snapshot(self.path) == self.before, "something outside the shelf changed"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(make_sandbox(tmp_path))
    yield box
    box.check()


def assert_usable(shelf: labshelf.Shelf) -> None:
    """The shelf still writes and reads values of its own, in a new run."""
    with shelf.new_run("still works") as run:
        run.put("fine/array", np.arange(5000.0) - 1)
        run.put("fine/scalar", 42)
    np.testing.assert_array_equal(shelf.get("fine/array", run=run.number), np.arange(5000.0) - 1)
    assert shelf.get("fine/scalar", run=run.number) == 42


# -- symbolic links in data/ and tmp/ -------------------------------------------------------------


@pytest.mark.parametrize("dangling", [False, True], ids=["to a folder", "dangling"])
@pytest.mark.parametrize("spot", ["data", "data/000001", "data/000001/camera"])
def test_a_link_out_of_data_is_never_written_through(
    shelf: labshelf.Shelf, sandbox: Sandbox, spot: str, dangling: bool
) -> None:
    run = shelf.new_run()
    link = shelf.root / spot
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(sandbox.path / ("nowhere" if dangling else "inner"), target_is_directory=True)
    values = {
        "camera/array": np.arange(5000.0),
        "camera/image": np.ones((64, 64), dtype=np.uint16),
        "camera/spectrum": xr.DataArray(np.arange(5000.0), dims="x"),
        "camera/table": pd.DataFrame({"a": np.arange(5.0)}),
    }
    for name, value in values.items():
        with pytest.raises(labshelf.UnsafePath, match=rf"{spot} in the shelf .* is a symbolic link to .*sandbox"):
            run.put(name, value)
    run.put("camera/scalar", 1.5)  # kept in the registry: no file, nothing refused
    assert shelf.get("camera/scalar", run=run.number) == 1.5
    assert not (shelf.root / "tmp").exists() or os.listdir(shelf.root / "tmp") == []
    if spot == "data":  # nothing is written while data/ itself leads out of the shelf
        link.unlink()
    assert_usable(shelf)


def test_a_tmp_folder_linked_out_of_the_shelf_is_never_written_through(shelf: labshelf.Shelf, sandbox: Sandbox) -> None:
    run = shelf.new_run()
    (shelf.root / "tmp").symlink_to(sandbox.path / "inner", target_is_directory=True)
    with pytest.raises(labshelf.UnsafePath, match="tmp in the shelf .* is a symbolic link to .*sandbox"):
        run.put("x", np.arange(5000.0))
    with pytest.raises(labshelf.UnsafePath):
        run.put("frame", pd.DataFrame({"a": [1.0]}))
    run.put("y", 2)
    assert shelf.get("y", run=run.number) == 2
    (shelf.root / "tmp").unlink()
    assert_usable(shelf)


@pytest.mark.parametrize("action", ["put inline", "put file", "delete", "mutate", "append"])
def test_old_files_behind_a_link_are_never_deleted(shelf: labshelf.Shelf, sandbox: Sandbox, action: str) -> None:
    run = shelf.new_run()
    run.put("x", np.arange(5000.0))
    # The attacker moves the run's folder out of the shelf and leaves a link behind.
    folder = shelf.root / "data" / f"{run.number:06d}"
    folder.rename(sandbox.path / "run")
    folder.symlink_to(sandbox.path / "run", target_is_directory=True)
    sandbox.freeze()
    shelf.cache.clear()
    if action == "put inline":
        run.put("x", 1)  # the replaced version's file lies behind the link: left alone
        assert shelf.get("x", run=run.number) == 1
    elif action == "delete":
        run.delete("x")
        assert "x" not in [r.name for r in shelf.datasets(run.number)]
    elif action == "put file":
        with pytest.raises(labshelf.UnsafePath):
            run.put("x", np.arange(6000.0))
    elif action == "mutate":
        with pytest.raises(labshelf.UnsafePath):
            run.mutate("x", 0, 5.0)
    else:
        with pytest.raises(labshelf.UnsafePath):
            run.append("x", np.arange(10.0))
    assert_usable(shelf)


@pytest.mark.parametrize("target", ["secret.bin", "secret.h5", "inner"])
def test_a_data_file_swapped_for_a_link_out_is_never_read(shelf: labshelf.Shelf, sandbox: Sandbox, target: str) -> None:
    with shelf.new_run() as run:
        run.put("x", np.arange(5000.0))
        run.put("keep", np.arange(5000.0) + 3)
    path = data_file(shelf, "x")
    path.unlink()
    path.symlink_to(sandbox.path / target)
    for parameters in (None, {"slice": np.s_[:10]}):
        with pytest.raises(labshelf.CorruptDataset, match=r"dataset 'x' of run 1: .* symbolic link to .*sandbox"):
            shelf.get("x", run=1, parameters=parameters)
    report = shelf.verify()
    assert [(p.kind, p.dataset) for p in report.problems] == [("outside", "x")]
    np.testing.assert_array_equal(shelf.get("keep", run=1), np.arange(5000.0) + 3)
    assert_usable(shelf)


@pytest.mark.timeout(60)
def test_a_fifo_in_place_of_a_data_file_is_refused_not_waited_on(shelf: labshelf.Shelf, sandbox: Sandbox) -> None:
    with shelf.new_run() as run:
        run.put("x", np.arange(5000.0))
    path = data_file(shelf, "x")
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(labshelf.CorruptDataset, match="not a regular file"):
        shelf.get("x", run=1)
    assert [(p.kind, p.dataset) for p in shelf.verify().problems] == [("link", "x")]
    assert_usable(shelf)


def test_links_that_stay_inside_the_shelf_are_followed(shelf: labshelf.Shelf, sandbox: Sandbox) -> None:
    """data/ may be a link to another folder of the shelf (say, a mount point inside it)."""
    (shelf.root / "store").mkdir()
    (shelf.root / "data").symlink_to(shelf.root / "store", target_is_directory=True)
    with shelf.new_run() as run:
        run.put("x", np.arange(5000.0))
        run.put("x", np.arange(5000.0) * 2)  # replaces, and removes the first file
    np.testing.assert_array_equal(shelf.get("x", run=1), np.arange(5000.0) * 2)
    assert [p.name for p in (shelf.root / "store" / "000001").iterdir()] == [Path(shelf.find("x", run=1).storage.files[0]).name]
    assert shelf.verify().ok


# -- registry rows naming files -------------------------------------------------------------------


def hostile_locations(shelf: labshelf.Shelf, sandbox: Path) -> dict[str, str]:
    """File names an edited row may hold, by what they aim at."""
    keep_1 = shelf.find("keep", run=1).storage.files[0]
    keep_2 = shelf.find("keep", run=2).storage.files[0]
    return {
        "the marker": "labshelf.json",
        "the registry": "registry.sqlite3",
        "the marker through ..": "data/000002/../../labshelf.json",
        "a file outside": os.path.relpath(sandbox / "secret.bin", shelf.root),
        "an absolute path": str(sandbox / "secret.bin"),
        "an own-looking name outside": f"data/000002/../../../sandbox/x.{'a' * 12}.h5",
        "another run's file": keep_1,
        "another dataset's file": keep_2,
    }


TARGETS = ["the marker", "the registry", "the marker through ..", "a file outside", "an absolute path",
           "an own-looking name outside", "another run's file", "another dataset's file"]


@pytest.mark.parametrize("action", ["put inline", "put file", "delete"])
@pytest.mark.parametrize("target", TARGETS)
def test_a_registry_row_never_chooses_what_is_deleted(
    shelf: labshelf.Shelf, sandbox: Sandbox, target: str, action: str
) -> None:
    with shelf.new_run() as first:
        first.put("keep", np.arange(5000.0) + 1)
    run = shelf.new_run()
    run.put("keep", np.arange(5000.0) + 2)
    run.put("x", np.arange(5000.0))
    (sandbox.path / f"x.{'a' * 12}.h5").write_bytes(b"named like a file of ours")
    sandbox.freeze()
    set_location(shelf, run.number, "x", [hostile_locations(shelf, sandbox.path)[target]])
    protected = {p: p.read_bytes() for p in [shelf.root / "labshelf.json", data_file(shelf, "keep", 1), data_file(shelf, "keep", 2)]}
    if (shelf.root / "registry.sqlite3").exists():
        protected[shelf.root / "registry.sqlite3"] = b""  # changes as the registry works: it must only stay
    if action == "put inline":
        run.put("x", 1)
    elif action == "put file":
        run.put("x", np.arange(6000.0))
    else:
        run.delete("x")
    for path, content in protected.items():
        assert path.exists(), f"{path.name} was deleted"
        assert not content or path.read_bytes() == content
    with labshelf.open(shelf.where if shelf._registry.db.is_sqlite else shelf.root) as again:
        np.testing.assert_array_equal(again.get("keep", run=1), np.arange(5000.0) + 1)
        np.testing.assert_array_equal(again.get("keep", run=2), np.arange(5000.0) + 2)
    assert_usable(shelf)


@pytest.mark.parametrize("target", ["the marker", "the registry", "the marker through ..", "a file outside", "an absolute path"])
def test_a_row_naming_a_file_outside_data_is_refused_on_read(shelf: labshelf.Shelf, sandbox: Sandbox, target: str) -> None:
    with shelf.new_run() as first:
        first.put("keep", np.arange(5000.0) + 1)
    with shelf.new_run() as run:
        run.put("keep", np.arange(5000.0) + 2)
        run.put("x", np.arange(5000.0))
    set_location(shelf, 2, "x", [hostile_locations(shelf, sandbox.path)[target]])
    for call in (lambda: shelf.get("x", run=2), lambda: shelf.get("x", run=2, parameters={"slice": np.s_[:3]}),
                 lambda: shelf.components("x", run=2)):
        with pytest.raises(labshelf.CorruptDataset, match=r"dataset 'x' of run 2: .*(not under data/|outside)"):
            call()
    np.testing.assert_array_equal(shelf.get("keep", run=2), np.arange(5000.0) + 2)


def test_replaced_and_deleted_versions_still_lose_their_files(shelf: labshelf.Shelf) -> None:
    """The ownership check keeps labshelf's own clean-up working."""
    import dataclasses

    @dataclasses.dataclass
    class Pair:
        left: np.ndarray
        right: np.ndarray

    with shelf.new_run() as run:
        run.put("x", np.arange(5000.0))
        run.put("x", np.arange(5000.0) + 1)
        run.put("grown", np.zeros((3000, 2)))
        for _ in range(12):  # enough small segments to be merged
            run.append("grown", np.ones((10, 2)))
        run.mutate("grown", 0, np.array([5.0, 5.0]))
        run.put("pair", Pair(np.arange(5000.0), np.arange(5000.0)))
        run.delete("pair")
    referenced = {f for ref in shelf.datasets(1) for f in ref.storage.files}
    on_disk = {p.relative_to(shelf.root).as_posix() for p in (shelf.root / "data").rglob("*") if p.is_file()}
    assert on_disk == referenced and shelf.orphans(older_than=0) == []


def test_labshelf_named_is_the_new_file_pattern() -> None:
    token = "0123456789ab"
    assert labshelf_named(f"data/000007/camera/image.{token}.h5", 7, "camera/image")
    assert labshelf_named(f"data/000007/calexp.psf.{token}.h5", 7, "calexp")  # a composite's part
    assert labshelf_named(f"data/1234567/x.{token}.parquet", 1234567, "x")
    for relative in [
        "labshelf.json", f"data/000008/x.{token}.h5", f"data/000007/y.{token}.h5", f"data/000007/x.{token[:-1]}.h5",
        f"data/000007/../000007/x.{token}.h5", f"data/000007/x/../x.{token}.h5", "data/000007/x.h5", f"tmp/{token}.h5",
    ]:
        assert not labshelf_named(relative, 7, "x"), relative


# -- data files that refer outside themselves -----------------------------------------------------------


HOSTILE_HDF5 = ["external storage", "external link", "external link on the way", "virtual dataset",
                "soft link to an external link"]


def plant_hdf5(path: Path, how: str, sandbox: Path) -> None:
    """Replace the data file of ``camera/image`` with one that reads the sandbox's secrets."""
    secret_h5 = str(sandbox / "secret.h5")
    path.unlink()
    with h5py.File(path, "w") as f:
        if how == "external storage":
            f.create_dataset("camera/image", shape=(50, 100), dtype="<f8",
                             external=[(str(sandbox / "secret.bin"), 0, SECRET.nbytes)])
        elif how == "external link":
            f["camera/image"] = h5py.ExternalLink(secret_h5, "/camera/image")
        elif how == "external link on the way":
            f["camera"] = h5py.ExternalLink(secret_h5, "/camera")
        elif how == "virtual dataset":
            layout = h5py.VirtualLayout(shape=(50, 100), dtype="<f8")
            layout[:] = h5py.VirtualSource(secret_h5, "camera/image", shape=(50, 100))
            f.create_virtual_dataset("camera/image", layout)
        else:
            f["elsewhere"] = h5py.ExternalLink(secret_h5, "/camera/image")
            f["camera/image"] = h5py.SoftLink("/elsewhere")


@pytest.fixture
def imaged(shelf: labshelf.Shelf) -> labshelf.Shelf:
    with shelf.new_run() as run:
        run.put("camera/image", np.arange(5000.0).reshape(50, 100))
        run.put("keep", np.arange(5000.0) + 3)
    return shelf


@pytest.mark.parametrize("how", HOSTILE_HDF5)
def test_hdf5_that_refers_outside_is_refused_by_every_reader(imaged: labshelf.Shelf, sandbox: Sandbox, how: str) -> None:
    from labshelf.widgets import DatasetTree

    shelf = imaged
    plant_hdf5(data_file(shelf, "camera/image"), how, sandbox.path)
    refused = r"refers outside|never refer outside"
    for parameters in (None, {"slice": np.s_[:5]}, {"downsample": 5}):
        with pytest.raises(labshelf.CorruptDataset, match=refused):
            shelf.get("camera/image", run=1, parameters=parameters)
    with pytest.raises(labshelf.CorruptDataset, match=refused):
        shelf.get("camera/image.attrs", run=1)

    tree = DatasetTree(shelf)
    listed = tree.rpc_children("run/1/camera/image")["nodes"]
    if how == "external link on the way":
        assert [(n["name"], n["meta"]) for n in listed] == [("camera", "refers outside the file (not read)")]
    else:
        inner = tree.rpc_children("run/1/camera/image#camera")["nodes"]
        assert all(n["kind"] != "dataset" or "refers outside" in n["meta"] for n in inner)
    with pytest.raises(labshelf.CorruptDataset, match=refused):
        tree.rpc_preview("run/1/camera/image#camera/image")

    seen = Collector()
    subscription = shelf.subscribe("camera/image", seen, run=1)
    try:
        wait_for(lambda: bool(subscription.errors), "the subscription's error")
        assert "outside" in subscription.errors[0] and seen.updates == []
    finally:
        subscription.close()

    report = shelf.verify()
    assert [(p.kind, p.dataset) for p in report.problems] == [("outside", "camera/image")]
    np.testing.assert_array_equal(shelf.get("keep", run=1), np.arange(5000.0) + 3)
    assert_usable(shelf)


def test_soft_links_inside_a_file_are_followed(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("x", np.arange(5000.0))
    with h5py.File(data_file(shelf, "x"), "r+") as f:
        f.move("x", "real")
        f["x"] = h5py.SoftLink("/real")
    np.testing.assert_array_equal(shelf.get("x", run=1), np.arange(5000.0))
    assert shelf.verify().ok


def test_soft_links_in_a_loop_are_a_damaged_file(shelf: labshelf.Shelf) -> None:
    with shelf.new_run() as run:
        run.put("x", np.arange(5000.0))
    with h5py.File(data_file(shelf, "x"), "r+") as f:
        del f["x"]
        f["x"] = h5py.SoftLink("/y")
        f["y"] = h5py.SoftLink("/x")
    with pytest.raises(labshelf.CorruptDataset, match="loop"):
        shelf.get("x", run=1)


@pytest.mark.parametrize("how", ["external link at the root", "variable as a virtual dataset"])
def test_netcdf_that_refers_outside_is_refused(shelf: labshelf.Shelf, sandbox: Sandbox, how: str) -> None:
    from labshelf.widgets import DatasetTree

    spectrum = xr.Dataset({"signal": ("energy", np.arange(5000.0))}, coords={"energy": np.arange(5000.0) / 10})
    with shelf.new_run() as run:
        run.put("spec", spectrum)
    with h5py.File(data_file(shelf, "spec"), "r+") as f:
        if how == "external link at the root":
            f["leak"] = h5py.ExternalLink(str(sandbox.path / "secret.h5"), "/x")
        else:
            del f["spec/signal"]
            layout = h5py.VirtualLayout(shape=(5000,), dtype="<f8")
            layout[:] = h5py.VirtualSource(str(sandbox.path / "secret.h5"), "x", shape=(5000,))
            f.create_virtual_dataset("spec/signal", layout)
    for target in ("spec", "spec.signal", "spec.coords.energy"):
        with pytest.raises(labshelf.CorruptDataset, match="refer outside"):
            shelf.get(target, run=1)
    with pytest.raises(labshelf.CorruptDataset, match="refer outside"):
        shelf.components("spec", run=1)
    tree = DatasetTree(shelf)
    for call in (lambda: tree.rpc_preview("run/1/spec"), lambda: tree.rpc_children("run/1/spec")):
        with pytest.raises(labshelf.CorruptDataset, match="refer outside"):
            call()
    assert [p.kind for p in shelf.verify().problems] == ["outside"]
    assert_usable(shelf)


def test_a_parquet_column_chunk_naming_another_file_is_read_from_its_own_file(
    shelf: labshelf.Shelf, sandbox: Sandbox
) -> None:
    """Parquet lets a column chunk name another file (``file_path``); pyarrow reads its own file anyway."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from labshelf.widgets import DatasetTree

    frame = pd.DataFrame({"a": np.arange(5000.0)})
    with shelf.new_run() as run:
        run.put("table", frame, hdf5_options={"compression": "none"})
    secret = sandbox.path / "secret.parquet"
    pq.write_table(pa.Table.from_pandas(pd.DataFrame({"a": SECRET})), secret, compression=None)
    sandbox.freeze()
    path = data_file(shelf, "table")
    raw = path.read_bytes()
    footer = struct.unpack("<I", raw[-8:-4])[0]
    meta = pq.read_metadata(path)
    meta.set_file_path(str(secret))
    buffer = io.BytesIO()
    meta.write_metadata_file(buffer)
    path.write_bytes(raw[: -(8 + footer)] + buffer.getvalue()[4:])
    assert pq.read_metadata(path).row_group(0).column(0).file_path == str(secret)

    for target in ("table", "table.columns.a"):
        value = shelf.get(target, run=1)
        assert not holds_secret(value)
    pd.testing.assert_frame_equal(shelf.get("table", run=1), frame)
    preview = DatasetTree(shelf).rpc_preview("run/1/table#a").result
    assert "7.25" not in json.dumps(preview)
    assert [p.kind for p in shelf.verify().problems] == ["outside"]
