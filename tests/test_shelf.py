"""The Shelf facade: create/open, runs, put and get through the public API."""

from __future__ import annotations

import numpy as np
import pytest

import labshelf


def test_put_get_round_trip_of_the_issue_example(shelf: labshelf.Shelf) -> None:
    img = np.arange(300 * 200, dtype="u2").reshape(300, 200)
    with shelf.new_run(experiment="rabi_scan", params={"detuning": 1.5}) as run:
        run.put("temperature", 301.2)
        run.put("camera/image", img, hdf5_options={"compression": "gzip", "compression_opts": 4, "chunks": (100, 100)})
        run.put("counts", np.array([], dtype="i8"))
        run.append("counts", [3, 4, 5])
        run.mutate("counts", 0, 7)
        run.put("pmt", 1234, data_id={"channel": 2})
    n = run.number
    assert n == 1
    assert shelf.get("temperature", run=n) == 301.2
    assert type(shelf.get("temperature", run=n)) is float
    np.testing.assert_array_equal(shelf.get("counts", run=n), [7, 4, 5])
    assert shelf.get("pmt", run=n, data_id={"channel": 2}) == 1234
    got = shelf.get("camera/image", run=n)
    assert got.dtype == img.dtype and (got == img).all()
    record = shelf.run(n)
    assert record.status == "finished" and record.params == {"detuning": 1.5}
    assert record.experiment == "rabi_scan" and record.end is not None and record.start <= record.end
    names = [r.label for r in shelf.datasets(run=n)]
    assert names == ["temperature", "camera/image", "counts", "pmt[channel=2]"]


def test_run_numbers_are_assigned_in_order_and_a_failed_block_marks_the_run(shelf: labshelf.Shelf) -> None:
    with shelf.new_run("a") as r1:
        pass
    with pytest.raises(ZeroDivisionError):
        with shelf.new_run("b") as r2:
            1 / 0  # noqa: B018
    assert (r1.number, r2.number) == (1, 2)
    assert shelf.run(2).status == "failed"
    assert "ZeroDivisionError" in (shelf.run(2).record.error or "")
    assert [r.number for r in shelf] == [1, 2] and len(shelf) == 2 and 2 in shelf and 3 not in shelf


def test_reopen_sees_everything(tmp_path) -> None:
    path = tmp_path / "s.shelf"
    with labshelf.create(path) as s, s.new_run() as run:
        run.put("x", np.linspace(0, 1, 5000))
    with labshelf.open(path, mode="r") as s:
        np.testing.assert_array_equal(s.get("x", run=1), np.linspace(0, 1, 5000))
        with pytest.raises(labshelf.ReadOnlyShelf):
            s.new_run()
        with pytest.raises(labshelf.ReadOnlyShelf):
            s.run(1).put("y", 1)


def test_delete_removes_the_dataset_its_files_and_records_the_change(shelf: labshelf.Shelf) -> None:
    import dataclasses

    import numpy as np

    @dataclasses.dataclass
    class Pair:
        a: np.ndarray
        b: float

    with shelf.new_run() as run:
        run.put("big", np.arange(100_000.0))
        run.put("pair", Pair(np.arange(50_000.0), 2.0))
        run.put("kept", 1)
        files = [shelf.root / f for f in shelf.find("big", run=run.number).storage.files]
        part_files = [shelf.root / f for f in shelf.find("pair.a", run=run.number).storage.files]
        assert all(f.exists() for f in files + part_files)
        before = shelf.last_seq()
        run.delete("big")
        run.delete("pair")
        with pytest.raises(labshelf.DatasetNotFound, match="to delete"):
            run.delete("big")
        with pytest.raises(labshelf.InvalidName):
            run.delete("../escape")
    names = [ref.name for ref in shelf.datasets(run.number)]
    assert names == ["kept"]  # the composite's parts went with it
    assert not any(f.exists() for f in files + part_files)
    with pytest.raises(labshelf.DatasetNotFound):
        shelf.get("big", run=run.number)
    kinds = [(c["kind"], c["name"]) for c in shelf._registry.changes_since(before)]
    assert kinds == [("delete", "big"), ("delete", "pair"), ("run_end", None)]
    with pytest.raises(labshelf.RunNotWritable):
        run.delete("kept")
    assert shelf.get("kept", run=run.number) == 1
